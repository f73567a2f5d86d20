/* Unit tests of the optimizers (SGD, momentum, Nesterov, AdaGrad, RMSprop,
 * Adam, each with and without L2 weight decay) against references computed
 * here in double precision, straight from the formulas of optimizer.h, and
 * against values computed by hand. tests/integration/test_optimizers.py
 * checks the same rules against an independent numpy implementation. */
#include "pando/optimizer.h"

#include <math.h>
#include <stdint.h>

#include "../../test.h"

enum { KEYS = 37, STEPS = 20 };

/* The module computes in float, the references in double. After 20 steps
 * the float rounding of each update (about 6e-8 relative) adds up to a few
 * 1e-7, so a 1e-6 bound on the error relative to the parameters' scale holds
 * with margin while still catching any formula mistake (a wrong sign, a
 * missing bias correction or a wrong step count changes values by 1e-3 or
 * more). Errors are measured per key relative to max(|reference|, 1): the
 * parameters start in [-1, 1], so a value that happens to pass near zero is
 * compared at the parameters' scale rather than at its own (relative to
 * max(|reference|, 1e-3), float rounding alone would exceed 1e-5 near
 * zero). */
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

static void ref_step(ref_opt *r, const float *grad, int offset, int n, double lr) {
  const pd_optimizer_spec *s = &r->spec;
  r->calls++;
  for (int j = 0; j < n; j++) {
    int i = offset + j;
    double g = grad[j] + s->weight_decay * r->x[i];
    switch (s->type) {
    case PD_OPT_SGD:
      r->x[i] = r->x[i] - lr * g;
      break;
    case PD_OPT_MOMENTUM:
      r->m[i] = s->momentum * r->m[i] - lr * g;
      r->x[i] = r->x[i] + r->m[i];
      break;
    case PD_OPT_NESTEROV: {
      double v0 = r->m[i];
      r->m[i] = s->momentum * r->m[i] - lr * g;
      r->x[i] = r->x[i] - s->momentum * v0 + (1 + s->momentum) * r->m[i];
      break;
    }
    case PD_OPT_ADAGRAD:
      r->v[i] = r->v[i] + g * g;
      r->x[i] = r->x[i] - lr * g / (sqrt(r->v[i]) + s->epsilon);
      break;
    case PD_OPT_RMSPROP:
      r->v[i] = s->decay_rate * r->v[i] + (1 - s->decay_rate) * g * g;
      r->x[i] = r->x[i] - lr * g / (sqrt(r->v[i]) + s->epsilon);
      break;
    case PD_OPT_YOGI: { /* Zaheer et al.; Reddi et al.'s FedYogi */
      r->m[i] = s->beta1 * r->m[i] + (1 - s->beta1) * g;
      double sign = r->v[i] > g * g ? 1 : (r->v[i] < g * g ? -1 : 0);
      r->v[i] = r->v[i] - (1 - s->beta2) * g * g * sign;
      r->x[i] = r->x[i] - lr * r->m[i] / (sqrt(r->v[i]) + s->epsilon);
      break;
    }
    case PD_OPT_ADAM:
      if (s->no_bias_correction) { /* Reddi et al.'s FedAdam */
        r->m[i] = s->beta1 * r->m[i] + (1 - s->beta1) * g;
        r->v[i] = s->beta2 * r->v[i] + (1 - s->beta2) * g * g;
        r->x[i] = r->x[i] - lr * r->m[i] / (sqrt(r->v[i]) + s->epsilon);
        break;
      }
      {
        r->t[i] = r->per_call_t ? r->calls : r->t[i] + 1;
        r->m[i] = s->beta1 * r->m[i] + (1 - s->beta1) * g;
        r->v[i] = s->beta2 * r->v[i] + (1 - s->beta2) * g * g;
        double m_hat = r->m[i] / (1 - pow(s->beta1, r->t[i]));
        double v_hat = r->v[i] / (1 - pow(s->beta2, r->t[i]));
        r->x[i] = r->x[i] - lr * m_hat / (sqrt(v_hat) + s->epsilon);
        break;
      }
    }
  }
}

static const pd_optimizer_spec sgd = {.type = PD_OPT_SGD, .lr = 0.05};
static const pd_optimizer_spec momentum = {.type = PD_OPT_MOMENTUM, .lr = 0.05, .momentum = 0.9};
static const pd_optimizer_spec nesterov = {.type = PD_OPT_NESTEROV, .lr = 0.05, .momentum = 0.9};
static const pd_optimizer_spec adagrad = {.type = PD_OPT_ADAGRAD, .lr = 0.1, .epsilon = 1e-8};
static const pd_optimizer_spec rmsprop = {
    .type = PD_OPT_RMSPROP, .lr = 0.01, .decay_rate = 0.9, .epsilon = 1e-8};
static const pd_optimizer_spec adam = {
    .type = PD_OPT_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8};
static const pd_optimizer_spec *const all_specs[] = {&sgd,     &momentum, &nesterov,
                                                     &adagrad, &rmsprop,  &adam};
#define NSPECS ((int)(sizeof all_specs / sizeof all_specs[0]))

static void fill_uniform(float *a, int n) {
  for (int i = 0; i < n; i++)
    a[i] = rng_uniform();
}

/* Runs STEPS whole-shard steps of `spec` with pseudo-random gradients, at
 * learning rate spec->lr times a factor that changes every 5 steps (as a
 * schedule would), and returns the largest relative difference to the
 * reference after any step. */
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
    double lr = spec->lr * pow(0.7, step / 5);
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&opt, params, grad, 0, KEYS, lr);
    ref_step(&ref, grad, 0, KEYS, lr);
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

static void test_nesterov_trajectory(void) {
  CHECK(whole_trajectory_err(&nesterov, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&nesterov, 2) <= REL_TOL);
  pd_optimizer_spec other = nesterov;
  other.momentum = 0.99;
  CHECK(whole_trajectory_err(&other, 3) <= REL_TOL);
}

static void test_adagrad_trajectory(void) {
  CHECK(whole_trajectory_err(&adagrad, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&adagrad, 2) <= REL_TOL);
  pd_optimizer_spec other = adagrad;
  other.epsilon = 0.1; /* epsilon matters: a large one changes every step */
  CHECK(whole_trajectory_err(&other, 3) <= REL_TOL);
}

static void test_rmsprop_trajectory(void) {
  CHECK(whole_trajectory_err(&rmsprop, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&rmsprop, 2) <= REL_TOL);
  pd_optimizer_spec other = rmsprop;
  /* The largest decay the spec accepts: float(0.999999999) is 1, so 1 - dr
   * must come from the double, or c would stay 0 and the steps be lr g / eps
   * (3% larger here, where sqrt(c) is about 3e-5 |g| against eps 1e-3). */
  other.decay_rate = 0.999999999;
  other.epsilon = 1e-3;
  other.lr = 1e-4;
  CHECK(whole_trajectory_err(&other, 3) <= REL_TOL);
}

static void test_adam_trajectory(void) {
  CHECK(whole_trajectory_err(&adam, 1) <= REL_TOL);
  CHECK(whole_trajectory_err(&adam, 2) <= REL_TOL);
  pd_optimizer_spec other = {
      .type = PD_OPT_ADAM, .lr = 0.001, .beta1 = 0.5, .beta2 = 0.9, .epsilon = 1e-3};
  CHECK(whole_trajectory_err(&other, 3) <= REL_TOL);
}

/* The server optimizers of fedadam and fedyogi (Reddi et al., ICLR 2021,
 * Algorithm 2 with their defaults beta 0.9, 0.99 and tau 1e-3). */
static void test_fedadam_fedyogi_trajectories(void) {
  pd_optimizer_spec fedadam = {.type = PD_OPT_ADAM,
                               .lr = 0.01,
                               .beta1 = 0.9,
                               .beta2 = 0.99,
                               .epsilon = 1e-3,
                               .no_bias_correction = 1};
  CHECK(whole_trajectory_err(&fedadam, 21) <= REL_TOL);
  pd_optimizer_spec fedyogi = fedadam;
  fedyogi.type = PD_OPT_YOGI;
  fedyogi.no_bias_correction = 0;
  CHECK(whole_trajectory_err(&fedyogi, 22) <= REL_TOL);
  /* without the correction the first step is lr (1 - b1) g / (sqrt(1 - b2) |g| + tau) */
  pd_optimizer opt;
  float x[1] = {1}, g[1] = {2};
  pd_optimizer_init(&opt, &fedadam, 1);
  pd_optimizer_step(&opt, x, g, 0, 1, 0.01);
  CHECK_NEAR(x[0], 1 - 0.01 * 0.1 * 2 / (sqrt(0.01) * 2 + 1e-3), 1e-7);
  pd_optimizer_close(&opt);
}

/* Every rule with L2 weight decay: the gradient is g + wd * x. */
static void test_weight_decay_trajectories(void) {
  for (int s = 0; s < NSPECS; s++) {
    pd_optimizer_spec spec = *all_specs[s];
    spec.weight_decay = 0.05;
    CHECK(whole_trajectory_err(&spec, 10 + (uint64_t)s) <= REL_TOL);
    spec.weight_decay = 1.5;
    CHECK(whole_trajectory_err(&spec, 20 + (uint64_t)s) <= REL_TOL);
  }
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
  pd_optimizer_step(&opt, params, grad, 0, 4, adam.lr);
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
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.05);
  CHECK_NEAR(params[0], -0.05, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.05);
  CHECK_NEAR(params[0], -0.145, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.05);
  CHECK_NEAR(params[0], -0.2805, 1e-7);
  CHECK_NEAR(opt.velocity[0], -0.1355, 1e-7);
  pd_optimizer_close(&opt);
}

/* Nesterov keeps x at momentum's x + mu v (the look-ahead point):
 * v: -0.05, -0.095, -0.1355 as for momentum;
 * x: 1.9 * -0.05 = -0.095; -0.095 + 0.045 - 0.1805 = -0.2305;
 *    -0.2305 + 0.0855 - 0.25745 = -0.40245 (= -0.2805 + 0.9 * -0.1355). */
static void test_nesterov_known_values(void) {
  pd_optimizer opt;
  float params[1] = {0};
  const float grad[1] = {1};
  pd_optimizer_init(&opt, &nesterov, 1);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.05);
  CHECK_NEAR(params[0], -0.095, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.05);
  CHECK_NEAR(params[0], -0.2305, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.05);
  CHECK_NEAR(params[0], -0.40245, 1e-7);
  CHECK_NEAR(opt.velocity[0], -0.1355, 1e-7);
  pd_optimizer_close(&opt);
}

/* AdaGrad, lr 0.1, gradients 3 then 4: c = 9, x = -0.1 * 3/3 = -0.1;
 * c = 25, x = -0.1 - 0.1 * 4/5 = -0.18. A key without gradient stays. */
static void test_adagrad_known_values(void) {
  pd_optimizer opt;
  float params[2] = {0, 0.5f};
  float grad[2] = {3, 0};
  pd_optimizer_init(&opt, &adagrad, 2);
  pd_optimizer_step(&opt, params, grad, 0, 2, 0.1);
  CHECK_NEAR(params[0], -0.1, 1e-7);
  CHECK_NEAR(opt.second[0], 9, 0);
  grad[0] = 4;
  pd_optimizer_step(&opt, params, grad, 0, 2, 0.1);
  CHECK_NEAR(params[0], -0.18, 1e-7);
  CHECK_NEAR(opt.second[0], 25, 0);
  CHECK(params[1] == 0.5f && opt.second[1] == 0);
  pd_optimizer_close(&opt);
}

/* RMSprop, decay 0.9, lr 0.01, gradient 2 twice: c = 0.1 * 4 = 0.4,
 * x = -0.02 / sqrt(0.4) = -0.0316227766; c = 0.36 + 0.4 = 0.76,
 * x = -0.0316227766 - 0.02 / sqrt(0.76) = -0.0545643498. */
static void test_rmsprop_known_values(void) {
  pd_optimizer opt;
  float params[1] = {0};
  const float grad[1] = {2};
  pd_optimizer_init(&opt, &rmsprop, 1);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.01);
  CHECK_NEAR(params[0], -0.0316227766, 1e-8);
  CHECK_NEAR(opt.second[0], 0.4, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 1, 0.01);
  CHECK_NEAR(params[0], -0.0545643498, 1e-8);
  CHECK_NEAR(opt.second[0], 0.76, 1e-7);
  pd_optimizer_close(&opt);
}

/* Weight decay with a zero gradient shrinks x: SGD lr 0.1, wd 0.5:
 * x = 1 - 0.1 * 0.5 = 0.95, then 0.95 * 0.95 = 0.9025. Momentum lr 0.1,
 * mu 0.9, wd 0.1: g = 0.1, v = -0.01, x = 0.99; g = 0.099,
 * v = -0.009 - 0.0099 = -0.0189, x = 0.9711. */
static void test_weight_decay_known_values(void) {
  pd_optimizer opt;
  float params[1] = {1};
  const float zero[1] = {0};
  pd_optimizer_spec spec = sgd;
  spec.weight_decay = 0.5;
  pd_optimizer_init(&opt, &spec, 1);
  pd_optimizer_step(&opt, params, zero, 0, 1, 0.1);
  CHECK_NEAR(params[0], 0.95, 1e-7);
  pd_optimizer_step(&opt, params, zero, 0, 1, 0.1);
  CHECK_NEAR(params[0], 0.9025, 1e-7);
  pd_optimizer_close(&opt);

  params[0] = 1;
  spec = momentum;
  spec.weight_decay = 0.1;
  pd_optimizer_init(&opt, &spec, 1);
  pd_optimizer_step(&opt, params, zero, 0, 1, 0.1);
  CHECK_NEAR(params[0], 0.99, 1e-7);
  pd_optimizer_step(&opt, params, zero, 0, 1, 0.1);
  CHECK_NEAR(params[0], 0.9711, 1e-7);
  CHECK_NEAR(opt.velocity[0], -0.0189, 1e-7);
  pd_optimizer_close(&opt);
}

/* A step uses the learning rate it is given, not spec.lr (the schedule
 * decides it): SGD with spec.lr 0.05 stepped at 0.2 and then at 0. */
static void test_lr_argument(void) {
  pd_optimizer opt;
  float params[2] = {1, -1};
  const float grad[2] = {1, 2};
  pd_optimizer_init(&opt, &sgd, 2);
  pd_optimizer_step(&opt, params, grad, 0, 2, 0.2);
  CHECK_NEAR(params[0], 0.8, 1e-7);
  CHECK_NEAR(params[1], -1.4, 1e-7);
  pd_optimizer_step(&opt, params, grad, 0, 2, 0);
  CHECK_NEAR(params[0], 0.8, 1e-7);
  pd_optimizer_close(&opt);
  /* Adam's first step moves by exactly the lr given */
  float x[1] = {0};
  pd_optimizer_init(&opt, &adam, 1);
  pd_optimizer_step(&opt, x, grad, 0, 1, 0.003);
  CHECK_NEAR(x[0], -0.003, 1e-8);
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
  pd_optimizer_step(&opt, params, grad, 5, 15, adam.lr); /* grad[0..15) to keys [5, 20) */
  ref_step(&ref, grad, 5, 15, adam.lr);
  for (int i = 0; i < KEYS; i++) {
    if (i < 5 || i >= 20)
      CHECK(params[i] == before[i]);
    CHECK_EQ_INT(opt.steps[i], i >= 5 && i < 20 ? 1 : 0);
  }
  CHECK(max_rel_err(params, ref.x, KEYS) <= REL_TOL);

  for (int step = 0; step < 3; step++) {
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&opt, params, grad, 0, KEYS, adam.lr);
    ref_step(&ref, grad, 0, KEYS, adam.lr);
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
  ref_step(&per_call, grad, 5, 15, adam.lr);
  for (int step = 0; step < 3; step++) {
    fill_uniform(grad, KEYS);
    ref_step(&per_call, grad, 0, KEYS, adam.lr);
  }
  CHECK(max_rel_err(params, per_call.x, KEYS) > 100 * REL_TOL);
  pd_optimizer_close(&opt);
}

/* 20 steps on random sub-ranges, for each optimizer with and without weight
 * decay: state of keys outside a step's range persists untouched, and
 * per-key step counts follow. */
static void test_random_subranges(void) {
  for (int s = 0; s < 2 * NSPECS; s++) {
    pd_optimizer_spec spec = *all_specs[s % NSPECS];
    spec.weight_decay = s < NSPECS ? 0 : 0.3;
    pd_optimizer opt;
    ref_opt ref;
    float params[KEYS], grad[KEYS];
    rng_state = 1000 + (uint64_t)s;
    fill_uniform(params, KEYS);
    pd_optimizer_init(&opt, &spec, KEYS);
    ref_init(&ref, &spec, params);
    for (int step = 0; step < STEPS; step++) {
      uint32_t a = rng_below(KEYS), b = rng_below(KEYS);
      uint32_t begin = a < b ? a : b, end = (a < b ? b : a) + 1;
      fill_uniform(grad, (int)(end - begin));
      pd_optimizer_step(&opt, params, grad, begin, end - begin, spec.lr);
      ref_step(&ref, grad, (int)begin, (int)(end - begin), spec.lr);
      CHECK(max_rel_err(params, ref.x, KEYS) <= REL_TOL);
    }
    if (spec.type == PD_OPT_ADAM)
      for (int i = 0; i < KEYS; i++)
        CHECK_EQ_INT(opt.steps[i], ref.t[i]);
    pd_optimizer_close(&opt);
  }
}

/* State persists across steps on different sub-ranges, for every rule: two
 * halves stepped separately (in either order) equal the whole shard stepped
 * at once, bit for bit, state included. */
static void test_state_persists_across_subranges(void) {
  for (int s = 0; s < NSPECS; s++) {
    pd_optimizer whole, halves;
    float x_whole[KEYS], x_halves[KEYS], grad[KEYS];
    rng_state = 7;
    fill_uniform(x_whole, KEYS);
    memcpy(x_halves, x_whole, sizeof x_whole);
    pd_optimizer_init(&whole, all_specs[s], KEYS);
    pd_optimizer_init(&halves, all_specs[s], KEYS);
    for (int step = 0; step < STEPS; step++) {
      double lr = all_specs[s]->lr * (1 + step % 3);
      fill_uniform(grad, KEYS);
      pd_optimizer_step(&whole, x_whole, grad, 0, KEYS, lr);
      if (step % 2) { /* alternate the order of the halves */
        pd_optimizer_step(&halves, x_halves, grad + 17, 17, KEYS - 17, lr);
        pd_optimizer_step(&halves, x_halves, grad, 0, 17, lr);
      } else {
        pd_optimizer_step(&halves, x_halves, grad, 0, 17, lr);
        pd_optimizer_step(&halves, x_halves, grad + 17, 17, KEYS - 17, lr);
      }
    }
    CHECK(memcmp(x_whole, x_halves, sizeof x_whole) == 0);
    pd_optimizer_slot a[PD_OPTIMIZER_MAX_SLOTS], b[PD_OPTIMIZER_MAX_SLOTS];
    int n = pd_optimizer_slots(&whole, a);
    CHECK_EQ_INT(pd_optimizer_slots(&halves, b), n);
    for (int i = 0; i < n; i++)
      CHECK(memcmp(a[i].data, b[i].data, KEYS * a[i].elem_size) == 0);
    pd_optimizer_close(&whole);
    pd_optimizer_close(&halves);
  }
}

/* A key with no gradient for a while keeps its momentum velocity, and
 * applies it (decayed once) at its next step. */
static void test_momentum_velocity_waits(void) {
  pd_optimizer opt;
  float x[KEYS], grad[KEYS];
  rng_state = 8;
  fill_uniform(x, KEYS);
  pd_optimizer_init(&opt, &momentum, KEYS);
  fill_uniform(grad, KEYS);
  pd_optimizer_step(&opt, x, grad, 0, KEYS, 0.05);
  float v_last = opt.velocity[KEYS - 1];
  CHECK(v_last != 0);
  for (int step = 0; step < 5; step++) {
    fill_uniform(grad, KEYS);
    pd_optimizer_step(&opt, x, grad, 0, KEYS - 1, 0.05);
  }
  CHECK(opt.velocity[KEYS - 1] == v_last);
  float x_last = x[KEYS - 1];
  const float zero = 0;
  pd_optimizer_step(&opt, x, &zero, KEYS - 1, 1, 0.05);
  CHECK_NEAR(x[KEYS - 1], (double)x_last + 0.9 * (double)v_last, 1e-6);
  pd_optimizer_close(&opt);
}

/* init allocates only the state the rule needs, zeroed; slots lists it;
 * close frees it (the ASan build checks for leaks) and may be called
 * again. */
static void test_init_close(void) {
  static const struct {
    const pd_optimizer_spec *spec;
    int velocity, second, steps;
  } want[] = {{&sgd, 0, 0, 0},     {&momentum, 1, 0, 0}, {&nesterov, 1, 0, 0},
              {&adagrad, 0, 1, 0}, {&rmsprop, 0, 1, 0},  {&adam, 1, 1, 1}};
  for (size_t s = 0; s < sizeof want / sizeof want[0]; s++) {
    pd_optimizer opt;
    pd_optimizer_init(&opt, want[s].spec, 1000);
    CHECK_EQ_INT(opt.keys, 1000);
    CHECK_EQ_INT(opt.velocity != NULL, want[s].velocity);
    CHECK_EQ_INT(opt.second != NULL, want[s].second);
    CHECK_EQ_INT(opt.steps != NULL, want[s].steps);
    for (int i = 0; i < 1000; i++) {
      CHECK(!opt.velocity || opt.velocity[i] == 0);
      CHECK(!opt.second || opt.second[i] == 0);
      CHECK(!opt.steps || opt.steps[i] == 0);
    }
    pd_optimizer_slot slots[PD_OPTIMIZER_MAX_SLOTS];
    int n = pd_optimizer_slots(&opt, slots);
    CHECK_EQ_INT(n, want[s].velocity + want[s].second + want[s].steps);
    for (int i = 0; i < n; i++)
      CHECK(slots[i].elem_size == 4 && slots[i].data && slots[i].name);
    CHECK(opt.spec.type == want[s].spec->type && opt.spec.lr == want[s].spec->lr);
    pd_optimizer_close(&opt);
    CHECK(opt.velocity == NULL && opt.second == NULL && opt.steps == NULL);
    CHECK_EQ_INT(pd_optimizer_slots(&opt, slots), 0);
    pd_optimizer_close(&opt); /* idempotent */
  }
}

int main(int argc, char **argv) {
  PD_RUN(test_sgd_trajectory);
  PD_RUN(test_momentum_trajectory);
  PD_RUN(test_nesterov_trajectory);
  PD_RUN(test_adagrad_trajectory);
  PD_RUN(test_rmsprop_trajectory);
  PD_RUN(test_adam_trajectory);
  PD_RUN(test_fedadam_fedyogi_trajectories);
  PD_RUN(test_weight_decay_trajectories);
  PD_RUN(test_adam_extreme_betas);
  PD_RUN(test_adam_first_step_is_lr_sign);
  PD_RUN(test_momentum_known_values);
  PD_RUN(test_nesterov_known_values);
  PD_RUN(test_adagrad_known_values);
  PD_RUN(test_rmsprop_known_values);
  PD_RUN(test_weight_decay_known_values);
  PD_RUN(test_lr_argument);
  PD_RUN(test_adam_subrange_bias_correction);
  PD_RUN(test_random_subranges);
  PD_RUN(test_state_persists_across_subranges);
  PD_RUN(test_momentum_velocity_waits);
  PD_RUN(test_init_close);
  PD_TEST_DONE();
}
