/* Unit tests of the dataset module: IDX files (plain and gzipped) written to
 * a temporary folder, error messages, io_uring whole-file reads, row
 * partitioning, loading through a job spec, views and gathers of dense and
 * CSR data, and the installed Fashion-MNIST files. */
#include "pando/dataset.h"
#include "pando/fileio.h"
#include "pando/plan.h"

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
                     "not an IDX file (its first 4 bytes are not an IDX magic number"));
  char err[256];
  uint64_t rows, cols;
  CHECK_EQ_INT(pd_idx_peek(images, &rows, &cols, err, sizeof(err)), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "bad-magic.idx: not an IDX file (its first 4 bytes");
  CHECK(strstr(err, "12340803") == NULL); /* the file's bytes are not quoted */
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
  uint64_t cases[][2] = {{0, 1}, {0, 3},     {1, 1},      {1, 4},        {10, 3},   {7, 7},
                         {5, 8}, {60000, 7}, {60000, 16}, {1000003, 16}, {10000, 1}};
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
  CHECK(memcmp(part.features, ds.features + begin * ds.cols, part.rows * ds.cols * sizeof(float)) ==
        0);
  pd_dataset_close(&part);
  pd_dataset_close(&ds);
}

static pd_job_spec idx_spec(const char *images, const char *labels, const char *test_images,
                            const char *test_labels) {
  pd_job_spec spec;
  memset(&spec, 0, sizeof spec);
  snprintf(spec.data.format, sizeof spec.data.format, "idx");
  snprintf(spec.data.train.features, PD_PATH_MAX, "%s", images);
  snprintf(spec.data.train.labels, PD_PATH_MAX, "%s", labels);
  if (test_images) {
    snprintf(spec.data.test.features, PD_PATH_MAX, "%s", test_images);
    snprintf(spec.data.test.labels, PD_PATH_MAX, "%s", test_labels);
  }
  spec.data.normalize = PD_NORMALIZE_NONE;
  return spec;
}

static int spec_load_fails(const pd_job_spec *spec, int test, const char *part) {
  pd_dataset ds;
  char err[1024] = "";
  int rc = pd_dataset_load(spec, test, &ds, err, sizeof err);
  if (rc == 0 || !strstr(err, part)) {
    fprintf(stderr, "  rc %d, message \"%s\"; wanted \"%s\"\n", rc, err, part);
    if (rc == 0)
      pd_dataset_close(&ds);
    return 0;
  }
  return ds.rows == 0 && ds.features == NULL && ds.owned == 0;
}

static void test_load_spec(void) {
  const char *images = tmp_path("spec-images.gz"), *labels = tmp_path("spec-labels.idx");
  CHECK(write_fixture(images, labels, 1, ROWS) == 0);
  pd_job_spec spec = idx_spec(images, labels, NULL, NULL);
  pd_dataset ds;
  char err[1024] = "";
  CHECK_EQ_INT(pd_dataset_load(&spec, 0, &ds, err, sizeof err), 0);
  CHECK(check_rows(&ds, 0, ROWS));
  CHECK(ds.owned == 1 && ds.targets != NULL && ds.row_ptr == NULL);
  for (int r = 0; r < ROWS; r++)
    CHECK(ds.targets[r] == (float)label_byte(r));
  pd_dataset_close(&ds);
  /* No test split: empty. */
  CHECK_EQ_INT(pd_dataset_load(&spec, 1, &ds, err, sizeof err), 0);
  CHECK(ds.rows == 0 && ds.features == NULL && ds.owned == 0);
  uint64_t rows = 1, cols = 1;
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 0 && cols == 0);
  CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == ROWS && cols == COLS);
  /* The same files as test split. */
  spec = idx_spec(images, labels, images, labels);
  CHECK_EQ_INT(pd_dataset_load(&spec, 1, &ds, err, sizeof err), 0);
  CHECK(check_rows(&ds, 0, ROWS));
  pd_dataset_close(&ds);
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == ROWS && cols == COLS);
}

static void test_load_spec_errors(void) {
  const char *images = tmp_path("se-images.idx"), *labels = tmp_path("se-labels.idx");
  const char *short_labels = tmp_path("se-short-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  CHECK(write_fixture(tmp_path("se-unused.idx"), short_labels, 0, ROWS - 1) == 0);
  char want[1024];
  /* Errors name the spec key of the file at fault. */
  pd_job_spec spec = idx_spec(images, short_labels, NULL, NULL);
  snprintf(want, sizeof want,
           "data.train.labels: features (%s) have 10 rows but labels (%s) have 9", images,
           short_labels);
  CHECK(spec_load_fails(&spec, 0, want));
  spec = idx_spec(tmp_path("se-missing"), labels, NULL, NULL);
  CHECK(spec_load_fails(&spec, 0, "data.train.features: "));
  CHECK(spec_load_fails(&spec, 0, "se-missing: No such file or directory"));
  spec = idx_spec(images, labels, images, tmp_path("se-missing"));
  CHECK(spec_load_fails(&spec, 1, "data.test.labels: "));
  CHECK(spec_load_fails(&spec, 1, "se-missing: No such file"));
  /* A test split whose rows have another size. */
  const char *small = tmp_path("se-small.idx");
  uint8_t data[ROWS * 6] = {0};
  uint32_t dims[3] = {ROWS, 2, 3};
  CHECK(write_idx(small, 0x00000803, dims, 3, data, sizeof data, 0) == 0);
  spec = idx_spec(images, labels, small, labels);
  snprintf(want, sizeof want,
           "data.test.features: %s has 6 values per row, but the training data has 12", small);
  CHECK(spec_load_fails(&spec, 1, want));
  uint64_t rows, cols;
  char err[1024];
  CHECK(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, want);
  /* An unknown format. */
  spec = idx_spec(images, labels, NULL, NULL);
  snprintf(spec.data.format, sizeof spec.data.format, "xml");
  CHECK(spec_load_fails(&spec, 0, "data.format: unknown format 'xml'"));
}

/* IDX bytes are scaled by 1/255 first, then min-max normalised per feature
 * with the training split's statistics. */
static void test_load_spec_normalized(void) {
  const char *images = tmp_path("nm-images.idx"), *labels = tmp_path("nm-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  pd_job_spec spec = idx_spec(images, labels, images, labels);
  spec.data.normalize = PD_NORMALIZE_MINMAX;
  for (int test = 0; test <= 1; test++) {
    pd_dataset ds;
    char err[512] = "";
    CHECK_EQ_INT(pd_dataset_load(&spec, test, &ds, err, sizeof err), 0);
    for (int c = 0; c < COLS; c++) {
      float lo = 1, hi = 0;
      for (int r = 0; r < ROWS; r++) {
        lo = PD_MIN(lo, feature_byte(r, c) / 255.0f);
        hi = PD_MAX(hi, feature_byte(r, c) / 255.0f);
      }
      for (int r = 0; r < ROWS; r++)
        CHECK_NEAR(ds.features[r * COLS + c], (feature_byte(r, c) / 255.0f - lo) / (hi - lo), 1e-6);
    }
    pd_dataset_close(&ds);
  }
}

/* A CSR dataset of 5 rows over 6 features (arrays not owned). */
static uint64_t csr_row_ptr[] = {0, 2, 2, 5, 6, 8};
static uint32_t csr_col_idx[] = {0, 5, 1, 2, 3, 4, 0, 1};
static float csr_values[] = {1, 2, 3, 4, 5, 6, 7, 8};
static float csr_targets[] = {0, 1, 2, 3, 4};
static uint8_t csr_labels[] = {0, 1, 2, 3, 4};

static pd_dataset csr_fixture(void) {
  pd_dataset ds = {.rows = 5,
                   .cols = 6,
                   .row_ptr = csr_row_ptr,
                   .col_idx = csr_col_idx,
                   .values = csr_values,
                   .labels = csr_labels,
                   .targets = csr_targets};
  return ds;
}

/* Row `r` of CSR `a` equals row `s` of CSR `b`. */
static int same_csr_row(const pd_dataset *a, uint64_t r, const pd_dataset *b, uint64_t s) {
  uint64_t n = a->row_ptr[r + 1] - a->row_ptr[r];
  if (n != b->row_ptr[s + 1] - b->row_ptr[s] || a->targets[r] != b->targets[s] ||
      a->labels[r] != b->labels[s])
    return 0;
  return memcmp(a->col_idx + a->row_ptr[r], b->col_idx + b->row_ptr[s], n * 4) == 0 &&
         memcmp(a->values + a->row_ptr[r], b->values + b->row_ptr[s], n * 4) == 0;
}

static void test_view(void) {
  const char *images = tmp_path("view-images.idx"), *labels = tmp_path("view-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  pd_dataset ds;
  char err[256];
  CHECK_EQ_INT(pd_dataset_load_idx(images, labels, 0, UINT64_MAX, &ds, err, sizeof err), 0);
  pd_dataset view = pd_dataset_view(&ds, 3, 7);
  CHECK(view.owned == 0 && view.rows == 4 && view.cols == COLS);
  CHECK(view.features == ds.features + 3 * COLS && view.labels == ds.labels + 3 &&
        view.targets == ds.targets + 3);
  CHECK(check_rows(&view, 3, 7));
  pd_dataset inner = pd_dataset_view(&view, 1, 2); /* a view of a view */
  CHECK(check_rows(&inner, 4, 5));
  pd_dataset empty = pd_dataset_view(&ds, ROWS, ROWS);
  CHECK(empty.rows == 0);
  pd_dataset_close(&view); /* frees nothing */
  CHECK(view.features == NULL);
  CHECK(check_rows(&ds, 0, ROWS));
  pd_dataset_close(&ds);

  pd_dataset csr = csr_fixture();
  pd_dataset cv = pd_dataset_view(&csr, 2, 5);
  CHECK(cv.rows == 3 && cv.cols == 6 && cv.row_ptr == csr_row_ptr + 2 && cv.row_ptr[0] == 2);
  CHECK(cv.col_idx == csr_col_idx && cv.features == NULL);
  for (uint64_t r = 0; r < 3; r++)
    CHECK(same_csr_row(&cv, r, &csr, r + 2));
  pd_dataset_close(&cv);
}

static void test_gather_dense(void) {
  const char *images = tmp_path("gather-images.gz"), *labels = tmp_path("gather-labels.gz");
  CHECK(write_fixture(images, labels, 1, ROWS) == 0);
  pd_dataset ds, batch = {0};
  char err[256];
  CHECK_EQ_INT(pd_dataset_load_idx(images, labels, 0, UINT64_MAX, &ds, err, sizeof err), 0);
  const uint64_t index[] = {3, 0, 3, 9, 5};
  pd_dataset_gather(&ds, index, 5, &batch);
  CHECK(batch.owned == 1 && batch.rows == 5 && batch.cols == COLS);
  for (int i = 0; i < 5; i++) {
    pd_dataset one = pd_dataset_view(&batch, (uint64_t)i, (uint64_t)i + 1);
    CHECK(check_rows(&one, index[i], index[i] + 1));
    CHECK(batch.targets[i] == (float)label_byte((int)index[i]));
  }
  /* The next batch, no larger, reuses the arrays. */
  float *features = batch.features;
  uint8_t *batch_labels = batch.labels;
  float *targets = batch.targets;
  const uint64_t index2[] = {8, 1};
  pd_dataset_gather(&ds, index2, 2, &batch);
  CHECK(batch.features == features && batch.labels == batch_labels && batch.targets == targets);
  CHECK(batch.rows == 2);
  pd_dataset two = pd_dataset_view(&batch, 1, 2);
  CHECK(check_rows(&two, 1, 2));
  pd_dataset_gather(&ds, index, 5, &batch);
  CHECK(batch.features == features);
  /* A larger one, and from a view. */
  pd_dataset view = pd_dataset_view(&ds, 4, 10);
  const uint64_t all[] = {5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5};
  pd_dataset_gather(&view, all, 12, &batch);
  CHECK(batch.rows == 12);
  for (int i = 0; i < 12; i++) {
    pd_dataset one = pd_dataset_view(&batch, (uint64_t)i, (uint64_t)i + 1);
    CHECK(check_rows(&one, 4 + all[i], 5 + all[i]));
  }
  /* Gathering into a view's struct does not touch the viewed arrays. */
  pd_dataset into = pd_dataset_view(&ds, 0, 2);
  pd_dataset_gather(&ds, index2, 2, &into);
  CHECK(into.owned == 1 && into.features != ds.features);
  CHECK(check_rows(&ds, 0, ROWS));
  pd_dataset_close(&into);
  pd_dataset_close(&batch);
  pd_dataset_close(&ds);
}

static void test_gather_csr(void) {
  pd_dataset csr = csr_fixture(), batch = {0};
  const uint64_t index[] = {4, 1, 2, 2, 0};
  pd_dataset_gather(&csr, index, 5, &batch);
  CHECK(batch.owned == 1 && batch.rows == 5 && batch.cols == 6 && batch.features == NULL);
  CHECK(batch.row_ptr[0] == 0 && batch.row_ptr[5] == 2 + 0 + 3 + 3 + 2);
  for (uint64_t i = 0; i < 5; i++)
    CHECK(same_csr_row(&batch, i, &csr, index[i]));
  uint64_t *row_ptr = batch.row_ptr;
  uint32_t *col_idx = batch.col_idx;
  float *values = batch.values;
  const uint64_t index2[] = {3, 0};
  pd_dataset_gather(&csr, index2, 2, &batch);
  CHECK(batch.row_ptr == row_ptr && batch.col_idx == col_idx && batch.values == values);
  CHECK(batch.rows == 2 && batch.row_ptr[2] == 3);
  CHECK(same_csr_row(&batch, 0, &csr, 3) && same_csr_row(&batch, 1, &csr, 0));
  /* From a view whose row_ptr does not start at 0. */
  pd_dataset view = pd_dataset_view(&csr, 2, 5);
  const uint64_t index3[] = {2, 0, 1};
  pd_dataset_gather(&view, index3, 3, &batch);
  for (uint64_t i = 0; i < 3; i++)
    CHECK(same_csr_row(&batch, i, &csr, 2 + index3[i]));
  /* An empty batch. */
  pd_dataset_gather(&csr, NULL, 0, &batch);
  CHECK(batch.rows == 0 && batch.row_ptr[0] == 0);
  /* Dense after sparse into the same struct: the CSR arrays go. */
  const char *images = tmp_path("switch-images.idx"), *labels = tmp_path("switch-labels.idx");
  CHECK(write_fixture(images, labels, 0, ROWS) == 0);
  pd_dataset dense;
  char err[256];
  CHECK_EQ_INT(pd_dataset_load_idx(images, labels, 0, UINT64_MAX, &dense, err, sizeof err), 0);
  pd_dataset_gather(&dense, index, 5, &batch);
  CHECK(batch.row_ptr == NULL && batch.col_idx == NULL && batch.values == NULL);
  CHECK(batch.features != NULL && batch.rows == 5);
  pd_dataset_gather(&csr, index, 5, &batch);
  CHECK(batch.features == NULL && batch.row_ptr != NULL);
  /* Without labels the batch has none. */
  pd_dataset no_labels = csr;
  no_labels.labels = NULL;
  pd_dataset_gather(&no_labels, index, 2, &batch);
  CHECK(batch.labels == NULL && batch.targets[0] == 4);
  pd_dataset_close(&dense);
  pd_dataset_close(&batch);
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
  PD_RUN(test_load_spec);
  PD_RUN(test_load_spec_errors);
  PD_RUN(test_load_spec_normalized);
  PD_RUN(test_view);
  PD_RUN(test_gather_dense);
  PD_RUN(test_gather_csr);
  PD_RUN(test_fashion_mnist);
  remove_tmp_dir();
  PD_TEST_DONE();
}
