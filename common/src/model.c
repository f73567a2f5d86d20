/* Softmax regression and MLPs: parameter layout, seeded initialisation, and
 * the forward/backward passes (OpenBLAS sgemm) behind a worker's gradient. */
#include "pando/model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

#define PD_MAX_PARAMS (2 * (PD_MAX_LAYERS - 1))

struct pd_model {
  pd_model_spec spec;                  /* copy of the caller's spec */
  int max_batch;                       /* rows the scratch buffers hold */
  int nlinear;                         /* affine layers: spec.nlayers - 1 */
  int nparams;                         /* entries used in params[] */
  pd_param_info params[PD_MAX_PARAMS]; /* weight, bias of each layer in key order */
  uint64_t num_params;                 /* K */
  float *act[PD_MAX_LAYERS];           /* l >= 1: output of layer l-1, max_batch x layers[l] */
  float *delta[2];                     /* backprop ping-pong, max_batch x widest hidden layer */
};

static void check_spec(const pd_model_spec *spec) {
  PD_ASSERT(spec->nlayers >= 2 && spec->nlayers <= PD_MAX_LAYERS);
  PD_ASSERT(spec->type == PD_MODEL_MLP || (spec->type == PD_MODEL_SOFTMAX && spec->nlayers == 2));
  for (int i = 0; i < spec->nlayers; i++)
    PD_ASSERT(spec->layers[i] > 0);
  if (spec->type == PD_MODEL_MLP && spec->nlayers > 2)
    PD_ASSERT(spec->activation == PD_ACT_RELU || spec->activation == PD_ACT_TANH ||
              spec->activation == PD_ACT_SIGMOID);
}

int pd_model_layout(const pd_model_spec *spec, pd_param_info *out, int cap, uint64_t *num_params) {
  check_spec(spec);
  uint64_t offset = 0;
  int written = 0;
  for (int l = 0; l + 1 < spec->nlayers; l++) {
    int64_t fan_in = spec->layers[l], fan_out = spec->layers[l + 1];
    pd_param_info weight = {.ndim = 2, .shape = {fan_in, fan_out}, .offset = offset,
                            .size = (uint64_t)fan_in * (uint64_t)fan_out};
    snprintf(weight.name, sizeof(weight.name), "layer%d.weight", l);
    offset += weight.size;
    pd_param_info bias = {.ndim = 1, .shape = {fan_out, 0}, .offset = offset,
                          .size = (uint64_t)fan_out};
    snprintf(bias.name, sizeof(bias.name), "layer%d.bias", l);
    offset += bias.size;
    if (written < cap)
      out[written++] = weight;
    if (written < cap)
      out[written++] = bias;
  }
  if (num_params)
    *num_params = offset;
  return written;
}

pd_model *pd_model_new(const pd_model_spec *spec, int max_batch) {
  PD_ASSERT(max_batch > 0);
  pd_model *model = pd_xcalloc(1, sizeof(*model));
  model->spec = *spec;
  model->max_batch = max_batch;
  model->nlinear = spec->nlayers - 1;
  model->nparams = pd_model_layout(spec, model->params, PD_MAX_PARAMS, &model->num_params);
  int widest_hidden = 1;
  for (int l = 1; l < spec->nlayers; l++) {
    model->act[l] = pd_xmalloc_aligned((size_t)max_batch * (size_t)spec->layers[l] * sizeof(float));
    if (l + 1 < spec->nlayers)
      widest_hidden = PD_MAX(widest_hidden, spec->layers[l]);
  }
  for (int i = 0; i < 2; i++)
    model->delta[i] = pd_xmalloc_aligned((size_t)max_batch * (size_t)widest_hidden * sizeof(float));
  return model;
}

void pd_model_free(pd_model *model) {
  if (!model)
    return;
  for (int i = 0; i < 2; i++)
    free(model->delta[i]);
  for (int l = 1; l < model->spec.nlayers; l++)
    free(model->act[l]);
  free(model);
}

uint64_t pd_model_num_params(const pd_model *model) { return model->num_params; }

const pd_param_info *pd_model_params(const pd_model *model, int *count) {
  *count = model->nparams;
  return model->params;
}

/* ---- initialisation */

static uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* N(0, 1) for one key: outputs 2k and 2k+1 of the splitmix64 sequence seeded
 * with mix(seed), turned into a normal by Box-Muller. */
static double key_normal(uint64_t seed_mix, uint64_t key) {
  const uint64_t gamma = 0x9e3779b97f4a7c15ull;
  uint64_t h1 = splitmix64_mix(seed_mix + (2 * key + 1) * gamma);
  uint64_t h2 = splitmix64_mix(seed_mix + (2 * key + 2) * gamma);
  double u1 = (double)((h1 >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
  double u2 = (double)(h2 >> 11) * 0x1.0p-53;       /* [0, 1) */
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void pd_model_init_range(const pd_model_spec *spec, uint64_t begin, uint64_t end, float *out) {
  pd_param_info params[PD_MAX_PARAMS];
  uint64_t num_params = 0;
  int count = pd_model_layout(spec, params, PD_MAX_PARAMS, &num_params);
  PD_ASSERT(begin <= end && end <= num_params);
  uint64_t seed_mix = splitmix64_mix(spec->seed);
  for (int i = 0; i < count; i++) {
    uint64_t lo = PD_MAX(begin, params[i].offset);
    uint64_t hi = PD_MIN(end, params[i].offset + params[i].size);
    if (lo >= hi)
      continue;
    float *dst = out + (lo - begin);
    if (params[i].ndim == 1) {
      memset(dst, 0, (hi - lo) * sizeof(float));
      continue;
    }
    double scale = sqrt(2.0 / (double)params[i].shape[0]);
    for (uint64_t key = lo; key < hi; key++)
      *dst++ = (float)(key_normal(seed_mix, key) * scale);
  }
}

/* ---- forward and backward */

/* The element-wise loops below run in blocks of VEC_BLOCK with a fixed-count
 * inner loop, which compilers vectorise even at -O2 (selects included). */
#define VEC_BLOCK 16

static void relu(float *z, size_t n) {
  size_t i = 0;
  for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
    for (size_t k = i; k < i + VEC_BLOCK; k++)
      z[k] = z[k] > 0.0f ? z[k] : 0.0f;
  for (; i < n; i++)
    z[i] = z[i] > 0.0f ? z[i] : 0.0f;
}

/* delta *= act'(z) for the hidden activation, written in terms of its
 * output a = act(z). */
static void activation_backward(enum pd_activation activation, float *restrict delta,
                                const float *restrict a, size_t n) {
  size_t i = 0;
  switch (activation) {
  case PD_ACT_RELU:
    for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
      for (size_t k = i; k < i + VEC_BLOCK; k++)
        delta[k] = a[k] > 0.0f ? delta[k] : 0.0f;
    for (; i < n; i++)
      delta[i] = a[i] > 0.0f ? delta[i] : 0.0f;
    break;
  case PD_ACT_TANH:
    for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
      for (size_t k = i; k < i + VEC_BLOCK; k++)
        delta[k] *= 1.0f - a[k] * a[k];
    for (; i < n; i++)
      delta[i] *= 1.0f - a[i] * a[i];
    break;
  case PD_ACT_SIGMOID:
    for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
      for (size_t k = i; k < i + VEC_BLOCK; k++)
        delta[k] *= a[k] * (1.0f - a[k]);
    for (; i < n; i++)
      delta[i] *= a[i] * (1.0f - a[i]);
    break;
  }
}

/* sum[j] += row[j] for j < n. */
static void add_row(float *restrict sum, const float *restrict row, int n) {
  int j = 0;
  for (; j + VEC_BLOCK <= n; j += VEC_BLOCK)
    for (int k = j; k < j + VEC_BLOCK; k++)
      sum[k] += row[k];
  for (; j < n; j++)
    sum[j] += row[j];
}

/* act[0] = x; fills act[1..L] for `rows` rows. The hidden layers hold
 * activations, act[L] the logits. */
static void forward(pd_model *model, const float *params, const float *x, int rows) {
  const int *width = model->spec.layers;
  const float *input = x;
  for (int l = 0; l < model->nlinear; l++) {
    const float *weight = params + model->params[2 * l].offset;
    const float *bias = params + model->params[2 * l + 1].offset;
    int fan_in = width[l], fan_out = width[l + 1];
    float *z = model->act[l + 1];
    for (int r = 0; r < rows; r++)
      memcpy(z + (size_t)r * fan_out, bias, (size_t)fan_out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, fan_out, fan_in, 1.0f, input,
                fan_in, weight, fan_out, 1.0f, z, fan_out);
    size_t n = (size_t)rows * (size_t)fan_out;
    if (l + 1 < model->nlinear) {
      switch (model->spec.activation) {
      case PD_ACT_RELU:
        relu(z, n);
        break;
      case PD_ACT_TANH:
        for (size_t i = 0; i < n; i++)
          z[i] = tanhf(z[i]);
        break;
      case PD_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
          z[i] = 1.0f / (1.0f + expf(-z[i]));
        break;
      }
    }
    input = z;
  }
}

/* Turns one row of logits into probabilities in place and returns the
 * row's cross-entropy for `label`; *argmax receives the predicted class. */
static double softmax_row(float *z, int classes, int label, int *argmax) {
  int best = 0;
  float max = z[0];
  for (int j = 1; j < classes; j++)
    if (z[j] > max) {
      max = z[j];
      best = j;
    }
  float label_logit = z[label];
  float sum = 0.0f;
  for (int j = 0; j < classes; j++) {
    z[j] = expf(z[j] - max);
    sum += z[j];
  }
  float inv = 1.0f / sum;
  for (int j = 0; j < classes; j++)
    z[j] *= inv;
  *argmax = best;
  return log((double)sum) - (double)(label_logit - max);
}

float pd_model_gradient(pd_model *model, const float *params, const float *x, const uint8_t *y,
                        int batch, float *grad) {
  PD_ASSERT(batch > 0 && batch <= model->max_batch);
  const int *width = model->spec.layers;
  int L = model->nlinear, classes = width[L];
  forward(model, params, x, batch);

  /* Loss, and delta = d(mean loss)/d(logits) = (p - onehot(y)) / batch. */
  float *delta = model->act[L];
  double loss = 0.0;
  float inv_batch = 1.0f / (float)batch;
  for (int r = 0; r < batch; r++) {
    PD_ASSERT(y[r] < classes);
    float *row = delta + (size_t)r * classes;
    int argmax;
    loss += softmax_row(row, classes, y[r], &argmax);
    row[y[r]] -= 1.0f;
    for (int j = 0; j < classes; j++)
      row[j] *= inv_batch;
  }

  for (int l = L - 1; l >= 0; l--) {
    int fan_in = width[l], fan_out = width[l + 1];
    const float *input = l == 0 ? x : model->act[l];
    float *grad_weight = grad + model->params[2 * l].offset;
    float *grad_bias = grad + model->params[2 * l + 1].offset;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, fan_in, fan_out, batch, 1.0f, input,
                fan_in, delta, fan_out, 0.0f, grad_weight, fan_out);
    memset(grad_bias, 0, (size_t)fan_out * sizeof(float));
    for (int r = 0; r < batch; r++)
      add_row(grad_bias, delta + (size_t)r * fan_out, fan_out);
    if (l == 0)
      break;
    /* delta of layer l's input: (delta W^T) * act'(act[l]). */
    float *prev = model->delta[l & 1];
    const float *weight = params + model->params[2 * l].offset;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, fan_in, fan_out, 1.0f, delta,
                fan_out, weight, fan_out, 0.0f, prev, fan_in);
    activation_backward(model->spec.activation, prev, model->act[l],
                        (size_t)batch * (size_t)fan_in);
    delta = prev;
  }
  return (float)(loss / batch);
}

void pd_model_evaluate(pd_model *model, const float *params, const float *x, const uint8_t *y,
                       uint64_t n, double *loss, double *accuracy) {
  int L = model->nlinear, inputs = model->spec.layers[0], classes = model->spec.layers[L];
  double loss_sum = 0.0;
  uint64_t correct = 0;
  for (uint64_t start = 0; start < n; start += (uint64_t)model->max_batch) {
    int rows = (int)PD_MIN((uint64_t)model->max_batch, n - start);
    forward(model, params, x + start * (uint64_t)inputs, rows);
    for (int r = 0; r < rows; r++) {
      int label = y[start + (uint64_t)r], argmax;
      PD_ASSERT(label < classes);
      loss_sum += softmax_row(model->act[L] + (size_t)r * classes, classes, label, &argmax);
      correct += argmax == label;
    }
  }
  *loss = n ? loss_sum / (double)n : 0.0;
  *accuracy = n ? (double)correct / (double)n : 0.0;
}
