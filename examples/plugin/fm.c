/* An example Pando model plugin: a factorization machine (Rendle, ICDM 2010),
 * written against pando/plugin.h only. For one row x,
 *
 *   y(x) = w0 + sum_i w_i x_i + 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]
 *
 * with a logistic loss on 0/1 labels (binary classification) or a squared
 * loss 0.5 (y - target)^2 (regression). It takes dense or sparse rows and
 * only touches the parameters of a row's non-zero features.
 *
 * Build (the Makefile does: build/examples/libpando_example_plugin.so):
 *   cc -std=c11 -O2 -fPIC -shared -Icommon/include -o libfm.so examples/plugin/fm.c -lm
 * Use in a job spec:
 *   model:
 *     type: plugin
 *     path: /opt/pando/libpando_example_plugin.so   # the same path on every node
 *     layers: [1048576, 1]                          # inputs, outputs (1)
 *     seed: 7
 *     config: {factors: 8, loss: logistic, init_std: 0.01}
 * Config keys: factors (1..1024, default 8), loss (logistic or squared,
 * default logistic), init_std (standard deviation of the initial factors,
 * default 0.01). The parameters are the tensors "bias" [1], "linear"
 * [inputs] and "factors" [inputs, factors]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/plugin.h"

typedef struct fm {
  int inputs;   /* features */
  int factors;  /* k, the length of each feature's factor vector */
  int logistic; /* 1: logistic loss on 0/1 labels; 0: squared loss on targets */
  double init_std;
  double *sum; /* k: sum_i v_if x_i of the current row */
} fm;

/* Offsets of the tensors in the flat parameter vector. */
static size_t linear_at(const fm *m) {
  (void)m;
  return 1;
}
static size_t factors_at(const fm *m) { return 1 + (size_t)m->inputs; }
static size_t num_params(const fm *m) {
  return factors_at(m) + (size_t)m->inputs * (size_t)m->factors;
}

static void *fm_create(const pando_plugin_kv *config, int nconfig, int inputs, int outputs,
                       int max_batch, char *err, size_t errlen) {
  (void)max_batch;
  fm m = {.inputs = inputs, .factors = 8, .logistic = 1, .init_std = 0.01};
  if (outputs != 1) {
    snprintf(err, errlen, "a factorization machine has 1 output (model.layers [inputs, 1]), got %d",
             outputs);
    return NULL;
  }
  for (int i = 0; i < nconfig; i++) {
    const char *key = config[i].key, *value = config[i].value;
    char *end = NULL;
    if (strcmp(key, "factors") == 0) {
      long k = strtol(value, &end, 10);
      if (end == value || *end || k < 1 || k > 1024) {
        snprintf(err, errlen, "factors: must be an integer from 1 to 1024, got '%s'", value);
        return NULL;
      }
      m.factors = (int)k;
    } else if (strcmp(key, "loss") == 0) {
      if (strcmp(value, "logistic") != 0 && strcmp(value, "squared") != 0) {
        snprintf(err, errlen, "loss: must be logistic or squared, got '%s'", value);
        return NULL;
      }
      m.logistic = strcmp(value, "logistic") == 0;
    } else if (strcmp(key, "init_std") == 0) {
      double s = strtod(value, &end);
      if (end == value || *end || !(s >= 0.0 && s <= 10.0)) {
        snprintf(err, errlen, "init_std: must be a number from 0 to 10, got '%s'", value);
        return NULL;
      }
      m.init_std = s;
    } else {
      snprintf(err, errlen, "unknown key '%s' (the keys are factors, loss, init_std)", key);
      return NULL;
    }
  }
  fm *out = malloc(sizeof *out);
  double *sum = calloc((size_t)m.factors, sizeof *sum);
  if (!out || !sum) {
    free(out);
    free(sum);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  *out = m;
  out->sum = sum;
  return out;
}

static void fm_destroy(void *model) {
  fm *m = model;
  free(m->sum);
  free(m);
}

static int fm_tensors(void *model, pando_plugin_tensor *out, int cap) {
  const fm *m = model;
  pando_plugin_tensor t[3] = {
      {"bias", 1, {1, 0, 0, 0}},
      {"linear", 1, {m->inputs, 0, 0, 0}},
      {"factors", 2, {m->inputs, m->factors, 0, 0}},
  };
  for (int i = 0; i < 3 && i < cap; i++)
    out[i] = t[i];
  return 3;
}

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Bias and linear weights start at 0, factors at N(0, init_std^2) drawn from
 * a hash of (seed, key) alone, so any key range can be initialised alone. */
static void fm_init(void *model, uint64_t seed, uint64_t begin, uint64_t end, float *out) {
  const fm *m = model;
  uint64_t first_factor = factors_at(m), seed_mix = mix(seed ^ 0x5eedf00dull);
  for (uint64_t key = begin; key < end; key++) {
    if (key < first_factor) {
      *out++ = 0.0f;
      continue;
    }
    uint64_t h1 = mix(seed_mix + 2 * key + 1), h2 = mix(seed_mix + 2 * key + 2);
    double u1 = (double)((h1 >> 11) + 1) * 0x1.0p-53, u2 = (double)(h2 >> 11) * 0x1.0p-53;
    *out++ = (float)(m->init_std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
  }
}

/* Walks the non-zeros of row r, dense or sparse alike. */
typedef struct row_iter {
  const pando_plugin_batch *b;
  uint64_t p, end; /* sparse: position; dense: column */
  uint64_t row;
} row_iter;

static row_iter row_begin(const pando_plugin_batch *b, uint64_t r) {
  row_iter it = {b, 0, 0, r};
  if (b->features) {
    it.end = b->cols;
  } else {
    it.p = b->row_ptr[r];
    it.end = b->row_ptr[r + 1];
  }
  return it;
}

/* Next non-zero: 1 with (*col, *value), or 0 at the end of the row. */
static int row_next(row_iter *it, uint32_t *col, float *value) {
  const pando_plugin_batch *b = it->b;
  if (b->features) {
    const float *row = b->features + it->row * b->cols;
    while (it->p < it->end && row[it->p] == 0.0f)
      it->p++;
    if (it->p >= it->end)
      return 0;
    *col = (uint32_t)it->p;
    *value = row[it->p++];
    return 1;
  }
  if (it->p >= it->end)
    return 0;
  *col = b->col_idx[it->p];
  *value = b->values[it->p++];
  return 1;
}

/* y(x) of row r; leaves sum_i v_if x_i in m->sum. */
static double predict_row(fm *m, const float *params, const pando_plugin_batch *b, uint64_t r) {
  const float *w = params + linear_at(m), *v = params + factors_at(m);
  int k = m->factors;
  double y = params[0], squares = 0.0;
  memset(m->sum, 0, (size_t)k * sizeof *m->sum);
  row_iter it = row_begin(b, r);
  uint32_t i;
  float x;
  while (row_next(&it, &i, &x)) {
    if (i >= (uint32_t)m->inputs)
      continue; /* outside the model: ignored */
    y += (double)w[i] * x;
    const float *vi = v + (size_t)i * (size_t)k;
    for (int f = 0; f < k; f++) {
      double vx = (double)vi[f] * x;
      m->sum[f] += vx;
      squares += vx * vx;
    }
  }
  for (int f = 0; f < k; f++)
    y += 0.5 * m->sum[f] * m->sum[f];
  return y - 0.5 * squares;
}

/* The label (logistic: 0/1) or target (squared) of row r. */
static double truth(const fm *m, const pando_plugin_batch *b, uint64_t r) {
  if (m->logistic)
    return b->labels ? (b->labels[r] ? 1.0 : 0.0) : (b->targets && b->targets[r] > 0.5 ? 1.0 : 0.0);
  return b->targets ? b->targets[r] : b->labels ? b->labels[r] : 0.0;
}

/* Loss of one row and its derivative by y. */
static double row_loss(const fm *m, double y, double t, double *dy) {
  if (m->logistic) {
    double e = exp(-fabs(y));
    *dy = (y >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e)) - t;
    return fmax(y, 0.0) - t * y + log1p(e);
  }
  *dy = y - t;
  return 0.5 * (y - t) * (y - t);
}

static float fm_gradient(void *model, const float *params, const pando_plugin_batch *b,
                         float *grad) {
  fm *m = model;
  float *gw = grad + linear_at(m), *gv = grad + factors_at(m);
  const float *v = params + factors_at(m);
  int k = m->factors;
  memset(grad, 0, num_params(m) * sizeof *grad);
  double loss = 0.0, scale = 1.0 / (double)b->rows, bias = 0.0;
  for (uint64_t r = 0; r < b->rows; r++) {
    double dy, y = predict_row(m, params, b, r);
    loss += row_loss(m, y, truth(m, b, r), &dy);
    dy *= scale;
    bias += dy;
    row_iter it = row_begin(b, r);
    uint32_t i;
    float x;
    while (row_next(&it, &i, &x)) {
      if (i >= (uint32_t)m->inputs)
        continue;
      gw[i] += (float)(dy * x);
      const float *vi = v + (size_t)i * (size_t)k;
      float *gvi = gv + (size_t)i * (size_t)k;
      for (int f = 0; f < k; f++) /* d y / d v_if = x_i (sum_f - v_if x_i) */
        gvi[f] += (float)(dy * x * (m->sum[f] - (double)vi[f] * x));
    }
  }
  grad[0] = (float)bias;
  return (float)(loss * scale);
}

static float fm_predict(void *model, const float *params, const pando_plugin_batch *b, float *out) {
  fm *m = model;
  double loss = 0.0, dy;
  for (uint64_t r = 0; r < b->rows; r++) {
    double y = predict_row(m, params, b, r);
    loss += row_loss(m, y, truth(m, b, r), &dy);
    out[r] = m->logistic ? (y > 0.0 ? 1.0f : 0.0f) : (float)y;
  }
  return (float)(loss / (double)b->rows);
}

static int fm_task(void *model) {
  const fm *m = model;
  return m->logistic ? PANDO_PLUGIN_CLASSIFY : PANDO_PLUGIN_REGRESS;
}

static const pando_plugin_v1 table = {
    .abi_version = PANDO_PLUGIN_ABI_VERSION,
    .table_size = sizeof(pando_plugin_v1),
    .name = "factorization-machine",
    .create = fm_create,
    .destroy = fm_destroy,
    .tensors = fm_tensors,
    .init = fm_init,
    .gradient = fm_gradient,
    .predict = fm_predict,
    .task = fm_task,
    .set_seed = NULL, /* no randomness of its own */
};

const pando_plugin_v1 *pando_plugin_entry(void) { return &table; }
