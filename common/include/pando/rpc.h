/* Pando's RPC layer over gRPC core's C API.
 *
 * A pd_loop is one completion queue driven by one thread. Every tag posted on
 * it is a pd_rpc_op whose `done` runs in that thread, so server calls, client
 * calls and timers of a daemon share one event loop and need no locks.
 *
 * Server: methods are registered with a handler that runs when a request has
 * arrived; pd_rpc_server_add_unary() registers one that gets the request
 * already unpacked (a request that does not decode is answered
 * INVALID_ARGUMENT without calling it). The handler (or anything later on the
 * loop thread) finishes the call exactly once with pd_rpc_call_reply*() or
 * pd_rpc_call_fail(). Before a handler runs, a call without the cluster
 * token is answered UNAUTHENTICATED and one whose certificate lacks the
 * method's role PERMISSION_DENIED (pando/security.h). A call may be kept open (parked, e.g. a BSP
 * pull waiting for its clock); such a call must get an on_cancel callback, which runs if the client
 * goes away first and after which the call must not be touched. A handler that returns without
 * replying or parking the call is a bug and aborts. Unknown methods are answered UNIMPLEMENTED.
 *
 * Client: channels with deadlines; pd_rpc_start() issues a unary call whose
 * completion runs on a loop; pd_rpc_unary() is the blocking form for
 * protobuf-c messages. */
#ifndef PANDO_RPC_H
#define PANDO_RPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Largest message a Pando daemon receives (gRPC refuses a longer one with
 * RESOURCE_EXHAUSTED before it reaches a handler): the largest tensor
 * (PD_WIRE_MAX_TENSOR_BYTES, 64 MiB) and 1 MiB for the other fields.
 * Tensors are split into chunks far below this (pd_psclient), so only a
 * misbehaving peer reaches it. */
#define PD_RPC_MAX_MESSAGE (65 << 20)

/* Starts gRPC (idempotent, reference counted by gRPC itself). Also tells
 * malloc to keep freed memory in the process rather than return it to the
 * kernel (mallopt M_MMAP_THRESHOLD 256 MiB, M_TRIM_THRESHOLD 512 MiB): gRPC's
 * message buffers come and go with every call, and memory given back would
 * be page-faulted in again by the next large message. */
void pd_rpc_init(void);
/* Gives memory malloc kept back to the system (malloc_trim) if a received
 * message of PD_RPC_TRIM_AFTER bytes or more was freed since the last call,
 * so one oversized request does not leave a daemon at its peak. Daemons call
 * it from their cron (pd_daemon_serve). */
void pd_rpc_trim(void);
#define PD_RPC_TRIM_AFTER (8u << 20)
void pd_rpc_shutdown(void);

/* ---------------------------------------------------------------- loop */

typedef struct pd_rpc_op pd_rpc_op;
struct pd_rpc_op {
  void (*done)(pd_rpc_op *op, int ok); /* runs on the loop thread */
};

typedef struct pd_loop pd_loop;

pd_loop *pd_loop_new(void);
/* Shuts the queue down, drains it and frees the loop. Everything that posted
 * tags on it must be finished or destroyed first. */
void pd_loop_free(pd_loop *loop);
grpc_completion_queue *pd_loop_cq(pd_loop *loop);
/* Waits up to `timeout_sec` (negative: forever) for one event and runs its
 * op. Returns 1 when an op ran, 0 on timeout. */
int pd_loop_run_once(pd_loop *loop, double timeout_sec);
/* Makes pd_loop_run_once poll for up to `spin_sec` before it sleeps, but only
 * while events come back to back (the previous wait was no longer than
 * `spin_sec`), so an idle loop still sleeps at once. Spinning trades a little
 * CPU for latency: waking a sleeping thread costs tens of microseconds. 0 (the
 * default) never spins. */
void pd_loop_set_spin(pd_loop *loop, double spin_sec);

/* ---------------------------------------------------------------- server */

typedef struct pd_rpc_server pd_rpc_server;
typedef struct pd_rpc_call pd_rpc_call;
typedef void (*pd_rpc_handler)(pd_rpc_call *call, void *ctx);
/* A handler of a unary method whose request was unpacked by rpc.c: `request`
 * is a message of the registered descriptor, borrowed for the duration of
 * the handler (copy what a parked call needs later). */
typedef void (*pd_rpc_unary_handler)(pd_rpc_call *call, const ProtobufCMessage *request, void *ctx);

/* How long a loop that serves calls spins (pd_loop_set_spin). */
#define PD_RPC_SERVER_SPIN 50e-6

/* Makes a server whose calls complete on `loop` (borrowed; must outlive the
 * server). Sets the loop to spin for PD_RPC_SERVER_SPIN. */
pd_rpc_server *pd_rpc_server_new(pd_loop *loop);
/* Registers `handler` for the full method path (e.g.
 * "/pando.v1.ParameterServer/Pull"; the string must stay valid). Before
 * pd_rpc_server_start only. `ctx` is passed to the handler. */
void pd_rpc_server_add_method(pd_rpc_server *srv, const char *path, pd_rpc_handler handler,
                              void *ctx);
/* Registers `handler` for the method `path` whose request is a message of
 * `request_desc`: rpc.c unpacks each request (or answers INVALID_ARGUMENT
 * saying which message did not decode), calls the handler with it and frees
 * it when the handler returns. Before pd_rpc_server_start only. */
void pd_rpc_server_add_unary(pd_rpc_server *srv, const char *path,
                             const ProtobufCMessageDescriptor *request_desc,
                             pd_rpc_unary_handler handler, void *ctx);
/* Under mTLS (pd_security_client_auth), answers calls of the registered
 * method `path` PERMISSION_DENIED, before its handler runs, unless the
 * client's certificate names `role` (a PD_ROLE_* string that must stay
 * valid). Without mTLS it has no effect. Before pd_rpc_server_start only. */
void pd_rpc_server_restrict(pd_rpc_server *srv, const char *path, const char *role);
/* Lets calls of the registered method `path` that do not carry the cluster
 * token reach the handler, which must then call pd_rpc_call_authorize_job()
 * with the job token of the job the request names before it touches that
 * job (per-job tokens, pando/security.h). Before pd_rpc_server_start only. */
void pd_rpc_server_job_scoped(pd_rpc_server *srv, const char *path);
/* Listens on `address` ("127.0.0.1:0" picks a free port), with TLS when the
 * process's security (pando/security.h) has a certificate. Returns the bound
 * port (> 0) or a negative error with a message in `err`. Before start. */
int pd_rpc_server_listen(pd_rpc_server *srv, const char *address, char *err, size_t errlen);
/* Starts serving: from now on handlers run from pd_loop_run_once(). */
void pd_rpc_server_start(pd_rpc_server *srv);
/* Stops accepting calls, cancels those in flight (their on_cancel callbacks
 * run), waits for gRPC to let go, and frees the server. Drives the loop
 * itself while it waits. */
void pd_rpc_server_free(pd_rpc_server *srv);

/* The request's payload, or NULL if the client sent none. Borrowed: valid
 * until the call is finished. */
grpc_byte_buffer *pd_rpc_call_payload(pd_rpc_call *call);
/* The method path of the call. */
const char *pd_rpc_call_method(const pd_rpc_call *call);
/* Under mTLS, the role named by the client's verified certificate (a
 * PD_ROLE_* string); "" without mTLS. */
const char *pd_rpc_call_peer_role(const pd_rpc_call *call);
/* Whether the call may touch job `job`, whose token is `job_token` (NULL
 * or "": the job has none, or is unknown): it carried "authorization:
 * Bearer `job_token`", or the cluster token (always so when no token is
 * configured). Under mTLS the cluster token stands in for a job's token only
 * from the roles coordinator and admin: a worker or device (which holds the
 * cluster token to register) must show its job's token (Assignment or
 * RoundTask job_token), so it reads and changes its own job only. Compared
 * in constant time. Returns 1, or 0 after failing the call:
 * PERMISSION_DENIED for the cluster token from another role, else
 * UNAUTHENTICATED (not telling whether `job` exists). */
int pd_rpc_call_authorize_job(pd_rpc_call *call, const char *job, const char *job_token);
/* A free slot for the handler's state while the call stays open. */
void **pd_rpc_call_user(pd_rpc_call *call);
/* Sets the callback run if the client cancels (or the server shuts down)
 * before the call was finished; after it runs the call is gone. */
void pd_rpc_call_on_cancel(pd_rpc_call *call, void (*on_cancel)(pd_rpc_call *call));

/* Finishes the call with OK and the given response. */
void pd_rpc_call_reply_msg(pd_rpc_call *call, const ProtobufCMessage *msg);
/* Finishes the call with OK and a response made of `n` slices; takes
 * ownership of the slices. */
void pd_rpc_call_reply_slices(pd_rpc_call *call, grpc_slice *slices, size_t n);
/* Finishes the call with a non-OK status and a formatted message. */
void pd_rpc_call_fail(pd_rpc_call *call, grpc_status_code status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers grpc.health.v1.Health/Check: SERVING for the service "" and for
 * each name in `services` (NULL-terminated, borrowed), NOT_FOUND otherwise;
 * NOT_SERVING once pd_rpc_health_set_serving(srv, 0) was called. */
void pd_rpc_health_register(pd_rpc_server *srv, const char *const *services);
void pd_rpc_health_set_serving(pd_rpc_server *srv, int serving);

/* ---------------------------------------------------------------- client */

typedef struct pd_rpc_channel pd_rpc_channel;

/* A channel to `target` ("host:port"), with TLS and the cluster token when
 * the process's security (pando/security.h) has them. Connects lazily. With `own_connection`
 * the channel gets a TCP connection of its own instead of sharing one with
 * other channels to the same target. */
pd_rpc_channel *pd_rpc_channel_new(const char *target, int own_connection);
void pd_rpc_channel_free(pd_rpc_channel *ch);
/* Makes the calls of `ch` carry "authorization: Bearer `token`" instead of
 * the cluster token: a job's token (pando/security.h), which a worker uses
 * for the Pulls and Pushes of its job. NULL or "" goes back to the cluster
 * token. The token is copied; set it before the channel's first call (not
 * thread-safe against calls in flight). */
void pd_rpc_channel_set_token(pd_rpc_channel *ch, const char *token);
const char *pd_rpc_channel_target(const pd_rpc_channel *ch);

/* What a finished client call hands to its callback. */
typedef struct pd_rpc_result {
  grpc_status_code status;
  const char *details;        /* status message; "" when none */
  grpc_byte_buffer *response; /* NULL unless status is OK; borrowed */
} pd_rpc_result;

typedef void (*pd_rpc_done)(const pd_rpc_result *result, void *user);

/* Starts a unary call of `method` carrying `n` request slices (referenced,
 * not taken: the bytes they point to must live until `done` runs). `done`
 * runs on `loop`'s thread. Returns 0, or a negative error in which case
 * `done` never runs. */
int pd_rpc_start(pd_rpc_channel *ch, pd_loop *loop, const char *method, const grpc_slice *slices,
                 size_t n, double timeout_sec, pd_rpc_done done, void *user);

/* Blocking unary call with protobuf-c messages, on a private queue. On
 * success returns 0 and *response (free with
 * protobuf_c_message_free_unpacked). On failure returns -PD_ERPC (or
 * -PD_EFORMAT for an undecodable response), the gRPC status in *status (may be
 * NULL), and "target method: STATUS: details" in `err`. */
int pd_rpc_unary(pd_rpc_channel *ch, const char *method, const ProtobufCMessage *request,
                 const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
                 double timeout_sec, grpc_status_code *status, char *err, size_t errlen);

/* The name of `value` of a protobuf enum without the type prefix its values
 * share ("RUNNING" for pando.v1.JobState JOB_STATE_RUNNING, "FLOAT32" for
 * DTYPE_FLOAT32), or "UNKNOWN" for a value the enum does not have. */
const char *pd_rpc_enum_name(const ProtobufCEnumDescriptor *desc, int value);

/* Name of a gRPC status code ("INVALID_ARGUMENT"). */
const char *pd_rpc_status_name(grpc_status_code status);

/* ---------------------------------------------------------------- messages */

/* Packs `msg` into a new slice (the caller unrefs it). A message larger than
 * PD_RPC_MAX_MESSAGE is a bug and aborts. */
grpc_slice pd_rpc_pack(const ProtobufCMessage *msg);
/* Unpacks a message of `desc` from `bb` (NULL: no payload, which protobuf
 * reads as the empty message). On success returns 0 and *out (free it with
 * protobuf_c_message_free_unpacked); a payload larger than
 * PD_RPC_MAX_MESSAGE or one that does not decode returns -PD_EFORMAT with
 * "malformed <type> message (<n> bytes)" in `err`. */
int pd_rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                  ProtobufCMessage **out, char *err, size_t errlen);

#endif
