/* Learning-rate and batch-size schedules; see schedule.h. */
#include "pando/schedule.h"

#include <limits.h>
#include <math.h>

#include "pando/error.h"

double pd_schedule_lr(const pd_job_spec *spec, int epoch) {
  PD_ASSERT(epoch >= 1);
  const double lr = spec->training.optimizer.lr;
  const int e = epoch - 1; /* epochs already done */
  switch (spec->training.lr_schedule.type) {
  case PD_LR_STEP:
    return lr * pow(spec->training.lr_schedule.gamma, e / spec->training.lr_schedule.step_epochs);
  case PD_LR_EXPONENTIAL:
    return lr * pow(spec->training.lr_schedule.gamma, e);
  case PD_LR_COSINE: {
    const double min_lr = spec->training.lr_schedule.min_lr;
    const int epochs = spec->training.epochs;
    double done = e < epochs ? e : epochs; /* after the last epoch: min_lr */
    return min_lr + (lr - min_lr) * (1 + cos(M_PI * done / epochs)) / 2;
  }
  default:
    return lr;
  }
}

uint32_t pd_schedule_batch_size(const pd_job_spec *spec, int epoch) {
  PD_ASSERT(epoch >= 1);
  const int batch_size = spec->training.batch_size;
  if (spec->training.batch_schedule.type != PD_BATCH_INCREASE)
    return (uint32_t)batch_size;
  int increases = (epoch - 1) / spec->training.batch_schedule.step_epochs;
  double batch = batch_size * pow(spec->training.batch_schedule.factor, increases);
  batch = fmin(batch, spec->training.batch_schedule.max_batch_size); /* also for inf */
  long long rounded = llround(batch);
  return rounded < 1 ? 1 : (uint32_t)rounded;
}

uint32_t pd_schedule_steps(const pd_job_spec *spec, uint64_t min_partition_rows, int epoch) {
  PD_ASSERT(min_partition_rows >= 1);
  uint64_t batch = pd_schedule_batch_size(spec, epoch);
  return (uint32_t)((min_partition_rows + batch - 1) / batch);
}

uint32_t pd_schedule_batches_per_clock(const pd_job_spec *spec, uint64_t min_partition_rows,
                                       int epoch) {
  uint32_t steps = pd_schedule_steps(spec, min_partition_rows, epoch);
  switch (spec->training.frequency) {
  case PD_FREQ_EPOCH:
    return steps;
  case PD_FREQ_NBATCHES:
    return (uint32_t)spec->training.nbatches < steps ? (uint32_t)spec->training.nbatches : steps;
  default:
    return 1;
  }
}

uint32_t pd_schedule_clocks(const pd_job_spec *spec, uint64_t min_partition_rows, int epoch) {
  uint32_t steps = pd_schedule_steps(spec, min_partition_rows, epoch);
  uint32_t per_clock = pd_schedule_batches_per_clock(spec, min_partition_rows, epoch);
  return (steps + per_clock - 1) / per_clock;
}

/* How many epochs from `epoch` on are sure to run the same steps (so the same
 * clocks) as `epoch`
 * (to the end of its batch size's span), or 0 if all of them do: the batch
 * size no longer grows (or no longer changes the steps), or the job's epochs
 * are over (later epochs repeat the steps of the first one after the end, so
 * that walking the schedule costs at most one iteration per span). */
static int64_t same_steps_run(const pd_job_spec *spec, uint64_t min_partition_rows, int64_t epoch) {
  const int span = spec->training.batch_schedule.step_epochs;
  if (spec->training.batch_schedule.type != PD_BATCH_INCREASE ||
      spec->training.batch_schedule.factor == 1 || epoch > spec->training.epochs)
    return 0;
  if (pd_schedule_batch_size(spec, (int)epoch) >=
          (uint32_t)spec->training.batch_schedule.max_batch_size ||
      pd_schedule_steps(spec, min_partition_rows, (int)epoch) == 1)
    return 0;
  return span - (epoch - 1) % span;
}

int64_t pd_schedule_epoch_begin(const pd_job_spec *spec, uint64_t min_partition_rows, int epoch) {
  PD_ASSERT(epoch >= 1);
  int64_t clock = 0, at = 1;
  while (at < epoch) {
    int64_t run = same_steps_run(spec, min_partition_rows, at);
    if (run == 0 || run > epoch - at)
      run = epoch - at;
    clock += run * pd_schedule_clocks(spec, min_partition_rows, (int)at);
    at += run;
  }
  return clock;
}

int pd_schedule_epoch_of_clock(const pd_job_spec *spec, uint64_t min_partition_rows, int64_t clock,
                               uint32_t *step) {
  PD_ASSERT(clock >= 0);
  uint64_t left = (uint64_t)clock;
  int64_t at = 1;
  for (;;) {
    uint64_t clocks = pd_schedule_clocks(spec, min_partition_rows, (int)at);
    int64_t run = same_steps_run(spec, min_partition_rows, at);
    if (run == 0 || left < (uint64_t)run * clocks) {
      uint64_t epoch = (uint64_t)at + left / clocks;
      if (step)
        *step = (uint32_t)(left % clocks);
      return epoch > INT_MAX ? INT_MAX : (int)epoch;
    }
    left -= (uint64_t)run * clocks;
    at += run;
  }
}
