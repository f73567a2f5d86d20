/* Gradient codecs (training.compression): lossy encodings of a float32
 * tensor for the wire, with error feedback on the sending side. The byte
 * layout of every method is the one documented at pando.v1.Codec in
 * proto/pando.proto; these functions are the only place that writes or
 * reads it. Plain C loops over contiguous arrays, written so the compiler
 * vectorises them. */
#ifndef PANDO_CODEC_H
#define PANDO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "pando/compression.h" /* the methods and their settings */

/* The most bytes encoding n values can take with `method`. */
size_t pd_codec_max_bytes(enum pd_codec method, uint32_t block, size_t n);

/* Encodes src[0, n) into dst (pd_codec_max_bytes of room) and returns the
 * bytes written. `sent` (may be NULL, n floats) receives what the decoder
 * will make of it. `rng` (randomk only) is a pd_splitmix64 state, advanced. */
size_t pd_codec_encode(const pd_codec_params *params, const float *src, size_t n, uint8_t *dst,
                       float *sent, uint64_t *rng);

/* Decodes len bytes of `method` (block as sent; 0: the default) into
 * dst[0, n). Checks every length, count and index against len and n and
 * never reads outside src[0, len): returns 0, or -PD_EFORMAT with what is
 * wrong in `err`. */
int pd_codec_decode(enum pd_codec method, uint32_t block, const uint8_t *src, size_t len,
                    float *dst, size_t n, char *err, size_t errlen);

/* Error feedback for one sender: the residual (and DGC's momentum) of every
 * key it sends. Zero-initialise it; free with pd_codec_feedback_free. */
typedef struct pd_codec_feedback {
  float *residual; /* what was computed but not sent yet, per key */
  float *momentum; /* topk with momentum_correction: DGC's accumulated u */
  float *sent;     /* scratch: the decoded message */
  size_t n;        /* keys of the arrays */
  uint64_t rng;    /* randomk's positions */
} pd_codec_feedback;

/* Sizes the state for `keys` keys (zeroed when it grows). */
void pd_codec_feedback_reserve(pd_codec_feedback *fb, size_t keys);
void pd_codec_feedback_free(pd_codec_feedback *fb);

/* Encodes grad[0, n) of keys [off, off + n) of the state: with
 * params->error_feedback the value encoded is c = grad + residual (with
 * momentum_correction m, topk: u = m u + grad, residual += u, c = residual),
 * and the residual becomes c - decode(message) (DGC also clears u where a
 * value was sent). Returns the bytes written to dst. */
size_t pd_codec_feedback_encode(const pd_codec_params *params, pd_codec_feedback *fb, size_t off,
                                const float *grad, size_t n, uint8_t *dst);

/* Conversions used by the codecs (exposed for tests). */
uint16_t pd_codec_f32_to_f16(float f);
float pd_codec_f16_to_f32(uint16_t h);
uint16_t pd_codec_f32_to_bf16(float f);
float pd_codec_bf16_to_f32(uint16_t h);

#endif
