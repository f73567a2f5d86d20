/* Tensor-carrying messages (PullResponse, PushRequest) on the wire without
 * copying the payload through protobuf-c. A message is sent as two slices:
 * a header (the other fields packed by protobuf-c, then the Tensor field's
 * tag, lengths, dtype and shape) and the payload itself, so the bytes on the
 * wire are an ordinary protobuf message. Received messages are parsed as a
 * stream over gRPC's slices: the payload is copied once, straight into its
 * destination, and every other field is unpacked by protobuf-c. */
#ifndef PANDO_WIRE_H
#define PANDO_WIRE_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Most dimensions of a tensor on the wire. */
#define PD_TENSOR_MAX_DIMS 4

/* Element types of a Tensor. */
enum pd_dtype {
  PD_DTYPE_FLOAT32 = 1, /* matches pando.v1.DType FLOAT32 */
};

/* The field numbers of the Tensor fields in proto/pando.proto, for
 * pd_wire_tensor_header and pd_wire_decode (tests/unit/common/test_rpc.c
 * checks them against the generated descriptors). */
#define PD_WIRE_PULL_VALUES_FIELD 2   /* PullResponse.values */
#define PD_WIRE_PUSH_GRADIENT_FIELD 6 /* PushRequest.gradient */

/* A growable buffer, reused across messages to avoid page faults on hot
 * paths. Zero-initialise it; free `data` with free(). */
typedef struct pd_buf {
  void *data; /* 64-byte aligned */
  size_t cap; /* bytes allocated */
} pd_buf;

/* Makes sure `buf` holds at least `size` bytes (contents are not kept). */
void pd_buf_reserve(pd_buf *buf, size_t size);

/* Returns the slice of bytes that precede a payload of `payload_len` bytes:
 * `rest` packed (its tensor field must be unset) followed by field
 * `tensor_field` holding Tensor{dtype, shape[0..ndim), data}. The caller
 * sends [header, payload slice] as one message and unrefs the header. */
grpc_slice pd_wire_tensor_header(const ProtobufCMessage *rest, uint32_t tensor_field,
                                 enum pd_dtype dtype, const int64_t *shape, int ndim,
                                 size_t payload_len);

/* What a decoded message's Tensor field held, apart from the data. */
typedef struct pd_wire_tensor {
  int present;                       /* the tensor field was in the message */
  int dtype;                         /* pando.v1.DType value */
  int ndim;                          /* entries of shape */
  int64_t shape[PD_TENSOR_MAX_DIMS]; /* the tensor's shape */
  void *data;                        /* where the payload was written */
  size_t data_len;                   /* payload bytes */
} pd_wire_tensor;

/* Decodes message `desc` from `bb`. The payload of field `tensor_field`
 * (Tensor.data) is written to `dst` (at most `dst_cap` bytes; a longer
 * payload is an error) or, when `dst` is NULL, into `scratch` (grown as
 * needed). All other fields are unpacked into *rest (free with
 * protobuf_c_message_free_unpacked). Returns 0, or -PD_EFORMAT with a message
 * in `err`. */
int pd_wire_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                   uint32_t tensor_field, void *dst, size_t dst_cap, pd_buf *scratch,
                   ProtobufCMessage **rest, pd_wire_tensor *tensor, char *err, size_t errlen);

/* A slice that borrows `len` bytes at `data` (nothing is freed when it is
 * released). The memory must outlive every use of the slice. */
grpc_slice pd_wire_borrow(const void *data, size_t len);

#endif
