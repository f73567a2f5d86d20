/* Unit tests of the dataset reader: IDX files (plain and gzipped) written to
 * a temporary folder, error messages, io_uring whole-file reads, row
 * partitioning, and the installed Fashion-MNIST files. */
#include "pando/dataset.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define ROWS 10
#define COLS 12 /* 3 x 4 images */

static char tmp_dir[64];

static const char *tmp_path(const char *name) {
  static char paths[8][256];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 256, "%s/%s", tmp_dir, name);
  return p;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Writes `len` bytes to `path`, gzipped (possibly as `members` gzip members)
 * or plain. */
static int write_bytes(const char *path, const uint8_t *data, size_t len, int gzip, int members) {
  if (!gzip) {
    FILE *f = fopen(path, "wb");
    if (!f)
      return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
  }
  size_t done = 0;
  for (int m = 0; m < members; m++) {
    gzFile f = gzopen(path, m == 0 ? "wb" : "ab");
    if (!f)
      return -1;
    size_t part = m + 1 == members ? len - done : len / (size_t)members;
    if (part && gzwrite(f, data + done, (unsigned)part) != (int)part) {
      gzclose(f);
      return -1;
    }
    done += part;
    if (gzclose(f) != Z_OK)
      return -1;
  }
  return 0;
}

/* An IDX file: magic, dims, then `data_len` data bytes from `data`. */
static int write_idx(const char *path, uint32_t magic, const uint32_t *dims, int ndim,
                     const uint8_t *data, size_t data_len, int gzip) {
  size_t len = 4 + 4 * (size_t)ndim + data_len;
  uint8_t *buf = pd_xmalloc(len);
  put_be32(buf, magic);
  for (int i = 0; i < ndim; i++)
    put_be32(buf + 4 + 4 * i, dims[i]);
  memcpy(buf + 4 + 4 * ndim, data, data_len);
  int rc = write_bytes(path, buf, len, gzip, 1);
  free(buf);
  return rc;
}

static uint8_t feature_byte(int row, int col) { return (uint8_t)((row * COLS + col) * 37 + 5); }
static uint8_t label_byte(int row) { return (uint8_t)((row * 3) % 10); }

/* images.idx / labels.idx (plain) and images.gz / labels.gz, ROWS rows. */
static int write_fixture(const char *images, const char *labels, int gzip, uint32_t label_rows) {
  uint8_t features[ROWS * COLS], label_data[ROWS + 5];
  for (int r = 0; r < ROWS; r++)
    for (int c = 0; c < COLS; c++)
      features[r * COLS + c] = feature_byte(r, c);
  for (uint32_t r = 0; r < label_rows; r++)
    label_data[r] = label_byte((int)r);
  uint32_t image_dims[3] = {ROWS, 3, 4}, label_dims[1] = {label_rows};
  if (write_idx(images, 0x00000803, image_dims, 3, features, sizeof(features), gzip) != 0)
    return -1;
  return write_idx(labels, 0x00000801, label_dims, 1, label_data, label_rows, gzip);
}

static int check_rows(const pd_dataset *ds, uint64_t begin, uint64_t end) {
  if (ds->rows != end - begin || ds->cols != COLS)
    return 0;
  for (uint64_t r = begin; r < end; r++) {
    if (ds->labels[r - begin] != label_byte((int)r))
      return 0;
    for (int c = 0; c < COLS; c++)
      if (ds->features[(r - begin) * COLS + (uint64_t)c] != (float)feature_byte((int)r, c) / 255.0f)
        return 0;
  }
  return 1;
}

static void load_and_check(const char *images, const char *labels) {
  uint64_t ranges[][2] = {{0, UINT64_MAX}, {0, ROWS}, {3, 7}, {9, 10}, {0, 1}, {4, 4}, {10, 10}};
  for (size_t i = 0; i < PD_ARRAY_SIZE(ranges); i++) {
    pd_dataset ds;
    char err[256] = "";
    int rc = pd_dataset_load_idx(images, labels, ranges[i][0], ranges[i][1], &ds, err, sizeof(err));
    if (rc != 0)
      fprintf(stderr, "  %s\n", err);
    CHECK_EQ_INT(rc, 0);
    uint64_t end = ranges[i][1] == UINT64_MAX ? ROWS : ranges[i][1];
    CHECK(check_rows(&ds, ranges[i][0], end));
    pd_dataset_close(&ds);
    CHECK(ds.features == NULL && ds.labels == NULL && ds.rows == 0);
  }
}

static void test_load_plain(void) {
  const char *images = tmp_path("images.idx"), *labels = tmp_path("labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  load_and_check(images, labels);
  uint64_t rows = 0, cols = 0;
  char err[256];
  CHECK_EQ_INT(pd_idx_peek(images, &rows, &cols, err, sizeof(err)), 0);
  CHECK(rows == ROWS && cols == COLS);
  CHECK_EQ_INT(pd_idx_peek(labels, &rows, &cols, err, sizeof(err)), 0);
  CHECK(rows == ROWS && cols == 1);
}

static void test_load_gzip(void) {
  const char *images = tmp_path("images.gz"), *labels = tmp_path("labels.gz");
  CHECK(write_fixture(images, labels, 1, ROWS) == 0);
  load_and_check(images, labels);
  uint64_t rows = 0, cols = 0;
  char err[256];
  CHECK_EQ_INT(pd_idx_peek(images, &rows, &cols, err, sizeof(err)), 0);
  CHECK(rows == ROWS && cols == COLS);
  /* gzip is recognised by its magic bytes, not by the name. */
  const char *images2 = tmp_path("images-gz-no-suffix"), *labels2 = tmp_path("labels.idx");
  CHECK(write_fixture(images2, labels2, 1, ROWS) == 0);
  CHECK(write_fixture(tmp_path("unused.idx"), labels2, 0, ROWS) == 0); /* plain labels */
  load_and_check(images2, labels2);
}

/* `cat a.gz b.gz` is one valid gzip file. */
static void test_load_gzip_members(void) {
  const char *images = tmp_path("members.gz"), *labels = tmp_path("members-labels.gz");
  uint8_t buf[4 + 12 + ROWS * COLS];
  put_be32(buf, 0x00000803);
  put_be32(buf + 4, ROWS);
  put_be32(buf + 8, 3);
  put_be32(buf + 12, 4);
  for (int r = 0; r < ROWS; r++)
    for (int c = 0; c < COLS; c++)
      buf[16 + r * COLS + c] = feature_byte(r, c);
  CHECK(write_bytes(images, buf, sizeof(buf), 1, 3) == 0);
  uint8_t label_buf[8 + ROWS];
  put_be32(label_buf, 0x00000801);
  put_be32(label_buf + 4, ROWS);
  for (int r = 0; r < ROWS; r++)
    label_buf[8 + r] = label_byte(r);
  CHECK(write_bytes(labels, label_buf, sizeof(label_buf), 1, 2) == 0);
  load_and_check(images, labels);
}

/* Loads and expects failure with `code` and a message containing `part1`
 * and `part2`. */
static int expect_error(const char *images, const char *labels, uint64_t begin, uint64_t end,
                        int code, const char *part1, const char *part2) {
  pd_dataset ds;
  char err[512] = "";
  int rc = pd_dataset_load_idx(images, labels, begin, end, &ds, err, sizeof(err));
  if (rc != code || !strstr(err, part1) || !strstr(err, part2)) {
    fprintf(stderr, "  rc %d (%s), message \"%s\"; wanted %d with \"%s\", \"%s\"\n", rc,
            pd_strerror(rc), err, code, part1, part2);
    return 0;
  }
  return ds.rows == 0 && ds.features == NULL && ds.labels == NULL;
}

static void test_error_bad_magic(void) {
  const char *images = tmp_path("bad-magic.idx"), *labels = tmp_path("bm-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  uint8_t data[ROWS * COLS] = {0};
  uint32_t dims[3] = {ROWS, 3, 4};
  CHECK(write_idx(images, 0x12340803, dims, 3, data, sizeof(data), 0) == 0);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images,
                     "not an IDX file (magic 0x12340803)"));
  char err[256];
  uint64_t rows, cols;
  CHECK_EQ_INT(pd_idx_peek(images, &rows, &cols, err, sizeof(err)), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "bad-magic.idx: not an IDX file (magic 0x12340803)");
  /* Gzipped as well. */
  const char *gz = tmp_path("bad-magic.gz");
  CHECK(write_idx(gz, 0x12340803, dims, 3, data, sizeof(data), 1) == 0);
  CHECK(expect_error(gz, labels, 0, UINT64_MAX, -PD_EFORMAT, gz, "not an IDX file"));
  /* A tiny file and a text file. */
  const char *text = tmp_path("text.idx");
  CHECK(write_bytes(text, (const uint8_t *)"hello world\n", 12, 0, 1) == 0);
  CHECK(expect_error(text, labels, 0, UINT64_MAX, -PD_EFORMAT, text, "not an IDX file"));
  CHECK(write_bytes(text, (const uint8_t *)"\0\0", 2, 0, 1) == 0);
  CHECK(expect_error(text, labels, 0, UINT64_MAX, -PD_EFORMAT, text, "not an IDX file"));
  /* An unsupported data type is named. */
  const char *floats = tmp_path("floats.idx");
  CHECK(write_idx(floats, 0x00000D03, dims, 3, data, sizeof(data), 0) == 0);
  CHECK(expect_error(floats, labels, 0, UINT64_MAX, -PD_EFORMAT, floats, "0x0d (float)"));
  /* Labels need one dimension. */
  const char *good = tmp_path("bm-images.idx");
  CHECK(write_fixture(good, labels, 0, ROWS) == 0);
  CHECK(expect_error(labels, good, 0, UINT64_MAX, -PD_EFORMAT, good, "1 dimension"));
}

static void test_error_truncated(void) {
  const char *images = tmp_path("short.idx"), *labels = tmp_path("short-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  uint8_t data[ROWS * COLS] = {0};
  uint32_t dims[3] = {ROWS, 3, 4};
  /* One row of data missing, plain and gzipped. */
  CHECK(write_idx(images, 0x00000803, dims, 3, data, sizeof(data) - COLS, 0) == 0);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images,
                     "truncated: expected 120 bytes of data, got 108"));
  CHECK(expect_error(images, labels, 0, 2, -PD_EFORMAT, images, "truncated"));
  const char *gz = tmp_path("short.gz");
  CHECK(write_idx(gz, 0x00000803, dims, 3, data, sizeof(data) - COLS, 1) == 0);
  CHECK(expect_error(gz, labels, 0, UINT64_MAX, -PD_EFORMAT, gz,
                     "truncated: expected 120 bytes of data, got 108"));
  /* Extra data is an error too. */
  uint8_t more[ROWS * COLS + 3] = {0};
  CHECK(write_idx(images, 0x00000803, dims, 3, more, sizeof(more), 0) == 0);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images,
                     "expected 120 bytes of data, got 123"));
  CHECK(write_idx(gz, 0x00000803, dims, 3, more, sizeof(more), 1) == 0);
  CHECK(expect_error(gz, labels, 0, UINT64_MAX, -PD_EFORMAT, gz,
                     "expected 120 bytes of data, got 123"));
  /* A header cut inside the dimensions. */
  CHECK(write_bytes(images, (const uint8_t *)"\0\0\x08\x03\0\0\0\x0a\0\0", 10, 0, 1) == 0);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images, "truncated IDX header"));
  /* A header claiming far more data than the file could hold is refused
   * before any allocation. */
  uint32_t huge[3] = {4000000000u, 1000, 1000};
  CHECK(write_idx(gz, 0x00000803, huge, 3, data, 10, 1) == 0);
  CHECK(expect_error(gz, labels, 0, UINT64_MAX, -PD_EFORMAT, gz, "truncated"));
}

/* A gzip stream cut short: loading fails, but peek only needs the start. */
static void test_error_truncated_gzip_stream(void) {
  enum { BIG_ROWS = 2000 };
  const char *images = tmp_path("cut.gz"), *labels = tmp_path("cut-labels.idx");
  uint8_t *data = pd_xmalloc(BIG_ROWS * 784);
  uint64_t state = 1;
  for (size_t i = 0; i < BIG_ROWS * 784; i++) { /* poorly compressible */
    state = state * 6364136223846793005ull + 1;
    data[i] = (uint8_t)(state >> 56);
  }
  uint32_t dims[3] = {BIG_ROWS, 28, 28};
  int rc = write_idx(images, 0x00000803, dims, 3, data, BIG_ROWS * 784, 1);
  free(data);
  CHECK(rc == 0);
  uint8_t *labels_data = pd_xcalloc(BIG_ROWS, 1);
  uint32_t label_dims[1] = {BIG_ROWS};
  rc = write_idx(labels, 0x00000801, label_dims, 1, labels_data, BIG_ROWS, 0);
  free(labels_data);
  CHECK(rc == 0);
  struct stat st;
  CHECK(stat(images, &st) == 0);
  CHECK(truncate(images, st.st_size / 2) == 0);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images, "truncated"));
  CHECK(expect_error(images, labels, 0, 10, -PD_EFORMAT, images, "truncated"));
  uint64_t rows = 0, cols = 0;
  char err[256];
  CHECK_EQ_INT(pd_idx_peek(images, &rows, &cols, err, sizeof(err)), 0);
  CHECK(rows == BIG_ROWS && cols == 784);
}

/* A flipped byte inside a gzip stream fails its CRC check. */
static void test_error_corrupt_gzip(void) {
  const char *images = tmp_path("crc.gz"), *labels = tmp_path("crc-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  uint8_t data[ROWS * COLS];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 151 + 7);
  uint32_t dims[3] = {ROWS, 3, 4};
  CHECK(write_idx(images, 0x00000803, dims, 3, data, sizeof(data), 1) == 0);
  struct stat st;
  CHECK(stat(images, &st) == 0);
  FILE *f = fopen(images, "r+b");
  CHECK(f != NULL);
  fseek(f, st.st_size - 8, SEEK_SET); /* the CRC-32 in the trailer */
  int c = fgetc(f);
  fseek(f, st.st_size - 8, SEEK_SET);
  fputc(c ^ 0xff, f);
  fclose(f);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images, "corrupt gzip data"));
}

static void test_error_row_mismatch(void) {
  const char *images = tmp_path("mm-images.idx"), *labels = tmp_path("mm-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS - 1) == 0);
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, "have 10 rows but labels",
                     "have 9"));
  CHECK(expect_error(images, labels, 0, UINT64_MAX, -PD_EFORMAT, images, labels));
}

static void test_error_row_range(void) {
  const char *images = tmp_path("rr-images.gz"), *labels = tmp_path("rr-labels.gz");
  CHECK(write_fixture(images, labels, 1, ROWS) == 0);
  CHECK(expect_error(images, labels, 5, 11, -ERANGE, images, "rows [5, 11) out of range"));
  CHECK(expect_error(images, labels, 7, 3, -ERANGE, images, "out of range"));
  CHECK(expect_error(images, labels, 11, UINT64_MAX, -ERANGE, images, "has 10 rows"));
}

static void test_error_missing_file(void) {
  const char *labels = tmp_path("ms-labels.idx");
  CHECK(write_fixture(tmp_path("ms-images.idx"), labels, 0, ROWS) == 0);
  const char *missing = tmp_path("does-not-exist.gz");
  CHECK(expect_error(missing, labels, 0, UINT64_MAX, -ENOENT, missing, "No such file"));
  CHECK(expect_error(labels, missing, 0, UINT64_MAX, -ENOENT, missing, "No such file"));
  CHECK(expect_error(tmp_dir, labels, 0, UINT64_MAX, -EISDIR, tmp_dir, "not a regular file"));
  uint64_t rows, cols;
  char err[256];
  CHECK_EQ_INT(pd_idx_peek(missing, &rows, &cols, err, sizeof(err)), -ENOENT);
  CHECK_STR_CONTAINS(err, "does-not-exist.gz");
}

static void test_read_file(void) {
  size_t sizes[] = {5 * 1000 * 1000 + 123, 0, 1, (1u << 20), (1u << 20) + 1, 8u << 20,
                    (9u << 20) + 7};
  for (size_t s = 0; s < PD_ARRAY_SIZE(sizes); s++) {
    size_t size = sizes[s];
    uint8_t *data = pd_xmalloc(size);
    uint64_t state = size;
    for (size_t i = 0; i < size; i++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      data[i] = (uint8_t)(state >> 56);
    }
    const char *path = tmp_path("blob.bin");
    CHECK(write_bytes(path, data, size, 0, 1) == 0);
    uint8_t *read_back = NULL;
    size_t len = 1;
    char err[256] = "";
    int rc = pd_read_file(path, &read_back, &len, err, sizeof(err));
    if (rc != 0)
      fprintf(stderr, "  %s\n", err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(len, size);
    CHECK(read_back != NULL);
    CHECK(size == 0 || memcmp(data, read_back, size) == 0);
    free(read_back);
    free(data);
    unlink(path);
  }
  uint8_t *data = (uint8_t *)1;
  size_t len = 1;
  char err[256] = "";
  CHECK_EQ_INT(pd_read_file(tmp_path("nope"), &data, &len, err, sizeof(err)), -ENOENT);
  CHECK(data == NULL && len == 0);
  CHECK_STR_CONTAINS(err, "nope: No such file or directory");
}

static void test_partition(void) {
  uint64_t cases[][2] = {{0, 1}, {0, 3}, {1, 1}, {1, 4}, {10, 3}, {7, 7}, {5, 8},
                         {60000, 7}, {60000, 16}, {1000003, 16}, {10000, 1}};
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    uint64_t rows = cases[i][0];
    uint32_t workers = (uint32_t)cases[i][1];
    uint64_t expected_begin = 0, min = UINT64_MAX, max = 0;
    for (uint32_t rank = 0; rank < workers; rank++) {
      uint64_t begin = 1, end = 0;
      pd_partition_contiguous(rows, workers, rank, &begin, &end);
      CHECK_EQ_INT(begin, expected_begin); /* contiguous and disjoint */
      CHECK(end >= begin);
      expected_begin = end;
      min = PD_MIN(min, end - begin);
      max = PD_MAX(max, end - begin);
    }
    CHECK_EQ_INT(expected_begin, rows); /* covers [0, rows) */
    CHECK(max - min <= 1);
  }
}

static void test_fashion_mnist(void) {
  const char *images = FASHION_DIR "/train-images-idx3-ubyte.gz";
  const char *labels = FASHION_DIR "/train-labels-idx1-ubyte.gz";
  if (access(images, R_OK) != 0 || access(labels, R_OK) != 0) {
    printf("  note: %s not installed, skipping\n", images);
    return;
  }
  uint64_t rows = 0, cols = 0;
  char err[256] = "";
  CHECK_EQ_INT(pd_idx_peek(images, &rows, &cols, err, sizeof(err)), 0);
  CHECK(rows == 60000 && cols == 784);
  CHECK_EQ_INT(pd_idx_peek(labels, &rows, &cols, err, sizeof(err)), 0);
  CHECK(rows == 60000 && cols == 1);
  pd_dataset ds;
  int rc = pd_dataset_load_idx(images, labels, 0, UINT64_MAX, &ds, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "  %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(ds.rows, 60000);
  CHECK_EQ_INT(ds.cols, 784);
  uint64_t per_class[10] = {0};
  for (uint64_t r = 0; r < ds.rows; r++) {
    CHECK(ds.labels[r] <= 9);
    per_class[ds.labels[r]]++;
  }
  for (int c = 0; c < 10; c++)
    CHECK_EQ_INT(per_class[c], 6000);
  float lo = 1, hi = 0;
  for (uint64_t i = 0; i < ds.rows * ds.cols; i++) {
    lo = PD_MIN(lo, ds.features[i]);
    hi = PD_MAX(hi, ds.features[i]);
  }
  CHECK(lo == 0.0f && hi == 1.0f);
  /* A worker's slice holds the same rows. */
  pd_dataset part;
  uint64_t begin, end;
  pd_partition_contiguous(ds.rows, 7, 3, &begin, &end);
  rc = pd_dataset_load_idx(images, labels, begin, end, &part, err, sizeof(err));
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(part.rows, end - begin);
  CHECK(memcmp(part.labels, ds.labels + begin, part.rows) == 0);
  CHECK(memcmp(part.features, ds.features + begin * ds.cols,
               part.rows * ds.cols * sizeof(float)) == 0);
  pd_dataset_close(&part);
  pd_dataset_close(&ds);
}

static void remove_tmp_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp_dir);
}

int main(int argc, char **argv) {
  snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/pando-test-dataset-XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  PD_RUN(test_load_plain);
  PD_RUN(test_load_gzip);
  PD_RUN(test_load_gzip_members);
  PD_RUN(test_error_bad_magic);
  PD_RUN(test_error_truncated);
  PD_RUN(test_error_truncated_gzip_stream);
  PD_RUN(test_error_corrupt_gzip);
  PD_RUN(test_error_row_mismatch);
  PD_RUN(test_error_row_range);
  PD_RUN(test_error_missing_file);
  PD_RUN(test_read_file);
  PD_RUN(test_partition);
  PD_RUN(test_fashion_mnist);
  remove_tmp_dir();
  PD_TEST_DONE();
}
