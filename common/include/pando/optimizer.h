/* Optimizers: the update rules that turn a gradient into new parameters
 * (SGD, momentum, Nesterov, AdaGrad, RMSprop, Adam), with optional L2 weight
 * decay. Their state lives next to the parameters, one value per key, indexed
 * by the same key (shard-relative on a server), so a step can run on any key
 * range and a checkpoint can save the state with the parameters. Used by the
 * parameter servers and by the standalone mode. */
#ifndef PANDO_OPTIMIZER_H
#define PANDO_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

/* Per-key state, allocated by pd_optimizer_init for the rules that need it
 * (NULL otherwise) and zeroed:
 *
 *   type      velocity        second                        steps
 *   sgd       -               -                             -
 *   momentum  v               -                             -
 *   nesterov  v               -                             -
 *   adagrad   -               c, sum of squared gradients   -
 *   rmsprop   -               c, moving average of squares  -
 *   adam      m, 1st moment   v, 2nd moment                 t, updates applied
 *   yogi      m, 1st moment   v, 2nd moment                 - */
typedef struct pd_optimizer {
  pd_optimizer_spec spec; /* type and hyper-parameters (spec.lr is not used by steps) */
  uint64_t keys;          /* number of keys the state covers */
  float *velocity;        /* momentum, nesterov: v; adam: m (keys values) */
  float *second;          /* adagrad, rmsprop: c; adam: v (keys values) */
  uint32_t *steps;        /* adam: updates applied to each key, for the bias correction */
} pd_optimizer;

/* One array of per-key state, as a checkpoint sees it: `keys` elements of
 * `elem_size` bytes at `data` (borrowed from the optimizer). */
typedef struct pd_optimizer_slot {
  const char *name; /* "velocity", "second" or "steps" */
  void *data;
  size_t elem_size; /* 4: float32 for velocity and second, uint32 for steps */
} pd_optimizer_slot;

#define PD_OPTIMIZER_MAX_SLOTS 3

/* Prepares `opt` (caller's storage) for `keys` keys with the rule and
 * hyper-parameters of `spec` (copied), allocating the zeroed state it needs. */
void pd_optimizer_init(pd_optimizer *opt, const pd_optimizer_spec *spec, uint64_t keys);

/* Bytes of per-key state pd_optimizer_init allocates for each key of an
 * optimizer of `type` (0 for sgd): what a server must hold besides the
 * parameters. */
uint64_t pd_optimizer_state_bytes_per_key(enum pd_optimizer_type type);
/* The most memory a parameter server holds for `keys` keys of a shard of
 * `spec` pushed to by `num_workers` workers: parameters (and their
 * copy-on-write second buffer), the optimizer's state, the BSP round's sum,
 * the backup workers' buffers and the clock's state of each worker. The
 * servers refuse a CreateShard beyond their memory_limit with it and the
 * coordinator places jobs by it. Saturates at UINT64_MAX. */
uint64_t pd_optimizer_shard_bytes(const pd_job_spec *spec, uint64_t keys, uint32_t num_workers);
/* Frees the state; `opt` may be closed again. */
void pd_optimizer_close(pd_optimizer *opt);

/* Applies one step to keys [offset, offset + n): `params` points at key 0
 * (the values of the keys being stepped are read and written), `grad` at the
 * n gradient values of the range. `lr` is the learning rate of this step
 * (the schedule's value, see pando/schedule.h). With weight_decay wd > 0 the
 * gradient is g + wd * x. Then, per key, with mu = momentum,
 * eps = epsilon, dr = decay_rate:
 *
 *   sgd       x = x - lr g
 *   momentum  v = mu v - lr g;  x = x + v
 *   nesterov  v0 = v;  v = mu v - lr g;  x = x - mu v0 + (1 + mu) v
 *   adagrad   c = c + g^2;  x = x - lr g / (sqrt(c) + eps)  (Duchi et al., JMLR 2011)
 *   rmsprop   c = dr c + (1 - dr) g^2;  x = x - lr g / (sqrt(c) + eps)
 *   adam      t = t + 1;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *             x = x - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *             (Kingma & Ba, ICLR 2015; t counts each key's own updates);
 *             with no_bias_correction (FedAdam): x = x - lr m / (sqrt(v) + eps)
 *   yogi      m = b1 m + (1 - b1) g;  v = v - (1 - b2) g^2 sign(v - g^2);
 *             x = x - lr m / (sqrt(v) + eps)  (Zaheer et al., NeurIPS 2018; FedYogi)
 *
 * Requires offset + n <= keys. Computes in float32. */
void pd_optimizer_step(pd_optimizer *opt, float *params, const float *grad, uint64_t offset,
                       uint64_t n, double lr);

/* Writes the optimizer's state arrays to `out` (room for
 * PD_OPTIMIZER_MAX_SLOTS) and returns their number (0 for sgd). */
int pd_optimizer_slots(pd_optimizer *opt, pd_optimizer_slot *out);

#endif
