/* Crash-safe file writes and checksums; see pando/durable.h. */
#include "pando/durable.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "pando/error.h"
#include "pando/util.h"

uint32_t pd_crc32(uint32_t crc, const void *data, size_t bytes) {
  const unsigned char *p = data;
  while (bytes > 0) { /* zlib's length is a uInt */
    uInt n = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
    crc = (uint32_t)crc32(crc, p, n);
    p += n;
    bytes -= n;
  }
  return crc;
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

/* The parent directory of `path` in `out` ("." when it has none). */
static void parent_of(const char *path, char *out, size_t outlen) {
  pd_strlcpy(out, path, outlen);
  char *slash = strrchr(out, '/');
  while (slash && slash > out && slash[1] == '\0') { /* trailing slashes */
    *slash = '\0';
    slash = strrchr(out, '/');
  }
  if (!slash)
    pd_strlcpy(out, ".", outlen);
  else if (slash == out)
    out[1] = '\0';
  else
    *slash = '\0';
}

static int write_all(int fd, const void *data, size_t bytes) {
  const char *p = data;
  while (bytes > 0) {
    ssize_t n = write(fd, p, bytes > (1u << 30) ? (1u << 30) : bytes);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    bytes -= (size_t)n;
  }
  return 0;
}

int pd_durable_write(const char *dir, const char *name, const pd_durable_piece *pieces,
                     size_t npieces, char *err, size_t errlen) {
  char tmp[PATH_MAX], path[PATH_MAX];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
      (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp)
    return pd_errf(err, errlen, -ENAMETOOLONG, "%s/%s: path too long", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return pd_errf(err, errlen, -errno, "%s: cannot create: %s", tmp, strerror(errno));
  int rc = 0;
  const char *step = "write";
  for (size_t i = 0; i < npieces && rc == 0; i++)
    rc = write_all(fd, pieces[i].data, pieces[i].bytes);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno, step = "fsync";
  if (close(fd) != 0 && rc == 0)
    rc = -errno, step = "close";
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno, step = "rename";
  if (rc != 0) {
    unlink(tmp);
    return pd_errf(err, errlen, rc, "%s: %s failed: %s", path, step, strerror(-rc));
  }
  if ((rc = fsync_path(dir)) != 0)
    return pd_errf(err, errlen, rc, "%s: fsync of the directory failed: %s", dir, strerror(-rc));
  return 0;
}

int pd_durable_mkdirs(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) == 0)
    return S_ISDIR(st.st_mode) ? 0 : pd_errf(err, errlen, -ENOTDIR, "%s: not a directory", path);
  char parent[PATH_MAX];
  parent_of(path, parent, sizeof parent);
  if (strcmp(parent, path) != 0) {
    int rc = pd_durable_mkdirs(parent, err, errlen);
    if (rc != 0)
      return rc;
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    return pd_errf(err, errlen, -errno, "%s: cannot create directory: %s", path, strerror(errno));
  int rc = fsync_path(parent);
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s: fsync failed: %s", parent, strerror(-rc));
  return 0;
}

int pd_durable_remove_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return errno == ENOENT ? 0 : -errno;
  struct dirent *e;
  char file[PATH_MAX];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if ((size_t)snprintf(file, sizeof file, "%s/%s", path, e->d_name) < sizeof file)
      unlink(file);
  }
  closedir(d);
  if (rmdir(path) != 0)
    return -errno;
  char parent[PATH_MAX];
  parent_of(path, parent, sizeof parent);
  return fsync_path(parent);
}

int pd_file_read_all(const char *path, size_t max_bytes, char **data, size_t *bytes, char *err,
                     size_t errlen) {
  *data = NULL;
  *bytes = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return pd_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  int rc = 0;
  char *buf = NULL;
  if (fstat(fd, &st) != 0) {
    rc = pd_errf(err, errlen, -errno, "%s: cannot stat: %s", path, strerror(errno));
    goto done;
  }
  if ((uint64_t)st.st_size > max_bytes) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %lld bytes, more than the %zu allowed", path,
                 (long long)st.st_size, max_bytes);
    goto done;
  }
  size_t size = (size_t)st.st_size, got = 0;
  buf = pd_xmalloc(size + 1);
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      rc = pd_errf(err, errlen, n < 0 ? -errno : -PD_EFORMAT, "%s: read failed: %s", path,
                   n < 0 ? strerror(errno) : "file shrank while being read");
      goto done;
    }
    got += (size_t)n;
  }
  buf[size] = '\0';
  *data = buf;
  *bytes = size;
  buf = NULL;
done:
  free(buf);
  close(fd);
  return rc;
}
