/* data.format synthetic: seeded, sparse, binary classification data that a
 * logistic regression can learn, generated row by row so that any range of
 * rows can be made on its own (each worker makes only what it needs). */
#include "pando/dataset.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

/* The label noise's standard deviation, relative to that of w.x: about 8%
 * of the labels disagree with the sign of w.x (atan(0.25) / pi). */
#define NOISE_RATIO 0.25
#define TRAIN_STREAM 0x747261696e000000ull /* "train" */
#define TEST_STREAM 0x7465737400000000ull  /* "test" */
#define WEIGHT_STREAM 0x7765696768740000ull

static uint64_t mix(uint64_t x) { return pd_splitmix64(&x); }

/* A uniform integer in [0, n) (Lemire's multiply-shift with rejection). */
static uint32_t uniform_below(uint64_t *state, uint32_t n) {
  uint64_t m = (pd_splitmix64(state) >> 32) * n;
  if ((uint32_t)m < n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    while ((uint32_t)m < threshold)
      m = (pd_splitmix64(state) >> 32) * n;
  }
  return (uint32_t)(m >> 32);
}

/* A uniform double in (0, 1). */
static double uniform_open(uint64_t *state) {
  return ((double)(pd_splitmix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* The hidden weight of feature j: uniform in [-1, 1), a function of (seed,
 * j) alone. Features 2m and 2m+1 have opposite weights, so the weights sum to
 * (about) zero and the classes are balanced. */
static float true_weight(uint64_t seed, uint32_t j) {
  uint64_t h = mix(seed ^ WEIGHT_STREAM ^ mix(j >> 1));
  float w = (float)(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
  return j & 1 ? -w : w;
}

/* Sorts k values uniform in [0, n): counted into k buckets by value, then
 * insertion-sorted (the buckets hold about one value each). `scratch` holds
 * 2k + 1 entries. */
static void sort_uniform(uint32_t *v, uint32_t k, uint32_t n, uint32_t *scratch) {
  if (k <= 24) {
    for (uint32_t i = 1; i < k; i++) {
      uint32_t x = v[i], j = i;
      for (; j > 0 && v[j - 1] > x; j--)
        v[j] = v[j - 1];
      v[j] = x;
    }
    return;
  }
  uint32_t *start = scratch, *sorted = scratch + k + 1;
  memset(start, 0, (k + 1) * sizeof *start);
  for (uint32_t i = 0; i < k; i++)
    start[(uint64_t)v[i] * k / n + 1]++;
  for (uint32_t b = 1; b <= k; b++)
    start[b] += start[b - 1];
  for (uint32_t i = 0; i < k; i++)
    sorted[start[(uint64_t)v[i] * k / n]++] = v[i];
  for (uint32_t i = 1; i < k; i++) { /* nearly sorted: insertion sort is linear */
    uint32_t x = sorted[i], j = i;
    for (; j > 0 && sorted[j - 1] > x; j--)
      sorted[j] = sorted[j - 1];
    sorted[j] = x;
  }
  memcpy(v, sorted, k * sizeof *v);
}

/* Writes k distinct features of [0, n), ascending, to idx. */
static void draw_features(uint64_t *state, uint32_t n, uint32_t k, uint32_t *idx,
                          uint32_t *scratch) {
  if ((uint64_t)k * 4 >= n) { /* dense rows: selection sampling (Knuth's algorithm S) */
    uint32_t chosen = 0;
    for (uint32_t j = 0; j < n && chosen < k; j++)
      if (uniform_below(state, n - j) < k - chosen)
        idx[chosen++] = j;
    return;
  }
  uint32_t have = 0; /* sparse rows: draw, sort, drop duplicates, draw the missing again */
  while (have < k) {
    for (uint32_t i = have; i < k; i++)
      idx[i] = uniform_below(state, n);
    sort_uniform(idx, k, n, scratch);
    have = 1;
    for (uint32_t i = 1; i < k; i++)
      if (idx[i] != idx[have - 1])
        idx[have++] = idx[i];
  }
}

/* Generates rows `index[0..rows)` (or row_begin + i when index is NULL) of a
 * split of `spec` into `out`. */
static void generate(const pd_synthetic_spec *spec, int test, uint64_t row_begin,
                     const uint64_t *index, uint64_t rows, pd_dataset *out) {
  uint64_t split_rows = test ? spec->test_rows : spec->rows;
  PD_ASSERT(spec->features >= 1 && spec->nnz >= 1 && spec->nnz <= spec->features);
  uint32_t n = (uint32_t)spec->features, k = (uint32_t)spec->nnz;
  memset(out, 0, sizeof *out);
  out->rows = rows;
  out->cols = n;
  out->row_ptr = pd_xmalloc((size_t)(rows + 1) * sizeof *out->row_ptr);
  out->col_idx = pd_xmalloc((size_t)(rows * k) * sizeof *out->col_idx);
  out->values = pd_xmalloc((size_t)(rows * k) * sizeof *out->values);
  out->targets = pd_xmalloc((size_t)(rows ? rows : 1) * sizeof *out->targets);
  out->labels = pd_xmalloc((size_t)(rows ? rows : 1));
  out->owned = 1;

  uint64_t stream = mix(spec->seed ^ (test ? TEST_STREAM : TRAIN_STREAM));
  double noise_sd = NOISE_RATIO * sqrt((double)k / 3.0); /* var(w_j) = 1/3, x_j = 1 */
  uint32_t *scratch = pd_xmalloc((2 * (size_t)k + 1) * sizeof *scratch);
  for (uint64_t i = 0; i < rows; i++) {
    uint64_t row = index ? index[i] : row_begin + i;
    PD_ASSERT(row < split_rows);
    uint64_t state = mix(stream + row); /* the row's own stream */
    uint32_t *idx = out->col_idx + i * k;
    float *values = out->values + i * k;
    draw_features(&state, n, k, idx, scratch);
    double margin = 0;
    for (uint32_t j = 0; j < k; j++) {
      values[j] = 1.0f;
      margin += true_weight(spec->seed, idx[j]);
    }
    double u1 = uniform_open(&state), u2 = uniform_open(&state);
    margin += noise_sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    out->labels[i] = margin > 0;
    out->targets[i] = margin > 0 ? 1.0f : 0.0f;
    out->row_ptr[i] = i * k;
  }
  out->row_ptr[rows] = rows * k;
  free(scratch);
}

void pd_dataset_synthetic(const pd_synthetic_spec *spec, int test, uint64_t row_begin,
                          uint64_t row_end, pd_dataset *out) {
  PD_ASSERT(row_begin <= row_end);
  generate(spec, test, row_begin, NULL, row_end - row_begin, out);
}

void pd_dataset_synthetic_rows(const pd_synthetic_spec *spec, int test, const uint64_t *index,
                               uint64_t n, pd_dataset *out) {
  generate(spec, test, 0, index, n, out);
}
