/* Tensor helpers. */
#include "pando/tensor.h"

#include "pando/error.h"

int64_t pd_tensor_numel(const pd_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

int pd_dtype_size(enum pd_dtype dtype) {
  PD_ASSERT(dtype == PD_DTYPE_FLOAT32);
  return 4;
}
