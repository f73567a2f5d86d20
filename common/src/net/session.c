/* Register + heartbeat with the coordinator, asynchronously; see session.h. */
#include "pando/session.h"

#include <stdlib.h>
#include <string.h>

#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/kernels.h"
#include "pando/log.h"
#include "pando/security.h"
#include "pando/util.h"

#define RPC_TIMEOUT_SEC 2.0
#define RETRY_SEC 0.5

struct pd_session {
  pd_loop *loop;
  pd_rpc_channel *channel;
  int role;
  char *address, *name;
  pd_session_changed changed;
  void *user;
  uint64_t node_id;
  char node_secret[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1]; /* RegisterResponse.node_secret */
  uint64_t memory_bytes;                                 /* RegisterRequest.memory_bytes */
  uint64_t generation;
  double heartbeat_sec;
  double next_due;
  int in_flight;
  int warned; /* logged that the coordinator is unreachable */
};

pd_session *pd_session_new(pd_loop *loop, const char *coordinator, int role, const char *address,
                           const char *name, pd_session_changed changed, void *user) {
  pd_session *s = pd_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->channel = pd_rpc_channel_new(coordinator, 0);
  s->role = role;
  s->address = pd_xstrdup(address);
  s->name = pd_xstrdup(name);
  s->changed = changed;
  s->user = user;
  s->heartbeat_sec = 0.2;
  return s;
}

void pd_session_free(pd_session *s) {
  if (!s)
    return;
  while (s->in_flight)
    pd_loop_run_once(s->loop, 1.0);
  pd_rpc_channel_free(s->channel);
  memset(s->node_secret, 0, sizeof s->node_secret);
  free(s->address);
  free(s->name);
  free(s);
}

uint64_t pd_session_node_id(const pd_session *s) { return s->node_id; }
const char *pd_session_node_secret(const pd_session *s) { return s->node_secret; }
pd_rpc_channel *pd_session_channel(pd_session *s) { return s->channel; }

static void call_failed(pd_session *s, const char *what, const pd_rpc_result *r) {
  if (!s->warned)
    PD_WARN("%s to coordinator %s failed: %s: %s (retrying)", what,
            pd_rpc_channel_target(s->channel), pd_rpc_status_name(r->status), r->details);
  s->warned = 1;
  s->next_due = pd_now() + RETRY_SEC;
}

static void register_done(const pd_rpc_result *r, void *user) {
  pd_session *s = user;
  s->in_flight = 0;
  if (r->status != GRPC_STATUS_OK) {
    call_failed(s, "RegisterNode", r);
    return;
  }
  ProtobufCMessage *msg = NULL;
  char err[256];
  if (pd_rpc_unpack(r->response, &pando__v1__register_response__descriptor, &msg, err,
                    sizeof err) != 0) {
    PD_WARN("coordinator %s: %s", pd_rpc_channel_target(s->channel), err);
    s->next_due = pd_now() + RETRY_SEC;
    return;
  }
  Pando__V1__RegisterResponse *resp = (Pando__V1__RegisterResponse *)msg;
  s->node_id = resp->node_id;
  pd_strlcpy(s->node_secret, resp->node_secret, sizeof s->node_secret);
  /* a new node's generations count from scratch: whatever the first
   * heartbeat says is a change (the old node's last value may recur) */
  s->generation = UINT64_MAX;
  if (resp->heartbeat_ms > 0)
    s->heartbeat_sec = resp->heartbeat_ms / 1000.0;
  s->warned = 0;
  s->next_due = pd_now();
  PD_INFO("registered with coordinator %s as node %llu", pd_rpc_channel_target(s->channel),
          (unsigned long long)s->node_id);
  pando__v1__register_response__free_unpacked(resp, NULL);
}

/* Drops the node id and secret: the next tick registers again. */
static void forget_node(pd_session *s) {
  s->node_id = 0;
  memset(s->node_secret, 0, sizeof s->node_secret);
  s->next_due = pd_now();
}

static void heartbeat_done(const pd_rpc_result *r, void *user) {
  pd_session *s = user;
  s->in_flight = 0;
  if (r->status == GRPC_STATUS_UNAUTHENTICATED && s->node_id != 0) {
    /* the coordinator does not know this id and secret (it restarted): a
     * new registration; a wrong cluster token fails that one too */
    PD_WARN("coordinator %s refused node %llu's heartbeat (%s): registering again",
            pd_rpc_channel_target(s->channel), (unsigned long long)s->node_id, r->details);
    forget_node(s);
    return;
  }
  if (r->status != GRPC_STATUS_OK) {
    call_failed(s, "Heartbeat", r);
    return;
  }
  if (s->warned)
    PD_INFO("coordinator %s reachable again", pd_rpc_channel_target(s->channel));
  s->warned = 0;
  ProtobufCMessage *msg = NULL;
  char err[256];
  if (pd_rpc_unpack(r->response, &pando__v1__heartbeat_response__descriptor, &msg, err,
                    sizeof err) != 0) {
    PD_WARN("coordinator %s: %s", pd_rpc_channel_target(s->channel), err);
    return;
  }
  Pando__V1__HeartbeatResponse *resp = (Pando__V1__HeartbeatResponse *)msg;
  if (!resp->known) {
    PD_WARN("coordinator does not know node %llu any more: registering again",
            (unsigned long long)s->node_id);
    forget_node(s);
  } else if (resp->assignment != s->generation) {
    s->generation = resp->assignment;
    if (s->changed)
      s->changed(s, s->generation, s->user);
  }
  pando__v1__heartbeat_response__free_unpacked(resp, NULL);
}

static void session_send(pd_session *s, const char *method, const ProtobufCMessage *msg,
                         pd_rpc_done done) {
  grpc_slice slice = pd_rpc_pack(msg);
  if (pd_rpc_start(s->channel, s->loop, method, &slice, 1, RPC_TIMEOUT_SEC, done, s) == 0)
    s->in_flight = 1;
  grpc_slice_unref(slice);
}

void pd_session_set_memory(pd_session *s, uint64_t bytes) { s->memory_bytes = bytes; }

void pd_session_tick(pd_session *s) {
  double now = pd_now();
  if (s->in_flight || now < s->next_due)
    return;
  s->next_due = now + s->heartbeat_sec;
  if (s->node_id == 0) {
    Pando__V1__RegisterRequest req = PANDO__V1__REGISTER_REQUEST__INIT;
    req.role = (Pando__V1__Role)s->role;
    req.address = s->address;
    req.name = s->name;
    req.math = (char *)pd_kernels_describe();
    req.memory_bytes = s->memory_bytes;
    session_send(s, "/pando.v1.Coordinator/RegisterNode", &req.base, register_done);
  } else {
    Pando__V1__HeartbeatRequest req = PANDO__V1__HEARTBEAT_REQUEST__INIT;
    req.node_id = s->node_id;
    req.node_secret = s->node_secret;
    session_send(s, "/pando.v1.Coordinator/Heartbeat", &req.base, heartbeat_done);
  }
}
