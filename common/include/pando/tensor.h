/* Dense tensors as plain, visible structs. Parameters and gradients of a job
 * are flat float32 vectors over the key space [0, K); a pd_tensor describes
 * one named piece of it or a tensor received from the wire. */
#ifndef PANDO_TENSOR_H
#define PANDO_TENSOR_H

#include <stdint.h>

#define PD_TENSOR_MAX_DIMS 4

enum pd_dtype {
  PD_DTYPE_FLOAT32 = 1, /* matches pando.v1.DType.FLOAT32 */
};

typedef struct pd_tensor {
  enum pd_dtype dtype;                 /* element type */
  int ndim;                            /* number of dimensions, 0..PD_TENSOR_MAX_DIMS */
  int64_t shape[PD_TENSOR_MAX_DIMS];   /* extent of each dimension */
  int64_t strides[PD_TENSOR_MAX_DIMS]; /* elements between neighbours of each dimension */
  void *data;                          /* first element; owned by whoever made the tensor */
} pd_tensor;

/* Number of elements (product of the shape; 1 for ndim 0). */
int64_t pd_tensor_numel(const pd_tensor *t);
/* Size in bytes of one element of `dtype`. */
int pd_dtype_size(enum pd_dtype dtype);

#endif
