/* Unit tests of the CSV reader (data.format csv): exact values of small files
 * written by the test, plain and gzipped, header or not, the label column by
 * name and by index, every error message, peeks, normalisation, and the
 * number scanner against strtof(). */
#include "pando/dataset.h"

#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../test.h"
#include "datafiles.h"
#include "pando/error.h"
#include "pando/fileio.h"
#include "pando/util.h"

/* Four columns; the label is the third. */
static const char people[] = "age,income,label,height\n"
                             "1.5,2,0,3\n"
                             "-4e2, 0.25 ,1,  7\r\n"
                             "0,-0.125,2,1e-3\n"
                             "\n"
                             "  \n";
static const float people_features[3][3] = {{1.5f, 2, 3}, {-400, 0.25f, 7}, {0, -0.125f, 1e-3f}};
static const float people_labels[3] = {0, 1, 2};

static pd_job_spec csv_spec(const char *train, const char *test, int header, const char *label) {
  pd_job_spec spec = data_spec("csv", train, test);
  spec.data.header = header;
  snprintf(spec.data.label_column, sizeof spec.data.label_column, "%s", label);
  return spec;
}

/* Loads split `test` of `spec`, printing the message on failure. */
static int load(const pd_job_spec *spec, int test, pd_dataset *ds) {
  char err[1024] = "";
  int rc = pd_dataset_load(spec, test, ds, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  load: %s\n", err);
  return rc;
}

static int same_people(const pd_dataset *ds) {
  if (ds->rows != 3 || ds->cols != 3 || !ds->features || ds->row_ptr || !ds->owned || !ds->labels ||
      !ds->targets)
    return 0;
  for (int r = 0; r < 3; r++) {
    if (ds->targets[r] != people_labels[r] || ds->labels[r] != (uint8_t)people_labels[r])
      return 0;
    for (int c = 0; c < 3; c++)
      if (ds->features[r * 3 + c] != people_features[r][c])
        return 0;
  }
  return 1;
}

static void test_header_label_by_name(void) {
  for (int gzip = 0; gzip <= 1; gzip++) {
    const char *path = write_text(gzip ? "people.csv.gz" : "people.csv", people, gzip);
    CHECK(path != NULL);
    pd_job_spec spec = csv_spec(path, NULL, 1, "label");
    pd_dataset ds;
    CHECK_EQ_INT(load(&spec, 0, &ds), 0);
    CHECK(same_people(&ds));
    pd_dataset_close(&ds);
    CHECK(ds.features == NULL && ds.rows == 0 && ds.owned == 0);
    /* The same column by index, with the header. */
    spec = csv_spec(path, NULL, 1, "2");
    CHECK_EQ_INT(load(&spec, 0, &ds), 0);
    CHECK(same_people(&ds));
    pd_dataset_close(&ds);
  }
}

static void test_no_header_label_by_index(void) {
  const char *path = write_text("noheader.csv", strchr(people, '\n') + 1, 0);
  pd_job_spec spec = csv_spec(path, NULL, 0, "2");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(same_people(&ds));
  pd_dataset_close(&ds);
  /* The default label column is the first one. */
  path = write_text("first.csv", "1,10,20\n0,11,21", 0); /* no final newline */
  spec = csv_spec(path, NULL, 0, "0");
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.rows == 2 && ds.cols == 2);
  CHECK(ds.features[0] == 10 && ds.features[1] == 20 && ds.features[2] == 11 &&
        ds.features[3] == 21);
  CHECK(ds.labels[0] == 1 && ds.labels[1] == 0);
  pd_dataset_close(&ds);
  /* The last column. */
  spec = csv_spec(path, NULL, 0, "2");
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.features[0] == 1 && ds.features[1] == 10 && ds.targets[0] == 20 && ds.targets[1] == 21);
  CHECK(ds.labels[0] == 20 && ds.labels[1] == 21);
  pd_dataset_close(&ds);
}

/* Quoted header names, CRLF everywhere, a single data row. */
static void test_quoted_header_crlf(void) {
  const char *path = write_text("quoted.csv", "\"x\", \"y\" ,\"target\"\r\n1,2,3.5\r\n", 0);
  pd_job_spec spec = csv_spec(path, NULL, 1, "target");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.rows == 1 && ds.cols == 2 && ds.features[0] == 1 && ds.features[1] == 2);
  CHECK(ds.targets[0] == 3.5f && ds.labels == NULL); /* 3.5 is not a class */
  pd_dataset_close(&ds);
  spec = csv_spec(path, NULL, 1, "y");
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.targets[0] == 2 && ds.features[1] == 3.5f);
  pd_dataset_close(&ds);
}

/* RFC 4180 quoting: header names with commas and doubled quotes, quoted
 * numbers in data rows; the columns are counted outside quotes. */
static void test_rfc4180_quotes(void) {
  const char *path = write_text("rfc4180.csv",
                                "\"size, in cm\",\"the \"\"label\"\"\", plain\n"
                                "\"1.5\", 2 ,\" 3 \"\n4,\"5\",6\n",
                                0);
  pd_job_spec spec = csv_spec(path, NULL, 1, "the \"label\"");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.rows == 2 && ds.cols == 2);
  CHECK(ds.features[0] == 1.5f && ds.features[1] == 3 && ds.targets[0] == 2);
  CHECK(ds.features[2] == 4 && ds.features[3] == 6 && ds.targets[1] == 5);
  pd_dataset_close(&ds);
  spec = csv_spec(path, NULL, 1, "size, in cm");
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.cols == 2 && ds.targets[0] == 1.5f);
  pd_dataset_close(&ds);
  /* The test split's columns are counted from its first line, quotes and all. */
  const char *test = write_text("rfc4180-test.csv", "\"a,b\",plain,d\n1,2,3\n", 0);
  spec = csv_spec(path, test, 1, "plain");
  CHECK_EQ_INT(load(&spec, 1, &ds), 0);
  CHECK(ds.rows == 1 && ds.cols == 2);
  pd_dataset_close(&ds);
  /* A header name whose quotes do not close, or with text after them. */
  char want[512];
  const char *bad[] = {"\"a,b\nc,d\n1,2\n", "\"a\"x,b\n1,2\n", "a\"b,c\n1,2\n"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(bad); i++) {
    path = write_text("bad-header.csv", bad[i], 0);
    spec = csv_spec(path, NULL, 1, "0");
    snprintf(want, sizeof want, "data.train.features: %s:1: column 1: a quoted name must end",
             path);
    CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  }
}

/* A UTF-8 byte order mark before the header is not part of the first name. */
static void test_byte_order_mark(void) {
  const char *path = write_text("bom.csv", "\xEF\xBB\xBFy,x\n1,2\n", 0);
  pd_job_spec spec = csv_spec(path, NULL, 1, "y");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.rows == 1 && ds.targets[0] == 1 && ds.features[0] == 2);
  pd_dataset_close(&ds);
}

/* Targets that are not classes 0..255 leave labels NULL. */
static void test_regression_targets(void) {
  const char *path = write_text("reg.csv", "y,x\n256,1\n3,2\n", 0);
  pd_job_spec spec = csv_spec(path, NULL, 1, "y");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.labels == NULL && ds.targets[0] == 256 && ds.targets[1] == 3);
  pd_dataset_close(&ds);
  path = write_text("neg.csv", "y,x\n-1,1\n1,2\n", 0);
  spec = csv_spec(path, NULL, 1, "y");
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.labels == NULL && ds.targets[0] == -1 && ds.targets[1] == 1);
  pd_dataset_close(&ds);
}

/* Each error names the key, the file, the line and the column. */
static void test_errors(void) {
  char want[512];
  const char *path = write_text("bad-number.csv", "a,b,c\n1,2,3\n4,abc,6\n", 0);
  pd_job_spec spec = csv_spec(path, NULL, 1, "a");
  snprintf(want, sizeof want, "data.train.features: %s:3: column 2: expected a number", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  CHECK(load_fails_quiet(&spec, "abc"));
  path = write_text("bad-number2.csv", "1,2,3\n4,5,6\n7,8, 12abc \n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want, "%s:3: column 3: expected a number", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  CHECK(load_fails_quiet(&spec, "12abc"));
  /* Empty fields, NaN, infinities, hex, and quoted fields that are not
   * numbers; the message never quotes the field. */
  const char *bad[] = {"1,,3\n",        "1,nan,3\n",        "1,inf,3\n",    "1,0x10,3\n",
                       "1,-,3\n",       "1,1e,3\n",         "1,.,3\n",      "1,1.2.3,3\n",
                       "1,\"1,5\",3\n", "1,\"a\"\"b\",3\n", "1,\"7\"x,3\n", "1,\"\",3\n"};
  const char *shown[] = {NULL, NULL,    NULL,  "0x10",   NULL,   NULL,
                         NULL, "1.2.3", "1,5", "a\"\"b", "7\"x", NULL};
  for (size_t i = 0; i < PD_ARRAY_SIZE(bad); i++) {
    char text[64];
    snprintf(text, sizeof text, "1,2,3\n%s", bad[i]);
    path = write_text("bad-field.csv", text, 0);
    spec = csv_spec(path, NULL, 0, "0");
    snprintf(want, sizeof want, "%s:2: column 2: expected a number", path);
    CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
    if (shown[i])
      CHECK(load_fails_quiet(&spec, shown[i]));
  }
  /* A quoted field must close on its line (no line breaks inside quotes). */
  path = write_text("open-quote.csv", "1,2,3\n1,\"2,3\n4\",5,6\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want,
           "%s:2: column 2: a quoted field must end with its closing quote on the same line", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  /* Beyond float's range. */
  path = write_text("huge.csv", "1,2\n1,1e39\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want, "%s:2: column 2: the number is out of the range of a float", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  CHECK(load_fails_quiet(&spec, "1e39"));
  /* Too few and too many columns. */
  path = write_text("short.csv", "a,b,c,d,e,f\n1,2,3,4,5,6\n1,2,3,4,5\n", 0);
  spec = csv_spec(path, NULL, 1, "a");
  snprintf(want, sizeof want, "data.train.features: %s:3: 5 columns, expected 6", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  path = write_text("long.csv", "1,2,3\n1,2,3,4\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want, "%s:2: 4 columns, expected 3", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  path = write_text("trailing-comma.csv", "1,2,3\n1,2,3,\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want, "%s:2: 4 columns, expected 3", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  /* A blank line before the end. */
  path = write_text("blank.csv", "1,2\n\n3,4\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want, "%s:2: empty line (only the end of the file may have blank lines)",
           path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  /* Empty files, a header alone, a single column. */
  path = write_text("empty.csv", " \n\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, "no data (the file is empty)"));
  path = write_text("header-only.csv", "a,b\n", 0);
  spec = csv_spec(path, NULL, 1, "a");
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, "no data rows after the header line"));
  path = write_text("one-column.csv", "1\n2\n", 0);
  spec = csv_spec(path, NULL, 0, "0");
  snprintf(want, sizeof want, "%s:1: 1 column: need the label column and at least one feature",
           path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  /* A missing file. */
  spec = csv_spec(tmp_path("missing.csv"), NULL, 0, "0");
  snprintf(want, sizeof want, "data.train.features: %s: No such file or directory",
           tmp_path("missing.csv"));
  CHECK(load_fails(&spec, 0, -ENOENT, want));
  /* A truncated gzip file. */
  path = write_text("cut.csv.gz", people, 1);
  CHECK(truncate(path, 20) == 0);
  spec = csv_spec(path, NULL, 1, "label");
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, "truncated gzip stream"));
}

static void test_label_column_errors(void) {
  char want[512];
  const char *path = write_text("lc.csv", people, 0);
  pd_job_spec spec = csv_spec(path, NULL, 1, "weight");
  snprintf(want, sizeof want,
           "data.label_column: %s has no column named 'weight' (its header line names 4 columns)",
           path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  CHECK(load_fails_quiet(&spec, "income")); /* the header is the file's text too */
  spec = csv_spec(path, NULL, 1, "4");
  snprintf(want, sizeof want,
           "data.label_column: column 4 does not exist: %s has 4 columns (0 to 3)", path);
  CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
  spec = csv_spec(path, NULL, 0, "label");
  CHECK(load_fails(&spec, 0, -PD_EFORMAT,
                   "data.label_column: 'label' is not a column index (0, 1, ...), and without "
                   "data.header: true the columns of"));
  uint64_t rows, cols;
  char err[512];
  CHECK(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err) == -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "data.label_column: 'label' is not a column index");
}

/* The test split must have the training split's columns; its errors name
 * data.test.features. */
static void test_test_split(void) {
  char want[512];
  const char *train = write_text("train.csv", people, 0);
  const char *test = write_text("test.csv.gz", "age,income,label,height\n5,6,1,7\n", 1);
  pd_job_spec spec = csv_spec(train, test, 1, "label");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 1, &ds), 0);
  CHECK(ds.rows == 1 && ds.cols == 3 && ds.features[0] == 5 && ds.features[2] == 7);
  CHECK(ds.labels[0] == 1);
  pd_dataset_close(&ds);
  test = write_text("test-wide.csv", "age,income,label,height,more\n5,6,1,7,8\n", 0);
  spec = csv_spec(train, test, 1, "label");
  snprintf(want, sizeof want,
           "data.test.features: %s: 5 columns, but the training data has 4 (3 features and the "
           "label)",
           test);
  CHECK(load_fails(&spec, 1, -PD_EFORMAT, want));
  test = write_text("test-bad.csv", "age,income,label,height\n5,6,1,7\n5,x,1,7\n", 0);
  spec = csv_spec(train, test, 1, "label");
  snprintf(want, sizeof want, "data.test.features: %s:3: column 2: expected a number", test);
  CHECK(load_fails(&spec, 1, -PD_EFORMAT, want));
  /* No test split: an empty dataset. */
  spec = csv_spec(train, NULL, 1, "label");
  memset(&ds, 0x5a, sizeof ds);
  CHECK_EQ_INT(load(&spec, 1, &ds), 0);
  CHECK(ds.rows == 0 && ds.features == NULL && ds.targets == NULL && ds.owned == 0);
  pd_dataset_close(&ds);
}

static void test_peek(void) {
  const char *train = write_text("peek.csv.gz", people, 1);
  const char *test =
      write_text("peek-test.csv", "age,income,label,height\n5,6,1,7\n8,9,0,1\n\n", 0);
  pd_job_spec spec = csv_spec(train, test, 1, "label");
  uint64_t rows = 0, cols = 0;
  char err[512] = "";
  CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 3 && cols == 3);
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 2 && cols == 3);
  /* Peeking validates the file. */
  const char *bad = write_text("peek-bad.csv", "1,2\n3,x\n", 0);
  spec = csv_spec(bad, NULL, 0, "0");
  CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "peek-bad.csv:2: column 2: expected a number");
  CHECK(strstr(err, "'x'") == NULL);
  spec = csv_spec(train, NULL, 1, "label");
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 0 && cols == 0);
}

/* Statistics come from the training split and are applied to both. */
static void test_normalize(void) {
  const char *train = write_text("norm-train.csv", "y,a,b,c\n0,1,10,5\n1,3,20,5\n0,5,60,5\n", 0);
  const char *test = write_text("norm-test.csv", "y,a,b,c\n1,7,0,6\n", 0);
  pd_job_spec spec = csv_spec(train, test, 1, "y");
  spec.data.normalize = PD_NORMALIZE_STANDARD;
  /* a: mean 3, sd sqrt(8/3); b: mean 30, sd sqrt(1400/3); c: constant 5. */
  double sd_a = sqrt(8.0 / 3), sd_b = sqrt(1400.0 / 3);
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK_NEAR(ds.features[0], (1 - 3) / sd_a, 1e-6);
  CHECK_NEAR(ds.features[1], (10 - 30) / sd_b, 1e-6);
  CHECK_NEAR(ds.features[2], 0, 0);
  CHECK_NEAR(ds.features[6], (5 - 3) / sd_a, 1e-6);
  CHECK_NEAR(ds.features[7], (60 - 30) / sd_b, 1e-6);
  CHECK(ds.targets[1] == 1); /* targets are not normalised */
  pd_dataset_close(&ds);
  CHECK_EQ_INT(load(&spec, 1, &ds), 0);
  CHECK_NEAR(ds.features[0], (7 - 3) / sd_a, 1e-6);
  CHECK_NEAR(ds.features[1], (0 - 30) / sd_b, 1e-6);
  CHECK_NEAR(ds.features[2], 1, 0); /* 6 - 5, the constant's scale is 1 */
  pd_dataset_close(&ds);

  spec.data.normalize = PD_NORMALIZE_MINMAX;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  const float want_train[] = {0, 0, 0, 0.5f, 0.2f, 0, 1, 1, 0};
  for (int i = 0; i < 9; i++)
    CHECK_NEAR(ds.features[i], want_train[i], 1e-6);
  pd_dataset_close(&ds);
  CHECK_EQ_INT(load(&spec, 1, &ds), 0);
  CHECK_NEAR(ds.features[0], 1.5, 1e-6); /* (7 - 1) / 4: outside [0, 1] */
  CHECK_NEAR(ds.features[1], -0.2, 1e-6);
  CHECK_NEAR(ds.features[2], 1, 0);
  pd_dataset_close(&ds);
}

/* The scanner rounds exactly as strtof() does, on the fast path and off it. */
static void test_numbers_match_strtof(void) {
  const char *fixed[] = {"0",
                         "-0",
                         "0.1",
                         "1e-5",
                         "3.4028235e38",
                         "3.4028234e38",
                         "1.17549435e-38",
                         "1e-40",
                         "1e-46",
                         ".5",
                         "5.",
                         "+7",
                         "123456789012345678901234",
                         "0.000000000000000000000000000001",
                         "16777217",
                         "16777219",
                         "9007199254740993",
                         "1.00000005960464477539",
                         "0.30000001192092896",
                         "7e22",
                         "7e-23",
                         "2.5E+3",
                         "1e0000000000000007"};
  size_t n = PD_ARRAY_SIZE(fixed) + 20000;
  char *text = pd_xmalloc(n * 48 + 16);
  char **fields = pd_xmalloc(n * sizeof *fields);
  size_t used = 0;
  uint64_t state = 42;
  for (size_t i = 0; i < n; i++) {
    char field[40];
    if (i < PD_ARRAY_SIZE(fixed)) {
      snprintf(field, sizeof field, "%s", fixed[i]);
    } else {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      uint32_t bits = (uint32_t)(state >> 32);
      float f;
      memcpy(&f, &bits, sizeof f);
      if (!isfinite(f))
        f = 1.5f;
      const char *formats[] = {"%.9g", "%.6g", "%.3f", "%.12e", "%.17g"};
      double d = (state & 7) == 0 ? (double)(state >> 40) / 1e6 : (double)f;
      snprintf(field, sizeof field, formats[(state >> 8) % 5], d);
      if (strstr(field, "inf") || strtof(field, NULL) > FLT_MAX || strtof(field, NULL) < -FLT_MAX)
        snprintf(field, sizeof field, "1");
    }
    fields[i] = pd_xstrdup(field);
    used += (size_t)sprintf(text + used, "0,%s\n", field);
  }
  const char *path = tmp_path("numbers.csv");
  CHECK(write_file(path, text, used, 0) == 0);
  pd_job_spec spec = csv_spec(path, NULL, 0, "0");
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK_EQ_INT(ds.rows, n);
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    float want = strtof(fields[i], NULL);
    if (memcmp(&want, &ds.features[i], sizeof want) != 0 && bad++ < 5)
      fprintf(stderr, "  '%s': got %.9g, strtof %.9g\n", fields[i], ds.features[i], want);
    free(fields[i]);
  }
  CHECK_EQ_INT(bad, 0);
  pd_dataset_close(&ds);
  free(fields);
  free(text);
}

/* Data files that are not regular files are refused at once (a FIFO's open
 * would block); the message names the key. */
static void test_not_regular(void) {
  const char *fifo = tmp_path("fifo.csv");
  CHECK_EQ_INT(mkfifo(fifo, 0600), 0);
  pd_job_spec spec = csv_spec(fifo, NULL, 0, "0");
  char want[512];
  snprintf(want, sizeof want, "data.train.features: %s: is a FIFO, not a regular file", fifo);
  CHECK(load_fails(&spec, 0, 0, want));
  spec = data_spec("libsvm", fifo, NULL);
  CHECK(load_fails(&spec, 0, 0, "is a FIFO"));
  spec = data_spec("idx", fifo, NULL);
  CHECK(load_fails(&spec, 0, 0, "is a FIFO"));
  spec = csv_spec(tmp_dir, NULL, 0, "0");
  CHECK(load_fails(&spec, 0, 0, "is a folder, not a regular file"));
  spec = csv_spec("/dev/zero", NULL, 0, "0");
  CHECK(load_fails(&spec, 0, 0, "is a character device"));
}

/* data_max_bytes and data_max_inflated_bytes: too big a file, or a gzip
 * that inflates to more, is refused (without inflating all of it). */
static void test_size_limits(void) {
  char err[256];
  size_t n = 4 << 20;
  char *text = malloc(n + 1);
  for (size_t i = 0; i < n; i += 4)
    memcpy(text + i, "1,2\n", 4);
  text[n] = '\0';
  const char *plain = write_text("big.csv", text, 0), *gz = write_text("big.csv.gz", text, 1);
  free(text);
  pd_data_limits limits = {NULL, 1 << 20, 64 << 20, 1000};
  CHECK_EQ_INT(pd_data_set_limits(&limits, err, sizeof err), 0);
  pd_job_spec spec = csv_spec(plain, NULL, 0, "0");
  CHECK(load_fails(&spec, 0, -EFBIG, "data.train.features: "));
  CHECK(load_fails(&spec, 0, -EFBIG, "more than the 1048576 this daemon reads (data_max_bytes)"));
  spec = csv_spec(gz, NULL, 0, "0"); /* small on disk */
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.rows == n / 4);
  pd_dataset_close(&ds);
  limits.max_inflated_bytes = 1 << 20;
  CHECK_EQ_INT(pd_data_set_limits(&limits, err, sizeof err), 0);
  CHECK(load_fails(&spec, 0, -EFBIG,
                   "the gzip data inflates to more than the 1048576 bytes this daemon reads "
                   "(data_max_inflated_bytes)"));
  /* A gzip bomb (70 MiB of zeros in ~70 KB) trips data_max_gzip_ratio once
   * 64 MiB are inflated, well below data_max_inflated_bytes. */
  size_t bomb_len = (size_t)70 << 20;
  char *zeros = calloc(1, bomb_len);
  const char *bomb = tmp_path("bomb.csv.gz");
  CHECK_EQ_INT(write_file(bomb, zeros, bomb_len, 1), 0);
  free(zeros);
  limits.max_inflated_bytes = PD_DATA_MAX_INFLATED_DEFAULT;
  limits.max_gzip_ratio = PD_DATA_MAX_GZIP_RATIO_DEFAULT;
  CHECK_EQ_INT(pd_data_set_limits(&limits, err, sizeof err), 0);
  spec = csv_spec(bomb, NULL, 0, "0");
  CHECK(load_fails(&spec, 0, -EFBIG,
                   "the gzip data inflates more than 200 times (data_max_gzip_ratio): refused as a "
                   "likely decompression bomb"));
  limits.max_gzip_ratio = 0.5;
  CHECK(pd_data_set_limits(&limits, err, sizeof err) == -EINVAL);
  CHECK_STR_CONTAINS(err, "data_max_gzip_ratio");
}

/* data_roots: only files under the roots open; outside, missing, "..", and
 * symlinks out get one message that does not tell them apart. */
static void test_data_roots(void) {
  char inside[300], outside[300], roots[700], err[512];
  snprintf(inside, sizeof inside, "%s/in", tmp_dir);
  snprintf(outside, sizeof outside, "%s/out", tmp_dir);
  CHECK_EQ_INT(mkdir(inside, 0700), 0);
  CHECK_EQ_INT(mkdir(outside, 0700), 0);
  const char *good = write_text("in/good.csv", "1,2\n3,4\n", 0);
  const char *secret = write_text("out/secret.csv", "5,6\n", 0);
  const char *link = tmp_path("in/link.csv");
  CHECK_EQ_INT(symlink(secret, link), 0);
  pd_data_limits limits = {"/nonexistent-1,/nonexistent-2", PD_DATA_MAX_BYTES_DEFAULT,
                           PD_DATA_MAX_INFLATED_DEFAULT, PD_DATA_MAX_GZIP_RATIO_DEFAULT};
  /* roots that do not exist are skipped (named for a warning), and let nothing in */
  CHECK_EQ_INT(pd_data_set_limits(&limits, err, sizeof err), 0);
  CHECK_STR_CONTAINS(err,
                     "data_roots: no such folder (skipped): '/nonexistent-1', '/nonexistent-2'");
  pd_job_spec spec = csv_spec(good, NULL, 0, "0");
  CHECK(load_fails(&spec, 0, -EACCES, "no such file under data_roots"));
  limits.roots = good; /* a file is not a folder */
  CHECK(pd_data_set_limits(&limits, err, sizeof err) == -EINVAL);
  CHECK_STR_CONTAINS(err, "is not a folder");
  snprintf(roots, sizeof roots, " %s/ ,/nonexistent-3", inside);
  limits.roots = roots;
  CHECK_EQ_INT(pd_data_set_limits(&limits, err, sizeof err), 0);
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.rows == 2);
  pd_dataset_close(&ds);
  char dotdot[400], missing[400];
  snprintf(dotdot, sizeof dotdot, "%s/../out/secret.csv", inside);
  snprintf(missing, sizeof missing, "%s/../out/none.csv", inside);
  const char *refused[] = {secret, link, dotdot, missing, tmp_path("in/none.csv"), "/etc/passwd"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(refused); i++) {
    char want[600];
    snprintf(want, sizeof want, "data.train.features: %s: no such file under data_roots",
             refused[i]);
    spec = csv_spec(refused[i], NULL, 0, "0");
    CHECK(load_fails(&spec, 0, -EACCES, want));
    spec = data_spec("idx", refused[i], NULL);
    CHECK(load_fails(&spec, 0, -EACCES, want));
  }
  /* no roots again: anywhere */
  limits.roots = "";
  CHECK_EQ_INT(pd_data_set_limits(&limits, err, sizeof err), 0);
  spec = csv_spec(secret, NULL, 0, "0");
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  pd_dataset_close(&ds);
}

int main(int argc, char **argv) {
  if (tmp_dir_make("csv") != 0)
    return 1;
  PD_RUN(test_header_label_by_name);
  PD_RUN(test_no_header_label_by_index);
  PD_RUN(test_quoted_header_crlf);
  PD_RUN(test_rfc4180_quotes);
  PD_RUN(test_not_regular);
  PD_RUN(test_size_limits);
  PD_RUN(test_data_roots);
  PD_RUN(test_byte_order_mark);
  PD_RUN(test_regression_targets);
  PD_RUN(test_errors);
  PD_RUN(test_label_column_errors);
  PD_RUN(test_test_split);
  PD_RUN(test_peek);
  PD_RUN(test_normalize);
  PD_RUN(test_numbers_match_strtof);
  tmp_dir_remove();
  PD_TEST_DONE();
}
