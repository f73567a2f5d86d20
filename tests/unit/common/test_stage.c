/* Unit tests of pipeline stages (common/src/ml/stage.c): S stages of an MLP
 * run micro-batch by micro-batch in GPipe's and 1F1B's orders compute the
 * gradient and loss pd_model_gradient computes on the whole mini-batch
 * (relative error <= 1e-5: only the order of the sums over micro-batches
 * differs), GPipe and 1F1B agree bit for bit, 1F1B's stages hold at most S
 * micro-batches, and bad calls are refused. */
#include "pando/stage.h"

#include <math.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/model.h"
#include "pando/pipeline.h"
#include "pando/util.h"

enum { MAX_S = 8, MAX_M = 32 };

static uint64_t rng_state;
static float rng_uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static pd_model_spec mlp(const int *layers, int nlayers, enum pd_activation activation) {
  pd_model_spec spec = {
      .type = PD_MODEL_MLP, .nlayers = nlayers, .activation = activation, .seed = 7};
  for (int i = 0; i < nlayers; i++)
    spec.layers[i] = layers[i];
  return spec;
}

/* K of `spec`. */
static uint64_t num_params_of(const pd_model_spec *spec) {
  uint64_t keys = 0;
  char err[128];
  PD_ASSERT(pd_model_layout(spec, NULL, 0, &keys, err, sizeof err) >= 0);
  return keys;
}

/* A dense batch of `rows` rows with labels r % classes. */
typedef struct batch {
  pd_dataset ds;
  float *features;
  uint8_t *labels;
} batch;

static batch make_batch(const pd_model_spec *spec, int rows) {
  batch b = {0};
  int inputs = spec->layers[0], classes = spec->layers[spec->nlayers - 1];
  rng_state = 42;
  b.features = pd_xmalloc((size_t)rows * (size_t)inputs * sizeof(float));
  b.labels = pd_xmalloc((size_t)rows);
  for (size_t i = 0; i < (size_t)rows * (size_t)inputs; i++)
    b.features[i] = rng_uniform();
  for (int r = 0; r < rows; r++)
    b.labels[r] = (uint8_t)(r % classes);
  b.ds = (pd_dataset){
      .rows = (uint64_t)rows, .cols = (uint32_t)inputs, .features = b.features, .labels = b.labels};
  return b;
}

/* Rows [begin, end) of `d` as a view. */
static pd_dataset rows_of(const pd_dataset *d, uint64_t begin, uint64_t end) {
  pd_dataset v = *d;
  v.rows = end - begin;
  v.owned = 0;
  v.features = d->features + begin * d->cols;
  v.labels = d->labels + begin;
  return v;
}

/* Runs one mini-batch through S stages (split by pd_pipeline_split) in
 * `kind`'s order, the stages taking turns as their inputs arrive (each
 * stage's pending sends are buffers between neighbours), into `grad` (K
 * floats, the stages' key ranges side by side). Returns the mean loss, or
 * NAN on a deadlock or a refused call. *peak gets the most micro-batches in
 * flight of each stage. */
static double run_pipeline(const pd_model_spec *spec, int S, uint32_t m,
                           enum pd_pipeline_schedule kind, const float *params,
                           const pd_dataset *mini, float *grad, int *peak) {
  char err[256];
  int bounds[MAX_S + 1];
  PD_ASSERT(pd_pipeline_split(spec, S, bounds, err, sizeof err) == 0);
  uint32_t count = pd_pipeline_micro_count(mini->rows, m);
  int max_rows = (int)((mini->rows + count - 1) / count);
  pd_stage *stage[MAX_S];
  pd_pipeline_op ops[MAX_S][2 * MAX_M];
  int n[MAX_S], pos[MAX_S] = {0};
  /* acts[s][i]: stage s's output for micro i (the input of s + 1);
   * grads[s][i]: stage s's d loss / d input of micro i (for s - 1) */
  float *acts[MAX_S][MAX_M] = {{0}}, *grads[MAX_S][MAX_M] = {{0}};
  for (int s = 0; s < S; s++) {
    int slots = pd_pipeline_max_in_flight(kind, S, s, count);
    stage[s] = pd_stage_new(spec, bounds[s], bounds[s + 1], max_rows, slots, err, sizeof err);
    PD_ASSERT(stage[s]);
    n[s] = pd_pipeline_schedule(kind, S, s, count, ops[s]);
  }
  memset(grad, 0, num_params_of(spec) * sizeof(float));
  double loss = 0.0;
  int done = 0, failed = 0;
  for (int progress = 1; progress && !failed;) {
    progress = 0;
    for (int s = 0; s < S; s++) {
      if (pos[s] == n[s])
        continue;
      pd_pipeline_op op = ops[s][pos[s]];
      uint64_t begin, end, key_begin, key_end;
      pd_pipeline_micro_rows(mini->rows, count, op.micro, &begin, &end);
      pd_stage_keys(stage[s], &key_begin, &key_end);
      int rows = (int)(end - begin);
      pd_dataset x = rows_of(mini, begin, end);
      if (!op.backward) {
        if (s > 0 && !acts[s - 1][op.micro])
          continue;
        const float *out = pd_stage_forward(stage[s], params + key_begin, op.micro, &x,
                                            s > 0 ? acts[s - 1][op.micro] : NULL, rows);
        if (!out) {
          failed = 1;
          break;
        }
        if (s > 0) {
          free(acts[s - 1][op.micro]);
          acts[s - 1][op.micro] = NULL;
        }
        if (s + 1 < S) {
          size_t floats = (size_t)rows * (size_t)pd_stage_out_width(stage[s]);
          acts[s][op.micro] = pd_xmalloc(floats * sizeof(float));
          memcpy(acts[s][op.micro], out, floats * sizeof(float));
        } else {
          int labels[MAX_M * 64];
          for (int r = 0; r < rows; r++)
            labels[r] = x.labels[r];
          loss += pd_stage_loss(stage[s], op.micro, labels, 1.0f / (float)mini->rows, NULL);
        }
      } else {
        if (s + 1 < S && !grads[s + 1][op.micro])
          continue;
        float *dx = NULL;
        if (s > 0)
          dx = pd_xmalloc((size_t)rows * (size_t)pd_stage_in_width(stage[s]) * sizeof(float));
        if (pd_stage_backward(stage[s], params + key_begin, op.micro,
                              s + 1 < S ? grads[s + 1][op.micro] : NULL, grad + key_begin,
                              dx) != 0) {
          free(dx);
          failed = 1;
          break;
        }
        if (s + 1 < S) {
          free(grads[s + 1][op.micro]);
          grads[s + 1][op.micro] = NULL;
        }
        grads[s][op.micro] = dx;
      }
      pos[s]++;
      progress = 1;
    }
  }
  for (int s = 0; s < S; s++) {
    done += pos[s] == n[s];
    peak[s] = pd_stage_max_in_flight(stage[s]);
    if (pd_stage_in_flight(stage[s]) != 0)
      failed = 1;
    pd_stage_free(stage[s]);
    for (uint32_t i = 0; i < count; i++) {
      free(acts[s][i]);
      free(grads[s][i]);
    }
  }
  return failed || done != S ? NAN : loss / (double)mini->rows;
}

/* max |a - b| / max |b| over n floats. */
static double relative_error(const float *a, const float *b, uint64_t n) {
  double diff = 0.0, scale = 1e-30;
  for (uint64_t i = 0; i < n; i++) {
    diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return diff / scale;
}

/* The pipeline's gradient against the single-process model's for S stages
 * and m micro-batches, both schedules; GPipe and 1F1B equal bit for bit. */
static int check_equivalence(const int *layers, int nlayers, enum pd_activation act, int rows,
                             int S, uint32_t m) {
  pd_model_spec spec = mlp(layers, nlayers, act);
  char err[256];
  uint64_t K = num_params_of(&spec);
  float *params = pd_xmalloc(K * sizeof(float));
  float *want = pd_xmalloc(K * sizeof(float)), *gpipe = pd_xmalloc(K * sizeof(float));
  float *one_f = pd_xmalloc(K * sizeof(float));
  PD_ASSERT(pd_model_init_range(&spec, 0, K, params, err, sizeof err) == 0);
  batch b = make_batch(&spec, rows);
  pd_model *model = pd_model_new(&spec, rows, err, sizeof err);
  PD_ASSERT(model);
  double want_loss = pd_model_gradient(model, params, &b.ds, want);
  int peak_g[MAX_S], peak_f[MAX_S], ok = 1;
  double loss_g = run_pipeline(&spec, S, m, PD_PIPELINE_GPIPE, params, &b.ds, gpipe, peak_g);
  double loss_f = run_pipeline(&spec, S, m, PD_PIPELINE_1F1B, params, &b.ds, one_f, peak_f);
  double rel = relative_error(gpipe, want, K);
  if (isnan(loss_g) || isnan(loss_f) || rel > 1e-5 ||
      fabs(loss_g - want_loss) > 1e-5 * fabs(want_loss)) {
    fprintf(stderr, "  S=%d m=%u: loss %g / %g vs %g, gradient relative error %g\n", S, m, loss_g,
            loss_f, want_loss, rel);
    ok = 0;
  }
  if (memcmp(gpipe, one_f, K * sizeof(float)) != 0 || loss_g != loss_f) {
    fprintf(stderr, "  S=%d m=%u: gpipe and 1f1b differ\n", S, m);
    ok = 0;
  }
  uint32_t count = pd_pipeline_micro_count((uint64_t)rows, m);
  for (int s = 0; s < S && ok; s++) {
    if (peak_f[s] > S || peak_f[s] != pd_pipeline_max_in_flight(PD_PIPELINE_1F1B, S, s, count) ||
        peak_g[s] != (int)count) {
      fprintf(stderr, "  S=%d m=%u stage %d: in flight 1f1b %d gpipe %d\n", S, m, s, peak_f[s],
              peak_g[s]);
      ok = 0;
    }
  }
  pd_model_free(model);
  free(b.features);
  free(b.labels);
  free(params);
  free(want);
  free(gpipe);
  free(one_f);
  return ok;
}

static void test_two_stages(void) {
  int layers[] = {12, 16, 8, 5};
  CHECK(check_equivalence(layers, 4, PD_ACT_RELU, 32, 2, 4));
  CHECK(check_equivalence(layers, 4, PD_ACT_TANH, 30, 2, 4));
}

static void test_three_stages(void) {
  int layers[] = {20, 24, 16, 12, 10};
  CHECK(check_equivalence(layers, 5, PD_ACT_RELU, 32, 3, 4));
  CHECK(check_equivalence(layers, 5, PD_ACT_SIGMOID, 33, 3, 8));
  CHECK(check_equivalence(layers, 5, PD_ACT_RELU, 32, 4, 16));
}

/* The edge cases: one micro-batch, fewer micro-batches than stages, fewer
 * rows than micro-batches, one stage. */
static void test_edge_cases(void) {
  int layers[] = {20, 24, 16, 12, 10};
  CHECK(check_equivalence(layers, 5, PD_ACT_RELU, 16, 3, 1));
  CHECK(check_equivalence(layers, 5, PD_ACT_RELU, 16, 3, 2));
  CHECK(check_equivalence(layers, 5, PD_ACT_RELU, 3, 3, 8));
  CHECK(check_equivalence(layers, 5, PD_ACT_RELU, 16, 1, 4));
}

static void test_keys_cover_layout(void) {
  int layers[] = {20, 24, 16, 12, 10};
  pd_model_spec spec = mlp(layers, 5, PD_ACT_RELU);
  char err[256];
  uint64_t next = 0, b, e;
  int bounds[] = {0, 1, 3, 4};
  for (int s = 0; s < 3; s++) {
    pd_stage *st = pd_stage_new(&spec, bounds[s], bounds[s + 1], 4, 1, err, sizeof err);
    CHECK(st);
    pd_stage_keys(st, &b, &e);
    CHECK_EQ_INT(b, next);
    CHECK_EQ_INT(pd_stage_in_width(st), layers[bounds[s]]);
    CHECK_EQ_INT(pd_stage_out_width(st), layers[bounds[s + 1]]);
    CHECK_EQ_INT(pd_stage_is_first(st), s == 0);
    CHECK_EQ_INT(pd_stage_is_last(st), s == 2);
    next = e;
    pd_stage_free(st);
  }
  CHECK_EQ_INT(next, num_params_of(&spec));
}

static void test_refused(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = mlp(layers, 4, PD_ACT_RELU);
  char err[256] = "";
  CHECK(!pd_stage_new(&spec, 2, 4, 4, 1, err, sizeof err));
  CHECK_STR_CONTAINS(err, "out of range");
  CHECK(!pd_stage_new(&spec, 1, 1, 4, 1, err, sizeof err));
  pd_model_spec drop = spec;
  drop.dropout = 0.5;
  CHECK(!pd_stage_new(&drop, 0, 1, 4, 1, err, sizeof err));
  CHECK_STR_CONTAINS(err, "without dropout");
  pd_stage *st = pd_stage_new(&spec, 1, 3, 4, 1, err, sizeof err);
  CHECK(st);
  uint64_t kb, ke;
  pd_stage_keys(st, &kb, &ke);
  float params[64] = {0}, input[4 * 5] = {0}, grad[64] = {0}, dx[4 * 5];
  CHECK(ke - kb <= 64);
  CHECK(!pd_stage_forward(st, params, 0, NULL, input, 0)); /* no rows */
  CHECK(!pd_stage_forward(st, params, 0, NULL, input, 5)); /* more than max_rows */
  CHECK(!pd_stage_forward(st, params, 0, NULL, NULL, 2));  /* no input */
  CHECK(pd_stage_forward(st, params, 0, NULL, input, 2));
  CHECK(!pd_stage_forward(st, params, 1, NULL, input, 2));            /* the one slot is taken */
  CHECK_EQ_INT(pd_stage_backward(st, params, 1, NULL, grad, dx), -1); /* not in flight */
  int labels[2] = {0, 2};
  pd_stage_loss(st, 0, labels, 0.5f, NULL);
  CHECK_EQ_INT(pd_stage_backward(st, params, 0, NULL, grad, dx), 0);
  CHECK_EQ_INT(pd_stage_in_flight(st), 0);
  CHECK_EQ_INT(pd_stage_max_in_flight(st), 1);
  pd_stage_free(st);
}

int main(int argc, char **argv) {
  PD_RUN(test_two_stages);
  PD_RUN(test_three_stages);
  PD_RUN(test_edge_cases);
  PD_RUN(test_keys_cover_layout);
  PD_RUN(test_refused);
  PD_TEST_DONE();
}
