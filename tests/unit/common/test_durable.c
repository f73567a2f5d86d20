/* Unit tests of durable files (common/src/base/durable.c): a write replaces
 * the file whole, a failed one leaves the old contents and no temporary
 * file, directories are made with their parents, reads refuse files over
 * their limit, and the CRC-32 is zlib's (the check value of "123456789"). */
#include "pando/durable.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../test.h"
#include "pando/error.h"

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n;
}

static void test_crc32_check_value(void) {
  CHECK_EQ_INT(pd_crc32(0, "123456789", 9), 0xCBF43926u);
  /* continuing a CRC over pieces gives the CRC of the whole */
  CHECK_EQ_INT(pd_crc32(pd_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* Pieces are concatenated; a second write replaces the file; nothing else
 * stays in the directory. */
static void test_write_replaces_whole_file(void) {
  char *dir = pd_test_tmpdir("pando-durable-test"), err[512] = "", path[1100];
  CHECK(dir != NULL);
  pd_durable_piece two[2] = {{"hello ", 6}, {"world", 5}};
  CHECK_EQ_INT(pd_durable_write(dir, "f", two, 2, err, sizeof err), 0);
  snprintf(path, sizeof path, "%s/f", dir);
  char *data;
  size_t bytes;
  CHECK_EQ_INT(pd_file_read_all(path, 100, &data, &bytes, err, sizeof err), 0);
  CHECK_EQ_INT(bytes, 11);
  CHECK(strcmp(data, "hello world") == 0);
  free(data);
  pd_durable_piece one = {"new", 3};
  CHECK_EQ_INT(pd_durable_write(dir, "f", &one, 1, err, sizeof err), 0);
  CHECK_EQ_INT(pd_file_read_all(path, 100, &data, &bytes, err, sizeof err), 0);
  CHECK(bytes == 3 && strcmp(data, "new") == 0);
  free(data);
  CHECK_EQ_INT(count_entries(dir), 1);
  /* a file over the read limit is refused, naming it */
  CHECK_EQ_INT(pd_file_read_all(path, 2, &data, &bytes, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, path);
  CHECK(data == NULL);
  pd_test_rmtree(dir);
  free(dir);
}

/* A write into a missing directory names it; a write that fails half way
 * (the file size limit: EFBIG, as ENOSPC would) leaves the old contents and
 * no temporary file. Runs in a child process for the limit. */
static int write_over_limit(const char *dir) {
  char err[512] = "", path[1100];
  pd_durable_piece old = {"xxxxxxxxxx", 10}, big = {"yyyyyyyyyy", 10};
  if (pd_durable_write(dir, "f", &old, 1, err, sizeof err) != 0)
    return 1;
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = {4, 4};
  setrlimit(RLIMIT_FSIZE, &limit);
  int rc = pd_durable_write(dir, "f", &big, 1, err, sizeof err);
  if (rc != -EFBIG || !strstr(err, "File too large"))
    return 2;
  snprintf(path, sizeof path, "%s/f", dir);
  char *data;
  size_t bytes;
  if (pd_file_read_all(path, 100, &data, &bytes, err, sizeof err) != 0)
    return 3;
  rc = bytes == 10 && memcmp(data, "xxxxxxxxxx", 10) == 0 ? 0 : 4;
  free(data);
  return rc == 0 && count_entries(dir) == 1 ? 0 : 5;
}

static void test_failed_write_keeps_old(void) {
  char *dir = pd_test_tmpdir("pando-durable-test"), err[512] = "", sub[1100];
  CHECK(dir != NULL);
  snprintf(sub, sizeof sub, "%s/gone", dir);
  pd_durable_piece one = {"x", 1};
  CHECK_EQ_INT(pd_durable_write(sub, "f", &one, 1, err, sizeof err), -ENOENT);
  CHECK_STR_CONTAINS(err, sub);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0)
    _exit(write_over_limit(dir));
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
  pd_test_rmtree(dir);
  free(dir);
}

static void test_mkdirs_and_remove(void) {
  char *dir = pd_test_tmpdir("pando-durable-test"), err[512] = "", deep[1100], file[1200];
  CHECK(dir != NULL);
  snprintf(deep, sizeof deep, "%s/a/b/c", dir);
  CHECK_EQ_INT(pd_durable_mkdirs(deep, err, sizeof err), 0);
  CHECK_EQ_INT(pd_durable_mkdirs(deep, err, sizeof err), 0); /* exists: fine */
  pd_durable_piece one = {"x", 1};
  CHECK_EQ_INT(pd_durable_write(deep, "f", &one, 1, err, sizeof err), 0);
  snprintf(file, sizeof file, "%s/f", deep);
  CHECK_EQ_INT(pd_durable_mkdirs(file, err, sizeof err), -ENOTDIR);
  CHECK_STR_CONTAINS(err, "not a directory");
  CHECK_EQ_INT(pd_durable_remove_dir(deep), 0);
  struct stat st;
  CHECK(stat(deep, &st) != 0 && errno == ENOENT);
  CHECK_EQ_INT(pd_durable_remove_dir(deep), 0); /* already gone */
  pd_test_rmtree(dir);
  free(dir);
}

int main(int argc, char **argv) {
  PD_RUN(test_crc32_check_value);
  PD_RUN(test_write_replaces_whole_file);
  PD_RUN(test_failed_write_keeps_old);
  PD_RUN(test_mkdirs_and_remove);
  PD_TEST_DONE();
}
