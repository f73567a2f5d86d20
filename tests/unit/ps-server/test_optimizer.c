/* Unit tests of the server-side optimizers (SGD, momentum, Adam) against
 * references computed here in double precision, straight from the formulas:
 * SGD x -= lr*g; momentum v = mu*v - lr*g, x += v; Adam (Kingma & Ba 2015,
 * Algorithm 1) with a step count per key. */
#include "../../../services/ps-server/optimizer.h"

#include <math.h>
#include <stdint.h>

#include "../../test.h"

enum { KEYS = 37, STEPS = 20 };

/* The module computes in float, the references in double. After 20 steps
 * the float rounding of each update (about 6e-8 relative) adds up to a few
 * 1e-7 (2.7e-7 at most in these tests), so a 1e-6 bound on the error
 * relative to the parameters' scale holds with margin while still catching
 * any formula mistake (a wrong sign, a missing bias correction or a wrong
 * step count changes values by 1e-3 or more). Errors are measured per key
 * relative to max(|reference|, 1): the parameters start in [-1, 1], so a
 * value that happens to pass near zero is compared at the parameters' scale
 * rather than at its own (relative to max(|reference|, 1e-3), float rounding
 * alone would exceed 1e-5 near zero). */
#define REL_TOL 1e-6

static double max_rel_err(const float *got, const double *want, int n) {
  double worst = 0;
  for (int i = 0; i < n; i++) {
    double e = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), 1.0);
    if (!(e <= worst)) /* NaN counts as the worst */
      worst = isnan(e) ? INFINITY : e;
  }
  return worst;
}

/* Deterministic uniform floats in [-1, 1). */
static uint64_t rng_state;
static float rng_uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}
static uint32_t rng_below(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)((rng_state >> 33) % n);
}

/* The reference optimizer: one double per key of each state, and Adam's
 * step count per key. */
typedef struct ref_opt {
  pd_optimizer_spec spec;
  double x[KEYS], m[KEYS], v[KEYS];
  int t[KEYS];
  int per_call_t; /* a deliberately wrong variant: one count for all keys */
  int calls;
} ref_opt;

static void ref_init(ref_opt *r, const pd_optimizer_spec *spec, const float *params) {
  memset(r, 0, sizeof *r);
  r->spec = *spec;
  for (int i = 0; i < KEYS; i++)
    r->x[i] = params[i];
}

static void ref_step(ref_opt *r, const float *grad, int offset, int n) {
  const pd_optimizer_spec *s = &r->spec;
  r->calls++;
  for (int j = 0; j < n; j++) {
    int i = offset + j;
    double g = grad[j];
    switch (s->type) {
    case PD_OPT_SGD:
      r->x[i] = r->x[i] - s->lr * g;
      break;
    case PD_OPT_MOMENTUM:
      r->m[i] = s->momentum * r->m[i] - s->lr * g;
      r->x[i] = r->x[i] + r->m[i];
      break;
    case PD_OPT_ADAM: {
      r->t[i] = r->per_call_t ? r->calls : r->t[i] + 1;
      r->m[i] = s->beta1 * r->m[i] + (1 - s->beta1) * g;
      r->v[i] = s->beta2 * r->v[i] + (1 - s->beta2) * g * g;
      double m_hat = r->m[i] / (1 - pow(s->beta1, r->t[i]));
      double v_hat = r->v[i] / (1 - pow(s->beta2, r->t[i]));
      r->x[i] = r->x[i] - s->lr * m_hat / (sqrt(v_hat) + s->epsilon);
      break;
    }
    }
  }
}

static const pd_optimizer_spec sgd = {.type = PD_OPT_SGD, .lr = 0.05};
static const pd_optimizer_spec momentum = {.type = PD_OPT_MOMENTUM, .lr = 0.05, .momentum = 0.9};
static const pd_optimizer_spec adam = {
    .type = PD_OPT_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8};

static void fill_uniform(float *a, int n) {
  for (int i = 0; i < n; i++)
    a[i] = rng_uniform();
}

/* Runs STEPS whole-shard steps of `spec` with pseudo-random gradients and
 * returns the largest relative difference to the reference after any step. */
static double whole_trajectory_err(const pd_optimizer_spec *spec, uint64_t seed) {
  pd_optimizer opt;
  ref_opt ref;
  float params[KEYS], grad[KEYS];
  double worst = 0;
  rng_state = seed;
  fill_uniform(params, KEYS);
  pd_optimizer_init(&opt, spec, KEYS);
  ref_init(&ref, spec, params);
  for (int step = 0; step < STEPS; step++) {
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&opt, params, grad, 0, KEYS);
    ref_step(&ref, grad, 0, KEYS);
    worst = fmax(worst, max_rel_err(params, ref.x, KEYS));
  }
  pd_optimizer_close(&opt);
  return worst;
}

static void test_sgd_trajectory(void) {
  CHECK(whole_trajectory_err(&sgd, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&sgd, 2) <= REL_TOL);
}

static void test_momentum_trajectory(void) {
  CHECK(whole_trajectory_err(&momentum, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&momentum, 2) <= REL_TOL);
}

static void test_adam_trajectory(void) {
  CHECK(whole_trajectory_err(&adam, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&adam, 2) <= REL_TOL);
  pd_optimizer_spec other = {
      .type = PD_OPT_ADAM, .lr = 0.001, .beta1 = 0.5, .beta2 = 0.9, .epsilon = 1e-3};
  CHECK(whole_trajectory_err(&other, 3) <= REL_TOL);
}

/* The largest betas a job spec accepts (beta1 <= 0.999999, beta2 <=
 * 0.999999999): 1 - beta is tiny and must not be computed from beta rounded
 * to float (float(0.999999999) is 1, which would freeze the second moment at
 * 0 and divide the step by epsilon alone). */
static void test_adam_extreme_betas(void) {
  pd_optimizer_spec spec = {
      .type = PD_OPT_ADAM, .lr = 0.01, .beta1 = 0.999999, .beta2 = 0.999999999, .epsilon = 1e-8};
  CHECK(whole_trajectory_err(&spec, 4) <= REL_TOL);
  spec.beta2 = 0.9999999;
  CHECK(whole_trajectory_err(&spec, 5) <= REL_TOL);
  spec.beta1 = 0.9;
  spec.beta2 = 0.9999;
  CHECK(whole_trajectory_err(&spec, 6) <= REL_TOL);
}

/* Known values, so that a reference and module sharing a mistake would still
 * be caught: the first Adam step moves every key by lr against the sign of
 * its gradient (m_hat / sqrt(v_hat) = g / |g|). */
static void test_adam_first_step_is_lr_sign(void) {
  pd_optimizer opt;
  float params[4] = {1, 1, 1, 1};
  const float grad[4] = {0.5f, -2.0f, 1e-3f, -1e3f};
  pd_optimizer_init(&opt, &adam, 4);
  pd_optimizer_step(&opt, params, grad, 0, 4);
  CHECK_NEAR(params[0], 1 - 0.01, 1e-6);
  CHECK_NEAR(params[1], 1 + 0.01, 1e-6);
  CHECK_NEAR(params[2], 1 - 0.01, 1e-6);
  CHECK_NEAR(params[3], 1 + 0.01, 1e-6);
  for (int i = 0; i < 4; i++)
    CHECK_EQ_INT(opt.steps[i], 1);
  pd_optimizer_close(&opt);
}

static void test_momentum_known_values(void) {
  pd_optimizer opt;
  float params[1] = {0};
  const float grad[1] = {1};
  pd_optimizer_init(&opt, &momentum, 1);
  /* v: -0.05, -0.095, -0.1355; x: -0.05, -0.145, -0.2805 */
  pd_optimizer_step(&opt, params, grad, 0, 1);
  CHECK_NEAR(params[0], -0.05, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1);
  CHECK_NEAR(params[0], -0.145, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1);
  CHECK_NEAR(params[0], -0.2805, 1e-7);
  CHECK_NEAR(opt.velocity[0], -0.1355, 1e-7);
  pd_optimizer_close(&opt);
}

/* Steps on a sub-range touch only that range, and Adam's bias correction
 * follows each key's own step count: [5, 20) first, then everything. */
static void test_adam_subrange_bias_correction(void) {
  pd_optimizer opt;
  ref_opt ref;
  float params[KEYS], before[KEYS], grad[KEYS];
  rng_state = 99;
  fill_uniform(params, KEYS);
  pd_optimizer_init(&opt, &adam, KEYS);
  ref_init(&ref, &adam, params);

  fill_uniform(grad, KEYS);
  memcpy(before, params, sizeof params);
  pd_optimizer_step(&opt, params, grad, 5, 15); /* grad[0..15) to keys [5, 20) */
  ref_step(&ref, grad, 5, 15);
  for (int i = 0; i < KEYS; i++) {
    if (i < 5 || i >= 20)
      CHECK(params[i] == before[i]);
    CHECK_EQ_INT(opt.steps[i], i >= 5 && i < 20 ? 1 : 0);
  }
  CHECK(max_rel_err(params, ref.x, KEYS) <= REL_TOL);

  for (int step = 0; step < 3; step++) {
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&opt, params, grad, 0, KEYS);
    ref_step(&ref, grad, 0, KEYS);
    CHECK(max_rel_err(params, ref.x, KEYS) <= REL_TOL);
  }
  for (int i = 0; i < KEYS; i++)
    CHECK_EQ_INT(opt.steps[i], i >= 5 && i < 20 ? 4 : 3);

  /* The test can tell per-key counts from one count per call: a reference
   * that counts calls (t = 4 for every key here) is far from the module. */
  ref_opt per_call;
  ref_init(&per_call, &adam, before);
  per_call.per_call_t = 1;
  rng_state = 99;
  fill_uniform(grad, KEYS); /* the initial parameters again */
  fill_uniform(grad, KEYS);
  ref_step(&per_call, grad, 5, 15);
  for (int step = 0; step < 3; step++) {
    fill_uniform(grad, KEYS);
    ref_step(&per_call, grad, 0, KEYS);
  }
  CHECK(max_rel_err(params, per_call.x, KEYS) > 100 * REL_TOL);
  pd_optimizer_close(&opt);
}

/* 20 steps on random sub-ranges, for each optimizer: state of keys outside a
 * step's range persists untouched, and per-key step counts follow. */
static void test_random_subranges(void) {
  const pd_optimizer_spec *specs[] = {&sgd, &momentum, &adam};
  for (int s = 0; s < 3; s++) {
    pd_optimizer opt;
    ref_opt ref;
    float params[KEYS], grad[KEYS];
    rng_state = 1000 + (uint64_t)s;
    fill_uniform(params, KEYS);
    pd_optimizer_init(&opt, specs[s], KEYS);
    ref_init(&ref, specs[s], params);
    for (int step = 0; step < STEPS; step++) {
      uint32_t a = rng_below(KEYS), b = rng_below(KEYS);
      uint32_t begin = a < b ? a : b, end = (a < b ? b : a) + 1;
      fill_uniform(grad, (int)(end - begin));
      pd_optimizer_step(&opt, params, grad, begin, end - begin);
      ref_step(&ref, grad, (int)begin, (int)(end - begin));
      CHECK(max_rel_err(params, ref.x, KEYS) <= REL_TOL);
    }
    if (specs[s]->type == PD_OPT_ADAM)
      for (int i = 0; i < KEYS; i++)
        CHECK_EQ_INT(opt.steps[i], ref.t[i]);
    pd_optimizer_close(&opt);
  }
}

/* Momentum keeps its velocity across steps on different sub-ranges: two
 * halves stepped separately equal the whole shard stepped at once. */
static void test_momentum_persists_across_subranges(void) {
  pd_optimizer whole, halves;
  float x_whole[KEYS], x_halves[KEYS], grad[KEYS];
  rng_state = 7;
  fill_uniform(x_whole, KEYS);
  memcpy(x_halves, x_whole, sizeof x_whole);
  pd_optimizer_init(&whole, &momentum, KEYS);
  pd_optimizer_init(&halves, &momentum, KEYS);
  for (int step = 0; step < STEPS; step++) {
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&whole, x_whole, grad, 0, KEYS);
    if (step % 2) { /* alternate the order of the halves */
      pd_optimizer_step(&halves, x_halves, grad + 17, 17, KEYS - 17);
      pd_optimizer_step(&halves, x_halves, grad, 0, 17);
    } else {
      pd_optimizer_step(&halves, x_halves, grad, 0, 17);
      pd_optimizer_step(&halves, x_halves, grad + 17, 17, KEYS - 17);
    }
  }
  /* Same float operations in the same order per key: bit-identical. */
  CHECK(memcmp(x_whole, x_halves, sizeof x_whole) == 0);
  CHECK(memcmp(whole.velocity, halves.velocity, KEYS * sizeof(float)) == 0);

  /* A key with no gradient for a while keeps its velocity... */
  float v_last = halves.velocity[KEYS - 1];
  for (int step = 0; step < 5; step++) {
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&halves, x_halves, grad, 0, KEYS - 1);
  }
  CHECK(halves.velocity[KEYS - 1] == v_last);
  /* ...and applies it (decayed once) at its next step. */
  float x_last = x_halves[KEYS - 1];
  const float zero = 0;
  pd_optimizer_step(&halves, x_halves, &zero, KEYS - 1, 1);
  CHECK_NEAR(x_halves[KEYS - 1], (double)x_last + 0.9 * (double)v_last, 1e-6);
  pd_optimizer_close(&whole);
  pd_optimizer_close(&halves);
}

/* init allocates only the state the optimizer needs; close frees it (the
 * ASan build checks for leaks) and may be called again. */
static void test_init_close(void) {
  pd_optimizer opt;
  pd_optimizer_init(&opt, &sgd, 1000);
  CHECK(opt.velocity == NULL && opt.second == NULL && opt.steps == NULL);
  CHECK_EQ_INT(opt.keys, 1000);
  pd_optimizer_close(&opt);

  pd_optimizer_init(&opt, &momentum, 1000);
  CHECK(opt.velocity != NULL && opt.second == NULL && opt.steps == NULL);
  for (int i = 0; i < 1000; i++)
    CHECK(opt.velocity[i] == 0);
  pd_optimizer_close(&opt);
  CHECK(opt.velocity == NULL);

  pd_optimizer_init(&opt, &adam, 1000);
  CHECK(opt.velocity != NULL && opt.second != NULL && opt.steps != NULL);
  for (int i = 0; i < 1000; i++)
    CHECK(opt.velocity[i] == 0 && opt.second[i] == 0 && opt.steps[i] == 0);
  CHECK(opt.spec.beta2 == adam.beta2);
  pd_optimizer_close(&opt);
  CHECK(opt.velocity == NULL && opt.second == NULL && opt.steps == NULL);
  pd_optimizer_close(&opt); /* idempotent */
}

int main(int argc, char **argv) {
  PD_RUN(test_sgd_trajectory);
  PD_RUN(test_momentum_trajectory);
  PD_RUN(test_adam_trajectory);
  PD_RUN(test_adam_extreme_betas);
  PD_RUN(test_adam_first_step_is_lr_sign);
  PD_RUN(test_momentum_known_values);
  PD_RUN(test_adam_subrange_bias_correction);
  PD_RUN(test_random_subranges);
  PD_RUN(test_momentum_persists_across_subranges);
  PD_RUN(test_init_close);
  PD_TEST_DONE();
}
