/* ParameterServer RPC handlers: decode and check requests, find the shard,
 * hand the decision to the shard's clock; see ps.h. */
#include "ps.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/util.h"
#include "pando/wire.h"
#include "fedagg.h"
#include "shard.h"

struct pd_ps {
  pd_shard **shards;
  int nshards, cap;
  pd_buf scratch; /* receives push payloads */
};

static const char *const health_services[] = {"pando.v1.ParameterServer", NULL};

pd_ps *pd_ps_new(void) { return pd_xcalloc(1, sizeof(pd_ps)); }

void pd_ps_free(pd_ps *ps) {
  if (!ps)
    return;
  for (int i = 0; i < ps->nshards; i++)
    pd_shard_free(ps->shards[i], GRPC_STATUS_UNAVAILABLE, "the parameter server is shutting down");
  free(ps->shards);
  free(ps->scratch.data);
  free(ps);
}

int pd_ps_num_jobs(const pd_ps *ps) { return ps->nshards; }

static int find(const pd_ps *ps, const char *job) {
  for (int i = 0; i < ps->nshards; i++)
    if (strcmp(ps->shards[i]->job, job) == 0)
      return i;
  return -1;
}

int pd_ps_stats_get(const pd_ps *ps, const char *job, pd_ps_stats *out) {
  int i = find(ps, job);
  if (i < 0)
    return -PD_ENOTFOUND;
  pd_shard *s = ps->shards[i];
  out->version = pd_clock_version(s->clock);
  out->pushes_applied = s->pushes_applied;
  out->pushes_duplicate = s->pushes_duplicate;
  out->pushes_rejected = s->pushes_rejected;
  out->pushes_dropped = s->pushes_dropped;
  out->clock = *pd_clock_stats_get(s->clock);
  return 0;
}

/* The job's strategy series in /metrics, labelled by job. */
static void open_metrics(pd_shard *s) {
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\"", s->job);
  s->metrics.staleness = pd_metric_histogram_buckets(
      "pando_ps_staleness",
      "Staleness of each applied gradient: the shard's version when applied minus the version "
      "it was computed on.",
      labels, pd_staleness_bounds, PD_STALENESS_BUCKETS - 1);
  s->metrics.dropped = pd_metric_counter(
      "pando_ps_dropped_gradients_total",
      "Whole gradients dropped because their round already had its gradients (backup workers).",
      labels);
  s->metrics.blocked = pd_metric_counter(
      "pando_ps_blocked_pulls_total", "Pulls that had to wait for slower workers (BSP, SSP).",
      labels);
  s->metrics.max_gap = pd_metric_gauge(
      "pando_ps_max_clock_gap",
      "Largest clock of an answered pull minus the slowest worker's clock seen by the shard.",
      labels);
}

/* Brings the job's series up to date with its clock. */
static void export_metrics(pd_shard *s) {
  const pd_clock_stats *st = pd_clock_stats_get(s->clock);
  pd_metric_add(s->metrics.dropped, (double)(st->dropped - s->metrics.dropped_seen));
  pd_metric_add(s->metrics.blocked, (double)(st->blocked - s->metrics.blocked_seen));
  s->metrics.dropped_seen = st->dropped;
  s->metrics.blocked_seen = st->blocked;
  pd_metric_set(s->metrics.max_gap, (double)st->max_gap);
}

/* Finds the shard of `job` holding [begin, end), or fails the call. */
static pd_shard *shard_for(pd_ps *ps, pd_rpc_call *call, const char *job, uint64_t begin,
                           uint64_t end, uint32_t worker) {
  int i = find(ps, job);
  if (i < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held by this server", job);
    return NULL;
  }
  pd_shard *s = ps->shards[i];
  if (begin >= end || begin < s->begin || end > s->end) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "key range [%llu, %llu) of job '%s' is empty or outside this server's "
                     "shard [%llu, %llu)",
                     (unsigned long long)begin, (unsigned long long)end, job,
                     (unsigned long long)s->begin, (unsigned long long)s->end);
    return NULL;
  }
  if (worker >= s->num_workers) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "worker %u is out of range: job '%s' has %u workers", worker, job,
                     s->num_workers);
    return NULL;
  }
  return s;
}

static void handle_pull(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  Pando__V1__PullRequest *req =
      (Pando__V1__PullRequest *)pd_rpc_call_unpack(call, &pando__v1__pull_request__descriptor);
  if (!req)
    return;
  pd_shard *s = shard_for(ps, call, req->job, req->begin, req->end, req->worker);
  char err[256];
  if (s && s->fed && pd_fedagg_pull_ok(s->fed, (uint64_t)req->clock, err, sizeof err) != 0)
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
  else if (s && pd_shard_pull(s, call, req->worker, req->clock, req->begin - s->begin,
                         req->end - req->begin, err, sizeof err) != 0)
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
  else if (s)
    export_metrics(s);
  pando__v1__pull_request__free_unpacked(req, NULL);
}

/* pando_ps_pushes_total{job, result}: what became of each push. */
static void count_push(const char *job, enum pd_push_verdict v) {
  static const char *const results[] = {[PD_PUSH_APPLY] = "applied",
                                        [PD_PUSH_ACCUMULATE] = "applied",
                                        [PD_PUSH_BUFFER] = "applied",
                                        [PD_PUSH_BUFFER_ACCEPT] = "applied",
                                        [PD_PUSH_DROP] = "dropped",
                                        [PD_PUSH_DUPLICATE] = "duplicate",
                                        [PD_PUSH_REJECT] = "rejected"};
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", job, results[v]);
  pd_metric_add(pd_metric_counter("pando_ps_pushes_total",
                                  "Pushes received, by job and by what became of them.", labels),
                1);
}

/* A device's update chunk for a federated round (fedagg.c decides). */
static void fed_push(pd_shard *s, pd_rpc_call *call, const Pando__V1__PushRequest *req,
                     const pd_wire_tensor *t) {
  char err[256];
  enum pd_fed_push v = pd_fedagg_push(s->fed, req->device, (uint64_t)req->clock, req->weight,
                                      req->begin - s->begin, req->end - req->begin, t->data, err,
                                      sizeof err);
  char labels[200];
  static const char *const results[] = {[PD_FED_BUFFERED] = "buffered",
                                        [PD_FED_DUPLICATE] = "duplicate",
                                        [PD_FED_LATE] = "late",
                                        [PD_FED_REJECT] = "rejected"};
  snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", req->job, results[v]);
  pd_metric_add(pd_metric_counter("pando_ps_fed_pushes_total",
                                  "Federated update chunks received, by what became of them.",
                                  labels),
                1);
  if (v == PD_FED_REJECT) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "job '%s': %s", req->job, err);
    return;
  }
  Pando__V1__PushResponse resp = PANDO__V1__PUSH_RESPONSE__INIT;
  resp.version = pd_fedagg_stats_get(s->fed)->committed;
  resp.duplicate = v == PD_FED_DUPLICATE;
  resp.dropped = v == PD_FED_LATE;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void handle_push(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  ProtobufCMessage *msg = NULL;
  pd_wire_tensor t;
  char err[256];
  if (pd_wire_decode(pd_rpc_call_payload(call), &pando__v1__push_request__descriptor, 6, NULL, 0,
                     &ps->scratch, &msg, &t, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
    return;
  }
  Pando__V1__PushRequest *req = (Pando__V1__PushRequest *)msg;
  pd_shard *s = shard_for(ps, call, req->job, req->begin, req->end, req->worker);
  if (!s)
    goto done;
  uint64_t n = req->end - req->begin;
  if (!t.present || t.dtype != PANDO__V1__DTYPE__FLOAT32 || t.data_len != n * sizeof(float) ||
      (t.ndim > 0 && (t.ndim != 1 || (uint64_t)t.shape[0] != n))) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "gradient must be a float32 tensor of shape [%llu] (%llu bytes) for keys "
                     "[%llu, %llu); got dtype %d, %zu bytes",
                     (unsigned long long)n, (unsigned long long)(n * sizeof(float)),
                     (unsigned long long)req->begin, (unsigned long long)req->end, t.dtype,
                     t.data_len);
    goto done;
  }
  if (s->fed) {
    fed_push(s, call, req, &t);
    goto done;
  }
  enum pd_push_verdict v =
      pd_shard_push(s, req->worker, req->clock, (int64_t)PD_MIN(req->model_version, INT64_MAX),
                    req->begin - s->begin, n, t.data, err, sizeof err);
  count_push(req->job, v);
  int64_t staleness = pd_clock_last_staleness(s->clock);
  if (staleness >= 0)
    pd_metric_observe(s->metrics.staleness, (double)staleness);
  export_metrics(s);
  if (v == PD_PUSH_REJECT) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
    goto done;
  }
  Pando__V1__PushResponse resp = PANDO__V1__PUSH_RESPONSE__INIT;
  resp.version = pd_clock_version(s->clock);
  resp.duplicate = v == PD_PUSH_DUPLICATE;
  resp.dropped = v == PD_PUSH_DROP;
  pd_rpc_call_reply_msg(call, &resp.base);
done:
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void handle_create(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  Pando__V1__CreateShardRequest *req = (Pando__V1__CreateShardRequest *)pd_rpc_call_unpack(
      call, &pando__v1__create_shard_request__descriptor);
  if (!req)
    return;
  pd_job_spec spec;
  char err[512];
  if (req->job[0] == '\0' || strlen(req->job) >= PD_JOB_ID_MAX) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "job: must be 1 to %d characters",
                     PD_JOB_ID_MAX - 1);
  } else if (pd_job_spec_parse(req->spec_yaml, strlen(req->spec_yaml), &spec, err, sizeof err) !=
             0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "spec_yaml: %s", err);
  } else {
    uint64_t keys = 0;
    if (pd_model_layout(&spec.model, NULL, 0, &keys, err, sizeof err) < 0) {
      pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "spec_yaml: %s", err);
    } else if (req->begin >= req->end || req->end > keys) {
      pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "key range [%llu, %llu) is empty or outside the model's %llu keys",
                       (unsigned long long)req->begin, (unsigned long long)req->end,
                       (unsigned long long)keys);
    } else if (req->num_workers == 0) {
      pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "num_workers: must be >= 1");
    } else if (req->min_partition_rows == 0 &&
               spec.training.lr_schedule.type != PD_LR_CONSTANT) {
      pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "min_partition_rows: must be >= 1 with a training.lr_schedule (the "
                       "epoch of a push depends on it)");
    } else {
      int i = find(ps, req->job);
      if (i >= 0 && (ps->shards[i]->begin != req->begin || ps->shards[i]->end != req->end)) {
        pd_rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS,
                         "job '%s' is already held here with keys [%llu, %llu)", req->job,
                         (unsigned long long)ps->shards[i]->begin,
                         (unsigned long long)ps->shards[i]->end);
        goto done;
      }
      if (i < 0) { /* a retried CreateShard of the same range is a no-op */
        if (ps->nshards == ps->cap) {
          ps->cap = ps->cap ? ps->cap * 2 : 4;
          ps->shards = pd_xrealloc(ps->shards, (size_t)ps->cap * sizeof *ps->shards);
        }
        pd_shard *shard = pd_shard_new(req->job, &spec, req->begin, req->end, req->num_workers,
                                       req->min_partition_rows, err, sizeof err);
        if (!shard) {
          pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "spec_yaml: %s", err);
          goto done;
        }
        open_metrics(shard);
        ps->shards[ps->nshards++] = shard;
        PD_INFO("job %s: holding keys [%llu, %llu) for %u workers (%s, %s lr=%g)", req->job,
                (unsigned long long)req->begin, (unsigned long long)req->end, req->num_workers,
                pd_update_name(spec.training.update),
                pd_optimizer_name(spec.training.optimizer.type), spec.training.optimizer.lr);
      }
      Pando__V1__CreateShardResponse resp = PANDO__V1__CREATE_SHARD_RESPONSE__INIT;
      resp.keys = req->end - req->begin;
      pd_rpc_call_reply_msg(call, &resp.base);
    }
  }
done:
  pando__v1__create_shard_request__free_unpacked(req, NULL);
}

static void handle_drop(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  Pando__V1__DropShardRequest *req = (Pando__V1__DropShardRequest *)pd_rpc_call_unpack(
      call, &pando__v1__drop_shard_request__descriptor);
  if (!req)
    return;
  int i = find(ps, req->job);
  if (i < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held by this server",
                     req->job);
  } else {
    pd_shard_free(ps->shards[i], GRPC_STATUS_ABORTED, "the job's shard was dropped");
    ps->shards[i] = ps->shards[--ps->nshards];
    PD_INFO("job %s: dropped", req->job);
    Pando__V1__DropShardResponse resp = PANDO__V1__DROP_SHARD_RESPONSE__INIT;
    pd_rpc_call_reply_msg(call, &resp.base);
  }
  pando__v1__drop_shard_request__free_unpacked(req, NULL);
}

static void handle_stats(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  Pando__V1__StatsRequest *req =
      (Pando__V1__StatsRequest *)pd_rpc_call_unpack(call, &pando__v1__stats_request__descriptor);
  if (!req)
    return;
  int i = find(ps, req->job);
  if (i < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held by this server",
                     req->job);
  } else {
    pd_shard *s = ps->shards[i];
    const pd_clock_stats *st = pd_clock_stats_get(s->clock);
    uint64_t staleness[PD_STALENESS_BUCKETS];
    memcpy(staleness, st->staleness, sizeof staleness);
    Pando__V1__StatsResponse resp = PANDO__V1__STATS_RESPONSE__INIT;
    resp.version = pd_clock_version(s->clock);
    resp.n_staleness = PD_STALENESS_BUCKETS;
    resp.staleness = staleness;
    resp.staleness_sum = st->staleness_sum;
    resp.dropped = st->dropped;
    resp.blocked = st->blocked;
    resp.max_clock_gap = st->max_gap;
    resp.workers = s->num_workers;
    pd_rpc_call_reply_msg(call, &resp.base);
  }
  pando__v1__stats_request__free_unpacked(req, NULL);
}

/* Closes a federated round with the coordinator's set of devices. */
static void handle_commit_round(pd_rpc_call *call, void *ctx) {
  pd_ps *ps = ctx;
  Pando__V1__CommitRoundRequest *req = (Pando__V1__CommitRoundRequest *)pd_rpc_call_unpack(
      call, &pando__v1__commit_round_request__descriptor);
  if (!req)
    return;
  int i = find(ps, req->job);
  char err[512];
  if (i < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' is not held by this server", req->job);
    goto done;
  }
  pd_shard *s = ps->shards[i];
  if (!s->fed) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                     "job '%s' is not federated (training.update %s)", req->job,
                     pd_update_name(s->spec.training.update));
    goto done;
  }
  const float *grad;
  pd_fedagg_result r;
  if (pd_fedagg_commit(s->fed, req->round, (const char *const *)req->devices, req->n_devices,
                       req->abandon, &grad, &r, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s': %s", req->job, err);
    goto done;
  }
  if (grad) {
    pd_optimizer_spec server;
    double lr;
    pd_fedagg_server_optimizer(&s->spec, &server, &lr);
    pd_shard_apply(s, grad, lr);
  }
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\",result=\"%s\"", req->job,
           r.abandoned ? "abandoned" : "committed");
  if (grad || r.abandoned)
    pd_metric_add(pd_metric_counter("pando_ps_fed_rounds_total",
                                    "Federated rounds closed on this server, committed or abandoned.",
                                    labels),
                  1);
  Pando__V1__CommitRoundResponse resp = PANDO__V1__COMMIT_ROUND_RESPONSE__INIT;
  resp.version = pd_fedagg_stats_get(s->fed)->committed;
  resp.committed = r.committed;
  resp.discarded = r.discarded;
  resp.weight = r.weight;
  pd_rpc_call_reply_msg(call, &resp.base);
  PD_DEBUG("job %s: round %llu %s with %u devices (%u discarded)", req->job,
           (unsigned long long)req->round, r.abandoned ? "abandoned" : "committed", r.committed,
           r.discarded);
done:
  pando__v1__commit_round_request__free_unpacked(req, NULL);
}

void pd_ps_register(pd_ps *ps, pd_rpc_server *srv) {
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/Pull", handle_pull, ps);
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/Push", handle_push, ps);
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/CreateShard", handle_create, ps);
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/DropShard", handle_drop, ps);
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/GetStats", handle_stats, ps);
  pd_rpc_server_add_method(srv, "/pando.v1.ParameterServer/CommitRound", handle_commit_round, ps);
  pd_rpc_health_register(srv, health_services);
}
