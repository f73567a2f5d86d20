/* Optimizer steps; see optimizer.h. Every rule computes in float32 with its
 * hyper-parameters rounded once to float; 1 - beta and 1 - decay_rate are
 * computed in double first, since (float)beta may round to 1. */
#include "pando/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

uint64_t pd_optimizer_shard_bytes(const pd_job_spec *spec, uint64_t keys, uint32_t num_workers) {
  enum pd_update update = spec->training.update;
  if (update == PD_UPDATE_SSP && spec->training.staleness == 0)
    update = PD_UPDATE_BSP; /* SSP with s = 0 is BSP */
  uint64_t per_key =
      2 * sizeof(float) + pd_optimizer_state_bytes_per_key(spec->training.optimizer.type);
  if (update == PD_UPDATE_BSP)
    per_key += sizeof(float);
  if (update == PD_UPDATE_FEDAVG && spec->training.federated.swa_from > 0)
    per_key += sizeof(float); /* the served average (training.federated.swa_from) */
  if (update == PD_UPDATE_BSP && spec->training.backup_workers > 0)
    per_key += (uint64_t)num_workers * sizeof(float);
  if (keys > (UINT64_MAX - 64 * (uint64_t)num_workers) / per_key)
    return UINT64_MAX;
  return keys * per_key + 64 * (uint64_t)num_workers; /* and the clock's state per worker */
}

uint64_t pd_optimizer_state_bytes_per_key(enum pd_optimizer_type type) {
  switch (type) {
  case PD_OPT_MOMENTUM:
  case PD_OPT_NESTEROV:
    return sizeof(float); /* velocity */
  case PD_OPT_ADAGRAD:
  case PD_OPT_RMSPROP:
    return sizeof(float); /* second moment */
  case PD_OPT_ADAM:
    return 2 * sizeof(float) + sizeof(uint32_t); /* velocity, second, steps */
  default:
    return 0;
  }
}

void pd_optimizer_init(pd_optimizer *opt, const pd_optimizer_spec *spec, uint64_t keys) {
  memset(opt, 0, sizeof *opt);
  opt->spec = *spec;
  opt->keys = keys;
  switch (spec->type) {
  case PD_OPT_SGD:
    break;
  case PD_OPT_MOMENTUM:
  case PD_OPT_NESTEROV:
    opt->velocity = pd_xcalloc(keys, sizeof(float));
    break;
  case PD_OPT_ADAGRAD:
  case PD_OPT_RMSPROP:
    opt->second = pd_xcalloc(keys, sizeof(float));
    break;
  case PD_OPT_YOGI:
    opt->velocity = pd_xcalloc(keys, sizeof(float));
    opt->second = pd_xcalloc(keys, sizeof(float));
    break;
  case PD_OPT_ADAM:
    opt->velocity = pd_xcalloc(keys, sizeof(float));
    opt->second = pd_xcalloc(keys, sizeof(float));
    opt->steps = pd_xcalloc(keys, sizeof(uint32_t));
    break;
  default:
    PD_ASSERT(!"unknown optimizer type");
  }
}

void pd_optimizer_close(pd_optimizer *opt) {
  free(opt->velocity);
  free(opt->second);
  free(opt->steps);
  opt->velocity = opt->second = NULL;
  opt->steps = NULL;
}

int pd_optimizer_slots(pd_optimizer *opt, pd_optimizer_slot *out) {
  int n = 0;
  if (opt->velocity)
    out[n++] = (pd_optimizer_slot){"velocity", opt->velocity, sizeof(float)};
  if (opt->second)
    out[n++] = (pd_optimizer_slot){"second", opt->second, sizeof(float)};
  if (opt->steps)
    out[n++] = (pd_optimizer_slot){"steps", opt->steps, sizeof(uint32_t)};
  return n;
}

/* The hyper-parameters of one step, rounded to float. */
typedef struct step_params {
  float lr, wd;  /* learning rate, weight decay */
  float mu, mu1; /* momentum, nesterov: mu and 1 + mu */
  float eps;     /* adagrad, rmsprop, adam */
  float dr, wdr; /* rmsprop: decay_rate and 1 - decay_rate */
} step_params;

/* A plain loop rather than cblas_saxpy: OpenBLAS's kernels fuse multiply
 * and add in the vector body but not in the tail, so a key's result would
 * depend on where the range it was stepped in begins and ends. Every rule
 * here gives the same bits however a gradient is split into ranges. */
/* The rules are element-wise loops over millions of keys: compile AVX2 and
 * AVX-512 versions next to the baseline one, chosen at run time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PD_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PD_VECTOR_CLONES
#endif

PD_VECTOR_CLONES static void sgd_step(float *restrict x, const float *restrict g, uint64_t n,
                                      const step_params *p) {
  if (p->wd == 0) {
    for (uint64_t i = 0; i < n; i++)
      x[i] -= p->lr * g[i];
    return;
  }
  for (uint64_t i = 0; i < n; i++)
    x[i] -= p->lr * (g[i] + p->wd * x[i]);
}

PD_VECTOR_CLONES static void momentum_step(float *restrict x, float *restrict v,
                                           const float *restrict g, uint64_t n,
                                           const step_params *p) {
  for (uint64_t i = 0; i < n; i++) {
    float gi = g[i] + p->wd * x[i];
    v[i] = p->mu * v[i] - p->lr * gi;
    x[i] += v[i];
  }
}

/* Nesterov momentum in the form that keeps x at the "looked-ahead" point, so
 * the gradient pushed is the one taken there (Sutskever et al., ICML 2013;
 * Bengio et al. 2013). */
PD_VECTOR_CLONES static void nesterov_step(float *restrict x, float *restrict v,
                                           const float *restrict g, uint64_t n,
                                           const step_params *p) {
  for (uint64_t i = 0; i < n; i++) {
    float gi = g[i] + p->wd * x[i];
    float v0 = v[i];
    v[i] = p->mu * v0 - p->lr * gi;
    x[i] += p->mu1 * v[i] - p->mu * v0;
  }
}

PD_VECTOR_CLONES static void adagrad_step(float *restrict x, float *restrict c,
                                          const float *restrict g, uint64_t n,
                                          const step_params *p) {
  for (uint64_t i = 0; i < n; i++) {
    float gi = g[i] + p->wd * x[i];
    c[i] += gi * gi;
    x[i] -= p->lr * gi / (sqrtf(c[i]) + p->eps);
  }
}

PD_VECTOR_CLONES static void rmsprop_step(float *restrict x, float *restrict c,
                                          const float *restrict g, uint64_t n,
                                          const step_params *p) {
  for (uint64_t i = 0; i < n; i++) {
    float gi = g[i] + p->wd * x[i];
    c[i] = p->dr * c[i] + p->wdr * gi * gi;
    x[i] -= p->lr * gi / (sqrtf(c[i]) + p->eps);
  }
}

/* Adam with bias correction. Each key counts its own updates, so the
 * correction is exact whatever ranges the steps cover. */
PD_VECTOR_CLONES static void adam_step(const pd_optimizer_spec *spec, float *restrict x,
                                       float *restrict m, float *restrict v,
                                       uint32_t *restrict steps, const float *restrict g,
                                       uint64_t n, const step_params *p) {
  const double b1 = spec->beta1, b2 = spec->beta2;
  const float fb1 = (float)b1, fb2 = (float)b2;
  const float w1 = (float)(1.0 - b1), w2 = (float)(1.0 - b2);
  uint64_t i = 0;
  while (i < n) {
    /* keys with the same step count share the bias corrections */
    uint32_t t = ++steps[i];
    uint64_t run = i + 1;
    while (run < n && steps[run] + 1 == t)
      steps[run++] = t;
    const float c1 = (float)(1.0 / (1.0 - pow(b1, t)));
    const float c2 = (float)(1.0 / (1.0 - pow(b2, t)));
    for (uint64_t k = i; k < run; k++) {
      float gk = g[k] + p->wd * x[k];
      m[k] = fb1 * m[k] + w1 * gk;
      v[k] = fb2 * v[k] + w2 * gk * gk;
      x[k] -= p->lr * (m[k] * c1) / (sqrtf(v[k] * c2) + p->eps);
    }
    i = run;
  }
}

/* Adam without bias correction (FedAdam, Reddi et al., ICLR 2021,
 * Algorithm 2), and Yogi, whose second moment moves by (1 - beta2) g^2
 * towards g^2 instead of averaging (FedYogi, ibid.). */
PD_VECTOR_CLONES static void adaptive_step(int yogi, const pd_optimizer_spec *spec,
                                           float *restrict x, float *restrict m, float *restrict v,
                                           const float *restrict g, uint64_t n,
                                           const step_params *p) {
  const float fb1 = (float)spec->beta1, fb2 = (float)spec->beta2;
  const float w1 = (float)(1.0 - spec->beta1), w2 = (float)(1.0 - spec->beta2);
  for (uint64_t k = 0; k < n; k++) {
    float gk = g[k] + p->wd * x[k], g2 = gk * gk;
    m[k] = fb1 * m[k] + w1 * gk;
    if (yogi)
      v[k] -= w2 * g2 * (v[k] > g2 ? 1.0f : (v[k] < g2 ? -1.0f : 0.0f));
    else
      v[k] = fb2 * v[k] + w2 * g2;
    x[k] -= p->lr * m[k] / (sqrtf(v[k]) + p->eps);
  }
}

void pd_optimizer_step(pd_optimizer *opt, float *params, const float *grad, uint64_t offset,
                       uint64_t n, double lr) {
  PD_ASSERT(offset <= opt->keys && n <= opt->keys - offset);
  const pd_optimizer_spec *spec = &opt->spec;
  const step_params p = {
      .lr = (float)lr,
      .wd = (float)spec->weight_decay,
      .mu = (float)spec->momentum,
      .mu1 = (float)(1.0 + spec->momentum),
      .eps = (float)spec->epsilon,
      .dr = (float)spec->decay_rate,
      .wdr = (float)(1.0 - spec->decay_rate),
  };
  float *x = params + offset;
  switch (spec->type) {
  case PD_OPT_SGD:
    sgd_step(x, grad, n, &p);
    break;
  case PD_OPT_MOMENTUM:
    momentum_step(x, opt->velocity + offset, grad, n, &p);
    break;
  case PD_OPT_NESTEROV:
    nesterov_step(x, opt->velocity + offset, grad, n, &p);
    break;
  case PD_OPT_ADAGRAD:
    adagrad_step(x, opt->second + offset, grad, n, &p);
    break;
  case PD_OPT_RMSPROP:
    rmsprop_step(x, opt->second + offset, grad, n, &p);
    break;
  case PD_OPT_ADAM:
    if (spec->no_bias_correction)
      adaptive_step(0, spec, x, opt->velocity + offset, opt->second + offset, grad, n, &p);
    else
      adam_step(spec, x, opt->velocity + offset, opt->second + offset, opt->steps + offset, grad, n,
                &p);
    break;
  case PD_OPT_YOGI:
    adaptive_step(1, spec, x, opt->velocity + offset, opt->second + offset, grad, n, &p);
    break;
  }
}
