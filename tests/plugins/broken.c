/* Plugins that Pando must refuse, for the unit tests of plugin loading. The
 * Makefile builds this file once per defect into build/tests/plugins/:
 *   libbad_abi.so      (-DBROKEN_bad_abi)     a table of ABI version 99
 *   libno_entry.so     (-DBROKEN_no_entry)    no pando_plugin_entry symbol
 *   libno_gradient.so  (-DBROKEN_no_gradient) a table without gradient */
#include <stddef.h>

#include "pando/plugin.h"

static void *create(const pando_plugin_kv *config, int nconfig, int inputs, int outputs,
                    int max_batch, char *err, size_t errlen) {
  (void)config, (void)nconfig, (void)inputs, (void)outputs, (void)max_batch, (void)err,
      (void)errlen;
  return NULL;
}
static void destroy(void *model) { (void)model; }
static int tensors(void *model, pando_plugin_tensor *out, int cap) {
  (void)model, (void)out, (void)cap;
  return 0;
}
static void init(void *model, uint64_t seed, uint64_t begin, uint64_t end, float *out) {
  (void)model, (void)seed, (void)begin, (void)end, (void)out;
}
/* unused when the table leaves it out */
__attribute__((unused)) static float gradient(void *model, const float *params,
                                              const pando_plugin_batch *batch, float *grad) {
  (void)model, (void)params, (void)batch, (void)grad;
  return 0.0f;
}
static float predict(void *model, const float *params, const pando_plugin_batch *batch,
                     float *out) {
  (void)model, (void)params, (void)batch, (void)out;
  return 0.0f;
}
static int task(void *model) {
  (void)model;
  return PANDO_PLUGIN_CLASSIFY;
}

static const pando_plugin_v1 table = {
#ifdef BROKEN_bad_abi
    .abi_version = 99,
#else
    .abi_version = PANDO_PLUGIN_ABI_VERSION,
#endif
    .table_size = sizeof(pando_plugin_v1),
    .name = "broken",
    .create = create,
    .destroy = destroy,
    .tensors = tensors,
    .init = init,
#ifndef BROKEN_no_gradient
    .gradient = gradient,
#endif
    .predict = predict,
    .task = task,
};

#ifdef BROKEN_no_entry
const pando_plugin_v1 *pando_plugin_entry_misspelt(void);
const pando_plugin_v1 *pando_plugin_entry_misspelt(void) { return &table; }
#else
const pando_plugin_v1 *pando_plugin_entry(void) { return &table; }
#endif
