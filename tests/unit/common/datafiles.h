/* Helpers of the dataset reader tests: a temporary folder, files written
 * plain or gzipped, and job specs that point at them. */
#ifndef PANDO_TEST_DATAFILES_H
#define PANDO_TEST_DATAFILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pando/dataset.h"
#include "pando/spec.h"

static char tmp_dir[64];

/* Makes the temporary folder; returns 0 or -1. */
static inline int tmp_dir_make(const char *name) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/pando-test-%s-XXXXXX", name);
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return -1;
  }
  return 0;
}

static inline void tmp_dir_remove(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp_dir);
}

/* The path of `name` in the temporary folder (one of 8 rotating buffers). */
static inline const char *tmp_path(const char *name) {
  static char paths[8][256];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 256, "%s/%s", tmp_dir, name);
  return p;
}

/* Writes `len` bytes to `path`, gzipped or plain; returns 0 or -1. */
static inline int write_file(const char *path, const void *data, size_t len, int gzip) {
  if (gzip) {
    gzFile f = gzopen(path, "wb");
    if (!f)
      return -1;
    int ok = len == 0 || gzwrite(f, data, (unsigned)len) == (int)len;
    return gzclose(f) == Z_OK && ok ? 0 : -1;
  }
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t n = fwrite(data, 1, len, f);
  return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Writes the string `text` to the temporary file `name`; returns its path,
 * or NULL. */
static inline const char *write_text(const char *name, const char *text, int gzip) {
  const char *path = tmp_path(name);
  return write_file(path, text, strlen(text), gzip) == 0 ? path : NULL;
}

/* A job spec whose data section reads `format` from these files (NULL: none). */
static inline pd_job_spec data_spec(const char *format, const char *train, const char *test) {
  pd_job_spec spec;
  memset(&spec, 0, sizeof spec);
  snprintf(spec.data.format, sizeof spec.data.format, "%s", format);
  if (train)
    snprintf(spec.data.train.features, sizeof spec.data.train.features, "%s", train);
  if (test)
    snprintf(spec.data.test.features, sizeof spec.data.test.features, "%s", test);
  spec.data.partition = PD_PARTITION_DISJOINT_CONTIGUOUS;
  spec.data.normalize = PD_NORMALIZE_NONE;
  snprintf(spec.data.label_column, sizeof spec.data.label_column, "0");
  return spec;
}

/* Loads split `test` of `spec` and expects failure with a message containing
 * `part` (and the error code `code` unless it is 0). Returns 1 when so. */
/* Whether loading (and peeking) the training split of `spec` fails with a
 * message that does not contain `secret` (text of the file: messages must
 * never quote a file's contents). */
static inline int load_fails_quiet(const pd_job_spec *spec, const char *secret) {
  pd_dataset ds;
  char err[1024] = "", peek_err[1024] = "";
  uint64_t rows, cols;
  int rc = pd_dataset_load(spec, 0, &ds, err, sizeof err);
  int peek_rc = pd_dataset_peek(spec, 0, &rows, &cols, peek_err, sizeof peek_err);
  if (rc == 0)
    pd_dataset_close(&ds);
  if (rc == 0 || peek_rc == 0 || strstr(err, secret) || strstr(peek_err, secret)) {
    fprintf(stderr, "  rc %d \"%s\", peek rc %d \"%s\": must fail without quoting \"%s\"\n", rc,
            err, peek_rc, peek_err, secret);
    return 0;
  }
  return 1;
}

static inline int load_fails(const pd_job_spec *spec, int test, int code, const char *part) {
  pd_dataset ds;
  char err[1024] = "";
  memset(&ds, 0xab, sizeof ds);
  int rc = pd_dataset_load(spec, test, &ds, err, sizeof err);
  int zeroed = ds.rows == 0 && ds.features == NULL && ds.row_ptr == NULL && ds.targets == NULL &&
               ds.labels == NULL && ds.owned == 0;
  if (rc == 0 || (code && rc != code) || !strstr(err, part) || !zeroed) {
    fprintf(stderr, "  rc %d, message \"%s\"; wanted %d with \"%s\"%s\n", rc, err, code, part,
            zeroed ? "" : " and a zeroed dataset");
    if (rc == 0)
      pd_dataset_close(&ds);
    return 0;
  }
  return 1;
}

#endif
