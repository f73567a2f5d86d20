/* Planning decisions shared by the coordinator and the workers, as pure functions: how a model's
 * key space is split over servers and how training rows are split over
 * workers (data.partition), shuffled (training.shuffle) and cut into steps. */
#ifndef PANDO_PLAN_H
#define PANDO_PLAN_H

#include <stdint.h>

#include "pando/spec.h"

/* Splits keys [0, keys) into `servers` contiguous ranges whose sizes differ by
 * at most one key (a tensor may span servers). Writes begin/end of range i to
 * begin[i], end[i]. Requires 1 <= servers <= keys. */
void pd_plan_shards(uint64_t keys, uint32_t servers, uint64_t *begin, uint64_t *end);

/* Splits `rows` into `workers` disjoint contiguous parts whose sizes differ by
 * at most one (the first rows % workers parts get the extra row), and returns
 * rank's part as [*begin, *end). Requires rank < workers. */
void pd_partition_contiguous(uint64_t rows, uint32_t workers, uint32_t rank, uint64_t *begin,
                             uint64_t *end);

/* The rows of the smallest worker partition when `rows` training rows are
 * split over `workers` workers with `partition`: rows / workers for the
 * disjoint schemes (parts differ by at most one row), all rows for
 * overlap_reshuffle (every worker draws from the whole set). */
uint64_t pd_plan_min_partition_rows(uint64_t rows, uint32_t workers, enum pd_partition partition);

/* The number of rows worker `rank` (< workers) gets under `scheme`: for the
 * disjoint schemes rows / workers, plus one for the first rows % workers
 * ranks (the sizes differ by at most one); for overlap_reshuffle all rows. */
uint64_t pd_plan_partition_size(uint64_t rows, uint32_t workers, uint32_t rank,
                                enum pd_partition scheme);

/* Writes the row indices of worker `rank` (< workers), in the order it visits
 * them, to `index` (pd_plan_partition_size() entries, caller-allocated).
 * SystemDS paramserv's schemes:
 *  - disjoint_contiguous: rows [begin, end) of pd_partition_contiguous(), in order;
 *  - disjoint_round_robin: rank, rank + workers, rank + 2 workers, ...;
 *  - disjoint_random: part `rank` (cut as disjoint_contiguous cuts) of one
 *    permutation of all rows seeded by `seed`, the same on every worker;
 *  - overlap_reshuffle: every row, in an order seeded by (seed, rank).
 * Across the workers of a disjoint scheme every row appears exactly once.
 * The result depends only on the arguments. Requires workers >= 1. */
void pd_plan_partition(uint64_t rows, uint32_t workers, uint32_t rank, enum pd_partition scheme,
                       uint64_t seed, uint64_t *index);

/* Steps every worker runs per epoch: ceil(size of the smallest partition /
 * batch_size), the same for all workers (BSP needs that every worker pushes
 * every clock). The smallest partition is rows / workers for the disjoint
 * schemes and all rows for overlap_reshuffle; a worker's last batch of an
 * epoch takes the rows that remain (pd_plan_batch()): at most
 * batch_size + 1 rows, for a worker with one row more than the smallest
 * partition. Requires rows >= workers (rows >= 1 for
 * overlap_reshuffle) and batch_size >= 1. */
uint32_t pd_plan_partition_steps(uint64_t rows, uint32_t workers, enum pd_partition scheme,
                                 uint32_t batch_size);

/* Shuffles index[0..n) in place (Fisher-Yates) with a generator seeded by
 * (seed, rank, epoch): training.shuffle's reordering of a worker's rows
 * before each epoch. Deterministic: the same list and arguments give the
 * same order; reshuffling a fresh copy of the partition each epoch makes
 * every epoch's order independent of the earlier ones. */
void pd_plan_shuffle(uint64_t *index, uint64_t n, uint64_t seed, uint32_t rank, uint32_t epoch);

/* Rows [*begin, *end) of batch `step` (0-based) of a partition of `rows` rows
 * run in `steps` steps of `batch_size`. */
void pd_plan_batch(uint64_t rows, uint32_t steps, uint32_t batch_size, uint32_t step,
                   uint64_t *begin, uint64_t *end);

#endif
