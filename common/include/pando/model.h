/* Models: softmax regression and MLPs over a flat float32 parameter vector
 * (the job's key space). Dense math goes through OpenBLAS. */
#ifndef PANDO_MODEL_H
#define PANDO_MODEL_H

#include <stdint.h>

#include "pando/spec.h"
#include "pando/tensor.h"

/* One named parameter tensor and where it lives in the flat key space. */
typedef struct pd_param_info {
  char name[32];   /* "layer0.weight", "layer0.bias", ... */
  int ndim;        /* 2 for weights, 1 for biases */
  int64_t shape[2];/* weights: [fan_in, fan_out] row-major; biases: [fan_out] */
  uint64_t offset; /* first key */
  uint64_t size;   /* number of keys */
} pd_param_info;

typedef struct pd_model pd_model;

/* Makes a model for `spec` with scratch space for batches of up to
 * `max_batch` rows. `spec` is copied and must be valid (a bad spec aborts).
 * The scratch space makes a model usable by one thread at a time. */
pd_model *pd_model_new(const pd_model_spec *spec, int max_batch);
/* Frees `model` and its scratch space; NULL is a no-op. */
void pd_model_free(pd_model *model);

/* Number of float32 parameters K (the job's key space is [0, K)). */
uint64_t pd_model_num_params(const pd_model *model);
/* Parameter tensors in key order; `*count` receives their number. */
const pd_param_info *pd_model_params(const pd_model *model, int *count);
/* The same layout without building a model (no scratch memory). Returns the
 * number of tensors written to `out` (at most `cap`), and K in `*num_params`. */
int pd_model_layout(const pd_model_spec *spec, pd_param_info *out, int cap, uint64_t *num_params);

/* Writes the seeded initial values of keys [begin, end) into `out`. Each key's
 * value depends only on (seed, key), so any shard can initialise itself:
 * weights He-normal N(0, 2/fan_in), biases 0. */
void pd_model_init_range(const pd_model_spec *spec, uint64_t begin, uint64_t end, float *out);

/* Computes the mean softmax cross-entropy loss of `batch` rows `x` (row-major,
 * batch x inputs) with labels `y` at parameters `params` (K floats), and
 * writes the gradient of that mean loss to `grad` (K floats, overwritten).
 * 1 <= `batch` <= max_batch and every label must be < the number of classes
 * (checked with an assert). Returns the mean loss. */
float pd_model_gradient(pd_model *model, const float *params, const float *x, const uint8_t *y,
                        int batch, float *grad);

/* Mean loss and accuracy of `params` on `n` rows (any n; done in chunks of
 * max_batch rows). Both are 0 when n is 0. */
void pd_model_evaluate(pd_model *model, const float *params, const float *x, const uint8_t *y,
                       uint64_t n, double *loss, double *accuracy);

#endif
