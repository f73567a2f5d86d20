/* Seeded iid, Dirichlet and shard partitions over simulated devices; see
 * pando/partition.h. */
#include "pando/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

#define CLASSES 256
/* Domains of the generators, so that no two uses share a stream. */
#define IID_STREAM 0x6665642d69696400ull       /* "fed-iid" */
#define DIRICHLET_STREAM 0x6665642d64697200ull /* "fed-dir" */
#define SHARDS_STREAM 0x6665642d73686400ull    /* "fed-shd" */

/* A standard normal deviate (Box-Muller). */
static double normal(uint64_t *state) {
  double u1 = pd_random_unit(state), u2 = pd_random_unit(state);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

double pd_gamma_sample(uint64_t *state, double shape) {
  if (shape < 1.0) {
    double u = pd_random_unit(state);
    return pd_gamma_sample(state, shape + 1.0) * pow(1.0 - u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = normal(state), v = 1.0 + c * x;
    if (v <= 0)
      continue;
    v = v * v * v;
    double u = pd_random_unit(state);
    if (log(1.0 - u) < 0.5 * x * x + d - d * v + d * log(v))
      return d * v;
  }
}

static void alloc(pd_device_partition *p, uint32_t devices, uint64_t rows) {
  p->devices = devices;
  p->offset = pd_xcalloc((size_t)devices + 1, sizeof *p->offset);
  p->index = pd_xmalloc((size_t)(rows ? rows : 1) * sizeof *p->index);
}

/* Equal sizes: the first rows % devices devices get one more row. */
static void equal_offsets(pd_device_partition *p, uint64_t rows) {
  for (uint32_t d = 0; d < p->devices; d++)
    p->offset[d + 1] = p->offset[d] + rows / p->devices + (d < rows % p->devices ? 1 : 0);
}

static void split_iid(pd_device_partition *p, uint64_t rows, uint64_t seed) {
  uint64_t state = pd_mix64(seed ^ IID_STREAM);
  for (uint64_t r = 0; r < rows; r++)
    p->index[r] = r;
  pd_shuffle_u64(p->index, rows, &state);
  equal_offsets(p, rows);
}

/* Rows of each class, in a shuffled order: class c's rows are
 * pool[start[c] .. start[c] + count[c]). */
static void class_pools(const uint8_t *labels, uint64_t rows, uint64_t *pool, uint64_t *start,
                        uint64_t *count) {
  memset(count, 0, CLASSES * sizeof *count);
  for (uint64_t r = 0; r < rows; r++)
    count[labels[r]]++;
  uint64_t at = 0;
  for (int c = 0; c < CLASSES; c++) {
    start[c] = at;
    at += count[c];
  }
  uint64_t *fill = pd_xmalloc(CLASSES * sizeof *fill);
  memcpy(fill, start, CLASSES * sizeof *fill);
  for (uint64_t r = 0; r < rows; r++)
    pool[fill[labels[r]]++] = r;
  free(fill);
}

static void split_dirichlet(pd_device_partition *p, const uint8_t *labels, uint64_t rows,
                            double alpha, uint64_t seed) {
  uint64_t state = pd_mix64(seed ^ DIRICHLET_STREAM);
  uint64_t *pool = pd_xmalloc((size_t)rows * sizeof *pool);
  uint64_t start[CLASSES], count[CLASSES], left[CLASSES];
  class_pools(labels, rows, pool, start, count);
  for (int c = 0; c < CLASSES; c++) {
    pd_shuffle_u64(pool + start[c], count[c], &state);
    left[c] = count[c];
  }
  equal_offsets(p, rows);
  /* each device's mix q_d ~ Dir(alpha p) */
  double *q = pd_xmalloc((size_t)p->devices * CLASSES * sizeof *q);
  for (uint32_t d = 0; d < p->devices; d++)
    for (int c = 0; c < CLASSES; c++)
      q[(size_t)d * CLASSES + c] =
          count[c] ? pd_gamma_sample(&state, alpha * (double)count[c] / (double)rows) : 0;
  /* rows are drawn one per device in turn, so that classes running out
   * late affect every device alike rather than the last ones */
  uint64_t most = rows / p->devices + (rows % p->devices ? 1 : 0);
  for (uint64_t k = 0; k < most; k++)
    for (uint32_t d = 0; d < p->devices; d++) {
      if (p->offset[d] + k >= p->offset[d + 1])
        continue;
      const double *qd = q + (size_t)d * CLASSES;
      double total = 0;
      for (int c = 0; c < CLASSES; c++)
        total += left[c] ? qd[c] : 0;
      int pick = -1;
      if (total > 0) {
        double u = pd_random_unit(&state) * total;
        for (int c = 0; c < CLASSES && pick < 0; c++)
          if (left[c] && (u -= qd[c]) < 0)
            pick = c;
      }
      if (pick < 0) { /* rounding, an all-zero draw (tiny alpha), or its classes ran out */
        uint64_t rest = 0;
        for (int c = 0; c < CLASSES; c++)
          rest += left[c];
        uint64_t u = pd_random_below(&state, rest);
        for (int c = 0; c < CLASSES && pick < 0; c++) {
          if (u < left[c])
            pick = c;
          else
            u -= left[c];
        }
      }
      p->index[p->offset[d] + k] = pool[start[pick] + count[pick] - left[pick]];
      left[pick]--;
    }
  free(q);
  free(pool);
}

static void split_shards(pd_device_partition *p, const uint8_t *labels, uint64_t rows,
                         uint64_t nshards, uint64_t seed) {
  uint64_t state = pd_mix64(seed ^ SHARDS_STREAM);
  uint64_t start[CLASSES], count[CLASSES];
  uint64_t *sorted = pd_xmalloc((size_t)rows * sizeof *sorted);
  class_pools(labels, rows, sorted, start, count); /* stable: rows ascending within a class */
  uint64_t *order = pd_xmalloc((size_t)nshards * sizeof *order);
  for (uint64_t s = 0; s < nshards; s++)
    order[s] = s;
  pd_shuffle_u64(order, nshards, &state);
  uint64_t per = nshards / p->devices, at = 0;
  for (uint32_t d = 0; d < p->devices; d++) {
    for (uint64_t k = 0; k < per; k++) {
      uint64_t s = order[d * per + k];
      uint64_t b = s * (rows / nshards) + PD_MIN(s, rows % nshards);
      uint64_t e = b + rows / nshards + (s < rows % nshards ? 1 : 0);
      memcpy(p->index + at, sorted + b, (size_t)(e - b) * sizeof *sorted);
      at += e - b;
    }
    p->offset[d + 1] = at;
  }
  free(order);
  free(sorted);
}

int pd_device_partition_init(pd_device_partition *out, const uint8_t *labels, uint64_t rows,
                             uint32_t devices, enum pd_partition scheme, double alpha,
                             int shards_per_device, uint64_t seed, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (devices == 0 || rows < devices)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "simulation.devices: %u devices for %llu training rows: each device needs at "
                   "least one row",
                   devices, (unsigned long long)rows);
  if (scheme != PD_PARTITION_IID && !labels)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.partition: %s needs classification data (labels 0..255)",
                   pd_partition_name(scheme));
  uint64_t nshards = (uint64_t)devices * (uint64_t)(shards_per_device > 0 ? shards_per_device : 1);
  if (scheme == PD_PARTITION_SHARDS && nshards > rows)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.shards_per_device: %u devices x %d shards is more than the %llu training "
                   "rows",
                   devices, shards_per_device, (unsigned long long)rows);
  if (scheme == PD_PARTITION_DIRICHLET && !(alpha > 0))
    return pd_errf(err, errlen, -PD_EINVAL_SPEC, "data.alpha: must be > 0, got %g", alpha);
  switch (scheme) {
  case PD_PARTITION_IID:
    alloc(out, devices, rows);
    split_iid(out, rows, seed);
    return 0;
  case PD_PARTITION_DIRICHLET:
    alloc(out, devices, rows);
    split_dirichlet(out, labels, rows, alpha, seed);
    return 0;
  case PD_PARTITION_SHARDS:
    alloc(out, devices, rows);
    split_shards(out, labels, rows, nshards, seed);
    return 0;
  default:
    break;
  }
  return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "data.partition: %s does not split data over devices (use iid, dirichlet or "
                 "shards)",
                 pd_partition_name(scheme));
}

void pd_device_partition_close(pd_device_partition *p) {
  free(p->offset);
  free(p->index);
  memset(p, 0, sizeof *p);
}
