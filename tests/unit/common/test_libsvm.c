/* Unit tests of the libsvm reader (data.format libsvm): the CSR structure of
 * small files written by the test, plain and gzipped, the label rules
 * (-1/+1, classes, regression targets), the feature space of the test
 * split, every error message, and peeks. */
#include "pando/dataset.h"

#include <errno.h>
#include <stdint.h>

#include "../../test.h"
#include "datafiles.h"
#include "pando/error.h"
#include "pando/util.h"

static const char binary[] = "+1 1:0.5 3:-2 10:1e2\n"
                             "-1 2:1\n"
                             "-1\n"
                             "1 3:0.25 # a comment\n"
                             "# a line of comment\n"
                             "\n";

static int load(const pd_job_spec *spec, int test, pd_dataset *ds) {
  char err[1024] = "";
  int rc = pd_dataset_load(spec, test, ds, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  load: %s\n", err);
  return rc;
}

static void test_binary_csr(void) {
  for (int gzip = 0; gzip <= 1; gzip++) {
    const char *path = write_text(gzip ? "binary.svm.gz" : "binary.svm", binary, gzip);
    pd_job_spec spec = data_spec("libsvm", path, NULL);
    pd_dataset ds;
    CHECK_EQ_INT(load(&spec, 0, &ds), 0);
    CHECK(ds.owned && ds.features == NULL && ds.row_ptr && ds.col_idx && ds.values);
    CHECK_EQ_INT(ds.rows, 4);
    CHECK_EQ_INT(ds.cols, 10); /* the largest index */
    const uint64_t row_ptr[] = {0, 3, 4, 4, 5};
    const uint32_t col_idx[] = {0, 2, 9, 1, 2};
    const float values[] = {0.5f, -2, 100, 1, 0.25f};
    for (int i = 0; i < 5; i++)
      CHECK_EQ_INT(ds.row_ptr[i], row_ptr[i]);
    for (int i = 0; i < 5; i++) {
      CHECK_EQ_INT(ds.col_idx[i], col_idx[i]);
      CHECK(ds.values[i] == values[i]);
    }
    const uint8_t labels[] = {1, 0, 0, 1}; /* -1 -> 0 */
    CHECK(ds.labels != NULL);
    for (int i = 0; i < 4; i++) {
      CHECK_EQ_INT(ds.labels[i], labels[i]);
      CHECK(ds.targets[i] == labels[i]);
    }
    pd_dataset_close(&ds);
    CHECK(ds.row_ptr == NULL && ds.owned == 0);
  }
}

static void test_label_rules(void) {
  /* 0/1 and multi-class labels are classes as they are. */
  const char *path = write_text("classes.svm", "0 1:1\n7 2:1\n3 1:1\r\n", 0);
  pd_job_spec spec = data_spec("libsvm", path, NULL);
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.labels && ds.labels[0] == 0 && ds.labels[1] == 7 && ds.labels[2] == 3);
  CHECK(ds.targets[1] == 7);
  pd_dataset_close(&ds);
  /* Real values are regression targets: kept, no labels. */
  path = write_text("regression.svm", "2.5 1:1\n-1 2:1\n1 1:3\n", 0);
  spec = data_spec("libsvm", path, NULL);
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.labels == NULL);
  CHECK(ds.targets[0] == 2.5f && ds.targets[1] == -1 && ds.targets[2] == 1);
  pd_dataset_close(&ds);
  /* -1, 0 and 1 together are not the binary -1/+1 convention. */
  path = write_text("three.svm", "-1 1:1\n0 1:1\n1 1:1\n", 0);
  spec = data_spec("libsvm", path, NULL);
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.labels == NULL && ds.targets[0] == -1 && ds.targets[1] == 0);
  pd_dataset_close(&ds);
  /* Integers above 255 are not classes. */
  path = write_text("big.svm", "300 1:1\n1 1:1\n", 0);
  spec = data_spec("libsvm", path, NULL);
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK(ds.labels == NULL && ds.targets[0] == 300);
  pd_dataset_close(&ds);
}

/* The test split uses the training split's feature space. */
static void test_test_split_cols(void) {
  const char *train = write_text("train.svm", binary, 0);
  const char *test = write_text("test.svm", "1 2:1 4:2\n-1 1:1\n", 0);
  pd_job_spec spec = data_spec("libsvm", train, test);
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 1, &ds), 0);
  CHECK_EQ_INT(ds.rows, 2);
  CHECK_EQ_INT(ds.cols, 10); /* not 4 */
  CHECK(ds.labels[0] == 1 && ds.labels[1] == 0);
  CHECK(ds.row_ptr[2] == 3 && ds.col_idx[1] == 3 && ds.values[1] == 2);
  pd_dataset_close(&ds);
  uint64_t rows = 0, cols = 0;
  char err[512] = "";
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 2 && cols == 10);
  /* A feature the training data does not have. */
  test = write_text("test-wide.svm", "1 2:1\n1 3:1 11:1 12:1\n", 0);
  spec = data_spec("libsvm", train, test);
  char want[512];
  snprintf(want, sizeof want,
           "data.test.features: %s:2: feature 11, but the training data has only 10 features",
           test);
  CHECK(load_fails(&spec, 1, -PD_EFORMAT, want));
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, want);
  /* Training errors are reported when the test split needs its size. */
  const char *bad_train = write_text("bad-train.svm", "1 2:1 1:1\n", 0);
  spec = data_spec("libsvm", bad_train, test);
  CHECK(load_fails(&spec, 1, -PD_EFORMAT, "data.train.features"));
}

static void test_errors(void) {
  struct {
    const char *text, *message; /* the message after "data.train.features: PATH:" */
  } cases[] = {
      {"1 1:1\n1 0:1\n", "2: feature index 0: indices start at 1"},
      {"1 1:1 3:1 2:1\n", "1: feature 2 after feature 3: indices must be ascending"},
      {"1 1:1\n1 4:1 4:2\n", "2: feature 4 after feature 4: indices must be ascending"},
      {"1 1:1\n1 abc\n", "2: item 1 after the label: expected index:value (a 1-based feature "
                         "index, ':' and a number)"},
      {"1 qid:3 1:1\n", "1: item 1 after the label: expected index:value (a 1-based feature index, "
                        "':' and a number)"},
      {"1 1:1 -2:1\n", "1: item 2 after the label: expected index:value (a 1-based feature index, "
                       "':' and a number)"},
      {"1 5\n", "1: item 1 after the label: expected index:value (a 1-based feature index, ':' and "
                "a number)"},
      {"1 :5\n", "1: item 1 after the label: expected index:value (a 1-based feature index, ':' "
                 "and a number)"},
      {"1 1:2:3\n", "1: feature 1: expected a number after ':'"},
      {"1 1 :2\n", "1: item 1 after the label: expected index:value (a 1-based feature index, ':' "
                   "and a number)"},
      {"1 5:\n", "1: feature 5: expected a number after ':'"},
      {"1 5:x 6:1\n", "1: feature 5: expected a number after ':'"},
      {"1 5:1x\n", "1: feature 5: expected a number after ':'"},
      {"1 5:nan\n", "1: feature 5: expected a number after ':'"},
      {"1 5:1e40\n", "1: feature 5: the value is out of the range of a float"},
      {"1 99999999999:1\n", "1: item 1 after the label: expected index:value (a 1-based feature "
                            "index, ':' and a number)"},
      {"1 1:1\nyes 1:1\n", "2: expected a label (a number) at the start of the line"},
      {"1:1 2:1\n", "1: expected a label (a number) at the start of the line"},
      {"root:x:0:0:root:/root:/bin/bash\n",
       "1: expected a label (a number) at the start of the line"},
      {"1 1:1\n\n1 2:1\n", "2: empty line (only the end of the file may have blank lines)"},
      {"\n \n", " no data (the file is empty)"},
      {"# only a comment\n", " no data (the file is empty)"},
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    const char *path = write_text("bad.svm", cases[i].text, 0);
    pd_job_spec spec = data_spec("libsvm", path, NULL);
    char want[512];
    snprintf(want, sizeof want, "data.train.features: %s:%s", path, cases[i].message);
    CHECK(load_fails(&spec, 0, -PD_EFORMAT, want));
    uint64_t rows, cols;
    char err[512] = "";
    CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), -PD_EFORMAT);
    CHECK_STR_CONTAINS(err, want);
    CHECK(strstr(err, "root:x") == NULL && strstr(err, "qid") == NULL &&
          strstr(err, "yes") == NULL);
  }
  pd_job_spec spec = data_spec("libsvm", tmp_path("nope.svm"), NULL);
  CHECK(load_fails(&spec, 0, -ENOENT, "data.train.features: "));
  CHECK(load_fails(&spec, 0, -ENOENT, "nope.svm: No such file or directory"));
}

/* Sparse formats take no normalisation. */
static void test_normalize_refused(void) {
  const char *path = write_text("norm.svm", binary, 0);
  pd_job_spec spec = data_spec("libsvm", path, NULL);
  spec.data.normalize = PD_NORMALIZE_STANDARD;
  const char *want =
      "data.normalize: standard is not supported for sparse data (libsvm, synthetic)";
  CHECK(load_fails(&spec, 0, -PD_EINVAL_SPEC, want));
  uint64_t rows, cols;
  char err[512] = "";
  CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, want);
  spec.data.normalize = PD_NORMALIZE_MINMAX;
  CHECK(load_fails(&spec, 0, -PD_EINVAL_SPEC, "data.normalize: minmax is not supported"));
}

static void test_peek(void) {
  const char *path = write_text("peek.svm.gz", binary, 1);
  pd_job_spec spec = data_spec("libsvm", path, NULL);
  uint64_t rows = 0, cols = 0;
  char err[512] = "";
  CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 4 && cols == 10);
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 0 && cols == 0); /* no test split */
}

/* A larger file: every row and non-zero comes back. */
static void test_many_rows(void) {
  const int rows = 5000;
  size_t cap = (size_t)rows * 200, used = 0;
  char *text = pd_xmalloc(cap);
  uint64_t state = 7, nnz = 0;
  for (int r = 0; r < rows; r++) {
    used += (size_t)snprintf(text + used, cap - used, "%d", r % 2 ? 1 : -1);
    uint32_t index = 0;
    for (int k = 0; k < 8; k++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      index += 1 + (uint32_t)(state >> 59);
      used += (size_t)snprintf(text + used, cap - used, " %u:%d", index, (int)(state >> 60) - 8);
      nnz++;
    }
    used += (size_t)snprintf(text + used, cap - used, "\n");
  }
  const char *path = tmp_path("many.svm.gz");
  CHECK(write_file(path, text, used, 1) == 0);
  pd_job_spec spec = data_spec("libsvm", path, NULL);
  pd_dataset ds;
  CHECK_EQ_INT(load(&spec, 0, &ds), 0);
  CHECK_EQ_INT(ds.rows, rows);
  CHECK_EQ_INT(ds.row_ptr[rows], nnz);
  state = 7;
  for (int r = 0; r < rows; r++) {
    CHECK_EQ_INT(ds.labels[r], r % 2);
    uint32_t index = 0;
    for (int k = 0; k < 8; k++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      index += 1 + (uint32_t)(state >> 59);
      uint64_t at = ds.row_ptr[r] + (uint64_t)k;
      CHECK_EQ_INT(ds.col_idx[at], index - 1);
      CHECK(ds.values[at] == (float)((int)(state >> 60) - 8));
    }
  }
  pd_dataset_close(&ds);
  free(text);
}

int main(int argc, char **argv) {
  if (tmp_dir_make("libsvm") != 0)
    return 1;
  PD_RUN(test_binary_csr);
  PD_RUN(test_label_rules);
  PD_RUN(test_test_split_cols);
  PD_RUN(test_errors);
  PD_RUN(test_normalize_refused);
  PD_RUN(test_peek);
  PD_RUN(test_many_rows);
  tmp_dir_remove();
  PD_TEST_DONE();
}
