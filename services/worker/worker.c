/* The worker daemon: its session with the coordinator, and each assignment
 * trained with pd_train() over the cluster (train.c); see worker.h. */
#include "worker.h"

#include "peer.h"
#include "train.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pando/daemon.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/psclient.h"
#include "pando/session.h"
#include "pando/spec.h"
#include "pando/util.h"

#define CONTROL_TIMEOUT_SEC 10.0
/* Tries of a report that holds an epoch's evaluation, 0.5 s apart: a
 * coordinator restarts well within them (10 minutes). */
#define REPORT_RETRIES 1200

/* ---------------------------------------------------------------- training */

typedef struct progress {
  pd_rpc_channel *coordinator;
  pd_worker_node *node; /* in whose name it reports (may be NULL) */
  const char *job;
  uint32_t rank;
  uint32_t attempt; /* Assignment.attempt */
} progress;

/* The node id (0 while not registered), its secret into `secret`. */
static uint64_t node_get(pd_worker_node *node, char *secret, size_t secretlen) {
  pthread_mutex_lock(&node->lock);
  uint64_t id = node->id;
  pd_strlcpy(secret, node->secret, secretlen);
  pthread_mutex_unlock(&node->lock);
  return id;
}

/* Sends a progress report; returns -PD_ECANCELLED if the job must stop. A
 * coordinator that cannot be reached is logged, not fatal. */
static int report(void *ctx, Pando__V1__ProgressReport *r) {
  progress *p = ctx;
  if (!p->coordinator)
    return 0;
  r->job = (char *)p->job;
  r->rank = p->rank;
  r->attempt = p->attempt;
  char secret[sizeof p->node->secret] = "";
  if (p->node)
    r->node_id = node_get(p->node, secret, sizeof secret);
  r->node_secret = secret;
  ProtobufCMessage *resp = NULL;
  char err[512];
  /* an epoch's evaluation and the last report are the job's history: they
   * wait for an answer (a restarted coordinator's, which may say stop) */
  int must = r->has_eval || r->done, rc, tries = 0;
  grpc_status_code status = GRPC_STATUS_OK;
  while ((rc = pd_rpc_unary(p->coordinator, "/pando.v1.Coordinator/ReportProgress", &r->base,
                            &pando__v1__progress_ack__descriptor, &resp, CONTROL_TIMEOUT_SEC,
                            &status, err, sizeof err)) != 0 &&
         must && ++tries <= REPORT_RETRIES && !pd_daemon_stopping() &&
         (status == GRPC_STATUS_UNAVAILABLE || status == GRPC_STATUS_DEADLINE_EXCEEDED ||
          status == GRPC_STATUS_UNAUTHENTICATED)) { /* down, or it forgot this node: again */
    PD_WARN("progress report of epoch %u failed (retrying: it holds the epoch's evaluation): %s",
            r->epoch, err);
    usleep(500000);
    if (p->node) /* the session may have registered again meanwhile */
      r->node_id = node_get(p->node, secret, sizeof secret);
  }
  memset(secret, 0, sizeof secret);
  r->node_secret = (char *)"";
  if (rc != 0) {
    PD_WARN("progress report failed: %s", err);
    return 0;
  }
  int cancel = ((Pando__V1__ProgressAck *)resp)->cancel;
  protobuf_c_message_free_unpacked(resp, NULL);
  return cancel ? -PD_ECANCELLED : 0;
}

/* The cluster as a parameter store: every pull and push covers all keys,
 * fanned out over the shards. */
typedef struct remote_store {
  pd_psclient *client;
  uint64_t keys;
  uint64_t begin, end; /* what pull and push cover: [0, keys), or a pipeline stage's keys */
  /* checkpoint.every_seconds (worker 0 only; 0: off): its push flags a
   * checkpoint (PushRequest.checkpoint) when that long passed since the last */
  double checkpoint_every, checkpoint_last;
} remote_store;

/* A failed pull or push: -PD_ERPC when a server could not be reached or
 * ended the call (UNAVAILABLE after the retries, ABORTED by a roll back or a
 * dropped shard, NOT_FOUND, a deadline), which a job with checkpoints
 * recovers from; -PD_ESTATE when a server refused it (a bad gradient, a
 * clock no consistency model allows), which redoing would not change. */
static int remote_failure(const remote_store *r, int rc) {
  if (rc != -PD_ERPC)
    return rc;
  switch (pd_psclient_failed_status(r->client)) {
  case GRPC_STATUS_UNAVAILABLE:
  case GRPC_STATUS_ABORTED:
  case GRPC_STATUS_NOT_FOUND:
  case GRPC_STATUS_DEADLINE_EXCEEDED:
  case GRPC_STATUS_CANCELLED:
  case GRPC_STATUS_UNKNOWN:
  /* a server that does not hold the job answers a job token with this, not
   * NOT_FOUND (it does not tell which jobs exist): e.g. a server restarted
   * on the same address before the roll back made its shard again */
  case GRPC_STATUS_UNAUTHENTICATED:
    return rc;
  default:
    return -PD_ESTATE;
  }
}

static int remote_pull(void *ctx, int64_t clock, float *params, uint64_t *version, char *err,
                       size_t errlen) {
  remote_store *r = ctx;
  return remote_failure(r, pd_psclient_pull(r->client, r->begin, r->end, clock, params + r->begin,
                                            version, err, errlen));
}

static int remote_pull_all(void *ctx, int64_t clock, float *params, char *err, size_t errlen) {
  remote_store *r = ctx;
  return remote_failure(r,
                        pd_psclient_pull(r->client, 0, r->keys, clock, params, NULL, err, errlen));
}

static int remote_push(void *ctx, int64_t clock, const float *grad, int *dropped, char *err,
                       size_t errlen) {
  remote_store *r = ctx;
  double now = pd_now();
  int flag = r->checkpoint_every > 0 && now - r->checkpoint_last >= r->checkpoint_every;
  pd_psclient_set_checkpoint(r->client, flag);
  int rc = remote_failure(
      r, pd_psclient_push(r->client, r->begin, r->end, clock, grad + r->begin, err, errlen));
  if (rc == 0 && flag)
    r->checkpoint_last = now;
  if (rc == 0 && dropped)
    *dropped = pd_psclient_push_dropped(r->client);
  return rc;
}

int pd_worker_train(const Pando__V1__Assignment *a, pd_rpc_channel *coordinator,
                    pd_worker_node *node, const pd_worker_options *opt, char *err, size_t errlen) {
  pd_job_spec spec;
  int rc = pd_job_spec_parse(a->spec_yaml, strlen(a->spec_yaml), &spec, err, errlen);
  if (rc != 0)
    return rc;
  const Pando__V1__ShardMap *map = a->shard_map;
  if (!map || map->n_shards == 0 || a->num_workers == 0)
    return pd_errf(err, errlen, -PD_EFORMAT, "assignment for job %s has no shard map or workers",
                   a->job);
  pd_shard_range *ranges = pd_xcalloc(map->n_shards, sizeof *ranges);
  for (size_t i = 0; i < map->n_shards; i++) {
    ranges[i].begin = map->shards[i]->begin;
    ranges[i].end = map->shards[i]->end;
    pd_strlcpy(ranges[i].address, map->shards[i]->address, sizeof ranges[i].address);
  }
  /* a pipeline stage pushes as its replica, its own keys only */
  int pipeline = a->stages > 1;
  if (pipeline && (!opt || !opt->peers || a->num_replicas == 0 ||
                   a->stage_key_begin >= a->stage_key_end || a->stage_key_end > map->keys)) {
    free(ranges);
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "assignment for job %s: stage %u of %u without a Peer service, replicas or "
                   "keys",
                   a->job, a->stage, a->stages);
  }
  uint32_t ps_worker = pipeline ? a->replica : a->rank;
  remote_store remote = {pd_psclient_new(a->job, ps_worker, ranges, (int)map->n_shards, 0),
                         map->keys,
                         pipeline ? a->stage_key_begin : 0,
                         pipeline ? a->stage_key_end : map->keys,
                         0,
                         0};
  free(ranges);
  pd_psclient_set_token(remote.client, a->job_token);
  pd_psclient_set_attempt(remote.client, a->attempt);
  if (a->rank == 0 && spec.checkpoint.every_seconds > 0) { /* the first one after a period */
    remote.checkpoint_every = spec.checkpoint.every_seconds;
    remote.checkpoint_last = pd_now();
  }
  pd_codec_params push_codec, pull_codec;
  pd_job_spec_compression(&spec, &push_codec, &pull_codec);
  pd_psclient_set_compression(remote.client, &push_codec, &pull_codec);
  pd_param_store store = {remote_pull, remote_push, &remote, NULL,
                          pipeline ? remote_pull_all : NULL};
  progress p = {coordinator, node, a->job, a->rank, a->attempt};
  pd_progress_sink sink = {report, &p};
  pd_train_stage stage = {0};
  if (pipeline)
    stage = (pd_train_stage){a->stage,
                             a->stages,
                             (int)a->stage_layer_begin,
                             (int)a->stage_layer_end,
                             a->stage_key_begin,
                             a->stage_key_end,
                             a->peer_prev,
                             a->peer_next,
                             a->attempt,
                             a->job_token,
                             opt->peers,
                             opt->peer_timeout_sec > 0 ? opt->peer_timeout_sec : 60.0};
  pd_train_job tj = {&spec,
                     a->job,
                     ps_worker,
                     pipeline ? a->num_replicas : a->num_workers,
                     a->rank == 0,
                     opt ? opt->slowdown : 1.0,
                     opt ? opt->batch_delay_sec : 0.0,
                     (int64_t)a->start_clock,
                     opt ? opt->trace_events : 0,
                     pipeline ? &stage : NULL};
  rc = pd_train(&tj, &store, &sink, err, errlen);
  pd_psclient_free(remote.client);
  return rc;
}

/* ---------------------------------------------------------------- daemon */

/* State shared between the session thread and the training thread. */
typedef struct worker_daemon {
  const pd_worker_options *opt;
  pd_loop *loop;
  pd_rpc_server *server;
  pd_session *session;
  pd_worker_node node; /* the session's id and secret, for the training thread */
  /* under node.lock: the latest assignment generation heard, and the node
   * it is of (after registering again, e.g. with a restarted coordinator,
   * the new node's generations may repeat the old one's numbers) */
  uint64_t generation, generation_node;
  atomic_int stop;
} worker_daemon;

static void assignment_changed(pd_session *s, uint64_t generation, void *user) {
  worker_daemon *d = user;
  pthread_mutex_lock(&d->node.lock);
  d->generation = generation;
  d->generation_node = pd_session_node_id(s);
  pthread_mutex_unlock(&d->node.lock);
}

static void session_cron(void *user) {
  worker_daemon *d = user;
  pd_session_tick(d->session);
  pthread_mutex_lock(&d->node.lock);
  d->node.id = pd_session_node_id(d->session);
  pd_strlcpy(d->node.secret, pd_session_node_secret(d->session), sizeof d->node.secret);
  pthread_mutex_unlock(&d->node.lock);
}

static void *session_thread(void *arg) {
  worker_daemon *d = arg;
  while (!atomic_load(&d->stop) && !pd_daemon_stopping()) {
    session_cron(d);
    pd_loop_run_once(d->loop, 0.05);
  }
  return NULL;
}

/* Asks the coordinator for this node's assignment. */
static Pando__V1__Assignment *fetch_assignment(pd_rpc_channel *coord, uint64_t node_id,
                                               const char *secret) {
  Pando__V1__AssignmentRequest req = PANDO__V1__ASSIGNMENT_REQUEST__INIT;
  req.node_id = node_id;
  req.node_secret = (char *)secret;
  ProtobufCMessage *resp = NULL;
  char err[512];
  if (pd_rpc_unary(coord, "/pando.v1.Coordinator/GetAssignment", &req.base,
                   &pando__v1__assignment__descriptor, &resp, CONTROL_TIMEOUT_SEC, NULL, err,
                   sizeof err) != 0) {
    PD_WARN("GetAssignment failed: %s", err);
    return NULL;
  }
  return (Pando__V1__Assignment *)resp;
}

int pd_worker_main(const pd_worker_options *opt) {
  worker_daemon d;
  char err[512], addr[300];
  memset(&d, 0, sizeof d);
  pthread_mutex_init(&d.node.lock, NULL);
  d.opt = opt;
  d.loop = pd_loop_new();
  d.server = pd_rpc_server_new(d.loop);
  static const char *const services[] = {"pando.v1.Worker", "pando.v1.Peer", NULL};
  pd_rpc_health_register(d.server, services);
  pd_worker_options with_peers = *opt; /* the trainings' options: with the Peer mailbox */
  with_peers.peers = pd_peer_box_new();
  pd_peer_box_serve(with_peers.peers, d.server);
  int port = pd_rpc_server_listen(d.server, opt->listen, err, sizeof err);
  if (port < 0) {
    PD_ERROR("%s", err);
    pd_rpc_server_free(d.server);
    pd_peer_box_free(with_peers.peers);
    pd_loop_free(d.loop);
    return 1;
  }
  pd_rpc_server_start(d.server);
  pd_daemon_advertise(opt->listen, opt->advertise, port, addr, sizeof addr);
  if (pd_daemon_write_port(opt->port_file, port) != 0)
    PD_WARN("cannot write port file %s", opt->port_file);
  PD_INFO("worker %s: health on %s, coordinator %s", opt->name, addr, opt->coordinator);
  d.session = pd_session_new(d.loop, opt->coordinator, PANDO__V1__ROLE__ROLE_WORKER, addr,
                             opt->name, assignment_changed, &d);
  pthread_t tid;
  pthread_create(&tid, NULL, session_thread, &d);

  pd_rpc_channel *coord = pd_rpc_channel_new(opt->coordinator, 0);
  uint64_t seen = 0, seen_node = 0; /* the generation last fetched, and its node */
  while (!pd_daemon_stopping()) {
    char secret[sizeof d.node.secret];
    uint64_t node_id = node_get(&d.node, secret, sizeof secret);
    pthread_mutex_lock(&d.node.lock);
    uint64_t generation = d.generation, generation_node = d.generation_node;
    pthread_mutex_unlock(&d.node.lock);
    /* fetch once a heartbeat of this node says something new */
    if (node_id == 0 || generation_node != node_id ||
        (generation == seen && node_id == seen_node)) {
      usleep(20000);
      continue;
    }
    Pando__V1__Assignment *a = fetch_assignment(coord, node_id, secret);
    memset(secret, 0, sizeof secret);
    if (!a) {
      usleep(200000);
      continue;
    }
    seen = generation;
    seen_node = node_id;
    if (a->job[0]) {
      PD_INFO("assigned to job %s as rank %u (attempt %u, from clock %llu)", a->job, a->rank,
              a->attempt, (unsigned long long)a->start_clock);
      int rc = pd_worker_train(a, coord, &d.node, &with_peers, err, sizeof err);
      if (rc != 0 && rc != -PD_ECANCELLED) {
        /* Tell the coordinator; if the job had already ended (cancelled, or
         * failed elsewhere, which drops its shards) this is no error of ours. */
        Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
        progress p = {coord, &d.node, a->job, a->rank, a->attempt};
        r.error = err;
        r.unreachable = rc == -PD_ERPC; /* a pull or push: a job with checkpoints recovers */
        if (report(&p, &r) == -PD_ECANCELLED)
          rc = -PD_ECANCELLED;
        else
          PD_ERROR("job %s failed: %s", a->job, err);
      }
      if (rc == -PD_ECANCELLED)
        PD_INFO("job %s was stopped by the coordinator", a->job);
    }
    pando__v1__assignment__free_unpacked(a, NULL);
  }

  atomic_store(&d.stop, 1);
  pthread_join(tid, NULL);
  pd_rpc_channel_free(coord);
  pd_session_free(d.session);
  memset(d.node.secret, 0, sizeof d.node.secret);
  pthread_mutex_destroy(&d.node.lock);
  pd_rpc_server_free(d.server);
  pd_peer_box_free(with_peers.peers);
  pd_loop_free(d.loop);
  return 0;
}
