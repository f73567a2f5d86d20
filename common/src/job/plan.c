/* Shard and step planning; see plan.h. */
#include "pando/plan.h"

#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

void pd_plan_shards(uint64_t keys, uint32_t servers, uint64_t *begin, uint64_t *end) {
  PD_ASSERT(servers >= 1 && servers <= keys);
  uint64_t base = keys / servers, extra = keys % servers, at = 0;
  for (uint32_t i = 0; i < servers; i++) {
    begin[i] = at;
    at += base + (i < extra ? 1 : 0);
    end[i] = at;
  }
}

void pd_partition_contiguous(uint64_t rows, uint32_t workers, uint32_t rank, uint64_t *begin,
                             uint64_t *end) {
  PD_ASSERT(workers > 0 && rank < workers);
  uint64_t base = rows / workers, extra = rows % workers;
  *begin = rank * base + PD_MIN((uint64_t)rank, extra);
  *end = *begin + base + (rank < extra ? 1 : 0);
}

uint64_t pd_plan_min_partition_rows(uint64_t rows, uint32_t workers, enum pd_partition partition) {
  PD_ASSERT(workers >= 1);
  if (partition == PD_PARTITION_OVERLAP_RESHUFFLE)
    return rows;
  return rows / workers;
}

/* Domains of the generators, so that no two uses share a stream. */
#define RANDOM_PARTITION_STREAM 0x7061727469746e00ull /* "partitn" */
#define RESHUFFLE_STREAM 0x7265736875666c00ull        /* "reshufl" */
#define EPOCH_STREAM 0x65706f6368000000ull            /* "epoch" */

static uint64_t mix(uint64_t x) { return pd_splitmix64(&x); }

/* Fisher-Yates with the generator `state`. */
static void shuffle(uint64_t *index, uint64_t n, uint64_t state) {
  pd_shuffle_u64(index, n, &state);
}

uint64_t pd_plan_partition_size(uint64_t rows, uint32_t workers, uint32_t rank,
                                enum pd_partition scheme) {
  PD_ASSERT(workers >= 1 && rank < workers);
  if (scheme == PD_PARTITION_OVERLAP_RESHUFFLE)
    return rows;
  return rows / workers + (rank < rows % workers ? 1 : 0);
}

void pd_plan_partition(uint64_t rows, uint32_t workers, uint32_t rank, enum pd_partition scheme,
                       uint64_t seed, uint64_t *index) {
  uint64_t begin, end;
  PD_ASSERT(workers >= 1 && rank < workers);
  switch (scheme) {
  case PD_PARTITION_DISJOINT_CONTIGUOUS:
    pd_partition_contiguous(rows, workers, rank, &begin, &end);
    for (uint64_t r = begin; r < end; r++)
      index[r - begin] = r;
    return;
  case PD_PARTITION_DISJOINT_ROUND_ROBIN:
    for (uint64_t r = rank, i = 0; r < rows; r += workers)
      index[i++] = r;
    return;
  case PD_PARTITION_DISJOINT_RANDOM: {
    uint64_t *all = pd_xmalloc((size_t)(rows ? rows : 1) * sizeof *all);
    for (uint64_t r = 0; r < rows; r++)
      all[r] = r;
    shuffle(all, rows, mix(seed ^ RANDOM_PARTITION_STREAM));
    pd_partition_contiguous(rows, workers, rank, &begin, &end);
    memcpy(index, all + begin, (size_t)(end - begin) * sizeof *all);
    free(all);
    return;
  }
  case PD_PARTITION_OVERLAP_RESHUFFLE:
    for (uint64_t r = 0; r < rows; r++)
      index[r] = r;
    shuffle(index, rows, mix(mix(seed ^ RESHUFFLE_STREAM) + rank));
    return;
  case PD_PARTITION_IID:
  case PD_PARTITION_DIRICHLET:
  case PD_PARTITION_SHARDS:
    break; /* device partitions need labels: pando/partition.h */
  }
  PD_ASSERT(!"unknown partition scheme");
}

uint32_t pd_plan_partition_steps(uint64_t rows, uint32_t workers, enum pd_partition scheme,
                                 uint32_t batch_size) {
  PD_ASSERT(workers >= 1 && batch_size >= 1);
  uint64_t smallest = scheme == PD_PARTITION_OVERLAP_RESHUFFLE ? rows : rows / workers;
  PD_ASSERT(smallest >= 1);
  return (uint32_t)((smallest + batch_size - 1) / batch_size);
}

void pd_plan_shuffle(uint64_t *index, uint64_t n, uint64_t seed, uint32_t rank, uint32_t epoch) {
  shuffle(index, n, mix(mix(mix(seed ^ EPOCH_STREAM) + rank) + epoch));
}

void pd_plan_batch(uint64_t rows, uint32_t steps, uint32_t batch_size, uint32_t step,
                   uint64_t *begin, uint64_t *end) {
  PD_ASSERT(step < steps);
  *begin = (uint64_t)step * batch_size;
  *end = step + 1 == steps ? rows : *begin + batch_size;
  if (*end > rows)
    *end = rows;
}
