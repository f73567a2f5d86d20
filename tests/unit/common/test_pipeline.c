/* Unit tests of the pipeline plans (common/src/job/pipeline.c): the stage
 * split balanced by FLOPs, the micro-batch cut, and the GPipe and 1F1B
 * orders: every pass once, dependencies met without deadlock when the S
 * stages run them against each other, and 1F1B's activations in flight
 * never above S. */
#include "pando/pipeline.h"

#include <errno.h>

#include "../../test.h"

static pd_model_spec mlp(const int *layers, int nlayers) {
  pd_model_spec spec = {.type = PD_MODEL_MLP, .nlayers = nlayers, .activation = PD_ACT_RELU};
  for (int i = 0; i < nlayers; i++)
    spec.layers[i] = layers[i];
  return spec;
}

static void test_split_balanced(void) {
  char err[256];
  int bounds[PD_MAX_LAYERS + 1];
  /* 784-256-256-256-10: costs 784x256, 256x256, 256x256, 256x10 */
  int widths[] = {784, 256, 256, 256, 10};
  pd_model_spec spec = mlp(widths, 5);
  CHECK_EQ_INT(pd_pipeline_split(&spec, 1, bounds, err, sizeof err), 0);
  CHECK_EQ_INT(bounds[0], 0);
  CHECK_EQ_INT(bounds[1], 4);
  CHECK_EQ_INT(pd_pipeline_split(&spec, 2, bounds, err, sizeof err), 0);
  /* layer 0 alone (200704) beats any other cut: the rest is 133632 */
  CHECK_EQ_INT(bounds[0], 0);
  CHECK_EQ_INT(bounds[1], 1);
  CHECK_EQ_INT(bounds[2], 4);
  CHECK_EQ_INT(pd_pipeline_split(&spec, 4, bounds, err, sizeof err), 0);
  for (int s = 0; s <= 4; s++)
    CHECK_EQ_INT(bounds[s], s);
  /* equal layers: an even split */
  int even[] = {64, 64, 64, 64, 64, 64, 64};
  spec = mlp(even, 7);
  CHECK_EQ_INT(pd_pipeline_split(&spec, 3, bounds, err, sizeof err), 0);
  CHECK_EQ_INT(bounds[1], 2);
  CHECK_EQ_INT(bounds[2], 4);
  CHECK_EQ_INT(bounds[3], 6);
  /* the largest group is the smallest possible over every split into 2 */
  int skew[] = {10, 500, 20, 400, 30, 5};
  spec = mlp(skew, 6);
  CHECK_EQ_INT(pd_pipeline_split(&spec, 2, bounds, err, sizeof err), 0);
  double total = 0, got = 0, best = 1e300;
  for (int l = 0; l < 5; l++)
    total += pd_pipeline_layer_flops(&spec, l);
  for (int c = 1; c < 5; c++) {
    double left = 0;
    for (int l = 0; l < c; l++)
      left += pd_pipeline_layer_flops(&spec, l);
    double cost = left > total - left ? left : total - left;
    if (cost < best)
      best = cost;
    if (c == bounds[1])
      got = cost;
  }
  CHECK_NEAR(got, best, 0);
}

static void test_split_too_many_stages(void) {
  char err[256] = "";
  int bounds[PD_MAX_LAYERS + 1];
  int widths[] = {4, 3, 2};
  pd_model_spec spec = mlp(widths, 3);
  CHECK_EQ_INT(pd_pipeline_split(&spec, 3, bounds, err, sizeof err), -EINVAL);
  CHECK_STR_CONTAINS(err, "3 stages need at least one affine layer each; the model has 2");
}

static void test_micro_rows(void) {
  CHECK_EQ_INT(pd_pipeline_micro_count(32, 4), 4);
  CHECK_EQ_INT(pd_pipeline_micro_count(3, 4), 3);
  uint64_t b, e, next = 0;
  for (uint32_t i = 0; i < 4; i++) {
    pd_pipeline_micro_rows(10, 4, i, &b, &e);
    CHECK_EQ_INT(b, next);
    CHECK(e - b == 2 || e - b == 3);
    next = e;
  }
  CHECK_EQ_INT(next, 10);
}

static void test_bubble(void) {
  CHECK_NEAR(pd_pipeline_bubble(1, 4), 0.0, 0);
  CHECK_NEAR(pd_pipeline_bubble(2, 4), 1.0 / 5.0, 1e-15);
  CHECK_NEAR(pd_pipeline_bubble(4, 16), 3.0 / 19.0, 1e-15);
}

/* Runs the S stages' schedules against each other (a stage runs its next
 * pass once its input is there: F i after stage s-1's F i, B i after stage
 * s+1's B i and its own F i) until all are done; fails on a deadlock.
 * Checks each stage runs every pass once, backwards in micro order, and its
 * in-flight count against pd_pipeline_max_in_flight. */
static int run_schedules(enum pd_pipeline_schedule kind, int S, uint32_t m) {
  enum { MAX_S = 8, MAX_M = 64 };
  pd_pipeline_op ops[MAX_S][2 * MAX_M];
  int n[MAX_S], pos[MAX_S] = {0}, in_flight[MAX_S] = {0}, peak[MAX_S] = {0};
  int fwd_done[MAX_S][MAX_M] = {{0}}, bwd_done[MAX_S][MAX_M] = {{0}};
  uint32_t next_backward[MAX_S] = {0};
  for (int s = 0; s < S; s++) {
    n[s] = pd_pipeline_schedule(kind, S, s, m, ops[s]);
    if (n[s] != (int)(2 * m))
      return 0;
  }
  for (int progress = 1; progress;) {
    progress = 0;
    for (int s = 0; s < S; s++) {
      if (pos[s] == n[s])
        continue;
      pd_pipeline_op op = ops[s][pos[s]];
      if (!op.backward) {
        if ((s > 0 && !fwd_done[s - 1][op.micro]) || fwd_done[s][op.micro])
          continue;
        fwd_done[s][op.micro] = 1;
        if (++in_flight[s] > peak[s])
          peak[s] = in_flight[s];
      } else {
        if (!fwd_done[s][op.micro] || (s + 1 < S && !bwd_done[s + 1][op.micro]) ||
            bwd_done[s][op.micro] || op.micro != next_backward[s])
          continue;
        bwd_done[s][op.micro] = 1;
        next_backward[s]++;
        in_flight[s]--;
      }
      pos[s]++;
      progress = 1;
    }
  }
  for (int s = 0; s < S; s++) {
    if (pos[s] != n[s] || next_backward[s] != m)
      return 0;
    if (peak[s] != pd_pipeline_max_in_flight(kind, S, s, m) || peak[s] > (int)m)
      return 0;
    if (kind == PD_PIPELINE_1F1B && peak[s] > S)
      return 0;
  }
  return 1;
}

static void test_schedules_complete(void) {
  uint32_t ms[] = {1, 2, 3, 4, 8, 16};
  for (int S = 1; S <= 6; S++)
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
      CHECK(run_schedules(PD_PIPELINE_GPIPE, S, ms[i]));
      CHECK(run_schedules(PD_PIPELINE_1F1B, S, ms[i]));
    }
}

static void test_schedule_orders(void) {
  pd_pipeline_op ops[16];
  /* GPipe: all forwards, then all backwards */
  CHECK_EQ_INT(pd_pipeline_schedule(PD_PIPELINE_GPIPE, 2, 0, 4, ops), 8);
  for (int i = 0; i < 4; i++) {
    CHECK(!ops[i].backward && ops[i].micro == (uint32_t)i);
    CHECK(ops[4 + i].backward && ops[4 + i].micro == (uint32_t)i);
  }
  /* 1F1B, S = 3, m = 4. Stage 0: F0 F1 | F2 B0 F3 B1 | B2 B3 */
  const char *want0 = "F0F1F2B0F3B1B2B3", *want1 = "F0F1B0F2B1F3B2B3", *want2 = "F0B0F1B1F2B2F3B3";
  const char *want[3] = {want0, want1, want2};
  for (int s = 0; s < 3; s++) {
    char got[64] = "";
    int n = pd_pipeline_schedule(PD_PIPELINE_1F1B, 3, s, 4, ops);
    for (int i = 0; i < n; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%c%u", ops[i].backward ? 'B' : 'F',
               ops[i].micro);
    CHECK_STR_CONTAINS(got, want[s]);
    CHECK_EQ_INT(strlen(got), strlen(want[s]));
  }
  /* 1F1B's activation memory: S - stage micro-batches at most */
  CHECK_EQ_INT(pd_pipeline_max_in_flight(PD_PIPELINE_1F1B, 3, 0, 4), 3);
  CHECK_EQ_INT(pd_pipeline_max_in_flight(PD_PIPELINE_1F1B, 3, 2, 4), 1);
  CHECK_EQ_INT(pd_pipeline_max_in_flight(PD_PIPELINE_1F1B, 3, 0, 2), 2);
  CHECK_EQ_INT(pd_pipeline_max_in_flight(PD_PIPELINE_GPIPE, 3, 0, 16), 16);
}

int main(int argc, char **argv) {
  PD_RUN(test_split_balanced);
  PD_RUN(test_split_too_many_stages);
  PD_RUN(test_micro_rows);
  PD_RUN(test_bubble);
  PD_RUN(test_schedules_complete);
  PD_RUN(test_schedule_orders);
  PD_TEST_DONE();
}
