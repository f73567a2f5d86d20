/* Unit tests of the tensor wire codec: headers that make the same bytes as
 * protobuf-c, decoding of protobuf-c output in any field order and over any
 * slicing, where the payload lands, and malformed input (including a
 * deterministic fuzz loop: run it under ASan). */
#include "pando/wire.h"

#include <stdint.h>

#include "../../test.h"
#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/rpc.h"

/* ---------------------------------------------------------------- helpers */

/* Bytes appended one piece at a time. */
typedef struct bytes {
  uint8_t *data;
  size_t len, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->data = realloc(b->data, b->cap);
    if (!b->data)
      abort();
  }
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void bytes_varint(bytes *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = (uint8_t)v;
  bytes_put(b, tmp, n);
}

/* Appends what protobuf-c packs for `msg`. */
static void bytes_pack(bytes *b, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *tmp = malloc(n ? n : 1);
  if (protobuf_c_message_pack(msg, tmp) != n)
    abort();
  bytes_put(b, tmp, n);
  free(tmp);
}

/* Appends field `field` of wire type LEN holding `body`. */
static void bytes_len_field(bytes *b, uint32_t field, const bytes *body) {
  bytes_varint(b, (uint64_t)field << 3 | 2);
  bytes_varint(b, body->len);
  bytes_put(b, body->data, body->len);
}

static uint64_t rng_state;
static uint64_t rng_next(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return rng_state >> 16;
}

static uint8_t *pattern(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n ? n : 1);
  rng_state = seed;
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)rng_next();
  return p;
}

/* A byte buffer over a copy of data[0, len) cut into slices of `chunk` bytes
 * (0: one slice). With `empties`, an empty slice goes between any two. */
static grpc_byte_buffer *make_bb(const uint8_t *data, size_t len, size_t chunk, int empties) {
  size_t per = chunk ? chunk : (len ? len : 1);
  size_t max = 2 * (len / per + 2);
  grpc_slice *slices = malloc(max * sizeof *slices);
  size_t n = 0;
  for (size_t at = 0; at < len || n == 0; at += per) {
    size_t k = len - at < per ? len - at : per;
    slices[n++] = grpc_slice_from_copied_buffer((const char *)data + at, k);
    if (empties)
      slices[n++] = grpc_empty_slice();
    if (at + k >= len)
      break;
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
  for (size_t i = 0; i < n; i++)
    grpc_slice_unref(slices[i]);
  free(slices);
  return bb;
}

/* Decodes data[0, len) sliced by `chunk`. On error *rest is NULL. */
static int decode(const uint8_t *data, size_t len, size_t chunk,
                  const ProtobufCMessageDescriptor *desc, uint32_t field, void *dst, size_t dst_cap,
                  pd_buf *scratch, ProtobufCMessage **rest, pd_wire_tensor *t, char *err,
                  size_t errlen) {
  grpc_byte_buffer *bb = make_bb(data, len, chunk, chunk == 5);
  int rc = pd_wire_decode(bb, desc, field, dst, dst_cap, scratch, rest, t, err, errlen);
  grpc_byte_buffer_destroy(bb);
  return rc;
}

/* A PushRequest without its gradient, every field set. */
static Pando__V1__PushRequest push_rest(void) {
  Pando__V1__PushRequest req = PANDO__V1__PUSH_REQUEST__INIT;
  req.job = "job-7f3a";
  req.begin = 123456789;
  req.end = 123456789 + 300;
  req.worker = 3;
  req.clock = 1ll << 40;
  return req;
}

static int same_push_fields(const Pando__V1__PushRequest *a, const Pando__V1__PushRequest *b) {
  return strcmp(a->job, b->job) == 0 && a->begin == b->begin && a->end == b->end &&
         a->worker == b->worker && a->clock == b->clock;
}

/* Packs a PushRequest with gradient {FLOAT32, shape, payload} by protobuf-c. */
static void pack_push(bytes *out, const int64_t *shape, int ndim, const uint8_t *payload,
                      size_t len) {
  Pando__V1__PushRequest req = push_rest();
  Pando__V1__Tensor tensor = PANDO__V1__TENSOR__INIT;
  tensor.dtype = PANDO__V1__DTYPE__DTYPE_FLOAT32;
  tensor.n_shape = (size_t)ndim;
  tensor.shape = (int64_t *)shape;
  tensor.data.len = len;
  tensor.data.data = (uint8_t *)payload;
  req.gradient = &tensor;
  bytes_pack(out, &req.base);
}

/* ---------------------------------------------------------------- headers */

static const size_t sizes[] = {0, 1, 127, 128, 129, 16383, 16384, 16385, 3 << 20};
enum { NSIZES = sizeof sizes / sizeof *sizes };

/* header + payload equals protobuf-c's packing of the same PushRequest, and
 * of the same PullResponse, for lengths around every varint boundary. Length
 * 0 is checked separately (test_header_empty_payload_matches_protobuf_c). */
static void test_header_matches_protobuf_c(void) {
  for (int s = 1; s < NSIZES; s++) {
    size_t len = sizes[s];
    uint8_t *payload = pattern(len, len);
    const int64_t shapes[][4] = {{(int64_t)len / 4}, {(int64_t)len, 1}, {1, 2, 3, 1ll << 40}};
    const int ndims[] = {1, 2, 4, 0};
    for (int k = 0; k < 4; k++) {
      const int64_t *shape = shapes[k < 3 ? k : 0];
      Pando__V1__PushRequest req = push_rest();
      grpc_slice header =
          pd_wire_tensor_header(&req.base, 6, PD_DTYPE_FLOAT32, shape, ndims[k], len);
      bytes ours = {0}, theirs = {0};
      bytes_put(&ours, GRPC_SLICE_START_PTR(header), GRPC_SLICE_LENGTH(header));
      bytes_put(&ours, payload, len);
      grpc_slice_unref(header);
      pack_push(&theirs, shape, ndims[k], payload, len);
      int same = ours.len == theirs.len && memcmp(ours.data, theirs.data, ours.len) == 0;
      if (!same)
        fprintf(stderr, "  PushRequest, payload %zu, ndim %d: %zu bytes vs %zu\n", len, ndims[k],
                ours.len, theirs.len);
      free(ours.data);
      free(theirs.data);
      CHECK(same);
    }

    /* PullResponse: tensor field 2 after version. */
    Pando__V1__PullResponse resp = PANDO__V1__PULL_RESPONSE__INIT;
    resp.version = 987654321;
    const int64_t shape[1] = {(int64_t)len / 4};
    grpc_slice header = pd_wire_tensor_header(&resp.base, 2, PD_DTYPE_FLOAT32, shape, 1, len);
    bytes ours = {0}, theirs = {0};
    bytes_put(&ours, GRPC_SLICE_START_PTR(header), GRPC_SLICE_LENGTH(header));
    bytes_put(&ours, payload, len);
    grpc_slice_unref(header);
    Pando__V1__Tensor tensor = PANDO__V1__TENSOR__INIT;
    tensor.dtype = PANDO__V1__DTYPE__DTYPE_FLOAT32;
    tensor.n_shape = 1;
    tensor.shape = (int64_t *)shape;
    tensor.data.len = len;
    tensor.data.data = payload;
    resp.values = &tensor;
    bytes_pack(&theirs, &resp.base);
    int same = ours.len == theirs.len && memcmp(ours.data, theirs.data, ours.len) == 0;
    free(ours.data);
    free(theirs.data);
    free(payload);
    CHECK(same);
  }
}

/* An empty payload: protobuf-c (proto3) leaves an empty `bytes` field out,
 * so byte-for-byte equality means no data field at all. Whatever the bytes,
 * the header alone must decode to an empty tensor. */
static void test_header_empty_payload_matches_protobuf_c(void) {
  const int64_t shape[1] = {0};
  Pando__V1__PushRequest req = push_rest();
  grpc_slice header = pd_wire_tensor_header(&req.base, 6, PD_DTYPE_FLOAT32, shape, 1, 0);
  bytes ours = {0}, theirs = {0};
  bytes_put(&ours, GRPC_SLICE_START_PTR(header), GRPC_SLICE_LENGTH(header));
  grpc_slice_unref(header);
  pack_push(&theirs, shape, 1, NULL, 0);

  char err[256] = "";
  pd_buf scratch = {0};
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  int rc = decode(ours.data, ours.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0,
                  &scratch, &rest, &t, err, sizeof err);
  int same = ours.len == theirs.len && memcmp(ours.data, theirs.data, ours.len) == 0;
  if (!same)
    fprintf(stderr, "  header for an empty payload is %zu bytes, protobuf-c packs %zu\n", ours.len,
            theirs.len);
  free(ours.data);
  free(theirs.data);
  CHECK_EQ_INT(rc, 0);
  CHECK(t.present && t.ndim == 1 && t.shape[0] == 0 && t.data_len == 0);
  CHECK(same_push_fields((Pando__V1__PushRequest *)rest, &req));
  protobuf_c_message_free_unpacked(rest, NULL);
  pd_buf_free(&scratch);
  CHECK(same);
}

/* [header, borrowed payload] sent as one byte buffer decodes to the payload. */
static void test_header_borrow_roundtrip(void) {
  char err[256] = "";
  pd_buf scratch = {0};
  for (int s = 1; s < NSIZES; s++) {
    size_t len = sizes[s];
    uint8_t *payload = pattern(len, len + 1);
    const int64_t shape[2] = {(int64_t)len, 1};
    Pando__V1__PushRequest req = push_rest();
    grpc_slice slices[2];
    slices[0] = pd_wire_tensor_header(&req.base, 6, PD_DTYPE_FLOAT32, shape, 2, len);
    slices[1] = pd_wire_borrow(payload, len);
    CHECK(GRPC_SLICE_START_PTR(slices[1]) == payload);
    CHECK_EQ_INT(GRPC_SLICE_LENGTH(slices[1]), len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, 2);
    grpc_slice_unref(slices[0]);
    grpc_slice_unref(slices[1]);
    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    int rc = pd_wire_decode(bb, &pando__v1__push_request__descriptor, 6, NULL, 0, &scratch, &rest,
                            &t, err, sizeof err);
    grpc_byte_buffer_destroy(bb); /* releases the borrowed slice: frees nothing */
    int ok = rc == 0 && t.present && t.dtype == PD_DTYPE_FLOAT32 && t.ndim == 2 &&
             t.shape[0] == (int64_t)len && t.shape[1] == 1 && t.data_len == len &&
             t.data == scratch.data && memcmp(t.data, payload, len) == 0 &&
             same_push_fields((Pando__V1__PushRequest *)rest, &req) &&
             ((Pando__V1__PushRequest *)rest)->gradient == NULL;
    if (rest)
      protobuf_c_message_free_unpacked(rest, NULL);
    free(payload); /* still ours */
    CHECK(ok);
  }
  pd_buf_free(&scratch);
}

/* ---------------------------------------------------------------- decoding */

/* A PushRequest in an order protobuf-c never writes: the tensor first (its
 * fields reversed, shape partly unpacked), the other fields split around it,
 * plus unknown fields of every wire type. */
static void build_reordered_push(bytes *msg, const uint8_t *payload, size_t len) {
  Pando__V1__PushRequest full = push_rest();
  Pando__V1__PushRequest job_only = PANDO__V1__PUSH_REQUEST__INIT;
  Pando__V1__PushRequest others = full;
  job_only.job = full.job;
  others.job = (char *)protobuf_c_empty_string;

  /* Tensor body: data, shape [2, 3] packed, shape 5 unpacked, unknown
   * fields, dtype. */
  bytes body = {0}, shape = {0};
  bytes_varint(&body, 3 << 3 | 2);
  bytes_varint(&body, len);
  bytes_put(&body, payload, len);
  bytes_varint(&shape, 2);
  bytes_varint(&shape, 3);
  bytes_len_field(&body, 2, &shape);
  bytes_varint(&body, 2 << 3 | 0);
  bytes_varint(&body, 5);
  bytes_varint(&body, 9 << 3 | 0); /* unknown varint */
  bytes_varint(&body, 1ull << 62);
  bytes_varint(&body, 10 << 3 | 1); /* unknown fixed64 */
  bytes_put(&body, "12345678", 8);
  bytes_varint(&body, 11 << 3 | 5); /* unknown fixed32 */
  bytes_put(&body, "1234", 4);
  bytes_varint(&body, 12 << 3 | 2); /* unknown bytes */
  bytes_varint(&body, 3);
  bytes_put(&body, "abc", 3);
  bytes_varint(&body, 1 << 3 | 0);
  bytes_varint(&body, PANDO__V1__DTYPE__DTYPE_FLOAT32);

  bytes_len_field(msg, 6, &body);
  bytes_pack(msg, &others.base);
  bytes_varint(msg, 100 << 3 | 0); /* unknown top-level field */
  bytes_varint(msg, 42);
  bytes_pack(msg, &job_only.base);
  free(body.data);
  free(shape.data);
}

static void test_decode_any_field_order(void) {
  char err[256] = "";
  pd_buf scratch = {0};
  const size_t lens[] = {0, 1, 200, 70000};
  for (int l = 0; l < 4; l++) {
    size_t len = lens[l];
    uint8_t *payload = pattern(len, 77 + len);
    bytes msg = {0};
    build_reordered_push(&msg, payload, len);
    /* protobuf-c agrees on the other fields and the tensor. */
    Pando__V1__PushRequest *ref = pando__v1__push_request__unpack(NULL, msg.len, msg.data);
    CHECK(ref != NULL);
    CHECK(ref->gradient != NULL && ref->gradient->n_shape == 3);

    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    int rc = decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0,
                    &scratch, &rest, &t, err, sizeof err);
    Pando__V1__PushRequest *got = (Pando__V1__PushRequest *)rest;
    int ok = rc == 0 && t.present && t.dtype == PANDO__V1__DTYPE__DTYPE_FLOAT32 && t.ndim == 3 &&
             t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 5 && t.data_len == len &&
             (len == 0 || memcmp(t.data, payload, len) == 0) && same_push_fields(got, ref) &&
             got->gradient == NULL && ref->gradient->data.len == len;
    if (rc != 0)
      fprintf(stderr, "  decode: %s\n", err);
    if (rest)
      protobuf_c_message_free_unpacked(rest, NULL);
    pando__v1__push_request__free_unpacked(ref, NULL);
    free(msg.data);
    free(payload);
    CHECK(ok);
  }
  pd_buf_free(&scratch);
}

/* A message with no tensor field, and an empty buffer. */
static void test_decode_without_tensor(void) {
  char err[256] = "";
  pd_buf scratch = {0};
  Pando__V1__PushRequest req = push_rest();
  bytes msg = {0};
  bytes_pack(&msg, &req.base);
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  CHECK_EQ_INT(decode(msg.data, msg.len, 1, &pando__v1__push_request__descriptor, 6, NULL, 0,
                      &scratch, &rest, &t, err, sizeof err),
               0);
  free(msg.data);
  CHECK(!t.present && t.data == NULL && t.data_len == 0 && t.ndim == 0);
  CHECK(same_push_fields((Pando__V1__PushRequest *)rest, &req));
  protobuf_c_message_free_unpacked(rest, NULL);

  grpc_byte_buffer *empty = make_bb(NULL, 0, 0, 0);
  CHECK_EQ_INT(pd_wire_decode(empty, &pando__v1__pull_response__descriptor, 2, NULL, 0, &scratch,
                              &rest, &t, err, sizeof err),
               0);
  grpc_byte_buffer_destroy(empty);
  CHECK(!t.present);
  CHECK_EQ_INT(((Pando__V1__PullResponse *)rest)->version, 0);
  protobuf_c_message_free_unpacked(rest, NULL);
  pd_buf_free(&scratch);
}

/* Every slicing: 1, 3, 7 bytes, 5 with empty slices between, and random
 * cuts, so that every varint and the payload cross slice boundaries. */
static void test_decode_many_slices(void) {
  char err[256] = "";
  pd_buf scratch = {0};
  size_t len = 1000;
  uint8_t *payload = pattern(len, 5);
  uint8_t *dst = malloc(len);
  bytes msg = {0};
  build_reordered_push(&msg, payload, len);
  /* ...and the PullResponse our header makes, 16384 bytes of payload. */
  size_t len2 = 16384;
  uint8_t *payload2 = pattern(len2, 6);
  Pando__V1__PullResponse resp = PANDO__V1__PULL_RESPONSE__INIT;
  resp.version = 300;
  const int64_t shape2[1] = {4096};
  grpc_slice header = pd_wire_tensor_header(&resp.base, 2, PD_DTYPE_FLOAT32, shape2, 1, len2);
  bytes msg2 = {0};
  bytes_put(&msg2, GRPC_SLICE_START_PTR(header), GRPC_SLICE_LENGTH(header));
  bytes_put(&msg2, payload2, len2);
  grpc_slice_unref(header);

  const size_t chunks[] = {1, 2, 3, 5, 7, 11, 64, 4096};
  for (int c = 0; c < 8; c++) {
    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    memset(dst, 0, len);
    int rc = decode(msg.data, msg.len, chunks[c], &pando__v1__push_request__descriptor, 6, dst, len,
                    &scratch, &rest, &t, err, sizeof err);
    Pando__V1__PushRequest want = push_rest();
    int ok = rc == 0 && t.data == dst && t.data_len == len && memcmp(dst, payload, len) == 0 &&
             t.ndim == 3 && t.shape[2] == 5 &&
             same_push_fields((Pando__V1__PushRequest *)rest, &want);
    if (rest)
      protobuf_c_message_free_unpacked(rest, NULL);
    if (!ok)
      fprintf(stderr, "  chunk %zu: rc %d %s\n", chunks[c], rc, rc ? err : "");
    CHECK(ok);

    rc = decode(msg2.data, msg2.len, chunks[c], &pando__v1__pull_response__descriptor, 2, NULL, 0,
                &scratch, &rest, &t, err, sizeof err);
    ok = rc == 0 && t.data == scratch.data && t.data_len == len2 &&
         memcmp(t.data, payload2, len2) == 0 && t.ndim == 1 && t.shape[0] == 4096 &&
         ((Pando__V1__PullResponse *)rest)->version == 300;
    if (rest)
      protobuf_c_message_free_unpacked(rest, NULL);
    CHECK(ok);
  }

  /* Random cut points, including empty slices. */
  rng_state = 31337;
  for (int round = 0; round < 50; round++) {
    grpc_slice slices[64];
    size_t n = 0, at = 0;
    while (at < msg.len && n < 63) {
      size_t k = rng_next() % 24;
      if (k > msg.len - at)
        k = msg.len - at;
      slices[n++] = grpc_slice_from_copied_buffer((const char *)msg.data + at, k);
      at += k;
    }
    slices[n++] = grpc_slice_from_copied_buffer((const char *)msg.data + at, msg.len - at);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
    for (size_t i = 0; i < n; i++)
      grpc_slice_unref(slices[i]);
    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    int rc = pd_wire_decode(bb, &pando__v1__push_request__descriptor, 6, NULL, 0, &scratch, &rest,
                            &t, err, sizeof err);
    grpc_byte_buffer_destroy(bb);
    int ok = rc == 0 && t.data_len == len && memcmp(t.data, payload, len) == 0;
    if (rest)
      protobuf_c_message_free_unpacked(rest, NULL);
    CHECK(ok);
  }
  free(msg.data);
  free(msg2.data);
  free(payload);
  free(payload2);
  free(dst);
  pd_buf_free(&scratch);
}

/* ---------------------------------------------------------------- destinations */

static void test_decode_destination(void) {
  char err[256] = "";
  pd_buf scratch = {0};
  size_t len = 4000;
  uint8_t *payload = pattern(len, 8);
  const int64_t shape[1] = {1000};
  bytes msg = {0};
  pack_push(&msg, shape, 1, payload, len);
  uint8_t *dst = calloc(1, len + 16);
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;

  /* Into dst, exactly the right size: scratch untouched. */
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, dst, len,
                      &scratch, &rest, &t, err, sizeof err),
               0);
  protobuf_c_message_free_unpacked(rest, NULL);
  CHECK(t.data == dst && t.data_len == len && memcmp(dst, payload, len) == 0);
  CHECK(scratch.data == NULL && scratch.cap == 0);
  for (size_t i = len; i < len + 16; i++)
    CHECK(dst[i] == 0); /* nothing past the payload */

  /* Into dst, room to spare. */
  memset(dst, 0, len + 16);
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, dst, len + 16,
                      &scratch, &rest, &t, err, sizeof err),
               0);
  protobuf_c_message_free_unpacked(rest, NULL);
  CHECK(t.data == dst && t.data_len == len && memcmp(dst, payload, len) == 0);

  /* Larger than dst_cap: an error, and nothing to free. */
  err[0] = '\0';
  rest = (ProtobufCMessage *)1;
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, dst, len - 1,
                      &scratch, &rest, &t, err, sizeof err),
               -PD_EFORMAT);
  CHECK(rest == NULL);
  CHECK_STR_CONTAINS(err, "4000 bytes");
  CHECK_STR_CONTAINS(err, "3999");
  CHECK(scratch.data == NULL);

  /* dst NULL: into scratch, grown as needed and then reused. */
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0,
                      &scratch, &rest, &t, err, sizeof err),
               0);
  protobuf_c_message_free_unpacked(rest, NULL);
  CHECK(scratch.data != NULL && scratch.cap >= len);
  CHECK(t.data == scratch.data && t.data_len == len && memcmp(t.data, payload, len) == 0);
  CHECK_EQ_INT((uintptr_t)scratch.data % 64, 0);
  void *first = scratch.data;
  bytes small = {0};
  pack_push(&small, shape, 1, payload + 1, 100);
  CHECK_EQ_INT(decode(small.data, small.len, 3, &pando__v1__push_request__descriptor, 6, NULL, 0,
                      &scratch, &rest, &t, err, sizeof err),
               0);
  protobuf_c_message_free_unpacked(rest, NULL);
  CHECK(scratch.data == first && t.data == first && t.data_len == 100);
  CHECK(memcmp(t.data, payload + 1, 100) == 0);
  /* dst_cap is ignored when writing to scratch. */
  free(small.data);
  free(msg.data);
  free(payload);
  free(dst);
  pd_buf_free(&scratch);
}

static void test_buf_reserve(void) {
  pd_buf buf = {0};
  pd_buf_reserve(&buf, 0);
  CHECK(buf.cap == 0);
  pd_buf_reserve(&buf, 100);
  CHECK(buf.data != NULL && buf.cap >= 100);
  CHECK_EQ_INT((uintptr_t)buf.data % 64, 0);
  memset(buf.data, 1, 100);
  void *first = buf.data;
  pd_buf_reserve(&buf, 50); /* smaller: kept */
  CHECK(buf.data == first && buf.cap >= 100);
  pd_buf_reserve(&buf, 100);
  CHECK(buf.data == first);
  pd_buf_reserve(&buf, 1 << 20);
  CHECK(buf.cap >= (1 << 20));
  CHECK_EQ_INT((uintptr_t)buf.data % 64, 0);
  memset(buf.data, 2, 1 << 20); /* all of it is writable (ASan) */
  pd_buf_free(&buf);
}

/* ---------------------------------------------------------------- malformed */

/* A small valid PushRequest: rest fields first, the tensor last. */
static void small_message(bytes *msg, size_t *tensor_at) {
  Pando__V1__PushRequest req = push_rest();
  bytes_pack(msg, &req.base);
  *tensor_at = msg->len;
  const int64_t shape[2] = {2, 3};
  const uint8_t payload[24] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,
                               13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};
  Pando__V1__PushRequest with = push_rest();
  Pando__V1__Tensor tensor = PANDO__V1__TENSOR__INIT;
  tensor.dtype = PANDO__V1__DTYPE__DTYPE_FLOAT32;
  tensor.n_shape = 2;
  tensor.shape = (int64_t *)shape;
  tensor.data.len = sizeof payload;
  tensor.data.data = (uint8_t *)payload;
  with.gradient = &tensor;
  bytes full = {0};
  bytes_pack(&full, &with.base);
  bytes_put(msg, full.data + *tensor_at, full.len - *tensor_at);
  free(full.data);
}

/* Cut at every offset: inside the tensor always an error; before it,
 * exactly when protobuf-c cannot unpack the prefix either. */
static void test_truncated_everywhere(void) {
  char err[256];
  pd_buf scratch = {0};
  bytes msg = {0};
  size_t tensor_at;
  small_message(&msg, &tensor_at);
  uint8_t dst[24];
  for (size_t cut = 0; cut < msg.len; cut++) {
    for (size_t chunk = 0; chunk <= 3; chunk++) {
      ProtobufCMessage *rest = NULL;
      pd_wire_tensor t;
      err[0] = '\0';
      int rc = decode(msg.data, cut, chunk, &pando__v1__push_request__descriptor, 6,
                      chunk == 2 ? dst : NULL, sizeof dst, &scratch, &rest, &t, err, sizeof err);
      int want_ok = 0;
      if (cut <= tensor_at) {
        ProtobufCMessage *ref =
            protobuf_c_message_unpack(&pando__v1__push_request__descriptor, NULL, cut, msg.data);
        want_ok = ref != NULL;
        if (ref)
          protobuf_c_message_free_unpacked(ref, NULL);
      }
      if (rc != (want_ok ? 0 : -PD_EFORMAT))
        fprintf(stderr, "  cut at %zu of %zu (tensor at %zu), chunk %zu: rc %d\n", cut, msg.len,
                tensor_at, chunk, rc);
      CHECK_EQ_INT(rc, want_ok ? 0 : -PD_EFORMAT);
      if (rc == 0) {
        CHECK(!t.present);
        protobuf_c_message_free_unpacked(rest, NULL);
      } else {
        CHECK(rest == NULL);
        CHECK(err[0] != '\0');
      }
    }
  }
  free(msg.data);
  pd_buf_free(&scratch);
}

/* Decodes hand-made bytes; returns rc (frees rest). */
static int decode_bytes(const bytes *msg, size_t chunk, char *err, size_t errlen) {
  pd_buf scratch = {0};
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  err[0] = '\0';
  int rc = decode(msg->data, msg->len, chunk, &pando__v1__push_request__descriptor, 6, NULL, 0,
                  &scratch, &rest, &t, err, errlen);
  if (rest)
    protobuf_c_message_free_unpacked(rest, NULL);
  pd_buf_free(&scratch);
  return rc;
}

/* A tensor body: dtype FLOAT32, shape dims, `len` bytes of data. */
static void tensor_body(bytes *body, const int64_t *shape, int ndim, size_t len) {
  bytes_varint(body, 1 << 3 | 0);
  bytes_varint(body, 1);
  if (ndim > 0) {
    bytes packed = {0};
    for (int i = 0; i < ndim; i++)
      bytes_varint(&packed, (uint64_t)shape[i]);
    bytes_len_field(body, 2, &packed);
    free(packed.data);
  }
  bytes_varint(body, 3 << 3 | 2);
  bytes_varint(body, len);
  for (size_t i = 0; i < len; i++)
    bytes_put(body, "x", 1);
}

static void test_lengths_beyond_message(void) {
  char err[256];
  const int64_t shape[1] = {4};
  for (size_t chunk = 0; chunk <= 1; chunk++) {
    /* The tensor field claims one byte more than there is. */
    bytes body = {0}, msg = {0};
    tensor_body(&body, shape, 1, 16);
    bytes_varint(&msg, 6 << 3 | 2);
    bytes_varint(&msg, body.len + 1);
    bytes_put(&msg, body.data, body.len);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    CHECK_STR_CONTAINS(err, "PushRequest");

    /* The data claims more than the tensor, the tensor fits the message. */
    msg.len = 0;
    bytes_varint(&msg, 6 << 3 | 2);
    bytes_varint(&msg, body.len);
    bytes_put(&msg, body.data, body.len - 16);
    msg.data[msg.len - 1] = 17; /* data length 17 in a tensor holding 16 */
    for (int i = 0; i < 16; i++)
      bytes_put(&msg, "x", 1);
    bytes_varint(&msg, 1 << 3 | 2); /* job "ab" after it: one more byte exists */
    bytes_varint(&msg, 2);
    bytes_put(&msg, "ab", 2);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);

    /* Huge lengths: 2^63 and 2^64 - 1. */
    msg.len = 0;
    bytes_varint(&msg, 6 << 3 | 2);
    bytes_varint(&msg, 1ull << 63);
    bytes_put(&msg, body.data, body.len);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    msg.len = 0;
    bytes_varint(&msg, 6 << 3 | 2);
    bytes_varint(&msg, 10 + 2);
    bytes_varint(&msg, 3 << 3 | 2);
    bytes_varint(&msg, UINT64_MAX);
    bytes_put(&msg, "x", 1);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);

    /* Another field's length past the end. */
    msg.len = 0;
    bytes_varint(&msg, 1 << 3 | 2);
    bytes_varint(&msg, 50);
    bytes_put(&msg, "job", 3);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    msg.len = 0;
    bytes_varint(&msg, 1 << 3 | 2);
    bytes_varint(&msg, UINT64_MAX);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);

    /* A varint of 11 bytes. */
    msg.len = 0;
    bytes_put(&msg, "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    free(body.data);
    free(msg.data);
  }
}

static void test_fields_twice_and_dims(void) {
  char err[256];
  const int64_t shape4[4] = {1, 2, 3, 4}, shape5[5] = {1, 2, 3, 4, 5};
  for (size_t chunk = 0; chunk <= 1; chunk++) {
    /* Tensor field twice. */
    bytes body = {0}, msg = {0};
    tensor_body(&body, shape4, 1, 4);
    bytes_len_field(&msg, 6, &body);
    bytes_len_field(&msg, 6, &body);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    CHECK_STR_CONTAINS(err, "tensor field appears twice");

    /* Data twice in one tensor. */
    bytes_varint(&body, 3 << 3 | 2);
    bytes_varint(&body, 4);
    bytes_put(&body, "yyyy", 4);
    msg.len = 0;
    bytes_len_field(&msg, 6, &body);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    CHECK_STR_CONTAINS(err, "data appears twice");

    /* Four dimensions are fine, five are not: packed, unpacked, or split. */
    body.len = 0;
    tensor_body(&body, shape4, 4, 4);
    msg.len = 0;
    bytes_len_field(&msg, 6, &body);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), 0);

    body.len = 0;
    tensor_body(&body, shape5, 5, 4);
    msg.len = 0;
    bytes_len_field(&msg, 6, &body);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    CHECK_STR_CONTAINS(err, "more than 4 dimensions");

    body.len = 0;
    for (int i = 0; i < 5; i++) {
      bytes_varint(&body, 2 << 3 | 0);
      bytes_varint(&body, 7);
    }
    msg.len = 0;
    bytes_len_field(&msg, 6, &body);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    CHECK_STR_CONTAINS(err, "more than 4 dimensions");

    body.len = 0;
    tensor_body(&body, shape4, 4, 0);
    bytes_varint(&body, 2 << 3 | 0); /* a fifth after four packed */
    bytes_varint(&body, 9);
    msg.len = 0;
    bytes_len_field(&msg, 6, &body);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);

    /* Wire types that do not exist (6, 7) or groups (3, 4). */
    for (int wt = 3; wt <= 7; wt++) {
      if (wt == 5)
        continue;
      body.len = 0;
      bytes_varint(&body, (uint64_t)(9 << 3 | wt));
      bytes_varint(&body, 0);
      msg.len = 0;
      bytes_len_field(&msg, 6, &body);
      CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
      msg.len = 0;
      bytes_varint(&msg, (uint64_t)(9 << 3 | wt));
      bytes_varint(&msg, 0);
      CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    }

    /* The tensor field with the wrong wire type. */
    msg.len = 0;
    bytes_varint(&msg, 6 << 3 | 0);
    bytes_varint(&msg, 1);
    CHECK_EQ_INT(decode_bytes(&msg, chunk, err, sizeof err), -PD_EFORMAT);
    free(body.data);
    free(msg.data);
  }
}

/* Valid protobuf that protobuf-c does not write but other encoders may: an
 * empty packed shape (length 0) is no dimension at all. */
static void test_empty_packed_shape(void) {
  char err[256];
  bytes body = {0}, msg = {0};
  bytes_varint(&body, 1 << 3 | 0);
  bytes_varint(&body, 1);
  bytes_varint(&body, 2 << 3 | 2);
  bytes_varint(&body, 0);
  bytes_varint(&body, 3 << 3 | 2);
  bytes_varint(&body, 4);
  bytes_put(&body, "abcd", 4);
  bytes_len_field(&msg, 6, &body);
  Pando__V1__PushRequest *ref = pando__v1__push_request__unpack(NULL, msg.len, msg.data);
  CHECK(ref != NULL); /* protobuf-c reads it */
  CHECK_EQ_INT(ref->gradient->n_shape, 0);
  pando__v1__push_request__free_unpacked(ref, NULL);

  pd_buf scratch = {0};
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  int rc = decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0, &scratch,
                  &rest, &t, err, sizeof err);
  if (rest)
    protobuf_c_message_free_unpacked(rest, NULL);
  pd_buf_free(&scratch);
  free(body.data);
  free(msg.data);
  if (rc != 0)
    fprintf(stderr, "  decode: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(t.ndim, 0);
  CHECK_EQ_INT(t.data_len, 4);
}

/* A packed shape whose last varint runs past the packed field's length is
 * malformed (protobuf-c refuses it too). */
static void test_packed_shape_overrun(void) {
  char err[256];
  bytes body = {0}, msg = {0};
  bytes_varint(&body, 1 << 3 | 0);
  bytes_varint(&body, 1);
  bytes_varint(&body, 2 << 3 | 2);
  bytes_varint(&body, 1);          /* one byte of shape... */
  bytes_put(&body, "\x80\x01", 2); /* ...that says "more follows": 128 */
  bytes_varint(&body, 3 << 3 | 2);
  bytes_varint(&body, 0);
  bytes_len_field(&msg, 6, &body);
  Pando__V1__PushRequest *ref = pando__v1__push_request__unpack(NULL, msg.len, msg.data);
  CHECK(ref == NULL);
  int rc = decode_bytes(&msg, 0, err, sizeof err);
  free(body.data);
  free(msg.data);
  CHECK_EQ_INT(rc, -PD_EFORMAT);
}

/* Random bytes and random mutations of valid messages: 0 or -PD_EFORMAT,
 * never a crash, never a leak (ASan), *rest set exactly on success. */
static void test_fuzz(void) {
  char err[256];
  pd_buf scratch = {0};
  uint8_t dst[64];
  bytes valid[3] = {{0}, {0}, {0}};
  size_t tensor_at;
  small_message(&valid[0], &tensor_at);
  uint8_t *payload = pattern(40, 1);
  build_reordered_push(&valid[1], payload, 40);
  const int64_t shape[1] = {10};
  Pando__V1__PullResponse resp = PANDO__V1__PULL_RESPONSE__INIT;
  resp.version = 5;
  grpc_slice header = pd_wire_tensor_header(&resp.base, 2, PD_DTYPE_FLOAT32, shape, 1, 40);
  bytes_put(&valid[2], GRPC_SLICE_START_PTR(header), GRPC_SLICE_LENGTH(header));
  bytes_put(&valid[2], payload, 40);
  grpc_slice_unref(header);
  free(payload);

  uint8_t buf[256];
  int successes = 0;
  for (int iter = 0; iter < 6000; iter++) {
    rng_state = 0x5eed0000u + (uint64_t)iter;
    size_t len;
    int which = iter % 3;
    if (iter < 2000) { /* random bytes, biased to small field numbers */
      len = rng_next() % 64;
      for (size_t i = 0; i < len; i++) {
        uint64_t r = rng_next();
        buf[i] = (r & 3) == 0 ? (uint8_t)((r >> 8) % 8 << 3 | (r >> 16) % 8) : (uint8_t)(r >> 24);
      }
    } else { /* mutations of a valid message */
      len = valid[which].len;
      memcpy(buf, valid[which].data, len);
      int edits = 1 + (int)(rng_next() % 4);
      for (int e = 0; e < edits; e++) {
        uint64_t r = rng_next();
        size_t at = len ? (size_t)(r >> 8) % len : 0;
        switch (r % 5) {
        case 0: /* flip a bit */
          if (len)
            buf[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
          break;
        case 1: /* random byte */
          if (len)
            buf[at] = (uint8_t)(r >> 32);
          break;
        case 2: /* truncate */
          len = at;
          break;
        case 3: /* insert a byte */
          if (len < sizeof buf - 1) {
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = (uint8_t)(r >> 32);
            len++;
          }
          break;
        case 4: /* delete a byte */
          if (len) {
            memmove(buf + at, buf + at + 1, len - at - 1);
            len--;
          }
          break;
        }
      }
    }
    const ProtobufCMessageDescriptor *desc =
        which == 2 ? &pando__v1__pull_response__descriptor : &pando__v1__push_request__descriptor;
    uint32_t field = which == 2 ? 2 : 6;
    size_t chunk = (size_t)(iter / 3 % 4); /* 0 (one slice), 1, 2, 3 */
    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    int rc = decode(buf, len, chunk, desc, field, iter % 2 ? dst : NULL, sizeof dst, &scratch,
                    &rest, &t, err, sizeof err);
    if (rc != 0 && rc != -PD_EFORMAT)
      fprintf(stderr, "  iteration %d: rc %d\n", iter, rc);
    CHECK(rc == 0 || rc == -PD_EFORMAT);
    CHECK((rc == 0) == (rest != NULL));
    if (rc == 0) {
      successes++;
      CHECK(t.data_len <= len);
      CHECK(t.ndim >= 0 && t.ndim <= PD_TENSOR_MAX_DIMS);
      if (t.data_len && iter % 2)
        CHECK(t.data == dst);
      protobuf_c_message_free_unpacked(rest, NULL);
    }
  }
  CHECK(successes > 0); /* the loop exercised both outcomes */
  for (int i = 0; i < 3; i++)
    free(valid[i].data);
  pd_buf_free(&scratch);
}

/* ---------------------------------------------------------------- hostile lengths */

/* Issue 14's 15-byte Push: a tensor of one byte (the data tag) whose data
 * length varint, 2^56, lies past the tensor's end. The bound check used to
 * underflow and reserve 2^56 bytes (abort). Refused, nothing reserved. */
static void test_length_past_tensor_end(void) {
  static const uint8_t push15[15] = {0x0a, 0x01, 'j',  0x32, 0x01, 0x1a, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  char err[256];
  for (size_t chunk = 0; chunk <= 3; chunk++) {
    pd_buf scratch = {0};
    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    err[0] = '\0';
    CHECK_EQ_INT(decode(push15, sizeof push15, chunk, &pando__v1__push_request__descriptor, 6, NULL,
                        0, &scratch, &rest, &t, err, sizeof err),
                 -PD_EFORMAT);
    CHECK(rest == NULL && scratch.cap == 0);
    CHECK_STR_CONTAINS(err, "tensor");
  }
  /* The same family: packed shape, data and an unknown field of the tensor,
   * each with a length that fits the message but not the tensor. */
  for (int kind = 0; kind < 3; kind++) {
    bytes body = {0}, msg = {0};
    uint8_t tag = kind == 0 ? (2 << 3 | 2) : kind == 1 ? (3 << 3 | 2) : (9 << 3 | 2);
    bytes_put(&body, &tag, 1);
    bytes_varint(&body, 8); /* 8 bytes claimed; they follow, but outside the tensor */
    bytes_len_field(&msg, 6, &body);
    for (int i = 0; i < 8; i++)
      bytes_put(&msg, "\x01", 1);
    pd_buf scratch = {0};
    ProtobufCMessage *rest = NULL;
    pd_wire_tensor t;
    CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0,
                        &scratch, &rest, &t, err, sizeof err),
                 -PD_EFORMAT);
    CHECK(rest == NULL && scratch.cap == 0);
    free(body.data);
    free(msg.data);
  }
}

/* A payload over PD_WIRE_MAX_TENSOR_BYTES is refused as too big, before
 * anything is reserved, also when the bytes are really there. */
static void test_tensor_over_limit(void) {
  char err[256];
  size_t len = PD_WIRE_MAX_TENSOR_BYTES + 1;
  bytes body = {0}, msg = {0};
  bytes_varint(&body, 3 << 3 | 2);
  bytes_varint(&body, len);
  bytes_put(&body, NULL, 0);
  body.cap = body.len + len;
  body.data = realloc(body.data, body.cap);
  CHECK(body.data != NULL);
  memset(body.data + body.len, 7, len);
  body.len += len;
  bytes_len_field(&msg, 6, &body);
  free(body.data);
  pd_buf scratch = {0};
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  err[0] = '\0';
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0,
                      &scratch, &rest, &t, err, sizeof err),
               -PD_ETOOBIG);
  free(msg.data);
  CHECK(rest == NULL && scratch.cap == 0);
  CHECK_STR_CONTAINS(err, "67108865 bytes");
  CHECK_STR_CONTAINS(err, "limit of 67108864");
}

/* Deferred mode: nothing copied by the decode, the payload's offset found;
 * pd_wire_tensor_copy then copies exactly the payload, over any slicing. */
static void test_decode_deferred(void) {
  char err[256] = "";
  const size_t lens[] = {0, 1, 200, 70000};
  const size_t chunks[] = {0, 1, 3, 5, 4096};
  for (int l = 0; l < 4; l++) {
    size_t len = lens[l];
    uint8_t *payload = pattern(len, 99 + len);
    bytes msg = {0};
    build_reordered_push(&msg, payload, len);
    for (int k = 0; k < 5; k++) {
      grpc_byte_buffer *bb = make_bb(msg.data, msg.len, chunks[k], chunks[k] == 5);
      ProtobufCMessage *rest = NULL;
      pd_wire_tensor t;
      CHECK_EQ_INT(pd_wire_decode(bb, &pando__v1__push_request__descriptor, 6, NULL, 0, NULL, &rest,
                                  &t, err, sizeof err),
                   0);
      CHECK(t.present && t.data == NULL && t.data_len == len && t.ndim == 3);
      CHECK(t.data_offset + len <= msg.len);
      CHECK(len == 0 || memcmp(msg.data + t.data_offset, payload, len) == 0);
      uint8_t *dst = calloc(1, len + 8);
      CHECK_EQ_INT(pd_wire_tensor_copy(bb, &t, dst), 0);
      CHECK(len == 0 || memcmp(dst, payload, len) == 0);
      for (size_t i = len; i < len + 8; i++)
        CHECK(dst[i] == 0);
      /* A descriptor that does not fit the buffer is refused. */
      pd_wire_tensor bad = t;
      bad.data_offset = msg.len;
      bad.data_len = len + 1;
      CHECK_EQ_INT(pd_wire_tensor_copy(bb, &bad, dst), -PD_EFORMAT);
      free(dst);
      protobuf_c_message_free_unpacked(rest, NULL);
      grpc_byte_buffer_destroy(bb);
    }
    free(msg.data);
    free(payload);
  }
}

/* Unknown fields are skipped, not handed to protobuf-c (which would allocate
 * a record for each of them): 20,000 of them cost nothing. */
static void test_unknown_fields_skipped(void) {
  char err[256];
  Pando__V1__PushRequest req = push_rest();
  bytes msg = {0};
  bytes_pack(&msg, &req.base);
  for (int i = 0; i < 20000; i++) {
    bytes_varint(&msg, (uint64_t)(100 + i % 50) << 3 | 0);
    bytes_varint(&msg, 1);
  }
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0, NULL,
                      &rest, &t, err, sizeof err),
               0);
  free(msg.data);
  CHECK(same_push_fields((Pando__V1__PushRequest *)rest, &req));
  CHECK_EQ_INT(rest->n_unknown_fields, 0);
  protobuf_c_message_free_unpacked(rest, NULL);
}

/* Large buffers are mappings of their own, and trimming gives them back. */
static void test_buf_trim(void) {
  pd_buf buf = {0};
  pd_buf_reserve(&buf, 1000);
  CHECK(!buf.mapped);
  void *small = buf.data;
  pd_buf_trim(&buf, 4096); /* within what is kept */
  CHECK(buf.data == small && buf.cap >= 1000);
  pd_buf_reserve(&buf, 8u << 20);
  CHECK(buf.mapped && buf.cap >= (8u << 20));
  CHECK_EQ_INT((uintptr_t)buf.data % 64, 0);
  memset(buf.data, 3, 8u << 20);
  pd_buf_trim(&buf, 4u << 20);
  CHECK(buf.data == NULL && buf.cap == 0 && !buf.mapped);
  pd_buf_reserve(&buf, 10);
  CHECK(buf.data != NULL && !buf.mapped);
  pd_buf_free(&buf);
  CHECK(buf.data == NULL && buf.cap == 0);
}

/* pd_wire_check: the per-field and per-message limits, before protobuf-c. */
static void test_check_limits(void) {
  char err[256];
  /* A CreateShard with a spec of 100 KB passes; 1 MiB + 1 is too big. */
  size_t spec_len = PD_WIRE_MAX_SPEC_BYTES + 1;
  char *spec = malloc(spec_len + 1);
  memset(spec, 'a', spec_len);
  spec[100000] = '\0';
  Pando__V1__CreateShardRequest cs = PANDO__V1__CREATE_SHARD_REQUEST__INIT;
  cs.job = "j-1";
  cs.spec_yaml = spec;
  cs.end = 10;
  bytes msg = {0};
  bytes_pack(&msg, &cs.base);
  CHECK_EQ_INT(pd_wire_check(msg.data, msg.len, &pando__v1__create_shard_request__descriptor, err,
                             sizeof err),
               0);
  spec[100000] = 'a';
  spec[spec_len] = '\0';
  msg.len = 0;
  bytes_pack(&msg, &cs.base);
  free(spec);
  CHECK_EQ_INT(pd_wire_check(msg.data, msg.len, &pando__v1__create_shard_request__descriptor, err,
                             sizeof err),
               -PD_ETOOBIG);
  CHECK_STR_CONTAINS(err, "CreateShardRequest.spec_yaml is 1048577 bytes");
  CHECK_STR_CONTAINS(err, "limit of 1048576");

  /* Any other string: 4096 bytes. */
  char job[5000];
  memset(job, 'j', sizeof job - 1);
  job[sizeof job - 1] = '\0';
  Pando__V1__PullRequest pull = PANDO__V1__PULL_REQUEST__INIT;
  pull.job = job;
  msg.len = 0;
  bytes_pack(&msg, &pull.base);
  CHECK_EQ_INT(
      pd_wire_check(msg.data, msg.len, &pando__v1__pull_request__descriptor, err, sizeof err),
      -PD_ETOOBIG);
  CHECK_STR_CONTAINS(err, "PullRequest.job is 4999 bytes");

  /* More fields than PD_WIRE_MAX_FIELDS (unknown ones count). */
  pull.job = "j";
  msg.len = 0;
  bytes_pack(&msg, &pull.base);
  for (int i = 0; i < PD_WIRE_MAX_FIELDS; i++) {
    bytes_varint(&msg, 77 << 3 | 0);
    bytes_varint(&msg, 1);
  }
  CHECK_EQ_INT(
      pd_wire_check(msg.data, msg.len, &pando__v1__pull_request__descriptor, err, sizeof err),
      -PD_ETOOBIG);
  CHECK_STR_CONTAINS(err, "more than 4096 fields");
  /* Through the tensor decoder too (its other fields are checked). */
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  Pando__V1__PushRequest push = push_rest();
  push.job = job;
  msg.len = 0;
  bytes_pack(&msg, &push.base);
  CHECK_EQ_INT(decode(msg.data, msg.len, 0, &pando__v1__push_request__descriptor, 6, NULL, 0, NULL,
                      &rest, &t, err, sizeof err),
               -PD_ETOOBIG);
  CHECK(rest == NULL);
  CHECK_STR_CONTAINS(err, "PushRequest.job is 4999 bytes");

  /* Nested messages are walked with their descriptors: a JobStatus whose
   * shard map holds more shards than the limit allows. */
  Pando__V1__Shard shard = PANDO__V1__SHARD__INIT, *shards[PD_WIRE_MAX_FIELDS];
  shard.end = 1;
  shard.address = "a";
  for (int i = 0; i < PD_WIRE_MAX_FIELDS; i++)
    shards[i] = &shard;
  Pando__V1__ShardMap map = PANDO__V1__SHARD_MAP__INIT;
  map.n_shards = PD_WIRE_MAX_FIELDS;
  map.shards = shards;
  Pando__V1__JobStatus js = PANDO__V1__JOB_STATUS__INIT;
  js.shard_map = &map;
  msg.len = 0;
  bytes_pack(&msg, &js.base);
  CHECK_EQ_INT(
      pd_wire_check(msg.data, msg.len, &pando__v1__job_status__descriptor, err, sizeof err),
      -PD_ETOOBIG);
  map.n_shards = 100;
  msg.len = 0;
  bytes_pack(&msg, &js.base);
  CHECK_EQ_INT(
      pd_wire_check(msg.data, msg.len, &pando__v1__job_status__descriptor, err, sizeof err), 0);
  free(msg.data);
}

/* pd_wire_check never passes what protobuf-c cannot unpack, over every cut
 * of a valid message with nested fields, and passes the whole one. */
static void test_check_agrees_with_protobuf_c(void) {
  char err[256];
  Pando__V1__Shard s0 = PANDO__V1__SHARD__INIT, s1 = PANDO__V1__SHARD__INIT;
  s0.end = 5;
  s0.address = "127.0.0.1:7000";
  s1.begin = 5;
  s1.end = 9;
  s1.address = "127.0.0.1:7001";
  Pando__V1__Shard *shards[2] = {&s0, &s1};
  Pando__V1__ShardMap map = PANDO__V1__SHARD_MAP__INIT;
  map.keys = 9;
  map.n_shards = 2;
  map.shards = shards;
  Pando__V1__Assignment a = PANDO__V1__ASSIGNMENT__INIT;
  a.job = "job-1";
  a.spec_yaml = "name: x\n";
  a.rank = 3;
  a.row_end = 1000;
  a.shard_map = &map;
  bytes msg = {0};
  bytes_pack(&msg, &a.base);
  CHECK_EQ_INT(
      pd_wire_check(msg.data, msg.len, &pando__v1__assignment__descriptor, err, sizeof err), 0);
  for (size_t cut = 0; cut < msg.len; cut++) {
    int rc = pd_wire_check(msg.data, cut, &pando__v1__assignment__descriptor, err, sizeof err);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(&pando__v1__assignment__descriptor, NULL, cut, msg.data);
    if (rc == 0)
      CHECK(m != NULL);
    if (m)
      protobuf_c_message_free_unpacked(m, NULL);
  }
  free(msg.data);
}

/* A header with a TensorCodec: protobuf-c reads the same message (codec
 * included), and pd_wire_decode reports the codec, over any slicing. */
static void test_header_codec(void) {
  const size_t len = 1000;
  uint8_t *payload = pattern(len, 3);
  const int64_t shape[1] = {31000};
  for (uint32_t block = 0; block <= 70000; block += 70000) {
    Pando__V1__PushRequest req = push_rest();
    grpc_slice header =
        pd_wire_tensor_header_codec(&req.base, 6, PD_DTYPE_FLOAT32, shape, 1, len, 4, block);
    bytes ours = {0};
    bytes_put(&ours, GRPC_SLICE_START_PTR(header), GRPC_SLICE_LENGTH(header));
    bytes_put(&ours, payload, len);
    grpc_slice_unref(header);
    Pando__V1__PushRequest *theirs = pando__v1__push_request__unpack(NULL, ours.len, ours.data);
    CHECK(theirs && theirs->gradient && theirs->gradient->codec);
    CHECK_EQ_INT(theirs->gradient->codec->method, PANDO__V1__CODEC__CODEC_ONEBIT);
    CHECK_EQ_INT(theirs->gradient->codec->block, block);
    CHECK_EQ_INT(theirs->gradient->data.len, len);
    CHECK(memcmp(theirs->gradient->data.data, payload, len) == 0);
    CHECK_EQ_INT(theirs->gradient->shape[0], 31000);
    pando__v1__push_request__free_unpacked(theirs, NULL);
    for (size_t chunk = 0; chunk <= 5; chunk += 5) {
      ProtobufCMessage *rest = NULL;
      pd_wire_tensor t;
      uint8_t dst[1000];
      char err[256];
      CHECK_EQ_INT(decode(ours.data, ours.len, chunk, &pando__v1__push_request__descriptor, 6, dst,
                          sizeof dst, NULL, &rest, &t, err, sizeof err),
                   0);
      CHECK_EQ_INT(t.codec, 4);
      CHECK_EQ_INT(t.codec_block, block);
      CHECK_EQ_INT(t.data_len, len);
      CHECK_EQ_INT(t.shape[0], 31000);
      CHECK(memcmp(dst, payload, len) == 0);
      protobuf_c_message_free_unpacked(rest, NULL);
    }
    free(ours.data);
  }
  /* method 0 is the plain header, byte for byte */
  Pando__V1__PushRequest req = push_rest();
  grpc_slice a = pd_wire_tensor_header(&req.base, 6, PD_DTYPE_FLOAT32, shape, 1, len);
  grpc_slice b = pd_wire_tensor_header_codec(&req.base, 6, PD_DTYPE_FLOAT32, shape, 1, len, 0, 9);
  CHECK(grpc_slice_eq(a, b));
  grpc_slice_unref(a);
  grpc_slice_unref(b);
  free(payload);
}

int main(int argc, char **argv) {
  pd_rpc_init();
  PD_RUN(test_header_matches_protobuf_c);
  PD_RUN(test_header_empty_payload_matches_protobuf_c);
  PD_RUN(test_header_borrow_roundtrip);
  PD_RUN(test_header_codec);
  PD_RUN(test_decode_any_field_order);
  PD_RUN(test_decode_without_tensor);
  PD_RUN(test_decode_many_slices);
  PD_RUN(test_decode_destination);
  PD_RUN(test_buf_reserve);
  PD_RUN(test_truncated_everywhere);
  PD_RUN(test_lengths_beyond_message);
  PD_RUN(test_fields_twice_and_dims);
  PD_RUN(test_empty_packed_shape);
  PD_RUN(test_packed_shape_overrun);
  PD_RUN(test_fuzz);
  PD_RUN(test_length_past_tensor_end);
  PD_RUN(test_tensor_over_limit);
  PD_RUN(test_decode_deferred);
  PD_RUN(test_unknown_fields_skipped);
  PD_RUN(test_buf_trim);
  PD_RUN(test_check_limits);
  PD_RUN(test_check_agrees_with_protobuf_c);
  pd_rpc_shutdown();
  PD_TEST_DONE();
}
