/* Unit tests of the gradient codecs: each round-trips within its documented
 * error bound, exact wire savings, error feedback conserves the gradient,
 * and the decoder refuses hostile messages without reading out of bounds
 * (run it under ASan). */
#include "pando/codec.h"

#include <math.h>
#include <stdint.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

/* A reproducible gradient-like vector: mostly small values, a few large,
 * and both signs. */
static void fill(float *v, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    double u = (double)(s >> 11) * 0x1.0p-53 - 0.5;
    v[i] = (float)(i % 97 == 0 ? 40.0 * u : 0.01 * u);
  }
}

/* Encodes and decodes src[0, n) into out; returns the encoded length, 0
 * after a failed check (counted). */
static void roundtrip_checked(const pd_codec_params *p, const float *src, float *out, size_t n,
                              size_t *len) {
  uint8_t *buf = malloc(pd_codec_max_bytes(p->method, p->block, n));
  float *sent = malloc(n * sizeof *sent);
  uint64_t rng = 7;
  char err[256] = "";
  *len = pd_codec_encode(p, src, n, buf, sent, &rng);
  int rc = pd_codec_decode(p->method, p->block, buf, *len, out, n, err, sizeof err);
  int same = 1;
  for (size_t i = 0; i < n; i++) /* `sent` is what the decoder makes of it */
    same &= memcmp(&sent[i], &out[i], sizeof(float)) == 0 || (isnan(sent[i]) && isnan(out[i]));
  free(sent);
  free(buf);
  CHECK(*len <= pd_codec_max_bytes(p->method, p->block, n));
  CHECK_EQ_INT(rc, 0);
  CHECK(same);
}

static size_t roundtrip(const pd_codec_params *p, const float *src, float *out, size_t n) {
  size_t len = 0;
  int failed = pd_test_failed_checks;
  roundtrip_checked(p, src, out, n, &len);
  return pd_test_failed_checks == failed ? len : 0;
}

static void test_half_conversions(void) {
  /* exact values, rounding to nearest even, overflow, subnormals */
  CHECK(pd_codec_f32_to_f16(1.0f) == 0x3c00);
  CHECK(pd_codec_f32_to_f16(-2.0f) == 0xc000);
  CHECK(pd_codec_f32_to_f16(65504.0f) == 0x7bff);
  CHECK(pd_codec_f32_to_f16(65520.0f) == 0x7c00); /* rounds up to infinity */
  CHECK(pd_codec_f32_to_f16(1e10f) == 0x7c00);
  CHECK(pd_codec_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);     /* tie: even */
  CHECK(pd_codec_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02); /* tie: even, up */
  CHECK(pd_codec_f32_to_f16(0x1p-24f) == 0x0001);            /* smallest subnormal */
  CHECK(pd_codec_f16_to_f32(0x0001) == 0x1p-24f);
  CHECK(isnan(pd_codec_f16_to_f32(pd_codec_f32_to_f16(NAN))));
  CHECK(pd_codec_f16_to_f32(0x7c00) == INFINITY);
  CHECK(pd_codec_f32_to_bf16(1.0f) == 0x3f80);
  CHECK(pd_codec_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80); /* tie: even */
  CHECK(pd_codec_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);
  CHECK(isnan(pd_codec_bf16_to_f32(pd_codec_f32_to_bf16(NAN))));
  /* every half value converts back to itself */
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
      continue; /* NaN */
    float f = pd_codec_f16_to_f32((uint16_t)h);
    CHECK(pd_codec_f32_to_f16(f) == h);
  }
}

static void test_dense_bounds(void) {
  const size_t n = 100003; /* not a multiple of any block */
  float *v = malloc(n * sizeof *v), *out = malloc(n * sizeof *out);
  fill(v, n, 1);
  pd_codec_params p = {.method = PD_CODEC_FP16};
  CHECK_EQ_INT(roundtrip(&p, v, out, n), 2 * n);
  for (size_t i = 0; i < n; i++) /* half an ulp: 2^-11 relative, 2^-25 absolute below 2^-14 */
    CHECK(fabsf(out[i] - v[i]) <= fmaxf(fabsf(v[i]) * 0x1p-11f, 0x1p-25f));
  p.method = PD_CODEC_BF16;
  CHECK_EQ_INT(roundtrip(&p, v, out, n), 2 * n);
  for (size_t i = 0; i < n; i++)
    CHECK(fabsf(out[i] - v[i]) <= fabsf(v[i]) * 0x1p-8f);
  for (uint32_t block = 0; block <= 1000; block += 1000) {
    p = (pd_codec_params){.method = PD_CODEC_INT8, .block = block};
    uint32_t b = pd_codec_block(PD_CODEC_INT8, block);
    roundtrip(&p, v, out, n);
    for (size_t lo = 0; lo < n; lo += b) { /* half a step: max|v| of the block / 254 */
      size_t hi = lo + b < n ? lo + b : n;
      float max = 0;
      for (size_t i = lo; i < hi; i++)
        max = fmaxf(max, fabsf(v[i]));
      for (size_t i = lo; i < hi; i++)
        CHECK(fabsf(out[i] - v[i]) <= max / 254.0f * 1.0001f + 1e-12f);
    }
  }
  /* onebit: the sign is kept; each block's positives (negatives) decode to
   * their mean, so the block's sum is kept */
  p = (pd_codec_params){.method = PD_CODEC_ONEBIT, .block = 1000};
  roundtrip(&p, v, out, n);
  for (size_t lo = 0; lo < n; lo += 1000) {
    size_t hi = lo + 1000 < n ? lo + 1000 : n;
    double sum_in = 0, sum_out = 0;
    for (size_t i = lo; i < hi; i++) {
      CHECK((v[i] >= 0) == (out[i] >= 0) || out[i] == 0);
      sum_in += v[i];
      sum_out += out[i];
    }
    CHECK_NEAR(sum_out, sum_in, 1e-3);
  }
  free(v);
  free(out);
}

static void test_sparse(void) {
  const size_t n = 50000;
  float *v = malloc(n * sizeof *v), *out = malloc(n * sizeof *out);
  fill(v, n, 2);
  /* topk: exactly k values, the largest |v|, exact */
  pd_codec_params p = {.method = PD_CODEC_TOPK, .ratio = 0.01};
  size_t len = roundtrip(&p, v, out, n);
  size_t kept = 0;
  float smallest_kept = INFINITY, largest_dropped = 0;
  for (size_t i = 0; i < n; i++) {
    if (out[i] != 0) {
      kept++;
      CHECK(out[i] == v[i]);
      smallest_kept = fminf(smallest_kept, fabsf(v[i]));
    } else {
      largest_dropped = fmaxf(largest_dropped, fabsf(v[i]));
    }
  }
  CHECK_EQ_INT(kept, 500);
  CHECK(smallest_kept >= largest_dropped);
  CHECK(len <= 4 + 500 * 4 + 500 * 2); /* gaps of ~100 keys: 1-2 byte varints */
  /* randomk: exactly k, exact values */
  p.method = PD_CODEC_RANDOMK;
  roundtrip(&p, v, out, n);
  kept = 0;
  for (size_t i = 0; i < n; i++)
    if (out[i] != 0) {
      kept++;
      CHECK(out[i] == v[i]);
    }
  CHECK_EQ_INT(kept, 500);
  /* threshold: exactly the values above tau */
  p = (pd_codec_params){.method = PD_CODEC_THRESHOLD, .threshold = 1.0};
  roundtrip(&p, v, out, n);
  for (size_t i = 0; i < n; i++)
    CHECK(out[i] == (fabsf(v[i]) > 1.0f ? v[i] : 0.0f));
  /* ties: k values even when all are equal; k of n = 1 */
  for (size_t i = 0; i < n; i++)
    v[i] = 1;
  p = (pd_codec_params){.method = PD_CODEC_TOPK, .ratio = 0.001};
  roundtrip(&p, v, out, n);
  kept = 0;
  for (size_t i = 0; i < n; i++)
    kept += out[i] != 0;
  CHECK_EQ_INT(kept, 50);
  roundtrip(&p, v, out, 1);
  CHECK(out[0] == 1);
  free(v);
  free(out);
}

/* fp16/bf16 exactly 2x, int8 >= 3.99x, onebit >= 31.9x for a large tensor
 * (the psclient's chunk of 512 Ki keys), with the default blocks. */
static void test_savings(void) {
  const size_t n = 512 * 1024;
  double raw = 4.0 * (double)n;
  CHECK(raw / (double)pd_codec_max_bytes(PD_CODEC_FP16, 0, n) == 2.0);
  CHECK(raw / (double)pd_codec_max_bytes(PD_CODEC_BF16, 0, n) == 2.0);
  CHECK(raw / (double)pd_codec_max_bytes(PD_CODEC_INT8, 0, n) >= 3.99);
  CHECK(raw / (double)pd_codec_max_bytes(PD_CODEC_ONEBIT, 0, n) >= 31.9);
  /* and the encoders write exactly that */
  float *v = malloc(n * sizeof *v), *out = malloc(n * sizeof *out);
  fill(v, n, 3);
  enum pd_codec dense[] = {PD_CODEC_FP16, PD_CODEC_BF16, PD_CODEC_INT8, PD_CODEC_ONEBIT};
  for (size_t m = 0; m < 4; m++) {
    pd_codec_params p = {.method = dense[m]};
    CHECK_EQ_INT(roundtrip(&p, v, out, n), pd_codec_max_bytes(dense[m], 0, n));
  }
  free(v);
  free(out);
}

/* With error feedback, what was sent over many steps plus the final
 * residual is the sum of the true gradients. */
static void test_error_feedback_conserves(void) {
  const size_t n = 4099, steps = 200;
  pd_codec_params methods[] = {
      {.method = PD_CODEC_ONEBIT, .block = 512, .error_feedback = 1},
      {.method = PD_CODEC_TOPK, .ratio = 0.01, .error_feedback = 1},
      {.method = PD_CODEC_RANDOMK, .ratio = 0.05, .error_feedback = 1},
      {.method = PD_CODEC_THRESHOLD, .threshold = 0.5, .error_feedback = 1},
      {.method = PD_CODEC_INT8, .block = 256, .error_feedback = 1},
      {.method = PD_CODEC_FP16, .error_feedback = 1},
  };
  float *g = malloc(n * sizeof *g), *dec = malloc(n * sizeof *dec);
  double *truth = calloc(n, sizeof *truth), *sent = calloc(n, sizeof *sent);
  uint8_t *buf = malloc(pd_codec_max_bytes(PD_CODEC_TOPK, 0, n));
  for (size_t m = 0; m < PD_ARRAY_SIZE(methods); m++) {
    pd_codec_feedback fb = {0};
    pd_codec_feedback_reserve(&fb, n + 10);
    memset(truth, 0, n * sizeof *truth);
    memset(sent, 0, n * sizeof *sent);
    for (size_t s = 0; s < steps; s++) {
      fill(g, n, 100 + s);
      size_t len = pd_codec_feedback_encode(&methods[m], &fb, 10, g, n, buf);
      CHECK_EQ_INT(pd_codec_decode(methods[m].method, methods[m].block, buf, len, dec, n, NULL, 0),
                   0);
      for (size_t i = 0; i < n; i++) {
        truth[i] += g[i];
        sent[i] += dec[i];
      }
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++)
      worst = fmax(worst, fabs(sent[i] + fb.residual[10 + i] - truth[i]));
    if (worst > 1e-3)
      fprintf(stderr, "  %s: worst error %g\n", pd_codec_name(methods[m].method), worst);
    CHECK(worst <= 1e-3); /* float accumulation of 200 steps of |g| <= 20 */
    pd_codec_feedback_free(&fb);
  }
  /* DGC's momentum correction: the sum of what was sent plus the residual is
   * the sum of the accumulated velocities u_t = m u_{t-1} + g_t (with u
   * cleared where sent), so it runs ahead of the plain sum; still, every
   * key is sent eventually and the residual stays bounded. */
  pd_codec_params dgc = {
      .method = PD_CODEC_TOPK, .ratio = 0.05, .error_feedback = 1, .momentum_correction = 0.9};
  pd_codec_feedback fb = {0};
  pd_codec_feedback_reserve(&fb, n);
  for (size_t s = 0; s < steps; s++) {
    fill(g, n, 100 + s);
    pd_codec_feedback_encode(&dgc, &fb, 0, g, n, buf);
  }
  for (size_t i = 0; i < n; i++)
    CHECK(isfinite(fb.residual[i]) && fabsf(fb.residual[i]) < 100);
  pd_codec_feedback_free(&fb);
  free(buf);
  free(g);
  free(dec);
  free(truth);
  free(sent);
}

/* Hostile messages: wrong lengths, counts, indices, methods and blocks are
 * refused with a message; nothing is read outside the input (ASan). */
static void test_decode_refuses(void) {
  float out[64];
  char err[256];
  uint8_t buf[512];
  memset(buf, 0, sizeof buf);
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_FP16, 0, buf, 127, out, 64, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "take 128 bytes, got 127");
  CHECK_EQ_INT(pd_codec_decode((enum pd_codec)99, 0, buf, 4, out, 1, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "unknown codec 99");
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_INT8, 1u << 30, buf, 4, out, 1, err, sizeof err),
               -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "block");
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 3, out, 64, err, sizeof err), -PD_EFORMAT);
  /* count beyond n, count beyond the bytes */
  buf[0] = 65;
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 300, out, 64, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "count 65");
  buf[0] = 2;
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 11, out, 64, err, sizeof err), -PD_EFORMAT);
  /* index beyond n: first index 64 */
  buf[0] = 1;
  buf[8] = 64;
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 9, out, 64, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "beyond the 64 keys");
  /* a second index past the end through its delta */
  buf[0] = 2;
  buf[12] = 60;
  buf[13] = 3;
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 14, out, 64, err, sizeof err), -PD_EFORMAT);
  buf[13] = 2; /* 60, then 63: fine */
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 14, out, 64, err, sizeof err), 0);
  /* truncated varint, bytes left over */
  buf[13] = 0x80;
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 14, out, 64, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "truncated");
  buf[13] = 0;
  CHECK_EQ_INT(pd_codec_decode(PD_CODEC_TOPK, 0, buf, 15, out, 64, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "bytes after");
  /* deterministic fuzz: random bytes of every length for every method */
  uint64_t s = 12345;
  for (int round = 0; round < 20000; round++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    size_t len = (size_t)(s % 64), n = (size_t)((s >> 8) % 64);
    uint8_t *msg = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
      msg[i] = (uint8_t)(s >> (i % 56));
    if (len)
      msg[0] = (uint8_t)(s >> 20) % 8;
    (void)pd_codec_decode((enum pd_codec)((s >> 16) % PD_CODEC_COUNT), (uint32_t)((s >> 24) % 9),
                          msg, len, out, n, err, sizeof err);
    free(msg);
  }
}

int main(int argc, char **argv) {
  PD_RUN(test_half_conversions);
  PD_RUN(test_dense_bounds);
  PD_RUN(test_sparse);
  PD_RUN(test_savings);
  PD_RUN(test_error_feedback_conserves);
  PD_RUN(test_decode_refuses);
  PD_TEST_DONE();
}
