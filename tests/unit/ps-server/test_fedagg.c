/* Unit tests of a shard's federated rounds (services/ps-server/fedagg.c):
 * per-device buffers, commit-by-set, late and duplicate pushes, abandon,
 * checkpoints of the rounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../../services/ps-server/fedagg.h"
#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

#define KEYS 1000

static pd_job_spec fed_spec(void) {
  pd_job_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.training.update = PD_UPDATE_FEDAVG;
  spec.training.federated.aggregation = PD_AGG_FEDAVG;
  return spec;
}

static void fill(float *delta, uint64_t seed) {
  for (int i = 0; i < KEYS; i++)
    delta[i] = (float)(pd_random_unit(&seed) * 2 - 1);
}

/* Pushes a device's update in chunks of 300 keys, in an order set by `order`. */
static int push_all(pd_fedagg *f, const char *device, uint64_t round, double weight,
                    const float *delta, int order) {
  const uint64_t starts[4] = {0, 300, 600, 900};
  char err[256];
  for (int c = 0; c < 4; c++) {
    uint64_t off = starts[(c + order) % 4], n = PD_MIN(300, KEYS - off);
    if (pd_fedagg_push(f, device, round, weight, off, n, delta + off, NULL, err, sizeof err) !=
        PD_FED_BUFFERED) {
      fprintf(stderr, "  push failed: %s\n", err);
      return -1;
    }
  }
  return 0;
}

static void test_commit_weighted_average_of_the_set(void) {
  pd_job_spec spec = fed_spec();
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS);
  static float d[3][KEYS];
  const double n_k[3] = {600, 37, 1234};
  const char *names[3] = {"a", "b", "c"};
  for (int k = 0; k < 3; k++) {
    fill(d[k], 10 + (uint64_t)k);
    CHECK_EQ_INT(push_all(f, names[k], 5, n_k[k], d[k], k), 0);
  }
  const char *set[2] = {"c", "a"};
  const float *grad;
  pd_fedagg_result r;
  char err[256];
  CHECK_EQ_INT(pd_fedagg_commit(f, 5, set, 2, 0, 0, &grad, &r, err, sizeof err), 0);
  CHECK(grad != NULL);
  CHECK_EQ_INT(r.committed, 2);
  CHECK_EQ_INT(r.discarded, 1); /* b was outside the set */
  CHECK_NEAR(r.weight, 1834, 0);
  for (int i = 0; i < KEYS; i++) {
    double want = -(n_k[2] * d[2][i] + n_k[0] * d[0][i]) / (n_k[2] + n_k[0]);
    CHECK_NEAR(grad[i], want, 1e-6 * fabs(want) + 1e-9);
  }
  const pd_fedagg_stats *st = pd_fedagg_stats_get(f);
  CHECK_EQ_INT(st->committed, 1);
  CHECK_EQ_INT(st->updates, 2);
  CHECK_EQ_INT(st->discarded, 1);
  pd_fedagg_free(f);
}

/* Two shards that received the same updates in different orders commit the
 * same set to the same bits. */
static void test_same_set_same_bits_whatever_the_arrival_order(void) {
  pd_job_spec spec = fed_spec();
  pd_fedagg *f1 = pd_fedagg_new(&spec, KEYS), *f2 = pd_fedagg_new(&spec, KEYS);
  static float d[4][KEYS], g1[KEYS];
  const char *names[4] = {"d0", "d1", "d2", "d3"};
  for (int k = 0; k < 4; k++)
    fill(d[k], 100 + (uint64_t)k);
  for (int k = 0; k < 4; k++)
    CHECK_EQ_INT(push_all(f1, names[k], 1, 10 + k, d[k], 0), 0);
  for (int k = 3; k >= 0; k--)
    CHECK_EQ_INT(push_all(f2, names[k], 1, 10 + k, d[k], 3 - k), 0);
  const char *set[3] = {"d0", "d1", "d3"};
  const float *grad;
  pd_fedagg_result r;
  char err[256];
  CHECK_EQ_INT(pd_fedagg_commit(f1, 1, set, 3, 0, 0, &grad, &r, err, sizeof err), 0);
  memcpy(g1, grad, sizeof g1);
  CHECK_EQ_INT(pd_fedagg_commit(f2, 1, set, 3, 0, 0, &grad, &r, err, sizeof err), 0);
  CHECK(memcmp(g1, grad, sizeof g1) == 0);
  pd_fedagg_free(f1);
  pd_fedagg_free(f2);
}

static void test_late_duplicate_and_bad_pushes(void) {
  pd_job_spec spec = fed_spec();
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS);
  static float d[KEYS];
  fill(d, 1);
  char err[256];
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 5, 0, 500, d, NULL, err, sizeof err), PD_FED_BUFFERED);
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 5, 0, 500, d, NULL, err, sizeof err), PD_FED_DUPLICATE);
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 5, 400, 200, d, NULL, err, sizeof err), PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "overlaps [0, 500)");
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 6, 500, 500, d, NULL, err, sizeof err), PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "weight: device a pushed weight 5 for round 2, then 6");
  CHECK_EQ_INT(pd_fedagg_push(f, "", 2, 5, 0, 1, d, NULL, err, sizeof err), PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "device:");
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 0, 5, 0, 1, d, NULL, err, sizeof err), PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "round id");
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 0, 0, 1, d, NULL, err, sizeof err), PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "weight:");
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 5, 990, 20, d, NULL, err, sizeof err), PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "outside the shard's 1000 keys");
  /* a half-pushed update cannot be committed: nothing changes */
  const char *set[1] = {"a"};
  const float *grad;
  pd_fedagg_result r;
  CHECK_EQ_INT(pd_fedagg_commit(f, 2, set, 1, 0, 0, &grad, &r, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "device a has pushed 500 of the 1000 keys of its round 2 update");
  CHECK_EQ_INT(pd_fedagg_pull_ok(f, 2, err, sizeof err), 0);
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 2, 5, 500, 500, d + 500, NULL, err, sizeof err),
               PD_FED_BUFFERED);
  const char *twice[2] = {"a", "a"};
  CHECK_EQ_INT(pd_fedagg_commit(f, 2, twice, 2, 0, 0, &grad, &r, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "devices: a is named twice");
  CHECK_EQ_INT(pd_fedagg_commit(f, 2, set, 1, 0, 0, &grad, &r, err, sizeof err), 0);
  for (int i = 0; i < KEYS; i++)
    CHECK(grad[i] == -d[i]); /* one device: exactly its update */
  /* after the commit its round is closed: late pushes are discarded and
   * counted, pulls refused */
  CHECK_EQ_INT(pd_fedagg_push(f, "b", 2, 5, 0, 500, d, NULL, err, sizeof err), PD_FED_LATE);
  CHECK_EQ_INT(pd_fedagg_push(f, "b", 1, 5, 0, 500, d, NULL, err, sizeof err), PD_FED_LATE);
  CHECK_EQ_INT(pd_fedagg_stats_get(f)->late_pushes, 2);
  CHECK_EQ_INT(pd_fedagg_pull_ok(f, 2, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "round 2 is closed");
  CHECK_EQ_INT(pd_fedagg_pull_ok(f, 0, err, sizeof err), 0); /* the model as committed */
  CHECK_EQ_INT(pd_fedagg_pull_ok(f, 3, err, sizeof err), 0);
  pd_fedagg_free(f);
}

static void test_abandon_retry_and_old_rounds(void) {
  pd_job_spec spec = fed_spec();
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS);
  static float d[KEYS];
  fill(d, 2);
  char err[256];
  CHECK_EQ_INT(push_all(f, "a", 3, 1, d, 0), 0);
  CHECK_EQ_INT(push_all(f, "b", 3, 1, d, 1), 0);
  CHECK_EQ_INT(push_all(f, "c", 4, 1, d, 2), 0); /* already for the next round */
  const float *grad = (const float *)1;
  pd_fedagg_result r;
  CHECK_EQ_INT(pd_fedagg_commit(f, 3, NULL, 0, 1, 0, &grad, &r, err, sizeof err), 0);
  CHECK(grad == NULL); /* the model stays */
  CHECK(r.abandoned);
  CHECK_EQ_INT(r.discarded, 2);
  CHECK_EQ_INT(pd_fedagg_stats_get(f)->abandoned, 1);
  /* a retried CommitRound answers the same */
  pd_fedagg_result again;
  CHECK_EQ_INT(pd_fedagg_commit(f, 3, NULL, 0, 1, 0, &grad, &again, err, sizeof err), 0);
  CHECK(grad == NULL && again.abandoned && again.discarded == 2);
  const char *set[1] = {"a"};
  CHECK_EQ_INT(pd_fedagg_commit(f, 2, set, 1, 0, 0, &grad, &r, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "round 2 is already closed");
  /* round 4's update survived round 3's abandon */
  const char *next[1] = {"c"};
  CHECK_EQ_INT(pd_fedagg_commit(f, 4, next, 1, 0, 0, &grad, &r, err, sizeof err), 0);
  CHECK(grad != NULL && r.committed == 1 && r.discarded == 0);
  CHECK_EQ_INT(pd_fedagg_commit(f, 4, next, 1, 0, 0, &grad, &again, err, sizeof err), 0);
  CHECK(grad == NULL && again.committed == 1); /* a retry applies nothing twice */
  CHECK_EQ_INT(pd_fedagg_commit(f, 5, NULL, 0, 0, 0, &grad, &r, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "needs at least one device");
  pd_fedagg_free(f);
}

static void test_buffered_updates_are_bounded(void) {
  pd_job_spec spec = fed_spec();
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS);
  size_t max = pd_fedagg_max_updates(f);
  CHECK_EQ_INT(max, 4096);
  float one = 1;
  char name[32], err[256];
  for (size_t i = 0; i < max; i++) {
    snprintf(name, sizeof name, "dev-%zu", i);
    CHECK_EQ_INT(pd_fedagg_push(f, name, 1, 1, 0, 1, &one, NULL, err, sizeof err), PD_FED_BUFFERED);
  }
  CHECK_EQ_INT(pd_fedagg_push(f, "one-more", 1, 1, 0, 1, &one, NULL, err, sizeof err),
               PD_FED_REJECT);
  CHECK_STR_CONTAINS(err, "4096 device updates are buffered");
  pd_fedagg_free(f);
  pd_fedagg *big = pd_fedagg_new(&spec, (uint64_t)1 << 26); /* 256 MiB per update */
  CHECK_EQ_INT(pd_fedagg_max_updates(big), 16);
  pd_fedagg_free(big);
}

static void test_server_optimizers(void) {
  pd_job_spec spec = fed_spec();
  spec.training.federated.server_lr = 0.1;
  spec.training.federated.server_momentum = 0.9;
  spec.training.federated.beta1 = 0.9;
  spec.training.federated.beta2 = 0.99;
  spec.training.federated.tau = 1e-3;
  pd_optimizer_spec o;
  double lr;
  pd_fedagg_server_optimizer(&spec, &o, &lr);
  CHECK(o.type == PD_OPT_SGD && lr == 1); /* theta = the average */
  spec.training.federated.aggregation = PD_AGG_FEDPROX;
  pd_fedagg_server_optimizer(&spec, &o, &lr);
  CHECK(o.type == PD_OPT_SGD && lr == 1);
  spec.training.federated.aggregation = PD_AGG_FEDAVGM;
  pd_fedagg_server_optimizer(&spec, &o, &lr);
  CHECK(o.type == PD_OPT_MOMENTUM && o.momentum == 0.9 && lr == 0.1);
  spec.training.federated.aggregation = PD_AGG_FEDADAM;
  pd_fedagg_server_optimizer(&spec, &o, &lr);
  CHECK(o.type == PD_OPT_ADAM && o.no_bias_correction && o.epsilon == 1e-3 && o.beta2 == 0.99);
  spec.training.federated.aggregation = PD_AGG_FEDYOGI;
  pd_fedagg_server_optimizer(&spec, &o, &lr);
  CHECK(o.type == PD_OPT_YOGI && o.beta1 == 0.9 && lr == 0.1);
  spec.training.federated.aggregation = PD_AGG_SCAFFOLD;
  pd_fedagg_server_optimizer(&spec, &o, &lr);
  CHECK(o.type == PD_OPT_SGD && lr == 0.1); /* x = x + eta_g mean(Delta y) */
}

/* SCAFFOLD (Karimireddy et al., Algorithm 1): the pseudo-gradient is minus
 * the plain mean of the set's Delta y (n_k do not weigh it), and c grows by
 * sum Delta c_i / N over the set, N = the population (at least |S|); an
 * update without Delta c is refused, and c of a fedavg job does not exist. */
static void test_scaffold_means_and_control_variate(void) {
  pd_job_spec spec = fed_spec();
  spec.training.federated.aggregation = PD_AGG_SCAFFOLD;
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS);
  static float dy[3][KEYS], dc[3][KEYS], c1[KEYS];
  const char *names[3] = {"a", "b", "c"};
  const double n_k[3] = {5, 50, 500};
  char err[256];
  const float *c = pd_fedagg_control(f);
  CHECK(c != NULL);
  for (int i = 0; i < KEYS; i++)
    CHECK(c[i] == 0);
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 1, 5, 0, KEYS, dy[0], NULL, err, sizeof err), PD_FED_REJECT);
  CHECK(strstr(err, "control_delta") != NULL);
  for (int round = 1; round <= 2; round++) {
    for (int k = 0; k < 3; k++) {
      fill(dy[k], 20 + (uint64_t)(k + 3 * round));
      fill(dc[k], 40 + (uint64_t)(k + 3 * round));
      for (uint64_t off = 0; off < KEYS; off += 500) /* two chunks */
        CHECK_EQ_INT(pd_fedagg_push(f, names[k], (uint64_t)round, n_k[k], off, 500, dy[k] + off,
                                    dc[k] + off, err, sizeof err),
                     PD_FED_BUFFERED);
    }
    memcpy(c1, c, sizeof c1);
    const char *set[2] = {"b", "c"};
    const float *grad;
    pd_fedagg_result r;
    /* round 1: N = 10; round 2: population 0 counts as |S| = 2 */
    CHECK_EQ_INT(pd_fedagg_commit(f, (uint64_t)round, set, 2, 0, round == 1 ? 10 : 0, &grad, &r,
                                  err, sizeof err),
                 0);
    const double N = round == 1 ? 10 : 2;
    for (int i = 0; i < KEYS; i++) {
      double want = -((double)dy[1][i] + dy[2][i]) / 2;
      CHECK_NEAR(grad[i], want, 1e-6 * fabs(want) + 1e-7);
      double want_c = (double)c1[i] + ((double)dc[1][i] + dc[2][i]) / N;
      CHECK_NEAR(c[i], want_c, 1e-6 * fabs(want_c) + 1e-7);
    }
  }
  pd_fedagg_free(f);
  spec.training.federated.aggregation = PD_AGG_FEDAVG;
  f = pd_fedagg_new(&spec, KEYS);
  CHECK(pd_fedagg_control(f) == NULL);
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 1, 5, 0, KEYS, dy[0], dc[0], err, sizeof err), PD_FED_REJECT);
  pd_fedagg_free(f);
}

/* A checkpoint of the rounds (pd_fedagg_save/restore): the closed round id,
 * the counts and the last result come back; buffered updates of a round
 * still open do not (the coordinator runs it again under a new id); a
 * retried commit of the last round answers the same; damaged bytes are
 * refused and change nothing. */
static void test_save_and_restore(void) {
  pd_job_spec spec = fed_spec();
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS), *g = pd_fedagg_new(&spec, KEYS);
  static float d[KEYS];
  fill(d, 3);
  const char *set[1] = {"a"};
  const float *grad;
  pd_fedagg_result r, again;
  char err[256];
  CHECK_EQ_INT(push_all(f, "a", 4, 10, d, 0), 0);
  CHECK_EQ_INT(pd_fedagg_commit(f, 4, set, 1, 0, 0, &grad, &r, err, sizeof err), 0);
  CHECK_EQ_INT(pd_fedagg_commit(f, 6, NULL, 0, 1, 0, &grad, &r, err, sizeof err), 0); /* abandon */
  CHECK_EQ_INT(push_all(f, "b", 7, 5, d, 1), 0); /* open: not in the checkpoint */
  size_t n = pd_fedagg_save_size(f);
  unsigned char *bytes = malloc(n);
  pd_fedagg_save(f, bytes);
  CHECK_EQ_INT(push_all(g, "c", 9, 5, d, 2), 0); /* dropped by the restore */
  CHECK_EQ_INT(pd_fedagg_restore(g, bytes, n, err, sizeof err), 0);
  CHECK_EQ_INT(pd_fedagg_stats_get(g)->committed, 1);
  CHECK_EQ_INT(pd_fedagg_stats_get(g)->abandoned, 1);
  CHECK_EQ_INT(pd_fedagg_stats_get(g)->updates, 1);
  CHECK_EQ_INT(pd_fedagg_pull_ok(g, 6, err, sizeof err), -1); /* closed */
  CHECK_EQ_INT(pd_fedagg_pull_ok(g, 7, err, sizeof err), 0);
  CHECK_EQ_INT(pd_fedagg_commit(g, 6, NULL, 0, 1, 0, &grad, &again, err, sizeof err), 0);
  CHECK(grad == NULL && again.round == 6 && again.abandoned); /* the retry's answer */
  const char *set_b[1] = {"b"}, *set_c[1] = {"c"};
  CHECK_EQ_INT(pd_fedagg_commit(g, 7, set_b, 1, 0, 0, &grad, &r, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "has pushed 0 of the 1000 keys"); /* b's update is not restored */
  CHECK_EQ_INT(pd_fedagg_commit(g, 9, set_c, 1, 0, 0, &grad, &r, err, sizeof err), -1);
  CHECK_EQ_INT(push_all(g, "b", 7, 5, d, 1), 0);
  CHECK_EQ_INT(pd_fedagg_commit(g, 7, set_b, 1, 0, 0, &grad, &r, err, sizeof err), 0);
  CHECK(grad != NULL);
  bytes[0] ^= 1; /* not saved rounds */
  CHECK_EQ_INT(pd_fedagg_restore(g, bytes, n, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "not saved rounds");
  bytes[0] ^= 1;
  CHECK_EQ_INT(pd_fedagg_restore(g, bytes, n - 1, err, sizeof err), -PD_EFORMAT);
  CHECK_EQ_INT(pd_fedagg_stats_get(g)->committed, 2); /* unchanged by the refusals */
  pd_fedagg *other = pd_fedagg_new(&spec, KEYS + 1);
  CHECK_EQ_INT(pd_fedagg_restore(other, bytes, n, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "saved for 1000 keys, the shard has 1001");
  pd_fedagg_free(other);
  free(bytes);
  pd_fedagg_free(f);
  pd_fedagg_free(g);
}

/* scaffold: a checkpoint of the rounds holds the server control variate c
 * too; a restore brings it back bit for bit. */
static void test_scaffold_control_in_checkpoint(void) {
  pd_job_spec spec = fed_spec();
  spec.training.federated.aggregation = PD_AGG_SCAFFOLD;
  pd_fedagg *f = pd_fedagg_new(&spec, KEYS), *g = pd_fedagg_new(&spec, KEYS);
  static float dy[KEYS], dc[KEYS];
  char err[256];
  fill(dy, 5);
  fill(dc, 6);
  CHECK_EQ_INT(pd_fedagg_push(f, "a", 1, 5, 0, KEYS, dy, dc, err, sizeof err), PD_FED_BUFFERED);
  const char *set[1] = {"a"};
  const float *grad;
  pd_fedagg_result r;
  CHECK_EQ_INT(pd_fedagg_commit(f, 1, set, 1, 0, 4, &grad, &r, err, sizeof err), 0);
  size_t n = pd_fedagg_save_size(f);
  CHECK(n > (size_t)KEYS * sizeof(float));
  unsigned char *bytes = malloc(n);
  pd_fedagg_save(f, bytes);
  CHECK_EQ_INT(pd_fedagg_restore(g, bytes, n, err, sizeof err), 0);
  CHECK(memcmp(pd_fedagg_control(f), pd_fedagg_control(g), KEYS * sizeof(float)) == 0);
  int moved = 0;
  for (int i = 0; i < KEYS; i++)
    moved |= pd_fedagg_control(g)[i] != 0;
  CHECK(moved);
  free(bytes);
  pd_fedagg_free(f);
  pd_fedagg_free(g);
}

int main(int argc, char **argv) {
  PD_RUN(test_commit_weighted_average_of_the_set);
  PD_RUN(test_same_set_same_bits_whatever_the_arrival_order);
  PD_RUN(test_late_duplicate_and_bad_pushes);
  PD_RUN(test_abandon_retry_and_old_rounds);
  PD_RUN(test_buffered_updates_are_bounded);
  PD_RUN(test_server_optimizers);
  PD_RUN(test_save_and_restore);
  PD_RUN(test_scaffold_means_and_control_variate);
  PD_RUN(test_scaffold_control_in_checkpoint);
  PD_TEST_DONE();
}
