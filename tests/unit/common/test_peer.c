/* Unit tests of the Peer messages (common/src/net/peer.c): a PeerTensor
 * sent with pd_peer_header decodes back with its payload deferred, and
 * every message of the wrong job, attempt, direction, clock, micro-batch,
 * shape or size is refused with the status and field proto/pando.proto
 * gives. */
#include "pando/peer.h"

#include "../../test.h"
#include "pando/error.h"
#include "pando/rpc.h"
#include "pando/util.h"

/* Encodes `msg` with rows x width floats (data_floats of them on the wire)
 * and checks it against `e`; returns the status, `err` the message. */
static grpc_status_code roundtrip(const Pando__V1__PeerTensor *msg, uint64_t rows, uint32_t width,
                                  size_t data_floats, const pd_peer_expect *e, uint64_t *got_rows,
                                  char *err, size_t errlen) {
  float data[4096] = {0};
  for (size_t i = 0; i < data_floats && i < 4096; i++)
    data[i] = (float)i;
  int64_t shape[2] = {(int64_t)rows, (int64_t)width};
  /* pd_peer_header, or a header whose shape and payload disagree */
  grpc_slice header =
      data_floats == rows * width
          ? pd_peer_header(msg, rows, width)
          : pd_wire_tensor_header(&msg->base, PD_WIRE_PEER_TENSOR_FIELD, PD_DTYPE_FLOAT32, shape, 2,
                                  data_floats * sizeof(float));
  grpc_slice slices[2] = {
      header, grpc_slice_from_copied_buffer((const char *)data, data_floats * sizeof(float))};
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, 2);
  grpc_slice_unref(slices[0]);
  grpc_slice_unref(slices[1]);
  Pando__V1__PeerTensor *decoded = NULL;
  pd_wire_tensor t;
  grpc_status_code code = GRPC_STATUS_INVALID_ARGUMENT;
  if (pd_peer_decode(bb, &decoded, &t, err, errlen) == 0) {
    code = pd_peer_check(decoded, &t, e, got_rows, err, errlen);
    if (code == GRPC_STATUS_OK) {
      float back[4096];
      PD_ASSERT(t.data_len <= sizeof back);
      PD_ASSERT(pd_wire_tensor_copy(bb, &t, back) == 0);
      PD_ASSERT(memcmp(back, data, t.data_len) == 0);
    }
    pando__v1__peer_tensor__free_unpacked(decoded, NULL);
  }
  grpc_byte_buffer_destroy(bb);
  return code;
}

/* Stage 1 of 3 of replica 0: 16 inputs, 8 outputs, m = 4, at clock 5
 * (32 rows), clock 6 of 30 rows. */
static pd_peer_expect expect(void) {
  return (pd_peer_expect){.job = "job-1",
                          .attempt = 2,
                          .replica = 0,
                          .stage = 1,
                          .stages = 3,
                          .in_width = 16,
                          .out_width = 8,
                          .micro_batches = 4,
                          .clock = 5,
                          .batch_rows = {32, 30},
                          .max_batch_rows = 33};
}

static Pando__V1__PeerTensor forward(void) {
  Pando__V1__PeerTensor m = PANDO__V1__PEER_TENSOR__INIT;
  m.job = "job-1";
  m.attempt = 2;
  m.replica = 0;
  m.from_stage = 0;
  m.clock = 5;
  m.micro = 1;
  m.micro_batches = 4;
  m.direction = PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD;
  return m;
}

static void test_accepted(void) {
  pd_peer_expect e = expect();
  Pando__V1__PeerTensor m = forward();
  char err[512] = "";
  uint64_t rows = 0;
  CHECK_EQ_INT(roundtrip(&m, 8, 16, 8 * 16, &e, &rows, err, sizeof err), GRPC_STATUS_OK);
  CHECK_EQ_INT(rows, 8);
  /* backward from stage 2, next clock: 30 rows, micro 3 is rows [22, 30) */
  m.direction = PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_BACKWARD;
  m.from_stage = 2;
  m.clock = 6;
  m.micro = 3;
  m.loss_sum = 1.5;
  CHECK_EQ_INT(roundtrip(&m, 8, 8, 8 * 8, &e, &rows, err, sizeof err), GRPC_STATUS_OK);
  /* an unknown next batch: any size up to ceil(33 / 4) */
  e.batch_rows[1] = 0;
  CHECK_EQ_INT(roundtrip(&m, 9, 8, 9 * 8, &e, &rows, err, sizeof err), GRPC_STATUS_OK);
  CHECK_EQ_INT(roundtrip(&m, 10, 8, 10 * 8, &e, &rows, err, sizeof err),
               GRPC_STATUS_INVALID_ARGUMENT);
}

struct refusal {
  const char *what;
  grpc_status_code code;
  const char *field;
};

static void test_refused(void) {
  pd_peer_expect e = expect();
  char err[512];
  uint64_t rows;
  static const struct refusal cases[] = {
      {"job", GRPC_STATUS_FAILED_PRECONDITION, "job: this worker runs no pipeline stage of job"},
      {"attempt", GRPC_STATUS_FAILED_PRECONDITION, "attempt: 1, but this stage runs attempt 2"},
      {"replica", GRPC_STATUS_FAILED_PRECONDITION, "replica: 1, but this stage belongs"},
      {"from_stage", GRPC_STATUS_INVALID_ARGUMENT, "from_stage: activations from stage 2"},
      {"direction", GRPC_STATUS_INVALID_ARGUMENT, "direction: must be FORWARD or BACKWARD"},
      {"backward_from", GRPC_STATUS_INVALID_ARGUMENT, "from_stage: gradients from stage 0"},
      {"old_clock", GRPC_STATUS_INVALID_ARGUMENT, "clock: 4, but this stage takes clocks 5 and 6"},
      {"far_clock", GRPC_STATUS_INVALID_ARGUMENT, "clock: 7"},
      {"micro", GRPC_STATUS_INVALID_ARGUMENT, "micro: 4, but the mini-batch has 4"},
      {"micro_batches", GRPC_STATUS_INVALID_ARGUMENT, "micro_batches: 5"},
      {"micro_batches_count", GRPC_STATUS_INVALID_ARGUMENT, "micro_batches: 3, but clock 5 has 4"},
      {"rows", GRPC_STATUS_INVALID_ARGUMENT, "tensor.shape: [7, 16], but micro-batch 1"},
      {"width", GRPC_STATUS_INVALID_ARGUMENT, "tensor.shape: [8, 15]"},
      {"data", GRPC_STATUS_INVALID_ARGUMENT, "tensor.data: 508 bytes"},
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    Pando__V1__PeerTensor m = forward();
    uint64_t r = 8;
    uint32_t w = 16;
    size_t floats = 8 * 16;
    const char *what = cases[i].what;
    if (!strcmp(what, "job"))
      m.job = "job-2";
    else if (!strcmp(what, "attempt"))
      m.attempt = 1;
    else if (!strcmp(what, "replica"))
      m.replica = 1;
    else if (!strcmp(what, "from_stage"))
      m.from_stage = 2;
    else if (!strcmp(what, "direction"))
      m.direction = 7;
    else if (!strcmp(what, "backward_from"))
      m.direction = PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_BACKWARD;
    else if (!strcmp(what, "old_clock"))
      m.clock = 4;
    else if (!strcmp(what, "far_clock"))
      m.clock = 7;
    else if (!strcmp(what, "micro"))
      m.micro = 4;
    else if (!strcmp(what, "micro_batches"))
      m.micro_batches = 5;
    else if (!strcmp(what, "micro_batches_count"))
      m.micro_batches = 3;
    else if (!strcmp(what, "rows"))
      r = 7, floats = 7 * 16;
    else if (!strcmp(what, "width"))
      w = 15, floats = 8 * 15;
    else if (!strcmp(what, "data"))
      floats = 127;
    err[0] = '\0';
    grpc_status_code code = roundtrip(&m, r, w, floats, &e, &rows, err, sizeof err);
    if (code != cases[i].code || !strstr(err, cases[i].field))
      fprintf(stderr, "  case %s: status %d, \"%s\"\n", what, (int)code, err);
    CHECK_EQ_INT(code, cases[i].code);
    CHECK_STR_CONTAINS(err, cases[i].field);
  }
}

/* Bytes that are no PeerTensor: refused, nothing allocated for the payload. */
static void test_garbage(void) {
  static const uint8_t junk[] = {0x4a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)junk, sizeof junk);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  Pando__V1__PeerTensor *msg = NULL;
  pd_wire_tensor t;
  char err[256] = "";
  CHECK(pd_peer_decode(bb, &msg, &t, err, sizeof err) != 0);
  CHECK(msg == NULL);
  grpc_byte_buffer_destroy(bb);
}

int main(int argc, char **argv) {
  pd_rpc_init();
  PD_RUN(test_accepted);
  PD_RUN(test_refused);
  PD_RUN(test_garbage);
  PD_TEST_DONE();
}
