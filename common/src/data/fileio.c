/* The bottom of the data code: whole-file reads with io_uring (pd_read_file),
 * a byte stream over plain or gzipped files (zlib), and whole-file or
 * first-line reads that inflate gzip. The readers of each format
 * (dataset_idx.c, dataset_text.c) build on it; see fileio.h. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pando/error.h"
#include "pando/util.h"

#define READ_CHUNK (1u << 20) /* bytes per io_uring read */
#define READ_DEPTH 8          /* reads in flight */
#define PEEK_CHUNK (16u << 10)
#define INFLATE_CHUNK (256u << 10)

/* ---- whole-file reads */

static int read_plain(int fd, const char *path, uint8_t *buf, size_t size, char *err,
                      size_t errlen) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, buf + done, size - done, (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pd_errf(err, errlen, -errno, "%s: read: %s", path, strerror(errno));
    if (n == 0)
      return pd_errf(err, errlen, -EIO,
                     "%s: file shrank while reading (expected %zu bytes, got %zu)", path, size,
                     done);
    done += (size_t)n;
  }
  return 0;
}

/* One read in flight: the part of the file it still has to fill. */
struct read_slot {
  uint64_t offset;
  unsigned len;
};

static void queue_read(struct io_uring *ring, int fd, uint8_t *buf, struct read_slot *slot) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  PD_ASSERT(sqe); /* never more than READ_DEPTH in flight */
  io_uring_prep_read(sqe, fd, buf + slot->offset, slot->len, slot->offset);
  io_uring_sqe_set_data(sqe, slot);
}

static int read_uring(struct io_uring *ring, int fd, const char *path, uint8_t *buf, size_t size,
                      char *err, size_t errlen) {
  struct read_slot slots[READ_DEPTH];
  uint64_t next = 0; /* first byte not yet asked for */
  int inflight = 0, rc = 0;
  for (int i = 0; i < READ_DEPTH && next < size; i++) {
    slots[i].offset = next;
    slots[i].len = (unsigned)PD_MIN((uint64_t)READ_CHUNK, size - next);
    next += slots[i].len;
    queue_read(ring, fd, buf, &slots[i]);
    inflight++;
  }
  while (inflight > 0) {
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret == -EINTR || ret == -EAGAIN)
      continue;
    if (ret < 0) {
      if (rc == 0)
        rc = pd_errf(err, errlen, ret, "%s: io_uring_submit: %s", path, strerror(-ret));
      break;
    }
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(ring, &cqe) == 0) {
      struct read_slot *slot = io_uring_cqe_get_data(cqe);
      int res = cqe->res;
      io_uring_cqe_seen(ring, cqe);
      inflight--;
      if (rc != 0)
        continue; /* failed: only drain what is still in flight */
      if (res == -EINTR || res == -EAGAIN)
        res = 0; /* ask again for the same bytes below */
      else if (res < 0)
        rc = pd_errf(err, errlen, res, "%s: read: %s", path, strerror(-res));
      else if (res == 0)
        rc = pd_errf(err, errlen, -EIO, "%s: file shrank while reading (expected %zu bytes)", path,
                     size);
      if (rc != 0)
        continue;
      slot->offset += (unsigned)res; /* a short read asks again for the rest */
      slot->len -= (unsigned)res;
      if (slot->len == 0 && next < size) {
        slot->offset = next;
        slot->len = (unsigned)PD_MIN((uint64_t)READ_CHUNK, size - next);
        next += slot->len;
      }
      if (slot->len > 0) {
        queue_read(ring, fd, buf, slot);
        inflight++;
      }
    }
  }
  return rc;
}

/* Reads the `size` bytes of the open file `fd` into a new buffer. */
static int read_fd(int fd, const char *path, size_t size, uint8_t **data, char *err,
                   size_t errlen) {
  uint8_t *buf = pd_xmalloc(size ? size : 1);
  struct io_uring ring;
  int rc;
  int ret = io_uring_queue_init(READ_DEPTH, &ring, 0);
  if (ret == -ENOSYS || ret == -EPERM) {
    rc = read_plain(fd, path, buf, size, err, errlen);
  } else if (ret < 0) {
    rc = pd_errf(err, errlen, ret, "%s: io_uring_queue_init: %s", path, strerror(-ret));
  } else {
    rc = read_uring(&ring, fd, path, buf, size, err, errlen);
    io_uring_queue_exit(&ring);
  }
  if (rc != 0) {
    free(buf);
    buf = NULL;
  }
  *data = buf;
  return rc;
}

/* What a file that is not a regular one is, for a message. */
static const char *file_kind(mode_t mode) {
  return S_ISDIR(mode)    ? "a folder"
         : S_ISFIFO(mode) ? "a FIFO"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISSOCK(mode) ? "a socket"
                          : "not a regular file";
}

static int not_regular(const char *path, mode_t mode, char *err, size_t errlen) {
  return pd_errf(err, errlen, S_ISDIR(mode) ? -EISDIR : -EINVAL,
                 "%s: is %s, not a regular file (only regular files are read)", path,
                 file_kind(mode));
}

/* Opens `path` read-only without blocking (a FIFO's open would wait for a
 * writer) and checks that it is a regular file. */
static int open_regular(const char *path, int *fd_out, struct stat *st, char *err, size_t errlen) {
  *fd_out = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return pd_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
  if (fstat(fd, st) != 0) {
    int rc = pd_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    close(fd);
    return rc;
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return not_regular(path, st->st_mode, err, errlen);
  }
  *fd_out = fd;
  return 0;
}

int pd_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen) {
  *data = NULL;
  *len = 0;
  int fd;
  struct stat st;
  int rc = open_regular(path, &fd, &st, err, errlen);
  if (rc != 0)
    return rc;
  rc = read_fd(fd, path, (size_t)st.st_size, data, err, errlen);
  if (rc == 0)
    *len = (size_t)st.st_size;
  close(fd);
  return rc;
}

/* ---- the limits of data files */

static struct {
  bool restricted; /* roots were given (even if none of them exists) */
  int nroots;
  char roots[PD_DATA_MAX_ROOTS][PATH_MAX]; /* resolved, without a trailing '/' */
  uint64_t max_bytes, max_inflated;
  double max_ratio;
} limits = {.max_bytes = PD_DATA_MAX_BYTES_DEFAULT,
            .max_inflated = PD_DATA_MAX_INFLATED_DEFAULT,
            .max_ratio = PD_DATA_MAX_GZIP_RATIO_DEFAULT};

int pd_data_set_limits(const pd_data_limits *l, char *err, size_t errlen) {
  char roots[PD_DATA_MAX_ROOTS][PATH_MAX];
  int nroots = 0;
  size_t noted = 0;
  bool restricted = false;
  const char *p = l->roots ? l->roots : "";
  if (errlen)
    err[0] = '\0';
  if (!(l->max_gzip_ratio >= 1))
    return pd_errf(err, errlen, -EINVAL, "data_max_gzip_ratio: must be at least 1, got %g",
                   l->max_gzip_ratio);
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *next = comma ? comma + 1 : p + n;
    while (n > 0 && (*p == ' ' || *p == '\t')) {
      p++;
      n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    char one[PATH_MAX];
    if (n >= sizeof one)
      return pd_errf(err, errlen, -EINVAL, "data_roots: a folder name is too long");
    if (n > 0) {
      restricted = true;
      memcpy(one, p, n);
      one[n] = '\0';
      struct stat st;
      if (nroots == PD_DATA_MAX_ROOTS)
        return pd_errf(err, errlen, -EINVAL, "data_roots: more than %d folders", PD_DATA_MAX_ROOTS);
      if (!realpath(one, roots[nroots])) {
        /* a folder that is not there (yet) lets nothing in; noted for a warning */
        if (errno != ENOENT)
          return pd_errf(err, errlen, -EINVAL, "data_roots: '%s': %s", one, strerror(errno));
        if (noted + 1 < errlen)
          noted += (size_t)snprintf(err + noted, errlen - noted, "%s'%s'",
                                    noted ? ", " : "data_roots: no such folder (skipped): ", one);
      } else if (stat(roots[nroots], &st) != 0 || !S_ISDIR(st.st_mode)) {
        return pd_errf(err, errlen, -EINVAL, "data_roots: '%s' is not a folder", one);
      } else {
        size_t len = strlen(roots[nroots]);
        if (len > 1 && roots[nroots][len - 1] == '/')
          roots[nroots][len - 1] = '\0';
        nroots++;
      }
    }
    p = next;
  }
  limits.restricted = restricted;
  limits.nroots = nroots;
  memcpy(limits.roots, roots, sizeof roots);
  limits.max_bytes = l->max_bytes;
  limits.max_inflated = l->max_inflated_bytes;
  limits.max_ratio = l->max_gzip_ratio;
  return 0;
}

/* Whether the resolved path `real` is one of the roots or under one. */
static bool under_roots(const char *real) {
  for (int i = 0; i < limits.nroots; i++) {
    const char *root = limits.roots[i];
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0 ||
        (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0')))
      return true;
  }
  return false;
}

/* The same message for a missing file and one outside the roots, so that a
 * client cannot probe which paths exist. */
static int outside_roots(const char *path, char *err, size_t errlen) {
  return pd_errf(err, errlen, -EACCES,
                 "%s: no such file under data_roots (data files must be under the folders of "
                 "the data_roots setting)",
                 path);
}

int pd_data_open(const char *path, int *fd_out, uint64_t *size, char *err, size_t errlen) {
  *fd_out = -1;
  *size = 0;
  struct stat st;
  int fd = -1, rc;
  if (limits.restricted) {
    /* Resolve first, so that nothing outside the roots is even opened
     * (opening a device can have effects), then check again what was
     * opened (the path may have changed in between). */
    char real[PATH_MAX];
    if (!realpath(path, real) || !under_roots(real))
      return outside_roots(path, err, errlen);
    if (stat(real, &st) == 0 && !S_ISREG(st.st_mode))
      return not_regular(path, st.st_mode, err, errlen);
    if ((rc = open_regular(real, &fd, &st, err, errlen)) != 0)
      return rc == -ENOENT ? outside_roots(path, err, errlen)
                           : pd_errf(err, errlen, rc, "%s: %s", path, strerror(-rc));
    char link[64], opened[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, opened, sizeof opened - 1);
    if (n > 0) {
      opened[n] = '\0';
      if (!under_roots(opened)) {
        close(fd);
        return outside_roots(path, err, errlen);
      }
    }
  } else if ((rc = open_regular(path, &fd, &st, err, errlen)) != 0) {
    return rc;
  }
  if ((uint64_t)st.st_size > limits.max_bytes) {
    close(fd);
    return pd_errf(err, errlen, -EFBIG,
                   "%s: %llu bytes, more than the %llu this daemon reads (data_max_bytes)", path,
                   (unsigned long long)st.st_size, (unsigned long long)limits.max_bytes);
  }
  *fd_out = fd;
  *size = (uint64_t)st.st_size;
  return 0;
}

int pd__read_data(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen) {
  *data = NULL;
  *len = 0;
  int fd;
  uint64_t size;
  int rc = pd_data_open(path, &fd, &size, err, errlen);
  if (rc != 0)
    return rc;
  rc = read_fd(fd, path, (size_t)size, data, err, errlen);
  if (rc == 0)
    *len = (size_t)size;
  close(fd);
  return rc;
}

/* ---- a byte stream over a plain or gzipped file */

/* Makes sure in[in_pos, in_len) is non-empty unless the file is at its end. */
static int stream_fill(pd__stream *s, char *err, size_t errlen) {
  if (s->in_pos < s->in_len || s->fd < 0)
    return 0;
  for (;;) {
    ssize_t n = pread(s->fd, s->fd_buf, PEEK_CHUNK, (off_t)s->fd_offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pd_errf(err, errlen, -errno, "%s: read: %s", s->path, strerror(errno));
    s->in = s->fd_buf;
    s->in_len = (size_t)n;
    s->in_pos = 0;
    s->fd_offset += (uint64_t)n;
    return 0;
  }
}

int pd__stream_open(pd__stream *s, const char *path, int fd, const uint8_t *data, size_t len,
                    char *err, size_t errlen) {
  memset(s, 0, sizeof(*s));
  s->path = path;
  s->fd = fd;
  s->in = data;
  s->in_len = len;
  if (fd >= 0)
    s->fd_buf = pd_xmalloc(PEEK_CHUNK);
  int rc = stream_fill(s, err, errlen);
  if (rc != 0)
    return rc;
  s->gz = s->in_len - s->in_pos >= 2 && s->in[s->in_pos] == 0x1f && s->in[s->in_pos + 1] == 0x8b;
  if (!s->gz)
    return 0;
  if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
    return pd_errf(err, errlen, -ENOMEM, "%s: inflateInit2 failed", path);
  s->z_live = true;
  s->out = pd_xmalloc(fd >= 0 ? PEEK_CHUNK : INFLATE_CHUNK);
  return 0;
}

void pd__stream_close(pd__stream *s) {
  if (s->z_live)
    inflateEnd(&s->z);
  free(s->out);
  free(s->fd_buf);
}

int pd__stream_peek(pd__stream *s, const uint8_t **p, size_t *n, char *err, size_t errlen) {
  int rc;
  *n = 0;
  if (!s->gz) {
    if ((rc = stream_fill(s, err, errlen)) != 0)
      return rc;
    *p = s->in + s->in_pos;
    *n = s->in_len - s->in_pos;
    return 0;
  }
  size_t out_cap = s->fd >= 0 ? PEEK_CHUNK : INFLATE_CHUNK;
  while (s->out_pos == s->out_len && !s->z_done) {
    if ((rc = stream_fill(s, err, errlen)) != 0)
      return rc;
    size_t avail = s->in_len - s->in_pos;
    s->z.next_in = s->in + s->in_pos;
    s->z.avail_in = (uInt)PD_MIN(avail, (size_t)1 << 30);
    s->z.next_out = s->out;
    s->z.avail_out = (uInt)out_cap;
    uInt offered = s->z.avail_in;
    int ret = inflate(&s->z, Z_NO_FLUSH);
    s->in_pos += offered - s->z.avail_in;
    s->deflated += offered - s->z.avail_in;
    s->out_pos = 0;
    s->out_len = out_cap - s->z.avail_out;
    s->inflated += s->out_len;
    if (s->inflated > limits.max_inflated)
      return pd_errf(err, errlen, -EFBIG,
                     "%s: the gzip data inflates to more than the %llu bytes this daemon reads "
                     "(data_max_inflated_bytes)",
                     s->path, (unsigned long long)limits.max_inflated);
    if (s->inflated > PD_DATA_GZIP_RATIO_AFTER &&
        (double)s->inflated > limits.max_ratio * (double)(s->deflated ? s->deflated : 1))
      return pd_errf(err, errlen, -EFBIG,
                     "%s: the gzip data inflates more than %g times (data_max_gzip_ratio): "
                     "refused as a likely decompression bomb",
                     s->path, limits.max_ratio);
    if (ret == Z_STREAM_END) {
      /* Another gzip member may follow (as `cat a.gz b.gz` makes). */
      if ((rc = stream_fill(s, err, errlen)) != 0)
        return rc;
      if (s->in_len - s->in_pos >= 2 && s->in[s->in_pos] == 0x1f && s->in[s->in_pos + 1] == 0x8b)
        inflateReset(&s->z);
      else
        s->z_done = true; /* anything else after the stream is ignored, as gzip does */
    } else if (ret == Z_BUF_ERROR && avail == 0) {
      s->gz_truncated = true; /* the input ended before the stream did */
      s->z_done = true;
    } else if (ret != Z_OK) {
      return pd_errf(err, errlen, -PD_EFORMAT, "%s: corrupt gzip data: %s", s->path,
                     s->z.msg ? s->z.msg : zError(ret));
    }
  }
  *p = s->out + s->out_pos;
  *n = s->out_len - s->out_pos;
  return 0;
}

void pd__stream_consume(pd__stream *s, size_t n) {
  if (s->gz)
    s->out_pos += n;
  else
    s->in_pos += n;
}

int pd__stream_read(pd__stream *s, uint8_t *dst, size_t want, size_t *got, char *err,
                    size_t errlen) {
  *got = 0;
  while (*got < want) {
    const uint8_t *p;
    size_t n;
    int rc = pd__stream_peek(s, &p, &n, err, errlen);
    if (rc != 0)
      return rc;
    if (n == 0)
      break;
    n = PD_MIN(n, want - *got);
    memcpy(dst + *got, p, n);
    pd__stream_consume(s, n);
    *got += n;
  }
  return 0;
}

int pd__read_content(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen) {
  uint8_t *raw = NULL, *content = NULL;
  size_t raw_len = 0, used = 0;
  pd__stream s;
  bool stream_live = false;
  *data = NULL;
  *len = 0;
  int rc = pd__read_data(path, &raw, &raw_len, err, errlen);
  if (rc != 0)
    return rc;
  if (raw_len < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
    *data = raw; /* plain: the file is the content */
    *len = raw_len;
    return 0;
  }
  rc = pd__stream_open(&s, path, -1, raw, raw_len, err, errlen);
  stream_live = true;
  if (rc != 0)
    goto done;
  /* The trailer's ISIZE (the last member's size mod 2^32) is a good first
   * guess; the buffer grows when it is wrong. */
  const uint8_t *t = raw + raw_len - 4;
  size_t isize = raw_len >= 18
                     ? (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24
                     : 0;
  /* deflate inflates at most 1032:1, so a larger ISIZE is a lie: a 33-byte
   * file claiming 4 GiB made this reserve 4 GiB before inflating a byte
   * (found by fuzz_csv) */
  if (isize / 1032 > raw_len)
    isize = 0;
  size_t cap = PD_MAX(isize + 1, 2 * raw_len);
  cap = (size_t)PD_MIN((uint64_t)cap, limits.max_inflated + 1); /* ISIZE may lie */
  content = pd_xmalloc(cap);
  for (;;) {
    const uint8_t *p;
    size_t n;
    if ((rc = pd__stream_peek(&s, &p, &n, err, errlen)) != 0)
      goto done;
    if (n == 0)
      break;
    if (used + n > cap) {
      cap = PD_MAX(2 * cap, used + n);
      content = pd_xrealloc(content, cap);
    }
    memcpy(content + used, p, n);
    used += n;
    pd__stream_consume(&s, n);
  }
  if (s.gz_truncated) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: truncated gzip stream (no end marker)", path);
    goto done;
  }
  *data = content;
  *len = used;
  content = NULL;
done:
  free(content);
  if (stream_live)
    pd__stream_close(&s);
  free(raw);
  return rc;
}

int pd__read_first_line(const char *path, char **line, size_t *len, char *err, size_t errlen) {
  *line = NULL;
  *len = 0;
  int fd;
  uint64_t size;
  int rc = pd_data_open(path, &fd, &size, err, errlen);
  if (rc != 0)
    return rc;
  pd__stream s;
  char *buf = NULL;
  size_t used = 0, cap = 0;
  rc = pd__stream_open(&s, path, fd, NULL, 0, err, errlen);
  for (bool eol = false; rc == 0 && !eol;) {
    const uint8_t *p;
    size_t n;
    if ((rc = pd__stream_peek(&s, &p, &n, err, errlen)) != 0 || n == 0)
      break;
    const uint8_t *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    eol = nl != NULL;
    if (used + take + 1 > cap) {
      cap = PD_MAX(2 * cap, used + take + 1);
      buf = pd_xrealloc(buf, cap);
    }
    memcpy(buf + used, p, take);
    used += take;
    pd__stream_consume(&s, take);
  }
  if (rc == 0) {
    *line = buf ? buf : pd_xstrdup("");
    (*line)[used] = '\0';
    *len = used;
    buf = NULL;
  }
  free(buf);
  pd__stream_close(&s);
  close(fd);
  return rc;
}
