/* Unit tests of the device partitions (common/src/data/partition.c). */
#include "pando/partition.h"

#include <stdint.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

#define CLASSES 10

/* rows with balanced labels r % 10 */
static uint8_t *balanced_labels(uint64_t rows) {
  uint8_t *labels = pd_xmalloc(rows);
  for (uint64_t r = 0; r < rows; r++)
    labels[r] = (uint8_t)(r % CLASSES);
  return labels;
}

/* Every row is in exactly one device. */
static int covers_once(const pd_device_partition *p, uint64_t rows) {
  if (p->offset[0] != 0 || p->offset[p->devices] != rows)
    return 0;
  uint8_t *seen = pd_xcalloc(rows, 1);
  int ok = 1;
  for (uint64_t k = 0; k < rows && ok; k++) {
    ok = p->index[k] < rows && !seen[p->index[k]];
    if (ok)
      seen[p->index[k]] = 1;
  }
  free(seen);
  return ok;
}

static void histogram(const pd_device_partition *p, const uint8_t *labels, uint32_t d,
                      uint64_t *hist) {
  memset(hist, 0, CLASSES * sizeof *hist);
  for (uint64_t k = p->offset[d]; k < p->offset[d + 1]; k++)
    hist[labels[p->index[k]]]++;
}

static int same(const pd_device_partition *a, const pd_device_partition *b) {
  return a->devices == b->devices &&
         memcmp(a->offset, b->offset, (a->devices + 1) * sizeof *a->offset) == 0 &&
         memcmp(a->index, b->index, a->offset[a->devices] * sizeof *a->index) == 0;
}

static void test_iid_equal_sizes_every_row_once(void) {
  pd_device_partition p, q, r;
  char err[256];
  CHECK_EQ_INT(
      pd_device_partition_init(&p, NULL, 1003, 10, PD_PARTITION_IID, 0, 0, 7, err, sizeof err), 0);
  CHECK(covers_once(&p, 1003));
  for (uint32_t d = 0; d < 10; d++)
    CHECK_EQ_INT(pd_device_partition_rows(&p, d), d < 3 ? 101 : 100);
  CHECK_EQ_INT(
      pd_device_partition_init(&q, NULL, 1003, 10, PD_PARTITION_IID, 0, 0, 7, err, sizeof err), 0);
  CHECK_EQ_INT(
      pd_device_partition_init(&r, NULL, 1003, 10, PD_PARTITION_IID, 0, 0, 8, err, sizeof err), 0);
  CHECK(same(&p, &q));  /* seeded */
  CHECK(!same(&p, &r)); /* another seed, another split */
  pd_device_partition_close(&p);
  pd_device_partition_close(&q);
  pd_device_partition_close(&r);
}

/* Largest difference between a device's label shares and the data set's. */
static double max_share_gap(const pd_device_partition *p, const uint8_t *labels) {
  double worst = 0;
  uint64_t hist[CLASSES];
  for (uint32_t d = 0; d < p->devices; d++) {
    histogram(p, labels, d, hist);
    for (int c = 0; c < CLASSES; c++) {
      double gap = fabs((double)hist[c] / (double)pd_device_partition_rows(p, d) - 0.1);
      worst = gap > worst ? gap : worst;
    }
  }
  return worst;
}

/* Mean number of labels that make up >= 5% of a device's rows. */
static double mean_labels(const pd_device_partition *p, const uint8_t *labels) {
  uint64_t hist[CLASSES], total = 0;
  for (uint32_t d = 0; d < p->devices; d++) {
    histogram(p, labels, d, hist);
    for (int c = 0; c < CLASSES; c++)
      total += hist[c] * 20 >= pd_device_partition_rows(p, d);
  }
  return (double)total / p->devices;
}

static void test_dirichlet_alpha_sets_heterogeneity(void) {
  const uint64_t rows = 60000;
  uint8_t *labels = balanced_labels(rows);
  pd_device_partition big, small, again;
  char err[256];
  CHECK_EQ_INT(pd_device_partition_init(&big, labels, rows, 100, PD_PARTITION_DIRICHLET, 1000, 0, 1,
                                        err, sizeof err),
               0);
  CHECK_EQ_INT(pd_device_partition_init(&small, labels, rows, 100, PD_PARTITION_DIRICHLET, 0.1, 0,
                                        1, err, sizeof err),
               0);
  CHECK(covers_once(&big, rows));
  CHECK(covers_once(&small, rows));
  for (uint32_t d = 0; d < 100; d++)
    CHECK_EQ_INT(pd_device_partition_rows(&small, d), 600);
  /* alpha 1000 is close to iid: 600 rows per device, binomial share noise
   * sd ~ sqrt(0.09/600) = 0.012 plus the draw of q (sd ~ 0.003); 0.07 is
   * over 5 sd for the worst of 1000 shares */
  CHECK(max_share_gap(&big, labels) < 0.07);
  CHECK(mean_labels(&big, labels) > 9.5);
  /* alpha 0.1: a few dominant labels per device (Hsu et al., Fig. 1); the
   * pools running out late in the split mixes the last devices somewhat */
  CHECK(mean_labels(&small, labels) < 4.0);
  CHECK(max_share_gap(&small, labels) > 0.5);
  CHECK_EQ_INT(pd_device_partition_init(&again, labels, rows, 100, PD_PARTITION_DIRICHLET, 0.1, 0,
                                        1, err, sizeof err),
               0);
  CHECK(same(&small, &again));
  pd_device_partition_close(&big);
  pd_device_partition_close(&small);
  pd_device_partition_close(&again);
  free(labels);
}

/* McMahan's split: 60000 rows, 200 shards of 300, 2 per device. */
static void test_shards_two_labels_per_device(void) {
  const uint64_t rows = 60000;
  uint8_t *labels = balanced_labels(rows);
  pd_device_partition p;
  char err[256];
  uint64_t hist[CLASSES];
  CHECK_EQ_INT(pd_device_partition_init(&p, labels, rows, 100, PD_PARTITION_SHARDS, 0, 2, 3, err,
                                        sizeof err),
               0);
  CHECK(covers_once(&p, rows));
  int exactly_two = 0;
  for (uint32_t d = 0; d < 100; d++) {
    CHECK_EQ_INT(pd_device_partition_rows(&p, d), 600);
    histogram(&p, labels, d, hist);
    int nlabels = 0;
    for (int c = 0; c < CLASSES; c++) {
      nlabels += hist[c] > 0;
      CHECK(hist[c] == 0 || hist[c] == 300 || hist[c] == 600); /* whole single-label shards */
    }
    CHECK(nlabels >= 1 && nlabels <= 2);
    exactly_two += nlabels == 2;
  }
  /* two random shards share a label with probability 19/199 */
  CHECK(exactly_two >= 80);
  pd_device_partition_close(&p);
  free(labels);
}

static void test_impossible_splits_name_the_key(void) {
  uint8_t labels[8] = {0, 1, 0, 1, 0, 1, 0, 1};
  pd_device_partition p;
  char err[256];
  CHECK_EQ_INT(
      pd_device_partition_init(&p, labels, 8, 9, PD_PARTITION_IID, 0, 0, 0, err, sizeof err),
      -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "simulation.devices: 9 devices for 8 training rows");
  CHECK_EQ_INT(
      pd_device_partition_init(&p, labels, 8, 4, PD_PARTITION_SHARDS, 0, 3, 0, err, sizeof err),
      -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "data.shards_per_device: 4 devices x 3 shards");
  CHECK_EQ_INT(
      pd_device_partition_init(&p, NULL, 8, 4, PD_PARTITION_DIRICHLET, 0.5, 0, 0, err, sizeof err),
      -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "data.partition: dirichlet needs classification data");
  CHECK_EQ_INT(pd_device_partition_init(&p, labels, 8, 4, PD_PARTITION_DISJOINT_RANDOM, 0, 0, 0,
                                        err, sizeof err),
               -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "data.partition: disjoint_random does not split data over devices");
}

/* Gamma(k, 1) has mean k and variance k. */
static void test_gamma_moments(void) {
  const double shapes[] = {0.05, 0.5, 1, 3.5};
  for (size_t s = 0; s < PD_ARRAY_SIZE(shapes); s++) {
    uint64_t state = 42 + s;
    double sum = 0, sum2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
      double x = pd_gamma_sample(&state, shapes[s]);
      CHECK(x >= 0);
      sum += x;
      sum2 += x * x;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    /* the mean's standard error is sqrt(k / n); allow 5 of them */
    CHECK_NEAR(mean, shapes[s], 5 * sqrt(shapes[s] / n));
    CHECK_NEAR(var, shapes[s], 0.05 * shapes[s] + 0.01);
  }
}

int main(int argc, char **argv) {
  PD_RUN(test_iid_equal_sizes_every_row_once);
  PD_RUN(test_dirichlet_alpha_sets_heterogeneity);
  PD_RUN(test_shards_two_labels_per_device);
  PD_RUN(test_impossible_splits_name_the_key);
  PD_RUN(test_gamma_moments);
  PD_TEST_DONE();
}
