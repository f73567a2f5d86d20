/* The safetensors format (Hugging Face): an 8-byte little-endian header
 * length, a JSON header mapping each tensor's name to its dtype, shape and
 * [begin, end) byte offsets into the data that follows, then the raw
 * little-endian data. Pando writes a model's parameter tensors (float32,
 * "F32") in key order, so the data is exactly the job's key space. */
#ifndef PANDO_SAFETENSORS_H
#define PANDO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "pando/model.h"

/* Writes the `n` tensors of `params` (a model layout: pd_model_layout) with
 * their values taken from `values` (the whole key space, indexed by key) to
 * `path` durably (temporary file, fsync, rename). `metadata_job` (may be
 * NULL) is recorded as the header's __metadata__ {"pando.job": ...}.
 * Returns 0 or -errno with a message naming the file in `err`. */
int pd_safetensors_write(const char *path, const pd_param_info *params, int n, const float *values,
                         const char *metadata_job, char *err, size_t errlen);

/* Reads keys [begin, end) of the model `params` (`n` tensors of a layout)
 * from the safetensors file `path` into `out`: each tensor of the layout
 * must be in the file under its name, as F32 with the same shape (other
 * tensors of the file are ignored). Returns 0, or -errno / -PD_EFORMAT with
 * a message naming the file and the tensor in `err`. */
int pd_safetensors_read_range(const char *path, const pd_param_info *params, int n, uint64_t begin,
                              uint64_t end, float *out, char *err, size_t errlen);

#endif
