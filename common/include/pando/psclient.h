/* The parameter-server client: one logical pull or push of a key range is
 * split across the servers that own it (the shard map) and into chunks of at
 * most chunk_bytes, every call in flight at once; the answers are written
 * straight into place. Calls that fail with UNAVAILABLE are retried (a
 * retried push is applied once by the server). Blocking; one thread. */
#ifndef PANDO_PSCLIENT_H
#define PANDO_PSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "pando/codec.h"

/* One entry of a shard map: keys [begin, end) are held by `address`. */
typedef struct pd_shard_range {
  uint64_t begin, end;
  char address[256];
} pd_shard_range;

typedef struct pd_psclient pd_psclient;

/* Default chunk size: big enough to amortise per-call costs, small enough to
 * keep many calls in flight and HTTP/2 streams short. */
#define PD_PSCLIENT_CHUNK_BYTES (2u << 20)

/* A client for `job` acting as `worker`, over `n` shard ranges (sorted,
 * contiguous from 0; copied). chunk_bytes 0 means the default. */
pd_psclient *pd_psclient_new(const char *job, uint32_t worker, const pd_shard_range *shards, int n,
                             size_t chunk_bytes);
void pd_psclient_free(pd_psclient *c);
/* Total keys of the shard map. */
uint64_t pd_psclient_keys(const pd_psclient *c);
/* Seconds a pull may wait (BSP rounds wait for the slowest worker). */
void pd_psclient_set_timeouts(pd_psclient *c, double pull_sec, double push_sec);

/* Reads keys [begin, end) at `clock` into dst[0 .. end-begin). Returns 0, or
 * a negative error with "address: STATUS: message" in `err`. *version (may be
 * NULL) receives the smallest shard version seen. */
int pd_psclient_pull(pd_psclient *c, uint64_t begin, uint64_t end, int64_t clock, float *dst,
                     uint64_t *version, char *err, size_t errlen);

/* Sends the gradient grad[0 .. end-begin) of keys [begin, end) for `clock`.
 * `grad` is read while the calls are in flight (not copied). Each server is
 * told the version of its last pull answer (PushRequest.model_version: the
 * model the gradient was computed on), so it can measure staleness. */
int pd_psclient_push(pd_psclient *c, uint64_t begin, uint64_t end, int64_t clock, const float *grad,
                     char *err, size_t errlen);

/* Makes every pull and push carry the job's token `token` (Assignment or
 * RoundTask job_token) instead of the cluster token; NULL or "": the
 * cluster token. Copied. */
void pd_psclient_set_token(pd_psclient *c, const char *token);

/* Makes every pull and push carry the job's attempt (Assignment.attempt):
 * a server whose shard was rolled back to a later attempt refuses them
 * (ABORTED), so a straggler of an old attempt cannot touch the new model.
 * 0 (the default): a reader outside a training, or the first attempt. */
void pd_psclient_set_attempt(pd_psclient *c, uint32_t attempt);
/* Whether the following pushes carry PushRequest.checkpoint (worker 0 of a
 * job with checkpoint.every_seconds: the shards checkpoint at the clock
 * after the push's). */
void pd_psclient_set_checkpoint(pd_psclient *c, int checkpoint);

/* Federated devices: pushes carry `device` (copied; NULL: none) and its
 * number of samples `weight` (PushRequest.device, weight), and `clock` is
 * the round id. */
void pd_psclient_set_device(pd_psclient *c, const char *device, double weight);

/* Federated devices of a scaffold job (Karimireddy et al., ICML 2020): the
 * following pulls also read the server control variate c of their keys into
 * pull_dst (indexed as their dst; PullRequest.control), and the following
 * pushes also carry Delta c_i from push_src (indexed as their grad;
 * PushRequest.control_delta). Both borrowed; NULL turns either off. */
void pd_psclient_set_control(pd_psclient *c, float *pull_dst, const float *push_src);

/* Encodes every later push with `push` and asks for pulls encoded with
 * `pull` (training.compression; NULL or method PD_CODEC_NONE: float32, sent
 * and received without a copy). Pushes keep the error-feedback residual of
 * every key in the client (push->error_feedback): each chunk of a push is
 * encoded once, retries resend the same bytes. Copied. */
void pd_psclient_set_compression(pd_psclient *c, const pd_codec_params *push,
                                 const pd_codec_params *pull);

/* Bytes of tensor data pushed (`push`) or pulled so far: as float32 (*raw)
 * and as sent on the wire (*wire). */
void pd_psclient_codec_bytes(const pd_psclient *c, int push, uint64_t *raw, uint64_t *wire);

/* Whether a server dropped part of the last push because it came too late
 * for its round (BSP with backup workers; PushResponse.dropped). */
int pd_psclient_push_dropped(const pd_psclient *c);
/* After a failed pull or push: the gRPC status of its first failed call
 * (UNAVAILABLE after the retries, ABORTED, ...), -1 for an answer that did
 * not decode. */
int pd_psclient_failed_status(const pd_psclient *c);

#endif
