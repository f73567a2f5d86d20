/* Server-side optimizer steps; see optimizer.h. */
#include "optimizer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

void pd_optimizer_init(pd_optimizer *opt, const pd_optimizer_spec *spec, uint64_t keys) {
  memset(opt, 0, sizeof *opt);
  opt->spec = *spec;
  opt->keys = keys;
  if (spec->type == PD_OPT_MOMENTUM || spec->type == PD_OPT_ADAM)
    opt->velocity = pd_xcalloc(keys, sizeof(float));
  if (spec->type == PD_OPT_ADAM) {
    opt->second = pd_xcalloc(keys, sizeof(float));
    opt->steps = pd_xcalloc(keys, sizeof(uint32_t));
  }
}

void pd_optimizer_close(pd_optimizer *opt) {
  free(opt->velocity);
  free(opt->second);
  free(opt->steps);
  opt->velocity = opt->second = NULL;
  opt->steps = NULL;
}

/* Adam (Kingma & Ba, ICLR 2015) with bias correction. Each key counts its
 * own updates, so the correction is exact whatever ranges pushes cover. */
static void adam_step(const pd_optimizer_spec *spec, float *restrict x, float *restrict m,
                      float *restrict v, uint32_t *restrict steps, const float *restrict g,
                      uint64_t n) {
  const double b1 = spec->beta1, b2 = spec->beta2;
  uint64_t i = 0;
  while (i < n) {
    /* keys with the same step count share the bias corrections */
    uint32_t t = ++steps[i];
    uint64_t run = i + 1;
    while (run < n && steps[run] + 1 == t)
      steps[run++] = t;
    const float c1 = (float)(1.0 / (1.0 - pow(b1, t)));
    const float c2 = (float)(1.0 / (1.0 - pow(b2, t)));
    const float lr = (float)spec->lr, eps = (float)spec->epsilon;
    /* 1 - beta in double, then rounded: (float)beta2 is 1 for beta2 close to 1 */
    const float fb1 = (float)b1, fb2 = (float)b2;
    const float w1 = (float)(1.0 - b1), w2 = (float)(1.0 - b2);
    for (uint64_t k = i; k < run; k++) {
      m[k] = fb1 * m[k] + w1 * g[k];
      v[k] = fb2 * v[k] + w2 * g[k] * g[k];
      x[k] -= lr * (m[k] * c1) / (sqrtf(v[k] * c2) + eps);
    }
    i = run;
  }
}

static void momentum_step(float *restrict x, float *restrict v, const float *restrict g, float lr,
                          float mu, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    v[i] = mu * v[i] - lr * g[i];
    x[i] += v[i];
  }
}

void pd_optimizer_step(pd_optimizer *opt, float *params, const float *grad, uint64_t offset,
                       uint64_t n) {
  PD_ASSERT(offset + n <= opt->keys);
  switch (opt->spec.type) {
  case PD_OPT_SGD:
    for (uint64_t done = 0; done < n; done += 1u << 30) /* BLAS lengths are int */
      cblas_saxpy((int)PD_MIN(n - done, 1u << 30), (float)-opt->spec.lr, grad + done, 1,
                  params + offset + done, 1);
    break;
  case PD_OPT_MOMENTUM:
    momentum_step(params + offset, opt->velocity + offset, grad, (float)opt->spec.lr,
                  (float)opt->spec.momentum, n);
    break;
  case PD_OPT_ADAM:
    adam_step(&opt->spec, params + offset, opt->velocity + offset, opt->second + offset,
              opt->steps + offset, grad, n);
    break;
  }
}
