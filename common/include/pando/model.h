/* Models over a flat float32 parameter vector (the job's key space): linear
 * and logistic regression (dense or sparse input), softmax regression, MLPs,
 * a LeNet-style CNN, and user plugins (pando/plugin.h). Dense math goes
 * through OpenBLAS. */
#ifndef PANDO_MODEL_H
#define PANDO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "pando/dataset.h"
#include "pando/spec.h"

/* Most parameter tensors a model may have (a plugin with more is refused). */
#define PD_MODEL_MAX_TENSORS 64

/* One named parameter tensor and where it lives in the flat key space. The
 * tensor's values are the keys [offset, offset + size), row-major in `shape`. */
typedef struct pd_param_info {
  char name[32];    /* "layer0.weight", "conv1.bias", or a plugin's own name */
  int ndim;         /* dimensions used in shape[]: 1 (biases) to 4 (conv weights) */
  int64_t shape[4]; /* dense weights: [fan_in, fan_out]; biases: [fan_out];
                       conv weights: [filters, channels, kernel_h, kernel_w];
                       entries past ndim are 0 */
  uint64_t offset;  /* first key */
  uint64_t size;    /* number of keys: the product of the shape */
} pd_param_info;

typedef struct pd_model pd_model;

/* What evaluation measures: mean loss always; accuracy for classifiers
 * (softmax, mlp, logreg, lenet, classifying plugins); RMSE for linreg and
 * regressing plugins. */
typedef struct pd_eval {
  double loss;     /* mean loss over the rows */
  double accuracy; /* fraction of rows classified right (classifiers), else 0 */
  double rmse;     /* root mean squared error (regression), else 0 */
} pd_eval;

/* Makes a model for `spec` with scratch space for batches of up to
 * `max_batch` rows (`spec` is copied). A plugin's shared object is loaded
 * here. Returns NULL with a message in `err` (naming model.path and the
 * problem: missing file or symbol, wrong ABI version, the plugin's own
 * complaint) on failure. The scratch space makes a model usable by one thread
 * at a time (LeNet's, ~0.4 MB a row at 28 x 28, stops growing at 128 rows:
 * larger batches run in parts). A built-in model's spec must be valid
 * (pd_job_spec_validate); a bad one aborts. */
pd_model *pd_model_new(const pd_model_spec *spec, int max_batch, char *err, size_t errlen);
/* Which plugin shared objects pd_model_new/_layout/_init_range may load:
 * NULL allows any path (standalone mode: the user's own process), "" none
 * (the default: a daemon would run code named by whoever submits a job), and
 * a folder only the files under it. Call it once at start-up. */
void pd_model_allow_plugins(const char *dir);

/* Frees `model`, its scratch space and its plugin; NULL is a no-op. */
void pd_model_free(pd_model *model);

/* Seeds the model's own randomness (dropout masks) and restarts its count of
 * pd_model_gradient calls: the masks depend only on (seed, calls since the
 * seed was set). Workers seed with their rank + 1 so that their masks differ.
 * A new model is seeded with 0. */
void pd_model_set_seed(pd_model *model, uint64_t seed);

/* Number of float32 parameters K (the job's key space is [0, K)). */
uint64_t pd_model_num_params(const pd_model *model);
/* Parameter tensors in key order; `*count` receives their number. The array
 * belongs to the model. */
const pd_param_info *pd_model_params(const pd_model *model, int *count);
/* The same layout without building a model (plugins are loaded to ask them).
 * Writes at most `cap` tensors to `out` (`out` may be NULL when `cap` is 0)
 * and K to `*num_params` (may be NULL); returns the number of tensors
 * written, or a negative error with a message in `err`. */
int pd_model_layout(const pd_model_spec *spec, pd_param_info *out, int cap, uint64_t *num_params,
                    char *err, size_t errlen);

/* Writes the seeded initial values of keys [begin, end) into `out`. Each key's
 * value depends only on (seed, key), so any shard can initialise itself:
 * weights He-normal N(0, 2/fan_in) (conv weights: fan_in = channels x
 * kernel_h x kernel_w), biases 0 (plugins: their own rule). Returns 0 or a
 * negative error with a message (a plugin that cannot load). */
int pd_model_init_range(const pd_model_spec *spec, uint64_t begin, uint64_t end, float *out,
                        char *err, size_t errlen);

/* Computes the mean loss of the rows of `batch` (dense or sparse, as the
 * model takes; 1 <= batch->rows <= max_batch; batch->cols = the model's
 * inputs) at parameters `params` (K floats) and writes the gradient of that
 * mean loss to `grad` (K floats, overwritten). Dropout is active. Classes come
 * from batch->labels (else batch->targets); logreg's 0/1 labels from
 * batch->labels, else targets > 0.5; linreg's targets from batch->targets,
 * else the labels. A label out of range aborts. Returns the mean loss. */
float pd_model_gradient(pd_model *model, const float *params, const pd_dataset *batch, float *grad);

/* Evaluates `params` on all rows of `data` (any number; done in chunks of
 * max_batch rows, dropout off). Everything is 0 for an empty dataset. */
void pd_model_evaluate(pd_model *model, const float *params, const pd_dataset *data, pd_eval *out);

#endif
