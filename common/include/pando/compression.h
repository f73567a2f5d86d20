/* What training.compression says (README "Compression"): the gradient
 * codecs' methods and their settings, in the job layer because a job spec
 * holds them; the codecs themselves are pando/codec.h (ml). */
#ifndef PANDO_COMPRESSION_H
#define PANDO_COMPRESSION_H

#include <stddef.h>
#include <stdint.h>

/* The methods; values match pando.v1.Codec. */
enum pd_codec {
  PD_CODEC_NONE = 0,      /* float32 as is */
  PD_CODEC_FP16 = 1,      /* IEEE half, round to nearest even */
  PD_CODEC_BF16 = 2,      /* bfloat16, round to nearest even */
  PD_CODEC_INT8 = 3,      /* int8 with a float32 scale per block */
  PD_CODEC_ONEBIT = 4,    /* signs, and per block the means of the positives and negatives */
  PD_CODEC_TOPK = 5,      /* the k largest |v| (sparse) */
  PD_CODEC_RANDOMK = 6,   /* k values at random positions (sparse) */
  PD_CODEC_THRESHOLD = 7, /* the values with |v| > tau (sparse) */
};
#define PD_CODEC_COUNT 8

/* Default values per block when training.compression.block is 0: int8 and
 * onebit pay 4 and 8 bytes per block, so large blocks keep the savings at
 * >= 3.99x and >= 31.9x. */
#define PD_CODEC_INT8_BLOCK 2048
#define PD_CODEC_ONEBIT_BLOCK 32768

/* How a tensor is encoded. */
typedef struct pd_codec_params {
  enum pd_codec method;
  uint32_t block;             /* int8, onebit: values per block (0: the default) */
  double ratio;               /* topk, randomk: k = max(1, ceil(ratio * n)) */
  double threshold;           /* threshold: tau > 0 */
  double momentum_correction; /* topk: DGC's momentum m (0: off), in pd_codec_feedback_encode */
  int error_feedback;         /* keep the residual (pd_codec_feedback_encode) */
} pd_codec_params;

/* The method's YAML/wire name ("none", "fp16", ...), or NULL. */
const char *pd_codec_name(enum pd_codec method);

/* The block size `params` uses (its own or the method's default). */
uint32_t pd_codec_block(enum pd_codec method, uint32_t block);

/* Whether the method keeps only some values (topk, randomk, threshold). */
int pd_codec_sparse(enum pd_codec method);

#endif
