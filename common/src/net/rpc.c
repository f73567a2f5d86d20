/* The RPC layer: completion-queue event loop, server call state machines,
 * client calls. See pando/rpc.h for the contract. */
#include "pando/rpc.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/security.h"
#include "pando/util.h"
#include "pando/wire.h"
#include "security_internal.h"

#define PD_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MAX_METHODS 32
/* Calls of one method the server accepts at once before queueing. */
#define REQUESTS_PER_METHOD 16
#define GENERIC_REQUESTS 2

void pd_rpc_init(void) {
  /* gRPC allocates and frees the buffers of every message it receives. By
   * default glibc hands freed heap tops (and big blocks) back to the kernel,
   * so each large transfer page-faults its memory in again: 50 pulls of
   * 64 MiB from two servers took up to 150,000 extra page faults and 30% more
   * client CPU. Keep that memory in the process instead. */
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  grpc_init();
}
void pd_rpc_shutdown(void) { grpc_shutdown(); }

static gpr_timespec deadline_in(double seconds) {
  if (seconds < 0)
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_micros((int64_t)(seconds * 1e6), GPR_TIMESPAN));
}

/* ---------------------------------------------------------------- loop */

struct pd_loop {
  grpc_completion_queue *cq;
  uint64_t spin_ns;      /* poll this long before sleeping; 0: never spin */
  uint64_t last_wait_ns; /* how long the previous pd_loop_run_once waited */
};

pd_loop *pd_loop_new(void) {
  pd_loop *loop = pd_xcalloc(1, sizeof *loop);
  loop->cq = grpc_completion_queue_create_for_next(NULL);
  loop->last_wait_ns = UINT64_MAX;
  return loop;
}

void pd_loop_set_spin(pd_loop *loop, double spin_sec) {
  loop->spin_ns = spin_sec > 0 ? (uint64_t)(spin_sec * 1e9) : 0;
}

void pd_loop_free(pd_loop *loop) {
  if (!loop)
    return;
  grpc_completion_queue_shutdown(loop->cq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(loop->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type == GRPC_OP_COMPLETE)
      ((pd_rpc_op *)ev.tag)->done(ev.tag, ev.success);
  }
  grpc_completion_queue_destroy(loop->cq);
  free(loop);
}

grpc_completion_queue *pd_loop_cq(pd_loop *loop) { return loop->cq; }

int pd_loop_run_once(pd_loop *loop, double timeout_sec) {
  uint64_t start = pd_now_ns();
  grpc_event ev = {.type = GRPC_QUEUE_TIMEOUT};
  /* Waking a sleeping thread (and an idle vCPU) costs tens of microseconds;
   * while events come back to back, polling without a deadline is cheaper.
   * A deadline in the past still polls the sockets once. */
  if (loop->spin_ns && loop->last_wait_ns <= loop->spin_ns && timeout_sec != 0) {
    uint64_t budget = loop->spin_ns;
    if (timeout_sec > 0)
      budget = PD_MIN(budget, (uint64_t)(timeout_sec * 1e9));
    do
      ev = grpc_completion_queue_next(loop->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
    while (ev.type == GRPC_QUEUE_TIMEOUT && pd_now_ns() - start < budget);
  }
  if (ev.type == GRPC_QUEUE_TIMEOUT)
    ev = grpc_completion_queue_next(loop->cq, deadline_in(timeout_sec), NULL);
  loop->last_wait_ns = pd_now_ns() - start;
  if (ev.type != GRPC_OP_COMPLETE) {
    loop->last_wait_ns = UINT64_MAX; /* nothing came: sleep at once next time */
    return 0;
  }
  pd_rpc_op *op = ev.tag;
  op->done(op, ev.success);
  return 1;
}

/* ---------------------------------------------------------------- server */

#define PD_RPC_STATUS_COUNT 17 /* gRPC status codes 0 (OK) .. 16 (UNAUTHENTICATED) */

/* Metrics of one method, on the server or on a client channel. */
typedef struct method_metrics {
  const char *path;
  pd_metric *handled[PD_RPC_STATUS_COUNT]; /* by status code, made when first needed */
  pd_metric *seconds;                      /* latency histogram */
  pd_metric *bytes_in, *bytes_out;         /* message payload bytes */
} method_metrics;

static void metrics_init(method_metrics *mm, const char *side, const char *path) {
  char name[96], labels[300];
  mm->path = path;
  snprintf(labels, sizeof labels, "method=\"%s\"", path);
  snprintf(name, sizeof name, "pando_rpc_%s_seconds", side);
  mm->seconds =
      pd_metric_histogram(name,
                          !strcmp(side, "server") ? "Time from a call's arrival to its answer."
                                                  : "Time from a call's start to its completion.",
                          labels);
  snprintf(name, sizeof name, "pando_rpc_%s_received_bytes_total", side);
  mm->bytes_in = pd_metric_counter(name, "Message payload bytes received.", labels);
  snprintf(name, sizeof name, "pando_rpc_%s_sent_bytes_total", side);
  mm->bytes_out = pd_metric_counter(name, "Message payload bytes sent.", labels);
}

static void metrics_done(method_metrics *mm, const char *side, grpc_status_code code,
                         uint64_t started_ns) {
  if ((unsigned)code >= PD_RPC_STATUS_COUNT)
    code = GRPC_STATUS_UNKNOWN;
  if (!mm->handled[code]) {
    char name[96], labels[340];
    snprintf(name, sizeof name, "pando_rpc_%s_handled_total", side);
    snprintf(labels, sizeof labels, "method=\"%s\",code=\"%s\"", mm->path,
             pd_rpc_status_name(code));
    mm->handled[code] = pd_metric_counter(name, "RPCs completed, by status code.", labels);
  }
  pd_metric_add(mm->handled[code], 1);
  pd_metric_observe(mm->seconds, (double)(pd_now_ns() - started_ns) * 1e-9);
}

typedef struct reg_method {
  const char *path;
  pd_rpc_handler handler;                         /* raw: reads the payload itself */
  pd_rpc_unary_handler unary;                     /* or typed: gets the unpacked request */
  const ProtobufCMessageDescriptor *request_desc; /* unary: the request's type */
  void *ctx;
  void *registered; /* gRPC's handle */
  const char *role; /* under mTLS, only peers whose certificate names this role; NULL: any */
  int open;         /* answered without the cluster token (the health service) */
  int job_scoped;   /* reaches the handler without the cluster token (pd_rpc_call_authorized) */
  method_metrics metrics;
} reg_method;

struct pd_rpc_server {
  grpc_server *server;
  pd_loop *loop;
  reg_method methods[MAX_METHODS];
  int nmethods;
  int started;
  int shutting_down;
  int live_calls; /* pd_rpc_call objects not yet freed, requested ones included */
  pd_rpc_op shutdown_op;
  int shutdown_done;
  int health_serving;
  const char *const *health_services;
};

/* The life of a server call. One pd_rpc_call per call, every step on the
 * loop thread; the three ops are its completion-queue tags.
 *
 *   post_request(): a slot asks gRPC for the next call of its method
 *      |  op_request, ok = 0 (the server shuts down) -----------------> freed
 *      v  op_request, ok = 1
 *   ARRIVED: RECV_CLOSE_ON_SERVER is posted (op_close), the handler runs;
 *      |     when it returns the call is REPLIED or PARKED (asserted)
 *      |
 *      +-- pd_rpc_call_reply*() / pd_rpc_call_fail() -----> REPLIED
 *      |     (replied = 1; the status batch is posted on op_send)
 *      |
 *      +-- pd_rpc_call_on_cancel() without a reply -------> PARKED
 *            the holder replies later ------------------> REPLIED
 *            or op_close comes first (client gone, server shutting
 *            down): on_cancel(call) runs, the holder lets go --> freed
 *
 *   REPLIED -- op_send (send_done = 1) and op_close (close_done = 1), in
 *              either order; call_maybe_free() frees the call after both.
 *
 * client_cancelled records what RECV_CLOSE_ON_SERVER said; a call is
 * finished (replied) at most once. */
struct pd_rpc_call {
  pd_rpc_op op_request; /* the call arrived (or the request was cancelled) */
  pd_rpc_op op_close;   /* RECV_CLOSE_ON_SERVER completed */
  pd_rpc_op op_send;    /* the response batch completed */
  pd_rpc_server *srv;
  reg_method *method; /* NULL: generic request for unknown methods */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array metadata;
  grpc_call_details details; /* generic requests only */
  grpc_byte_buffer *payload;
  grpc_byte_buffer *response;
  grpc_slice status_details;
  uint64_t started_ns;  /* when the call arrived */
  int client_cancelled; /* set by RECV_CLOSE_ON_SERVER */
  int replied;          /* a response batch was started */
  int send_done;
  int close_done;
  void (*on_cancel)(pd_rpc_call *call);
  void *user;
  char peer_role[16]; /* the role in the peer's verified certificate ("": none) */
  int cluster_token;  /* the call carried the cluster token (or none is configured) */
};

static void post_request(pd_rpc_server *srv, reg_method *m);
static int admitted(pd_rpc_call *c);
static ProtobufCMessage *unpack_request(pd_rpc_call *c, const ProtobufCMessageDescriptor *desc);

/* A received message of PD_RPC_TRIM_AFTER bytes or more was freed since the
 * last pd_rpc_trim (any thread may set it). */
static atomic_int large_freed;

void pd_rpc_trim(void) {
  if (atomic_exchange(&large_freed, 0))
    malloc_trim(0);
}

static void call_maybe_free(pd_rpc_call *c) {
  if (!c->close_done || (c->replied && !c->send_done))
    return;
  if (c->call)
    grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->metadata);
  if (!c->method)
    grpc_call_details_destroy(&c->details);
  if (c->payload) {
    if (grpc_byte_buffer_length(c->payload) >= PD_RPC_TRIM_AFTER)
      large_freed = 1;
    grpc_byte_buffer_destroy(c->payload);
  }
  if (c->response)
    grpc_byte_buffer_destroy(c->response);
  grpc_slice_unref(c->status_details);
  c->srv->live_calls--;
  free(c);
}

static void start_batch(pd_rpc_call *c, grpc_op *ops, size_t n, pd_rpc_op *tag) {
  grpc_call_error rc = grpc_call_start_batch(c->call, ops, n, tag, NULL);
  PD_ASSERT(rc == GRPC_CALL_OK);
}

static void on_send(pd_rpc_op *op, int ok) {
  (void)ok;
  pd_rpc_call *c = PD_CONTAINER_OF(op, pd_rpc_call, op_send);
  c->send_done = 1;
  call_maybe_free(c);
}

static void on_close(pd_rpc_op *op, int ok) {
  (void)ok;
  pd_rpc_call *c = PD_CONTAINER_OF(op, pd_rpc_call, op_close);
  c->close_done = 1;
  if (!c->replied) {
    /* The client went away (or the server is shutting down) while the call
     * was kept open: its holder lets go of it now. */
    PD_ASSERT(c->on_cancel != NULL);
    c->on_cancel(c);
  }
  call_maybe_free(c);
}

static void finish(pd_rpc_call *c, grpc_status_code status, const char *details,
                   grpc_byte_buffer *response) {
  PD_ASSERT(!c->replied && !c->close_done);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (response) {
    c->response = response;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = response;
  }
  if (c->method) {
    if (response)
      pd_metric_add(c->method->metrics.bytes_out, (double)grpc_byte_buffer_length(response));
    metrics_done(&c->method->metrics, "server", status, c->started_ns);
  }
  c->status_details = grpc_slice_from_copied_string(details ? details : "");
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = status;
  ops[n++].data.send_status_from_server.status_details =
      details && *details ? &c->status_details : NULL;
  c->replied = 1;
  start_batch(c, ops, n, &c->op_send);
}

static void on_request(pd_rpc_op *op, int ok) {
  pd_rpc_call *c = PD_CONTAINER_OF(op, pd_rpc_call, op_request);
  pd_rpc_server *srv = c->srv;
  if (!ok) { /* the server is shutting down: this request will never be a call */
    c->close_done = 1;
    call_maybe_free(c);
    return;
  }
  if (!srv->shutting_down)
    post_request(srv, c->method);
  grpc_op close_op;
  memset(&close_op, 0, sizeof close_op);
  close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  close_op.data.recv_close_on_server.cancelled = &c->client_cancelled;
  start_batch(c, &close_op, 1, &c->op_close);
  if (!c->method && !pd__security_token_ok(&c->metadata)) {
    /* a caller without the token does not learn which methods exist */
    pd_rpc_call_fail(c, GRPC_STATUS_UNAUTHENTICATED,
                     "missing or wrong cluster token (metadata authorization: Bearer TOKEN)");
    return;
  }
  if (!c->method) {
    char *path = grpc_slice_to_c_string(c->details.method);
    pd_metric_add(pd_metric_counter("pando_rpc_server_unimplemented_total",
                                    "Calls of methods this server does not have.", ""),
                  1);
    pd_rpc_call_fail(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", path);
    gpr_free(path);
    return;
  }
  c->started_ns = pd_now_ns();
  if (c->payload)
    pd_metric_add(c->method->metrics.bytes_in, (double)grpc_byte_buffer_length(c->payload));
  if (!admitted(c))
    return;
  if (c->method->unary) {
    ProtobufCMessage *req = unpack_request(c, c->method->request_desc);
    if (!req)
      return;
    c->method->unary(c, req, c->method->ctx);
    protobuf_c_message_free_unpacked(req, NULL);
  } else {
    c->method->handler(c, c->method->ctx);
  }
  /* A handler replies or parks the call; anything else leaks it. (The call
   * cannot be gone yet: op_close runs later on this thread.) */
  PD_ASSERT(c->replied || c->on_cancel != NULL);
}

/* The gate in front of every handler: the cluster token (but for open
 * methods) and, under mTLS, the role a method is restricted to. A call that
 * fails it is answered UNAUTHENTICATED or PERMISSION_DENIED before its
 * request is even decoded, so nothing is applied. Returns 1 to go on. */
static int admitted(pd_rpc_call *c) {
  const reg_method *m = c->method;
  c->cluster_token = pd__security_token_ok(&c->metadata);
  if (!m->open && !m->job_scoped && !c->cluster_token) {
    pd_metric_add(pd_metric_counter("pando_rpc_server_unauthenticated_total",
                                    "Calls refused for a missing or wrong cluster token.", ""),
                  1);
    pd_rpc_call_fail(c, GRPC_STATUS_UNAUTHENTICATED,
                     "missing or wrong cluster token (metadata authorization: Bearer TOKEN)");
    return 0;
  }
  if (pd_security_client_auth()) {
    pd__security_peer_role(c->call, c->peer_role, sizeof c->peer_role);
    if (m->role && strcmp(m->role, c->peer_role) != 0) {
      pd_metric_add(pd_metric_counter("pando_rpc_server_permission_denied_total",
                                      "Calls refused for the role in the peer's certificate.", ""),
                    1);
      pd_rpc_call_fail(c, GRPC_STATUS_PERMISSION_DENIED,
                       "%s is for role %s only; the client certificate names role '%s'", m->path,
                       m->role, c->peer_role[0] ? c->peer_role : "(none)");
      return 0;
    }
  }
  return 1;
}

static void post_request(pd_rpc_server *srv, reg_method *m) {
  pd_rpc_call *c = pd_xcalloc(1, sizeof *c);
  c->srv = srv;
  c->method = m;
  c->op_request.done = on_request;
  c->op_close.done = on_close;
  c->op_send.done = on_send;
  c->status_details = grpc_empty_slice();
  grpc_metadata_array_init(&c->metadata);
  grpc_completion_queue *cq = srv->loop->cq;
  grpc_call_error rc;
  if (m) {
    rc = grpc_server_request_registered_call(srv->server, m->registered, &c->call, &c->deadline,
                                             &c->metadata, &c->payload, cq, cq, &c->op_request);
  } else {
    grpc_call_details_init(&c->details);
    rc = grpc_server_request_call(srv->server, &c->call, &c->details, &c->metadata, cq, cq,
                                  &c->op_request);
  }
  PD_ASSERT(rc == GRPC_CALL_OK);
  srv->live_calls++;
}

/* args[0] and args[1]: PD_RPC_MAX_MESSAGE both ways, for servers and
 * channels alike. */
static void message_limits(grpc_arg *args) {
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = PD_RPC_MAX_MESSAGE;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = PD_RPC_MAX_MESSAGE;
}

pd_rpc_server *pd_rpc_server_new(pd_loop *loop) {
  pd_rpc_server *srv = pd_xcalloc(1, sizeof *srv);
  grpc_arg args[2];
  message_limits(args);
  grpc_channel_args channel_args = {2, args};
  srv->server = grpc_server_create(&channel_args, NULL);
  srv->loop = loop;
  srv->health_serving = 1;
  pd_loop_set_spin(loop, PD_RPC_SERVER_SPIN);
  grpc_server_register_completion_queue(srv->server, loop->cq, NULL);
  return srv;
}

static reg_method *add_method(pd_rpc_server *srv, const char *path, void *ctx) {
  PD_ASSERT(!srv->started && srv->nmethods < MAX_METHODS);
  reg_method *m = &srv->methods[srv->nmethods++];
  m->path = path;
  m->ctx = ctx;
  m->registered = grpc_server_register_method(srv->server, path, NULL,
                                              GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  metrics_init(&m->metrics, "server", path);
  PD_ASSERT(m->registered != NULL);
  return m;
}

void pd_rpc_server_add_method(pd_rpc_server *srv, const char *path, pd_rpc_handler handler,
                              void *ctx) {
  add_method(srv, path, ctx)->handler = handler;
}

void pd_rpc_server_add_unary(pd_rpc_server *srv, const char *path,
                             const ProtobufCMessageDescriptor *request_desc,
                             pd_rpc_unary_handler handler, void *ctx) {
  reg_method *m = add_method(srv, path, ctx);
  m->unary = handler;
  m->request_desc = request_desc;
}

static reg_method *find_method(pd_rpc_server *srv, const char *path) {
  for (int i = 0; i < srv->nmethods; i++)
    if (strcmp(srv->methods[i].path, path) == 0)
      return &srv->methods[i];
  PD_ASSERT(!"method not registered");
  return NULL;
}

void pd_rpc_server_restrict(pd_rpc_server *srv, const char *path, const char *role) {
  find_method(srv, path)->role = role;
}

void pd_rpc_server_job_scoped(pd_rpc_server *srv, const char *path) {
  PD_ASSERT(!srv->started);
  find_method(srv, path)->job_scoped = 1;
}

int pd_rpc_call_authorize_job(pd_rpc_call *call, const char *job, const char *job_token) {
  if (pd__security_bearer_is(&call->metadata, job_token))
    return 1;
  if (!call->cluster_token) {
    pd_rpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED,
                     "missing or wrong token: job '%s' needs its job token or the cluster token",
                     job);
    return 0;
  }
  /* every node holds the cluster token; only these roles act for any job */
  if (job_token && job_token[0] && pd_security_client_auth() &&
      strcmp(call->peer_role, PD_ROLE_COORDINATOR) != 0 &&
      strcmp(call->peer_role, PD_ROLE_ADMIN) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                     "job '%s' needs its job token: the cluster token stands in for it for "
                     "roles coordinator and admin only, and the client certificate names role '%s'",
                     job, call->peer_role[0] ? call->peer_role : "(none)");
    return 0;
  }
  return 1;
}

int pd_rpc_server_listen(pd_rpc_server *srv, const char *address, char *err, size_t errlen) {
  grpc_server_credentials *creds = pd__security_server_credentials();
  int port = grpc_server_add_http2_port(srv->server, address, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0)
    return pd_errf(err, errlen, -PD_ERPC, "cannot listen on %s (address in use or invalid)",
                   address);
  return port;
}

void pd_rpc_server_start(pd_rpc_server *srv) {
  grpc_server_start(srv->server);
  srv->started = 1;
  for (int i = 0; i < srv->nmethods; i++)
    for (int k = 0; k < REQUESTS_PER_METHOD; k++)
      post_request(srv, &srv->methods[i]);
  for (int k = 0; k < GENERIC_REQUESTS; k++)
    post_request(srv, NULL);
}

static void on_server_shutdown(pd_rpc_op *op, int ok) {
  (void)ok;
  pd_rpc_server *srv = PD_CONTAINER_OF(op, pd_rpc_server, shutdown_op);
  srv->shutdown_done = 1;
}

void pd_rpc_server_free(pd_rpc_server *srv) {
  if (!srv)
    return;
  srv->shutting_down = 1;
  srv->health_serving = 0;
  srv->shutdown_op.done = on_server_shutdown;
  grpc_server_shutdown_and_notify(srv->server, srv->loop->cq, &srv->shutdown_op);
  grpc_server_cancel_all_calls(srv->server);
  while (!srv->shutdown_done || srv->live_calls > 0)
    pd_loop_run_once(srv->loop, 1.0);
  grpc_server_destroy(srv->server);
  free(srv);
}

grpc_byte_buffer *pd_rpc_call_payload(pd_rpc_call *call) { return call->payload; }
const char *pd_rpc_call_method(const pd_rpc_call *call) {
  return call->method ? call->method->path : "(unknown)";
}
void **pd_rpc_call_user(pd_rpc_call *call) { return &call->user; }
const char *pd_rpc_call_peer_role(const pd_rpc_call *call) { return call->peer_role; }
void pd_rpc_call_on_cancel(pd_rpc_call *call, void (*on_cancel)(pd_rpc_call *call)) {
  call->on_cancel = on_cancel;
}

/* Copies a whole byte buffer into `out` (malloc'd, caller frees). */
static void buffer_flatten(grpc_byte_buffer *bb, uint8_t **out, size_t *len) {
  size_t total = grpc_byte_buffer_length(bb);
  uint8_t *buf = pd_xmalloc(total ? total : 1);
  grpc_byte_buffer_reader reader;
  PD_ASSERT(grpc_byte_buffer_reader_init(&reader, bb));
  grpc_slice *slice;
  size_t off = 0;
  while (grpc_byte_buffer_reader_peek(&reader, &slice)) {
    size_t n = GRPC_SLICE_LENGTH(*slice);
    memcpy(buf + off, GRPC_SLICE_START_PTR(*slice), n);
    off += n;
  }
  grpc_byte_buffer_reader_destroy(&reader);
  *out = buf;
  *len = off;
}

int pd_rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                  ProtobufCMessage **out, char *err, size_t errlen) {
  size_t len = bb ? grpc_byte_buffer_length(bb) : 0;
  ProtobufCMessage *msg = NULL;
  if (!bb) {
    msg = protobuf_c_message_unpack(desc, NULL, 0, NULL);
  } else if (len <= PD_RPC_MAX_MESSAGE) {
    uint8_t *buf;
    buffer_flatten(bb, &buf, &len);
    msg = protobuf_c_message_unpack(desc, NULL, len, buf);
    free(buf);
  }
  if (!msg)
    return pd_errf(err, errlen, -PD_EFORMAT, "malformed %s message (%zu bytes)", desc->name, len);
  *out = msg;
  return 0;
}

/* Unpacks the request of a typed handler's call, checked against the limits
 * of pando/wire.h before protobuf-c allocates anything (pd_wire_check), or
 * fails the call (RESOURCE_EXHAUSTED past a limit, INVALID_ARGUMENT when it
 * does not decode) and returns NULL. */
static ProtobufCMessage *unpack_request(pd_rpc_call *c, const ProtobufCMessageDescriptor *desc) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char err[256];
  if (c->payload)
    buffer_flatten(c->payload, &buf, &len);
  int rc = pd_wire_check(buf, len, desc, err, sizeof err);
  ProtobufCMessage *msg = rc == 0 ? protobuf_c_message_unpack(desc, NULL, len, buf) : NULL;
  free(buf);
  if (rc != 0)
    pd_rpc_call_fail(
        c, rc == -PD_ETOOBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT, "%s",
        err);
  else if (!msg)
    pd_rpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed %s message (%zu bytes)",
                     desc->name, len);
  return msg;
}

grpc_slice pd_rpc_pack(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  PD_ASSERT(len <= PD_RPC_MAX_MESSAGE);
  grpc_slice slice = grpc_slice_malloc(len);
  PD_ASSERT(protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice)) == len);
  return slice;
}

static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg) {
  grpc_slice slice = pd_rpc_pack(msg);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

void pd_rpc_call_reply_msg(pd_rpc_call *call, const ProtobufCMessage *msg) {
  finish(call, GRPC_STATUS_OK, NULL, pack_message(msg));
}

void pd_rpc_call_reply_slices(pd_rpc_call *call, grpc_slice *slices, size_t n) {
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
  for (size_t i = 0; i < n; i++)
    grpc_slice_unref(slices[i]);
  finish(call, GRPC_STATUS_OK, NULL, bb);
}

void pd_rpc_call_fail(pd_rpc_call *call, grpc_status_code status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  PD_DEBUG("%s failed: %s: %s", pd_rpc_call_method(call), pd_rpc_status_name(status), msg);
  finish(call, status, msg, NULL);
}

/* ---------------------------------------------------------------- health */

static void health_check(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_rpc_server *srv = ctx;
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)msg;
  int known = req->service[0] == '\0';
  for (const char *const *s = srv->health_services; s && *s && !known; s++)
    known = strcmp(*s, req->service) == 0;
  if (!known) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service '%s'", req->service);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = srv->health_serving
                    ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  pd_rpc_call_reply_msg(call, &resp.base);
}

void pd_rpc_health_register(pd_rpc_server *srv, const char *const *services) {
  srv->health_services = services;
  pd_rpc_server_add_unary(srv, "/grpc.health.v1.Health/Check",
                          &grpc__health__v1__health_check_request__descriptor, health_check, srv);
  srv->methods[srv->nmethods - 1].open = 1; /* probes carry no token */
}

void pd_rpc_health_set_serving(pd_rpc_server *srv, int serving) { srv->health_serving = serving; }

/* ---------------------------------------------------------------- client */

#define CHANNEL_METHODS 16

struct pd_rpc_channel {
  grpc_channel *channel;
  char *target;
  pthread_mutex_t lock; /* guards methods[]: a channel may serve several threads */
  method_metrics methods[CHANNEL_METHODS];
  int nmethods;
  grpc_slice authorization; /* "Bearer JOB_TOKEN" (pd_rpc_channel_set_token) */
  int has_authorization;    /* else the calls carry the cluster token, if any */
};

pd_rpc_channel *pd_rpc_channel_new(const char *target, int own_connection) {
  pd_rpc_channel *ch = pd_xcalloc(1, sizeof *ch);
  grpc_arg args[3];
  message_limits(args);
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
  args[2].value.integer = 1;
  grpc_channel_args channel_args = {own_connection ? 3 : 2, args};
  grpc_channel_credentials *creds = pd__security_channel_credentials();
  ch->channel = grpc_channel_create(target, creds, &channel_args);
  grpc_channel_credentials_release(creds);
  ch->target = pd_xstrdup(target);
  pthread_mutex_init(&ch->lock, NULL);
  return ch;
}

void pd_rpc_channel_free(pd_rpc_channel *ch) {
  if (!ch)
    return;
  grpc_channel_destroy(ch->channel);
  pd_rpc_channel_set_token(ch, NULL);
  for (int i = 0; i < ch->nmethods; i++)
    free((char *)ch->methods[i].path);
  pthread_mutex_destroy(&ch->lock);
  free(ch->target);
  free(ch);
}

const char *pd_rpc_channel_target(const pd_rpc_channel *ch) { return ch->target; }

void pd_rpc_channel_set_token(pd_rpc_channel *ch, const char *token) {
  if (ch->has_authorization) {
    /* the slice holds its own copy: wipe it before letting go */
    memset(GRPC_SLICE_START_PTR(ch->authorization), 0, GRPC_SLICE_LENGTH(ch->authorization));
    grpc_slice_unref(ch->authorization);
    ch->has_authorization = 0;
  }
  if (!token || !token[0])
    return;
  size_t len = strlen(token);
  ch->authorization = grpc_slice_malloc(sizeof "Bearer " - 1 + len);
  memcpy(GRPC_SLICE_START_PTR(ch->authorization), "Bearer ", sizeof "Bearer " - 1);
  memcpy(GRPC_SLICE_START_PTR(ch->authorization) + sizeof "Bearer " - 1, token, len);
  ch->has_authorization = 1;
}

/* The metrics of `method` on this channel (NULL past CHANNEL_METHODS). */
static method_metrics *channel_metrics(pd_rpc_channel *ch, const char *method) {
  method_metrics *mm = NULL;
  pthread_mutex_lock(&ch->lock);
  for (int i = 0; i < ch->nmethods && !mm; i++)
    if (strcmp(ch->methods[i].path, method) == 0)
      mm = &ch->methods[i];
  if (!mm && ch->nmethods < CHANNEL_METHODS) {
    mm = &ch->methods[ch->nmethods++];
    metrics_init(mm, "client", pd_xstrdup(method));
  }
  pthread_mutex_unlock(&ch->lock);
  return mm;
}

typedef struct client_call {
  pd_rpc_op op;
  method_metrics *metrics;
  uint64_t started_ns;
  grpc_call *call;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_byte_buffer *request;
  grpc_byte_buffer *response;
  grpc_status_code status;
  grpc_slice details;
  grpc_metadata authorization; /* the cluster token, when there is one */
  pd_rpc_done done;
  void *user;
} client_call;

static void on_client_done(pd_rpc_op *op, int ok) {
  client_call *cc = PD_CONTAINER_OF(op, client_call, op);
  pd_rpc_result result;
  char *details = grpc_slice_to_c_string(cc->details);
  result.status = ok ? cc->status : GRPC_STATUS_UNAVAILABLE;
  result.details = details;
  result.response = result.status == GRPC_STATUS_OK ? cc->response : NULL;
  if (result.status == GRPC_STATUS_OK && !cc->response) {
    result.status = GRPC_STATUS_INTERNAL;
    result.details = "server sent no response message";
  }
  if (cc->metrics) {
    if (cc->response)
      pd_metric_add(cc->metrics->bytes_in, (double)grpc_byte_buffer_length(cc->response));
    metrics_done(cc->metrics, "client", result.status, cc->started_ns);
  }
  cc->done(&result, cc->user);
  gpr_free(details);
  grpc_metadata_array_destroy(&cc->initial_md);
  grpc_metadata_array_destroy(&cc->trailing_md);
  grpc_byte_buffer_destroy(cc->request);
  if (cc->response)
    grpc_byte_buffer_destroy(cc->response);
  grpc_slice_unref(cc->details);
  grpc_call_unref(cc->call);
  free(cc);
}

int pd_rpc_start(pd_rpc_channel *ch, pd_loop *loop, const char *method, const grpc_slice *slices,
                 size_t n, double timeout_sec, pd_rpc_done done, void *user) {
  client_call *cc = pd_xcalloc(1, sizeof *cc);
  cc->op.done = on_client_done;
  cc->done = done;
  cc->user = user;
  cc->details = grpc_empty_slice();
  grpc_metadata_array_init(&cc->initial_md);
  grpc_metadata_array_init(&cc->trailing_md);
  cc->request = grpc_raw_byte_buffer_create((grpc_slice *)slices, n);
  cc->started_ns = pd_now_ns();
  cc->metrics = channel_metrics(ch, method);
  if (cc->metrics)
    pd_metric_add(cc->metrics->bytes_out, (double)grpc_byte_buffer_length(cc->request));
  grpc_slice method_slice = grpc_slice_from_copied_string(method);
  cc->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, loop->cq,
                                      method_slice, NULL, deadline_in(timeout_sec), NULL);
  grpc_slice_unref(method_slice);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  const grpc_slice *token =
      ch->has_authorization ? &ch->authorization : pd__security_authorization();
  if (token) {
    cc->authorization.key = grpc_slice_from_static_string("authorization");
    cc->authorization.value = *token;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &cc->authorization;
  }
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = cc->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &cc->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &cc->response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &cc->trailing_md;
  ops[5].data.recv_status_on_client.status = &cc->status;
  ops[5].data.recv_status_on_client.status_details = &cc->details;
  grpc_call_error rc = grpc_call_start_batch(cc->call, ops, 6, &cc->op, NULL);
  if (rc != GRPC_CALL_OK) {
    grpc_metadata_array_destroy(&cc->initial_md);
    grpc_metadata_array_destroy(&cc->trailing_md);
    grpc_byte_buffer_destroy(cc->request);
    grpc_call_unref(cc->call);
    free(cc);
    return -PD_ERPC;
  }
  return 0;
}

typedef struct unary_state {
  int finished;
  grpc_status_code status;
  char details[512];
  ProtobufCMessage *response;
  const ProtobufCMessageDescriptor *desc;
  char undecodable[256]; /* why the response did not decode; "" if it did */
} unary_state;

static void unary_done(const pd_rpc_result *result, void *user) {
  unary_state *st = user;
  st->finished = 1;
  st->status = result->status;
  pd_strlcpy(st->details, result->details, sizeof st->details);
  if (result->status == GRPC_STATUS_OK)
    pd_rpc_unpack(result->response, st->desc, &st->response, st->undecodable,
                  sizeof st->undecodable);
}

int pd_rpc_unary(pd_rpc_channel *ch, const char *method, const ProtobufCMessage *request,
                 const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
                 double timeout_sec, grpc_status_code *status, char *err, size_t errlen) {
  unary_state st;
  memset(&st, 0, sizeof st);
  st.desc = response_desc;
  pd_loop *loop = pd_loop_new();
  grpc_slice slice = pd_rpc_pack(request);
  int rc = pd_rpc_start(ch, loop, method, &slice, 1, timeout_sec, unary_done, &st);
  grpc_slice_unref(slice);
  while (rc == 0 && !st.finished)
    pd_loop_run_once(loop, -1);
  pd_loop_free(loop);
  if (status)
    *status = rc == 0 ? st.status : GRPC_STATUS_INTERNAL;
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s %s: cannot start call", ch->target, method);
  if (st.status != GRPC_STATUS_OK)
    return pd_errf(err, errlen, -PD_ERPC, "%s %s: %s: %s", ch->target, method,
                   pd_rpc_status_name(st.status), st.details);
  if (st.undecodable[0])
    return pd_errf(err, errlen, -PD_EFORMAT, "%s %s: undecodable response: %s", ch->target, method,
                   st.undecodable);
  *response = st.response;
  return 0;
}

const char *pd_rpc_enum_name(const ProtobufCEnumDescriptor *desc, int value) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(desc, value);
  if (!v)
    return "UNKNOWN";
  /* the prefix every value shares, up to its last '_' (proto style) */
  size_t prefix = strlen(desc->values[0].name);
  for (unsigned i = 1; i < desc->n_values; i++) {
    size_t k = 0;
    while (k < prefix && desc->values[i].name[k] == desc->values[0].name[k])
      k++;
    prefix = k;
  }
  while (prefix > 0 && desc->values[0].name[prefix - 1] != '_')
    prefix--;
  return desc->n_values > 1 ? v->name + prefix : v->name;
}

const char *pd_rpc_status_name(grpc_status_code status) {
  static const char *names[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  if ((int)status >= 0 && (size_t)status < PD_ARRAY_SIZE(names))
    return names[status];
  return "UNKNOWN_STATUS";
}
