/* ParameterServer RPC handlers: decode and check requests, find the job's
 * shard, let it decide, and build and send the responses; the per-job
 * counters and /metrics series live here too. See ps.h. */
#include "ps.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fedagg.h"
#include "pando.pb-c.h"
#include "pando/codec.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/phase.h"
#include "pando/psclient.h"
#include "pando/security.h"
#include "pando/trace.h"
#include "pando/util.h"
#include "pando/wire.h"
#include "shard.h"

#define JOB_ID_MAX 96

/* The phases of a server's time on a shard (pandoctl stats; README names them). */
enum server_phase {
  SP_PULL,       /* a Pull handled (checks, the consistency model's decision) */
  SP_PULL_WAIT,  /* a parked Pull's wait for slower workers (BSP, SSP) */
  SP_BROADCAST,  /* the model's slices put into a Pull's answer */
  SP_PUSH,       /* a Push handled: decoded, copied, checked, answered */
  SP_AGGREGATE,  /* a gradient summed into the round (the version did not move) */
  SP_OPTIMIZER,  /* a gradient or a round's sum applied by the optimizer (version moved) */
  SP_CHECKPOINT, /* a checkpoint's snapshot taken (the write is on its own thread) */
  SP_COUNT
};

static const char *const server_phase_names[SP_COUNT] = {[SP_PULL] = "pull",
                                                         [SP_PULL_WAIT] = "pull_wait",
                                                         [SP_BROADCAST] = "broadcast",
                                                         [SP_PUSH] = "push",
                                                         [SP_AGGREGATE] = "aggregate",
                                                         [SP_OPTIMIZER] = "optimizer",
                                                         [SP_CHECKPOINT] = "checkpoint"};

/* One job held by this server: its shard and what ps.c counts about it. */
typedef struct job {
  char id[JOB_ID_MAX];
  char label[2 * JOB_ID_MAX]; /* id escaped as a /metrics label value */
  pd_shard *shard;
  uint64_t bytes;              /* pd_shard_bytes of the shard */
  char *spec_yaml;             /* as CreateShard sent it: a repeat must match */
  char *job_token;             /* CreateShard's job_token: may stand in for the cluster token */
  uint64_t min_partition_rows; /* likewise */
  uint32_t attempt;            /* CreateShard's attempt: older pulls and pushes are ABORTED */
  uint64_t checkpoint_at;      /* checkpoint.every_seconds: the clock worker 0 asked for, or 0 */
  uint64_t pushes_applied, pushes_duplicate, pushes_rejected, pushes_dropped;
  struct { /* the job's /metrics series, and the clock's counts exported so far */
    pd_metric *staleness, *dropped, *blocked, *max_gap;
    uint64_t dropped_seen, blocked_seen;
    /* pando_ps_tensor_bytes_total by [push][codec][wire], looked up at first use */
    pd_metric *tensor_bytes[2][PD_CODEC_COUNT][2];
  } metrics;
  pd_phase_stat phases[SP_COUNT]; /* pandoctl stats */
  pd_trace trace;                 /* pandoctl trace: spans of the shard's calls */
  /* per worker: the codec its pulls asked for (PullRequest.codec), kept for
   * the answers to its parked pulls; NULL until a pull asks for one */
  pd_codec_params *pull_codec;
} job;

struct pd_ps {
  job **jobs;
  int njobs, cap;
  pd_buf scratch;               /* receives push payloads */
  pd_buf coded;                 /* a compressed push's payload, or a pull's encoded answer */
  pd_buf values;                /* the values of a compressed pull answer, before encoding */
  uint64_t memory_limit;        /* bytes all shards may take */
  uint64_t memory_held;         /* their pd_shard_bytes */
  char data_dir[1024];          /* empty: no checkpoints */
  pd_checkpoint_writer *writer; /* writes checkpoints when data_dir is set */
  uint32_t trace_events;        /* spans kept per job (pandoctl trace); 0: off */
};

/* Scratch kept between pushes: two psclient chunks. A larger push's buffer
 * is given back after it. */
#define SCRATCH_KEEP (2 * PD_PSCLIENT_CHUNK_BYTES)

static const char *const health_services[] = {"pando.v1.ParameterServer", NULL};

pd_ps *pd_ps_new(void) {
  pd_ps *ps = pd_xcalloc(1, sizeof(pd_ps));
  pd_ps_set_memory_limit(ps, 0);
  ps->trace_events = PD_PS_TRACE_EVENTS;
  return ps;
}

/* 3/4 of the machine's memory, or of the cgroup (v2) memory.max if lower. */
static uint64_t default_memory_limit(void) {
  uint64_t total = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
  unsigned long long cg;
  if (f) {
    if (fscanf(f, "%llu", &cg) == 1 && cg < total)
      total = cg;
    fclose(f);
  }
  return total / 4 * 3;
}

void pd_ps_set_memory_limit(pd_ps *ps, uint64_t bytes) {
  ps->memory_limit = bytes ? bytes : default_memory_limit();
}

void pd_ps_set_trace_events(pd_ps *ps, uint32_t events) { ps->trace_events = events; }

uint64_t pd_ps_memory_limit(const pd_ps *ps) { return ps->memory_limit; }

/* Fails the job's parked pulls with `status` and frees it. */
static void job_free(job *j, grpc_status_code status, const char *why) {
  pd_rpc_call *call;
  while ((call = pd_shard_next_parked(j->shard)))
    pd_rpc_call_fail(call, status, "%s", why);
  pd_shard_free(j->shard);
  pd_trace_close(&j->trace);
  free(j->spec_yaml);
  free(j->job_token);
  free(j->pull_codec);
  free(j);
}

int pd_ps_set_data_dir(pd_ps *ps, const char *data_dir, char *err, size_t errlen) {
  if (!data_dir || !*data_dir)
    return 0;
  if (strlen(data_dir) >= sizeof ps->data_dir)
    return pd_errf(err, errlen, -ENAMETOOLONG, "data_dir: longer than %zu characters",
                   sizeof ps->data_dir - 1);
  int rc = pd_durable_mkdirs(data_dir, err, errlen);
  if (rc != 0)
    return rc;
  pd_strlcpy(ps->data_dir, data_dir, sizeof ps->data_dir);
  ps->writer = pd_checkpoint_writer_new(data_dir);
  return 0;
}

void pd_ps_free(pd_ps *ps) {
  if (!ps)
    return;
  pd_checkpoint_writer_free(ps->writer);
  for (int i = 0; i < ps->njobs; i++)
    job_free(ps->jobs[i], GRPC_STATUS_UNAVAILABLE, "the parameter server is shutting down");
  free(ps->jobs);
  pd_buf_free(&ps->scratch);
  pd_buf_free(&ps->coded);
  pd_buf_free(&ps->values);
  free(ps);
}

int pd_ps_num_jobs(const pd_ps *ps) { return ps->njobs; }

static int find(const pd_ps *ps, const char *id) {
  for (int i = 0; i < ps->njobs; i++)
    if (strcmp(ps->jobs[i]->id, id) == 0)
      return i;
  return -1;
}

int pd_ps_stats_get(const pd_ps *ps, const char *id, pd_ps_stats *out) {
  int i = find(ps, id);
  if (i < 0)
    return -PD_ENOTFOUND;
  const job *j = ps->jobs[i];
  const pd_clock *clock = pd_shard_clock(j->shard);
  out->version = pd_clock_version(clock);
  out->pushes_applied = j->pushes_applied;
  out->pushes_duplicate = j->pushes_duplicate;
  out->pushes_rejected = j->pushes_rejected;
  out->pushes_dropped = j->pushes_dropped;
  out->clock = *pd_clock_stats_get(clock);
  return 0;
}

/* The job's strategy series in /metrics, labelled by job; under SSP also
 * the bound s that pando_ps_max_clock_gap must stay within (the alert rules
 * of deploy/prometheus compare the two). */
static void open_metrics(job *j, const pd_job_spec *spec) {
  char labels[300];
  snprintf(labels, sizeof labels, "job=\"%s\"", j->label);
  j->metrics.staleness = pd_metric_histogram_buckets(
      "pando_ps_staleness",
      "Staleness of each applied gradient: the shard's version when applied minus the version "
      "it was computed on.",
      labels, pd_staleness_bounds, PD_STALENESS_BUCKETS - 1);
  j->metrics.dropped = pd_metric_counter(
      "pando_ps_dropped_gradients_total",
      "Whole gradients dropped because their round already had its gradients (backup workers).",
      labels);
  j->metrics.blocked =
      pd_metric_counter("pando_ps_blocked_pulls_total",
                        "Pulls that had to wait for slower workers (BSP, SSP).", labels);
  j->metrics.max_gap = pd_metric_gauge(
      "pando_ps_max_clock_gap",
      "Largest clock of an answered pull minus the slowest worker's clock seen by the shard.",
      labels);
  if (spec->training.update == PD_UPDATE_SSP && spec->training.staleness > 0)
    pd_metric_set(pd_metric_gauge("pando_ps_staleness_bound",
                                  "SSP: the staleness bound s of the job; a pull is answered "
                                  "only when its clock is at most s ahead of the slowest worker.",
                                  labels),
                  (double)spec->training.staleness);
}

/* Brings the job's series up to date with its clock. */
static void export_metrics(job *j) {
  const pd_clock_stats *st = pd_clock_stats_get(pd_shard_clock(j->shard));
  pd_metric_add(j->metrics.dropped, (double)(st->dropped - j->metrics.dropped_seen));
  pd_metric_add(j->metrics.blocked, (double)(st->blocked - j->metrics.blocked_seen));
  j->metrics.dropped_seen = st->dropped;
  j->metrics.blocked_seen = st->blocked;
  pd_metric_set(j->metrics.max_gap, (double)st->max_gap);
}

/* The job `id` held here, or NULL after failing the call with NOT_FOUND, or
 * as pd_rpc_call_authorize_job does when the call may not touch the job
 * (UNAUTHENTICATED: then whether the job exists is not told). */
static job *held_job(pd_ps *ps, pd_rpc_call *call, const char *id, int *index) {
  int i = find(ps, id);
  if (!pd_rpc_call_authorize_job(call, id, i >= 0 ? ps->jobs[i]->job_token : NULL))
    return NULL;
  if (i < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held by this server", id);
    return NULL;
  }
  if (index)
    *index = i;
  return ps->jobs[i];
}

/* Finds the job holding [begin, end) for `worker` of attempt `attempt`, or
 * fails the call. A push (`push`) of an older attempt than the shard's, or a
 * pull of one (a pull of attempt 0 reads, as an export does), is ABORTED:
 * its worker trains an attempt the job was rolled back from. */
static job *job_for(pd_ps *ps, pd_rpc_call *call, const char *id, uint64_t begin, uint64_t end,
                    uint32_t worker, uint32_t attempt, int push) {
  job *j = held_job(ps, call, id, NULL);
  if (!j)
    return NULL;
  if (attempt < j->attempt && (push || attempt > 0)) {
    pd_rpc_call_fail(call, GRPC_STATUS_ABORTED,
                     "job '%s': attempt %u is over: the job was rolled back and runs attempt %u",
                     id, attempt, j->attempt);
    return NULL;
  }
  uint64_t shard_begin = pd_shard_begin(j->shard), shard_end = pd_shard_end(j->shard);
  if (begin >= end || begin < shard_begin || end > shard_end) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "key range [%llu, %llu) of job '%s' is empty or outside this server's "
                     "shard [%llu, %llu)",
                     (unsigned long long)begin, (unsigned long long)end, id,
                     (unsigned long long)shard_begin, (unsigned long long)shard_end);
    return NULL;
  }
  if (worker >= pd_shard_num_workers(j->shard)) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "worker %u is out of range: job '%s' has %u workers", worker, id,
                     pd_shard_num_workers(j->shard));
    return NULL;
  }
  return j;
}

/* Counts a tensor's bytes as float32 and on the wire in
 * pando_ps_tensor_bytes_total{job, direction, codec, stage}: every pull and
 * push, so the series are looked up once per job and kept. */
static void count_bytes(job *j, const char *direction, int method, uint64_t raw, uint64_t wire) {
  static const char help[] = "Tensor bytes of pulls and pushes, by job, direction and codec "
                             "(training.compression): as float32 (stage raw) and on the wire.";
  const char *codec = pd_codec_name((enum pd_codec)method);
  if (!codec)
    return; /* refused before it is counted */
  int push = strcmp(direction, "push") == 0;
  pd_metric **series = j->metrics.tensor_bytes[push][method];
  for (int wired = 0; wired < 2; wired++)
    if (!series[wired]) {
      char labels[400];
      snprintf(labels, sizeof labels, "job=\"%s\",direction=\"%s\",codec=\"%s\",stage=\"%s\"",
               j->label, direction, codec, wired ? "wire" : "raw");
      series[wired] = pd_metric_counter("pando_ps_tensor_bytes_total", help, labels);
    }
  pd_metric_add(series[0], (double)raw);
  pd_metric_add(series[1], (double)wire);
}

/* The answer to a pull that asked for a codec: the n values gathered from
 * the shard (or `copy`) and encoded into ps->coded, sent as one copied
 * slice after the header. */
static size_t encode_pull(pd_ps *ps, pd_shard *s, uint64_t off, uint64_t n, const float *copy,
                          const pd_codec_params *codec, grpc_slice *slices) {
  Pando__V1__PullResponse resp = PANDO__V1__PULL_RESPONSE__INIT;
  resp.version = pd_shard_fed(s) ? pd_fedagg_stats_get(pd_shard_fed(s))->committed
                                 : pd_clock_version(pd_shard_clock(s));
  int64_t shape = (int64_t)n;
  if (!copy) {
    size_t max = pd_shard_max_slices(n), at = 0;
    pd_shard_slice *parts = pd_xmalloc(max * sizeof *parts);
    size_t count = pd_shard_slices(s, off, n, parts);
    pd_buf_reserve(&ps->values, n * sizeof(float));
    for (size_t i = 0; i < count; i++) {
      memcpy((float *)ps->values.data + at, parts[i].data, parts[i].n * sizeof(float));
      at += parts[i].n;
      parts[i].release(parts[i].user);
    }
    free(parts);
    copy = ps->values.data;
  }
  pd_buf_reserve(&ps->coded, pd_codec_max_bytes(codec->method, codec->block, n));
  size_t len = pd_codec_encode(codec, copy, n, ps->coded.data, NULL, NULL);
  slices[0] = pd_wire_tensor_header_codec(&resp.base, PD_WIRE_PULL_VALUES_FIELD, PD_DTYPE_FLOAT32,
                                          &shape, 1, len, (int)codec->method, codec->block);
  slices[1] = grpc_slice_from_copied_buffer(ps->coded.data, len);
  return len;
}

/* Answers a pull of shard-relative keys [off, off + n) with the values as
 * they are now: a PullResponse header, then slices borrowing the shard's
 * memory (released when gRPC has sent them), or with `copy` (not NULL) a copy
 * of its n values (training.federated.swa_from's average, which the next
 * round changes). A pull that asked for a codec (`codec` not NULL) is
 * answered encoded, copied, unless it reads scaffold's control variate
 * `control` too (then float32, as PullResponse.values.codec says). Counts
 * the broadcast phase and returns when the answer was handed to gRPC
 * (pd_now_ns). */
static uint64_t answer_pull(pd_ps *ps, pd_rpc_call *call, job *j, uint64_t off, uint64_t n,
                            const pd_codec_params *codec, const float *copy, const float *control) {
  uint64_t start = pd_now_ns();
  pd_shard *s = j->shard;
  pd_phase_stat *phases = j->phases;
  if (codec && codec->method != PD_CODEC_NONE && !control) {
    grpc_slice slices[2];
    size_t len = encode_pull(ps, s, off, n, copy, codec, slices);
    uint64_t handed = pd_phase_end(&phases[SP_BROADCAST], start);
    pd_rpc_call_reply_slices(call, slices, 2);
    count_bytes(j, "pull", (int)codec->method, n * sizeof(float), len);
    pd_buf_trim(&ps->values, SCRATCH_KEEP);
    pd_buf_trim(&ps->coded, SCRATCH_KEEP);
    return handed;
  }
  Pando__V1__PullResponse resp = PANDO__V1__PULL_RESPONSE__INIT;
  resp.version = pd_shard_fed(s) ? pd_fedagg_stats_get(pd_shard_fed(s))->committed
                                 : pd_clock_version(pd_shard_clock(s));
  int64_t shape = (int64_t)n;
  Pando__V1__Tensor control_tensor = PANDO__V1__TENSOR__INIT;
  if (control) { /* scaffold: c rides in the header, packed (copied) by protobuf-c */
    control_tensor.dtype = PANDO__V1__DTYPE__DTYPE_FLOAT32;
    control_tensor.n_shape = 1;
    control_tensor.shape = &shape;
    control_tensor.data.data = (uint8_t *)control;
    control_tensor.data.len = n * sizeof(float);
    resp.control = &control_tensor;
  }
  size_t max = pd_shard_max_slices(n);
  pd_shard_slice local_parts[8], *parts = local_parts;
  grpc_slice local[PD_ARRAY_SIZE(local_parts) + 1], *slices = local;
  if (max > PD_ARRAY_SIZE(local_parts)) {
    parts = pd_xmalloc(max * sizeof *parts);
    slices = pd_xmalloc((max + 1) * sizeof *slices);
  }
  slices[0] = pd_wire_tensor_header(&resp.base, PD_WIRE_PULL_VALUES_FIELD, PD_DTYPE_FLOAT32, &shape,
                                    1, n * sizeof(float));
  size_t count = copy ? 1 : pd_shard_slices(s, off, n, parts);
  if (copy)
    slices[1] = grpc_slice_from_copied_buffer((const char *)copy, n * sizeof(float));
  for (size_t i = 0; !copy && i < count; i++)
    slices[1 + i] = grpc_slice_new_with_user_data((void *)parts[i].data, parts[i].n * sizeof(float),
                                                  parts[i].release, parts[i].user);
  /* the worker may go on once the answer is handed over: the span ends here */
  uint64_t handed = pd_phase_end(&phases[SP_BROADCAST], start);
  count_bytes(j, "pull", PD_CODEC_NONE, n * sizeof(float), n * sizeof(float));
  pd_rpc_call_reply_slices(call, slices, 1 + count);
  if (parts != local_parts) {
    free(parts);
    free(slices);
  }
  return handed;
}

/* Answers the parked pulls the shard's clock now allows. */
static void answer_ready(pd_ps *ps, job *j) {
  pd_shard_ready ready;
  pd_rpc_call *call;
  while ((call = pd_shard_next_ready_info(j->shard, &ready))) {
    pd_phase_end(&j->phases[SP_PULL_WAIT], ready.parked_ns);
    const pd_codec_params *codec = j->pull_codec ? &j->pull_codec[ready.worker] : NULL;
    uint64_t handed = answer_pull(ps, call, j, ready.off, ready.n, codec, NULL, NULL);
    pd_trace_span(&j->trace, "pull", ready.parked_ns, handed, ready.clock, ready.worker,
                  1 + ready.worker);
  }
}

/* A negative clock is a bad argument whatever the job (INVALID_ARGUMENT);
 * returns 1 when the call was failed. */
static int refuse_clock(pd_rpc_call *call, int64_t clock) {
  if (clock >= 0)
    return 0;
  pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "clock: must be >= 0, got %lld",
                   (long long)clock);
  return 1;
}

/* Checks the codec a pull asks for (PullRequest.codec) and keeps it as its
 * worker's, for the answer (parked or not). Returns 1 when the call was
 * failed (INVALID_ARGUMENT: a codec a pull may not use). */
static int remember_pull_codec(pd_rpc_call *call, job *j, const Pando__V1__PullRequest *req) {
  int method = req->codec ? (int)req->codec->method : PD_CODEC_NONE;
  uint32_t block = req->codec ? req->codec->block : 0;
  if (method != PD_CODEC_NONE && method != PD_CODEC_FP16 && method != PD_CODEC_BF16 &&
      method != PD_CODEC_INT8) {
    const char *name = pd_codec_name((enum pd_codec)method);
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "codec: a pull may be encoded with fp16, bf16 or int8 only, got %s (%d)",
                     name ? name : "unknown", method);
    return 1;
  }
  if (block > (1u << 24)) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "codec.block: must be at most 16777216, got %u", block);
    return 1;
  }
  if (method == PD_CODEC_NONE && !j->pull_codec)
    return 0;
  if (!j->pull_codec)
    j->pull_codec = pd_xcalloc(pd_shard_num_workers(j->shard), sizeof *j->pull_codec);
  j->pull_codec[req->worker] = (pd_codec_params){.method = (enum pd_codec)method, .block = block};
  return 0;
}

static void pull_cancelled(pd_rpc_call *call) { pd_shard_unpark(*pd_rpc_call_user(call)); }

static void handle_pull(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__PullRequest *req = (const Pando__V1__PullRequest *)msg;
  if (refuse_clock(call, req->clock))
    return;
  job *j = job_for(ps, call, req->job, req->begin, req->end, req->worker, req->attempt, 0);
  if (!j)
    return;
  if (remember_pull_codec(call, j, req))
    return;
  uint64_t start = pd_now_ns();
  char err[256];
  uint64_t off = req->begin - pd_shard_begin(j->shard), n = req->end - req->begin;
  pd_shard_parked *parked = NULL;
  struct pd_fedagg *fed = pd_shard_fed(j->shard);
  if (fed && pd_fedagg_pull_ok(fed, (uint64_t)req->clock, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
    return;
  }
  const float *control = fed ? pd_fedagg_control(fed) : NULL;
  if (req->control && !control) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                     "job '%s': control: only a scaffold job has a control variate to pull",
                     req->job);
    return;
  }
  control = req->control ? control + off : NULL;
  /* training.federated.swa_from: evaluation and export (round 0) read the average */
  const float *served = fed && req->clock == 0 ? pd_shard_fed_served(j->shard) : NULL;
  switch (served ? PD_SHARD_PULL_READY
                 : pd_shard_pull(j->shard, call, req->worker, req->clock, off, n, &parked, err,
                                 sizeof err)) {
  case PD_SHARD_PULL_INVALID:
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
    return;
  case PD_SHARD_PULL_READY:
    pd_phase_end(&j->phases[SP_PULL], start);
    uint64_t handed =
        answer_pull(ps, call, j, off, n, j->pull_codec ? &j->pull_codec[req->worker] : NULL,
                    served ? served + off : NULL, control);
    pd_trace_span(&j->trace, "pull", start, handed, req->clock, req->worker, 1 + req->worker);
    break;
  case PD_SHARD_PULL_PARKED:
    *pd_rpc_call_user(call) = parked;
    pd_rpc_call_on_cancel(call, pull_cancelled);
    pd_phase_end(&j->phases[SP_PULL], start);
    break;
  }
  export_metrics(j);
}

/* Counts what became of a push: the job's counters and
 * pando_ps_pushes_total{job, result}. */
static void count_push(job *j, enum pd_push_verdict v) {
  static const char *const results[] = {
      [PD_PUSH_APPLY] = "applied",  [PD_PUSH_ACCUMULATE] = "applied",
      [PD_PUSH_BUFFER] = "applied", [PD_PUSH_BUFFER_ACCEPT] = "applied",
      [PD_PUSH_DROP] = "dropped",   [PD_PUSH_DUPLICATE] = "duplicate",
      [PD_PUSH_REJECT] = "rejected"};
  switch (v) {
  case PD_PUSH_DROP:
    j->pushes_dropped++;
    break;
  case PD_PUSH_DUPLICATE:
    j->pushes_duplicate++;
    break;
  case PD_PUSH_REJECT:
    j->pushes_rejected++;
    break;
  default:
    j->pushes_applied++;
  }
  char labels[300];
  snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", j->label, results[v]);
  pd_metric_add(pd_metric_counter("pando_ps_pushes_total",
                                  "Pushes received, by job and by what became of them.", labels),
                1);
}

/* Reports a checkpoint write (on the writer thread). */
static void checkpoint_done(void *user, const pd_checkpoint_key *key, int rc, const char *err) {
  (void)user;
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", key->job, rc == 0 ? "ok" : "failed");
  pd_metric_add(pd_metric_counter("pando_ps_checkpoints_total",
                                  "Shard checkpoints written, by job and result.", labels),
                1);
  if (rc == 0)
    PD_INFO("job %s: checkpoint %" PRIu64 " of keys [%" PRIu64 ", %" PRIu64 ") is durable",
            key->job, key->id, key->begin, key->end);
  else
    PD_ERROR("job %s: checkpoint %" PRIu64 " failed, the previous one stays and training goes "
             "on: %s",
             key->job, key->id, err);
}

/* When the job's spec asks for a checkpoint now, hands a snapshot
 * (copy-on-write) to the writer thread; returns 1 when it did. Called after
 * a push that made a gradient whole, with the slowest worker's clock before
 * it. The checkpoint's id is a clock every shard of the job reaches, so that
 * the coordinator can restore all M at the same id (a consistent cut):
 * - BSP: the shard's new version, a round boundary: the model of exactly
 *   the clocks before it.
 * - ASP, SSP: the slowest worker's clock c, when this push moved it to a
 *   clock that is due: the shard holds every worker's gradients of the
 *   clocks before c, and the later ones faster workers had pushed, which
 *   its clock state records per worker (the snapshot holds it). Restored,
 *   the workers redo from c and the shard takes each (worker, clock, keys)
 *   it holds already for a duplicate, so every gradient is in the model
 *   exactly once.
 * - Federated: the rounds committed, after the CommitRound that committed
 *   the due one (every shard commits the same rounds in the same order).
 * checkpoint.every_seconds: due at the clock j->checkpoint_at worker 0's
 * push asked for (PushRequest.checkpoint), or with `asked` (a CommitRound
 * that asked, federated). */
static int maybe_checkpoint(pd_ps *ps, job *j, int64_t slowest_before, int asked) {
  const pd_job_spec *spec = pd_shard_spec(j->shard);
  const pd_clock *clock = pd_shard_clock(j->shard);
  if (!ps->writer)
    return 0;
  uint64_t id = pd_clock_version(clock);
  if (pd_shard_fed(j->shard)) {
    id = pd_fedagg_stats_get(pd_shard_fed(j->shard))->committed;
  } else if (!pd_clock_has_rounds(clock)) {
    int64_t slowest = pd_clock_slowest(clock);
    if (slowest <= slowest_before)
      return 0;
    id = (uint64_t)slowest;
  }
  int at = j->checkpoint_at > 0 && id == j->checkpoint_at;
  if (j->checkpoint_at > 0 && id >= j->checkpoint_at)
    j->checkpoint_at = 0;
  if (!at && !asked && !pd_checkpoint_due(spec, pd_shard_min_partition_rows(j->shard), id))
    return 0;
  pd_checkpoint_key key = {.id = id,
                           .begin = pd_shard_begin(j->shard),
                           .end = pd_shard_end(j->shard),
                           .num_workers = pd_shard_num_workers(j->shard)};
  pd_strlcpy(key.job, j->id, sizeof key.job);
  pd_checkpoint_writer_submit(ps->writer, &key, pd_shard_snapshot_take(j->shard),
                              spec->checkpoint.keep, checkpoint_done, NULL);
  return 1;
}

/* Checks a gradient for NaN and infinity (poison: one of them makes the
 * whole model NaN). training.on_nonfinite fail: refuses the push and returns
 * 1; skip: zeroes the gradient (the push still counts for its clock) and
 * returns 0. Counted in pando_ps_nonfinite_pushes_total{job, action}. */
static int refuse_nonfinite(pd_rpc_call *call, job *j, uint64_t begin, float *grad, uint64_t n) {
  uint64_t bad = 0, first = 0;
  for (uint64_t i = 0; i < n; i++)
    if (!isfinite(grad[i]) && bad++ == 0)
      first = i;
  if (bad == 0)
    return 0;
  int skip = pd_shard_spec(j->shard)->training.on_nonfinite == PD_NONFINITE_SKIP;
  char labels[300];
  snprintf(labels, sizeof labels, "job=\"%s\",action=\"%s\"", j->label,
           skip ? "zeroed" : "refused");
  pd_metric_add(pd_metric_counter("pando_ps_nonfinite_pushes_total",
                                  "Pushes whose gradient held NaN or infinity, by what was done "
                                  "(training.on_nonfinite).",
                                  labels),
                1);
  if (skip) {
    memset(grad, 0, n * sizeof *grad);
    return 0;
  }
  j->pushes_rejected++;
  pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                   "job '%s': gradient of keys [%llu, %llu) has %llu non-finite values (NaN or "
                   "infinity), the first at key %llu; refused (training.on_nonfinite: fail)",
                   j->id, (unsigned long long)begin, (unsigned long long)(begin + n),
                   (unsigned long long)bad, (unsigned long long)(begin + first));
  return 1;
}

/* A scaffold update's Delta c_i (PushRequest.control_delta) as n floats
 * (malloc'd, the caller frees), or NULL when absent; returns -1 when the
 * call was failed (a bad shape or a non-finite value). */
static int control_delta(job *j, pd_rpc_call *call, const Pando__V1__PushRequest *req,
                         float **out) {
  *out = NULL;
  const Pando__V1__Tensor *t = req->control_delta;
  if (!t)
    return 0;
  uint64_t n = req->end - req->begin;
  if (t->dtype != PANDO__V1__DTYPE__DTYPE_FLOAT32 || t->data.len != n * sizeof(float) ||
      (t->n_shape > 0 && (t->n_shape != 1 || (uint64_t)t->shape[0] != n))) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "control_delta must be a FLOAT32 tensor of shape [%llu] (%llu bytes) for "
                     "keys [%llu, %llu); got %zu bytes",
                     (unsigned long long)n, (unsigned long long)(n * sizeof(float)),
                     (unsigned long long)req->begin, (unsigned long long)req->end, t->data.len);
    return -1;
  }
  *out = pd_xmalloc(t->data.len + 1);
  memcpy(*out, t->data.data, t->data.len);
  if (refuse_nonfinite(call, j, req->begin, *out, n)) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

/* A device's update chunk for a federated round (fedagg.c decides). */
static void fed_push(job *j, pd_rpc_call *call, const Pando__V1__PushRequest *req,
                     const float *delta) {
  char err[256];
  struct pd_fedagg *fed = pd_shard_fed(j->shard);
  float *control = NULL;
  if (control_delta(j, call, req, &control) != 0)
    return;
  enum pd_fed_push v = pd_fedagg_push(fed, req->device, (uint64_t)req->clock, req->weight,
                                      req->begin - pd_shard_begin(j->shard), req->end - req->begin,
                                      delta, control, err, sizeof err);
  free(control);
  static const char *const results[] = {[PD_FED_BUFFERED] = "buffered",
                                        [PD_FED_DUPLICATE] = "duplicate",
                                        [PD_FED_LATE] = "late",
                                        [PD_FED_REJECT] = "rejected"};
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", j->id, results[v]);
  pd_metric_add(pd_metric_counter("pando_ps_fed_pushes_total",
                                  "Federated update chunks received, by what became of them.",
                                  labels),
                1);
  if (v == PD_FED_REJECT) {
    j->pushes_rejected++;
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "job '%s': %s", j->id, err);
    return;
  }
  if (v == PD_FED_LATE)
    j->pushes_dropped++;
  else if (v == PD_FED_DUPLICATE)
    j->pushes_duplicate++;
  else
    j->pushes_applied++;
  Pando__V1__PushResponse resp = PANDO__V1__PUSH_RESPONSE__INIT;
  resp.version = pd_fedagg_stats_get(fed)->committed;
  resp.duplicate = v == PD_FED_DUPLICATE;
  resp.dropped = v == PD_FED_LATE;
  pd_rpc_call_reply_msg(call, &resp.base);
}

/* Copies an uncompressed push's gradient to ps->scratch; returns 0, or -1
 * after failing the call. */
static int copy_push(pd_ps *ps, pd_rpc_call *call, const pd_wire_tensor *t) {
  pd_buf_reserve(&ps->scratch, t->data_len);
  if (pd_wire_tensor_copy(pd_rpc_call_payload(call), t, ps->scratch.data) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed PushRequest gradient");
    return -1;
  }
  return 0;
}

/* Decodes a compressed push's gradient (Tensor.codec) into ps->scratch;
 * returns 0, or -1 after failing the call with INVALID_ARGUMENT naming what
 * does not match (method, lengths, counts, indices). Nothing is allocated
 * for a payload longer than its method allows for the keys. */
static int decode_push(pd_ps *ps, pd_rpc_call *call, const Pando__V1__PushRequest *req,
                       const pd_wire_tensor *t) {
  uint64_t n = req->end - req->begin;
  enum pd_codec method = (enum pd_codec)t->codec;
  const char *name = pd_codec_name(method);
  uint32_t block = (uint32_t)PD_MIN(t->codec_block, UINT32_MAX);
  char err[256];
  if (!name || method == PD_CODEC_NONE) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "gradient.codec: unknown method %d",
                     t->codec);
    return -1;
  }
  size_t max = pd_codec_max_bytes(method, block, n);
  if (t->codec_block > (1u << 24) || t->data_len > max) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "gradient: %s data of %zu bytes (block %llu) does not fit %llu keys [%llu, "
                     "%llu) (at most %zu bytes, block at most 16777216)",
                     name, t->data_len, (unsigned long long)t->codec_block, (unsigned long long)n,
                     (unsigned long long)req->begin, (unsigned long long)req->end, max);
    return -1;
  }
  pd_buf_reserve(&ps->coded, PD_MAX(t->data_len, 1));
  pd_buf_reserve(&ps->scratch, n * sizeof(float));
  if (pd_wire_tensor_copy(pd_rpc_call_payload(call), t, ps->coded.data) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed PushRequest gradient");
    return -1;
  }
  if (pd_codec_decode(method, block, ps->coded.data, t->data_len, ps->scratch.data, n, err,
                      sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "gradient for keys [%llu, %llu): %s",
                     (unsigned long long)req->begin, (unsigned long long)req->end, err);
    return -1;
  }
  return 0;
}

static void handle_push(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  ProtobufCMessage *msg = NULL;
  pd_wire_tensor t;
  char err[256];
  uint64_t start = pd_now_ns();
  /* Deferred: the payload is copied only once the request is known good. */
  int rc = pd_wire_decode(pd_rpc_call_payload(call), &pando__v1__push_request__descriptor,
                          PD_WIRE_PUSH_GRADIENT_FIELD, NULL, 0, NULL, &msg, &t, err, sizeof err);
  if (rc != 0) {
    pd_rpc_call_fail(
        call, rc == -PD_ETOOBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT,
        "%s", err);
    return;
  }
  Pando__V1__PushRequest *req = (Pando__V1__PushRequest *)msg;
  if (refuse_clock(call, req->clock))
    goto done;
  job *j = job_for(ps, call, req->job, req->begin, req->end, req->worker, req->attempt, 1);
  if (!j)
    goto done;
  uint64_t n = req->end - req->begin;
  int coded = t.codec != PD_CODEC_NONE;
  if (!t.present || t.dtype != PANDO__V1__DTYPE__DTYPE_FLOAT32 ||
      (!coded && t.data_len != n * sizeof(float)) ||
      (t.ndim > 0 && (t.ndim != 1 || (uint64_t)t.shape[0] != n))) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "gradient must be a FLOAT32 tensor of shape [%llu] (%llu bytes) for keys "
                     "[%llu, %llu); got dtype %s (%d), %zu bytes",
                     (unsigned long long)n, (unsigned long long)(n * sizeof(float)),
                     (unsigned long long)req->begin, (unsigned long long)req->end,
                     pd_rpc_enum_name(&pando__v1__dtype__descriptor, t.dtype), t.dtype, t.data_len);
    goto done;
  }
  if (coded ? decode_push(ps, call, req, &t) != 0 : copy_push(ps, call, &t) != 0)
    goto done;
  count_bytes(j, "push", t.codec, n * sizeof(float), t.data_len);
  if (refuse_nonfinite(call, j, req->begin, ps->scratch.data, n))
    goto done;
  if (pd_shard_fed(j->shard)) {
    fed_push(j, call, req, ps->scratch.data);
    goto done;
  }
  if (req->control_delta) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "job '%s': control_delta: only a scaffold job's update carries one", j->id);
    goto done;
  }
  uint64_t version = pd_clock_version(pd_shard_clock(j->shard));
  int64_t slowest = pd_clock_slowest(pd_shard_clock(j->shard));
  if (req->checkpoint && req->worker == 0 &&
      pd_shard_spec(j->shard)->checkpoint.every_seconds > 0) {
    /* worker 0 asks for a checkpoint at the clock after this push's (only
     * it: it pushes every clock to every shard, so all shards hear the same
     * ask): kept unless the shard is past it already (a retry) or an
     * earlier one waits */
    uint64_t at = (uint64_t)req->clock + 1;
    uint64_t now = pd_clock_has_rounds(pd_shard_clock(j->shard)) ? version : (uint64_t)slowest;
    if (at > now && (j->checkpoint_at == 0 || at < j->checkpoint_at))
      j->checkpoint_at = at;
  }
  uint64_t apply_start = pd_now_ns();
  pd_phase_add(&j->phases[SP_PUSH], 1, apply_start - start);
  enum pd_push_verdict v = pd_shard_push(
      j->shard, req->worker, req->clock, (int64_t)PD_MIN(req->model_version, INT64_MAX),
      req->begin - pd_shard_begin(j->shard), n, ps->scratch.data, err, sizeof err);
  int moved = pd_clock_version(pd_shard_clock(j->shard)) != version;
  enum server_phase applied = moved ? SP_OPTIMIZER : SP_AGGREGATE;
  uint64_t apply_end = pd_phase_end(&j->phases[applied], apply_start);
  pd_trace_span(&j->trace, server_phase_names[applied], apply_start, apply_end, req->clock,
                req->worker, 0);
  answer_ready(ps, j);
  if (moved) {
    uint64_t checkpoint_start = pd_now_ns();
    if (maybe_checkpoint(ps, j, slowest, 0)) {
      uint64_t checkpoint_end = pd_phase_end(&j->phases[SP_CHECKPOINT], checkpoint_start);
      pd_trace_span(&j->trace, server_phase_names[SP_CHECKPOINT], checkpoint_start, checkpoint_end,
                    req->clock, req->worker, 0);
    }
  }
  uint64_t answer_start = pd_now_ns();
  count_push(j, v);
  int64_t staleness = pd_clock_last_staleness(pd_shard_clock(j->shard));
  if (staleness >= 0)
    pd_metric_observe(j->metrics.staleness, (double)staleness);
  export_metrics(j);
  if (v == PD_PUSH_REJECT) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
    goto done;
  }
  Pando__V1__PushResponse resp = PANDO__V1__PUSH_RESPONSE__INIT;
  resp.version = pd_clock_version(pd_shard_clock(j->shard));
  resp.duplicate = v == PD_PUSH_DUPLICATE;
  resp.dropped = v == PD_PUSH_DROP;
  uint64_t end = pd_now_ns(); /* before the answer: the worker may go on after it */
  j->phases[SP_PUSH].ns += end - answer_start;
  pd_trace_span(&j->trace, "push", start, end, req->clock, req->worker, 1 + req->worker);
  pd_rpc_call_reply_msg(call, &resp.base);
done:
  pd_buf_trim(&ps->scratch, SCRATCH_KEEP);
  pd_buf_trim(&ps->coded, SCRATCH_KEEP);
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* Checks a CreateShardRequest and parses its spec into `spec`; returns 0 or
 * fails the call. */
static int check_create(pd_rpc_call *call, const Pando__V1__CreateShardRequest *req,
                        pd_job_spec *spec) {
  char err[512];
  uint64_t keys = 0;
  if (req->job[0] == '\0' || strlen(req->job) >= JOB_ID_MAX) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "job: must be 1 to %d characters",
                     JOB_ID_MAX - 1);
  } else if (pd_job_spec_parse(req->spec_yaml, strlen(req->spec_yaml), spec, err, sizeof err) !=
                 0 ||
             pd_model_layout(&spec->model, NULL, 0, &keys, err, sizeof err) < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "spec_yaml: %s", err);
  } else if (req->begin >= req->end || req->end > keys) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "key range [%llu, %llu) is empty or outside the model's %llu keys",
                     (unsigned long long)req->begin, (unsigned long long)req->end,
                     (unsigned long long)keys);
  } else if (req->num_workers == 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "num_workers: must be >= 1");
  } else if (req->min_partition_rows == 0 && spec->training.lr_schedule.type != PD_LR_CONSTANT) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "min_partition_rows: must be >= 1 with a training.lr_schedule (the "
                     "epoch of a push depends on it)");
  } else {
    return 0;
  }
  return -1;
}

/* A new shard of the request: from the model's seed, or from the newest
 * checkpoint <= restore_checkpoint (its id in *restored). NULL after
 * failing the call. */
static pd_shard *new_shard(pd_ps *ps, pd_rpc_call *call, const Pando__V1__CreateShardRequest *req,
                           const pd_job_spec *spec, uint64_t *restored) {
  char err[1024];
  *restored = 0;
  if (ps->writer && (req->restore_checkpoint > 0 || pd_job_spec_checkpoints(spec)) &&
      !pd_checkpoint_job_ok(req->job)) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "job: '%s' cannot name a checkpoint folder: letters, digits, '.', '_' and "
                     "'-' only, not starting with '.'",
                     req->job);
    return NULL;
  }
  if (req->restore_checkpoint > 0 && !ps->writer) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                     "restore_checkpoint: this server has no data_dir to restore from");
    return NULL;
  }
  pd_shard *shard = pd_shard_new(spec, req->begin, req->end, req->num_workers,
                                 req->min_partition_rows, err, sizeof err);
  if (!shard) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "spec_yaml: %s", err);
    return NULL;
  }
  if (req->restore_checkpoint == 0)
    return shard;
  pd_checkpoint_key key = {.begin = req->begin, .end = req->end, .num_workers = req->num_workers};
  pd_strlcpy(key.job, req->job, sizeof key.job);
  pd_checkpoint_data data;
  int rc = pd_checkpoint_read_latest(ps->data_dir, &key, req->restore_checkpoint, &data, err,
                                     sizeof err);
  if (rc == 0) {
    rc = pd_shard_restore(shard, data.sections, data.nsections, err, sizeof err);
    pd_checkpoint_data_close(&data);
  }
  if (rc != 0) {
    pd_shard_free(shard);
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "restore_checkpoint: %s", err);
    return NULL;
  }
  *restored = key.id;
  PD_INFO("job %s: keys [%" PRIu64 ", %" PRIu64 ") restored from checkpoint %" PRIu64, req->job,
          req->begin, req->end, key.id);
  return shard;
}

/* A CreateShard for job `j`, held already: refused (ALREADY_EXISTS, and 1
 * returned) unless it repeats the request that created it. */
static int refuse_repeat(pd_rpc_call *call, const job *j,
                         const Pando__V1__CreateShardRequest *req) {
  uint64_t begin = pd_shard_begin(j->shard), end = pd_shard_end(j->shard);
  uint32_t workers = pd_shard_num_workers(j->shard);
  if (begin != req->begin || end != req->end)
    pd_rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS,
                     "job '%s' is already held here with keys [%llu, %llu)", req->job,
                     (unsigned long long)begin, (unsigned long long)end);
  else if (workers != req->num_workers)
    pd_rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS,
                     "job '%s' is already held here for num_workers %u, not %u; drop it first",
                     req->job, workers, req->num_workers);
  else if (j->min_partition_rows != req->min_partition_rows)
    pd_rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS,
                     "job '%s' is already held here with min_partition_rows %llu, not %llu; drop "
                     "it first",
                     req->job, (unsigned long long)j->min_partition_rows,
                     (unsigned long long)req->min_partition_rows);
  else if (strcmp(j->spec_yaml, req->spec_yaml) != 0)
    pd_rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS,
                     "job '%s' is already held here with another spec_yaml; drop it first",
                     req->job);
  else
    return 0;
  return 1;
}

/* pando_ps_shard_memory_bytes: what the shards held take (pd_shard_bytes). */
static void memory_gauge(const pd_ps *ps) {
  pd_metric_set(pd_metric_gauge("pando_ps_shard_memory_bytes",
                                "Memory the shards on this server take (parameters, optimizer "
                                "state, round sums), as counted against memory_limit.",
                                ""),
                (double)ps->memory_held);
}

static void handle_create(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__CreateShardRequest *req = (const Pando__V1__CreateShardRequest *)msg;
  pd_job_spec spec;
  if (check_create(call, req, &spec) != 0)
    return;
  int i = find(ps, req->job);
  if (i >= 0 && refuse_repeat(call, ps->jobs[i], req))
    return;
  uint64_t restored = 0;
  if (i >= 0 && req->restore_checkpoint > 0) { /* roll a held shard back */
    pd_shard *shard = new_shard(ps, call, req, &spec, &restored);
    if (!shard)
      return;
    job *j = ps->jobs[i];
    pd_rpc_call *parked;
    while ((parked = pd_shard_next_parked(j->shard)))
      pd_rpc_call_fail(parked, GRPC_STATUS_ABORTED, "job '%s' was rolled back to checkpoint %llu",
                       req->job, (unsigned long long)restored);
    pd_shard_free(j->shard);
    j->shard = shard;
    j->attempt = req->attempt;
    j->checkpoint_at = 0;
  } else if (i < 0) { /* a retried CreateShard of the same request is a no-op */
    uint64_t need = pd_shard_bytes(&spec, req->begin, req->end, req->num_workers);
    uint64_t left = ps->memory_limit - PD_MIN(ps->memory_held, ps->memory_limit);
    if (need > left) {
      pd_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                       "job '%s': keys [%llu, %llu) need %.1f MiB (parameters, optimizer state, "
                       "round sums), but this server has %.1f MiB free of its memory_limit of "
                       "%.1f MiB",
                       req->job, (unsigned long long)req->begin, (unsigned long long)req->end,
                       (double)need / (1 << 20), (double)left / (1 << 20),
                       (double)ps->memory_limit / (1 << 20));
      return;
    }
    pd_shard *shard = new_shard(ps, call, req, &spec, &restored);
    if (!shard)
      return;
    if (ps->njobs == ps->cap) {
      ps->cap = ps->cap ? ps->cap * 2 : 4;
      ps->jobs = pd_xrealloc(ps->jobs, (size_t)ps->cap * sizeof *ps->jobs);
    }
    job *j = pd_xcalloc(1, sizeof *j);
    pd_trace_init(&j->trace, ps->trace_events);
    pd_strlcpy(j->id, req->job, sizeof j->id);
    pd_metric_escape(j->id, j->label, sizeof j->label);
    j->shard = shard;
    j->bytes = need;
    ps->memory_held += need;
    memory_gauge(ps);
    j->spec_yaml = pd_xstrdup(req->spec_yaml);
    j->job_token = pd_xstrdup(req->job_token);
    j->min_partition_rows = req->min_partition_rows;
    j->attempt = req->attempt;
    open_metrics(j, &spec);
    ps->jobs[ps->njobs++] = j;
    PD_INFO("job %s: holding keys [%llu, %llu) for %u workers (%s, %s lr=%g)", req->job,
            (unsigned long long)req->begin, (unsigned long long)req->end, req->num_workers,
            pd_update_name(spec.training.update), pd_optimizer_name(spec.training.optimizer.type),
            spec.training.optimizer.lr);
  }
  Pando__V1__CreateShardResponse resp = PANDO__V1__CREATE_SHARD_RESPONSE__INIT;
  resp.keys = req->end - req->begin;
  resp.checkpoint = restored;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void handle_drop(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__DropShardRequest *req = (const Pando__V1__DropShardRequest *)msg;
  int i;
  job *j = held_job(ps, call, req->job, &i);
  if (!j)
    return;
  ps->memory_held -= j->bytes;
  memory_gauge(ps);
  job_free(j, GRPC_STATUS_ABORTED, "the job's shard was dropped");
  ps->jobs[i] = ps->jobs[--ps->njobs];
  PD_INFO("job %s: dropped", req->job);
  Pando__V1__DropShardResponse resp = PANDO__V1__DROP_SHARD_RESPONSE__INIT;
  pd_rpc_call_reply_msg(call, &resp.base);
}

/* The job's recorded spans (pandoctl trace). */
static void handle_trace(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__TraceRequest *req = (const Pando__V1__TraceRequest *)msg;
  job *j = held_job(ps, call, req->job, NULL);
  if (!j)
    return;
  Pando__V1__TraceEvent events[PD_TRACE_MESSAGE_EVENTS], *ptrs[PD_TRACE_MESSAGE_EVENTS];
  Pando__V1__TraceResponse resp = PANDO__V1__TRACE_RESPONSE__INIT;
  uint64_t seq = req->cursor; /* a server's cursor is a span's sequence number */
  resp.n_events = pd_trace_fill(&j->trace, req->from_clock, req->to_clock, &seq,
                                pd_trace_page_size(req->max_events), events, ptrs);
  resp.events = ptrs;
  resp.dropped = j->trace.dropped;
  resp.next_cursor = seq < j->trace.added ? seq : 0;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void handle_stats(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__StatsRequest *req = (const Pando__V1__StatsRequest *)msg;
  job *j = held_job(ps, call, req->job, NULL);
  if (!j)
    return;
  const pd_clock *clock = pd_shard_clock(j->shard);
  const pd_clock_stats *st = pd_clock_stats_get(clock);
  uint64_t staleness[PD_STALENESS_BUCKETS];
  memcpy(staleness, st->staleness, sizeof staleness);
  Pando__V1__StatsResponse resp = PANDO__V1__STATS_RESPONSE__INIT;
  resp.version = pd_clock_version(clock);
  resp.n_staleness = PD_STALENESS_BUCKETS;
  resp.staleness = staleness;
  resp.staleness_sum = st->staleness_sum;
  resp.dropped = st->dropped;
  resp.blocked = st->blocked;
  resp.max_clock_gap = st->max_gap;
  resp.workers = pd_shard_num_workers(j->shard);
  Pando__V1__PhaseStat phases[SP_COUNT], *phase_ptrs[SP_COUNT];
  resp.phases = phase_ptrs;
  resp.n_phases = pd_phase_fill(j->phases, server_phase_names, SP_COUNT, phases, phase_ptrs);
  if (ps->writer)
    resp.checkpoint =
        pd_checkpoint_newest(ps->data_dir, j->id, pd_shard_begin(j->shard), pd_shard_end(j->shard));
  pd_rpc_call_reply_msg(call, &resp.base);
}

/* Keys the ReadCheckpoint answers at most: Tensor's 64 MiB of float32. */
#define READ_CHECKPOINT_MAX_KEYS (PD_WIRE_MAX_TENSOR_BYTES / sizeof(float))

/* Fails `call` NOT_FOUND for checkpoint `id` of the shard [begin, end) of
 * job `id_of_job`, naming the ids this server holds for it. */
static void checkpoint_not_found(pd_ps *ps, pd_rpc_call *call, const char *id_of_job,
                                 uint64_t begin, uint64_t end, uint64_t id) {
  uint64_t ids[32];
  size_t n = pd_checkpoint_list(ps->data_dir, id_of_job, begin, end, ids, PD_ARRAY_SIZE(ids));
  char held[400] = "";
  for (size_t i = 0, used = 0; i < PD_MIN(n, PD_ARRAY_SIZE(ids)) && used < sizeof held; i++)
    used += (size_t)snprintf(held + used, sizeof held - used, "%s%" PRIu64, i ? ", " : "", ids[i]);
  pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND,
                   "job '%s': this server holds no checkpoint %" PRIu64 " of keys [%" PRIu64
                   ", %" PRIu64 ") (only that id is read, not an older one); it holds %s%s%s",
                   id_of_job, id, begin, end, n ? "checkpoints " : "none of that shard", held,
                   n > PD_ARRAY_SIZE(ids) ? ", ..." : "");
}

/* A job's parameters at one checkpoint, from the data_dir, whether or not
 * its shard is held (pandoctl export --checkpoint). */
static void handle_read_checkpoint(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__ReadCheckpointRequest *req = (const Pando__V1__ReadCheckpointRequest *)msg;
  int i = find(ps, req->job);
  /* a dropped job's token is forgotten with its shard: then the cluster token only */
  if (!pd_rpc_call_authorize_job(call, req->job, i >= 0 ? ps->jobs[i]->job_token : NULL))
    return;
  if (!ps->data_dir[0]) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                     "this server has no data_dir: it holds no checkpoints");
    return;
  }
  if (!pd_checkpoint_job_ok(req->job) || req->checkpoint == 0 || req->begin >= req->end ||
      req->begin < req->shard_begin || req->end > req->shard_end ||
      req->end - req->begin > READ_CHECKPOINT_MAX_KEYS) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "ReadCheckpoint of job '%s': checkpoint %" PRIu64 " (> 0), keys [%" PRIu64
                     ", %" PRIu64 ") must be a valid job id and a non-empty range of at most %zu "
                     "keys inside the shard [%" PRIu64 ", %" PRIu64 ")",
                     req->job, req->checkpoint, req->begin, req->end,
                     (size_t)READ_CHECKPOINT_MAX_KEYS, req->shard_begin, req->shard_end);
    return;
  }
  pd_checkpoint_key key = {.id = req->checkpoint, .begin = req->shard_begin, .end = req->shard_end};
  pd_strlcpy(key.job, req->job, sizeof key.job);
  pd_checkpoint_data data;
  char err[1400];
  int rc = pd_checkpoint_read(ps->data_dir, &key, &data, err, sizeof err);
  if (rc == -ENOENT) {
    checkpoint_not_found(ps, call, req->job, req->shard_begin, req->shard_end, req->checkpoint);
    return;
  }
  if (rc != 0) {
    pd_rpc_call_fail(call, rc == -PD_EFORMAT ? GRPC_STATUS_DATA_LOSS : GRPC_STATUS_INTERNAL,
                     "checkpoint %" PRIu64 " of job '%s': %s", req->checkpoint, req->job, err);
    return;
  }
  const pd_shard_section *values = NULL;
  for (size_t k = 0; k < data.nsections && !values; k++)
    if (strcmp(data.sections[k].name, "values") == 0)
      values = &data.sections[k];
  uint64_t keys = req->shard_end - req->shard_begin;
  if (!values || values->bytes != keys * sizeof(float)) {
    pd_rpc_call_fail(call, GRPC_STATUS_DATA_LOSS,
                     "checkpoint %" PRIu64 " of job '%s' keys [%" PRIu64 ", %" PRIu64
                     "): its 'values' section is missing or not %" PRIu64 " float32",
                     req->checkpoint, req->job, req->shard_begin, req->shard_end, keys);
    pd_checkpoint_data_close(&data);
    return;
  }
  int64_t shape = (int64_t)(req->end - req->begin);
  Pando__V1__Tensor tensor = PANDO__V1__TENSOR__INIT;
  tensor.dtype = PANDO__V1__DTYPE__DTYPE_FLOAT32;
  tensor.n_shape = 1;
  tensor.shape = &shape;
  tensor.data.data =
      (uint8_t *)values->pieces[0].data + (req->begin - req->shard_begin) * sizeof(float);
  tensor.data.len = (size_t)shape * sizeof(float);
  Pando__V1__ReadCheckpointResponse resp = PANDO__V1__READ_CHECKPOINT_RESPONSE__INIT;
  resp.checkpoint = req->checkpoint;
  resp.version = data.version;
  resp.values = &tensor;
  pd_rpc_call_reply_msg(call, &resp.base);
  pd_checkpoint_data_close(&data);
}

/* Closes a federated round with the coordinator's set of devices. */
static void handle_commit_round(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_ps *ps = ctx;
  const Pando__V1__CommitRoundRequest *req = (const Pando__V1__CommitRoundRequest *)msg;
  int i = find(ps, req->job);
  char err[512];
  if (i < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held by this server", req->job);
    return;
  }
  job *j = ps->jobs[i];
  struct pd_fedagg *fed = pd_shard_fed(j->shard);
  if (!fed) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                     "job '%s' is not federated (training.update %s)", req->job,
                     pd_update_name(pd_shard_spec(j->shard)->training.update));
    return;
  }
  const float *grad;
  pd_fedagg_result r;
  if (pd_fedagg_commit(fed, req->round, (const char *const *)req->devices, req->n_devices,
                       req->abandon, req->population, &grad, &r, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
    return;
  }
  if (grad) {
    pd_optimizer_spec server;
    double lr;
    pd_fedagg_server_optimizer(pd_shard_spec(j->shard), &server, &lr);
    pd_shard_apply(j->shard, grad, lr);
    pd_shard_fed_average(j->shard);
    uint64_t checkpoint_start = pd_now_ns();
    if (maybe_checkpoint(ps, j, 0, req->checkpoint)) {
      uint64_t checkpoint_end = pd_phase_end(&j->phases[SP_CHECKPOINT], checkpoint_start);
      pd_trace_span(&j->trace, server_phase_names[SP_CHECKPOINT], checkpoint_start, checkpoint_end,
                    (int64_t)req->round, 0, 0);
    }
  }
  if (grad || r.abandoned) { /* not for a retried call */
    char labels[200];
    snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", req->job,
             r.abandoned ? "abandoned" : "committed");
    pd_metric_add(pd_metric_counter("pando_ps_fed_rounds_total",
                                    "Federated rounds closed on this server, committed or "
                                    "abandoned.",
                                    labels),
                  1);
  }
  Pando__V1__CommitRoundResponse resp = PANDO__V1__COMMIT_ROUND_RESPONSE__INIT;
  resp.version = pd_fedagg_stats_get(fed)->committed;
  resp.committed = r.committed;
  resp.discarded = r.discarded;
  resp.weight = r.weight;
  pd_rpc_call_reply_msg(call, &resp.base);
  PD_DEBUG("job %s: round %llu %s with %u devices (%u discarded)", req->job,
           (unsigned long long)req->round, r.abandoned ? "abandoned" : "committed", r.committed,
           r.discarded);
}

void pd_ps_register(pd_ps *ps, pd_rpc_server *srv) {
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/Pull",
                          &pando__v1__pull_request__descriptor, handle_pull, ps);
  /* Push decodes its own payload: the gradient goes straight to scratch */
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/Push", handle_push, ps);
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/CreateShard",
                          &pando__v1__create_shard_request__descriptor, handle_create, ps);
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/DropShard",
                          &pando__v1__drop_shard_request__descriptor, handle_drop, ps);
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/GetStats",
                          &pando__v1__stats_request__descriptor, handle_stats, ps);
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/GetTrace",
                          &pando__v1__trace_request__descriptor, handle_trace, ps);
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/CommitRound",
                          &pando__v1__commit_round_request__descriptor, handle_commit_round, ps);
  pd_rpc_server_add_unary(srv, "/pando.v1.ParameterServer/ReadCheckpoint",
                          &pando__v1__read_checkpoint_request__descriptor, handle_read_checkpoint,
                          ps);
  /* a job's token may stand in for the cluster token (held_job checks it) */
  pd_rpc_server_job_scoped(srv, "/pando.v1.ParameterServer/Pull");
  pd_rpc_server_job_scoped(srv, "/pando.v1.ParameterServer/Push");
  pd_rpc_server_job_scoped(srv, "/pando.v1.ParameterServer/GetStats");
  pd_rpc_server_job_scoped(srv, "/pando.v1.ParameterServer/GetTrace");
  pd_rpc_server_job_scoped(srv, "/pando.v1.ParameterServer/ReadCheckpoint");
  /* under mTLS, only the coordinator changes which shards exist and closes rounds */
  pd_rpc_server_restrict(srv, "/pando.v1.ParameterServer/CreateShard", PD_ROLE_COORDINATOR);
  pd_rpc_server_restrict(srv, "/pando.v1.ParameterServer/DropShard", PD_ROLE_COORDINATOR);
  pd_rpc_server_restrict(srv, "/pando.v1.ParameterServer/CommitRound", PD_ROLE_COORDINATOR);
  pd_rpc_health_register(srv, health_services);
}
