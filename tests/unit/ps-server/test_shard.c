/* Unit tests of a ps-server shard (services/ps-server/shard.c), where
 * parameters change: copy-on-write blocks under leased pull slices, BSP
 * averaging and parked pulls, backup workers' per-worker buffers, and the
 * learning rate of each push's epoch. Values are checked against the shard's
 * initial values and the SGD rule (value -= lr * gradient). */
#include "../../../services/ps-server/shard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../../services/ps-server/fedagg.h"
#include "../../test.h"
#include "pando/util.h"

/* A softmax job of `inputs` x 2 (+ 2 biases) keys with plain SGD; `training`
 * adds keys to the training map. */
static pd_shard *make_shard(int inputs, const char *training, uint32_t workers,
                            uint64_t min_partition_rows) {
  char yaml[1024], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: shard-test\n"
           "model: {type: softmax, layers: [%d, 2], seed: 7}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 4, batch_size: 10, optimizer: {type: sgd, lr: 0.5}%s%s}\n"
           "cluster: {servers: 1, workers: %u}\n",
           inputs, training[0] ? ", " : "", training, workers);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "  spec: %s\n", err);
    return NULL;
  }
  uint64_t keys = (uint64_t)inputs * 2 + 2;
  pd_shard *s = pd_shard_new(&spec, 0, keys, workers, min_partition_rows, err, sizeof err);
  if (!s)
    fprintf(stderr, "  shard: %s\n", err);
  return s;
}

static float *read_all(const pd_shard *s) {
  uint64_t keys = pd_shard_end(s) - pd_shard_begin(s);
  float *out = malloc(keys * sizeof(float));
  pd_shard_read(s, 0, keys, out);
  return out;
}

static float *filled(uint64_t n, float value) {
  float *g = malloc(n * sizeof(float));
  for (uint64_t i = 0; i < n; i++)
    g[i] = value;
  return g;
}

/* Index of the first key where got != want - lr * grad (within 1e-6), or -1. */
static long long first_mismatch(const float *got, const float *want, const float *grad, double lr,
                                uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    double expect = (double)want[i] - lr * (grad ? (double)grad[i] : 0.0);
    if (fabs((double)got[i] - expect) > 1e-6)
      return (long long)i;
  }
  return -1;
}

/* A pull's slices keep the values of the moment they were taken while
 * pushes change the model; a second pull during the lease gets a copy of
 * the new values, which later pushes do not change either. */
static void test_leased_block_keeps_old_values(void) {
  enum { INPUTS = 8, KEYS = INPUTS * 2 + 2 };
  pd_shard *s = make_shard(INPUTS, "update: asp", 1, 0);
  CHECK(s != NULL);
  float *v0 = read_all(s);
  char err[256] = "";
  int tag;
  pd_shard_parked *parked = NULL;
  CHECK_EQ_INT(pd_shard_pull(s, &tag, 0, 0, 0, KEYS, &parked, err, sizeof err),
               PD_SHARD_PULL_READY);
  CHECK(parked == NULL);
  pd_shard_slice first[4];
  CHECK(pd_shard_max_slices(KEYS) <= 4);
  CHECK_EQ_INT(pd_shard_slices(s, 0, KEYS, first), 1);
  CHECK_EQ_INT(first[0].n, KEYS);
  CHECK_EQ_INT(first_mismatch(first[0].data, v0, NULL, 0, KEYS), -1);

  float *grad = filled(KEYS, 1.0f);
  CHECK_EQ_INT(pd_shard_push(s, 0, 0, 0, 0, KEYS, grad, err, sizeof err), PD_PUSH_APPLY);
  float *v1 = read_all(s);
  CHECK_EQ_INT(first_mismatch(v1, v0, grad, 0.5, KEYS), -1);          /* the model moved */
  CHECK_EQ_INT(first_mismatch(first[0].data, v0, NULL, 0, KEYS), -1); /* the lease did not */

  /* The old block is still leased: this pull gets the new values as a copy. */
  pd_shard_slice second[4];
  CHECK_EQ_INT(pd_shard_pull(s, &tag, 0, 1, 0, KEYS, &parked, err, sizeof err),
               PD_SHARD_PULL_READY);
  CHECK_EQ_INT(pd_shard_slices(s, 0, KEYS, second), 1);
  CHECK(second[0].data != first[0].data);
  CHECK_EQ_INT(first_mismatch(second[0].data, v1, NULL, 0, KEYS), -1);

  CHECK_EQ_INT(pd_shard_push(s, 0, 1, 1, 0, KEYS, grad, err, sizeof err), PD_PUSH_APPLY);
  float *v2 = read_all(s);
  CHECK_EQ_INT(first_mismatch(v2, v1, grad, 0.5, KEYS), -1);
  CHECK_EQ_INT(first_mismatch(first[0].data, v0, NULL, 0, KEYS), -1);
  CHECK_EQ_INT(first_mismatch(second[0].data, v1, NULL, 0, KEYS), -1);
  first[0].release(first[0].user);
  second[0].release(second[0].user);

  /* Without leases a pull borrows the current values again. */
  pd_shard_slice third[4];
  CHECK_EQ_INT(pd_shard_slices(s, 2, 5, third), 1);
  CHECK_EQ_INT(third[0].n, 5);
  CHECK_EQ_INT(first_mismatch(third[0].data, v2 + 2, NULL, 0, 5), -1);
  third[0].release(third[0].user);
  pd_shard_free(s);
  free(v0), free(v1), free(v2), free(grad);
}

/* A pull over two blocks gets one slice per block; a push into one block
 * moves only that block, so the other slice still reads the model. */
static void test_slices_follow_blocks(void) {
  enum { INPUTS = 140000 }; /* 280002 keys: block 0 and part of block 1 */
  const uint64_t keys = INPUTS * 2 + 2;
  pd_shard *s = make_shard(INPUTS, "update: asp", 1, 0);
  CHECK(s != NULL);
  float *v0 = read_all(s);
  CHECK(pd_shard_max_slices(keys) >= 2);
  pd_shard_slice *parts = calloc(pd_shard_max_slices(keys), sizeof *parts);
  CHECK_EQ_INT(pd_shard_slices(s, 0, keys, parts), 2);
  CHECK_EQ_INT(parts[0].n, PD_SHARD_BLOCK_KEYS);
  CHECK_EQ_INT(parts[1].n, keys - PD_SHARD_BLOCK_KEYS);
  char err[256] = "";
  uint64_t off = PD_SHARD_BLOCK_KEYS + 100, n = 50;
  float *grad = filled(n, 2.0f);
  CHECK_EQ_INT(pd_shard_push(s, 0, 0, 0, off, n, grad, err, sizeof err), PD_PUSH_APPLY);
  float *v1 = read_all(s);
  CHECK_EQ_INT(first_mismatch(v1 + off, v0 + off, grad, 0.5, n), -1);
  CHECK_EQ_INT(first_mismatch(v1, v0, NULL, 0, off), -1); /* keys before the push */
  CHECK_EQ_INT(
      first_mismatch(parts[1].data, v0 + PD_SHARD_BLOCK_KEYS, NULL, 0, keys - PD_SHARD_BLOCK_KEYS),
      -1);
  CHECK_EQ_INT(first_mismatch(parts[0].data, v1, NULL, 0, PD_SHARD_BLOCK_KEYS), -1);
  parts[0].release(parts[0].user);
  parts[1].release(parts[1].user);
  pd_shard_free(s);
  free(parts), free(v0), free(v1), free(grad);
}

/* BSP: the round's gradients are summed, chunk by chunk, and applied as
 * their average once every worker covered every key; a pull for the next
 * clock is parked until then and comes back from pd_shard_next_ready. */
static void test_bsp_averages_the_round(void) {
  enum { INPUTS = 5, KEYS = INPUTS * 2 + 2 };
  pd_shard *s = make_shard(INPUTS, "update: bsp", 2, 0);
  CHECK(s != NULL);
  float *v0 = read_all(s);
  float g0[KEYS], g1[KEYS], avg[KEYS];
  for (int i = 0; i < KEYS; i++) {
    g0[i] = (float)i;
    g1[i] = 1.0f - 0.5f * (float)i;
    avg[i] = (g0[i] + g1[i]) / 2;
  }
  char err[256] = "";
  CHECK_EQ_INT(pd_shard_push(s, 0, 0, -1, 0, KEYS, g0, err, sizeof err), PD_PUSH_ACCUMULATE);
  float *now = read_all(s);
  CHECK_EQ_INT(first_mismatch(now, v0, NULL, 0, KEYS), -1); /* nothing applied yet */
  free(now);

  int tag0, tag1;
  pd_shard_parked *parked = NULL;
  CHECK_EQ_INT(pd_shard_pull(s, &tag0, 0, 1, 3, 4, &parked, err, sizeof err), PD_SHARD_PULL_PARKED);
  CHECK(parked != NULL);
  uint64_t off = 0, n = 0;
  CHECK(pd_shard_next_ready(s, &off, &n) == NULL);
  /* worker 1 at clock 1 before its push: refused */
  CHECK_EQ_INT(pd_shard_pull(s, &tag1, 1, 2, 0, KEYS, &parked, err, sizeof err),
               PD_SHARD_PULL_INVALID);

  /* worker 1 in two chunks; the second completes the round */
  CHECK_EQ_INT(pd_shard_push(s, 1, 0, -1, 0, 7, g1, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(pd_shard_next_ready(s, &off, &n) == NULL);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(s)), 0);
  CHECK_EQ_INT(pd_shard_push(s, 1, 0, -1, 7, KEYS - 7, g1 + 7, err, sizeof err),
               PD_PUSH_ACCUMULATE);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(s)), 1);
  now = read_all(s);
  CHECK_EQ_INT(first_mismatch(now, v0, avg, 0.5, KEYS), -1);
  CHECK(pd_shard_next_ready(s, &off, &n) == &tag0);
  CHECK_EQ_INT(off, 3);
  CHECK_EQ_INT(n, 4);
  CHECK(pd_shard_next_ready(s, &off, &n) == NULL);

  /* a retry of round 0 is a duplicate and changes nothing */
  CHECK_EQ_INT(pd_shard_push(s, 0, 0, -1, 0, KEYS, g0, err, sizeof err), PD_PUSH_DUPLICATE);
  float *after = read_all(s);
  CHECK_EQ_INT(first_mismatch(after, now, NULL, 0, KEYS), -1);
  CHECK_EQ_INT(pd_clock_stats_get(pd_shard_clock(s))->blocked, 1);
  pd_shard_free(s);
  free(v0), free(now), free(after);
}

/* A parked pull that goes away, and the ones left when the shard is
 * dropped, are taken out by tag. */
static void test_parked_pulls_taken_out(void) {
  pd_shard *s = make_shard(3, "update: bsp", 3, 0);
  CHECK(s != NULL);
  float *grad = filled(8, 1.0f);
  char err[256] = "";
  int tags[3];
  pd_shard_parked *parked[3] = {NULL, NULL, NULL};
  for (uint32_t w = 0; w < 3; w++) {
    if (w < 2)
      CHECK_EQ_INT(pd_shard_push(s, w, 0, -1, 0, 8, grad, err, sizeof err), PD_PUSH_ACCUMULATE);
  }
  for (uint32_t w = 0; w < 2; w++)
    CHECK_EQ_INT(pd_shard_pull(s, &tags[w], w, 1, 0, 8, &parked[w], err, sizeof err),
                 PD_SHARD_PULL_PARKED);
  pd_shard_unpark(parked[0]); /* worker 0's client went away */
  CHECK_EQ_INT(pd_shard_push(s, 2, 0, -1, 0, 8, grad, err, sizeof err), PD_PUSH_ACCUMULATE);
  uint64_t off, n;
  CHECK(pd_shard_next_ready(s, &off, &n) == &tags[1]);
  CHECK(pd_shard_next_ready(s, &off, &n) == NULL);
  /* two pulls parked for round 2, then the shard is dropped */
  for (uint32_t w = 0; w < 2; w++) {
    CHECK_EQ_INT(pd_shard_push(s, w, 1, -1, 0, 8, grad, err, sizeof err), PD_PUSH_ACCUMULATE);
    CHECK_EQ_INT(pd_shard_pull(s, &tags[w], w, 2, 0, 8, &parked[w], err, sizeof err),
                 PD_SHARD_PULL_PARKED);
  }
  void *a = pd_shard_next_parked(s), *b = pd_shard_next_parked(s);
  CHECK((a == &tags[0] && b == &tags[1]) || (a == &tags[1] && b == &tags[0]));
  CHECK(pd_shard_next_parked(s) == NULL);
  pd_shard_free(s);
  free(grad);
}

/* BSP with one backup worker (3 workers push, a round takes 2): chunks wait
 * in each worker's own buffer; the first two whole gradients are averaged
 * and the third is dropped, partial chunks included. */
static void test_backup_workers_buffers(void) {
  enum { INPUTS = 4, KEYS = INPUTS * 2 + 2 };
  pd_shard *s = make_shard(INPUTS, "update: bsp, backup_workers: 1", 3, 0);
  CHECK(s != NULL);
  float *v0 = read_all(s);
  float g[3][KEYS];
  for (int w = 0; w < 3; w++)
    for (int i = 0; i < KEYS; i++)
      g[w][i] = (float)((w + 1) * 10 + i);
  char err[256] = "";
  /* worker 0 sends the first half, then workers 1 and 2 whole gradients */
  CHECK_EQ_INT(pd_shard_push(s, 0, 0, 0, 0, KEYS / 2, g[0], err, sizeof err), PD_PUSH_BUFFER);
  CHECK_EQ_INT(pd_shard_push(s, 1, 0, 0, 0, KEYS / 2, g[1], err, sizeof err), PD_PUSH_BUFFER);
  float *now = read_all(s);
  CHECK_EQ_INT(first_mismatch(now, v0, NULL, 0, KEYS), -1);
  free(now);
  CHECK_EQ_INT(
      pd_shard_push(s, 1, 0, 0, KEYS / 2, KEYS - KEYS / 2, g[1] + KEYS / 2, err, sizeof err),
      PD_PUSH_BUFFER_ACCEPT);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(s)), 0);
  CHECK_EQ_INT(pd_shard_push(s, 2, 0, 0, 0, KEYS, g[2], err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(s)), 1);
  float avg[KEYS];
  for (int i = 0; i < KEYS; i++)
    avg[i] = (g[1][i] + g[2][i]) / 2;
  float *v1 = read_all(s);
  CHECK_EQ_INT(first_mismatch(v1, v0, avg, 0.5, KEYS), -1); /* worker 0's half not in it */
  /* worker 0's second half arrives too late: dropped, nothing changes */
  CHECK_EQ_INT(
      pd_shard_push(s, 0, 0, 0, KEYS / 2, KEYS - KEYS / 2, g[0] + KEYS / 2, err, sizeof err),
      PD_PUSH_DROP);
  now = read_all(s);
  CHECK_EQ_INT(first_mismatch(now, v1, NULL, 0, KEYS), -1);
  free(now);
  CHECK_EQ_INT(pd_clock_stats_get(pd_shard_clock(s))->dropped, 1);

  /* round 1: worker 0 first this time, whole, with new values in its buffer */
  CHECK_EQ_INT(pd_shard_push(s, 0, 1, 1, 0, KEYS / 2, g[2], err, sizeof err), PD_PUSH_BUFFER);
  CHECK_EQ_INT(
      pd_shard_push(s, 0, 1, 1, KEYS / 2, KEYS - KEYS / 2, g[2] + KEYS / 2, err, sizeof err),
      PD_PUSH_BUFFER_ACCEPT);
  CHECK_EQ_INT(pd_shard_push(s, 1, 1, 1, 0, KEYS, g[0], err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(s)), 2);
  for (int i = 0; i < KEYS; i++)
    avg[i] = (g[2][i] + g[0][i]) / 2;
  float *v2 = read_all(s);
  CHECK_EQ_INT(first_mismatch(v2, v1, avg, 0.5, KEYS), -1);
  pd_shard_free(s);
  free(v0), free(v1), free(v2);
}

/* With a step schedule the lr halves each epoch; an epoch has ceil(30 / 10)
 * = 3 clocks for a 30-row partition, so pushes at clocks 0-2 use 0.5,
 * clocks 3-5 use 0.25 and clock 6 uses 0.125. */
static void test_lr_per_epoch(void) {
  enum { INPUTS = 2, KEYS = INPUTS * 2 + 2 };
  pd_shard *s = make_shard(
      INPUTS, "update: asp, lr_schedule: {type: step, step_epochs: 1, gamma: 0.5}", 1, 30);
  CHECK(s != NULL);
  float *grad = filled(KEYS, 1.0f);
  const double lr[] = {0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125};
  char err[256] = "";
  float *before = read_all(s);
  for (int clock = 0; clock < 7; clock++) {
    CHECK_EQ_INT(pd_shard_push(s, 0, clock, clock, 0, KEYS, grad, err, sizeof err), PD_PUSH_APPLY);
    float *after = read_all(s);
    long long bad = first_mismatch(after, before, grad, lr[clock], KEYS);
    free(before);
    before = after;
    if (bad != -1)
      fprintf(stderr, "  clock %d: key %lld\n", clock, bad);
    CHECK_EQ_INT(bad, -1);
  }
  /* clocks may be looked up out of order: back to epoch 1 */
  pd_shard *t = make_shard(
      INPUTS, "update: asp, lr_schedule: {type: step, step_epochs: 1, gamma: 0.5}", 2, 30);
  CHECK(t != NULL);
  float *t0 = read_all(t);
  CHECK_EQ_INT(pd_shard_push(t, 0, 3, -1, 0, KEYS, grad, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_shard_push(t, 1, 0, -1, 0, KEYS, grad, err, sizeof err), PD_PUSH_APPLY);
  float *t1 = read_all(t);
  float sum[KEYS];
  for (int i = 0; i < KEYS; i++)
    sum[i] = 1.0f;
  CHECK_EQ_INT(first_mismatch(t1, t0, sum, 0.25 + 0.5, KEYS), -1);
  pd_shard_free(t);
  pd_shard_free(s);
  free(before), free(grad), free(t0), free(t1);
}

/* pd_shard_bytes: what CreateShard checks against memory_limit, per update
 * strategy and optimizer, saturating instead of overflowing. */
static void test_bytes_needed(void) {
  static const struct {
    const char *training;
    uint32_t workers;
    uint64_t per_key; /* bytes */
  } cases[] = {
      {"update: asp, optimizer: {lr: 0.1}", 2, 8},                     /* values + copy-on-write */
      {"update: bsp, optimizer: {lr: 0.1}", 2, 12},                    /* + the round's sum */
      {"update: bsp, backup_workers: 1, optimizer: {lr: 0.1}", 3, 24}, /* + 3 buffers */
      {"update: asp, optimizer: {type: adam, lr: 0.1}", 2, 20},        /* + m, v, steps */
      {"update: asp, optimizer: {type: momentum, lr: 0.1}", 2, 12},    /* + velocity */
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    char yaml[1024], err[512] = "";
    snprintf(yaml, sizeof yaml,
             "name: b\nmodel: {type: softmax, layers: [4, 2]}\n"
             "data: {train: {features: /f, labels: /l}}\n"
             "training: {epochs: 1, batch_size: 1, %s}\n"
             "cluster: {servers: 1, workers: 2}\n",
             cases[i].training);
    pd_job_spec spec;
    int rc = pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err);
    if (rc != 0)
      fprintf(stderr, "  case %zu: %s\n", i, err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(pd_shard_bytes(&spec, 0, 1000, cases[i].workers),
                 1000 * cases[i].per_key + 64 * cases[i].workers);
    CHECK_EQ_INT(pd_shard_bytes(&spec, 0, UINT64_MAX / 4, cases[i].workers), UINT64_MAX);
  }
}

/* training.federated.swa_from 3 of 5 rounds: rounds' pulls read the model;
 * round 0 (evaluation, export) reads nothing else until round 3 has
 * committed, then the mean of the models after rounds 3..t; an abandoned
 * round adds nothing. swa_from past the rounds is refused by name. */
static void test_fed_swa_serves_the_running_average(void) {
  enum { KEYS = 2500 }; /* more than one chunk of the average's update */
  char err[512] = "";
  const char *yaml_fmt = "name: swa\nmodel: {type: softmax, layers: [1249, 2], seed: 3}\n"
                         "data: {train: {features: /f, labels: /l}, partition: iid}\n"
                         "training: {update: fedavg, optimizer: {type: sgd, lr: 0.1},\n"
                         "  federated: {rounds: 5, swa_from: %d}}\n"
                         "cluster: {servers: 1}\n";
  char yaml[1024];
  pd_job_spec spec;
  snprintf(yaml, sizeof yaml, yaml_fmt, 6);
  CHECK(pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) < 0);
  CHECK(strstr(err, "training.federated.swa_from") && strstr(err, "rounds (5)"));
  snprintf(yaml, sizeof yaml, yaml_fmt, 3);
  int rc = pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  spec: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(pd_shard_bytes(&spec, 0, 1000, 1), 1000 * 12 + 64); /* + the average */
  pd_shard *s = pd_shard_new(&spec, 0, KEYS, 1, 0, err, sizeof err);
  CHECK(s != NULL);
  struct pd_fedagg *fed = pd_shard_fed(s);
  static float delta[KEYS], model[6][KEYS];
  pd_optimizer_spec server;
  double lr;
  pd_fedagg_server_optimizer(&spec, &server, &lr);
  const char *set[1] = {"a"};
  for (uint64_t round = 1, committed = 0; committed < 5; round++) {
    uint64_t seed = round;
    for (int k = 0; k < KEYS; k++)
      delta[k] = (float)(pd_random_unit(&seed) - 0.5);
    const int abandon = round == 4;
    if (!abandon)
      CHECK_EQ_INT(pd_fedagg_push(fed, "a", round, 10, 0, KEYS, delta, NULL, err, sizeof err),
                   PD_FED_BUFFERED);
    const float *grad;
    pd_fedagg_result r;
    CHECK_EQ_INT(
        pd_fedagg_commit(fed, round, set, abandon ? 0 : 1, abandon, 0, &grad, &r, err, sizeof err),
        0);
    if (grad) {
      pd_shard_apply(s, grad, lr);
      committed++;
    }
    pd_shard_fed_average(s);
    pd_shard_read(s, 0, KEYS, model[committed]);
    const float *served = pd_shard_fed_served(s);
    if (committed < 3) {
      CHECK(served == NULL);
      continue;
    }
    CHECK(served != NULL);
    double worst = 0;
    for (int k = 0; k < KEYS; k++) {
      double mean = 0;
      for (uint64_t t = 3; t <= committed; t++)
        mean += model[t][k];
      mean /= (double)(committed - 2);
      worst = fmax(worst, fabs(served[k] - mean));
    }
    CHECK(worst < 1e-6);
  }
  pd_shard_free(s);
}

int main(int argc, char **argv) {
  PD_RUN(test_leased_block_keeps_old_values);
  PD_RUN(test_slices_follow_blocks);
  PD_RUN(test_bsp_averages_the_round);
  PD_RUN(test_parked_pulls_taken_out);
  PD_RUN(test_backup_workers_buffers);
  PD_RUN(test_lr_per_epoch);
  PD_RUN(test_bytes_needed);
  PD_RUN(test_fed_swa_serves_the_running_average);
  PD_TEST_DONE();
}
