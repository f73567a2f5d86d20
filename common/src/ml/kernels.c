/* The math backend: matrix products and convolutions in oneDNN, which
 * generates its code at run time for the instruction set of the CPU it finds
 * (AVX2, AVX-512, AMX), rather than picking from a table of known CPU models
 * as OpenBLAS does. OpenBLAS keeps the vector operations (sgemv, saxpy) that
 * the daemons call directly. Which of them runs is in pd_kernels_describe. */
#include "kernels_internal.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oneapi/dnnl/dnnl.h"
#include "pando/error.h"
#include "pando/kernels.h"
#include "pando/util.h"

/* A oneDNN call that cannot fail with valid arguments: any failure is a bug
 * (or out of memory) and aborts with the status. */
#define DNNL_CHECK(call)                                                                           \
  do {                                                                                             \
    dnnl_status_t status_ = (call);                                                                \
    if (status_ != dnnl_success) {                                                                 \
      fprintf(stderr, "%s:%d: %s: oneDNN status %d\n", __FILE__, __LINE__, #call, (int)status_);   \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* ---------------------------------------------------------------- threads, engine */

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static void engine_make(void) {
  openblas_set_num_threads(1); /* OpenBLAS has one pool for the process */
  DNNL_CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
}
static dnnl_engine_t engine_get(void) {
  pthread_once(&engine_once, engine_make);
  return engine;
}

static _Thread_local int thread_ready;

void pd__kernels_thread_init(void) {
  if (thread_ready)
    return;
  engine_get();
  /* oneDNN runs on OpenMP here: each calling thread has its own team size */
  omp_set_num_threads(1);
  thread_ready = 1;
}

static int compute_threads = 1;

void pd_kernels_set_threads(int threads) {
  PD_ASSERT(threads >= 1 && threads <= PD_KERNELS_MAX_THREADS);
  compute_threads = threads;
  engine_get();
  pd__kernels_thread_init();
}

int pd_kernels_threads(void) { return compute_threads; }

/* ---------------------------------------------------------------- what runs */

const char *pd_kernels_isa(void) {
  switch (dnnl_get_effective_cpu_isa()) {
  case dnnl_cpu_isa_sse41:
    return "sse41";
  case dnnl_cpu_isa_avx:
    return "avx";
  case dnnl_cpu_isa_avx2:
    return "avx2";
  case dnnl_cpu_isa_avx2_vnni:
    return "avx2_vnni";
  case dnnl_cpu_isa_avx512_mic:
  case dnnl_cpu_isa_avx512_mic_4ops:
    return "avx512_mic";
  case dnnl_cpu_isa_avx512_core:
    return "avx512_core";
  case dnnl_cpu_isa_avx512_core_vnni:
    return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core_bf16:
    return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_amx:
    return "avx512_core_amx";
  default:
    return "generic";
  }
}

const char *pd_kernels_library(void) {
  static _Thread_local char name[32];
  const dnnl_version_t *v = dnnl_version();
  snprintf(name, sizeof name, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  return name;
}

/* "OpenBLAS 0.3.21" from its configuration string ("OpenBLAS 0.3.21
 * DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"). */
const char *pd_kernels_blas(void) {
  static _Thread_local char name[48];
  const char *config = openblas_get_config();
  int n = 0;
  for (int words = 0; config[n] && (config[n] != ' ' || ++words < 2); n++)
    ;
  snprintf(name, sizeof name, "%.*s", n, config);
  return name;
}

const char *pd_kernels_blas_core(void) { return openblas_get_corename(); }

const char *pd_kernels_describe(void) {
  static _Thread_local char line[160];
  snprintf(line, sizeof line, "%s (%s), %s (%s)", pd_kernels_library(), pd_kernels_isa(),
           pd_kernels_blas(), pd_kernels_blas_core());
  return line;
}

/* ---------------------------------------------------------------- matrix products */

void pd__sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc) {
  pd__kernels_thread_init();
  /* oneDNN's JIT sgemm: faster than OpenBLAS's Zen/Haswell kernels on every
   * shape of the MLP and LeNet (docs/benchmarks.md), and not dependent on
   * OpenBLAS knowing the CPU model */
  DNNL_CHECK(dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}

/* ---------------------------------------------------------------- convolution */

/* An argument of a primitive: the caller's buffer in its plain layout, and,
 * when the primitive wants another (blocked) layout, a buffer of that layout
 * with the reorder between them. */
typedef struct arg {
  dnnl_memory_t user;       /* plain layout; its data handle is set per call */
  dnnl_memory_t inner;      /* the primitive's layout, or NULL when it is the user's */
  dnnl_primitive_t reorder; /* user -> inner for inputs, inner -> user for outputs */
} arg;

static void arg_init(arg *a, const dnnl_memory_desc_t *user_md, const dnnl_memory_desc_t *want,
                     int output) {
  memset(a, 0, sizeof *a);
  dnnl_engine_t e = engine_get();
  DNNL_CHECK(dnnl_memory_create(&a->user, user_md, e, NULL));
  if (dnnl_memory_desc_equal(user_md, want))
    return;
  DNNL_CHECK(dnnl_memory_create(&a->inner, want, e, DNNL_MEMORY_ALLOCATE));
  dnnl_primitive_desc_t pd;
  DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, output ? want : user_md, e,
                                                output ? user_md : want, e, NULL));
  DNNL_CHECK(dnnl_primitive_create(&a->reorder, pd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
}

static void arg_close(arg *a) {
  if (a->reorder)
    dnnl_primitive_destroy(a->reorder);
  if (a->inner)
    dnnl_memory_destroy(a->inner);
  if (a->user)
    dnnl_memory_destroy(a->user);
}

static void run(dnnl_primitive_t p, dnnl_stream_t s, int nargs, const dnnl_exec_arg_t *args) {
  DNNL_CHECK(dnnl_primitive_execute(p, s, nargs, args));
}

static void reorder(dnnl_primitive_t p, dnnl_stream_t s, dnnl_memory_t from, dnnl_memory_t to) {
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  run(p, s, 2, args);
}

/* The memory a primitive reads for input `a` holding `data`. */
static dnnl_memory_t arg_in(arg *a, const float *data, dnnl_stream_t s) {
  DNNL_CHECK(dnnl_memory_set_data_handle(a->user, (void *)data));
  if (!a->inner)
    return a->user;
  reorder(a->reorder, s, a->user, a->inner);
  return a->inner;
}

/* The memory a primitive writes for output `a` going to `data`; arg_out_done
 * after the primitive ran. */
static dnnl_memory_t arg_out(arg *a, float *data) {
  DNNL_CHECK(dnnl_memory_set_data_handle(a->user, data));
  return a->inner ? a->inner : a->user;
}
static void arg_out_done(arg *a, dnnl_stream_t s) {
  if (a->inner)
    reorder(a->reorder, s, a->inner, a->user);
}

/* A primitive, its scratchpad (user-managed, so that primitives of different
 * threads never share one) and the memory descriptors of its arguments. */
typedef struct prim {
  dnnl_primitive_t p;
  dnnl_memory_t scratchpad;
} prim;

static void prim_init(prim *pr, dnnl_primitive_desc_t pd) {
  DNNL_CHECK(dnnl_primitive_create(&pr->p, pd));
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  DNNL_CHECK(dnnl_memory_create(&pr->scratchpad, md, engine_get(), DNNL_MEMORY_ALLOCATE));
}

static void prim_close(prim *pr) {
  if (pr->p)
    dnnl_primitive_destroy(pr->p);
  if (pr->scratchpad)
    dnnl_memory_destroy(pr->scratchpad);
}

static const dnnl_memory_desc_t *md_of(dnnl_primitive_desc_t pd, dnnl_query_t what) {
  return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* Plans for this many batch sizes per convolution (LeNet: its micro-batch,
 * a thread's slice, the last partial batch, evaluation chunks). */
#define CONV_PLANS 4

struct pd__conv_plan {
  int batch;            /* 0: unused */
  uint64_t used;        /* for replacement: the conv's use count at the last use */
  dnnl_stream_t stream; /* executes in the calling thread */
  prim fwd, bwd_data, bwd_weights;
  arg f_src, f_weights, f_bias, f_dst;   /* forward */
  arg d_diff_dst, d_weights, d_diff_src; /* backward data */
  arg w_src, w_diff_dst, w_diff_weights; /* backward weights (diff_bias is plain) */
  dnnl_memory_t w_diff_bias;
  int shared_diff_dst; /* backward data and weights take dy in the same layout */
  float *cols;         /* few channels: im2col columns of a chunk (else NULL) */
  float *dy_rows;      /* few channels: dy of a chunk as [filters x positions] */
  int chunk;           /* samples per chunk of that path */
};

/* oneDNN's backward-weights kernels for inputs of few channels (LeNet's
 * first convolution, 1 channel) reach under 10% of the core's peak
 * (tools/kernelbench); an im2col matrix product does several times better.
 * Below this many channels the weight gradient takes that path. */
#define FEW_CHANNELS 4
/* Floats of im2col columns per chunk of samples (kept in the caches). */
#define COLS_FLOATS (256u * 1024u)

void pd__conv_init(pd__conv *conv, int channels, int height, int width, int filters, int kernel,
                   int pad) {
  PD_ASSERT(channels > 0 && height > 0 && width > 0 && filters > 0 && kernel > 0 && pad >= 0);
  memset(conv, 0, sizeof *conv);
  conv->channels = channels;
  conv->height = height;
  conv->width = width;
  conv->filters = filters;
  conv->kernel = kernel;
  conv->pad = pad;
  conv->out_height = height + 2 * pad - kernel + 1;
  conv->out_width = width + 2 * pad - kernel + 1;
  PD_ASSERT(conv->out_height > 0 && conv->out_width > 0);
}

static void plan_close(pd__conv_plan *pl) {
  if (!pl->batch)
    return;
  arg *args[] = {&pl->f_src,      &pl->f_weights,     &pl->f_bias,     &pl->f_dst,
                 &pl->d_diff_dst, &pl->d_weights,     &pl->d_diff_src, &pl->w_src,
                 &pl->w_diff_dst, &pl->w_diff_weights};
  for (size_t i = 0; i < PD_ARRAY_SIZE(args); i++)
    arg_close(args[i]);
  dnnl_memory_destroy(pl->w_diff_bias);
  prim_close(&pl->fwd);
  prim_close(&pl->bwd_data);
  prim_close(&pl->bwd_weights);
  dnnl_stream_destroy(pl->stream);
  free(pl->cols);
  free(pl->dy_rows);
  memset(pl, 0, sizeof *pl);
}

void pd__conv_close(pd__conv *conv) {
  if (!conv->plans)
    return;
  for (int i = 0; i < CONV_PLANS; i++)
    plan_close(&conv->plans[i]);
  free(conv->plans);
  conv->plans = NULL;
}

static void plan_make(const pd__conv *conv, int batch, pd__conv_plan *pl) {
  dnnl_engine_t e = engine_get();
  dnnl_dims_t src_dims = {batch, conv->channels, conv->height, conv->width};
  dnnl_dims_t w_dims = {conv->filters, conv->channels, conv->kernel, conv->kernel};
  dnnl_dims_t b_dims = {conv->filters};
  dnnl_dims_t dst_dims = {batch, conv->filters, conv->out_height, conv->out_width};
  dnnl_dims_t strides = {1, 1}, padding = {conv->pad, conv->pad};
  dnnl_memory_desc_t src_user, w_user, b_user, dst_user, src_any, w_any, dst_any;
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&src_user, 4, src_dims, dnnl_f32, dnnl_nchw));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_user, 4, w_dims, dnnl_f32, dnnl_oihw));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&b_user, 1, b_dims, dnnl_f32, dnnl_x));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dst_user, 4, dst_dims, dnnl_f32, dnnl_nchw));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any));

  dnnl_primitive_attr_t attr;
  DNNL_CHECK(dnnl_primitive_attr_create(&attr));
  DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

  dnnl_convolution_desc_t fd, dd, wd;
  dnnl_primitive_desc_t fpd, dpd, wpd;
  DNNL_CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                                &src_any, &w_any, &b_user, &dst_any, strides,
                                                padding, padding));
  DNNL_CHECK(dnnl_primitive_desc_create(&fpd, &fd, attr, e, NULL));
  DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &src_any,
                                                      &w_any, &dst_any, strides, padding, padding));
  DNNL_CHECK(dnnl_primitive_desc_create(&dpd, &dd, attr, e, fpd));
  DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src_any,
                                                         &w_any, &b_user, &dst_any, strides,
                                                         padding, padding));
  DNNL_CHECK(dnnl_primitive_desc_create(&wpd, &wd, attr, e, fpd));

  pl->batch = batch;
  DNNL_CHECK(dnnl_stream_create(&pl->stream, e, dnnl_stream_default_flags));
  prim_init(&pl->fwd, fpd);
  prim_init(&pl->bwd_data, dpd);
  prim_init(&pl->bwd_weights, wpd);
  arg_init(&pl->f_src, &src_user, md_of(fpd, dnnl_query_src_md), 0);
  arg_init(&pl->f_weights, &w_user, md_of(fpd, dnnl_query_weights_md), 0);
  arg_init(&pl->f_bias, &b_user, &b_user, 0);
  arg_init(&pl->f_dst, &dst_user, md_of(fpd, dnnl_query_dst_md), 1);
  arg_init(&pl->d_diff_dst, &dst_user, md_of(dpd, dnnl_query_diff_dst_md), 0);
  arg_init(&pl->d_weights, &w_user, md_of(dpd, dnnl_query_weights_md), 0);
  arg_init(&pl->d_diff_src, &src_user, md_of(dpd, dnnl_query_diff_src_md), 1);
  arg_init(&pl->w_src, &src_user, md_of(wpd, dnnl_query_src_md), 0);
  arg_init(&pl->w_diff_dst, &dst_user, md_of(wpd, dnnl_query_diff_dst_md), 0);
  arg_init(&pl->w_diff_weights, &w_user, md_of(wpd, dnnl_query_diff_weights_md), 1);
  DNNL_CHECK(dnnl_memory_create(&pl->w_diff_bias, &b_user, e, NULL));
  pl->shared_diff_dst = dnnl_memory_desc_equal(md_of(dpd, dnnl_query_diff_dst_md),
                                               md_of(wpd, dnnl_query_diff_dst_md));
  if (conv->channels < FEW_CHANNELS) {
    size_t q = (size_t)conv->channels * (size_t)conv->kernel * (size_t)conv->kernel;
    size_t plane = (size_t)conv->out_height * (size_t)conv->out_width;
    pl->chunk = (int)PD_MAX(1, PD_MIN((size_t)batch, COLS_FLOATS / (q * plane)));
    pl->cols = pd_xmalloc_aligned(q * plane * (size_t)pl->chunk * sizeof(float));
    pl->dy_rows =
        pd_xmalloc_aligned((size_t)conv->filters * plane * (size_t)pl->chunk * sizeof(float));
  }
  DNNL_CHECK(dnnl_primitive_desc_destroy(fpd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(dpd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(wpd));
  DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
}

/* The plan of `conv` for `batch` samples: a cached one, else a new one in
 * the least recently used slot. */
static pd__conv_plan *plan_for(pd__conv *conv, int batch) {
  pd__kernels_thread_init();
  if (!conv->plans)
    conv->plans = pd_xcalloc(CONV_PLANS, sizeof *conv->plans);
  uint64_t now = ++conv->plan_uses;
  pd__conv_plan *oldest = &conv->plans[0];
  for (int i = 0; i < CONV_PLANS; i++) {
    pd__conv_plan *pl = &conv->plans[i];
    if (pl->batch == batch) {
      pl->used = now;
      return pl;
    }
    if (pl->used < oldest->used)
      oldest = pl;
  }
  plan_close(oldest);
  plan_make(conv, batch, oldest);
  oldest->used = now;
  return oldest;
}

void pd__conv_forward(pd__conv *conv, const float *x, int batch, const float *weight,
                      const float *bias, float *y) {
  pd__conv_plan *pl = plan_for(conv, batch);
  dnnl_stream_t s = pl->stream;
  dnnl_exec_arg_t args[5] = {
      {DNNL_ARG_SRC, arg_in(&pl->f_src, x, s)},
      {DNNL_ARG_WEIGHTS, arg_in(&pl->f_weights, weight, s)},
      {DNNL_ARG_BIAS, arg_in(&pl->f_bias, bias, s)},
      {DNNL_ARG_DST, arg_out(&pl->f_dst, y)},
      {DNNL_ARG_SCRATCHPAD, pl->fwd.scratchpad},
  };
  run(pl->fwd.p, s, 5, args);
  arg_out_done(&pl->f_dst, s);
  DNNL_CHECK(dnnl_stream_wait(s));
}

/* cols[q x count*plane], q = (c, kh, kw): the input value each kernel tap
 * sees at every output position of samples [first, first + count) (0 in
 * the padding). */
static void im2col(const pd__conv *cv, const float *x, int first, int count, float *cols) {
  int k = cv->kernel, oh_n = cv->out_height, ow_n = cv->out_width, pad = cv->pad;
  size_t plane = (size_t)oh_n * (size_t)ow_n, row = plane * (size_t)count;
  for (int c = 0; c < cv->channels; c++)
    for (int kh = 0; kh < k; kh++)
      for (int kw = 0; kw < k; kw++) {
        float *dst = cols + ((size_t)(c * k + kh) * (size_t)k + (size_t)kw) * row;
        /* output columns [lo, hi) read inside the input row */
        int lo = PD_MAX(0, pad - kw), hi = PD_MIN(ow_n, cv->width + pad - kw);
        for (int s = 0; s < count; s++) {
          const float *in = x + ((size_t)(first + s) * (size_t)cv->channels + (size_t)c) *
                                    (size_t)cv->height * (size_t)cv->width;
          for (int oh = 0; oh < oh_n; oh++, dst += ow_n) {
            int ih = oh + kh - pad;
            if (ih < 0 || ih >= cv->height || lo >= hi) {
              memset(dst, 0, (size_t)ow_n * sizeof(float));
              continue;
            }
            const float *src = in + (size_t)ih * (size_t)cv->width - pad + kw;
            for (int ow = 0; ow < lo; ow++)
              dst[ow] = 0.0f;
            memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
            for (int ow = hi; ow < ow_n; ow++)
              dst[ow] = 0.0f;
          }
        }
      }
}

/* dweight and dbias by im2col matrix products: dW [filters x q] = the sum
 * over chunks of samples of dy [filters x positions] cols^T. */
static void weights_by_im2col(const pd__conv *cv, pd__conv_plan *pl, const float *x, int batch,
                              const float *dy, float *dweight, float *dbias) {
  int q = cv->channels * cv->kernel * cv->kernel;
  size_t plane = (size_t)cv->out_height * (size_t)cv->out_width;
  for (int f = 0; f < cv->filters; f++)
    dbias[f] = 0.0f;
  for (int first = 0; first < batch; first += pl->chunk) {
    int count = PD_MIN(pl->chunk, batch - first);
    size_t positions = plane * (size_t)count;
    im2col(cv, x, first, count, pl->cols);
    for (int f = 0; f < cv->filters; f++) {
      float *to = pl->dy_rows + (size_t)f * positions;
      double sum = 0.0;
      for (int s = 0; s < count; s++) {
        const float *from = dy + ((size_t)(first + s) * (size_t)cv->filters + (size_t)f) * plane;
        memcpy(to + (size_t)s * plane, from, plane * sizeof(float));
        float lane = 0.0f;
        for (size_t p = 0; p < plane; p++)
          lane += from[p];
        sum += lane;
      }
      dbias[f] += (float)sum;
    }
    pd__sgemm('N', 'T', cv->filters, q, (int)positions, 1.0f, pl->dy_rows, (int)positions, pl->cols,
              (int)positions, first == 0 ? 0.0f : 1.0f, dweight, q);
  }
}

/* dx from dy: the backward-data primitive; `diff_dst` is dy already in its
 * layout, or NULL. */
static void data_gradient(pd__conv_plan *pl, const float *weight, const float *dy,
                          dnnl_memory_t diff_dst, float *dx) {
  dnnl_stream_t s = pl->stream;
  dnnl_exec_arg_t args[4] = {
      {DNNL_ARG_DIFF_DST, diff_dst ? diff_dst : arg_in(&pl->d_diff_dst, dy, s)},
      {DNNL_ARG_WEIGHTS, arg_in(&pl->d_weights, weight, s)},
      {DNNL_ARG_DIFF_SRC, arg_out(&pl->d_diff_src, dx)},
      {DNNL_ARG_SCRATCHPAD, pl->bwd_data.scratchpad},
  };
  run(pl->bwd_data.p, s, 4, args);
  arg_out_done(&pl->d_diff_src, s);
}

void pd__conv_backward(pd__conv *conv, const float *x, int batch, const float *weight,
                       const float *dy, float *dweight, float *dbias, float *dx) {
  pd__conv_plan *pl = plan_for(conv, batch);
  dnnl_stream_t s = pl->stream;
  dnnl_memory_t diff_dst = NULL;
  if (pl->cols) {
    weights_by_im2col(conv, pl, x, batch, dy, dweight, dbias);
  } else {
    diff_dst = arg_in(&pl->w_diff_dst, dy, s);
    DNNL_CHECK(dnnl_memory_set_data_handle(pl->w_diff_bias, dbias));
    dnnl_exec_arg_t args[5] = {
        {DNNL_ARG_SRC, arg_in(&pl->w_src, x, s)},
        {DNNL_ARG_DIFF_DST, diff_dst},
        {DNNL_ARG_DIFF_WEIGHTS, arg_out(&pl->w_diff_weights, dweight)},
        {DNNL_ARG_DIFF_BIAS, pl->w_diff_bias},
        {DNNL_ARG_SCRATCHPAD, pl->bwd_weights.scratchpad},
    };
    run(pl->bwd_weights.p, s, 5, args);
    arg_out_done(&pl->w_diff_weights, s);
  }
  if (dx)
    data_gradient(pl, weight, dy, pl->shared_diff_dst ? diff_dst : NULL, dx);
  DNNL_CHECK(dnnl_stream_wait(s));
}
