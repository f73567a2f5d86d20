/* Unit tests of the synthetic data generator (data.format synthetic): CSR
 * structure, determinism by (seed, row) so that any range equals the same
 * rows of the whole, different streams for seeds and splits, balanced
 * labels, and that a logistic regression learns it. */
#include "pando/dataset.h"

#include <math.h>
#include <stdint.h>

#include "../../test.h"
#include "datafiles.h"
#include "pando/error.h"
#include "pando/util.h"

static pd_synthetic_spec synthetic(uint64_t rows, uint64_t test_rows, int features, int nnz,
                                   uint64_t seed) {
  pd_synthetic_spec s = {rows, test_rows, features, nnz, seed};
  return s;
}

/* Rows sorted, distinct, within the feature space, of value 1, labels 0/1
 * equal to the targets. Returns 1 when all holds. */
static int well_formed(const pd_dataset *ds, uint32_t features, uint32_t nnz) {
  if (!ds->owned || ds->features || !ds->row_ptr || !ds->labels || !ds->targets ||
      ds->cols != features)
    return 0;
  for (uint64_t r = 0; r < ds->rows; r++) {
    uint64_t b = ds->row_ptr[r], e = ds->row_ptr[r + 1];
    if (e - b != nnz || ds->labels[r] > 1 || ds->targets[r] != ds->labels[r])
      return 0;
    for (uint64_t i = b; i < e; i++)
      if (ds->col_idx[i] >= features || (i > b && ds->col_idx[i] <= ds->col_idx[i - 1]) ||
          ds->values[i] != 1.0f)
        return 0;
  }
  return 1;
}

/* Row r of `a` equals row r - offset... of `b`: rows [0, b->rows) of b are
 * rows [offset, offset + b->rows) of a. */
static int same_rows(const pd_dataset *a, uint64_t offset, const pd_dataset *b) {
  for (uint64_t r = 0; r < b->rows; r++) {
    uint64_t ab = a->row_ptr[offset + r], ae = a->row_ptr[offset + r + 1];
    uint64_t bb = b->row_ptr[r], be = b->row_ptr[r + 1];
    if (ae - ab != be - bb || a->labels[offset + r] != b->labels[r])
      return 0;
    if (memcmp(a->col_idx + ab, b->col_idx + bb, (ae - ab) * sizeof(uint32_t)) != 0 ||
        memcmp(a->values + ab, b->values + bb, (ae - ab) * sizeof(float)) != 0)
      return 0;
  }
  return 1;
}

static void test_structure(void) {
  /* Sparse rows, dense-ish rows (selection sampling) and full rows. */
  const int shapes[][2] = {{1000000, 20}, {1000, 100}, {40, 10}, {40, 30}, {7, 7}, {1, 1}};
  for (size_t i = 0; i < PD_ARRAY_SIZE(shapes); i++) {
    pd_synthetic_spec s = synthetic(500, 0, shapes[i][0], shapes[i][1], 3);
    pd_dataset ds;
    pd_dataset_synthetic(&s, 0, 0, s.rows, &ds);
    CHECK_EQ_INT(ds.rows, 500);
    CHECK(well_formed(&ds, (uint32_t)shapes[i][0], (uint32_t)shapes[i][1]));
    pd_dataset_close(&ds);
  }
}

static void test_ranges_equal_whole(void) {
  pd_synthetic_spec s = synthetic(1000, 300, 50000, 12, 99);
  for (int test = 0; test <= 1; test++) {
    uint64_t rows = test ? s.test_rows : s.rows;
    pd_dataset whole;
    pd_dataset_synthetic(&s, test, 0, rows, &whole);
    const uint64_t ranges[][2] = {{0, 1}, {0, 100}, {137, 251}, {299, 300}, {5, 5}, {0, 300}};
    for (size_t i = 0; i < PD_ARRAY_SIZE(ranges); i++) {
      pd_dataset part;
      pd_dataset_synthetic(&s, test, ranges[i][0], ranges[i][1], &part);
      CHECK_EQ_INT(part.rows, ranges[i][1] - ranges[i][0]);
      CHECK_EQ_INT(part.row_ptr[0], 0);
      CHECK(same_rows(&whole, ranges[i][0], &part));
      pd_dataset_close(&part);
    }
    /* The same call twice gives the same data. */
    pd_dataset again;
    pd_dataset_synthetic(&s, test, 0, rows, &again);
    CHECK(same_rows(&whole, 0, &again));
    pd_dataset_close(&again);
    pd_dataset_close(&whole);
  }
}

/* Rows by index equal the same rows of the whole split. */
static void test_rows_by_index(void) {
  pd_synthetic_spec s = synthetic(500, 100, 100000, 16, 5);
  for (int test = 0; test <= 1; test++) {
    pd_dataset whole, some;
    pd_dataset_synthetic(&s, test, 0, test ? s.test_rows : s.rows, &whole);
    const uint64_t index[] = {99, 0, 42, 42, 7, 98};
    pd_dataset_synthetic_rows(&s, test, index, PD_ARRAY_SIZE(index), &some);
    CHECK_EQ_INT(some.rows, PD_ARRAY_SIZE(index));
    CHECK(well_formed(&some, 100000, 16));
    for (size_t i = 0; i < PD_ARRAY_SIZE(index); i++) {
      pd_dataset one = pd_dataset_view(&some, i, i + 1);
      CHECK(same_rows(&whole, index[i], &one));
    }
    pd_dataset_close(&some);
    pd_dataset_close(&whole);
  }
}

/* Counts rows of a and b (same size) that differ. */
static uint64_t rows_differing(const pd_dataset *a, const pd_dataset *b) {
  uint64_t differ = 0;
  for (uint64_t r = 0; r < a->rows; r++) {
    pd_dataset va = pd_dataset_view(a, r, r + 1), vb = pd_dataset_view(b, r, r + 1);
    pd_dataset ra = {0}, rb = {0};
    uint64_t zero = 0;
    pd_dataset_gather(&va, &zero, 1, &ra);
    pd_dataset_gather(&vb, &zero, 1, &rb);
    differ += !same_rows(&ra, 0, &rb);
    pd_dataset_close(&ra);
    pd_dataset_close(&rb);
  }
  return differ;
}

static void test_seeds_and_splits_differ(void) {
  pd_synthetic_spec s1 = synthetic(200, 200, 100000, 10, 1),
                    s2 = synthetic(200, 200, 100000, 10, 2);
  pd_dataset a, b, t;
  pd_dataset_synthetic(&s1, 0, 0, 200, &a);
  pd_dataset_synthetic(&s2, 0, 0, 200, &b);
  pd_dataset_synthetic(&s1, 1, 0, 200, &t);
  CHECK(rows_differing(&a, &b) >= 195);
  CHECK(rows_differing(&a, &t) >= 195);
  pd_dataset_close(&t);
  pd_dataset_close(&b);
  pd_dataset_close(&a);
}

static void test_label_balance(void) {
  const int shapes[][2] = {{1000000, 50}, {1000, 10}, {20, 5}, {2, 1}};
  for (size_t i = 0; i < PD_ARRAY_SIZE(shapes); i++)
    for (uint64_t seed = 0; seed < 3; seed++) {
      pd_synthetic_spec s = synthetic(20000, 0, shapes[i][0], shapes[i][1], seed);
      pd_dataset ds;
      pd_dataset_synthetic(&s, 0, 0, s.rows, &ds);
      uint64_t ones = 0;
      for (uint64_t r = 0; r < ds.rows; r++)
        ones += ds.labels[r];
      pd_dataset_close(&ds);
      if (ones < 8000 || ones > 12000)
        fprintf(stderr, "  features %d, nnz %d, seed %llu: %llu of 20000 labels are 1\n",
                shapes[i][0], shapes[i][1], (unsigned long long)seed, (unsigned long long)ones);
      CHECK(ones >= 8000 && ones <= 12000);
    }
}

/* Mean logistic loss and accuracy of weights w (no bias) on ds. */
static void evaluate(const pd_dataset *ds, const float *w, double *loss, double *accuracy) {
  double sum = 0;
  uint64_t right = 0;
  for (uint64_t r = 0; r < ds->rows; r++) {
    double z = 0;
    for (uint64_t i = ds->row_ptr[r]; i < ds->row_ptr[r + 1]; i++)
      z += w[ds->col_idx[i]] * ds->values[i];
    double y = ds->targets[r];
    sum += log1p(exp(-fabs(z))) + fmax(z, 0) - y * z; /* log(1 + e^z) - y z */
    right += (z > 0) == (y > 0.5);
  }
  *loss = sum / (double)ds->rows;
  *accuracy = (double)right / (double)ds->rows;
}

/* Plain SGD on the training split lowers the loss and classifies most test
 * rows right. */
static void test_logistic_regression_learns(void) {
  pd_job_spec spec = data_spec("synthetic", NULL, NULL);
  spec.data.synthetic = synthetic(40000, 5000, 2000, 20, 7);
  pd_dataset train, test;
  char err[256] = "";
  CHECK_EQ_INT(pd_dataset_load(&spec, 0, &train, err, sizeof err), 0);
  CHECK_EQ_INT(pd_dataset_load(&spec, 1, &test, err, sizeof err), 0);
  CHECK(train.rows == 40000 && test.rows == 5000 && test.cols == 2000);
  float *w = pd_xcalloc(2000, sizeof(float));
  double loss0, acc0, loss, acc;
  evaluate(&test, w, &loss0, &acc0);
  for (int epoch = 0; epoch < 3; epoch++)
    for (uint64_t r = 0; r < train.rows; r++) {
      double z = 0;
      for (uint64_t i = train.row_ptr[r]; i < train.row_ptr[r + 1]; i++)
        z += w[train.col_idx[i]];
      double g = 1 / (1 + exp(-z)) - train.targets[r];
      for (uint64_t i = train.row_ptr[r]; i < train.row_ptr[r + 1]; i++)
        w[train.col_idx[i]] -= (float)(0.05 * g);
    }
  evaluate(&test, w, &loss, &acc);
  printf("  note: test loss %.3f -> %.3f, accuracy %.3f\n", loss0, loss, acc);
  CHECK(loss < 0.75 * loss0);
  CHECK(acc > 0.8);
  free(w);
  pd_dataset_close(&test);
  pd_dataset_close(&train);
}

static void test_load_and_peek(void) {
  pd_job_spec spec = data_spec("synthetic", NULL, NULL);
  spec.data.synthetic = synthetic(100, 0, 1000, 5, 11);
  uint64_t rows = 0, cols = 0;
  char err[256] = "";
  CHECK_EQ_INT(pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 100 && cols == 1000);
  CHECK_EQ_INT(pd_dataset_peek(&spec, 1, &rows, &cols, err, sizeof err), 0);
  CHECK(rows == 0 && cols == 0);
  pd_dataset ds, whole;
  CHECK_EQ_INT(pd_dataset_load(&spec, 1, &ds, err, sizeof err), 0);
  CHECK(ds.rows == 0 && ds.row_ptr == NULL);
  CHECK_EQ_INT(pd_dataset_load(&spec, 0, &ds, err, sizeof err), 0);
  pd_dataset_synthetic(&spec.data.synthetic, 0, 0, 100, &whole);
  CHECK(same_rows(&whole, 0, &ds) && ds.rows == 100);
  pd_dataset_close(&whole);
  pd_dataset_close(&ds);
  spec.data.normalize = PD_NORMALIZE_MINMAX;
  CHECK(load_fails(&spec, 0, -PD_EINVAL_SPEC,
                   "data.normalize: minmax is not supported for sparse data (libsvm, synthetic)"));
}

int main(int argc, char **argv) {
  PD_RUN(test_structure);
  PD_RUN(test_ranges_equal_whole);
  PD_RUN(test_rows_by_index);
  PD_RUN(test_seeds_and_splits_differ);
  PD_RUN(test_label_balance);
  PD_RUN(test_logistic_regression_learns);
  PD_RUN(test_load_and_peek);
  PD_TEST_DONE();
}
