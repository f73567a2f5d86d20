/* Unit tests of the models: layout, seeded initialisation, whole-model
 * gradients against finite differences (dense and sparse input, dropout),
 * evaluation on hand-made cases, and short training runs. The layers alone
 * are tested in test_layers.c, plugins in test_plugin.c. */
#include "pando/model.h"

#include <stdint.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/kernels.h"
#include "pando/util.h"

static pd_model_spec make_spec(enum pd_model_type type, const int *layers, int nlayers,
                               enum pd_activation activation, uint64_t seed) {
  pd_model_spec spec = {.type = type, .nlayers = nlayers, .activation = activation, .seed = seed};
  for (int i = 0; i < nlayers; i++)
    spec.layers[i] = layers[i];
  return spec;
}

static pd_model_spec lenet_spec(int channels, int height, int width, int classes, uint64_t seed) {
  int layers[2] = {channels * height * width, classes};
  pd_model_spec spec = make_spec(PD_MODEL_LENET, layers, 2, 0, seed);
  spec.ninput_shape = 3;
  spec.input_shape[0] = channels;
  spec.input_shape[1] = height;
  spec.input_shape[2] = width;
  return spec;
}

static pd_model *new_model(const pd_model_spec *spec, int max_batch) {
  char err[512] = "";
  pd_model *model = pd_model_new(spec, max_batch, err, sizeof err);
  if (!model)
    fprintf(stderr, "  pd_model_new: %s\n", err);
  PD_ASSERT(model);
  return model;
}

static float *init_params(const pd_model_spec *spec, uint64_t k) {
  float *params = pd_xmalloc(k * sizeof(float));
  char err[256];
  PD_ASSERT(pd_model_init_range(spec, 0, k, params, err, sizeof err) == 0);
  return params;
}

/* Deterministic uniform numbers in [-1, 1) for test data. */
static uint64_t rng_state;
static float rng_uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* ---------------------------------------------------------------- test data */

/* A dataset built by hand, with the arrays it points to. The sparse form has
 * a few non-zeros per row, and row_ptr[0] = 3 as in a view of a larger set. */
typedef struct test_data {
  pd_dataset ds;
  float *features, *values, *targets;
  uint64_t *row_ptr;
  uint32_t *col_idx;
  uint8_t *labels;
} test_data;

static void data_free(test_data *d) {
  free(d->features);
  free(d->values);
  free(d->targets);
  free(d->row_ptr);
  free(d->col_idx);
  free(d->labels);
  memset(d, 0, sizeof *d);
}

/* `rows` random examples for `spec`: labels r % classes (logreg: r % 2),
 * targets random for linreg, else the class. With `sparse`, 1 to 4
 * non-zeros per row; `dense_too` also fills features with the same values. */
static test_data make_data(const pd_model_spec *spec, int rows, int sparse, int dense_too,
                           uint64_t seed) {
  test_data d = {0};
  int inputs = spec->layers[0], classes = spec->layers[spec->nlayers - 1];
  rng_state = seed;
  if (spec->type == PD_MODEL_LOGREG)
    classes = 2;
  d.labels = pd_xmalloc((size_t)rows);
  d.targets = pd_xmalloc((size_t)rows * sizeof(float));
  for (int r = 0; r < rows; r++) {
    d.labels[r] = (uint8_t)(r % classes);
    d.targets[r] = spec->type == PD_MODEL_LINREG ? 2.0f * rng_uniform() : (float)d.labels[r];
  }
  if (!sparse || dense_too) {
    d.features = pd_xcalloc((size_t)rows * (size_t)inputs, sizeof(float));
    if (!sparse)
      for (size_t i = 0; i < (size_t)rows * (size_t)inputs; i++)
        d.features[i] = rng_uniform();
  }
  if (sparse) {
    size_t cap = 3 + 4 * (size_t)rows;
    d.row_ptr = pd_xmalloc(((size_t)rows + 1) * sizeof(uint64_t));
    d.col_idx = pd_xcalloc(cap, sizeof(uint32_t));
    d.values = pd_xcalloc(cap, sizeof(float));
    uint64_t p = 3;
    for (int r = 0; r < rows; r++) {
      d.row_ptr[r] = p;
      int nnz = PD_MIN(1 + r % 4, inputs), span = inputs / nnz;
      for (int j = 0; j < nnz; j++) {
        /* one column in each of nnz segments: distinct and ascending */
        int offset = (int)((rng_uniform() + 1.0f) * 0.5f * (float)span);
        uint32_t col = (uint32_t)(j * span + PD_MIN(offset, span - 1));
        d.col_idx[p] = col;
        d.values[p] = rng_uniform() * 2.0f;
        if (d.features)
          d.features[(size_t)r * (size_t)inputs + col] = d.values[p];
        p++;
      }
    }
    d.row_ptr[rows] = p;
  }
  d.ds = (pd_dataset){.rows = (uint64_t)rows,
                      .cols = (uint32_t)inputs,
                      .features = sparse ? NULL : d.features,
                      .row_ptr = d.row_ptr,
                      .col_idx = d.col_idx,
                      .values = d.values,
                      .labels = d.labels,
                      .targets = d.targets};
  if (spec->type == PD_MODEL_LINREG)
    d.ds.labels = NULL; /* regression data has no classes */
  return d;
}

/* The same rows as a dense dataset (make_data with dense_too). */
static pd_dataset dense_of(const test_data *d) {
  pd_dataset ds = d->ds;
  ds.features = d->features;
  ds.row_ptr = NULL;
  ds.col_idx = NULL;
  ds.values = NULL;
  return ds;
}

/* ---------------------------------------------------------------- layout */

static void test_layout(void) {
  int layers[] = {784, 256, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 3, PD_ACT_RELU, 1);
  pd_model *model = new_model(&spec, 8);
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
  CHECK_EQ_INT(params[0].shape[2], 0);
  CHECK_EQ_INT(params[1].ndim, 1);
  CHECK_EQ_INT(params[1].shape[0], 256);
  CHECK_EQ_INT(params[1].offset, 784 * 256);
  CHECK_EQ_INT(params[2].offset, 784 * 256 + 256);
  CHECK_EQ_INT(params[3].offset, 784 * 256 + 256 + 256 * 10);
  CHECK_EQ_INT(params[3].size, 10);

  pd_param_info layout[8];
  uint64_t num_params = 0;
  char err[128];
  CHECK_EQ_INT(pd_model_layout(&spec, layout, 8, &num_params, err, sizeof err), 4);
  CHECK_EQ_INT(num_params, pd_model_num_params(model));
  CHECK(memcmp(layout, params, 4 * sizeof(*layout)) == 0);
  CHECK_EQ_INT(pd_model_layout(&spec, layout, 1, &num_params, err, sizeof err), 1); /* capped */
  CHECK_EQ_INT(pd_model_layout(&spec, NULL, 0, &num_params, err, sizeof err), 0);
  CHECK_EQ_INT(num_params, pd_model_num_params(model));

  int softmax_layers[] = {784, 10};
  pd_model_spec softmax = make_spec(PD_MODEL_SOFTMAX, softmax_layers, 2, 0, 1);
  CHECK_EQ_INT(pd_model_layout(&softmax, layout, 8, &num_params, err, sizeof err), 2);
  CHECK_EQ_INT(num_params, 7850);
  pd_model_free(model);
}

static void test_layout_linear(void) {
  int layers[] = {1048576, 1};
  pd_param_info layout[4];
  uint64_t k = 0;
  char err[128];
  for (int type = PD_MODEL_LINREG; type <= PD_MODEL_LOGREG; type++) {
    pd_model_spec spec = make_spec((enum pd_model_type)type, layers, 2, 0, 1);
    CHECK_EQ_INT(pd_model_layout(&spec, layout, 4, &k, err, sizeof err), 2);
    CHECK_EQ_INT(k, 1048576 + 1); /* features + 1 */
    CHECK_EQ_INT(layout[0].shape[0], 1048576);
    CHECK_EQ_INT(layout[0].shape[1], 1);
    CHECK_EQ_INT(layout[1].offset, 1048576);
    CHECK_EQ_INT(layout[1].size, 1);
  }
}

static void test_layout_lenet(void) {
  pd_model_spec spec = lenet_spec(1, 28, 28, 10, 1);
  pd_model *model = new_model(&spec, 2);
  int count = 0;
  const pd_param_info *t = pd_model_params(model, &count);
  CHECK_EQ_INT(count, 8);
  const char *names[] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                         "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias"};
  int ndims[] = {4, 1, 4, 1, 2, 1, 2, 1};
  int64_t shapes[][4] = {{32, 1, 5, 5},     {32, 0, 0, 0},  {64, 32, 5, 5},  {64, 0, 0, 0},
                         {3136, 512, 0, 0}, {512, 0, 0, 0}, {512, 10, 0, 0}, {10, 0, 0, 0}};
  uint64_t offset = 0;
  for (int i = 0; i < 8; i++) {
    CHECK(strcmp(t[i].name, names[i]) == 0);
    CHECK_EQ_INT(t[i].ndim, ndims[i]);
    uint64_t size = 1;
    for (int d = 0; d < 4; d++) {
      CHECK_EQ_INT(t[i].shape[d], shapes[i][d]);
      if (d < ndims[i])
        size *= (uint64_t)shapes[i][d];
    }
    CHECK_EQ_INT(t[i].offset, offset);
    CHECK_EQ_INT(t[i].size, size);
    offset += size;
  }
  CHECK_EQ_INT(pd_model_num_params(model), offset);
  CHECK_EQ_INT(offset, 800 + 32 + 51200 + 64 + 3136 * 512 + 512 + 5120 + 10);
  pd_model_free(model);
  /* several channels, not square */
  pd_model_spec rgb = lenet_spec(3, 8, 12, 4, 1);
  pd_param_info layout[8];
  uint64_t k;
  char err[128];
  CHECK_EQ_INT(pd_model_layout(&rgb, layout, 8, &k, err, sizeof err), 8);
  CHECK_EQ_INT(layout[0].shape[1], 3);
  CHECK_EQ_INT(layout[4].shape[0], 64 * 2 * 3);
  CHECK_EQ_INT(layout[6].shape[1], 4);
}

/* ---------------------------------------------------------------- initialisation */

/* Cutting [0, K) into pieces gives the same values as one call. */
static void check_init_pieces(const pd_model_spec *spec, int one_by_one) {
  uint64_t k = 0;
  pd_param_info params[PD_MODEL_MAX_TENSORS];
  char err[256];
  int count = pd_model_layout(spec, params, PD_MODEL_MAX_TENSORS, &k, err, sizeof err);
  CHECK(count > 0);
  float *whole = init_params(spec, k);
  float *pieces = pd_xmalloc(k * sizeof(float));
  /* cuts at every tensor boundary and one key either side of it */
  memset(pieces, 0xff, k * sizeof(float));
  uint64_t begin = 0;
  for (int i = 1; i <= count; i++) {
    uint64_t boundary = i < count ? params[i].offset : k;
    uint64_t cuts[3] = {boundary > 1 ? boundary - 1 : boundary, boundary, PD_MIN(boundary + 1, k)};
    for (int c = 0; c < 3; c++) {
      if (cuts[c] < begin)
        continue;
      CHECK_EQ_INT(pd_model_init_range(spec, begin, cuts[c], pieces + begin, err, sizeof err), 0);
      begin = cuts[c];
    }
  }
  CHECK_EQ_INT(begin, k);
  CHECK(memcmp(whole, pieces, k * sizeof(float)) == 0);
  /* arbitrary pieces */
  memset(pieces, 0xff, k * sizeof(float));
  for (begin = 0; begin < k;) {
    uint64_t end = PD_MIN(k, begin + 1 + (begin * 7919 + 13) % 4099);
    CHECK_EQ_INT(pd_model_init_range(spec, begin, end, pieces + begin, err, sizeof err), 0);
    begin = end;
  }
  CHECK(memcmp(whole, pieces, k * sizeof(float)) == 0);
  if (one_by_one) {
    memset(pieces, 0xff, k * sizeof(float));
    for (uint64_t key = 0; key < k; key++)
      pd_model_init_range(spec, key, key + 1, pieces + key, err, sizeof err);
    CHECK(memcmp(whole, pieces, k * sizeof(float)) == 0);
  }
  CHECK_EQ_INT(pd_model_init_range(spec, 5, 5, pieces, err, sizeof err), 0); /* empty is fine */
  free(pieces);
  free(whole);
}

static void test_init_range_pieces(void) {
  int mlp_layers[] = {50, 40, 30, 10}, softmax_layers[] = {30, 7}, linear_layers[] = {300, 1};
  pd_model_spec mlp = make_spec(PD_MODEL_MLP, mlp_layers, 4, PD_ACT_TANH, 42);
  check_init_pieces(&mlp, 1);
  pd_model_spec softmax = make_spec(PD_MODEL_SOFTMAX, softmax_layers, 2, 0, 43);
  check_init_pieces(&softmax, 1);
  pd_model_spec linreg = make_spec(PD_MODEL_LINREG, linear_layers, 2, 0, 44);
  check_init_pieces(&linreg, 1);
  pd_model_spec logreg = make_spec(PD_MODEL_LOGREG, linear_layers, 2, 0, 45);
  check_init_pieces(&logreg, 1);
  pd_model_spec lenet = lenet_spec(2, 8, 8, 3, 46);
  check_init_pieces(&lenet, 0);
  pd_model_spec fashion = lenet_spec(1, 28, 28, 10, 47);
  check_init_pieces(&fashion, 0);
}

/* Weights are N(0, 2 / fan_in), biases 0; conv weights with fan_in =
 * channels x 5 x 5. */
static void check_distribution(const pd_model_spec *spec) {
  uint64_t k = 0;
  pd_param_info params[PD_MODEL_MAX_TENSORS];
  char err[128];
  int count = pd_model_layout(spec, params, PD_MODEL_MAX_TENSORS, &k, err, sizeof err);
  float *values = init_params(spec, k);
  for (int i = 0; i < count; i++) {
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
    const int64_t *s = params[i].shape;
    double fan_in = params[i].ndim == 4 ? (double)(s[1] * s[2] * s[3]) : (double)s[0];
    double he = 2.0 / fan_in;
    /* the sample variance is within a few % of he for n >= 800 */
    double tol = n > 1e5 ? 0.02 : n > 2000 ? 0.1 : 0.2;
    if (fabs(var / he - 1.0) > tol)
      fprintf(stderr, "  %s: variance %g, He %g\n", params[i].name, var, he);
    CHECK_NEAR(var / he, 1.0, tol);
    CHECK_NEAR(mean / sqrt(he), 0.0, n > 1e5 ? 0.01 : 0.1);
  }
  free(values);
}

static void test_init_range_distribution(void) {
  int layers[] = {784, 256, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 3, PD_ACT_RELU, 7);
  check_distribution(&spec);
  pd_model_spec lenet = lenet_spec(1, 28, 28, 10, 8);
  check_distribution(&lenet);
  /* Another seed gives other values. */
  uint64_t k = 0;
  char err[128];
  pd_model_layout(&spec, NULL, 0, &k, err, sizeof err);
  float *values = init_params(&spec, k);
  pd_model_spec other = spec;
  other.seed = 8;
  float *values2 = init_params(&other, k);
  uint64_t same = 0;
  for (uint64_t j = 0; j < 784 * 256; j++)
    same += values[j] == values2[j];
  CHECK(same < 10);
  free(values2);
  free(values);
}

/* ---------------------------------------------------------------- gradients */

/* The central difference of the model's loss by params[key] with step eps
 * (dropout masks fixed by seeding the model again before each call). */
static double central_difference(pd_model *model, float *params, uint64_t key, float eps,
                                 const pd_dataset *batch, float *scratch) {
  float saved = params[key];
  params[key] = saved + eps;
  pd_model_set_seed(model, 5);
  double plus = pd_model_gradient(model, params, batch, scratch);
  params[key] = saved - eps;
  pd_model_set_seed(model, 5);
  double minus = pd_model_gradient(model, params, batch, scratch);
  params[key] = saved;
  return (plus - minus) / (2.0 * (double)eps);
}

/* Checks pd_model_gradient against central differences of its own loss on a
 * sample of every tensor's entries. A difference that misses is tried again
 * with a 4 times smaller step. Relu and max-pool are not differentiable
 * everywhere: with many units (LeNet), a step sometimes crosses a kink, so
 * up to `kinks` samples may miss by a little (10%); every other sample must
 * match to 1%. A wrong gradient misses far more, and by far more. */
static void check_gradient_kinks(const pd_model_spec *spec, int sparse, int kinks) {
  enum { BATCH = 7, MAX_BATCH = 16 };
  pd_model *model = new_model(spec, MAX_BATCH);
  uint64_t k = pd_model_num_params(model);
  float *params = init_params(spec, k);
  float *grad = pd_xmalloc(k * sizeof(float));
  int count;
  const pd_param_info *info = pd_model_params(model, &count);
  rng_state = spec->seed;
  for (int i = 0; i < count; i++) /* non-zero biases exercise more of the code */
    if (info[i].ndim == 1)
      for (uint64_t j = 0; j < info[i].size; j++)
        params[info[i].offset + j] = 0.3f * rng_uniform();
  test_data data = make_data(spec, BATCH, sparse, 0, spec->seed + 1);

  for (uint64_t j = 0; j < k; j++)
    grad[j] = NAN; /* must be overwritten */
  pd_model_set_seed(model, 5);
  float loss = pd_model_gradient(model, params, &data.ds, grad);
  CHECK(isfinite(loss) && loss > 0.0f);
  for (uint64_t j = 0; j < k; j++)
    CHECK(isfinite(grad[j]));

  float *scratch = pd_xmalloc(k * sizeof(float));
  int checked = 0, nonzero = 0, missed = 0;
  for (int i = 0; i < count; i++) {
    uint64_t step = info[i].size / 9 + 1;
    for (uint64_t j = 0; j < info[i].size; j += step) {
      uint64_t key = info[i].offset + j;
      double analytic = grad[key];
      double numeric = central_difference(model, params, key, 1e-3f, &data.ds, scratch);
      double tol = 2e-4 + 1e-2 * fmax(fabs(numeric), fabs(analytic));
      if (fabs(numeric - analytic) > tol) { /* float noise grows as the step shrinks */
        double small = central_difference(model, params, key, 2.5e-4f, &data.ds, scratch);
        double small_tol = 6e-4 + 1e-2 * fmax(fabs(small), fabs(analytic));
        if (fabs(small - analytic) <= small_tol)
          numeric = small, tol = small_tol;
      }
      if (fabs(numeric - analytic) > tol) {
        fprintf(stderr, "  %s[%llu]: analytic %.7g numeric %.7g%s\n", info[i].name,
                (unsigned long long)j, analytic, numeric, missed < kinks ? " (a kink?)" : "");
        missed++;
        CHECK_NEAR(analytic, numeric, 1e-3 + 0.1 * fmax(fabs(numeric), fabs(analytic)));
      }
      checked++;
      nonzero += analytic != 0.0;
    }
  }
  CHECK(missed <= kinks);
  CHECK(checked >= 2 * count);
  CHECK(nonzero >= count); /* not a test of zeros against zeros */
  /* The same batch and seed give the same loss and gradient again. */
  pd_model_set_seed(model, 5);
  float loss2 = pd_model_gradient(model, params, &data.ds, scratch);
  CHECK(loss2 == loss);
  CHECK(memcmp(grad, scratch, k * sizeof(float)) == 0);
  free(scratch);
  data_free(&data);
  free(grad);
  free(params);
  pd_model_free(model);
}

static void check_gradient(const pd_model_spec *spec, int sparse) {
  check_gradient_kinks(spec, sparse, 0);
}

static void test_gradient_softmax(void) {
  int layers[] = {6, 4};
  pd_model_spec spec = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 11);
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
}

static void test_gradient_mlp_relu(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_RELU, 12);
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
}

static void test_gradient_mlp_tanh(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_TANH, 13);
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
}

static void test_gradient_mlp_sigmoid(void) {
  int layers[] = {6, 5, 4, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_SIGMOID, 14);
  check_gradient(&spec, 0);
}

/* A wide hidden layer where gradients go through the larger sgemm paths. */
static void test_gradient_mlp_wide(void) {
  int layers[] = {40, 70, 33, 10};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_TANH, 15);
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
}

static void test_gradient_mlp_dropout(void) {
  int layers[] = {6, 8, 7, 3};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_TANH, 16);
  spec.dropout = 0.3;
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
  spec.activation = PD_ACT_RELU;
  check_gradient(&spec, 0);
}

static void test_gradient_linreg(void) {
  int layers[] = {9, 1};
  pd_model_spec spec = make_spec(PD_MODEL_LINREG, layers, 2, 0, 17);
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
}

static void test_gradient_logreg(void) {
  int layers[] = {9, 1};
  pd_model_spec spec = make_spec(PD_MODEL_LOGREG, layers, 2, 0, 18);
  check_gradient(&spec, 0);
  check_gradient(&spec, 1);
}

/* A small LeNet: several channels, 3 classes, every layer's weights sampled;
 * its dropout (0.5) is on. */
static void test_gradient_lenet(void) {
  pd_model_spec spec = lenet_spec(2, 8, 8, 3, 19);
  check_gradient_kinks(&spec, 0, 3);
  pd_model_spec grey = lenet_spec(1, 8, 4, 4, 20); /* sparse input is densified */
  grey.dropout = 0.2;
  check_gradient_kinks(&grey, 1, 3);
}

/* Sparse input gives the dense result. */
static void check_sparse_equals_dense(const pd_model_spec *spec) {
  enum { ROWS = 9 };
  pd_model *model = new_model(spec, ROWS);
  uint64_t k = pd_model_num_params(model);
  float *params = init_params(spec, k);
  float *g_sparse = pd_xmalloc(k * sizeof(float)), *g_dense = pd_xmalloc(k * sizeof(float));
  test_data data = make_data(spec, ROWS, 1, 1, 3);
  pd_dataset dense = dense_of(&data);
  pd_model_set_seed(model, 1);
  float l_sparse = pd_model_gradient(model, params, &data.ds, g_sparse);
  pd_model_set_seed(model, 1);
  float l_dense = pd_model_gradient(model, params, &dense, g_dense);
  CHECK_NEAR(l_sparse, l_dense, 1e-5 * fabs(l_dense));
  for (uint64_t j = 0; j < k; j++)
    CHECK_NEAR(g_sparse[j], g_dense[j], 1e-5 + 1e-4 * fabs(g_dense[j]));
  pd_eval e_sparse, e_dense;
  pd_model_evaluate(model, params, &data.ds, &e_sparse);
  pd_model_evaluate(model, params, &dense, &e_dense);
  CHECK_NEAR(e_sparse.loss, e_dense.loss, 1e-6 * e_dense.loss);
  CHECK(e_sparse.accuracy == e_dense.accuracy);
  CHECK_NEAR(e_sparse.rmse, e_dense.rmse, 1e-6);
  data_free(&data);
  free(g_dense);
  free(g_sparse);
  free(params);
  pd_model_free(model);
}

static void test_sparse_equals_dense(void) {
  int layers[] = {12, 6, 5}, linear[] = {12, 1};
  pd_model_spec softmax = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 1);
  check_sparse_equals_dense(&softmax);
  pd_model_spec mlp = make_spec(PD_MODEL_MLP, layers, 3, PD_ACT_SIGMOID, 2);
  mlp.dropout = 0.25;
  check_sparse_equals_dense(&mlp);
  pd_model_spec linreg = make_spec(PD_MODEL_LINREG, linear, 2, 0, 3);
  check_sparse_equals_dense(&linreg);
  pd_model_spec logreg = make_spec(PD_MODEL_LOGREG, linear, 2, 0, 4);
  check_sparse_equals_dense(&logreg);
  pd_model_spec lenet = lenet_spec(3, 4, 4, 3, 5);
  check_sparse_equals_dense(&lenet);
}

/* A LeNet batch larger than its micro-batches (128 rows) gives the mean of
 * its parts' gradients, weighted by their rows. Dropout is made negligible
 * (a rate of 1e-9), so that masks do not matter. */
static void test_lenet_micro_batches(void) {
  enum { ROWS = 300 };
  pd_model_spec spec = lenet_spec(1, 4, 8, 3, 23);
  spec.dropout = 1e-9;
  pd_model *whole = new_model(&spec, ROWS), *part = new_model(&spec, 128);
  uint64_t k = pd_model_num_params(whole);
  float *params = init_params(&spec, k);
  float *g = pd_xmalloc(k * sizeof(float)), *g_part = pd_xmalloc(k * sizeof(float));
  double *want = pd_xcalloc(k, sizeof(double));
  test_data data = make_data(&spec, ROWS, 0, 0, 7);
  float loss = pd_model_gradient(whole, params, &data.ds, g);
  double want_loss = 0.0;
  for (uint64_t first = 0; first < ROWS; first += 128) {
    pd_dataset x = data.ds;
    x.rows = PD_MIN(128, ROWS - first);
    x.features += first * x.cols;
    x.labels += first;
    x.targets += first;
    double weight = (double)x.rows / ROWS;
    want_loss += weight * pd_model_gradient(part, params, &x, g_part);
    for (uint64_t j = 0; j < k; j++)
      want[j] += weight * g_part[j];
  }
  CHECK_NEAR(loss, want_loss, 1e-5 * want_loss);
  for (uint64_t j = 0; j < k; j++)
    CHECK_NEAR(g[j], want[j], 1e-6 + 1e-4 * fabs(want[j]));
  pd_eval e_whole, e_part;
  pd_model_evaluate(whole, params, &data.ds, &e_whole);
  pd_model_evaluate(part, params, &data.ds, &e_part);
  CHECK_NEAR(e_whole.loss, e_part.loss, 1e-9);
  data_free(&data);
  free(want);
  free(g_part);
  free(g);
  free(params);
  pd_model_free(part);
  pd_model_free(whole);
}

/* ---------------------------------------------------------------- compute threads */

/* The gradient, loss and evaluation with 2 and 3 compute threads (each a
 * slice of the batch) equal those of one thread, dropout masks included,
 * for batches of 1 row (threads without rows) up to max_batch. */
static void check_threads(const pd_model_spec *spec, int sparse, int max_batch) {
  pd_kernels_set_threads(1);
  pd_model *one = new_model(spec, max_batch);
  uint64_t k = pd_model_num_params(one);
  float *params = init_params(spec, k);
  float *want = pd_xmalloc(k * sizeof(float)), *got = pd_xmalloc(k * sizeof(float));
  test_data data = make_data(spec, max_batch, sparse, 0, 11);
  int sizes[] = {max_batch, 1, 2, max_batch - 1};
  for (int threads = 2; threads <= 3; threads++) {
    pd_kernels_set_threads(threads);
    pd_model *many = new_model(spec, max_batch);
    pd_kernels_set_threads(1);
    pd_model_set_seed(one, 5);
    pd_model_set_seed(many, 5);
    int bad = 0;
    for (size_t i = 0; i < PD_ARRAY_SIZE(sizes); i++) {
      pd_dataset x = data.ds;
      x.rows = (uint64_t)sizes[i];
      float want_loss = pd_model_gradient(one, params, &x, want);
      memset(got, 0x7f, k * sizeof(float)); /* every key must be written */
      float got_loss = pd_model_gradient(many, params, &x, got);
      CHECK_NEAR(got_loss, want_loss, 1e-5 * (1.0 + fabs(want_loss)));
      for (uint64_t j = 0; j < k; j++)
        bad += fabs(got[j] - want[j]) > 1e-6 + 1e-4 * fabs(want[j]);
    }
    CHECK_EQ_INT(bad, 0);
    pd_eval e_one, e_many;
    pd_model_evaluate(one, params, &data.ds, &e_one);
    pd_model_evaluate(many, params, &data.ds, &e_many);
    CHECK_NEAR(e_many.loss, e_one.loss, 1e-6 * (1.0 + e_one.loss));
    CHECK(e_many.accuracy == e_one.accuracy);
    CHECK_NEAR(e_many.rmse, e_one.rmse, 1e-6 * (1.0 + e_one.rmse));
    pd_model_free(many);
  }
  data_free(&data);
  free(got);
  free(want);
  free(params);
  pd_model_free(one);
}

static void test_threads_every_model(void) {
  int layers[] = {12, 16, 5}, linear[] = {12, 1};
  pd_model_spec softmax = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 1);
  check_threads(&softmax, 0, 9);
  check_threads(&softmax, 1, 9);
  pd_model_spec mlp = make_spec(PD_MODEL_MLP, layers, 3, PD_ACT_RELU, 2);
  mlp.dropout = 0.3;
  check_threads(&mlp, 0, 9);
  pd_model_spec linreg = make_spec(PD_MODEL_LINREG, linear, 2, 0, 3);
  check_threads(&linreg, 0, 9);
  pd_model_spec logreg = make_spec(PD_MODEL_LOGREG, linear, 2, 0, 4);
  check_threads(&logreg, 1, 9);
  pd_model_spec lenet = lenet_spec(2, 8, 8, 3, 5); /* dropout 0.5 */
  check_threads(&lenet, 0, 9);
  /* slices longer than LeNet's micro-batch (128 rows) */
  pd_model_spec small = lenet_spec(1, 4, 4, 3, 6);
  check_threads(&small, 0, 300);
}

/* ---------------------------------------------------------------- dropout */

static void test_dropout_masks(void) {
  int layers[] = {10, 32, 32, 4};
  pd_model_spec spec = make_spec(PD_MODEL_MLP, layers, 4, PD_ACT_RELU, 21);
  spec.dropout = 0.5;
  pd_model *model = new_model(&spec, 8);
  uint64_t k = pd_model_num_params(model);
  float *params = init_params(&spec, k);
  float *g1 = pd_xmalloc(k * sizeof(float)), *g2 = pd_xmalloc(k * sizeof(float));
  test_data data = make_data(&spec, 8, 0, 0, 4);
  /* call after call, the masks change */
  pd_model_set_seed(model, 1);
  float l1 = pd_model_gradient(model, params, &data.ds, g1);
  float l2 = pd_model_gradient(model, params, &data.ds, g2);
  CHECK(l1 != l2);
  CHECK(memcmp(g1, g2, k * sizeof(float)) != 0);
  /* seeding again replays them: call 2 of seed 1 is the same */
  pd_model_set_seed(model, 1);
  pd_model_gradient(model, params, &data.ds, g1);
  float l2_again = pd_model_gradient(model, params, &data.ds, g1);
  CHECK(l2_again == l2);
  CHECK(memcmp(g1, g2, k * sizeof(float)) == 0);
  /* another seed (another worker) other masks */
  pd_model_set_seed(model, 2);
  pd_model_gradient(model, params, &data.ds, g1);
  pd_model_gradient(model, params, &data.ds, g1);
  CHECK(memcmp(g1, g2, k * sizeof(float)) != 0);
  /* evaluation has no dropout: the same as a model without it */
  pd_model_spec plain = spec;
  plain.dropout = 0.0;
  pd_model *no_dropout = new_model(&plain, 8);
  pd_eval e1, e2, e3;
  pd_model_evaluate(model, params, &data.ds, &e1);
  pd_model_evaluate(model, params, &data.ds, &e2);
  pd_model_evaluate(no_dropout, params, &data.ds, &e3);
  CHECK(e1.loss == e2.loss && e1.loss == e3.loss && e1.accuracy == e3.accuracy);
  /* without dropout, seeds do not matter */
  pd_model_set_seed(no_dropout, 1);
  l1 = pd_model_gradient(no_dropout, params, &data.ds, g1);
  pd_model_set_seed(no_dropout, 2);
  l2 = pd_model_gradient(no_dropout, params, &data.ds, g2);
  CHECK(l1 == l2);
  CHECK(memcmp(g1, g2, k * sizeof(float)) == 0);
  pd_model_free(no_dropout);
  data_free(&data);
  free(g2);
  free(g1);
  free(params);
  pd_model_free(model);
}

/* ---------------------------------------------------------------- stability, evaluation */

/* Extreme logits must not overflow the softmax. */
static void test_softmax_stable(void) {
  int layers[] = {2, 3};
  pd_model_spec spec = make_spec(PD_MODEL_SOFTMAX, layers, 2, 0, 1);
  pd_model *model = new_model(&spec, 4);
  float params[2 * 3 + 3] = {1000, -1000, 0, 0, 0, 0, 0, 0, 0};
  float grad[9];
  float x[2] = {1, 0};
  uint8_t y[1] = {1};
  pd_dataset batch = {.rows = 1, .cols = 2, .features = x, .labels = y};
  float loss = pd_model_gradient(model, params, &batch, grad);
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
  pd_model *model = new_model(&spec, 3); /* 4 rows: chunks of 3 and 1 */
  float params[6] = {1, 0, 0, 1, 0, 0};
  float x[8] = {1, 0, 0, 1, 0.2f, 0.9f, 0.7f, 0.1f};
  uint8_t y[4] = {0, 1, 1, 1}; /* the last one is predicted 0: wrong */
  pd_dataset data = {.rows = 4, .cols = 2, .features = x, .labels = y};
  pd_eval e;
  pd_model_evaluate(model, params, &data, &e);
  CHECK_NEAR(e.accuracy, 0.75, 1e-12);
  CHECK(e.rmse == 0.0);
  /* Row loss: log(1 + exp(z_other - z_label)). */
  double expected =
      (log1p(exp(-1.0)) + log1p(exp(-1.0)) + log1p(exp(0.2 - 0.9)) + log1p(exp(0.7 - 0.1))) / 4.0;
  CHECK_NEAR(e.loss, expected, 1e-6);
  pd_dataset empty = {.rows = 0, .cols = 2, .features = x, .labels = y};
  pd_model_evaluate(model, params, &empty, &e);
  CHECK(e.loss == 0.0 && e.accuracy == 0.0 && e.rmse == 0.0);
  /* A bias that favours class 1 flips the first row. */
  params[5] = 2.0f;
  pd_model_evaluate(model, params, &data, &e);
  CHECK_NEAR(e.accuracy, 0.75, 1e-12); /* row 0 now wrong, row 3 now right */
  /* Labels from the targets when there are none. */
  float targets[4] = {0, 1, 1, 1};
  pd_dataset by_target = {.rows = 4, .cols = 2, .features = x, .targets = targets};
  pd_eval e2;
  pd_model_evaluate(model, params, &by_target, &e2);
  CHECK(e2.accuracy == e.accuracy && e2.loss == e.loss);
  pd_model_free(model);
}

/* Linear regression y = x0 + 2 x1 + 0.5 on 3 rows: errors 0, 0.5, -0.5. */
static void test_evaluate_linreg(void) {
  int layers[] = {2, 1};
  pd_model_spec spec = make_spec(PD_MODEL_LINREG, layers, 2, 0, 1);
  pd_model *model = new_model(&spec, 2);
  float params[3] = {1, 2, 0.5f};
  float x[6] = {1, 0, 0, 1, 1, 1}, targets[3] = {1.5f, 2.0f, 4.0f};
  pd_dataset data = {.rows = 3, .cols = 2, .features = x, .targets = targets};
  pd_eval e;
  pd_model_evaluate(model, params, &data, &e);
  CHECK_NEAR(e.rmse, sqrt(0.5 / 3.0), 1e-7);
  CHECK_NEAR(e.loss, 0.5 * 0.5 / 3.0, 1e-7);
  CHECK(e.accuracy == 0.0);
  /* the same rows sparse (row 0 and 1 have one non-zero, row 2 two) */
  uint64_t row_ptr[4] = {0, 1, 2, 4};
  uint32_t cols[4] = {0, 1, 0, 1};
  float values[4] = {1, 1, 1, 1};
  pd_dataset sparse = {.rows = 3,
                       .cols = 2,
                       .row_ptr = row_ptr,
                       .col_idx = cols,
                       .values = values,
                       .targets = targets};
  pd_eval es;
  pd_model_evaluate(model, params, &sparse, &es);
  CHECK_NEAR(es.rmse, e.rmse, 1e-7);
  /* the gradient of the mean of 0.5 (y_hat - y)^2 */
  pd_model *whole_batch = new_model(&spec, 3);
  float grad[3];
  float loss = pd_model_gradient(whole_batch, params, &sparse, grad);
  pd_model_free(whole_batch);
  CHECK_NEAR(loss, e.loss, 1e-7);
  CHECK_NEAR(grad[0], (0.0 * 1 + -0.5 * 1) / 3.0, 1e-7);
  CHECK_NEAR(grad[1], (0.5 * 1 + -0.5 * 1) / 3.0, 1e-7);
  CHECK_NEAR(grad[2], (0.0 + 0.5 - 0.5) / 3.0, 1e-7);
  pd_model_free(model);
}

/* Logistic regression with z = x0 - x1: labels 0/1 from labels, or from
 * targets (> 0.5, so that -1/+1 data works). */
static void test_evaluate_logreg(void) {
  int layers[] = {2, 1};
  pd_model_spec spec = make_spec(PD_MODEL_LOGREG, layers, 2, 0, 1);
  pd_model *model = new_model(&spec, 8);
  float params[3] = {1, -1, 0};
  float x[8] = {2, 0, 0, 2, 1, 0, 3, 1};
  uint8_t labels[4] = {1, 0, 0, 1}; /* row 2 (z = 1) is wrong */
  pd_dataset data = {.rows = 4, .cols = 2, .features = x, .labels = labels};
  pd_eval e;
  pd_model_evaluate(model, params, &data, &e);
  CHECK_NEAR(e.accuracy, 0.75, 1e-12);
  double expected =
      (log1p(exp(-2.0)) + log1p(exp(-2.0)) + log1p(exp(1.0)) + log1p(exp(-2.0))) / 4.0;
  CHECK_NEAR(e.loss, expected, 1e-6);
  float targets[4] = {1, -1, -1, 1};
  pd_dataset by_target = {.rows = 4, .cols = 2, .features = x, .targets = targets};
  pd_eval e2;
  pd_model_evaluate(model, params, &by_target, &e2);
  CHECK(e2.accuracy == e.accuracy);
  CHECK_NEAR(e2.loss, e.loss, 1e-12);
  pd_model_free(model);
}

/* A million features, 40 non-zeros per row: only those columns (and the
 * bias) get a gradient, and a step takes milliseconds. */
static void test_sparse_logreg_large(void) {
  enum { FEATURES = 1 << 20, ROWS = 256, NNZ = 40 };
  int layers[] = {FEATURES, 1};
  pd_model_spec spec = make_spec(PD_MODEL_LOGREG, layers, 2, 0, 9);
  pd_model *model = new_model(&spec, ROWS);
  uint64_t k = pd_model_num_params(model);
  CHECK_EQ_INT(k, FEATURES + 1);
  float *params = init_params(&spec, k);
  float *grad = pd_xmalloc(k * sizeof(float));
  uint64_t *row_ptr = pd_xmalloc((ROWS + 1) * sizeof(uint64_t));
  uint32_t *cols = pd_xmalloc(ROWS * NNZ * sizeof(uint32_t));
  float *values = pd_xmalloc(ROWS * NNZ * sizeof(float));
  uint8_t *labels = pd_xmalloc(ROWS);
  uint8_t *touched = pd_xcalloc(FEATURES, 1);
  for (int r = 0; r < ROWS; r++) {
    row_ptr[r] = (uint64_t)r * NNZ;
    labels[r] = (uint8_t)(r & 1);
    for (int j = 0; j < NNZ; j++) {
      uint32_t col = (uint32_t)(j * (FEATURES / NNZ) + (r * 7919 + j * 104729) % (FEATURES / NNZ));
      cols[r * NNZ + j] = col;
      values[r * NNZ + j] = 1.0f;
      touched[col] = 1;
    }
  }
  row_ptr[ROWS] = ROWS * NNZ;
  pd_dataset batch = {.rows = ROWS,
                      .cols = FEATURES,
                      .row_ptr = row_ptr,
                      .col_idx = cols,
                      .values = values,
                      .labels = labels};
  for (uint64_t j = 0; j < k; j++)
    grad[j] = NAN;
  double t0 = pd_now();
  int steps = 20;
  for (int s = 0; s < steps; s++)
    pd_model_gradient(model, params, &batch, grad);
  double per_step = (pd_now() - t0) / steps;
  printf("# sparse logreg, 2^20 features, batch %d x %d non-zeros: %.2f ms per gradient\n", ROWS,
         NNZ, per_step * 1e3);
  uint64_t nonzero_untouched = 0, nonzero_touched = 0;
  for (uint64_t j = 0; j < FEATURES; j++) {
    CHECK(isfinite(grad[j]));
    if (touched[j])
      nonzero_touched += grad[j] != 0.0f;
    else
      nonzero_untouched += grad[j] != 0.0f;
  }
  CHECK_EQ_INT(nonzero_untouched, 0);
  CHECK(nonzero_touched > ROWS * NNZ / 2);
  CHECK(isfinite(grad[FEATURES]) && grad[FEATURES] != 0.0f); /* the bias */
  free(touched);
  free(labels);
  free(values);
  free(cols);
  free(row_ptr);
  free(grad);
  free(params);
  pd_model_free(model);
}

/* ---------------------------------------------------------------- training */

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

/* Plain SGD over `data` for `epochs`; returns the mean loss of the first
 * and of the last epoch. */
static void sgd(pd_model *model, float *params, const pd_dataset *data, int batch, int epochs,
                float lr, double *first_epoch, double *last_epoch) {
  uint64_t k = pd_model_num_params(model);
  float *grad = pd_xmalloc(k * sizeof(float));
  for (int epoch = 0; epoch < epochs; epoch++) {
    double sum = 0;
    int batches = 0;
    for (uint64_t start = 0; start < data->rows; start += (uint64_t)batch) {
      pd_dataset view = *data;
      view.rows = PD_MIN((uint64_t)batch, data->rows - start);
      if (data->features)
        view.features = data->features + start * data->cols;
      else
        view.row_ptr = data->row_ptr + start;
      if (data->labels)
        view.labels = data->labels + start;
      if (data->targets)
        view.targets = data->targets + start;
      sum += pd_model_gradient(model, params, &view, grad);
      batches++;
      for (uint64_t j = 0; j < k; j++)
        params[j] -= lr * grad[j];
    }
    if (epoch == 0)
      *first_epoch = sum / batches;
    *last_epoch = sum / batches;
  }
  free(grad);
}

static void train(const pd_model_spec *spec, float lr) {
  enum { N = 600, INPUTS = 8, BATCH = 32 };
  static float x[N * INPUTS];
  static uint8_t y[N];
  make_blobs(x, y, N, INPUTS);
  pd_dataset data = {.rows = N, .cols = INPUTS, .features = x, .labels = y};
  pd_model *model = new_model(spec, BATCH);
  uint64_t k = pd_model_num_params(model);
  float *params = init_params(spec, k);
  pd_eval before, after;
  pd_model_evaluate(model, params, &data, &before);
  double first_epoch = 0, last_epoch = 0;
  sgd(model, params, &data, BATCH, 10, lr, &first_epoch, &last_epoch);
  pd_model_evaluate(model, params, &data, &after);
  CHECK(last_epoch < first_epoch);
  CHECK(after.loss < before.loss * 0.2);
  CHECK(after.loss < 0.1);
  CHECK(after.accuracy >= 0.99);
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
  spec.dropout = 0.1;
  train(&spec, 0.1f);
}

/* Sparse logistic regression on separable data: the label is whether the
 * row's first feature is below the middle of the feature space. */
static void test_train_logreg_sparse(void) {
  enum { N = 2000, FEATURES = 5000, NNZ = 5, BATCH = 50 };
  int layers[] = {FEATURES, 1};
  pd_model_spec spec = make_spec(PD_MODEL_LOGREG, layers, 2, 0, 10);
  uint64_t *row_ptr = pd_xmalloc((N + 1) * sizeof(uint64_t));
  uint32_t *cols = pd_xmalloc(N * NNZ * sizeof(uint32_t));
  float *values = pd_xmalloc(N * NNZ * sizeof(float));
  uint8_t *labels = pd_xmalloc(N);
  rng_state = 1;
  for (int r = 0; r < N; r++) {
    row_ptr[r] = (uint64_t)r * NNZ;
    for (int j = 0; j < NNZ; j++) {
      cols[r * NNZ + j] = (uint32_t)(j * (FEATURES / NNZ) +
                                     (int)((rng_uniform() + 1.0f) * 0.5f * (FEATURES / NNZ - 1)));
      values[r * NNZ + j] = 1.0f;
    }
    labels[r] = cols[r * NNZ] < FEATURES / NNZ / 2;
  }
  row_ptr[N] = N * NNZ;
  pd_dataset data = {.rows = N,
                     .cols = FEATURES,
                     .row_ptr = row_ptr,
                     .col_idx = cols,
                     .values = values,
                     .labels = labels};
  pd_model *model = new_model(&spec, BATCH);
  float *params = init_params(&spec, pd_model_num_params(model));
  double first_epoch, last_epoch;
  sgd(model, params, &data, BATCH, 10, 2.0f, &first_epoch, &last_epoch);
  pd_eval e;
  pd_model_evaluate(model, params, &data, &e);
  CHECK(last_epoch < first_epoch * 0.5);
  CHECK(e.accuracy > 0.97);
  free(params);
  pd_model_free(model);
  free(labels);
  free(values);
  free(cols);
  free(row_ptr);
}

/* LeNet on the first rows of Fashion-MNIST: the loss falls. */
static void test_train_lenet_fashion(void) {
  enum { ROWS = 384, BATCH = 32 };
  pd_dataset data;
  char err[512];
  int rc = pd_dataset_load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                               "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", 0,
                               ROWS, &data, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  %s (make deps installs dataset-fashion-mnist)\n", err);
  CHECK_EQ_INT(rc, 0);
  pd_model_spec spec = lenet_spec(1, 28, 28, 10, 42);
  pd_model *model = new_model(&spec, BATCH);
  float *params = init_params(&spec, pd_model_num_params(model));
  pd_eval before, after;
  pd_model_evaluate(model, params, &data, &before);
  double first_epoch, last_epoch, t0 = pd_now();
  sgd(model, params, &data, BATCH, 4, 0.1f, &first_epoch, &last_epoch);
  double seconds = pd_now() - t0;
  pd_model_evaluate(model, params, &data, &after);
  printf("# lenet on %d Fashion-MNIST rows: loss %.3f -> %.3f, accuracy %.3f -> %.3f, "
         "%.0f samples/s\n",
         ROWS, before.loss, after.loss, before.accuracy, after.accuracy, 4 * ROWS / seconds);
  CHECK(last_epoch < first_epoch * 0.8);
  CHECK(after.loss < before.loss * 0.5);
  CHECK(after.accuracy > 0.6);
  free(params);
  pd_model_free(model);
  pd_dataset_close(&data);
}

int main(int argc, char **argv) {
  PD_RUN(test_layout);
  PD_RUN(test_layout_linear);
  PD_RUN(test_layout_lenet);
  PD_RUN(test_init_range_pieces);
  PD_RUN(test_init_range_distribution);
  PD_RUN(test_gradient_softmax);
  PD_RUN(test_gradient_mlp_relu);
  PD_RUN(test_gradient_mlp_tanh);
  PD_RUN(test_gradient_mlp_sigmoid);
  PD_RUN(test_gradient_mlp_wide);
  PD_RUN(test_gradient_mlp_dropout);
  PD_RUN(test_gradient_linreg);
  PD_RUN(test_gradient_logreg);
  PD_RUN(test_gradient_lenet);
  PD_RUN(test_sparse_equals_dense);
  PD_RUN(test_lenet_micro_batches);
  PD_RUN(test_threads_every_model);
  PD_RUN(test_dropout_masks);
  PD_RUN(test_softmax_stable);
  PD_RUN(test_evaluate_known);
  PD_RUN(test_evaluate_linreg);
  PD_RUN(test_evaluate_logreg);
  PD_RUN(test_sparse_logreg_large);
  PD_RUN(test_train_softmax);
  PD_RUN(test_train_mlp);
  PD_RUN(test_train_logreg_sparse);
  PD_RUN(test_train_lenet_fashion);
  PD_TEST_DONE();
}
