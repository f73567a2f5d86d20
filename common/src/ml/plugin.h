/* Private to the models (common/src/ml): loading and running plugins, the
 * user models of pando/plugin.h. Never included from outside common/src/ml. */
#ifndef PANDO_ML_PLUGIN_H
#define PANDO_ML_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "pando/dataset.h"
#include "pando/model.h"
#include "pando/plugin.h"
#include "pando/spec.h"

/* A loaded plugin and one instance (handle) of its model. */
typedef struct pd__plugin {
  void *library;              /* from dlopen */
  const pando_plugin_v1 *api; /* its table, checked */
  void *handle;               /* from api->create */
} pd__plugin;

/* Loads model.path (if pd_model_allow_plugins allows it), checks its table
 * and makes an instance for batches of `max_batch` rows. Returns 0, or
 * -PD_EINVAL_SPEC with a message naming model.path or model.config (p is
 * then zeroed). */
int pd__plugin_open(const pd_model_spec *spec, int max_batch, pd__plugin *p, char *err,
                    size_t errlen);
/* Destroys the instance and unloads the library; a zeroed p is fine. */
void pd__plugin_close(pd__plugin *p);

/* Tests only: `hook` (NULL: none) runs with model.path after the plugin file
 * was checked and opened and before it is loaded, where an attacker would
 * swap it. */
void pd__plugin_set_checked_hook(void (*hook)(const char *path));
/* The parameter tensors of an open plugin's model into `tensors` (room for
 * PD_MODEL_MAX_TENSORS), checked: 1 to PD_MODEL_MAX_TENSORS of them, shapes
 * of 1 to PANDO_PLUGIN_MAX_DIMS positive dimensions, at most 2^40 keys in
 * all. Returns their number or -PD_EINVAL_SPEC with a message. */
int pd__plugin_tensors(const pd_model_spec *spec, const pd__plugin *p, pando_plugin_tensor *tensors,
                       char *err, size_t errlen);
/* A batch of `d` as the plugin ABI passes it (borrowing d's arrays). */
pando_plugin_batch pd__plugin_batch(const pd_dataset *d);

#endif
