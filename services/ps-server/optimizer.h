/* Server-side optimizers. The state (momentum, squared-gradient averages) is
 * kept next to the shard's parameters and indexed by the same shard-relative
 * key, so a step can run on any key range of the shard. */
#ifndef PANDO_PS_OPTIMIZER_H
#define PANDO_PS_OPTIMIZER_H

#include <stdint.h>

#include "pando/spec.h"

typedef struct pd_optimizer {
  pd_optimizer_spec spec; /* type and hyper-parameters */
  uint64_t keys;          /* size of the shard */
  float *velocity;        /* momentum: v per key; Adam: first moment m */
  float *second;          /* Adam: second moment v per key */
  uint32_t *steps;        /* Adam: updates applied to each key (bias correction) */
} pd_optimizer;

/* Prepares an optimizer for a shard of `keys` keys. */
void pd_optimizer_init(pd_optimizer *opt, const pd_optimizer_spec *spec, uint64_t keys);
void pd_optimizer_close(pd_optimizer *opt);

/* Applies gradient `grad` (n values) to params[offset, offset + n) of the
 * shard, `params` pointing at the shard's first key. */
void pd_optimizer_step(pd_optimizer *opt, float *params, const float *grad, uint64_t offset,
                       uint64_t n);

#endif
