/* The C ABI of user-defined models (model.type: plugin). A plugin is a shared
 * object, named by model.path, that exports one function:
 *
 *   const pando_plugin_v1 *pando_plugin_entry(void);
 *
 * returning a table of functions (below) that stays valid until the object
 * is unloaded. Pando reads `abi_version` first and refuses a table of another
 * version, so every future version of the table starts with the same field.
 * This header is all a plugin needs: it does not depend on the rest of Pando
 * and a plugin links nothing of Pando's. examples/plugin/ has a complete one
 * (a factorization machine); build it with
 *
 *   cc -std=c11 -O2 -fPIC -shared -Icommon/include -o libmine.so mine.c -lm
 *
 * Keys. Pando lays the plugin's parameter tensors out one after the other in
 * the order `tensors` gives them: tensor 0 is keys [0, size0), tensor 1 the
 * next size1 keys, and so on; K is the sum of the sizes. Parameters and
 * gradients are flat float32 arrays of K values in that order; each tensor
 * row-major in its shape.
 *
 * Ownership. Pando owns every array it passes (`params`, `batch` and its
 * arrays, `grad`, `out`, the config strings) and lends them for the length of
 * one call only; a plugin copies what it wants to keep. The plugin owns its
 * model handle (made by `create`, freed by `destroy`) and everything in it.
 *
 * Threads and instances. Pando calls the functions of one handle from one
 * thread at a time, but may hold several handles at once, on several threads
 * (a parameter server and the coordinator create short-lived ones just to
 * read the layout or initialise a key range). So a plugin keeps its state in
 * its handle, never in mutable globals, and must be loadable more than once
 * in a process. Functions return errors only where their type says so; they
 * must not exit or abort on bad input a user can cause. */
#ifndef PANDO_PLUGIN_H
#define PANDO_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

/* The version of the table this header describes. */
#define PANDO_PLUGIN_ABI_VERSION 1
/* The name of the one symbol a plugin exports. */
#define PANDO_PLUGIN_ENTRY "pando_plugin_entry"
/* Most dimensions of a tensor and longest tensor name (with its NUL). */
#define PANDO_PLUGIN_MAX_DIMS 4
#define PANDO_PLUGIN_NAME_MAX 32

/* One line of model.config in the job spec ("factors: 8" gives key "factors",
 * value "8"), values as written. */
typedef struct pando_plugin_kv {
  const char *key;
  const char *value;
} pando_plugin_kv;

/* One parameter tensor. */
typedef struct pando_plugin_tensor {
  char name[PANDO_PLUGIN_NAME_MAX];     /* shown in logs, e.g. "factors" */
  int ndim;                             /* 1..PANDO_PLUGIN_MAX_DIMS */
  int64_t shape[PANDO_PLUGIN_MAX_DIMS]; /* extents, each >= 1; the product is its key count */
} pando_plugin_tensor;

/* A batch of examples, dense or sparse (CSR). Dense: `features` holds rows x
 * cols values, row-major, and the CSR arrays are NULL. Sparse: `features` is
 * NULL and row i's non-zeros are col_idx[p], values[p] for p in
 * [row_ptr[i], row_ptr[i + 1]) (row_ptr[0] need not be 0: index with it
 * directly). `labels` is NULL when the data has no classes; `targets` may be
 * NULL for classification data. */
typedef struct pando_plugin_batch {
  uint64_t rows;           /* examples, >= 1 and <= the max_batch given to create */
  uint32_t cols;           /* features per example (sparse: size of the feature space) */
  const float *features;   /* dense values, or NULL */
  const uint64_t *row_ptr; /* sparse: rows + 1 offsets, or NULL */
  const uint32_t *col_idx; /* sparse: feature of each non-zero, ascending within a row */
  const float *values;     /* sparse: value of each non-zero */
  const uint8_t *labels;   /* class of each row, or NULL */
  const float *targets;    /* number to predict for each row, or NULL */
} pando_plugin_batch;

/* What `predict` writes and how Pando scores it. */
enum pando_plugin_task {
  PANDO_PLUGIN_CLASSIFY = 1, /* predict writes the class of each row; Pando reports accuracy */
  PANDO_PLUGIN_REGRESS = 2,  /* predict writes a number per row; Pando reports RMSE vs targets */
};

/* The table a plugin returns. Every function is required except set_seed. */
typedef struct pando_plugin_v1 {
  uint32_t abi_version; /* PANDO_PLUGIN_ABI_VERSION; always the first field */
  uint32_t table_size;  /* sizeof(pando_plugin_v1) as the plugin was compiled */
  const char *name;     /* the model's name, for messages */

  /* Makes a model for `inputs` features and `outputs` outputs (the spec's
   * model.layers) that takes batches of up to `max_batch` rows, configured
   * by the `nconfig` lines of model.config. Returns the plugin's handle, or
   * NULL with a one-line message in `err` (`errlen` bytes, NUL-terminated)
   * naming the config key or value at fault. */
  void *(*create)(const pando_plugin_kv *config, int nconfig, int inputs, int outputs,
                  int max_batch, char *err, size_t errlen);
  /* Frees a handle made by create. */
  void (*destroy)(void *model);
  /* Writes the parameter tensors, in key order, to out[0 .. min(count, cap))
   * and returns their count (1..64). Must not change over a handle's life. */
  int (*tensors)(void *model, pando_plugin_tensor *out, int cap);
  /* Writes the initial values of keys [begin, end) to out[0 .. end - begin).
   * A key's value may depend only on (seed, key), so that every parameter
   * server can initialise its own range: cutting [0, K) into pieces must give
   * the same values as one call. */
  void (*init)(void *model, uint64_t seed, uint64_t begin, uint64_t end, float *out);
  /* Computes the mean loss of `batch` at `params` (K floats), writes the
   * gradient of that mean loss to `grad` (all K floats, overwritten) and
   * returns the loss. */
  float (*gradient)(void *model, const float *params, const pando_plugin_batch *batch, float *grad);
  /* Writes one prediction per row of `batch` to out[0 .. rows) (see task)
   * and returns the mean loss over the rows, as gradient would, with any
   * training-only randomness off. */
  float (*predict)(void *model, const float *params, const pando_plugin_batch *batch, float *out);
  /* Returns the handle's enum pando_plugin_task. */
  int (*task)(void *model);
  /* Optional (may be NULL): seeds the handle's own randomness (dropout and
   * the like); each worker seeds with its rank + 1. */
  void (*set_seed)(void *model, uint64_t seed);
} pando_plugin_v1;

/* The function a plugin defines (with default visibility). */
const pando_plugin_v1 *pando_plugin_entry(void);

#endif
