/* The decode path of every request a Pando server receives, as
 * rpc.c runs it for a typed handler: pd_wire_check, then protobuf-c. The first
 * byte picks the message type. A message the check passes must unpack, or be
 * refused by protobuf-c, without crashing or allocating beyond the limits. */
#include <string.h>

#include "fuzz.h"
#include "grpc/health/v1/health.pb-c.h"
#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/wire.h"

static const ProtobufCMessageDescriptor *const requests[] = {
    &pando__v1__pull_request__descriptor,
    &pando__v1__create_shard_request__descriptor,
    &pando__v1__drop_shard_request__descriptor,
    &pando__v1__stats_request__descriptor,
    &pando__v1__register_request__descriptor,
    &pando__v1__heartbeat_request__descriptor,
    &pando__v1__assignment_request__descriptor,
    &pando__v1__progress_report__descriptor,
    &pando__v1__submit_job_request__descriptor,
    &pando__v1__job_request__descriptor,
    &pando__v1__list_jobs_request__descriptor,
    &pando__v1__cluster_request__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    /* responses the daemons and pandoctl decode the same way */
    &pando__v1__assignment__descriptor,
    &pando__v1__job_status__descriptor,
    &pando__v1__list_jobs_response__descriptor,
    &pando__v1__cluster_response__descriptor,
    &pando__v1__push_response__descriptor,
    &pando__v1__stats_response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const ProtobufCMessageDescriptor *desc =
      requests[data[0] % (sizeof requests / sizeof requests[0])];
  char err[256] = "";
  int rc = pd_wire_check(data + 1, size - 1, desc, err, sizeof err);
  if (rc != 0) {
    if ((rc != -PD_EFORMAT && rc != -PD_ETOOBIG) || err[0] == '\0')
      abort();
    return 0;
  }
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
  if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
  return 0;
}
