/* Unit tests of the coordinator's recovery decisions (services/coordinator/
 * recovery.c): which jobs can recover, and the checkpoint every shard rolls
 * back to (0: the start), also over a whole sequence of restore passes. */
#include "../../../services/coordinator/recovery.h"

#include <string.h>

#include "../../test.h"

/* The cut of one pass: the smallest answer; agreed only when all equal and
 * the shards are there (an id, or target 0: made anew). */
static void test_cut_one_pass(void) {
  int agreed = 1;
  uint64_t same[] = {8, 8, 8};
  CHECK_EQ_INT(pd_recovery_cut(same, 3, PD_RECOVERY_NEWEST, &agreed), 8);
  CHECK_EQ_INT(agreed, 1);
  CHECK_EQ_INT(pd_recovery_cut(same, 3, 8, &agreed), 8);
  CHECK_EQ_INT(agreed, 1);
  uint64_t apart[] = {12, 8, 12};
  CHECK_EQ_INT(pd_recovery_cut(apart, 3, PD_RECOVERY_NEWEST, &agreed), 8);
  CHECK_EQ_INT(agreed, 0);
  uint64_t one[] = {4};
  CHECK_EQ_INT(pd_recovery_cut(one, 1, PD_RECOVERY_NEWEST, &agreed), 4);
  CHECK_EQ_INT(agreed, 1);
  uint64_t none[] = {0, 0}, some[] = {0, 8};
  /* refused restores: no shard was reset yet, the next pass makes them anew */
  CHECK_EQ_INT(pd_recovery_cut(none, 2, PD_RECOVERY_NEWEST, &agreed), 0);
  CHECK_EQ_INT(agreed, 0);
  CHECK_EQ_INT(pd_recovery_cut(some, 2, 8, &agreed), 0);
  CHECK_EQ_INT(agreed, 0);
  CHECK_EQ_INT(pd_recovery_cut(none, 2, 0, &agreed), 0); /* made anew: the start */
  CHECK_EQ_INT(agreed, 1);
  CHECK_EQ_INT(pd_recovery_cut(NULL, 0, PD_RECOVERY_NEWEST, &agreed), 0);
  CHECK_EQ_INT(agreed, 0);
}

/* What a shard holding `ids` (ascending, n of them) restores for `target`:
 * its newest id <= target (0: none), as CreateShard's restore_checkpoint. */
static uint64_t restore(const uint64_t *ids, size_t n, uint64_t target) {
  uint64_t best = 0;
  for (size_t i = 0; i < n; i++)
    if (ids[i] <= target)
      best = ids[i];
  return best;
}

/* Passes as jobs.c runs them (target 0 makes every shard anew: answer 0).
 * Returns the checkpoint they agree on; *passes receives how many ran. */
static uint64_t run_passes(const uint64_t *const *held, const size_t *nheld, size_t n,
                           int *passes) {
  uint64_t answers[8], target = PD_RECOVERY_NEWEST;
  int agreed = 0;
  for (*passes = 0; !agreed && *passes < 10; (*passes)++) {
    for (size_t s = 0; s < n; s++)
      answers[s] = target == 0 ? 0 : restore(held[s], nheld[s], target);
    target = pd_recovery_cut(answers, n, target, &agreed);
  }
  return agreed ? target : UINT64_MAX;
}

/* The passes end at the newest checkpoint every shard holds, even when a
 * shard lacks an id the others have (keep pruned it, or its files failed
 * their checksum); with none in common, at the start (0). */
static void test_cut_over_passes(void) {
  static const uint64_t a[] = {8, 12, 16}, b[] = {4, 8, 12}, c[] = {4, 12, 16};
  const uint64_t *held[] = {a, b, c};
  const size_t nheld[] = {3, 3, 3};
  int passes = 0;
  CHECK_EQ_INT(run_passes(held, nheld, 3, &passes), 12); /* 16 is not on b */
  CHECK_EQ_INT(passes, 2);
  static const uint64_t d[] = {8}, e[] = {4, 12};
  const uint64_t *disjoint[] = {d, e};
  const size_t ndisjoint[] = {1, 2};
  CHECK_EQ_INT(run_passes(disjoint, ndisjoint, 2, &passes), 0);
  CHECK_EQ_INT(passes, 4); /* newest: 8, 12; to 8: 8, 4; to 4: 0, 4; to 0: anew */
  const size_t nothing[] = {0, 0};
  CHECK_EQ_INT(run_passes(disjoint, nothing, 2, &passes), 0); /* died before any */
  CHECK_EQ_INT(passes, 2);
}

/* Parses `base` + `extra` into *spec; prints the error of a bad one. */
static int parse(const char *extra, pd_job_spec *spec) {
  char yaml[1024], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: r\n"
           "model: {type: softmax, layers: [784, 10]}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 1, batch_size: 10, update: bsp, optimizer: {lr: 0.1}}\n"
           "cluster: {servers: 1, workers: 1}\n"
           "%s",
           extra);
  int rc = pd_job_spec_parse(yaml, strlen(yaml), spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  spec: %s\n", err);
  return rc;
}

/* Checkpoints make a job recoverable; none do not. */
static void test_possible(void) {
  pd_job_spec spec;
  CHECK_EQ_INT(parse("checkpoint: {every_clocks: 10}\n", &spec), 0);
  CHECK(pd_recovery_possible(&spec));
  CHECK_EQ_INT(parse("checkpoint: {every_epochs: 1}\n", &spec), 0);
  CHECK(pd_recovery_possible(&spec));
  CHECK_EQ_INT(parse("", &spec), 0);
  CHECK(!pd_recovery_possible(&spec));
}

int main(int argc, char **argv) {
  PD_RUN(test_cut_one_pass);
  PD_RUN(test_cut_over_passes);
  PD_RUN(test_possible);
  PD_TEST_DONE();
}
