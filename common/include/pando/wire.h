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

/* The largest Tensor.data a Pando daemon accepts (64 MiB: 16 Mi float32
 * keys); a longer one is refused before anything is allocated for it.
 * pd_psclient sends chunks of 2 MB. Documented in proto/pando.proto. */
#define PD_WIRE_MAX_TENSOR_BYTES (64u << 20)

/* Limits of every received message (proto/pando.proto documents them):
 * strings at most PD_WIRE_MAX_STRING_BYTES, except a job spec (`spec_yaml`,
 * PD_WIRE_MAX_SPEC_BYTES); at most PD_WIRE_MAX_FIELDS field occurrences
 * (nested and packed values included: protobuf-c allocates a record for
 * each). */
#define PD_WIRE_MAX_STRING_BYTES 4096
#define PD_WIRE_MAX_SPEC_BYTES (1u << 20)
#define PD_WIRE_MAX_FIELDS 4096

/* Checks message `desc` in data[0, len) against the limits above and every
 * length against what is left of its enclosing field, without allocating:
 * what a server runs before protobuf-c unpacks a request. Returns 0,
 * -PD_ETOOBIG (a limit, named with the field in `err`) or -PD_EFORMAT. */
int pd_wire_check(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *desc,
                  char *err, size_t errlen);

/* A growable buffer, reused across messages to avoid page faults on hot
 * paths. Zero-initialise it; release it with pd_buf_free. Buffers of
 * PD_BUF_MAP_MIN bytes or more are mappings of their own, so freeing one
 * gives the memory back to the system at once (malloc keeps what it frees,
 * see pd_rpc_init). */
typedef struct pd_buf {
  void *data; /* 64-byte aligned */
  size_t cap; /* bytes allocated */
  int mapped; /* data is an mmap of cap bytes */
} pd_buf;

#define PD_BUF_MAP_MIN (1u << 20)

/* Makes sure `buf` holds at least `size` bytes (contents are not kept). */
void pd_buf_reserve(pd_buf *buf, size_t size);
/* Frees the buffer if it holds more than `keep` bytes: called after a large
 * request, so one oversized message does not pin its peak for ever. */
void pd_buf_trim(pd_buf *buf, size_t keep);
/* Frees the buffer's memory; it is empty (and reusable) afterwards. */
void pd_buf_free(pd_buf *buf);

/* Returns the slice of bytes that precede a payload of `payload_len` bytes:
 * `rest` packed (its tensor field must be unset) followed by field
 * `tensor_field` holding Tensor{dtype, shape[0..ndim), data}. The caller
 * sends [header, payload slice] as one message and unrefs the header. */
grpc_slice pd_wire_tensor_header(const ProtobufCMessage *rest, uint32_t tensor_field,
                                 enum pd_dtype dtype, const int64_t *shape, int ndim,
                                 size_t payload_len);

/* As pd_wire_tensor_header, for a payload encoded with codec `method`
 * (pando.v1.Codec, pando/codec.h) of block `block`: the Tensor also holds
 * its TensorCodec (field 190). Method 0 makes what pd_wire_tensor_header
 * makes. */
grpc_slice pd_wire_tensor_header_codec(const ProtobufCMessage *rest, uint32_t tensor_field,
                                       enum pd_dtype dtype, const int64_t *shape, int ndim,
                                       size_t payload_len, int method, uint32_t block);

/* What a decoded message's Tensor field held, apart from the data. */
typedef struct pd_wire_tensor {
  int present;                       /* the tensor field was in the message */
  int dtype;                         /* pando.v1.DType value */
  int ndim;                          /* entries of shape */
  int64_t shape[PD_TENSOR_MAX_DIMS]; /* the tensor's shape */
  void *data;                        /* where the payload was written; NULL if deferred */
  size_t data_len;                   /* payload bytes */
  size_t data_offset;                /* where the payload starts in the message */
  int codec;                         /* Tensor.codec.method (pando.v1.Codec); 0: none */
  uint64_t codec_block;              /* Tensor.codec.block */
} pd_wire_tensor;

/* Decodes message `desc` from `bb`. The payload of field `tensor_field`
 * (Tensor.data) is written to `dst` (at most `dst_cap` bytes; a longer
 * payload is an error) or, when `dst` is NULL, into `scratch` (grown as
 * needed). When both are NULL the payload is not copied (deferred): the
 * caller checks the message first and then copies the payload with
 * pd_wire_tensor_copy, so a refused message never costs an allocation of its
 * size. All other known fields are unpacked into *rest (free with
 * protobuf_c_message_free_unpacked); unknown fields are skipped. Every length
 * is checked against what is left of its enclosing field before it is used.
 * Returns 0, -PD_ETOOBIG for a payload over PD_WIRE_MAX_TENSOR_BYTES, or
 * -PD_EFORMAT, with a message in `err`; *rest is NULL on error. */
int pd_wire_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                   uint32_t tensor_field, void *dst, size_t dst_cap, pd_buf *scratch,
                   ProtobufCMessage **rest, pd_wire_tensor *tensor, char *err, size_t errlen);

/* Copies the payload of a message decoded in deferred mode (`t` from
 * pd_wire_decode of the same `bb`) to `dst`, which has room for
 * t->data_len bytes. Returns 0 or -PD_EFORMAT. */
int pd_wire_tensor_copy(grpc_byte_buffer *bb, const pd_wire_tensor *t, void *dst);

/* A slice that borrows `len` bytes at `data` (nothing is freed when it is
 * released). The memory must outlive every use of the slice. */
grpc_slice pd_wire_borrow(const void *data, size_t len);

#endif
