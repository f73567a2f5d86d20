/* Unit tests of the learning-rate and batch-size schedules and of locating
 * a clock in them, against values computed by hand. */
#include "pando/plan.h"
#include "pando/schedule.h"

#include <limits.h>
#include <stdint.h>

#include "../../test.h"

static pd_job_spec base_spec(void) {
  pd_job_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.training.epochs = 8;
  spec.training.batch_size = 64;
  spec.training.optimizer.type = PD_OPT_SGD;
  spec.training.optimizer.lr = 0.1;
  spec.training.lr_schedule.type = PD_LR_CONSTANT;
  spec.training.lr_schedule.step_epochs = 1;
  spec.training.lr_schedule.gamma = 0.1;
  spec.training.batch_schedule.type = PD_BATCH_CONSTANT;
  spec.training.batch_schedule.step_epochs = 1;
  spec.training.batch_schedule.factor = 2;
  spec.training.batch_schedule.max_batch_size = 65536;
  spec.training.frequency = PD_FREQ_BATCH;
  spec.training.nbatches = 1;
  spec.training.threads = 1;
  return spec;
}

static void test_lr_constant(void) {
  pd_job_spec spec = base_spec();
  CHECK(pd_schedule_lr(&spec, 1) == 0.1);
  CHECK(pd_schedule_lr(&spec, 5) == 0.1);
  CHECK(pd_schedule_lr(&spec, 1000) == 0.1);
}

/* lr 0.1, gamma 0.5 every 3 epochs: 0.1 for epochs 1-3, 0.05 for 4-6, 0.025 from 7. */
static void test_lr_step(void) {
  pd_job_spec spec = base_spec();
  spec.training.lr_schedule.type = PD_LR_STEP;
  spec.training.lr_schedule.gamma = 0.5;
  spec.training.lr_schedule.step_epochs = 3;
  const double want[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
  for (int e = 1; e <= 10; e++)
    CHECK_NEAR(pd_schedule_lr(&spec, e), want[e - 1], 1e-15);
  spec.training.lr_schedule.step_epochs = 1; /* every epoch, gamma 0.1 */
  spec.training.lr_schedule.gamma = 0.1;
  CHECK_NEAR(pd_schedule_lr(&spec, 3), 0.001, 1e-15);
}

/* lr 0.2, gamma 0.9: 0.2, 0.18, 0.162, ..., epoch 11: 0.2 * 0.9^10 = 0.06973568802. */
static void test_lr_exponential(void) {
  pd_job_spec spec = base_spec();
  spec.training.optimizer.lr = 0.2;
  spec.training.lr_schedule.type = PD_LR_EXPONENTIAL;
  spec.training.lr_schedule.gamma = 0.9;
  CHECK_NEAR(pd_schedule_lr(&spec, 1), 0.2, 1e-15);
  CHECK_NEAR(pd_schedule_lr(&spec, 2), 0.18, 1e-15);
  CHECK_NEAR(pd_schedule_lr(&spec, 3), 0.162, 1e-15);
  CHECK_NEAR(pd_schedule_lr(&spec, 11), 0.06973568802, 1e-12);
}

/* lr 0.1 down to min_lr 0.01 over 4 epochs: 0.01 + 0.09 (1 + cos(pi (e-1)/4)) / 2
 * = 0.1, 0.0868198052, 0.055, 0.0231801948; after the last epoch 0.01. */
static void test_lr_cosine(void) {
  pd_job_spec spec = base_spec();
  spec.training.epochs = 4;
  spec.training.lr_schedule.type = PD_LR_COSINE;
  spec.training.lr_schedule.min_lr = 0.01;
  CHECK_NEAR(pd_schedule_lr(&spec, 1), 0.1, 1e-15);
  CHECK_NEAR(pd_schedule_lr(&spec, 2), 0.0868198052, 1e-10);
  CHECK_NEAR(pd_schedule_lr(&spec, 3), 0.055, 1e-15);
  CHECK_NEAR(pd_schedule_lr(&spec, 4), 0.0231801948, 1e-10);
  CHECK_NEAR(pd_schedule_lr(&spec, 5), 0.01, 1e-15);
  CHECK_NEAR(pd_schedule_lr(&spec, 9), 0.01, 1e-15); /* stays at the floor */
  spec.training.epochs = 1;
  CHECK_NEAR(pd_schedule_lr(&spec, 1), 0.1, 1e-15);
  spec.training.lr_schedule.min_lr = 0;
  CHECK_NEAR(pd_schedule_lr(&spec, 2), 0, 1e-15);
}

static void test_batch_constant(void) {
  pd_job_spec spec = base_spec();
  spec.training.batch_schedule.max_batch_size = 10; /* only for increase */
  CHECK_EQ_INT(pd_schedule_batch_size(&spec, 1), 64);
  CHECK_EQ_INT(pd_schedule_batch_size(&spec, 100), 64);
}

/* batch 32, doubled every 2 epochs up to 200: 32, 32, 64, 64, 128, 128,
 * 200 (not 256), 200, ... */
static void test_batch_increase(void) {
  pd_job_spec spec = base_spec();
  spec.training.batch_size = 32;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.step_epochs = 2;
  spec.training.batch_schedule.max_batch_size = 200;
  const int want[] = {32, 32, 64, 64, 128, 128, 200, 200, 200};
  for (int e = 1; e <= 9; e++)
    CHECK_EQ_INT(pd_schedule_batch_size(&spec, e), want[e - 1]);
  CHECK_EQ_INT(pd_schedule_batch_size(&spec, 100000), 200);
  spec.training.batch_schedule.factor = 1000; /* 32 * 1000^49999 is inf */
  CHECK_EQ_INT(pd_schedule_batch_size(&spec, 100000), 200);
}

/* Rounded to the nearest integer: 10 * 1.5^k = 10, 15, 22.5, 33.75, 50.625
 * -> 10, 15, 23, 34, 51. */
static void test_batch_increase_rounds(void) {
  pd_job_spec spec = base_spec();
  spec.training.batch_size = 10;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.factor = 1.5;
  spec.training.batch_schedule.max_batch_size = 1000;
  const int want[] = {10, 15, 23, 34, 51};
  for (int e = 1; e <= 5; e++)
    CHECK_EQ_INT(pd_schedule_batch_size(&spec, e), want[e - 1]);
}

/* ceil(rows / batch): 1000 rows with batch 64 take 16 steps (15.625). */
static void test_steps(void) {
  pd_job_spec spec = base_spec();
  CHECK_EQ_INT(pd_schedule_steps(&spec, 1000, 1), 16);
  CHECK_EQ_INT(pd_schedule_steps(&spec, 64, 1), 1);
  CHECK_EQ_INT(pd_schedule_steps(&spec, 65, 1), 2);
  CHECK_EQ_INT(pd_schedule_steps(&spec, 1, 7), 1);
  CHECK_EQ_INT(pd_schedule_steps(&spec, 6400, 3), 100);
  /* with the batch schedule of test_batch_increase: 32, 32, 16, 16, 8, 8, 5 */
  spec.training.batch_size = 32;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.step_epochs = 2;
  spec.training.batch_schedule.max_batch_size = 200;
  const int want[] = {32, 32, 16, 16, 8, 8, 5, 5, 5};
  for (int e = 1; e <= 9; e++)
    CHECK_EQ_INT(pd_schedule_steps(&spec, 1000, e), want[e - 1]);
}

static void check_clock(const pd_job_spec *spec, uint64_t rows, int64_t clock, int epoch,
                        uint32_t step) {
  uint32_t got_step = UINT32_MAX;
  CHECK_EQ_INT(pd_schedule_epoch_of_clock(spec, rows, clock, &got_step), epoch);
  CHECK_EQ_INT(got_step, step);
}

/* Constant batch: 16 steps per epoch, clock c is in epoch c / 16 + 1. */
static void test_clock_constant_batch(void) {
  pd_job_spec spec = base_spec();
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, 1), 0);
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, 2), 16);
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, 9), 128);
  check_clock(&spec, 1000, 0, 1, 0);
  check_clock(&spec, 1000, 15, 1, 15);
  check_clock(&spec, 1000, 16, 2, 0);
  check_clock(&spec, 1000, 127, 8, 15);
  check_clock(&spec, 1000, 128, 9, 0); /* past the last epoch */
  CHECK_EQ_INT(pd_schedule_epoch_of_clock(&spec, 1000, 1600, NULL), 101);
}

/* The batch schedule of test_steps over 8 epochs of 1000 rows: steps 32,
 * 32, 16, 16, 8, 8, 5, 5, so epochs begin at clocks 0, 32, 64, 80, 96, 104,
 * 112, 117; the job has 122 clocks; later epochs keep 5 steps. */
static void test_clock_increasing_batch(void) {
  pd_job_spec spec = base_spec();
  spec.training.batch_size = 32;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.step_epochs = 2;
  spec.training.batch_schedule.max_batch_size = 200;
  const int64_t begin[] = {0, 32, 64, 80, 96, 104, 112, 117, 122, 127};
  for (int e = 1; e <= 10; e++)
    CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, e), begin[e - 1]);
  check_clock(&spec, 1000, 0, 1, 0);
  check_clock(&spec, 1000, 31, 1, 31);
  check_clock(&spec, 1000, 32, 2, 0);
  check_clock(&spec, 1000, 63, 2, 31);
  check_clock(&spec, 1000, 64, 3, 0);
  check_clock(&spec, 1000, 80, 4, 0);
  check_clock(&spec, 1000, 95, 4, 15);
  check_clock(&spec, 1000, 96, 5, 0);
  check_clock(&spec, 1000, 111, 6, 7);
  check_clock(&spec, 1000, 112, 7, 0);
  check_clock(&spec, 1000, 121, 8, 4);
  check_clock(&spec, 1000, 122, 9, 0);
  check_clock(&spec, 1000, 126, 9, 4);
  check_clock(&spec, 1000, 127, 10, 0);
  /* every clock agrees with the epochs' beginnings and steps */
  for (int64_t clock = 0; clock < 300; clock++) {
    uint32_t step;
    int e = pd_schedule_epoch_of_clock(&spec, 1000, clock, &step);
    int64_t b = pd_schedule_epoch_begin(&spec, 1000, e);
    CHECK(b <= clock && clock < b + pd_schedule_steps(&spec, 1000, e));
    CHECK_EQ_INT(clock - b, step);
  }
}

/* The batch outgrows the partition before reaching its maximum: 100 rows,
 * batch 64 doubled every epoch: 2 steps, then 1 step per epoch forever. */
static void test_clock_batch_outgrows_partition(void) {
  pd_job_spec spec = base_spec();
  spec.training.epochs = 30;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  CHECK_EQ_INT(pd_schedule_steps(&spec, 100, 1), 2);
  CHECK_EQ_INT(pd_schedule_steps(&spec, 100, 2), 1);
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 100, 30), 30);
  check_clock(&spec, 100, 1, 1, 1);
  check_clock(&spec, 100, 2, 2, 0);
  check_clock(&spec, 100, 30, 30, 0);
  check_clock(&spec, 100, 1000, 1000, 0);
}

/* Any clock a client may send is located quickly and saturates. */
static void test_clock_far_future(void) {
  pd_job_spec spec = base_spec();
  spec.training.epochs = 100000;
  spec.training.batch_size = 1;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.factor = 1.0000001; /* grows very slowly */
  CHECK_EQ_INT(pd_schedule_epoch_of_clock(&spec, 10, INT64_MAX, NULL), INT_MAX);
  spec.training.batch_schedule.type = PD_BATCH_CONSTANT;
  CHECK_EQ_INT(pd_schedule_epoch_of_clock(&spec, 10, INT64_MAX, NULL), INT_MAX);
}

/* training.frequency: 1000 rows in batches of 64 are 16 steps; nbatches 3
 * makes 6 clocks per epoch (3, 3, 3, 3, 3, 1 batches), nbatches 16 or more
 * and epoch make 1; the clocks index the pushes, so epochs begin every 6
 * (or 1) clocks and the servers' lr schedule follows. */
static void test_clocks_of_frequency(void) {
  pd_job_spec spec = base_spec();
  CHECK_EQ_INT(pd_schedule_batches_per_clock(&spec, 1000, 1), 1);
  CHECK_EQ_INT(pd_schedule_clocks(&spec, 1000, 1), 16);
  spec.training.frequency = PD_FREQ_NBATCHES;
  spec.training.nbatches = 1;
  CHECK_EQ_INT(pd_schedule_clocks(&spec, 1000, 1), 16);
  spec.training.nbatches = 3;
  CHECK_EQ_INT(pd_schedule_batches_per_clock(&spec, 1000, 1), 3);
  CHECK_EQ_INT(pd_schedule_clocks(&spec, 1000, 1), 6);
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, 2), 6);
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, 9), 48);
  check_clock(&spec, 1000, 5, 1, 5);
  check_clock(&spec, 1000, 6, 2, 0);
  check_clock(&spec, 1000, 47, 8, 5);
  spec.training.nbatches = 16;
  CHECK_EQ_INT(pd_schedule_clocks(&spec, 1000, 1), 1);
  spec.training.nbatches = 1000;
  CHECK_EQ_INT(pd_schedule_batches_per_clock(&spec, 1000, 1), 16);
  CHECK_EQ_INT(pd_schedule_clocks(&spec, 1000, 1), 1);
  spec.training.frequency = PD_FREQ_EPOCH;
  CHECK_EQ_INT(pd_schedule_batches_per_clock(&spec, 1000, 1), 16);
  CHECK_EQ_INT(pd_schedule_clocks(&spec, 1000, 1), 1);
  CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, 9), 8);
  check_clock(&spec, 1000, 3, 4, 0);
  check_clock(&spec, 1000, 1600, 1601, 0);
  /* with an increasing batch (32, 32, 16, 16, 8, 8, 5, 5 steps) and
   * nbatches 3: 11, 11, 6, 6, 3, 3, 2, 2 clocks */
  spec.training.frequency = PD_FREQ_NBATCHES;
  spec.training.nbatches = 3;
  spec.training.batch_size = 32;
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.step_epochs = 2;
  spec.training.batch_schedule.max_batch_size = 200;
  const int64_t begin[] = {0, 11, 22, 28, 34, 37, 40, 42, 44};
  for (int e = 1; e <= 9; e++)
    CHECK_EQ_INT(pd_schedule_epoch_begin(&spec, 1000, e), begin[e - 1]);
  for (int64_t clock = 0; clock < 100; clock++) {
    uint32_t step;
    int e = pd_schedule_epoch_of_clock(&spec, 1000, clock, &step);
    int64_t b = pd_schedule_epoch_begin(&spec, 1000, e);
    CHECK(b <= clock && clock < b + pd_schedule_clocks(&spec, 1000, e));
    CHECK_EQ_INT(clock - b, step);
  }
}

static void test_min_partition_rows(void) {
  CHECK_EQ_INT(pd_plan_min_partition_rows(1000, 4, PD_PARTITION_DISJOINT_CONTIGUOUS), 250);
  CHECK_EQ_INT(pd_plan_min_partition_rows(1003, 4, PD_PARTITION_DISJOINT_CONTIGUOUS), 250);
  CHECK_EQ_INT(pd_plan_min_partition_rows(1003, 4, PD_PARTITION_DISJOINT_ROUND_ROBIN), 250);
  CHECK_EQ_INT(pd_plan_min_partition_rows(1003, 4, PD_PARTITION_DISJOINT_RANDOM), 250);
  CHECK_EQ_INT(pd_plan_min_partition_rows(1003, 4, PD_PARTITION_OVERLAP_RESHUFFLE), 1003);
  CHECK_EQ_INT(pd_plan_min_partition_rows(7, 1, PD_PARTITION_DISJOINT_CONTIGUOUS), 7);
}

int main(int argc, char **argv) {
  PD_RUN(test_lr_constant);
  PD_RUN(test_lr_step);
  PD_RUN(test_lr_exponential);
  PD_RUN(test_lr_cosine);
  PD_RUN(test_batch_constant);
  PD_RUN(test_batch_increase);
  PD_RUN(test_batch_increase_rounds);
  PD_RUN(test_steps);
  PD_RUN(test_clock_constant_batch);
  PD_RUN(test_clock_increasing_batch);
  PD_RUN(test_clock_batch_outgrows_partition);
  PD_RUN(test_clock_far_future);
  PD_RUN(test_clocks_of_frequency);
  PD_RUN(test_min_partition_rows);
  PD_TEST_DONE();
}
