/* CreateShard and DropShard calls to the servers; see fanout.h. */
#include "fanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/log.h"
#include "pando/plan.h"
#include "pando/util.h"

#define CALL_TIMEOUT_SEC 30.0

typedef struct server_channel {
  uint64_t node_id;
  pd_rpc_channel *channel;
} server_channel;

struct pd_fanout {
  pd_loop *loop;
  pd_jobs *jobs;
  server_channel *channels;
  size_t nchannels;
  int calls_in_flight;
};

typedef struct shard_call {
  pd_fanout *fanout;
  char job[PD_JOB_ID_MAX];
  char server[256]; /* its address, for messages */
  int create;       /* CreateShard (1) or DropShard (0) */
} shard_call;

pd_fanout *pd_fanout_new(pd_loop *loop) {
  pd_fanout *f = pd_xcalloc(1, sizeof *f);
  f->loop = loop;
  return f;
}

void pd_fanout_free(pd_fanout *f) {
  if (!f)
    return;
  while (f->calls_in_flight > 0)
    pd_loop_run_once(f->loop, 1.0);
  for (size_t i = 0; i < f->nchannels; i++)
    pd_rpc_channel_free(f->channels[i].channel);
  free(f->channels);
  free(f);
}

void pd_fanout_attach(pd_fanout *f, pd_jobs *jobs) { f->jobs = jobs; }

/* The channel to `server`, opened on first use. */
static pd_rpc_channel *channel_to(pd_fanout *f, const pd_node *server) {
  for (size_t i = 0; i < f->nchannels; i++)
    if (f->channels[i].node_id == server->id)
      return f->channels[i].channel;
  f->channels = pd_xrealloc(f->channels, (f->nchannels + 1) * sizeof *f->channels);
  f->channels[f->nchannels].node_id = server->id;
  f->channels[f->nchannels].channel = pd_rpc_channel_new(server->address, 0);
  return f->channels[f->nchannels++].channel;
}

static void shard_call_done(const pd_rpc_result *r, void *user) {
  shard_call *sc = user;
  pd_fanout *f = sc->fanout;
  f->calls_in_flight--;
  if (!sc->create) {
    if (r->status != GRPC_STATUS_OK && r->status != GRPC_STATUS_NOT_FOUND)
      PD_WARN("job %s: DropShard on %s failed: %s", sc->job, sc->server, r->details);
  } else if (r->status != GRPC_STATUS_OK) {
    char failure[512];
    snprintf(failure, sizeof failure, "creating the shard on server %s failed: %s: %s", sc->server,
             pd_rpc_status_name(r->status), r->details);
    pd_jobs_shard_created(f->jobs, sc->job, failure, pd_now());
  } else {
    pd_jobs_shard_created(f->jobs, sc->job, NULL, pd_now());
  }
  free(sc);
}

/* Sends `request` as `method`; its result goes to shard_call_done. */
static void send_call(pd_fanout *f, shard_call *sc, const pd_node *server, const char *method,
                      const ProtobufCMessage *request) {
  grpc_slice slice = pd_rpc_pack(request);
  int rc = pd_rpc_start(channel_to(f, server), f->loop, method, &slice, 1, CALL_TIMEOUT_SEC,
                        shard_call_done, sc);
  grpc_slice_unref(slice);
  f->calls_in_flight++;
  if (rc != 0) {
    pd_rpc_result r = {GRPC_STATUS_INTERNAL, "cannot start call", NULL};
    shard_call_done(&r, sc);
  }
}

static shard_call *call_new(pd_fanout *f, const pd_job *j, const pd_node *server, int create) {
  shard_call *sc = pd_xcalloc(1, sizeof *sc);
  sc->fanout = f;
  pd_strlcpy(sc->job, j->id, sizeof sc->job);
  pd_strlcpy(sc->server, server->address, sizeof sc->server);
  sc->create = create;
  return sc;
}

static void create_shard(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server) {
  pd_fanout *f = ctx;
  shard_call *sc = call_new(f, j, server, 1);
  Pando__V1__CreateShardRequest req = PANDO__V1__CREATE_SHARD_REQUEST__INIT;
  req.job = (char *)j->id;
  req.spec_yaml = j->spec_yaml;
  req.job_token = (char *)j->job_token;
  req.begin = j->shard_begin[shard];
  req.end = j->shard_end[shard];
  req.num_workers = j->nworkers;
  if (pd_job_federated(j)) { /* devices push as worker 0 with their device id */
    req.num_workers = 1;
    req.min_partition_rows = 1;
  } else {
    req.min_partition_rows =
        pd_plan_min_partition_rows(j->train_rows, j->nworkers, j->spec.data.partition);
  }
  send_call(f, sc, server, "/pando.v1.ParameterServer/CreateShard", &req.base);
}

static void drop_shard(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server) {
  (void)shard;
  pd_fanout *f = ctx;
  shard_call *sc = call_new(f, j, server, 0);
  Pando__V1__DropShardRequest req = PANDO__V1__DROP_SHARD_REQUEST__INIT;
  req.job = (char *)j->id;
  send_call(f, sc, server, "/pando.v1.ParameterServer/DropShard", &req.base);
}

pd_jobs_fanout pd_fanout_ops(pd_fanout *f) {
  pd_jobs_fanout ops = {create_shard, drop_shard, f};
  return ops;
}
