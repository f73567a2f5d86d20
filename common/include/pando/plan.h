/* Planning decisions shared by the coordinator and the workers, as pure functions: how a model's
 * key space is split over servers and how training rows are split over
 * workers and into steps. */
#ifndef PANDO_PLAN_H
#define PANDO_PLAN_H

#include <stdint.h>

/* Splits keys [0, keys) into `servers` contiguous ranges whose sizes differ by
 * at most one key (a tensor may span servers). Writes begin/end of range i to
 * begin[i], end[i]. Requires 1 <= servers <= keys. */
void pd_plan_shards(uint64_t keys, uint32_t servers, uint64_t *begin, uint64_t *end);

/* Steps every worker runs per epoch: ceil(smallest partition / batch), so
 * that all workers run the same number of clocks (BSP needs this); a worker's
 * last batch of an epoch takes the rows that remain. */
uint32_t pd_plan_steps_per_epoch(uint64_t rows, uint32_t workers, uint32_t batch_size);

/* Rows [*begin, *end) of batch `step` (0-based) of a partition of `rows` rows
 * run in `steps` steps of `batch_size`. */
void pd_plan_batch(uint64_t rows, uint32_t steps, uint32_t batch_size, uint32_t step,
                   uint64_t *begin, uint64_t *end);

#endif
