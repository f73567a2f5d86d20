/* Unit tests of the RPC layer's message helpers and typed handlers
 * (common/src/net/rpc.c): the tensor field numbers against the generated
 * descriptors, pack/unpack with their size limit, and a unary handler on a
 * real server on loopback that gets its request decoded, or never runs when
 * the request does not decode; per-job tokens: a channel that carries a
 * job's token (pd_rpc_channel_set_token) reaches that job only. */
#include "pando/rpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../test.h"
#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/security.h"
#include "pando/util.h"
#include "pando/wire.h"

static void test_tensor_field_numbers(void) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
      &pando__v1__pull_response__descriptor, "values");
  CHECK(f != NULL);
  CHECK_EQ_INT(f->id, PD_WIRE_PULL_VALUES_FIELD);
  CHECK(f->descriptor == &pando__v1__tensor__descriptor);
  f = protobuf_c_message_descriptor_get_field_by_name(&pando__v1__push_request__descriptor,
                                                      "gradient");
  CHECK(f != NULL);
  CHECK_EQ_INT(f->id, PD_WIRE_PUSH_GRADIENT_FIELD);
  CHECK(f->descriptor == &pando__v1__tensor__descriptor);
}

static grpc_byte_buffer *buffer_of(grpc_slice slice) {
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

static void test_pack_unpack(void) {
  Pando__V1__PullRequest req = PANDO__V1__PULL_REQUEST__INIT;
  req.job = "job-7";
  req.begin = 10;
  req.end = 1u << 30;
  req.worker = 3;
  req.clock = 42;
  grpc_slice slice = pd_rpc_pack(&req.base);
  CHECK_EQ_INT(GRPC_SLICE_LENGTH(slice), pando__v1__pull_request__get_packed_size(&req));
  grpc_byte_buffer *bb = buffer_of(slice);
  ProtobufCMessage *msg = NULL;
  char err[256] = "";
  CHECK_EQ_INT(pd_rpc_unpack(bb, &pando__v1__pull_request__descriptor, &msg, err, sizeof err), 0);
  grpc_byte_buffer_destroy(bb);
  const Pando__V1__PullRequest *got = (const Pando__V1__PullRequest *)msg;
  CHECK(strcmp(got->job, "job-7") == 0);
  CHECK_EQ_INT(got->begin, 10);
  CHECK_EQ_INT(got->end, 1u << 30);
  CHECK_EQ_INT(got->worker, 3);
  CHECK_EQ_INT(got->clock, 42);
  protobuf_c_message_free_unpacked(msg, NULL);

  /* no payload reads as the empty message */
  msg = NULL;
  CHECK_EQ_INT(pd_rpc_unpack(NULL, &pando__v1__pull_request__descriptor, &msg, err, sizeof err), 0);
  CHECK(msg != NULL && ((Pando__V1__PullRequest *)msg)->job[0] == '\0');
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void ignore(void *user) { (void)user; }

static void test_unpack_refuses(void) {
  /* a length-delimited field that runs past the end */
  const uint8_t bad[] = {0x0a, 0xff, 0xff, 0xff, 0x0f};
  grpc_byte_buffer *bb = buffer_of(grpc_slice_from_copied_buffer((const char *)bad, sizeof bad));
  ProtobufCMessage *msg = NULL;
  char err[256] = "";
  CHECK_EQ_INT(pd_rpc_unpack(bb, &pando__v1__push_request__descriptor, &msg, err, sizeof err),
               -PD_EFORMAT);
  grpc_byte_buffer_destroy(bb);
  CHECK(msg == NULL);
  CHECK(strcmp(err, "malformed pando.v1.PushRequest message (5 bytes)") == 0);

  /* more than PD_RPC_MAX_MESSAGE bytes: refused before it is read (the
   * slices borrow one zeroed MiB, PD_RPC_MAX_MESSAGE / 1 MiB + 1 times) */
  enum { MIB = 1 << 20, N = (PD_RPC_MAX_MESSAGE >> 20) + 1 };
  char *zeros = calloc(1, MIB);
  grpc_slice slices[N];
  for (int i = 0; i < N; i++)
    slices[i] = grpc_slice_new_with_user_data(zeros, MIB, ignore, NULL);
  bb = grpc_raw_byte_buffer_create(slices, N);
  for (int i = 0; i < N; i++)
    grpc_slice_unref(slices[i]);
  CHECK_EQ_INT(pd_rpc_unpack(bb, &pando__v1__stats_request__descriptor, &msg, err, sizeof err),
               -PD_EFORMAT);
  grpc_byte_buffer_destroy(bb);
  free(zeros);
  char want[128];
  snprintf(want, sizeof want, "malformed pando.v1.StatsRequest message (%zu bytes)",
           (size_t)N * MIB);
  CHECK_STR_CONTAINS(err, want);
}

/* ---------------------------------------------------------------- a typed handler */

static struct {
  pd_loop *loop;
  pd_rpc_server *srv;
  atomic_int stop;
  pthread_t thread; /* runs serve() */
  int calls;        /* handler runs (server thread) */
  char last_job[64];
} server;

static void stats_handler(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)ctx;
  const Pando__V1__StatsRequest *req = (const Pando__V1__StatsRequest *)msg;
  server.calls++;
  pd_strlcpy(server.last_job, req->job, sizeof server.last_job);
  if (strcmp(req->job, "missing") == 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held here", req->job);
    return;
  }
  Pando__V1__StatsResponse resp = PANDO__V1__STATS_RESPONSE__INIT;
  resp.version = strlen(req->job);
  resp.workers = 7;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void *serve(void *arg) {
  (void)arg;
  while (!atomic_load(&server.stop))
    pd_loop_run_once(server.loop, 0.05);
  return NULL;
}

/* Starts server.srv (its methods added) on a free loopback port, served by
 * a thread; returns a channel to it. */
static pd_rpc_channel *serve_start(void) {
  char err[256] = "", target[64];
  int port = pd_rpc_server_listen(server.srv, "127.0.0.1:0", err, sizeof err);
  PD_ASSERT(port > 0);
  pd_rpc_server_start(server.srv);
  atomic_store(&server.stop, 0);
  pthread_create(&server.thread, NULL, serve, NULL);
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  return pd_rpc_channel_new(target, 0);
}

/* Frees `ch`, stops the thread and frees the server and its loop. */
static void serve_stop(pd_rpc_channel *ch) {
  pd_rpc_channel_free(ch);
  atomic_store(&server.stop, 1);
  pthread_join(server.thread, NULL);
  pd_rpc_server_free(server.srv);
  pd_loop_free(server.loop);
}

typedef struct raw_result {
  int finished;
  grpc_status_code status;
  char details[256];
} raw_result;

static void raw_done(const pd_rpc_result *r, void *user) {
  raw_result *out = user;
  out->finished = 1;
  out->status = r->status;
  pd_strlcpy(out->details, r->details, sizeof out->details);
}

static void test_unary_handler(void) {
  pd_rpc_init();
  server.loop = pd_loop_new();
  server.srv = pd_rpc_server_new(server.loop);
  pd_rpc_server_add_unary(server.srv, "/pando.v1.ParameterServer/GetStats",
                          &pando__v1__stats_request__descriptor, stats_handler, NULL);
  char err[256] = "";
  pd_rpc_channel *ch = serve_start();

  Pando__V1__StatsRequest req = PANDO__V1__STATS_REQUEST__INIT;
  req.job = "abcde";
  ProtobufCMessage *resp = NULL;
  grpc_status_code status;
  int rc =
      pd_rpc_unary(ch, "/pando.v1.ParameterServer/GetStats", &req.base,
                   &pando__v1__stats_response__descriptor, &resp, 10, &status, err, sizeof err);
  int ok_version = resp ? (int)((Pando__V1__StatsResponse *)resp)->version : -1;
  int ok_workers = resp ? (int)((Pando__V1__StatsResponse *)resp)->workers : -1;
  if (resp)
    protobuf_c_message_free_unpacked(resp, NULL);

  req.job = "missing";
  resp = NULL;
  char fail_err[256] = "";
  int fail_rc = pd_rpc_unary(ch, "/pando.v1.ParameterServer/GetStats", &req.base,
                             &pando__v1__stats_response__descriptor, &resp, 10, &status, fail_err,
                             sizeof fail_err);

  /* bytes that are no StatsRequest: INVALID_ARGUMENT, the handler never runs */
  pd_loop *client = pd_loop_new();
  const uint8_t bad[] = {0x0a, 0xff, 0xff, 0xff, 0x0f};
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)bad, sizeof bad);
  raw_result raw = {0};
  int start_rc =
      pd_rpc_start(ch, client, "/pando.v1.ParameterServer/GetStats", &slice, 1, 10, raw_done, &raw);
  grpc_slice_unref(slice);
  while (start_rc == 0 && !raw.finished)
    pd_loop_run_once(client, -1);
  pd_loop_free(client);

  serve_stop(ch);
  pd_rpc_shutdown();

  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(ok_version, 5);
  CHECK_EQ_INT(ok_workers, 7);
  CHECK_EQ_INT(fail_rc, -PD_ERPC);
  CHECK_EQ_INT(status, GRPC_STATUS_NOT_FOUND);
  CHECK_STR_CONTAINS(fail_err, "NOT_FOUND: job 'missing' is not held here");
  CHECK_EQ_INT(start_rc, 0);
  CHECK_EQ_INT(raw.status, GRPC_STATUS_INVALID_ARGUMENT);
  /* pd_wire_check refused it before protobuf-c saw it */
  CHECK_STR_CONTAINS(raw.details, "malformed pando.v1.StatsRequest message");
  CHECK_EQ_INT(server.calls, 2);
  CHECK(strcmp(server.last_job, "missing") == 0);
}

/* GetStats of job "a" (token "token-of-a"); any other job has no token. */
static void job_stats_handler(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)ctx;
  const Pando__V1__StatsRequest *req = (const Pando__V1__StatsRequest *)msg;
  if (!pd_rpc_call_authorize_job(call, req->job, strcmp(req->job, "a") == 0 ? "token-of-a" : NULL))
    return;
  Pando__V1__StatsResponse resp = PANDO__V1__STATS_RESPONSE__INIT;
  pd_rpc_call_reply_msg(call, &resp.base);
}

/* The status of GetStats(job) on `method` over `ch`. */
static grpc_status_code stats_status(pd_rpc_channel *ch, const char *method, const char *job) {
  Pando__V1__StatsRequest req = PANDO__V1__STATS_REQUEST__INIT;
  req.job = (char *)job;
  ProtobufCMessage *resp = NULL;
  grpc_status_code status = GRPC_STATUS_OK;
  char err[256];
  if (pd_rpc_unary(ch, method, &req.base, &pando__v1__stats_response__descriptor, &resp, 10,
                   &status, err, sizeof err) == 0)
    protobuf_c_message_free_unpacked(resp, NULL);
  return status;
}

static void test_job_token_channel(void) {
  pd_rpc_init();
  char err[256] = "";
  pd_security_settings security = {NULL, NULL, NULL, NULL, "the-cluster-token", 0};
  CHECK_EQ_INT(pd_security_configure(&security, err, sizeof err), 0);
  server.loop = pd_loop_new();
  server.srv = pd_rpc_server_new(server.loop);
  const char *scoped = "/pando.v1.ParameterServer/GetStats";
  const char *cluster_only = "/pando.v1.ParameterServer/Pull";
  pd_rpc_server_add_unary(server.srv, scoped, &pando__v1__stats_request__descriptor,
                          job_stats_handler, NULL);
  pd_rpc_server_add_unary(server.srv, cluster_only, &pando__v1__stats_request__descriptor,
                          job_stats_handler, NULL);
  pd_rpc_server_job_scoped(server.srv, scoped);
  pd_rpc_channel *ch = serve_start();

  grpc_status_code cluster_a = stats_status(ch, scoped, "a");
  grpc_status_code cluster_b = stats_status(ch, scoped, "b");
  pd_rpc_channel_set_token(ch, "token-of-a");
  grpc_status_code job_a = stats_status(ch, scoped, "a");
  grpc_status_code job_b = stats_status(ch, scoped, "b");
  grpc_status_code job_unscoped = stats_status(ch, cluster_only, "a");
  pd_rpc_channel_set_token(ch, "token-of-b");
  grpc_status_code wrong_a = stats_status(ch, scoped, "a");
  pd_rpc_channel_set_token(ch, NULL);
  grpc_status_code back_a = stats_status(ch, scoped, "a");

  serve_stop(ch);
  pd_security_settings none = {0};
  pd_security_configure(&none, err, sizeof err);
  pd_rpc_shutdown();

  CHECK_EQ_INT(cluster_a, GRPC_STATUS_OK); /* the cluster token opens every job */
  CHECK_EQ_INT(cluster_b, GRPC_STATUS_OK);
  CHECK_EQ_INT(job_a, GRPC_STATUS_OK);                     /* the job's token opens that job */
  CHECK_EQ_INT(job_b, GRPC_STATUS_UNAUTHENTICATED);        /* ... and no other */
  CHECK_EQ_INT(job_unscoped, GRPC_STATUS_UNAUTHENTICATED); /* nor a method not job-scoped */
  CHECK_EQ_INT(wrong_a, GRPC_STATUS_UNAUTHENTICATED);
  CHECK_EQ_INT(back_a, GRPC_STATUS_OK); /* NULL: the cluster token again */
}

int main(int argc, char **argv) {
  PD_RUN(test_tensor_field_numbers);
  PD_RUN(test_pack_unpack);
  PD_RUN(test_unpack_refuses);
  PD_RUN(test_unary_handler);
  PD_RUN(test_job_token_channel);
  PD_TEST_DONE();
}
