/* Gradient codecs and error feedback; see pando/codec.h. The layouts are
 * documented at pando.v1.Codec in proto/pando.proto. */
#include "pando/codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

/* The largest block a message may name: a bound for the decoder. */
#define MAX_BLOCK (1u << 24)

static size_t blocks_of(size_t n, uint32_t block) { return (n + block - 1) / block; }

size_t pd_codec_max_bytes(enum pd_codec method, uint32_t block, size_t n) {
  block = pd_codec_block(method, block);
  switch (method) {
  case PD_CODEC_NONE:
    return 4 * n;
  case PD_CODEC_FP16:
  case PD_CODEC_BF16:
    return 2 * n;
  case PD_CODEC_INT8:
    return 4 * blocks_of(n, block) + n;
  case PD_CODEC_ONEBIT:
    return 8 * blocks_of(n, block) + (n + 7) / 8;
  case PD_CODEC_TOPK:
  case PD_CODEC_RANDOMK:
  case PD_CODEC_THRESHOLD:
    return 4 + 4 * n + 5 * n; /* count, values, index deltas of at most 5 bytes */
  }
  return 0;
}

/* ---------------------------------------------------------------- conversions */

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Round to nearest even (F. Giesen's float_to_half_fast3_rtne). */
uint16_t pd_codec_f32_to_f16(float f) {
  uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000u;
  uint32_t o;
  x &= 0x7fffffffu;
  if (x >= 0x47800000u) { /* >= 2^16: infinity, or NaN */
    o = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (x < 0x38800000u) {                    /* below 2^-14: subnormal or zero */
    o = bits_of(float_of(x) + 0.5f) - 0x3f000000u; /* the FPU rounds */
  } else {
    uint32_t odd = (x >> 13) & 1u;
    x += 0xc8000fffu; /* rebias the exponent ((15 - 127) << 23) and round */
    x += odd;
    o = x >> 13;
  }
  return (uint16_t)(o | sign);
}

float pd_codec_f16_to_f32(uint16_t h) {
  const uint32_t shifted_exp = 0x7c00u << 13;
  uint32_t o = ((uint32_t)h & 0x7fffu) << 13, exp = shifted_exp & o;
  o += (uint32_t)(127 - 15) << 23;
  if (exp == shifted_exp) /* infinity or NaN */
    o += (uint32_t)(128 - 16) << 23;
  else if (exp == 0) /* subnormal: renormalise */
    o = bits_of(float_of(o + (1u << 23)) - float_of(113u << 23));
  return float_of(o | ((uint32_t)h & 0x8000u) << 16);
}

uint16_t pd_codec_f32_to_bf16(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
    return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float pd_codec_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

/* Little-endian stores and loads, alignment-free. */
static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_f32(uint8_t *p, float f) { put_u32(p, bits_of(f)); }
static float get_f32(const uint8_t *p) { return float_of(get_u32(p)); }

/* ---------------------------------------------------------------- dense methods */

static size_t encode_half(int bf16, const float *src, size_t n, uint8_t *dst) {
  if (bf16)
    for (size_t i = 0; i < n; i++)
      put_u16(dst + 2 * i, pd_codec_f32_to_bf16(src[i]));
  else
    for (size_t i = 0; i < n; i++)
      put_u16(dst + 2 * i, pd_codec_f32_to_f16(src[i]));
  return 2 * n;
}

static void decode_half(int bf16, const uint8_t *src, size_t n, float *dst) {
  if (bf16)
    for (size_t i = 0; i < n; i++)
      dst[i] = pd_codec_bf16_to_f32(get_u16(src + 2 * i));
  else
    for (size_t i = 0; i < n; i++)
      dst[i] = pd_codec_f16_to_f32(get_u16(src + 2 * i));
}

/* int8: nb float32 scales, then n int8 values q; v = q * scale of its block. */
static size_t encode_int8(const float *src, size_t n, uint32_t block, uint8_t *dst) {
  size_t nb = blocks_of(n, block);
  int8_t *q = (int8_t *)(dst + 4 * nb);
  for (size_t b = 0; b < nb; b++) {
    size_t lo = b * block, hi = PD_MIN(n, lo + block);
    float max = 0;
    for (size_t i = lo; i < hi; i++)
      max = fmaxf(max, fabsf(src[i]));
    float scale = max / 127.0f, inv = max > 0 ? 127.0f / max : 0;
    put_f32(dst + 4 * b, scale);
    for (size_t i = lo; i < hi; i++) {
      float r = rintf(src[i] * inv);
      q[i] = (int8_t)fminf(127.0f, fmaxf(-127.0f, r));
    }
  }
  return 4 * nb + n;
}

static void decode_int8(const uint8_t *src, size_t n, uint32_t block, float *dst) {
  size_t nb = blocks_of(n, block);
  const int8_t *q = (const int8_t *)(src + 4 * nb);
  for (size_t b = 0; b < nb; b++) {
    size_t lo = b * block, hi = PD_MIN(n, lo + block);
    float scale = get_f32(src + 4 * b);
    for (size_t i = lo; i < hi; i++)
      dst[i] = (float)q[i] * scale;
  }
}

/* onebit: nb pairs (mean of the values >= 0, mean of the values < 0), then
 * ceil(n / 8) bytes of signs, value i at bit i % 8 of byte i / 8, 1 for >= 0. */
static size_t encode_onebit(const float *src, size_t n, uint32_t block, uint8_t *dst) {
  size_t nb = blocks_of(n, block);
  uint8_t *bits = dst + 8 * nb;
  for (size_t b = 0; b < nb; b++) {
    size_t lo = b * block, hi = PD_MIN(n, lo + block), npos = 0;
    double pos = 0, neg = 0;
    for (size_t i = lo; i < hi; i++) {
      int p = src[i] >= 0;
      npos += (size_t)p;
      pos += p ? src[i] : 0;
      neg += p ? 0 : src[i];
    }
    size_t nneg = hi - lo - npos;
    put_f32(dst + 8 * b, npos ? (float)(pos / (double)npos) : 0.0f);
    put_f32(dst + 8 * b + 4, nneg ? (float)(neg / (double)nneg) : 0.0f);
  }
  memset(bits, 0, (n + 7) / 8);
  for (size_t i = 0; i < n; i++)
    bits[i >> 3] |= (uint8_t)((src[i] >= 0) << (i & 7));
  return 8 * nb + (n + 7) / 8;
}

static void decode_onebit(const uint8_t *src, size_t n, uint32_t block, float *dst) {
  size_t nb = blocks_of(n, block);
  const uint8_t *bits = src + 8 * nb;
  for (size_t b = 0; b < nb; b++) {
    size_t lo = b * block, hi = PD_MIN(n, lo + block);
    float pos = get_f32(src + 8 * b), neg = get_f32(src + 8 * b + 4);
    for (size_t i = lo; i < hi; i++)
      dst[i] = (bits[i >> 3] >> (i & 7)) & 1 ? pos : neg;
  }
}

/* ---------------------------------------------------------------- sparse methods */

/* The sparse layout: uint32 k, k float32 values, then k varints: the first
 * index, then each index minus the one before minus 1 (indices increase). */
/* Writes the message of the k keys where keep[i] (a byte per key). */
static size_t encode_sparse(const float *src, size_t n, const uint8_t *keep, uint8_t *dst,
                            float *sent) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += keep[i];
  put_u32(dst, (uint32_t)k);
  uint8_t *values = dst + 4, *idx = dst + 4 + 4 * k;
  size_t j = 0, len = 0, prev = 0;
  for (size_t i = 0; i < n; i++) {
    if (!keep[i])
      continue;
    put_f32(values + 4 * j, src[i]);
    len += pd_put_varint(idx + len, j == 0 ? i : i - prev - 1);
    prev = i;
    j++;
  }
  if (sent)
    for (size_t i = 0; i < n; i++)
      sent[i] = keep[i] ? src[i] : 0.0f;
  return 4 + 4 * k + len;
}

/* The k-th largest of a[0, n) (0 < k <= n); reorders a. */
static float kth_largest(float *a, size_t n, size_t k) {
  size_t lo = 0, hi = n, want = k - 1; /* position in descending order */
  while (hi - lo > 1) {
    float pivot = a[lo + (hi - lo) / 2];
    /* three-way partition of [lo, hi): > pivot, == pivot, < pivot */
    size_t gt = lo, i = lo, lt = hi;
    while (i < lt) {
      if (a[i] > pivot) {
        float t = a[gt];
        a[gt++] = a[i];
        a[i++] = t;
      } else if (a[i] < pivot) {
        float t = a[--lt];
        a[lt] = a[i];
        a[i] = t;
      } else {
        i++;
      }
    }
    if (want < gt)
      hi = gt;
    else if (want < lt)
      return pivot;
    else
      lo = lt;
  }
  return a[lo];
}

static size_t sparse_k(double ratio, size_t n) {
  double k = ceil(ratio * (double)n);
  return n == 0 ? 0 : (size_t)PD_MAX(1.0, PD_MIN(k, (double)n));
}

static size_t encode_sparse_method(const pd_codec_params *p, const float *src, size_t n,
                                   uint8_t *dst, float *sent, uint64_t *rng) {
  uint8_t *keep = pd_xcalloc(n ? n : 1, 1);
  if (p->method == PD_CODEC_THRESHOLD) {
    float tau = (float)p->threshold;
    for (size_t i = 0; i < n; i++)
      keep[i] = !(fabsf(src[i]) <= tau); /* NaN is kept: the receiver refuses it */
  } else if (p->method == PD_CODEC_TOPK && n > 0) {
    size_t k = sparse_k(p->ratio, n);
    float *mag = pd_xmalloc(n * sizeof *mag);
    for (size_t i = 0; i < n; i++)
      mag[i] = isnan(src[i]) ? INFINITY : fabsf(src[i]);
    float thr = kth_largest(mag, n, k);
    size_t above = 0;
    for (size_t i = 0; i < n; i++)
      above += !(fabsf(src[i]) <= thr);
    size_t ties = k - PD_MIN(above, k);
    for (size_t i = 0; i < n; i++) {
      float a = fabsf(src[i]);
      keep[i] = !(a <= thr) || (a == thr && ties > 0 && ties--);
    }
    free(mag);
  } else if (n > 0) { /* randomk: Knuth's selection sampling, positions sorted */
    size_t k = sparse_k(p->ratio, n), chosen = 0;
    uint64_t local = 0;
    if (!rng)
      rng = &local;
    for (size_t i = 0; i < n && chosen < k; i++) {
      if (pd_random_unit(rng) * (double)(n - i) < (double)(k - chosen)) {
        keep[i] = 1;
        chosen++;
      }
    }
  }
  size_t len = encode_sparse(src, n, keep, dst, sent);
  free(keep);
  return len;
}

static int decode_sparse(const uint8_t *src, size_t len, float *dst, size_t n, char *err,
                         size_t errlen) {
  if (len < 4)
    return pd_errf(err, errlen, -PD_EFORMAT, "sparse tensor of %zu bytes has no count", len);
  uint64_t k = get_u32(src);
  if (k > n || 4 + 4 * k > len)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "sparse tensor: count %llu does not fit %zu keys in %zu bytes",
                   (unsigned long long)k, n, len);
  memset(dst, 0, n * sizeof *dst);
  const uint8_t *values = src + 4, *p = src + 4 + 4 * k, *end = src + len;
  uint64_t next = 0; /* the smallest index the next one may have */
  for (uint64_t j = 0; j < k; j++) {
    uint64_t delta = 0;
    int shift = 0;
    for (;;) {
      if (p == end || shift > 63)
        return pd_errf(err, errlen, -PD_EFORMAT,
                       "sparse tensor: index %llu of %llu is truncated or too long",
                       (unsigned long long)j, (unsigned long long)k);
      uint8_t b = *p++;
      delta |= (uint64_t)(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80))
        break;
    }
    if (delta >= n || next + delta >= n)
      return pd_errf(err, errlen, -PD_EFORMAT,
                     "sparse tensor: index %llu of %llu is beyond the %zu keys",
                     (unsigned long long)j, (unsigned long long)k, n);
    uint64_t index = next + delta;
    dst[index] = get_f32(values + 4 * j);
    next = index + 1;
  }
  if (p != end)
    return pd_errf(err, errlen, -PD_EFORMAT, "sparse tensor: %zu bytes after its %llu indices",
                   (size_t)(end - p), (unsigned long long)k);
  return 0;
}

/* ---------------------------------------------------------------- entry points */

size_t pd_codec_encode(const pd_codec_params *params, const float *src, size_t n, uint8_t *dst,
                       float *sent, uint64_t *rng) {
  uint32_t block = pd_codec_block(params->method, params->block);
  size_t len = 0;
  switch (params->method) {
  case PD_CODEC_NONE:
    memcpy(dst, src, n * sizeof *src);
    if (sent)
      memcpy(sent, src, n * sizeof *src);
    return 4 * n;
  case PD_CODEC_FP16:
  case PD_CODEC_BF16:
    len = encode_half(params->method == PD_CODEC_BF16, src, n, dst);
    break;
  case PD_CODEC_INT8:
    len = encode_int8(src, n, block, dst);
    break;
  case PD_CODEC_ONEBIT:
    len = encode_onebit(src, n, block, dst);
    break;
  case PD_CODEC_TOPK:
  case PD_CODEC_RANDOMK:
  case PD_CODEC_THRESHOLD:
    return encode_sparse_method(params, src, n, dst, sent, rng);
  }
  if (sent)
    PD_ASSERT(pd_codec_decode(params->method, block, dst, len, sent, n, NULL, 0) == 0);
  return len;
}

int pd_codec_decode(enum pd_codec method, uint32_t block, const uint8_t *src, size_t len,
                    float *dst, size_t n, char *err, size_t errlen) {
  if (!pd_codec_name(method))
    return pd_errf(err, errlen, -PD_EFORMAT, "unknown codec %d", (int)method);
  if (block > MAX_BLOCK)
    return pd_errf(err, errlen, -PD_EFORMAT, "codec %s: block %u is over the limit of %u",
                   pd_codec_name(method), block, MAX_BLOCK);
  block = pd_codec_block(method, block);
  if (pd_codec_sparse(method))
    return decode_sparse(src, len, dst, n, err, errlen);
  size_t want = pd_codec_max_bytes(method, block, n);
  if (len != want)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "codec %s: %zu values of block %u take %zu bytes, got %zu",
                   pd_codec_name(method), n, block, want, len);
  switch (method) {
  case PD_CODEC_NONE:
    memcpy(dst, src, len);
    break;
  case PD_CODEC_FP16:
  case PD_CODEC_BF16:
    decode_half(method == PD_CODEC_BF16, src, n, dst);
    break;
  case PD_CODEC_INT8:
    decode_int8(src, n, block, dst);
    break;
  case PD_CODEC_ONEBIT:
    decode_onebit(src, n, block, dst);
    break;
  default:
    break;
  }
  return 0;
}

/* ---------------------------------------------------------------- error feedback */

void pd_codec_feedback_reserve(pd_codec_feedback *fb, size_t keys) {
  if (fb->n >= keys)
    return;
  pd_codec_feedback_free(fb);
  fb->residual = pd_xcalloc(keys, sizeof(float));
  fb->momentum = pd_xcalloc(keys, sizeof(float));
  fb->sent = pd_xcalloc(keys, sizeof(float));
  fb->n = keys;
}

void pd_codec_feedback_free(pd_codec_feedback *fb) {
  free(fb->residual);
  free(fb->momentum);
  free(fb->sent);
  fb->residual = fb->momentum = fb->sent = NULL;
  fb->n = 0;
}

size_t pd_codec_feedback_encode(const pd_codec_params *params, pd_codec_feedback *fb, size_t off,
                                const float *grad, size_t n, uint8_t *dst) {
  PD_ASSERT(off + n <= fb->n);
  if (!params->error_feedback)
    return pd_codec_encode(params, grad, n, dst, NULL, &fb->rng);
  float *r = fb->residual + off, *u = fb->momentum + off, *sent = fb->sent + off;
  float m = (float)params->momentum_correction;
  if (params->method == PD_CODEC_TOPK && m > 0) {
    for (size_t i = 0; i < n; i++) { /* DGC: momentum correction */
      u[i] = m * u[i] + grad[i];
      r[i] += u[i];
    }
  } else {
    for (size_t i = 0; i < n; i++)
      r[i] += grad[i];
  }
  size_t len = pd_codec_encode(params, r, n, dst, sent, &fb->rng);
  for (size_t i = 0; i < n; i++)
    r[i] -= sent[i];
  if (params->method == PD_CODEC_TOPK && m > 0)
    for (size_t i = 0; i < n; i++) /* DGC: momentum factor masking */
      u[i] = sent[i] != 0 ? 0.0f : u[i];
  return len;
}
