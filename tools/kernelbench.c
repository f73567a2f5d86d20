/* GFLOP/s of the kernels the models use, on the MLP's and LeNet's shapes
 * (batch 64), next to this core's peak, one thread:
 *   kernelbench [SECONDS per measurement, default 0.5]
 * The peak is measured with an FMA loop of our own (12 independent chains
 * of 8-float AVX2 FMAs, or 16-float AVX-512 ones when the CPU has them), so
 * it is what one core sustains here, not a datasheet figure. Then each
 * matrix product of the models through the chosen kernel (pd__sgemm, i.e.
 * oneDNN) and through OpenBLAS for comparison, and LeNet's convolutions as
 * the oneDNN primitives run them (flops of the direct convolution). Prints
 * a markdown table headed by the CPU model, and "BENCH kernel" lines.
 * Times are the thread's CPU time, so that other work on the machine
 * slows the figures less; each is the best of 3. */
#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/src/ml/kernels_internal.h"
#include "pando/kernels.h"
#include "pando/util.h"

#define CHAINS 12

static double seconds_per_test = 0.5;

/* This thread's CPU seconds: other processes on the same cores (a busy
 * machine) do not count, as they would in wall time. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 2 x lanes x CHAINS flops per iteration, no memory traffic: CHAINS
 * independent accumulators in registers, more than an FMA's latency times
 * the FMA units, so the loop runs at the units' throughput. */
#define FMA_LOOP(vec, set1, fmadd, store, lanes)                                                   \
  vec a = set1(0.999999f), b = set1(1e-7f);                                                        \
  vec c0 = set1(0), c1 = set1(1), c2 = set1(2), c3 = set1(3), c4 = set1(4), c5 = set1(5);          \
  vec c6 = set1(6), c7 = set1(7), c8 = set1(8), c9 = set1(9), c10 = set1(10), c11 = set1(11);      \
  for (long n = 0; n < iters; n++) {                                                               \
    c0 = fmadd(c0, a, b), c1 = fmadd(c1, a, b), c2 = fmadd(c2, a, b);                              \
    c3 = fmadd(c3, a, b), c4 = fmadd(c4, a, b), c5 = fmadd(c5, a, b);                              \
    c6 = fmadd(c6, a, b), c7 = fmadd(c7, a, b), c8 = fmadd(c8, a, b);                              \
    c9 = fmadd(c9, a, b), c10 = fmadd(c10, a, b), c11 = fmadd(c11, a, b);                          \
  }                                                                                                \
  vec all = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;                           \
  float out[lanes];                                                                                \
  store(out, all);                                                                                 \
  return out[0]

__attribute__((target("avx2,fma"))) static double fma_avx2(long iters) {
  FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps, 8);
}

__attribute__((target("avx512f"))) static double fma_avx512(long iters) {
  FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps, 16);
}

static volatile double sink;

/* The best of 3 runs of ~seconds_per_test each: GFLOP/s. */
static double peak(int lanes) {
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    long iters = 1 << 20, done = 0;
    double t0 = cpu_now();
    while (cpu_now() - t0 < seconds_per_test) {
      sink = lanes == 16 ? fma_avx512(iters) : fma_avx2(iters);
      done += iters;
    }
    double g = 2.0 * lanes * CHAINS * (double)done / (cpu_now() - t0) / 1e9;
    best = g > best ? g : best;
  }
  return best;
}

typedef struct shape {
  const char *name;
  char ta, tb;
  int m, n, k;
} shape;

/* GFLOP/s of C = op(A) op(B), best of 3; `blas` 1 for OpenBLAS. */
static double gemm(const shape *s, int blas, float *a, float *b, float *c) {
  int lda = s->ta == 'N' ? s->k : s->m, ldb = s->tb == 'N' ? s->n : s->k;
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    long calls = 0;
    double t0 = cpu_now();
    while (cpu_now() - t0 < seconds_per_test / 3 || calls < 2) {
      if (blas)
        cblas_sgemm(CblasRowMajor, s->ta == 'N' ? CblasNoTrans : CblasTrans,
                    s->tb == 'N' ? CblasNoTrans : CblasTrans, s->m, s->n, s->k, 1.0f, a, lda, b,
                    ldb, 0.0f, c, s->n);
      else
        pd__sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
      calls++;
    }
    double g = 2.0 * s->m * s->n * s->k * (double)calls / (cpu_now() - t0) / 1e9;
    best = g > best ? g : best;
  }
  return best;
}

/* GFLOP/s of a convolution pass (0 forward, 1 backward weights, 2 backward
 * weights and data), best of 3. */
static double conv(pd__conv *cv, int batch, int pass, float *x, float *w, float *y, float *dx) {
  double flops = 2.0 * batch * cv->filters * cv->channels * cv->kernel * cv->kernel *
                 cv->out_height * cv->out_width * (pass == 2 ? 2 : 1);
  float bias[64] = {0}, dbias[64];
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    long calls = 0;
    double t0 = cpu_now();
    while (cpu_now() - t0 < seconds_per_test / 3 || calls < 2) {
      if (pass == 0)
        pd__conv_forward(cv, x, batch, w, bias, y);
      else
        pd__conv_backward(cv, x, batch, w, y, w + 100000, dbias, pass == 2 ? dx : NULL);
      calls++;
    }
    double g = flops * (double)calls / (cpu_now() - t0) / 1e9;
    best = g > best ? g : best;
  }
  return best;
}

static void cpu_model(char *out, size_t len) {
  snprintf(out, len, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[256];
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
      snprintf(out, len, "%s", strchr(line, ':') + 2);
      out[strcspn(out, "\n")] = '\0';
      break;
    }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc > 1)
    seconds_per_test = atof(argv[1]);
  if (seconds_per_test <= 0) {
    fprintf(stderr, "usage: kernelbench [SECONDS]\n");
    return 2;
  }
  pd_kernels_set_threads(1);
  char cpu[128];
  cpu_model(cpu, sizeof cpu);
  int lanes = __builtin_cpu_supports("avx512f") ? 16 : 8;
  double top = peak(lanes);
  printf("One core of %s; math: %s\n\n", cpu, pd_kernels_describe());
  printf("| kernel, shape (batch 64) | chosen kernel (oneDNN) GFLOP/s | %% of peak | OpenBLAS "
         "GFLOP/s |\n| --- | --- | --- | --- |\n");
  printf("| FMA loop, %d-float vectors (the peak) | %.1f | 100%% | |\n", lanes, top);
  printf("BENCH kernel name=peak gflops=%.1f\n", top);
  static const shape shapes[] = {
      {"MLP layer 1 forward, 64x784 * 784x256", 'N', 'N', 64, 256, 784},
      {"MLP layer 1 weight gradient, 784x64 * 64x256", 'T', 'N', 784, 256, 64},
      {"MLP layer 2 input gradient, 64x10 * 10x256", 'N', 'T', 64, 256, 10},
      {"LeNet fc1 forward, 64x3136 * 3136x512", 'N', 'N', 64, 512, 3136},
      {"LeNet fc1 weight gradient, 3136x64 * 64x512", 'T', 'N', 3136, 512, 64},
      {"LeNet fc1 input gradient, 64x512 * 512x3136", 'N', 'T', 64, 3136, 512},
  };
  size_t most = (size_t)3136 * 3136;
  float *a = pd_xmalloc_aligned(most * sizeof(float)),
        *b = pd_xmalloc_aligned(most * sizeof(float));
  float *c = pd_xmalloc_aligned(most * sizeof(float));
  for (size_t i = 0; i < most; i++)
    a[i] = b[i] = c[i] = (float)(i % 13) * 0.01f;
  for (size_t i = 0; i < PD_ARRAY_SIZE(shapes); i++) {
    double mine = gemm(&shapes[i], 0, a, b, c), blas = gemm(&shapes[i], 1, a, b, c);
    printf("| sgemm: %s | %.1f | %.0f%% | %.1f |\n", shapes[i].name, mine, 100 * mine / top, blas);
    printf("BENCH kernel name=sgemm m=%d n=%d k=%d gflops=%.1f openblas=%.1f\n", shapes[i].m,
           shapes[i].n, shapes[i].k, mine, blas);
  }
  pd__conv conv1, conv2;
  pd__conv_init(&conv1, 1, 28, 28, 32, 5, 2);
  pd__conv_init(&conv2, 32, 14, 14, 64, 5, 2);
  const struct {
    const char *name;
    pd__conv *cv;
    int pass;
  } convs[] = {
      {"LeNet conv1 forward (1 -> 32 channels, 28x28)", &conv1, 0},
      {"LeNet conv1 weight gradient", &conv1, 1},
      {"LeNet conv2 forward (32 -> 64 channels, 14x14)", &conv2, 0},
      {"LeNet conv2 weight and input gradients", &conv2, 2},
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(convs); i++) {
    double g = conv(convs[i].cv, 64, convs[i].pass, a, b, c, c + most / 2);
    printf("| convolution: %s | %.1f | %.0f%% | |\n", convs[i].name, g, 100 * g / top);
    printf("BENCH kernel name=conv%zu gflops=%.1f\n", i, g);
  }
  pd__conv_close(&conv1);
  pd__conv_close(&conv2);
  free(c);
  free(b);
  free(a);
  return 0;
}
