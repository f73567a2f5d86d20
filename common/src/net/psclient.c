/* Fan-out pull/push over the shard map; see pando/psclient.h. */
#include "pando/psclient.h"

#include <stdlib.h>
#include <string.h>

#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/rpc.h"
#include "pando/util.h"
#include "pando/wire.h"

#define MAX_ATTEMPTS 4
/* The client waits for answers that come within tens of microseconds: it
 * polls that long before sleeping (see pd_loop_set_spin). */
#define CLIENT_SPIN 50e-6

typedef struct server {
  pd_shard_range range;
  pd_rpc_channel *channel;
  uint64_t pulling;       /* smallest version answered by the pull in progress */
  uint64_t model_version; /* of the last pull: sent with pushes (PushRequest.model_version) */
} server;

typedef struct chunk {
  pd_psclient *client;
  server *srv;
  uint64_t begin, end;
  float *dst;          /* pull: where the values go */
  const float *src;    /* push: the gradient */
  const void *payload; /* push: the bytes sent (src, or its encoding) */
  size_t payload_len;
  int attempts;
  double retry_at; /* > 0: UNAVAILABLE; start it again at this pd_now() */
  grpc_slice slices[2];
  size_t nslices;
  grpc_status_code status;
} chunk;

struct pd_psclient {
  char *job;
  uint32_t worker;
  server *servers;
  int nservers;
  size_t chunk_keys;
  double pull_timeout, push_timeout;
  pd_loop *loop;
  chunk *chunks;
  size_t nchunks, cap;
  int64_t clock;    /* of the operation in progress */
  uint32_t attempt; /* the job's attempt (pd_psclient_set_attempt) */
  int checkpoint;   /* pushes carry PushRequest.checkpoint (pd_psclient_set_checkpoint) */
  int pending;      /* chunks not finished (waiting for a retry included) */
  int retrying;     /* chunks waiting for their retry_at */
  int failed;
  int failed_status; /* the gRPC status of the first failed call; -1: an answer that did not decode
                      */
  uint64_t min_version;
  int dropped;  /* a server dropped the last push (too late for its round) */
  char *device; /* federated: the device id and n_k sent with pushes, or NULL */
  double weight;
  float *control_dst;       /* scaffold: pulls also read c here (indexed as dst), or NULL */
  const float *control_src; /* scaffold: pushes also carry Delta c_i from here, or NULL */
  uint64_t begin;           /* of the operation in progress */
  pd_codec_params push_codec, pull_codec; /* training.compression */
  pd_codec_feedback feedback;             /* the pushes' residual */
  pd_buf *encoded;                        /* per chunk: its encoded push */
  size_t nencoded;
  pd_buf pulled;                        /* a compressed pull answer, before decoding */
  uint64_t raw_bytes[2], wire_bytes[2]; /* [push]: float32 and wire bytes of the tensors */
  char err[512];
};

pd_psclient *pd_psclient_new(const char *job, uint32_t worker, const pd_shard_range *shards, int n,
                             size_t chunk_bytes) {
  PD_ASSERT(n > 0);
  pd_psclient *c = pd_xcalloc(1, sizeof *c);
  c->job = pd_xstrdup(job);
  c->worker = worker;
  c->servers = pd_xcalloc((size_t)n, sizeof *c->servers);
  c->nservers = n;
  for (int i = 0; i < n; i++) {
    c->servers[i].range = shards[i];
    c->servers[i].channel = pd_rpc_channel_new(shards[i].address, 0);
  }
  c->chunk_keys = (chunk_bytes ? chunk_bytes : PD_PSCLIENT_CHUNK_BYTES) / sizeof(float);
  c->pull_timeout = 600;
  c->push_timeout = 120;
  c->loop = pd_loop_new();
  pd_loop_set_spin(c->loop, CLIENT_SPIN);
  return c;
}

void pd_psclient_set_token(pd_psclient *c, const char *token) {
  for (int i = 0; i < c->nservers; i++)
    pd_rpc_channel_set_token(c->servers[i].channel, token);
}

void pd_psclient_set_attempt(pd_psclient *c, uint32_t attempt) { c->attempt = attempt; }

void pd_psclient_set_checkpoint(pd_psclient *c, int checkpoint) { c->checkpoint = checkpoint; }

void pd_psclient_set_device(pd_psclient *c, const char *device, double weight) {
  free(c->device);
  c->device = device ? pd_xstrdup(device) : NULL;
  c->weight = weight;
}

void pd_psclient_set_control(pd_psclient *c, float *pull_dst, const float *push_src) {
  c->control_dst = pull_dst;
  c->control_src = push_src;
}

void pd_psclient_free(pd_psclient *c) {
  if (!c)
    return;
  for (int i = 0; i < c->nservers; i++)
    pd_rpc_channel_free(c->servers[i].channel);
  pd_loop_free(c->loop);
  free(c->chunks);
  for (size_t i = 0; i < c->nencoded; i++)
    pd_buf_free(&c->encoded[i]);
  free(c->encoded);
  pd_buf_free(&c->pulled);
  pd_codec_feedback_free(&c->feedback);
  free(c->servers);
  free(c->device);
  free(c->job);
  free(c);
}

void pd_psclient_set_compression(pd_psclient *c, const pd_codec_params *push,
                                 const pd_codec_params *pull) {
  pd_codec_params none = {.method = PD_CODEC_NONE};
  c->push_codec = push ? *push : none;
  c->pull_codec = pull ? *pull : none;
}

void pd_psclient_codec_bytes(const pd_psclient *c, int push, uint64_t *raw, uint64_t *wire) {
  *raw = c->raw_bytes[push != 0];
  *wire = c->wire_bytes[push != 0];
}

uint64_t pd_psclient_keys(const pd_psclient *c) { return c->servers[c->nservers - 1].range.end; }

void pd_psclient_set_timeouts(pd_psclient *c, double pull_sec, double push_sec) {
  c->pull_timeout = pull_sec;
  c->push_timeout = push_sec;
}

/* Splits [begin, end) over the servers and into chunks. */
static int plan(pd_psclient *c, uint64_t begin, uint64_t end, char *err, size_t errlen) {
  uint64_t keys = pd_psclient_keys(c);
  if (begin >= end || end > keys)
    return pd_errf(err, errlen, -PD_ERANGE_KEYS, "key range [%llu, %llu) is empty or beyond %llu",
                   (unsigned long long)begin, (unsigned long long)end, (unsigned long long)keys);
  c->nchunks = 0;
  for (int i = 0; i < c->nservers; i++) {
    server *s = &c->servers[i];
    uint64_t b = PD_MAX(begin, s->range.begin), e = PD_MIN(end, s->range.end);
    for (uint64_t k = b; k < e; k += c->chunk_keys) {
      if (c->nchunks == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->chunks = pd_xrealloc(c->chunks, c->cap * sizeof *c->chunks);
      }
      chunk *ch = &c->chunks[c->nchunks++];
      memset(ch, 0, sizeof *ch);
      ch->client = c;
      ch->srv = s;
      ch->begin = k;
      ch->end = PD_MIN(e, k + c->chunk_keys);
    }
  }
  c->failed = 0;
  c->err[0] = '\0';
  c->min_version = UINT64_MAX;
  c->dropped = 0;
  for (int i = 0; i < c->nservers; i++)
    c->servers[i].pulling = UINT64_MAX;
  return 0;
}

static void chunk_fail(chunk *ch, const pd_rpc_result *r, const char *what) {
  pd_psclient *c = ch->client;
  if (!c->failed) {
    snprintf(c->err, sizeof c->err, "%s: %s: %s", pd_rpc_channel_target(ch->srv->channel),
             r ? pd_rpc_status_name(r->status) : "DECODE", what);
    c->failed_status = r ? (int)r->status : -1;
  }
  c->failed = 1;
}

static void start_chunk(chunk *ch, int push);

/* Common handling of a finished chunk call: retry transient failures. Returns
 * 1 when the caller should decode the response. */
static int chunk_finished(chunk *ch, const pd_rpc_result *r, int push) {
  pd_psclient *c = ch->client;
  if (r->status == GRPC_STATUS_UNAVAILABLE && ch->attempts < MAX_ATTEMPTS && !c->failed) {
    PD_WARN("%s %s: %s (attempt %d, retrying)", push ? "push to" : "pull from",
            pd_rpc_channel_target(ch->srv->channel), r->details, ch->attempts);
    /* backing off 0.2, 0.4, 0.8 s without blocking the other chunks: run()
     * starts it again once the deadline has passed */
    ch->retry_at = pd_now() + 0.1 * (double)(1u << ch->attempts);
    c->retrying++;
    return 0;
  }
  c->pending--;
  for (size_t i = 0; i < ch->nslices; i++)
    grpc_slice_unref(ch->slices[i]);
  ch->nslices = 0;
  if (r->status != GRPC_STATUS_OK) {
    chunk_fail(ch, r, r->details);
    return 0;
  }
  return 1;
}

static void pull_done(const pd_rpc_result *r, void *user) {
  chunk *ch = user;
  if (!chunk_finished(ch, r, 0))
    return;
  ProtobufCMessage *msg = NULL;
  pd_wire_tensor t;
  char err[256];
  pd_psclient *c = ch->client;
  size_t n = ch->end - ch->begin, bytes = n * sizeof(float);
  /* compressed: the answer goes to c->pulled first, then decodes into place */
  int coded = c->pull_codec.method != PD_CODEC_NONE;
  if (pd_wire_decode(r->response, &pando__v1__pull_response__descriptor, PD_WIRE_PULL_VALUES_FIELD,
                     coded ? NULL : ch->dst, bytes, coded ? &c->pulled : NULL, &msg, &t, err,
                     sizeof err) != 0) {
    chunk_fail(ch, NULL, err);
    return;
  }
  c->raw_bytes[0] += bytes;
  c->wire_bytes[0] += t.data_len;
  if (t.codec != PD_CODEC_NONE || coded) {
    if (pd_codec_decode((enum pd_codec)t.codec, (uint32_t)PD_MIN(t.codec_block, UINT32_MAX), t.data,
                        t.data_len, ch->dst, n, err, sizeof err) != 0)
      chunk_fail(ch, NULL, err);
  } else if (t.data_len != bytes) {
    snprintf(err, sizeof err, "pull answered %zu bytes for %zu expected", t.data_len, bytes);
    chunk_fail(ch, NULL, err);
  }
  const Pando__V1__Tensor *control = ((Pando__V1__PullResponse *)msg)->control;
  if (c->control_dst && (!control || control->data.len != bytes)) {
    snprintf(err, sizeof err, "pull answered %zu bytes of control variate for %zu expected",
             control ? control->data.len : 0, bytes);
    chunk_fail(ch, NULL, err);
  } else if (c->control_dst) {
    memcpy(c->control_dst + (ch->begin - c->begin), control->data.data, bytes);
  }
  uint64_t version = ((Pando__V1__PullResponse *)msg)->version;
  ch->client->min_version = PD_MIN(ch->client->min_version, version);
  ch->srv->pulling = PD_MIN(ch->srv->pulling, version);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void push_done(const pd_rpc_result *r, void *user) {
  chunk *ch = user;
  if (!chunk_finished(ch, r, 1))
    return;
  ProtobufCMessage *msg = NULL;
  char err[256];
  if (pd_rpc_unpack(r->response, &pando__v1__push_response__descriptor, &msg, err, sizeof err) !=
      0) {
    chunk_fail(ch, NULL, err);
    return;
  }
  Pando__V1__PushResponse *resp = (Pando__V1__PushResponse *)msg;
  ch->client->min_version = PD_MIN(ch->client->min_version, resp->version);
  ch->client->dropped |= resp->dropped;
  pando__v1__push_response__free_unpacked(resp, NULL);
}

static void start_chunk(chunk *ch, int push) {
  pd_psclient *c = ch->client;
  ch->attempts++;
  if (ch->nslices == 0) {
    if (push) {
      Pando__V1__PushRequest req = PANDO__V1__PUSH_REQUEST__INIT;
      req.job = c->job;
      req.begin = ch->begin;
      req.end = ch->end;
      req.worker = c->worker;
      req.clock = c->clock;
      req.attempt = c->attempt;
      req.checkpoint = c->checkpoint;
      req.model_version = ch->srv->model_version;
      if (c->device) {
        req.device = c->device;
        req.weight = c->weight;
      }
      int64_t shape = (int64_t)(ch->end - ch->begin);
      size_t bytes = (size_t)shape * sizeof(float);
      Pando__V1__Tensor control = PANDO__V1__TENSOR__INIT;
      if (c->control_src) { /* packed into the header with the other fields */
        control.dtype = PANDO__V1__DTYPE__DTYPE_FLOAT32;
        control.n_shape = 1;
        control.shape = &shape;
        control.data.data = (uint8_t *)(c->control_src + (ch->begin - c->begin));
        control.data.len = bytes;
        req.control_delta = &control;
      }
      ch->slices[0] = pd_wire_tensor_header_codec(&req.base, PD_WIRE_PUSH_GRADIENT_FIELD,
                                                  PD_DTYPE_FLOAT32, &shape, 1, ch->payload_len,
                                                  (int)c->push_codec.method, c->push_codec.block);
      ch->slices[1] = pd_wire_borrow(ch->payload, ch->payload_len);
      ch->nslices = 2;
    } else {
      Pando__V1__PullRequest req = PANDO__V1__PULL_REQUEST__INIT;
      req.job = c->job;
      req.begin = ch->begin;
      req.end = ch->end;
      req.worker = c->worker;
      req.clock = c->clock;
      req.attempt = c->attempt;
      req.control = c->control_dst != NULL;
      Pando__V1__TensorCodec codec = PANDO__V1__TENSOR_CODEC__INIT;
      if (c->pull_codec.method != PD_CODEC_NONE) {
        codec.method = (Pando__V1__Codec)c->pull_codec.method;
        codec.block = c->pull_codec.block;
        req.codec = &codec;
      }
      ch->slices[0] = pd_rpc_pack(&req.base);
      ch->nslices = 1;
    }
  }
  const char *method = push ? "/pando.v1.ParameterServer/Push" : "/pando.v1.ParameterServer/Pull";
  if (pd_rpc_start(ch->srv->channel, c->loop, method, ch->slices, ch->nslices,
                   push ? c->push_timeout : c->pull_timeout, push ? push_done : pull_done,
                   ch) != 0) {
    pd_rpc_result r = {GRPC_STATUS_INTERNAL, "cannot start call", NULL};
    ch->attempts = MAX_ATTEMPTS;
    chunk_finished(ch, &r, push);
  }
}

/* The earliest retry_at of the chunks waiting for a retry. */
static double next_retry(const pd_psclient *c) {
  double next = 0;
  for (size_t i = 0; i < c->nchunks; i++)
    if (c->chunks[i].retry_at > 0 && (next == 0 || c->chunks[i].retry_at < next))
      next = c->chunks[i].retry_at;
  return next;
}

/* Starts again the chunks whose retry deadline has passed. */
static void start_retries(pd_psclient *c, int push) {
  double now = pd_now();
  for (size_t i = 0; i < c->nchunks; i++) {
    chunk *ch = &c->chunks[i];
    if (ch->retry_at > 0 && ch->retry_at <= now) {
      ch->retry_at = 0;
      c->retrying--;
      start_chunk(ch, push);
    }
  }
}

static int run(pd_psclient *c, int push, char *err, size_t errlen) {
  c->pending = (int)c->nchunks;
  c->retrying = 0;
  for (size_t i = 0; i < c->nchunks; i++)
    start_chunk(&c->chunks[i], push);
  while (c->pending > 0) {
    double wait = c->retrying ? PD_MAX(next_retry(c) - pd_now(), 0.0) : -1;
    pd_loop_run_once(c->loop, wait);
    if (c->retrying)
      start_retries(c, push);
  }
  if (c->failed)
    return pd_errf(err, errlen, -PD_ERPC, "job %s %s: %s", c->job, push ? "push" : "pull", c->err);
  return 0;
}

int pd_psclient_pull(pd_psclient *c, uint64_t begin, uint64_t end, int64_t clock, float *dst,
                     uint64_t *version, char *err, size_t errlen) {
  int rc = plan(c, begin, end, err, errlen);
  if (rc != 0)
    return rc;
  c->clock = clock;
  c->begin = begin;
  for (size_t i = 0; i < c->nchunks; i++)
    c->chunks[i].dst = dst + (c->chunks[i].begin - begin);
  rc = run(c, 0, err, errlen);
  if (rc != 0)
    return rc;
  for (int i = 0; i < c->nservers; i++)
    if (c->servers[i].pulling != UINT64_MAX)
      c->servers[i].model_version = c->servers[i].pulling;
  if (version)
    *version = c->min_version;
  return 0;
}

int pd_psclient_push_dropped(const pd_psclient *c) { return c->dropped; }

int pd_psclient_failed_status(const pd_psclient *c) { return c->failed_status; }

int pd_psclient_push(pd_psclient *c, uint64_t begin, uint64_t end, int64_t clock, const float *grad,
                     char *err, size_t errlen) {
  int rc = plan(c, begin, end, err, errlen);
  if (rc != 0)
    return rc;
  c->clock = clock;
  c->begin = begin;
  if (c->push_codec.method != PD_CODEC_NONE) {
    pd_codec_feedback_reserve(&c->feedback, pd_psclient_keys(c));
    if (c->nencoded < c->nchunks) {
      c->encoded = pd_xrealloc(c->encoded, c->nchunks * sizeof *c->encoded);
      memset(c->encoded + c->nencoded, 0, (c->nchunks - c->nencoded) * sizeof *c->encoded);
      c->nencoded = c->nchunks;
    }
  }
  for (size_t i = 0; i < c->nchunks; i++) {
    chunk *ch = &c->chunks[i];
    size_t n = ch->end - ch->begin;
    ch->src = grad + (ch->begin - begin);
    ch->payload = ch->src;
    ch->payload_len = n * sizeof(float);
    if (c->push_codec.method != PD_CODEC_NONE) { /* encoded once: retries resend it */
      pd_buf *buf = &c->encoded[i];
      pd_buf_reserve(buf, pd_codec_max_bytes(c->push_codec.method, c->push_codec.block, n));
      ch->payload = buf->data;
      ch->payload_len =
          pd_codec_feedback_encode(&c->push_codec, &c->feedback, ch->begin, ch->src, n, buf->data);
    }
    c->raw_bytes[1] += n * sizeof(float);
    c->wire_bytes[1] += ch->payload_len;
  }
  return run(c, 1, err, errlen);
}
