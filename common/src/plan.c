/* Shard and step planning; see plan.h. */
#include "pando/plan.h"

#include "pando/dataset.h"
#include "pando/error.h"

void pd_plan_shards(uint64_t keys, uint32_t servers, uint64_t *begin, uint64_t *end) {
  PD_ASSERT(servers >= 1 && servers <= keys);
  uint64_t base = keys / servers, extra = keys % servers, at = 0;
  for (uint32_t i = 0; i < servers; i++) {
    begin[i] = at;
    at += base + (i < extra ? 1 : 0);
    end[i] = at;
  }
}

uint32_t pd_plan_steps_per_epoch(uint64_t rows, uint32_t workers, uint32_t batch_size) {
  uint64_t smallest = rows / workers; /* partitions differ by at most one row */
  PD_ASSERT(smallest >= 1 && batch_size >= 1);
  return (uint32_t)((smallest + batch_size - 1) / batch_size);
}

void pd_plan_batch(uint64_t rows, uint32_t steps, uint32_t batch_size, uint32_t step,
                   uint64_t *begin, uint64_t *end) {
  PD_ASSERT(step < steps);
  *begin = (uint64_t)step * batch_size;
  *end = step + 1 == steps ? rows : *begin + batch_size;
  if (*end > rows)
    *end = rows;
}
