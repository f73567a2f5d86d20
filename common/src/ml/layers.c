/* Forward and backward passes of the layers models are built from; see
 * layers.h. Matrix products go through OpenBLAS, the rest are plain loops
 * written so that compilers vectorise them. */
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
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, fan_out, fan_in, 1.0f, x, fan_in,
              weight, fan_out, 1.0f, y, fan_out);
}

void pd__affine_backward(const float *x, int rows, int fan_in, const float *weight, int fan_out,
                         const float *dy, float *dweight, float *dbias, float *dx) {
  if (fan_out == 1)
    cblas_sgemv(CblasRowMajor, CblasTrans, rows, fan_in, 1.0f, x, fan_in, dy, 1, 0.0f, dweight, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, fan_in, fan_out, rows, 1.0f, x, fan_in, dy,
                fan_out, 0.0f, dweight, fan_out);
  column_sums(dy, rows, fan_out, dbias);
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, fan_in, fan_out, 1.0f, dy, fan_out,
                weight, fan_out, 0.0f, dx, fan_in);
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

void pd__dropout_mask(uint64_t seed, uint64_t stream, float rate, float *mask, size_t n) {
  PD_ASSERT(rate >= 0.0f && rate < 1.0f);
  /* Each 64-bit hash gives two 32-bit uniforms; keep when u >= rate. */
  uint64_t base = pd_mix64(pd_mix64(seed) ^ (stream * 0x9e3779b97f4a7c15ull));
  uint32_t threshold = (uint32_t)fmin((double)rate * 4294967296.0, 4294967295.0);
  float keep = 1.0f / (1.0f - rate);
  for (size_t i = 0; i < n; i += 2) {
    uint64_t h = pd_mix64(base + (uint64_t)i * 0xd1b54a32d192ed03ull);
    mask[i] = (uint32_t)h >= threshold ? keep : 0.0f;
    if (i + 1 < n)
      mask[i + 1] = (uint32_t)(h >> 32) >= threshold ? keep : 0.0f;
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

/* ---------------------------------------------------------------- convolution */

/* Convolutions are matrix products over "im2col" columns: row q = (c, kh, kw)
 * of `cols` holds, for every output position of a chunk of samples, the input
 * value that kernel tap q sees there (0 in the padding). Then
 *   y[filters x positions] = W[filters x q] cols[q x positions].
 * The chunk's input is first copied into a zero-bordered buffer, so that
 * every tap reads whole rows without bounds checks. Chunks are sized so that
 * the scratch stays in the caches. */
#define CONV_CHUNK_FLOATS (512u * 1024u)
/* Rows are copied in blocks of COPY_BLOCK floats that may run past a row's
 * end (the next row overwrites it); buffers have slack for that. */
#define COPY_BLOCK 16

void pd__conv_init(pd__conv *conv, int channels, int height, int width, int filters, int kernel,
                   int pad) {
  PD_ASSERT(channels > 0 && height > 0 && width > 0 && filters > 0 && kernel > 0 && pad >= 0);
  conv->channels = channels;
  conv->height = height;
  conv->width = width;
  conv->filters = filters;
  conv->kernel = kernel;
  conv->pad = pad;
  conv->out_height = height + 2 * pad - kernel + 1;
  conv->out_width = width + 2 * pad - kernel + 1;
  PD_ASSERT(conv->out_height > 0 && conv->out_width > 0);
}

static size_t conv_rows(const pd__conv *conv) {
  return (size_t)conv->channels * (size_t)conv->kernel * (size_t)conv->kernel;
}

static size_t out_plane(const pd__conv *conv) {
  return (size_t)conv->out_height * (size_t)conv->out_width;
}

/* A plane of the input with its zero border. */
static int padded_width(const pd__conv *conv) { return conv->width + 2 * conv->pad; }
static size_t padded_plane(const pd__conv *conv) {
  return (size_t)(conv->height + 2 * conv->pad) * (size_t)padded_width(conv);
}

static int conv_chunk(const pd__conv *conv, int batch) {
  size_t per_sample = conv_rows(conv) * out_plane(conv);
  size_t chunk = CONV_CHUNK_FLOATS / per_sample;
  return (int)PD_MAX(1, PD_MIN(chunk, (size_t)batch));
}

/* Floats past the padded chunk that im2col may read: a block copy starts
 * up to kernel - 1 floats into a row and runs up to COPY_BLOCK - 1 past it. */
static size_t padded_slack(const pd__conv *conv) { return COPY_BLOCK + (size_t)conv->kernel; }

/* The scratch holds the columns (and COPY_BLOCK floats that im2col may write
 * past them), then the padded input of one chunk and its slack. */
static float *padded_of(const pd__conv *conv, int chunk, float *scratch) {
  return scratch + conv_rows(conv) * out_plane(conv) * (size_t)chunk + COPY_BLOCK;
}

size_t pd__conv_scratch(const pd__conv *conv, int batch) {
  size_t chunk = (size_t)conv_chunk(conv, batch);
  return conv_rows(conv) * out_plane(conv) * chunk + COPY_BLOCK +
         (size_t)conv->channels * chunk * padded_plane(conv) + padded_slack(conv);
}

/* padded [channels x count planes] = samples [first, first + count) of x
 * with a zero border. */
static void pad_chunk(const pd__conv *conv, const float *x, int batch, int first, int count,
                      float *padded) {
  int width = conv->width, pw = padded_width(conv), pad = conv->pad;
  size_t plane = (size_t)conv->height * (size_t)width, pplane = padded_plane(conv);
  memset(padded, 0,
         ((size_t)conv->channels * (size_t)count * pplane + padded_slack(conv)) * sizeof(float));
  for (int c = 0; c < conv->channels; c++)
    for (int s = 0; s < count; s++) {
      const float *src = x + ((size_t)c * (size_t)batch + (size_t)(first + s)) * plane;
      float *dst = padded + ((size_t)c * (size_t)count + (size_t)s) * pplane +
                   (size_t)pad * (size_t)pw + (size_t)pad;
      for (int h = 0; h < conv->height; h++)
        memcpy(dst + (size_t)h * (size_t)pw, src + (size_t)h * (size_t)width,
               (size_t)width * sizeof(float));
    }
}

/* cols[q x count*out_plane] from the padded chunk. */
static void im2col(const pd__conv *conv, const float *padded, int count, float *cols) {
  int k = conv->kernel, out_h = conv->out_height, out_w = conv->out_width, pw = padded_width(conv);
  size_t pplane = padded_plane(conv);
  float *dst = cols;
  for (int c = 0; c < conv->channels; c++)
    for (int kh = 0; kh < k; kh++)
      for (int kw = 0; kw < k; kw++)
        for (int s = 0; s < count; s++) {
          const float *src = padded + ((size_t)c * (size_t)count + (size_t)s) * pplane +
                             (size_t)kh * (size_t)pw + (size_t)kw;
          for (int oh = 0; oh < out_h; oh++, dst += out_w, src += pw)
            for (int ow = 0; ow < out_w; ow += COPY_BLOCK)
              memcpy(dst + ow, src + ow, COPY_BLOCK * sizeof(float));
        }
}

/* Four floats as one SSE register (GCC and Clang vector extension). */
typedef float v4f __attribute__((vector_size(16)));

/* d[i] += s[i] for i < n (short rows: explicit vectors, as the compiler
 * cannot prove d and s apart once this is inlined). */
static void add_to(float *d, const float *s, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4f a, b;
    memcpy(&a, d + i, sizeof a);
    memcpy(&b, s + i, sizeof b);
    a += b;
    memcpy(d + i, &a, sizeof a);
  }
  for (; i < n; i++)
    d[i] += s[i];
}

/* The adjoint of pad_chunk + im2col: sums cols into the padded chunk, then
 * writes its interior to samples [first, first + count) of dx. */
static void col2im(const pd__conv *conv, const float *cols, int batch, int first, int count,
                   float *padded, float *dx) {
  int k = conv->kernel, out_h = conv->out_height, out_w = conv->out_width, pw = padded_width(conv);
  int width = conv->width, pad = conv->pad;
  size_t pplane = padded_plane(conv), plane = (size_t)conv->height * (size_t)width;
  memset(padded, 0, (size_t)conv->channels * (size_t)count * pplane * sizeof(float));
  const float *src = cols;
  for (int c = 0; c < conv->channels; c++)
    for (int kh = 0; kh < k; kh++)
      for (int kw = 0; kw < k; kw++)
        for (int s = 0; s < count; s++) {
          float *dst = padded + ((size_t)c * (size_t)count + (size_t)s) * pplane +
                       (size_t)kh * (size_t)pw + (size_t)kw;
          for (int oh = 0; oh < out_h; oh++, src += out_w, dst += pw)
            add_to(dst, src, out_w);
        }
  for (int c = 0; c < conv->channels; c++)
    for (int s = 0; s < count; s++) {
      const float *from = padded + ((size_t)c * (size_t)count + (size_t)s) * pplane +
                          (size_t)pad * (size_t)pw + (size_t)pad;
      float *to = dx + ((size_t)c * (size_t)batch + (size_t)(first + s)) * plane;
      for (int h = 0; h < conv->height; h++)
        memcpy(to + (size_t)h * (size_t)width, from + (size_t)h * (size_t)pw,
               (size_t)width * sizeof(float));
    }
}

void pd__conv_forward(const pd__conv *conv, const float *x, int batch, const float *weight,
                      const float *bias, float *y, float *scratch) {
  int chunk = conv_chunk(conv, batch), q = (int)conv_rows(conv);
  size_t plane = out_plane(conv), stride = (size_t)batch * plane; /* between filters in y */
  float *cols = scratch, *padded = padded_of(conv, chunk, scratch);
  for (int first = 0; first < batch; first += chunk) {
    int count = PD_MIN(chunk, batch - first);
    int positions = count * (int)plane;
    pad_chunk(conv, x, batch, first, count, padded);
    im2col(conv, padded, count, cols);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, conv->filters, positions, q, 1.0f,
                weight, q, cols, positions, 0.0f, y + (size_t)first * plane, (int)stride);
  }
  for (int f = 0; f < conv->filters; f++) {
    float *row = y + (size_t)f * stride, b = bias[f];
    size_t i = 0;
    for (; i + VEC_BLOCK <= stride; i += VEC_BLOCK)
      for (size_t j = i; j < i + VEC_BLOCK; j++)
        row[j] += b;
    for (; i < stride; i++)
      row[i] += b;
  }
}

/* The sum of n floats, in VEC_BLOCK lanes. */
static double sum_of(const float *v, size_t n) {
  float lane[VEC_BLOCK] = {0};
  size_t i = 0;
  for (; i + VEC_BLOCK <= n; i += VEC_BLOCK)
    for (size_t j = 0; j < VEC_BLOCK; j++)
      lane[j] += v[i + j];
  double sum = 0.0;
  for (; i < n; i++)
    sum += v[i];
  for (size_t j = 0; j < VEC_BLOCK; j++)
    sum += lane[j];
  return sum;
}

void pd__conv_backward(const pd__conv *conv, const float *x, int batch, const float *weight,
                       const float *dy, float *dweight, float *dbias, float *dx, float *scratch) {
  int chunk = conv_chunk(conv, batch), q = (int)conv_rows(conv);
  size_t plane = out_plane(conv), stride = (size_t)batch * plane;
  float *cols = scratch, *padded = padded_of(conv, chunk, scratch);
  for (int f = 0; f < conv->filters; f++)
    dbias[f] = (float)sum_of(dy + (size_t)f * stride, stride);
  for (int first = 0; first < batch; first += chunk) {
    int count = PD_MIN(chunk, batch - first);
    int positions = count * (int)plane;
    const float *dy_chunk = dy + (size_t)first * plane;
    pad_chunk(conv, x, batch, first, count, padded);
    im2col(conv, padded, count, cols);
    /* dW [filters x q] (+)= dy [filters x positions] cols^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, conv->filters, q, positions, 1.0f,
                dy_chunk, (int)stride, cols, positions, first == 0 ? 0.0f : 1.0f, dweight, q);
    if (!dx)
      continue;
    /* dcols [q x positions] = W^T dy, into the same scratch */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q, positions, conv->filters, 1.0f, weight,
                q, dy_chunk, (int)stride, 0.0f, cols, positions);
    col2im(conv, cols, batch, first, count, padded, dx);
  }
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

void pd__cnhw_to_rows(const float *x, int channels, int batch, size_t plane, float *rows) {
  for (int c = 0; c < channels; c++)
    for (int b = 0; b < batch; b++)
      memcpy(rows + ((size_t)b * (size_t)channels + (size_t)c) * plane,
             x + ((size_t)c * (size_t)batch + (size_t)b) * plane, plane * sizeof(float));
}

void pd__rows_to_cnhw(const float *rows, int channels, int batch, size_t plane, float *x) {
  for (int c = 0; c < channels; c++)
    for (int b = 0; b < batch; b++)
      memcpy(x + ((size_t)c * (size_t)batch + (size_t)b) * plane,
             rows + ((size_t)b * (size_t)channels + (size_t)c) * plane, plane * sizeof(float));
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
