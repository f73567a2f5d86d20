/* The Peer messages of a pipeline (proto/pando.proto "Peer"): a received
 * PeerTensor decoded with the zero-copy wire code and checked against what
 * the receiving stage runs, before its payload is copied; and a sent one's
 * header. Pure functions: the mailbox and the calls are the worker's
 * (services/worker/peer.c). */
#ifndef PANDO_PEER_H
#define PANDO_PEER_H

#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"
#include "pando/wire.h"

/* PeerTensor.tensor's field number, for pd_wire_decode and
 * pd_wire_tensor_header. */
#define PD_WIRE_PEER_TENSOR_FIELD 9

/* How a Peer/Send refused with UNAVAILABLE because the receiver has not
 * begun that stage yet (it loads its data) begins its message: the sender
 * tries again until its deadline. */
#define PD_PEER_NOT_READY "not ready:"

/* What a stage takes: its job, attempt, replica and place in the
 * pipeline, the widths of its input and output, and the mini-batches it may
 * be sent tensors of. */
typedef struct pd_peer_expect {
  const char *job;
  uint32_t attempt, replica;
  uint32_t stage, stages;
  uint32_t in_width, out_width; /* FORWARD tensors from stage - 1: in_width; BACKWARD: out_width */
  uint32_t micro_batches;       /* training.micro_batches m */
  int64_t clock;                /* the receiver's clock c: c and c + 1 are taken */
  uint64_t batch_rows[2];       /* rows of the mini-batches of clocks c and c + 1 (0: unknown,
                                   then any micro-batch size up to max_batch_rows) */
  uint64_t max_batch_rows;      /* the largest mini-batch a clock may have */
} pd_peer_expect;

/* Checks a decoded message (`msg`, its tensor `t` from pd_wire_decode in
 * deferred mode) against `e`. Returns 0, or a gRPC status with a message
 * naming the field and what was expected in `err`: FAILED_PRECONDITION for
 * another job, attempt or replica, INVALID_ARGUMENT for the rest (see
 * proto/pando.proto). On 0, *rows gets the tensor's rows. */
grpc_status_code pd_peer_check(const Pando__V1__PeerTensor *msg, const pd_wire_tensor *t,
                               const pd_peer_expect *e, uint64_t *rows, char *err, size_t errlen);

/* Decodes a PeerTensor from `bb` in deferred mode (the payload stays in
 * `bb`, for pd_wire_tensor_copy once the message is checked). Returns 0 with
 * *msg (free with pando__v1__peer_tensor__free_unpacked) or a negative
 * error with a message. */
int pd_peer_decode(grpc_byte_buffer *bb, Pando__V1__PeerTensor **msg, pd_wire_tensor *t, char *err,
                   size_t errlen);

/* The slice preceding a [rows, width] float32 payload of `msg` (its tensor
 * unset); send [header, payload]. */
grpc_slice pd_peer_header(const Pando__V1__PeerTensor *msg, uint64_t rows, uint32_t width);

#endif
