/* Schedules per epoch, as pure functions of the job spec: the learning rate
 * (training.lr_schedule), the batch size (training.batch_schedule), the steps
 * (batches) an epoch takes, the clocks it takes (training.frequency: one
 * clock = one pull and one push, covering one or more batches), and which
 * epoch a worker clock falls in. Epochs are 1-based; clocks (a worker's
 * global push number) and steps and clocks within an epoch are 0-based.
 * Servers, workers and the coordinator must agree on these. */
#ifndef PANDO_SCHEDULE_H
#define PANDO_SCHEDULE_H

#include <stdint.h>

#include "pando/spec.h"

/* The learning rate of epoch `epoch` (>= 1), with lr = optimizer.lr and e =
 * epoch:
 *   constant     lr
 *   step         lr * gamma^floor((e - 1) / step_epochs)
 *   exponential  lr * gamma^(e - 1)
 *   cosine       min_lr + (lr - min_lr) * (1 + cos(pi * (e - 1) / epochs)) / 2,
 *                epochs = training.epochs; epochs past the last give min_lr. */
double pd_schedule_lr(const pd_job_spec *spec, int epoch);

/* The batch size (rows per worker per step) of epoch `epoch` (>= 1):
 * training.batch_size, or with batch_schedule increase ("increase the batch
 * size instead of decaying the learning rate", Smith et al., ICLR 2018)
 * min(max_batch_size, round(batch_size * factor^floor((e - 1) / step_epochs))). */
uint32_t pd_schedule_batch_size(const pd_job_spec *spec, int epoch);

/* The steps every worker runs in epoch `epoch`: ceil(min_partition_rows /
 * batch size of the epoch), so that all workers run the same clocks; a
 * worker's last batch of an epoch takes the rows left. min_partition_rows
 * (>= 1) is the rows of the smallest partition (pd_plan_min_partition_rows). */
uint32_t pd_schedule_steps(const pd_job_spec *spec, uint64_t min_partition_rows, int epoch);

/* The batches one clock covers in epoch `epoch`: 1 with training.frequency
 * batch, min(training.nbatches, steps) with nbatches, all the epoch's steps
 * with epoch. The last clock of an epoch takes the batches left (fewer when
 * k does not divide the steps). */
uint32_t pd_schedule_batches_per_clock(const pd_job_spec *spec, uint64_t min_partition_rows,
                                       int epoch);

/* The clocks (pulls and pushes per worker) of epoch `epoch`:
 * ceil(pd_schedule_steps / pd_schedule_batches_per_clock); the steps with
 * frequency batch, 1 with frequency epoch. */
uint32_t pd_schedule_clocks(const pd_job_spec *spec, uint64_t min_partition_rows, int epoch);

/* The first clock of epoch `epoch` (>= 1): the clocks of the epochs before it.
 * The clocks of a whole job are [0, pd_schedule_epoch_begin(.., epochs + 1)). */
int64_t pd_schedule_epoch_begin(const pd_job_spec *spec, uint64_t min_partition_rows, int epoch);

/* Returns the epoch worker clock `clock` (>= 0) falls in and writes the clock
 * within that epoch to `*step` (may be NULL; with frequency batch it is the
 * step). Clocks past the job's last epoch fall in epochs of
 * pd_schedule_clocks(.., epochs + 1) clocks each (the
 * result saturates at INT_MAX), so the cost is bounded by the job's length
 * whatever clock a client sends. */
int pd_schedule_epoch_of_clock(const pd_job_spec *spec, uint64_t min_partition_rows, int64_t clock,
                               uint32_t *step);

#endif
