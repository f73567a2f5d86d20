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
  char server[340]; /* its name and address, for messages */
  int create;       /* CreateShard (1) or DropShard (0) */
  int restore;      /* a roll back of pass `pass`, for `shard`, to `checkpoint` (0: anew) */
  uint32_t pass, shard;
  uint64_t checkpoint;
  uint64_t node_id; /* the server's registration */
  pd_node node;     /* restore: the server (its id and address), for the CreateShard after a drop */
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

static void send_create(pd_fanout *f, struct shard_call *sc, const pd_job *j, uint32_t shard,
                        const pd_node *server, uint64_t restore);

/* A call of a roll back finished: a DropShard (of a roll back to 0) goes on
 * with the CreateShard; a CreateShard answers the jobs. */
static void restore_done(pd_fanout *f, shard_call *sc, const pd_rpc_result *r) {
  char failure[512] = "";
  uint64_t checkpoint = 0;
  ProtobufCMessage *msg = NULL;
  if (!sc->create) { /* dropped (or it was not there): now anew from the seed */
    pd_job *j = pd_jobs_find(f->jobs, sc->job);
    if (!j || j->state != PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING ||
        j->restore_pass != sc->pass) { /* ended or moved on meanwhile: no shard to make */
      free(sc);
      return;
    }
    if (r->status == GRPC_STATUS_OK || r->status == GRPC_STATUS_NOT_FOUND) {
      shard_call *next = pd_xcalloc(1, sizeof *next);
      *next = *sc;
      next->create = 1;
      send_create(f, next, j, sc->shard, &sc->node, 0);
      free(sc);
      return;
    }
    snprintf(failure, sizeof failure, "dropping the shard on server %s: %s: %s", sc->server,
             pd_rpc_status_name(r->status), r->details);
  } else if (r->status == GRPC_STATUS_FAILED_PRECONDITION && sc->checkpoint > 0) {
    PD_INFO("job %s: server %s holds no checkpoint <= %llu to restore: %s", sc->job, sc->server,
            (unsigned long long)sc->checkpoint, r->details);
  } else if (r->status != GRPC_STATUS_OK) {
    snprintf(failure, sizeof failure, "restoring the shard on server %s: %s: %s", sc->server,
             pd_rpc_status_name(r->status), r->details);
  } else if (pd_rpc_unpack(r->response, &pando__v1__create_shard_response__descriptor, &msg,
                           failure, sizeof failure) == 0) {
    checkpoint = ((Pando__V1__CreateShardResponse *)msg)->checkpoint;
    protobuf_c_message_free_unpacked(msg, NULL);
    if (checkpoint == 0 && sc->checkpoint > 0)
      snprintf(failure, sizeof failure, "server %s restored no checkpoint", sc->server);
  }
  pd_jobs_shard_restored(f->jobs, sc->job, sc->pass, sc->shard, checkpoint,
                         failure[0] ? failure : NULL, pd_now());
  free(sc);
}

static void shard_call_done(const pd_rpc_result *r, void *user) {
  shard_call *sc = user;
  pd_fanout *f = sc->fanout;
  f->calls_in_flight--;
  if (sc->restore) {
    restore_done(f, sc, r); /* it frees sc */
    return;
  }
  if (!sc->create) {
    if (r->status != GRPC_STATUS_OK && r->status != GRPC_STATUS_NOT_FOUND)
      PD_WARN("job %s: DropShard on %s failed: %s", sc->job, sc->server, r->details);
    pd_jobs_shard_dropped(f->jobs, sc->job);
  } else if (r->status != GRPC_STATUS_OK) {
    char failure[512];
    snprintf(failure, sizeof failure, "creating the shard on server %s failed: %s: %s", sc->server,
             pd_rpc_status_name(r->status), r->details);
    /* a server killed but not declared dead yet, or one without room: the
     * job is placed again without it; any other refusal fails the job */
    if (r->status == GRPC_STATUS_UNAVAILABLE || r->status == GRPC_STATUS_DEADLINE_EXCEEDED ||
        r->status == GRPC_STATUS_RESOURCE_EXHAUSTED)
      pd_jobs_shard_misplaced(f->jobs, sc->job, sc->node_id,
                              r->status != GRPC_STATUS_RESOURCE_EXHAUSTED, failure, pd_now());
    else
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
  snprintf(sc->server, sizeof sc->server, "%s at %s", server->name, server->address);
  sc->node_id = server->id;
  sc->create = create;
  return sc;
}

/* A CreateShard of `shard` of `j` (with restore_checkpoint `restore`, 0: none). */
static void send_create(pd_fanout *f, struct shard_call *sc, const pd_job *j, uint32_t shard,
                        const pd_node *server, uint64_t restore) {
  Pando__V1__CreateShardRequest req = PANDO__V1__CREATE_SHARD_REQUEST__INIT;
  req.job = (char *)j->id;
  req.spec_yaml = j->spec_yaml;
  req.job_token = (char *)j->job_token;
  req.begin = j->shard_begin[shard];
  req.end = j->shard_end[shard];
  req.num_workers = pd_job_replicas(j); /* a pipeline's stages push as their replica */
  if (pd_job_federated(j)) {            /* devices push as worker 0 with their device id */
    req.num_workers = 1;
    req.min_partition_rows = 1;
  } else {
    req.min_partition_rows =
        pd_plan_min_partition_rows(j->train_rows, pd_job_replicas(j), j->spec.data.partition);
  }
  req.restore_checkpoint = restore;
  /* a roll back makes the shard of the attempt that runs once it is over */
  req.attempt = sc->restore ? j->attempt + 1 : j->attempt;
  send_call(f, sc, server, "/pando.v1.ParameterServer/CreateShard", &req.base);
}

static void create_shard(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server) {
  pd_fanout *f = ctx;
  send_create(f, call_new(f, j, server, 1), j, shard, server, 0);
}

static void restore_shard(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server,
                          uint64_t checkpoint, uint32_t pass) {
  pd_fanout *f = ctx;
  shard_call *sc = call_new(f, j, server, checkpoint > 0);
  sc->restore = 1;
  sc->pass = pass;
  sc->shard = shard;
  sc->checkpoint = checkpoint;
  sc->node = *server;
  if (checkpoint > 0) {
    send_create(f, sc, j, shard, server, checkpoint);
  } else { /* DropShard first: a CreateShard of a held shard would be a no-op */
    Pando__V1__DropShardRequest req = PANDO__V1__DROP_SHARD_REQUEST__INIT;
    req.job = (char *)j->id;
    send_call(f, sc, server, "/pando.v1.ParameterServer/DropShard", &req.base);
  }
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
  pd_jobs_fanout ops = {create_shard, drop_shard, f, restore_shard};
  return ops;
}
