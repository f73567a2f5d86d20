/* The math backend of the layers (private to libpando): matrix products and
 * convolutions, whichever library computes them. layers.c and model.c call
 * only these; kernels.c alone knows oneDNN and OpenBLAS. Names pd__. */
#ifndef PANDO_KERNELS_INTERNAL_H
#define PANDO_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* C[m x n] = alpha op(A) op(B) + beta C, all row-major; transa and transb
 * are 'N' or 'T' (op(A) is [m x k], op(B) [k x n]). */
void pd__sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc);

/* ---- convolution, stride 1, square kernel, zero padding, NCHW data:
 * x[((b * channels + c) * height + h) * width + w] is channel c of sample b
 * (a batch of rows is NCHW as it is); weights [filters x channels x kernel x
 * kernel]. */

typedef struct pd__conv_plan pd__conv_plan; /* primitives for one batch size */

typedef struct pd__conv {
  int channels, height, width; /* input planes */
  int filters, kernel, pad;    /* weight [filters x channels x kernel x kernel] */
  int out_height, out_width;   /* height + 2 pad - kernel + 1, likewise width */
  pd__conv_plan *plans;        /* made on first use by batch size, freed by pd__conv_close */
  uint64_t plan_uses;          /* calls so far: which plan was used least recently */
} pd__conv;

/* Fills `conv` (no primitives yet): the output sizes from the rest. */
void pd__conv_init(pd__conv *conv, int channels, int height, int width, int filters, int kernel,
                   int pad);
/* Frees the primitives made for `conv`. */
void pd__conv_close(pd__conv *conv);
/* y (NCHW, filters planes per sample) = conv(x) + bias. A pd__conv (its
 * cached primitives) is used by one thread at a time. */
void pd__conv_forward(pd__conv *conv, const float *x, int batch, const float *weight,
                      const float *bias, float *y);
/* From dy = dL/dy (NCHW): dweight, dbias (overwritten), and dx when not
 * NULL. */
void pd__conv_backward(pd__conv *conv, const float *x, int batch, const float *weight,
                       const float *dy, float *dweight, float *dbias, float *dx);

/* Makes the calling thread's math single-threaded (the libraries' own
 * thread pools stay off: Pando's compute threads split the batch instead).
 * The functions above call it themselves; cheap after the first call. */
void pd__kernels_thread_init(void);

#endif
