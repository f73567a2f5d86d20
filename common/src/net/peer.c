/* PeerTensor decoding and checks; see pando/peer.h. */
#include "pando/peer.h"

#include <stdio.h>
#include <string.h>

#include "pando/error.h"
#include "pando/pipeline.h"
#include "pando/util.h"

int pd_peer_decode(grpc_byte_buffer *bb, Pando__V1__PeerTensor **msg, pd_wire_tensor *t, char *err,
                   size_t errlen) {
  ProtobufCMessage *rest = NULL;
  int rc = pd_wire_decode(bb, &pando__v1__peer_tensor__descriptor, PD_WIRE_PEER_TENSOR_FIELD, NULL,
                          0, NULL, &rest, t, err, errlen);
  *msg = (Pando__V1__PeerTensor *)rest;
  return rc;
}

grpc_slice pd_peer_header(const Pando__V1__PeerTensor *msg, uint64_t rows, uint32_t width) {
  int64_t shape[2] = {(int64_t)rows, (int64_t)width};
  return pd_wire_tensor_header(&msg->base, PD_WIRE_PEER_TENSOR_FIELD, PD_DTYPE_FLOAT32, shape, 2,
                               (size_t)(rows * width * sizeof(float)));
}

#define REFUSE(code, ...) (snprintf(err, errlen, __VA_ARGS__), (code))

grpc_status_code pd_peer_check(const Pando__V1__PeerTensor *msg, const pd_wire_tensor *t,
                               const pd_peer_expect *e, uint64_t *rows, char *err, size_t errlen) {
  const grpc_status_code precondition = GRPC_STATUS_FAILED_PRECONDITION,
                         invalid = GRPC_STATUS_INVALID_ARGUMENT;
  if (!e->job || strcmp(msg->job, e->job) != 0)
    return REFUSE(precondition, "job: this worker runs no pipeline stage of job '%.96s'", msg->job);
  if (msg->attempt != e->attempt)
    return REFUSE(precondition, "attempt: %u, but this stage runs attempt %u of job %s",
                  msg->attempt, e->attempt, e->job);
  if (msg->replica != e->replica)
    return REFUSE(precondition, "replica: %u, but this stage belongs to replica %u", msg->replica,
                  e->replica);
  uint32_t width;
  if (msg->direction == PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD) {
    if (e->stage == 0 || msg->from_stage != e->stage - 1)
      return REFUSE(invalid,
                    "from_stage: activations from stage %u, but stage %u takes them "
                    "from %s",
                    msg->from_stage, e->stage, e->stage == 0 ? "the data" : "stage - 1");
    width = e->in_width;
  } else if (msg->direction == PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_BACKWARD) {
    if (e->stage + 1 >= e->stages || msg->from_stage != e->stage + 1)
      return REFUSE(invalid,
                    "from_stage: gradients from stage %u, but stage %u of %u takes them "
                    "from %s",
                    msg->from_stage, e->stage, e->stages,
                    e->stage + 1 >= e->stages ? "the loss" : "stage + 1");
    width = e->out_width;
  } else {
    return REFUSE(invalid, "direction: must be FORWARD or BACKWARD, got %d", (int)msg->direction);
  }
  if (msg->clock < e->clock || msg->clock > e->clock + 1)
    return REFUSE(invalid, "clock: %lld, but this stage takes clocks %lld and %lld",
                  (long long)msg->clock, (long long)e->clock, (long long)e->clock + 1);
  uint64_t batch = e->batch_rows[msg->clock - e->clock];
  uint32_t count = batch ? pd_pipeline_micro_count(batch, e->micro_batches) : 0;
  if (msg->micro_batches < 1 || msg->micro_batches > e->micro_batches ||
      (count && msg->micro_batches != count))
    return REFUSE(invalid, "micro_batches: %u, but clock %lld has %u micro-batches (at most %u)",
                  msg->micro_batches, (long long)msg->clock, count, e->micro_batches);
  if (msg->micro >= msg->micro_batches)
    return REFUSE(invalid, "micro: %u, but the mini-batch has %u micro-batches", msg->micro,
                  msg->micro_batches);
  if (!t->present || t->dtype != PANDO__V1__DTYPE__DTYPE_FLOAT32 || t->ndim != 2)
    return REFUSE(invalid, "tensor: must be float32 [rows, %u]", width);
  uint64_t lo = 1, hi = (e->max_batch_rows + msg->micro_batches - 1) / msg->micro_batches;
  if (batch) {
    pd_pipeline_micro_rows(batch, count, msg->micro, &lo, &hi);
    hi = hi - lo;
    lo = hi;
  }
  if (t->shape[1] != (int64_t)width || t->shape[0] < (int64_t)lo || t->shape[0] > (int64_t)hi)
    return REFUSE(invalid,
                  "tensor.shape: [%lld, %lld], but micro-batch %u of clock %lld is [%llu%s%llu, "
                  "%u]",
                  (long long)t->shape[0], (long long)t->shape[1], msg->micro, (long long)msg->clock,
                  (unsigned long long)lo, lo == hi ? "" : " .. ",
                  lo == hi ? 0ull : (unsigned long long)hi, width);
  if (t->data_len != (size_t)t->shape[0] * width * sizeof(float))
    return REFUSE(invalid, "tensor.data: %zu bytes, but shape [%lld, %u] float32 needs %zu",
                  t->data_len, (long long)t->shape[0], width,
                  (size_t)t->shape[0] * width * sizeof(float));
  *rows = (uint64_t)t->shape[0];
  return GRPC_STATUS_OK;
}
