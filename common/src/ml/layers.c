/* Forward and backward passes of the layers models are built from; see
 * layers.h. Matrix products go through the math backend (kernels.c), the
 * rest are plain loops written so that compilers vectorise them. */
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

/* The element-wise loops below run in blocks of VEC_BLOCK with a fixed-count
 * inner loop, which compilers vectorise even at -O2 (selects included). */
#define VEC_BLOCK 16

/* ---------------------------------------------------------------- affine */

/* y[j] += a * x[j] for j < n. */
static void axpy(float *restrict y, float a, const float *restrict x, int n) {
  int j = 0;
  for (; j + VEC_BLOCK <= n; j += VEC_BLOCK)
    for (int k = j; k < j + VEC_BLOCK; k++)
      y[k] += a * x[k];
  for (; j < n; j++)
    y[j] += a * x[j];
}

/* sum[j] = column sums of m [rows x n]. */
static void column_sums(const float *m, int rows, int n, float *sum) {
  memset(sum, 0, (size_t)n * sizeof(float));
  for (int r = 0; r < rows; r++)
    axpy(sum, 1.0f, m + (size_t)r * (size_t)n, n);
}

void pd__affine_forward(const float *x, int rows, int fan_in, const float *weight,
                        const float *bias, int fan_out, float *y) {
  if (fan_out == 1) { /* linear models: a matrix-vector product */
    for (int r = 0; r < rows; r++)
      y[r] = bias[0];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, fan_in, 1.0f, x, fan_in, weight, 1, 1.0f, y, 1);
    return;
  }
  for (int r = 0; r < rows; r++)
    memcpy(y + (size_t)r * (size_t)fan_out, bias, (size_t)fan_out * sizeof(float));
  pd__sgemm('N', 'N', rows, fan_out, fan_in, 1.0f, x, fan_in, weight, fan_out, 1.0f, y, fan_out);
}

void pd__affine_backward(const float *x, int rows, int fan_in, const float *weight, int fan_out,
                         const float *dy, float *dweight, float *dbias, float *dx) {
  if (fan_out == 1)
    cblas_sgemv(CblasRowMajor, CblasTrans, rows, fan_in, 1.0f, x, fan_in, dy, 1, 0.0f, dweight, 1);
  else
    pd__sgemm('T', 'N', fan_in, fan_out, rows, 1.0f, x, fan_in, dy, fan_out, 0.0f, dweight,
              fan_out);
  column_sums(dy, rows, fan_out, dbias);
  if (dx)
    pd__sgemm('N', 'T', rows, fan_in, fan_out, 1.0f, dy, fan_out, weight, fan_out, 0.0f, dx,
              fan_in);
}

void pd__affine_forward_sparse(const pd_dataset *x, const float *weight, const float *bias,
                               int fan_out, float *y) {
  PD_ASSERT(x->row_ptr && x->col_idx && x->values);
  const uint64_t *row_ptr = x->row_ptr;
  const uint32_t *col = x->col_idx;
  const float *val = x->values;
  for (uint64_t r = 0; r < x->rows; r++) {
    if (fan_out == 1) {
      float z = bias[0];
      for (uint64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++)
        z += val[p] * weight[col[p]];
      y[r] = z;
      continue;
    }
    float *out = y + r * (uint64_t)fan_out;
    memcpy(out, bias, (size_t)fan_out * sizeof(float));
    for (uint64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++)
      axpy(out, val[p], weight + (size_t)col[p] * (size_t)fan_out, fan_out);
  }
}

void pd__affine_backward_sparse(const pd_dataset *x, int fan_out, const float *dy, float *dweight,
                                float *dbias) {
  PD_ASSERT(x->row_ptr && x->col_idx && x->values);
  const uint64_t *row_ptr = x->row_ptr;
  const uint32_t *col = x->col_idx;
  const float *val = x->values;
  memset(dweight, 0, (size_t)x->cols * (size_t)fan_out * sizeof(float));
  column_sums(dy, (int)x->rows, fan_out, dbias);
  for (uint64_t r = 0; r < x->rows; r++) {
    const float *d = dy + r * (uint64_t)fan_out;
    for (uint64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++) {
      PD_ASSERT(col[p] < x->cols);
      if (fan_out == 1)
        dweight[col[p]] += val[p] * d[0];
      else
        axpy(dweight + (size_t)col[p] * (size_t)fan_out, val[p], d, fan_out);
    }
  }
}

/* ---------------------------------------------------------------- activations */

void pd__activation_forward(enum pd_activation activation, float *z, size_t n) {
  size_t i = 0;
  switch (activation) {
  case PD_ACT_RELU:
    for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
      for (size_t k = i; k < i + VEC_BLOCK; k++)
        z[k] = z[k] > 0.0f ? z[k] : 0.0f;
    for (; i < n; i++)
      z[i] = z[i] > 0.0f ? z[i] : 0.0f;
    break;
  case PD_ACT_TANH:
    for (; i < n; i++)
      z[i] = tanhf(z[i]);
    break;
  case PD_ACT_SIGMOID:
    for (; i < n; i++)
      z[i] = 1.0f / (1.0f + expf(-z[i]));
    break;
  }
}

void pd__activation_backward(enum pd_activation activation, float *restrict delta,
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

/* ---------------------------------------------------------------- dropout */

void pd__dropout_mask(uint64_t seed, uint64_t stream, float rate, uint64_t first, float *mask,
                      size_t n) {
  PD_ASSERT(rate >= 0.0f && rate < 1.0f);
  /* Each 64-bit hash gives two 32-bit uniforms, for indices 2p and 2p + 1;
   * keep when u >= rate. */
  uint64_t base = pd_mix64(pd_mix64(seed) ^ (stream * 0x9e3779b97f4a7c15ull));
  uint32_t threshold = (uint32_t)fmin((double)rate * 4294967296.0, 4294967295.0);
  float keep = 1.0f / (1.0f - rate);
  for (size_t i = 0; i < n;) {
    uint64_t index = first + i;
    uint64_t h = pd_mix64(base + (index & ~UINT64_C(1)) * 0xd1b54a32d192ed03ull);
    if (!(index & 1))
      mask[i++] = (uint32_t)h >= threshold ? keep : 0.0f;
    if (i < n)
      mask[i++] = (uint32_t)(h >> 32) >= threshold ? keep : 0.0f;
  }
}

void pd__dropout_apply(float *restrict x, const float *restrict mask, size_t n) {
  size_t i = 0;
  for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
    for (size_t k = i; k < i + VEC_BLOCK; k++)
      x[k] *= mask[k];
  for (; i < n; i++)
    x[i] *= mask[i];
}

/* ---------------------------------------------------------------- pooling */

/* Branch-free (data-dependent branches mispredict half the time here): the
 * first largest of each window wins. */
void pd__maxpool2_forward(const float *x, size_t planes, int height, int width, float *y,
                          uint8_t *argmax) {
  PD_ASSERT(height % 2 == 0 && width % 2 == 0);
  int out_h = height / 2, out_w = width / 2;
  for (size_t p = 0; p < planes; p++) {
    const float *in = x + p * (size_t)height * (size_t)width;
    for (int oh = 0; oh < out_h; oh++, y += out_w, argmax += out_w) {
      const float *top = in + (size_t)(2 * oh) * (size_t)width, *bottom = top + width;
      for (int ow = 0; ow < out_w; ow++) {
        float a = top[2 * ow], b = top[2 * ow + 1], c = bottom[2 * ow], d = bottom[2 * ow + 1];
        int right_top = b > a, right_bottom = d > c;
        float max_top = b > a ? b : a, max_bottom = d > c ? d : c; /* maxss */
        int lower = max_bottom > max_top;
        y[ow] = max_bottom > max_top ? max_bottom : max_top;
        argmax[ow] = (uint8_t)(right_top + lower * (2 + right_bottom - right_top));
      }
    }
  }
}

/* Which of a window's 4 inputs won, as factors (a table: compilers turn
 * comparisons back into branches). */
static const float window_pick[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};

void pd__maxpool2_backward(const float *dy, const uint8_t *argmax, size_t planes, int height,
                           int width, float *dx) {
  PD_ASSERT(height % 2 == 0 && width % 2 == 0);
  int out_h = height / 2, out_w = width / 2;
  for (size_t p = 0; p < planes; p++) {
    float *in = dx + p * (size_t)height * (size_t)width;
    for (int oh = 0; oh < out_h; oh++, dy += out_w, argmax += out_w) {
      float *top = in + (size_t)(2 * oh) * (size_t)width, *bottom = top + width;
      for (int ow = 0; ow < out_w; ow++) {
        float d = dy[ow];
        const float *pick = window_pick[argmax[ow] & 3];
        top[2 * ow] = d * pick[0];
        top[2 * ow + 1] = d * pick[1];
        bottom[2 * ow] = d * pick[2];
        bottom[2 * ow + 1] = d * pick[3];
      }
    }
  }
}

/* ---------------------------------------------------------------- losses */

double pd__softmax_ce(float *out, int rows, int classes, const int *labels, float grad_scale,
                      uint64_t *correct) {
  double loss = 0.0;
  uint64_t right = 0;
  for (int r = 0; r < rows; r++) {
    float *z = out + (size_t)r * (size_t)classes;
    int label = labels[r], best = 0;
    PD_ASSERT(label >= 0 && label < classes);
    float max = z[0];
    for (int j = 1; j < classes; j++)
      if (z[j] > max) {
        max = z[j];
        best = j;
      }
    float label_logit = z[label];
    double sum = 0.0;
    for (int j = 0; j < classes; j++) {
      z[j] = expf(z[j] - max);
      sum += z[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < classes; j++)
      z[j] *= inv * grad_scale;
    z[label] -= grad_scale;
    loss += log(sum) - (double)(label_logit - max);
    right += best == label;
  }
  if (correct)
    *correct = right;
  return loss;
}

double pd__squared_loss(float *out, int rows, const float *y, float grad_scale, double *sq_err) {
  double sum = 0.0;
  for (int r = 0; r < rows; r++) {
    double diff = (double)out[r] - (double)y[r];
    sum += diff * diff;
    out[r] = (float)diff * grad_scale;
  }
  if (sq_err)
    *sq_err = sum;
  return 0.5 * sum;
}

double pd__logistic_loss(float *out, int rows, const float *y, float grad_scale,
                         uint64_t *correct) {
  double loss = 0.0;
  uint64_t right = 0;
  for (int r = 0; r < rows; r++) {
    double z = out[r], label = y[r];
    /* log(1 + e^z) - y z without overflow, and sigmoid from the same e^-|z| */
    double e = exp(-fabs(z));
    loss += fmax(z, 0.0) - label * z + log1p(e);
    double p = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    right += (z > 0) == (label > 0.5);
    out[r] = (float)(p - label) * grad_scale;
  }
  if (correct)
    *correct = right;
  return loss;
}
