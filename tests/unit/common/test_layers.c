/* Unit tests of the layers models are built from (common/src/layers.h): each
 * backward pass against central differences of its forward pass, and the
 * losses against finite differences and known values. A layer is checked
 * through the scalar L = sum_i c_i y_i with fixed random c, whose gradient by
 * the outputs y is c. */
#include "../../../common/src/ml/layers.h"

#include <stdint.h>

#include "../../test.h"
#include "pando/util.h"

/* Deterministic uniform numbers in [-1, 1) for test data. */
static uint64_t rng_state;
static float rng_uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float *random_floats(size_t n, float scale) {
  float *v = pd_xmalloc(PD_MAX(n, (size_t)1) * sizeof(float));
  for (size_t i = 0; i < n; i++)
    v[i] = scale * rng_uniform();
  return v;
}

static double dot(const float *a, const float *c, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; i++)
    sum += (double)a[i] * (double)c[i];
  return sum;
}

/* Compares analytic[i] with the central difference of f at `value`[i] for a
 * sample of i (every `step`-th). f evaluates L for the current values. */
typedef double (*objective)(void *ctx);
static int check_fd(const char *what, float *value, const float *analytic, size_t n, size_t step,
                    float eps, double rel_tol, objective f, void *ctx) {
  int bad = 0;
  for (size_t i = 0; i < n; i += step) {
    float saved = value[i];
    value[i] = saved + eps;
    double plus = f(ctx);
    value[i] = saved - eps;
    double minus = f(ctx);
    value[i] = saved;
    double numeric = (plus - minus) / (2.0 * (double)eps);
    double tol = 1e-4 + rel_tol * fmax(fabs(numeric), fabs((double)analytic[i]));
    if (fabs(numeric - (double)analytic[i]) > tol) {
      fprintf(stderr, "  %s[%zu]: analytic %.7g numeric %.7g\n", what, i, (double)analytic[i],
              numeric);
      bad++;
    }
  }
  return bad;
}

/* ---------------------------------------------------------------- affine */

typedef struct affine_case {
  int rows, fan_in, fan_out;
  float *x, *w, *b, *c, *y;
  pd_dataset sparse; /* the same x as CSR, or rows = 0 */
} affine_case;

static double affine_objective(void *ctx) {
  affine_case *a = ctx;
  if (a->sparse.rows)
    pd__affine_forward_sparse(&a->sparse, a->w, a->b, a->fan_out, a->y);
  else
    pd__affine_forward(a->x, a->rows, a->fan_in, a->w, a->b, a->fan_out, a->y);
  return dot(a->y, a->c, (size_t)a->rows * (size_t)a->fan_out);
}

static void check_affine_dense(int rows, int fan_in, int fan_out) {
  rng_state = (uint64_t)(rows * 1000 + fan_in * 10 + fan_out);
  affine_case a = {rows, fan_in, fan_out, .x = random_floats((size_t)rows * fan_in, 1.0f)};
  a.w = random_floats((size_t)fan_in * fan_out, 0.5f);
  a.b = random_floats((size_t)fan_out, 0.5f);
  a.c = random_floats((size_t)rows * fan_out, 1.0f);
  a.y = random_floats((size_t)rows * fan_out, 1.0f);
  float *dw = random_floats((size_t)fan_in * fan_out, 9.0f), *db = random_floats(fan_out, 9.0f);
  float *dx = random_floats((size_t)rows * fan_in, 9.0f); /* garbage: must be overwritten */
  pd__affine_backward(a.x, rows, fan_in, a.w, fan_out, a.c, dw, db, dx);
  /* L is linear in each argument: a large step is exact up to rounding */
  int bad =
      check_fd("weight", a.w, dw, (size_t)fan_in * fan_out, 1, 0.25f, 1e-4, affine_objective, &a) +
      check_fd("bias", a.b, db, (size_t)fan_out, 1, 0.25f, 1e-4, affine_objective, &a) +
      check_fd("x", a.x, dx, (size_t)rows * fan_in, 1, 0.25f, 1e-4, affine_objective, &a);
  free(dx);
  free(db);
  free(dw);
  free(a.y);
  free(a.c);
  free(a.b);
  free(a.w);
  free(a.x);
  CHECK_EQ_INT(bad, 0);
}

static void test_affine_dense(void) {
  check_affine_dense(5, 7, 4);
  check_affine_dense(3, 6, 1); /* the matrix-vector path of linear models */
  check_affine_dense(1, 1, 3);
}

/* Sparse rows [1, 4) of a 5-row CSR matrix (row_ptr[0] of the view is not 0,
 * one row is empty), against the dense computation. */
static void test_affine_sparse(void) {
  enum { ROWS = 3, FAN_IN = 9 };
  for (int fan_out = 1; fan_out <= 4; fan_out += 3) {
    rng_state = 5 + (uint64_t)fan_out;
    uint64_t row_ptr[6] = {0, 2, 5, 5, 8, 9};
    uint32_t col_idx[9] = {1, 4, 0, 3, 8, 2, 3, 7, 5};
    float values[9] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f, -2.0f, 0.125f, 3.0f};
    pd_dataset csr = {
        .rows = ROWS, .cols = FAN_IN, .row_ptr = row_ptr + 1, .col_idx = col_idx, .values = values};
    float dense[ROWS * FAN_IN] = {0};
    for (int r = 0; r < ROWS; r++)
      for (uint64_t p = row_ptr[r + 1]; p < row_ptr[r + 2]; p++)
        dense[r * FAN_IN + (int)col_idx[p]] = values[p];
    affine_case a = {ROWS, FAN_IN, fan_out, .x = dense, .sparse = csr};
    a.w = random_floats((size_t)FAN_IN * fan_out, 0.5f);
    a.b = random_floats((size_t)fan_out, 0.5f);
    a.c = random_floats((size_t)ROWS * fan_out, 1.0f);
    a.y = random_floats((size_t)ROWS * fan_out, 1.0f);
    float *y_dense = random_floats((size_t)ROWS * fan_out, 1.0f);
    pd__affine_forward(dense, ROWS, FAN_IN, a.w, a.b, fan_out, y_dense);
    pd__affine_forward_sparse(&csr, a.w, a.b, fan_out, a.y);
    for (int i = 0; i < ROWS * fan_out; i++)
      CHECK_NEAR(a.y[i], y_dense[i], 1e-5);
    float *dw = random_floats((size_t)FAN_IN * fan_out, 9.0f), *db = random_floats(fan_out, 9.0f);
    float *dw_dense = random_floats((size_t)FAN_IN * fan_out, 9.0f);
    float *db_dense = random_floats(fan_out, 9.0f);
    pd__affine_backward_sparse(&csr, fan_out, a.c, dw, db);
    pd__affine_backward(dense, ROWS, FAN_IN, a.w, fan_out, a.c, dw_dense, db_dense, NULL);
    for (int i = 0; i < FAN_IN * fan_out; i++)
      CHECK_NEAR(dw[i], dw_dense[i], 1e-5);
    /* features 6 is in no row: its gradient row is exactly 0 */
    for (int j = 0; j < fan_out; j++)
      CHECK(dw[6 * fan_out + j] == 0.0f);
    int bad = check_fd("weight", a.w, dw, (size_t)FAN_IN * fan_out, 1, 0.25f, 1e-4,
                       affine_objective, &a) +
              check_fd("bias", a.b, db, (size_t)fan_out, 1, 0.25f, 1e-4, affine_objective, &a);
    free(db_dense);
    free(dw_dense);
    free(db);
    free(dw);
    free(y_dense);
    free(a.y);
    free(a.c);
    free(a.b);
    free(a.w);
    CHECK_EQ_INT(bad, 0);
  }
}

/* ---------------------------------------------------------------- activations, dropout */

typedef struct pointwise_case {
  enum pd_activation activation; /* 0: dropout with `mask` */
  size_t n;
  float *z, *c, *y, *mask;
} pointwise_case;

static double pointwise_objective(void *ctx) {
  pointwise_case *p = ctx;
  memcpy(p->y, p->z, p->n * sizeof(float));
  if (p->activation)
    pd__activation_forward(p->activation, p->y, p->n);
  else
    pd__dropout_apply(p->y, p->mask, p->n);
  return dot(p->y, p->c, p->n);
}

static void check_activation(enum pd_activation activation) {
  enum { N = 40 }; /* more than one vector block */
  rng_state = 77 + (uint64_t)activation;
  pointwise_case p = {
      activation, N, random_floats(N, 3.0f), random_floats(N, 1.0f), random_floats(N, 1.0f), NULL};
  for (int i = 0; i < N; i++) /* keep relu's kink away from the differences */
    if (fabsf(p.z[i]) < 0.05f)
      p.z[i] = 0.3f;
  pointwise_objective(&p); /* y = act(z) */
  float *delta = pd_xmalloc(N * sizeof(float));
  memcpy(delta, p.c, N * sizeof(float));
  pd__activation_backward(activation, delta, p.y, N);
  int bad = check_fd("z", p.z, delta, N, 1, 1e-3f, 1e-3, pointwise_objective, &p);
  free(delta);
  free(p.y);
  free(p.c);
  free(p.z);
  CHECK_EQ_INT(bad, 0);
}

static void test_relu(void) { check_activation(PD_ACT_RELU); }
static void test_tanh(void) { check_activation(PD_ACT_TANH); }
static void test_sigmoid(void) { check_activation(PD_ACT_SIGMOID); }

static void test_dropout_fixed_mask(void) {
  enum { N = 37 };
  rng_state = 3;
  pointwise_case p = {0,
                      N,
                      random_floats(N, 2.0f),
                      random_floats(N, 1.0f),
                      random_floats(N, 1.0f),
                      pd_xmalloc(N * sizeof(float))};
  pd__dropout_mask(11, 2, 0.4f, 0, p.mask, N);
  float *delta = pd_xmalloc(N * sizeof(float));
  memcpy(delta, p.c, N * sizeof(float));
  pd__dropout_apply(delta, p.mask, N); /* backward = the same mask on dL/dy */
  int bad = check_fd("x", p.z, delta, N, 1, 0.25f, 1e-4, pointwise_objective, &p);
  free(delta);
  free(p.mask);
  free(p.y);
  free(p.c);
  free(p.z);
  CHECK_EQ_INT(bad, 0);
}

static void test_dropout_mask(void) {
  enum { N = 100001 };
  float *a = pd_xmalloc(N * sizeof(float)), *b = pd_xmalloc(N * sizeof(float));
  pd__dropout_mask(1, 0, 0.3f, 0, a, N);
  size_t dropped = 0;
  for (int i = 0; i < N; i++) {
    CHECK(a[i] == 0.0f || fabsf(a[i] - 1.0f / 0.7f) < 1e-6f);
    dropped += a[i] == 0.0f;
  }
  CHECK_NEAR((double)dropped / N, 0.3, 0.01);
  pd__dropout_mask(1, 0, 0.3f, 0, b, N); /* same seed and stream: same mask */
  CHECK(memcmp(a, b, N * sizeof(float)) == 0);
  pd__dropout_mask(1, 1, 0.3f, 0, b, N); /* another stream */
  size_t same = 0;
  for (int i = 0; i < N; i++)
    same += a[i] == b[i];
  CHECK(same < N * 0.7);
  pd__dropout_mask(2, 0, 0.3f, 0, b, N); /* another seed */
  same = 0;
  for (int i = 0; i < N; i++)
    same += a[i] == b[i];
  CHECK(same < N * 0.7);
  pd__dropout_mask(2, 0, 0.0f, 0, b, N); /* rate 0 keeps everything as is */
  for (int i = 0; i < N; i++)
    CHECK(b[i] == 1.0f);
  /* a slice from any first index (odd or even) is that part of the whole:
   * what a compute thread with rows [first, ...) of the batch draws */
  size_t firsts[] = {1, 2, 777, 50000};
  for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
    size_t first = firsts[f], n = N - first;
    pd__dropout_mask(1, 0, 0.3f, first, b, n);
    CHECK(memcmp(a + first, b, n * sizeof(float)) == 0);
  }
  free(b);
  free(a);
}

/* ---------------------------------------------------------------- convolution */

typedef struct conv_case {
  pd__conv conv;
  int batch;
  float *x, *w, *b, *c, *y;
} conv_case;

static double conv_objective(void *ctx) {
  conv_case *k = ctx;
  pd__conv_forward(&k->conv, k->x, k->batch, k->w, k->b, k->y);
  return dot(k->y, k->c,
             (size_t)k->conv.filters * (size_t)k->batch * (size_t)k->conv.out_height *
                 (size_t)k->conv.out_width);
}

/* A direct (7-loop) convolution of NCHW data for reference. */
static void conv_direct(const pd__conv *cv, const float *x, int batch, const float *w,
                        const float *b, float *y) {
  int oh_n = cv->out_height, ow_n = cv->out_width, k = cv->kernel;
  for (int f = 0; f < cv->filters; f++)
    for (int s = 0; s < batch; s++)
      for (int oh = 0; oh < oh_n; oh++)
        for (int ow = 0; ow < ow_n; ow++) {
          double sum = b[f];
          for (int c = 0; c < cv->channels; c++)
            for (int kh = 0; kh < k; kh++)
              for (int kw = 0; kw < k; kw++) {
                int ih = oh + kh - cv->pad, iw = ow + kw - cv->pad;
                if (ih < 0 || ih >= cv->height || iw < 0 || iw >= cv->width)
                  continue;
                sum += (double)w[((f * cv->channels + c) * k + kh) * k + kw] *
                       x[(((size_t)s * cv->channels + c) * cv->height + ih) * cv->width + iw];
              }
          y[(((size_t)s * cv->filters + f) * oh_n + oh) * ow_n + ow] = (float)sum;
        }
}

static void check_conv(int channels, int height, int width, int filters, int kernel, int pad,
                       int batch, size_t step) {
  conv_case k = {.batch = batch};
  pd__conv_init(&k.conv, channels, height, width, filters, kernel, pad);
  size_t nx = (size_t)channels * batch * height * width;
  size_t nw = (size_t)filters * channels * kernel * kernel;
  size_t ny = (size_t)filters * batch * k.conv.out_height * k.conv.out_width;
  rng_state = nx + nw;
  k.x = random_floats(nx, 1.0f);
  k.w = random_floats(nw, 0.5f);
  k.b = random_floats((size_t)filters, 0.5f);
  k.c = random_floats(ny, 1.0f);
  k.y = random_floats(ny, 1.0f);
  float *want = pd_xmalloc(ny * sizeof(float));
  conv_direct(&k.conv, k.x, batch, k.w, k.b, want);
  conv_objective(&k);
  int bad = 0;
  for (size_t i = 0; i < ny; i++)
    bad += fabsf(k.y[i] - want[i]) > 1e-4f * (1.0f + fabsf(want[i]));
  CHECK_EQ_INT(bad, 0);
  float *dw = random_floats(nw, 9.0f), *db = random_floats((size_t)filters, 9.0f);
  float *dx = random_floats(nx, 9.0f);
  pd__conv_backward(&k.conv, k.x, batch, k.w, k.c, dw, db, dx);
  bad = check_fd("weight", k.w, dw, nw, step, 0.25f, 1e-3, conv_objective, &k) +
        check_fd("bias", k.b, db, (size_t)filters, 1, 0.25f, 1e-3, conv_objective, &k) +
        check_fd("x", k.x, dx, nx, step, 0.25f, 1e-3, conv_objective, &k);
  /* without dx the weight gradient is the same */
  float *dw2 = random_floats(nw, 9.0f);
  pd__conv_backward(&k.conv, k.x, batch, k.w, k.c, dw2, db, NULL);
  for (size_t i = 0; i < nw; i++)
    bad += dw2[i] != dw[i];
  free(dw2);
  free(dx);
  free(db);
  free(dw);
  free(want);
  pd__conv_close(&k.conv);
  free(k.y);
  free(k.c);
  free(k.b);
  free(k.w);
  free(k.x);
  CHECK_EQ_INT(bad, 0);
}

static void test_conv_small(void) {
  check_conv(3, 6, 5, 4, 3, 1, 2, 1); /* several channels, padding, not square */
  check_conv(2, 8, 8, 5, 5, 2, 3, 1); /* LeNet's kernel and padding */
  check_conv(1, 4, 4, 2, 3, 0, 1, 1); /* no padding: a smaller output */
  check_conv(2, 3, 3, 2, 5, 2, 2, 1); /* kernel larger than the input */
}

/* LeNet's second convolution (its blocked layouts differ from NCHW). */
static void test_conv_lenet2(void) { check_conv(32, 14, 14, 64, 5, 2, 3, 997); }

/* One convolution used with more batch sizes than it caches primitives for,
 * and back: every sample of every call equals the direct convolution. */
static void test_conv_batch_sizes(void) {
  enum { C = 3, H = 6, W = 6, F = 8, K = 5, PAD = 2, MAXB = 7 };
  pd__conv conv;
  pd__conv_init(&conv, C, H, W, F, K, PAD);
  rng_state = 77;
  size_t per_x = (size_t)C * H * W, per_y = (size_t)F * H * W;
  float *x = random_floats(per_x * MAXB, 1.0f), *w = random_floats((size_t)F * C * K * K, 0.5f);
  float *b = random_floats(F, 0.5f), *y = pd_xmalloc(per_y * MAXB * sizeof(float));
  float *want = pd_xmalloc(per_y * MAXB * sizeof(float));
  conv_direct(&conv, x, MAXB, w, b, want);
  int sizes[] = {1, 7, 2, 3, 4, 5, 6, 7, 1, 2}, bad = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    pd__conv_forward(&conv, x, sizes[i], w, b, y);
    for (size_t j = 0; j < per_y * (size_t)sizes[i]; j++)
      bad += fabsf(y[j] - want[j]) > 1e-4f * (1.0f + fabsf(want[j]));
  }
  CHECK_EQ_INT(bad, 0);
  pd__conv_close(&conv);
  free(want);
  free(y);
  free(b);
  free(w);
  free(x);
}

/* ---------------------------------------------------------------- pooling */

typedef struct pool_case {
  size_t planes;
  int height, width;
  float *x, *c, *y;
  uint8_t *argmax;
} pool_case;

static double pool_objective(void *ctx) {
  pool_case *p = ctx;
  pd__maxpool2_forward(p->x, p->planes, p->height, p->width, p->y, p->argmax);
  return dot(p->y, p->c, p->planes * (size_t)(p->height / 2) * (size_t)(p->width / 2));
}

static void test_maxpool(void) {
  pool_case p = {.planes = 3, .height = 4, .width = 6};
  size_t nx = p.planes * 24, ny = p.planes * 6;
  p.x = pd_xmalloc(nx * sizeof(float));
  /* distinct values, at least 0.01 apart, so that a difference of 1e-3
   * never changes a window's winner */
  for (size_t i = 0; i < nx; i++)
    p.x[i] = (float)((i * 37) % nx) * 0.01f - 0.3f;
  rng_state = 9;
  p.c = random_floats(ny, 1.0f);
  p.y = pd_xmalloc(ny * sizeof(float));
  p.argmax = pd_xmalloc(ny);
  pool_objective(&p);
  /* the first window of plane 0: x[0], x[1], x[6], x[7] */
  float first = fmaxf(fmaxf(p.x[0], p.x[1]), fmaxf(p.x[6], p.x[7]));
  CHECK(p.y[0] == first);
  float *dx = random_floats(nx, 9.0f);
  pd__maxpool2_backward(p.c, p.argmax, p.planes, p.height, p.width, dx);
  int zeros = 0;
  for (size_t i = 0; i < nx; i++)
    zeros += dx[i] == 0.0f;
  CHECK_EQ_INT(zeros, (int)(nx - ny)); /* 3 of every 4 inputs get nothing */
  int bad = check_fd("x", p.x, dx, nx, 1, 1e-3f, 1e-3, pool_objective, &p);
  free(dx);
  free(p.argmax);
  free(p.y);
  free(p.c);
  free(p.x);
  CHECK_EQ_INT(bad, 0);
}

/* ---------------------------------------------------------------- losses */

typedef struct loss_case {
  int kind; /* 0 softmax-ce, 1 squared, 2 logistic */
  int rows, classes;
  float *out, *scratch, *y;
  int *labels;
} loss_case;

static double loss_objective(void *ctx) {
  loss_case *l = ctx;
  size_t n = (size_t)l->rows * (size_t)l->classes;
  memcpy(l->scratch, l->out, n * sizeof(float));
  switch (l->kind) {
  case 0:
    return pd__softmax_ce(l->scratch, l->rows, l->classes, l->labels, 1.0f, NULL);
  case 1:
    return pd__squared_loss(l->scratch, l->rows, l->y, 1.0f, NULL);
  default:
    return pd__logistic_loss(l->scratch, l->rows, l->y, 1.0f, NULL);
  }
}

static void check_loss(int kind, int rows, int classes) {
  rng_state = 100 + (uint64_t)kind;
  loss_case l = {.kind = kind, .rows = rows, .classes = classes};
  size_t n = (size_t)rows * (size_t)classes;
  l.out = random_floats(n, 3.0f);
  l.scratch = pd_xmalloc(n * sizeof(float));
  l.y = pd_xmalloc((size_t)rows * sizeof(float));
  l.labels = pd_xmalloc((size_t)rows * sizeof(int));
  for (int r = 0; r < rows; r++) {
    l.labels[r] = r % classes;
    l.y[r] = kind == 2 ? (float)(r % 2) : 2.0f * rng_uniform();
  }
  loss_objective(&l);
  float *grad = pd_xmalloc(n * sizeof(float));
  memcpy(grad, l.scratch, n * sizeof(float)); /* the loss functions' gradient by out */
  int bad = check_fd("out", l.out, grad, n, 1, 1e-3f, 1e-3, loss_objective, &l);
  /* grad_scale scales the gradient */
  memcpy(l.scratch, l.out, n * sizeof(float));
  double sum = kind == 0   ? pd__softmax_ce(l.scratch, rows, classes, l.labels, 0.25f, NULL)
               : kind == 1 ? pd__squared_loss(l.scratch, rows, l.y, 0.25f, NULL)
                           : pd__logistic_loss(l.scratch, rows, l.y, 0.25f, NULL);
  CHECK(sum > 0.0);
  for (size_t i = 0; i < n; i++)
    bad += fabsf(l.scratch[i] - 0.25f * grad[i]) > 1e-6f;
  free(grad);
  free(l.labels);
  free(l.y);
  free(l.scratch);
  free(l.out);
  CHECK_EQ_INT(bad, 0);
}

static void test_softmax_ce(void) {
  check_loss(0, 5, 4);
  /* known value and counting: logits (2, 0) label 0, (0, 1) label 0 */
  float out[4] = {2, 0, 0, 1};
  int labels[2] = {0, 0};
  uint64_t correct = 9;
  double loss = pd__softmax_ce(out, 2, 2, labels, 1.0f, &correct);
  CHECK_NEAR(loss, log1p(exp(-2.0)) + log1p(exp(1.0)), 1e-6);
  CHECK_EQ_INT(correct, 1);
  /* huge logits stay finite */
  float big[3] = {1000, -1000, 0};
  int label[1] = {1};
  CHECK_NEAR(pd__softmax_ce(big, 1, 3, label, 1.0f, NULL), 2000.0, 1e-3);
  CHECK(isfinite(big[0]) && isfinite(big[1]) && isfinite(big[2]));
}

static void test_squared_loss(void) {
  check_loss(1, 6, 1);
  float out[2] = {1.5f, -1.0f}, y[2] = {0.5f, 1.0f};
  double sq = 0;
  CHECK_NEAR(pd__squared_loss(out, 2, y, 1.0f, &sq), 0.5 * (1.0 + 4.0), 1e-9);
  CHECK_NEAR(sq, 5.0, 1e-9);
  CHECK_NEAR(out[0], 1.0, 1e-7); /* y_hat - y */
  CHECK_NEAR(out[1], -2.0, 1e-7);
}

static void test_logistic_loss(void) {
  check_loss(2, 7, 1);
  float out[4] = {0.0f, 3.0f, -800.0f, 800.0f}, y[4] = {1, 0, 0, 0};
  uint64_t correct = 0;
  double loss = pd__logistic_loss(out, 4, y, 1.0f, &correct);
  CHECK_NEAR(loss, log(2.0) + (3.0 + log1p(exp(-3.0))) + 0.0 + 800.0, 1e-6);
  CHECK_EQ_INT(correct, 1); /* only -800 with label 0 (0 is not > 0) */
  CHECK_NEAR(out[0], -0.5, 1e-7);
  CHECK_NEAR(out[3], 1.0, 1e-7);
}

int main(int argc, char **argv) {
  PD_RUN(test_affine_dense);
  PD_RUN(test_affine_sparse);
  PD_RUN(test_relu);
  PD_RUN(test_tanh);
  PD_RUN(test_sigmoid);
  PD_RUN(test_dropout_fixed_mask);
  PD_RUN(test_dropout_mask);
  PD_RUN(test_conv_small);
  PD_RUN(test_conv_lenet2);
  PD_RUN(test_conv_batch_sizes);
  PD_RUN(test_maxpool);
  PD_RUN(test_softmax_ce);
  PD_RUN(test_squared_loss);
  PD_RUN(test_logistic_loss);
  PD_TEST_DONE();
}
