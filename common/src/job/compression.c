/* The codecs' names and settings; see pando/compression.h. */
#include "pando/compression.h"

static const char *const codec_names[PD_CODEC_COUNT] = {
    [PD_CODEC_NONE] = "none",       [PD_CODEC_FP16] = "fp16",          [PD_CODEC_BF16] = "bf16",
    [PD_CODEC_INT8] = "int8",       [PD_CODEC_ONEBIT] = "onebit",      [PD_CODEC_TOPK] = "topk",
    [PD_CODEC_RANDOMK] = "randomk", [PD_CODEC_THRESHOLD] = "threshold"};

const char *pd_codec_name(enum pd_codec method) {
  return (unsigned)method < PD_CODEC_COUNT ? codec_names[method] : NULL;
}

uint32_t pd_codec_block(enum pd_codec method, uint32_t block) {
  if (block)
    return block;
  return method == PD_CODEC_ONEBIT ? PD_CODEC_ONEBIT_BLOCK : PD_CODEC_INT8_BLOCK;
}

int pd_codec_sparse(enum pd_codec method) {
  return method == PD_CODEC_TOPK || method == PD_CODEC_RANDOMK || method == PD_CODEC_THRESHOLD;
}
