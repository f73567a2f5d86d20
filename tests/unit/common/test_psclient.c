/* Unit tests of the parameter-server client (common/src/net/psclient.c)
 * against a fake ParameterServer on loopback: a pull split into chunks
 * lands every value in place, and a chunk answered UNAVAILABLE is retried
 * after its back-off deadline while the other chunks complete. */
#include "pando/psclient.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "../../test.h"
#include "pando.pb-c.h"
#include "pando/rpc.h"
#include "pando/util.h"
#include "pando/wire.h"

enum { KEYS = 1000, CHUNK_KEYS = 100 };

static struct {
  pd_loop *loop;
  pd_rpc_server *srv;
  atomic_int stop;
  int calls[KEYS / CHUNK_KEYS]; /* Pull calls per chunk */
  int unavailable_first;        /* chunk whose first call fails */
  float values[KEYS];           /* what the fake server holds */
} fake;

static void fake_pull(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)ctx;
  const Pando__V1__PullRequest *req = (const Pando__V1__PullRequest *)msg;
  int c = (int)(req->begin / CHUNK_KEYS);
  if (req->end > KEYS || req->begin >= req->end || c >= KEYS / CHUNK_KEYS) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad range");
    return;
  }
  if (fake.calls[c]++ == 0 && c == fake.unavailable_first) {
    pd_rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "restarting");
    return;
  }
  Pando__V1__PullResponse resp = PANDO__V1__PULL_RESPONSE__INIT;
  resp.version = 3;
  int64_t shape = (int64_t)(req->end - req->begin);
  size_t bytes = (size_t)shape * sizeof(float);
  grpc_slice slices[2] = {
      pd_wire_tensor_header(&resp.base, PD_WIRE_PULL_VALUES_FIELD, PD_DTYPE_FLOAT32, &shape, 1,
                            bytes),
      grpc_slice_from_copied_buffer((const char *)(fake.values + req->begin), bytes)};
  pd_rpc_call_reply_slices(call, slices, 2);
}

static void *serve(void *arg) {
  (void)arg;
  while (!atomic_load(&fake.stop))
    pd_loop_run_once(fake.loop, 0.05);
  return NULL;
}

static void test_pull_retries_a_chunk(void) {
  pd_rpc_init();
  for (int i = 0; i < KEYS; i++)
    fake.values[i] = (float)i * 0.5f;
  fake.unavailable_first = 4;
  fake.loop = pd_loop_new();
  fake.srv = pd_rpc_server_new(fake.loop);
  pd_rpc_server_add_unary(fake.srv, "/pando.v1.ParameterServer/Pull",
                          &pando__v1__pull_request__descriptor, fake_pull, NULL);
  char err[256] = "";
  int port = pd_rpc_server_listen(fake.srv, "127.0.0.1:0", err, sizeof err);
  CHECK(port > 0);
  pd_rpc_server_start(fake.srv);
  pthread_t thread;
  pthread_create(&thread, NULL, serve, NULL);

  pd_shard_range range = {0, KEYS, ""};
  snprintf(range.address, sizeof range.address, "127.0.0.1:%d", port);
  pd_psclient *c = pd_psclient_new("job", 0, &range, 1, CHUNK_KEYS * sizeof(float));
  static float got[KEYS];
  uint64_t version = 0;
  int rc = pd_psclient_pull(c, 0, KEYS, 0, got, &version, err, sizeof err);
  pd_psclient_free(c);
  atomic_store(&fake.stop, 1);
  pthread_join(thread, NULL);
  pd_rpc_server_free(fake.srv);
  pd_loop_free(fake.loop);
  pd_rpc_shutdown();

  if (rc != 0)
    fprintf(stderr, "  pull: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(version, 3);
  for (int i = 0; i < KEYS; i++)
    CHECK(got[i] == (float)i * 0.5f);
  for (int k = 0; k < KEYS / CHUNK_KEYS; k++)
    CHECK_EQ_INT(fake.calls[k], k == 4 ? 2 : 1); /* the failed chunk once more */
}

int main(int argc, char **argv) {
  PD_RUN(test_pull_retries_a_chunk);
  PD_TEST_DONE();
}
