/* The layers models are made of, forward and backward: affine (dense and
 * sparse input), activations, dropout, convolution, max-pooling and the
 * losses. Private to libpando (model.c and its unit tests); names pd__.
 *
 * Conventions. Batches are row-major [rows x width] unless said otherwise.
 * Convolution data is NCHW: a row is its channels' planes one after the
 * other, so a batch of rows is NCHW as it is. A backward function writes the whole of
 * each gradient it is given (overwrites, never accumulates). */
#ifndef PANDO_LAYERS_H
#define PANDO_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels_internal.h"
#include "pando/dataset.h"
#include "pando/spec.h"

/* ---- affine: y = x W + b, W [fan_in x fan_out] row-major */

/* y[rows x fan_out] = x[rows x fan_in] W + b. */
void pd__affine_forward(const float *x, int rows, int fan_in, const float *weight,
                        const float *bias, int fan_out, float *y);
/* From dy = dL/dy [rows x fan_out]: dweight = x^T dy, dbias = column sums of
 * dy, and dx = dy W^T [rows x fan_in] when dx is not NULL. */
void pd__affine_backward(const float *x, int rows, int fan_in, const float *weight, int fan_out,
                         const float *dy, float *dweight, float *dbias, float *dx);
/* The same for the CSR rows of `x` (x->cols = fan_in, x->rows rows): only the
 * rows of W of non-zero features are read. */
void pd__affine_forward_sparse(const pd_dataset *x, const float *weight, const float *bias,
                               int fan_out, float *y);
/* dweight (all fan_in x fan_out of it) is zeroed and only the rows of
 * non-zero features get sums; no dx (sparse inputs are never a hidden layer). */
void pd__affine_backward_sparse(const pd_dataset *x, int fan_out, const float *dy, float *dweight,
                                float *dbias);

/* ---- activations, in place */

/* z = act(z) for n values. */
void pd__activation_forward(enum pd_activation activation, float *z, size_t n);
/* delta *= act'(z), written in terms of the output a = act(z). */
void pd__activation_backward(enum pd_activation activation, float *delta, const float *a, size_t n);

/* ---- inverted dropout */

/* Fills mask[0 .. n) with 0 (dropped, probability `rate`) or 1 / (1 - rate)
 * (kept): mask[i] from a counter-based hash of (seed, stream, first + i), so
 * the same arguments give the same mask, and a slice of a mask (first > 0)
 * is the same as that part of the whole. */
void pd__dropout_mask(uint64_t seed, uint64_t stream, float rate, uint64_t first, float *mask,
                      size_t n);
/* x *= mask element-wise: dropout forward, and its backward on dL/dy. */
void pd__dropout_apply(float *x, const float *mask, size_t n);

/* ---- convolution: pd__conv and its functions in kernels_internal.h */

/* ---- max-pooling 2 x 2, stride 2, over `planes` contiguous planes */

/* y[planes x height/2 x width/2] = max of each 2 x 2 window of x; argmax
 * records which of the 4 (row-major) won. height and width must be even. */
void pd__maxpool2_forward(const float *x, size_t planes, int height, int width, float *y,
                          uint8_t *argmax);
/* dx = dy routed to each window's winner (the other 3 get 0). */
void pd__maxpool2_backward(const float *dy, const uint8_t *argmax, size_t planes, int height,
                           int width, float *dx);

/* ---- losses. Each takes the model's outputs in `out`, returns the SUM of
 * the rows' losses, and overwrites `out` with grad_scale x dL_row/d(out)
 * (grad_scale = 1/rows gives the gradient of the mean loss). */

/* Softmax cross-entropy of logits [rows x classes] and labels (each <
 * classes). *correct (may be NULL) gets the number of rows whose largest
 * logit is the label's (the first largest wins a tie). */
double pd__softmax_ce(float *out, int rows, int classes, const int *labels, float grad_scale,
                      uint64_t *correct);
/* 0.5 (y - out)^2 per row, out [rows x 1]; *sq_err (may be NULL) gets the sum
 * of (y - out)^2. */
double pd__squared_loss(float *out, int rows, const float *y, float grad_scale, double *sq_err);
/* Binary cross-entropy of sigmoid(out), out [rows x 1] logits, y in {0, 1};
 * *correct (may be NULL) counts rows with (out > 0) == y. */
double pd__logistic_loss(float *out, int rows, const float *y, float grad_scale, uint64_t *correct);

#endif
