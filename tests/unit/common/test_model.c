/* Unit tests of the models: layout, seeded initialisation, gradients against
 * finite differences, training on separable data, and evaluation. */
#include "pando/model.h"

#include <stdint.h>

#include "../../test.h"
#include "pando/util.h"

static pd_model_spec make_spec(enum pd_model_type type, const int *layers, int nlayers,
                               enum pd_activation activation, uint64_t seed) {
  pd_model_spec spec = {.type = type, .nlayers = nlayers, .activation = activation, .seed = seed};
  for (int i = 0; i < nlayers; i++)
    spec.layers[i] = layers[i];
  return spec;
}

/* Deterministic uniform numbers in [-1, 1) for test data. */
static uint64_t rng_state;
static float rng_uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static void test_layout(void) {
  int layers[] = {784, 256, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 3, PD_ACT_RELU, 1);
  pd_model *model = pd_model_new(&spec, 8);
  int count = 0;
  const pd_param_info *params = pd_model_params(model, &count);
  CHECK_EQ_INT(count, 4);
  CHECK_EQ_INT(pd_model_num_params(model), 784 * 256 + 256 + 256 * 10 + 10);
  CHECK(strcmp(params[0].name, "layer0.weight") == 0);
  CHECK(strcmp(params[1].name, "layer0.bias") == 0);
  CHECK(strcmp(params[2].name, "layer1.weight") == 0);
  CHECK(strcmp(params[3].name, "layer1.bias") == 0);
  CHECK_EQ_INT(params[0].ndim, 2);
  CHECK_EQ_INT(params[0].shape[0], 784);
  CHECK_EQ_INT(params[0].shape[1], 256);
  CHECK_EQ_INT(params[1].ndim, 1);
  CHECK_EQ_INT(params[1].shape[0], 256);
  CHECK_EQ_INT(params[1].offset, 784 * 256);
  CHECK_EQ_INT(params[2].offset, 784 * 256 + 256);
  CHECK_EQ_INT(params[3].offset, 784 * 256 + 256 + 256 * 10);
  CHECK_EQ_INT(params[3].size, 10);

  pd_param_info layout[8];
  uint64_t num_params = 0;
  CHECK_EQ_INT(pd_model_layout(&spec, layout, 8, &num_params), 4);
  CHECK_EQ_INT(num_params, pd_model_num_params(model));
  CHECK(memcmp(layout, params, 4 * sizeof(*layout)) == 0);
  CHECK_EQ_INT(pd_model_layout(&spec, layout, 1, &num_params), 1); /* capped */

  int softmax_layers[] = {784, 10};
  pd_model_spec softmax = make_spec(PD_MODEL_SOFTMAX, softmax_layers, 2, 0, 1);
  CHECK_EQ_INT(pd_model_layout(&softmax, layout, 8, &num_params), 2);
  CHECK_EQ_INT(num_params, 7850);
  pd_model_free(model);
}

static void test_init_range_pieces(void) {
  int layers[] = {50, 40, 30, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_TANH, 42);
  uint64_t k = 0;
  pd_param_info params[8];
  pd_model_layout(&spec, params, 8, &k);
  float *whole = pd_xmalloc(k * sizeof(float));
  float *pieces = pd_xmalloc(k * sizeof(float));
  pd_model_init_range(&spec, 0, k, whole);
  /* Several ways to cut [0, K): tensor boundaries, arbitrary points, one key
   * at a time. */
  uint64_t cuts[][8] = {
      {params[1].offset, params[2].offset, params[5].offset, 0},
      {1, 17, 2000, 2001, 2039, 3000, k - 1, 0},
      {7, 0},
  };
  for (size_t c = 0; c < PD_ARRAY_SIZE(cuts); c++) {
    memset(pieces, 0xff, k * sizeof(float));
    uint64_t begin = 0;
    for (int i = 0; i <= 8; i++) {
      uint64_t end = i < 8 && cuts[c][i] ? cuts[c][i] : k;
      pd_model_init_range(&spec, begin, end, pieces + begin);
      begin = end;
      if (end == k)
        break;
    }
    CHECK(memcmp(whole, pieces, k * sizeof(float)) == 0);
  }
  memset(pieces, 0xff, k * sizeof(float));
  for (uint64_t key = 0; key < k; key++)
    pd_model_init_range(&spec, key, key + 1, pieces + key);
  CHECK(memcmp(whole, pieces, k * sizeof(float)) == 0);
  pd_model_init_range(&spec, 5, 5, pieces); /* empty range is fine */
  free(pieces);
  free(whole);
}

static void test_init_range_distribution(void) {
  int layers[] = {784, 256, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 3, PD_ACT_RELU, 7);
  uint64_t k = 0;
  pd_param_info params[4];
  pd_model_layout(&spec, params, 4, &k);
  float *values = pd_xmalloc(k * sizeof(float));
  pd_model_init_range(&spec, 0, k, values);
  for (int i = 0; i < 4; i++) {
    const float *v = values + params[i].offset;
    if (params[i].ndim == 1) {
      for (uint64_t j = 0; j < params[i].size; j++)
        CHECK(v[j] == 0.0f);
      continue;
    }
    double sum = 0, sum_sq = 0;
    for (uint64_t j = 0; j < params[i].size; j++) {
      sum += v[j];
      sum_sq += (double)v[j] * v[j];
    }
    double n = (double)params[i].size, mean = sum / n, var = sum_sq / n - mean * mean;
    double he = 2.0 / (double)params[i].shape[0];
    /* 200704 and 2560 samples: the sample variance is within a few % of he. */
    CHECK_NEAR(var / he, 1.0, n > 1e5 ? 0.02 : 0.1);
    CHECK_NEAR(mean / sqrt(he), 0.0, n > 1e5 ? 0.01 : 0.08);
  }
  /* Another seed gives other values. */
  pd_model_spec other = spec;
  other.seed = 8;
  float *values2 = pd_xmalloc(k * sizeof(float));
  pd_model_init_range(&other, 0, k, values2);
  uint64_t same = 0;
  for (uint64_t j = 0; j < params[0].size; j++)
    same += values[j] == values2[j];
  CHECK(same < 10);
  free(values2);
  free(values);
}

/* Checks pd_model_gradient against central differences of its own loss on a
 * sample of every tensor's entries. */
static void check_gradient(const pd_model_spec *spec) {
  enum { BATCH = 7, MAX_BATCH = 16 };
  pd_model *model = pd_model_new(spec, MAX_BATCH);
  uint64_t k = pd_model_num_params(model);
  int inputs = spec->layers[0], classes = spec->layers[spec->nlayers - 1];
  float *params = pd_xmalloc(k * sizeof(float));
  float *grad = pd_xmalloc(k * sizeof(float));
  float *x = pd_xmalloc(BATCH * (size_t)inputs * sizeof(float));
  uint8_t y[BATCH];
  pd_model_init_range(spec, 0, k, params);
  int count;
  const pd_param_info *info = pd_model_params(model, &count);
  rng_state = spec->seed;
  for (int i = 0; i < count; i++) /* non-zero biases exercise more of the code */
    if (info[i].ndim == 1)
      for (uint64_t j = 0; j < info[i].size; j++)
        params[info[i].offset + j] = 0.3f * rng_uniform();
  for (int i = 0; i < BATCH * inputs; i++)
    x[i] = rng_uniform();
  for (int r = 0; r < BATCH; r++)
    y[r] = (uint8_t)(r % classes);

  for (uint64_t j = 0; j < k; j++)
    grad[j] = NAN; /* must be overwritten */
  float loss = pd_model_gradient(model, params, x, y, BATCH, grad);
  CHECK(isfinite(loss) && loss > 0.0f);
  for (uint64_t j = 0; j < k; j++)
    CHECK(isfinite(grad[j]));

  const float eps = 1e-3f;
  float *scratch = pd_xmalloc(k * sizeof(float));
  int checked = 0;
  for (int i = 0; i < count; i++) {
    uint64_t step = info[i].size / 9 + 1;
    for (uint64_t j = 0; j < info[i].size; j += step) {
      uint64_t key = info[i].offset + j;
      float saved = params[key];
      params[key] = saved + eps;
      double plus = pd_model_gradient(model, params, x, y, BATCH, scratch);
      params[key] = saved - eps;
      double minus = pd_model_gradient(model, params, x, y, BATCH, scratch);
      params[key] = saved;
      double numeric = (plus - minus) / (2.0 * (double)eps), analytic = grad[key];
      double tol = 2e-4 + 1e-2 * fmax(fabs(numeric), fabs(analytic));
      if (fabs(numeric - analytic) > tol)
        fprintf(stderr, "  %s[%llu]: analytic %.7g numeric %.7g\n", info[i].name,
                (unsigned long long)j, analytic, numeric);
      CHECK_NEAR(analytic, numeric, tol);
      checked++;
    }
  }
  CHECK(checked >= 2 * count);
  /* The same batch gives the same loss and gradient again (no state kept). */
  float loss2 = pd_model_gradient(model, params, x, y, BATCH, scratch);
  CHECK(loss2 == loss);
  CHECK(memcmp(grad, scratch, k * sizeof(float)) == 0);
  free(scratch);
  free(x);
  free(grad);
  free(params);
  pd_model_free(model);
}

static void test_gradient_softmax(void) {
  int layers[] = {6, 4};
  pd_model_spec spec = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 11);
  check_gradient(&spec);
}

static void test_gradient_mlp_relu(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_RELU, 12);
  check_gradient(&spec);
}

static void test_gradient_mlp_tanh(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_TANH, 13);
  check_gradient(&spec);
}

static void test_gradient_mlp_sigmoid(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_SIGMOID, 14);
  check_gradient(&spec);
}

/* A wide hidden layer where gradients go through the larger sgemm paths. */
static void test_gradient_mlp_wide(void) {
  int layers[] = {40, 70, 33, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_TANH, 15);
  check_gradient(&spec);
}

/* Extreme logits must not overflow the softmax. */
static void test_softmax_stable(void) {
  int layers[] = {2, 3};
  pd_model_spec spec = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 1);
  pd_model *model = pd_model_new(&spec, 4);
  float params[2 * 3 + 3] = {1000, -1000, 0, 0, 0, 0, 0, 0, 0};
  float grad[9];
  float x[2] = {1, 0};
  uint8_t y[1] = {1};
  float loss = pd_model_gradient(model, params, x, y, 1, grad);
  CHECK_NEAR(loss, 2000.0, 1e-2); /* logits (1000, -1000, 0): loss 2000 */
  for (int i = 0; i < 9; i++)
    CHECK(isfinite(grad[i]));
  CHECK_NEAR(grad[0], 1.0, 1e-6);  /* d/dw00 = x0 * (p0 - 0) */
  CHECK_NEAR(grad[1], -1.0, 1e-6); /* d/dw01 = x0 * (p1 - 1) */
  CHECK_NEAR(grad[6], 1.0, 1e-6);  /* bias */
  pd_model_free(model);
}

/* Hand-made softmax regression: identity weights, so the prediction is the
 * larger input. */
static void test_evaluate_known(void) {
  int layers[] = {2, 2};
  pd_model_spec spec = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 1);
  pd_model *model = pd_model_new(&spec, 3); /* 4 rows: chunks of 3 and 1 */
  float params[6] = {1, 0, 0, 1, 0, 0};
  float x[8] = {1, 0, 0, 1, 0.2f, 0.9f, 0.7f, 0.1f};
  uint8_t y[4] = {0, 1, 1, 1}; /* the last one is predicted 0: wrong */
  double loss = -1, accuracy = -1;
  pd_model_evaluate(model, params, x, y, 4, &loss, &accuracy);
  CHECK_NEAR(accuracy, 0.75, 1e-12);
  /* Row loss: log(1 + exp(z_other - z_label)). */
  double expected = (log1p(exp(-1.0)) + log1p(exp(-1.0)) + log1p(exp(0.2 - 0.9)) +
                     log1p(exp(0.7 - 0.1))) / 4.0;
  CHECK_NEAR(loss, expected, 1e-6);
  pd_model_evaluate(model, params, x, y, 0, &loss, &accuracy);
  CHECK(loss == 0.0 && accuracy == 0.0);
  /* A bias that favours class 1 flips the first row. */
  params[5] = 2.0f;
  pd_model_evaluate(model, params, x, y, 4, &loss, &accuracy);
  CHECK_NEAR(accuracy, 0.75, 1e-12); /* row 0 now wrong, row 3 now right */
  pd_model_free(model);
}

/* Three well separated Gaussian blobs in 8 dimensions. */
static void make_blobs(float *x, uint8_t *y, int n, int inputs) {
  rng_state = 99;
  for (int r = 0; r < n; r++) {
    int c = r % 3;
    y[r] = (uint8_t)c;
    for (int j = 0; j < inputs; j++)
      x[r * inputs + j] = (j % 3 == c ? 2.0f : 0.0f) + 0.5f * rng_uniform();
  }
}

static void train(const pd_model_spec *spec, float lr) {
  enum { N = 600, INPUTS = 8, BATCH = 32 };
  static float x[N * INPUTS];
  static uint8_t y[N];
  make_blobs(x, y, N, INPUTS);
  pd_model *model = pd_model_new(spec, BATCH);
  uint64_t k = pd_model_num_params(model);
  float *params = pd_xmalloc(k * sizeof(float));
  float *grad = pd_xmalloc(k * sizeof(float));
  pd_model_init_range(spec, 0, k, params);
  double loss0, acc0, loss, acc;
  pd_model_evaluate(model, params, x, y, N, &loss0, &acc0);
  double first_epoch = 0, last_epoch = 0;
  for (int epoch = 0; epoch < 10; epoch++) {
    double sum = 0;
    int batches = 0;
    for (int start = 0; start < N; start += BATCH) {
      int rows = PD_MIN(BATCH, N - start);
      sum += pd_model_gradient(model, params, x + start * INPUTS, y + start, rows, grad);
      batches++;
      for (uint64_t j = 0; j < k; j++)
        params[j] -= lr * grad[j];
    }
    if (epoch == 0)
      first_epoch = sum / batches;
    last_epoch = sum / batches;
  }
  pd_model_evaluate(model, params, x, y, N, &loss, &acc);
  CHECK(last_epoch < first_epoch);
  CHECK(loss < loss0 * 0.2);
  CHECK(loss < 0.1);
  CHECK(acc >= 0.99);
  free(grad);
  free(params);
  pd_model_free(model);
}

static void test_train_softmax(void) {
  int layers[] = {8, 3};
  pd_model_spec spec = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 5);
  train(&spec, 0.5f);
}

static void test_train_mlp(void) {
  int layers[] = {8, 16, 16, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_RELU, 6);
  train(&spec, 0.1f);
}

int main(int argc, char **argv) {
  PD_RUN(test_layout);
  PD_RUN(test_init_range_pieces);
  PD_RUN(test_init_range_distribution);
  PD_RUN(test_gradient_softmax);
  PD_RUN(test_gradient_mlp_relu);
  PD_RUN(test_gradient_mlp_tanh);
  PD_RUN(test_gradient_mlp_sigmoid);
  PD_RUN(test_gradient_mlp_wide);
  PD_RUN(test_softmax_stable);
  PD_RUN(test_evaluate_known);
  PD_RUN(test_train_softmax);
  PD_RUN(test_train_mlp);
  PD_TEST_DONE();
}
