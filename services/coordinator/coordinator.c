/* The Coordinator service: node registry, job state machine, assignments;
 * see coordinator.h. Everything runs on the daemon's one event loop. */
#include "coordinator.h"

#include "rounds.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando.pb-c.h"
#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/plan.h"
#include "pando/schedule.h"
#include "pando/spec.h"
#include "pando/util.h"

#define JOB_ID_MAX 96
#define CALL_TIMEOUT_SEC 30.0

typedef struct node {
  uint64_t id;
  int role; /* Pando__V1__Role */
  char address[256];
  char name[64];
  double last_seen;
  int alive;
  char job[JOB_ID_MAX]; /* worker: the job it runs; "" when idle */
  uint32_t rank;
  uint64_t generation; /* bumped when its assignment changes */
  pd_rpc_channel *channel; /* servers: lazily opened */
} node;

typedef struct worker_progress {
  uint64_t node_id;
  uint32_t epoch;
  uint64_t step;
  double loss;
  double samples_per_sec;
  int done;
} worker_progress;

typedef struct job {
  char id[JOB_ID_MAX];
  pd_job_spec spec;
  char *spec_yaml;
  Pando__V1__JobState state;
  char message[512];
  double submitted, started, finished;
  uint64_t keys;
  uint64_t train_rows;
  uint32_t steps_per_epoch;
  uint32_t nservers, nworkers;
  uint64_t *server_ids; /* nservers */
  uint64_t *shard_begin, *shard_end;
  worker_progress *workers; /* nworkers, by rank */
  int creating;             /* CreateShard calls in flight */
  int create_failed;
  Pando__V1__EpochRecord *history;
  size_t nhistory;
  pd_rounds *rounds; /* training.update fedavg: its rounds (rounds.c), once RUNNING */
} job;

struct pd_coord {
  pd_loop *loop;
  pd_coord_options opt;
  node *nodes;
  size_t nnodes, nodes_cap;
  uint64_t next_node_id;
  job **jobs;
  size_t njobs, jobs_cap;
  uint64_t next_job;
  int calls_in_flight;
};

static const char *const health_services[] = {"pando.v1.Coordinator", NULL};

pd_coord *pd_coord_new(pd_loop *loop, const pd_coord_options *options) {
  pd_coord *c = pd_xcalloc(1, sizeof *c);
  c->loop = loop;
  c->opt = *options;
  c->next_node_id = 1;
  c->next_job = 1;
  return c;
}

static int federated_job(const job *j) { return j->spec.training.update == PD_UPDATE_FEDAVG; }

static void job_free(job *j) {
  pd_rounds_free(j->rounds);
  free(j->spec_yaml);
  free(j->server_ids);
  free(j->shard_begin);
  free(j->shard_end);
  free(j->workers);
  free(j->history);
  free(j);
}

void pd_coord_free(pd_coord *c) {
  if (!c)
    return;
  while (c->calls_in_flight > 0)
    pd_loop_run_once(c->loop, 1.0);
  for (size_t i = 0; i < c->nnodes; i++)
    pd_rpc_channel_free(c->nodes[i].channel);
  for (size_t i = 0; i < c->njobs; i++)
    job_free(c->jobs[i]);
  free(c->nodes);
  free(c->jobs);
  free(c);
}

static node *find_node(pd_coord *c, uint64_t id) {
  for (size_t i = 0; i < c->nnodes; i++)
    if (c->nodes[i].id == id)
      return &c->nodes[i];
  return NULL;
}

static job *find_job(pd_coord *c, const char *id) {
  for (size_t i = 0; i < c->njobs; i++)
    if (strcmp(c->jobs[i]->id, id) == 0)
      return c->jobs[i];
  return NULL;
}

static int terminal(Pando__V1__JobState s) {
  return s == PANDO__V1__JOB_STATE__SUCCEEDED || s == PANDO__V1__JOB_STATE__FAILED ||
         s == PANDO__V1__JOB_STATE__CANCELLED;
}

static const char *state_name(Pando__V1__JobState s) {
  const ProtobufCEnumValue *v =
      protobuf_c_enum_descriptor_get_value(&pando__v1__job_state__descriptor, (int)s);
  return v ? v->name : "?";
}

/* ---------------------------------------------------------------- shards on servers */

typedef struct shard_call {
  pd_coord *coord;
  char job[JOB_ID_MAX];
  uint64_t server_id;
  int create; /* CreateShard (1) or DropShard (0) */
  uint8_t *request;
} shard_call;

static void finish_job(pd_coord *c, job *j, Pando__V1__JobState state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void shard_call_done(const pd_rpc_result *r, void *user) {
  shard_call *sc = user;
  pd_coord *c = sc->coord;
  c->calls_in_flight--;
  job *j = find_job(c, sc->job);
  node *n = find_node(c, sc->server_id);
  const char *who = n ? n->address : "?";
  if (!sc->create) {
    if (r->status != GRPC_STATUS_OK && r->status != GRPC_STATUS_NOT_FOUND)
      PD_WARN("job %s: DropShard on %s failed: %s", sc->job, who, r->details);
  } else if (j) {
    j->creating--;
    if (r->status != GRPC_STATUS_OK && !terminal(j->state)) {
      j->create_failed = 1;
      finish_job(c, j, PANDO__V1__JOB_STATE__FAILED, "creating the shard on server %s failed: %s: %s",
                 who, pd_rpc_status_name(r->status), r->details);
    }
  }
  free(sc->request);
  free(sc);
}

static void send_shard_call(pd_coord *c, job *j, uint32_t shard, int create) {
  node *n = find_node(c, j->server_ids[shard]);
  if (!n)
    return;
  if (!n->channel)
    n->channel = pd_rpc_channel_new(n->address, 0);
  shard_call *sc = pd_xcalloc(1, sizeof *sc);
  sc->coord = c;
  pd_strlcpy(sc->job, j->id, sizeof sc->job);
  sc->server_id = n->id;
  sc->create = create;
  size_t len;
  const char *method;
  if (create) {
    Pando__V1__CreateShardRequest req = PANDO__V1__CREATE_SHARD_REQUEST__INIT;
    req.job = j->id;
    req.spec_yaml = j->spec_yaml;
    req.begin = j->shard_begin[shard];
    req.end = j->shard_end[shard];
    req.num_workers = j->nworkers;
    if (federated_job(j)) { /* devices push as worker 0 with their device id */
      req.num_workers = 1;
      req.min_partition_rows = 1;
    } else {
      req.min_partition_rows =
          pd_plan_min_partition_rows(j->train_rows, j->nworkers, j->spec.data.partition);
    }
    len = pando__v1__create_shard_request__get_packed_size(&req);
    sc->request = pd_xmalloc(len);
    pando__v1__create_shard_request__pack(&req, sc->request);
    method = "/pando.v1.ParameterServer/CreateShard";
  } else {
    Pando__V1__DropShardRequest req = PANDO__V1__DROP_SHARD_REQUEST__INIT;
    req.job = j->id;
    len = pando__v1__drop_shard_request__get_packed_size(&req);
    sc->request = pd_xmalloc(len ? len : 1);
    pando__v1__drop_shard_request__pack(&req, sc->request);
    method = "/pando.v1.ParameterServer/DropShard";
  }
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)sc->request, len);
  int rc = pd_rpc_start(n->channel, c->loop, method, &slice, 1, CALL_TIMEOUT_SEC, shard_call_done, sc);
  grpc_slice_unref(slice);
  if (rc != 0) {
    pd_rpc_result r = {GRPC_STATUS_INTERNAL, "cannot start call", NULL};
    c->calls_in_flight++;
    shard_call_done(&r, sc);
    return;
  }
  c->calls_in_flight++;
  if (create)
    j->creating++;
}

/* ---------------------------------------------------------------- job lifecycle */

static void release_workers(pd_coord *c, job *j) {
  for (size_t i = 0; i < c->nnodes; i++) {
    node *n = &c->nodes[i];
    if (n->role == PANDO__V1__ROLE__WORKER && strcmp(n->job, j->id) == 0) {
      n->job[0] = '\0';
      n->generation++;
    }
  }
}

static void finish_job(pd_coord *c, job *j, Pando__V1__JobState state, const char *fmt, ...) {
  if (terminal(j->state))
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->message, sizeof j->message, fmt, ap);
  va_end(ap);
  int had_shards = j->server_ids != NULL;
  j->state = state;
  j->finished = pd_now();
  char labels[64];
  snprintf(labels, sizeof labels, "state=\"%s\"", state_name(state));
  pd_metric_add(pd_metric_counter("pando_jobs_finished_total", "Jobs that ended, by final state.",
                                  labels),
                1);
  release_workers(c, j);
  if (j->rounds)
    pd_rounds_stop(j->rounds);
  /* A finished job's model stays on the servers; a failed or cancelled one
   * gives its memory back. */
  if (had_shards && state != PANDO__V1__JOB_STATE__SUCCEEDED)
    for (uint32_t s = 0; s < j->nservers; s++)
      send_shard_call(c, j, s, 0);
  PD_INFO("job %s: %s%s%s", j->id, state_name(state), j->message[0] ? ": " : "", j->message);
}

static int idle_worker(const node *n) {
  return n->role == PANDO__V1__ROLE__WORKER && n->alive && n->job[0] == '\0';
}

static size_t count_nodes(pd_coord *c, int role, int idle_only) {
  size_t k = 0;
  for (size_t i = 0; i < c->nnodes; i++) {
    const node *n = &c->nodes[i];
    if (n->role == role && n->alive && (!idle_only || idle_worker(n)))
      k++;
  }
  return k;
}

/* Servers holding the fewest shards come first. */
static size_t server_load(pd_coord *c, uint64_t id) {
  size_t load = 0;
  for (size_t i = 0; i < c->njobs; i++) {
    job *j = c->jobs[i];
    if (terminal(j->state) && j->state != PANDO__V1__JOB_STATE__SUCCEEDED)
      continue;
    for (uint32_t s = 0; j->server_ids && s < j->nservers; s++)
      load += j->server_ids[s] == id;
  }
  return load;
}

static void start_job(pd_coord *c, job *j) {
  j->server_ids = pd_xcalloc(j->nservers, sizeof *j->server_ids);
  j->shard_begin = pd_xcalloc(j->nservers, sizeof *j->shard_begin);
  j->shard_end = pd_xcalloc(j->nservers, sizeof *j->shard_end);
  /* pick the least loaded alive servers */
  for (uint32_t s = 0; s < j->nservers; s++) {
    node *best = NULL;
    size_t best_load = SIZE_MAX;
    for (size_t i = 0; i < c->nnodes; i++) {
      node *n = &c->nodes[i];
      int taken = 0;
      for (uint32_t k = 0; k < s; k++)
        taken |= j->server_ids[k] == n->id;
      if (n->role != PANDO__V1__ROLE__SERVER || !n->alive || taken)
        continue;
      size_t load = server_load(c, n->id);
      if (load < best_load) {
        best = n;
        best_load = load;
      }
    }
    j->server_ids[s] = best->id;
  }
  pd_plan_shards(j->keys, j->nservers, j->shard_begin, j->shard_end);
  uint32_t rank = 0;
  for (size_t i = 0; i < c->nnodes && rank < j->nworkers; i++) {
    node *n = &c->nodes[i];
    if (!idle_worker(n))
      continue;
    pd_strlcpy(n->job, j->id, sizeof n->job);
    n->rank = rank;
    j->workers[rank].node_id = n->id;
    rank++;
  }
  j->message[0] = '\0';
  snprintf(j->message, sizeof j->message, "creating shards on %u servers", j->nservers);
  for (uint32_t s = 0; s < j->nservers; s++)
    send_shard_call(c, j, s, 1);
}

/* ---------------------------------------------------------------- federated rounds (rounds.c) */

static size_t live_selectors(void *user, const char **out, size_t max) {
  pd_coord *c = user;
  size_t n = 0;
  for (size_t i = 0; i < c->nnodes && n < max; i++)
    if (c->nodes[i].role == PANDO__V1__ROLE__SELECTOR && c->nodes[i].alive)
      out[n++] = c->nodes[i].address;
  return n;
}

static void rounds_finished(void *user, const char *job_id, int state, const char *message) {
  pd_coord *c = user;
  job *j = find_job(c, job_id);
  if (j)
    finish_job(c, j, (Pando__V1__JobState)state, "%s", message);
}

static void start_rounds(pd_coord *c, job *j) {
  pd_shard_range *ranges = pd_xcalloc(j->nservers, sizeof *ranges);
  for (uint32_t s = 0; s < j->nservers; s++) {
    node *n = find_node(c, j->server_ids[s]);
    ranges[s].begin = j->shard_begin[s];
    ranges[s].end = j->shard_end[s];
    pd_strlcpy(ranges[s].address, n ? n->address : "", sizeof ranges[s].address);
  }
  pd_rounds_env env = {c->loop, live_selectors, rounds_finished, c};
  j->rounds = pd_rounds_new(&env, j->id, &j->spec, j->spec_yaml, ranges, j->nservers);
  free(ranges);
  PD_INFO("job %s: RUNNING federated on %u servers, %llu keys, %d rounds of %g devices", j->id,
          j->nservers, (unsigned long long)j->keys, j->spec.training.federated.rounds,
          j->spec.training.federated.clients_per_round);
  pd_rounds_cron(j->rounds);
}

/* Once every shard exists, the workers get their assignments. */
static void maybe_run(pd_coord *c, job *j) {
  if (j->state != PANDO__V1__JOB_STATE__PENDING || !j->server_ids || j->creating > 0 ||
      j->create_failed)
    return;
  j->state = PANDO__V1__JOB_STATE__RUNNING;
  j->started = pd_now();
  j->message[0] = '\0';
  for (size_t i = 0; i < c->nnodes; i++)
    if (c->nodes[i].role == PANDO__V1__ROLE__WORKER && strcmp(c->nodes[i].job, j->id) == 0)
      c->nodes[i].generation++;
  if (federated_job(j)) {
    start_rounds(c, j);
    return;
  }
  PD_INFO("job %s: RUNNING on %u servers and %u workers, %llu keys, %u steps per epoch", j->id,
          j->nservers, j->nworkers, (unsigned long long)j->keys, j->steps_per_epoch);
}

static void describe_missing(pd_coord *c, job *j, char *out, size_t outlen) {
  size_t servers = count_nodes(c, PANDO__V1__ROLE__SERVER, 0);
  size_t workers = count_nodes(c, PANDO__V1__ROLE__WORKER, 1);
  snprintf(out, outlen,
           "waiting for %u servers and %u idle workers; %zu servers and %zu idle workers are "
           "registered",
           j->nservers, j->nworkers, servers, workers);
}

void pd_coord_cron(pd_coord *c) {
  double now = pd_now();
  for (size_t i = 0; i < c->nnodes; i++) {
    node *n = &c->nodes[i];
    if (!n->alive || now - n->last_seen < c->opt.node_timeout_sec)
      continue;
    n->alive = 0;
    PD_WARN("node %llu (%s at %s) missed heartbeats for %.1f s: marked dead",
            (unsigned long long)n->id, n->name, n->address, now - n->last_seen);
    for (size_t k = 0; k < c->njobs; k++) {
      job *j = c->jobs[k];
      if (terminal(j->state))
        continue;
      int involved = n->role == PANDO__V1__ROLE__WORKER && strcmp(n->job, j->id) == 0;
      for (uint32_t s = 0; j->server_ids && s < j->nservers; s++)
        involved |= j->server_ids[s] == n->id;
      if (involved)
        finish_job(c, j, PANDO__V1__JOB_STATE__FAILED,
                   "%s %s at %s stopped sending heartbeats (last seen %.1f s ago)",
                   n->role == PANDO__V1__ROLE__SERVER ? "server" : "worker", n->name, n->address,
                   now - n->last_seen);
    }
  }
  for (size_t k = 0; k < c->njobs; k++)
    if (c->jobs[k]->rounds && c->jobs[k]->state == PANDO__V1__JOB_STATE__RUNNING)
      pd_rounds_cron(c->jobs[k]->rounds);
  for (size_t k = 0; k < c->njobs; k++) {
    job *j = c->jobs[k];
    if (j->state != PANDO__V1__JOB_STATE__PENDING)
      continue;
    if (j->server_ids) {
      maybe_run(c, j);
      continue;
    }
    if (count_nodes(c, PANDO__V1__ROLE__SERVER, 0) >= j->nservers &&
        count_nodes(c, PANDO__V1__ROLE__WORKER, 1) >= j->nworkers) {
      start_job(c, j);
      continue;
    }
    describe_missing(c, j, j->message, sizeof j->message);
    if (now - j->submitted > j->spec.cluster.wait_timeout_sec) {
      char why[400];
      describe_missing(c, j, why, sizeof why);
      finish_job(c, j, PANDO__V1__JOB_STATE__FAILED, "cluster.wait_timeout (%g s) expired %s",
                 j->spec.cluster.wait_timeout_sec, why);
    }
  }
}

/* ---------------------------------------------------------------- status */

/* Fills `st` from `j`; pointers borrow from `j` and from `shards`/`shard_ptrs`
 * (arrays of j->nservers entries the caller provides). */
static void job_status(pd_coord *c, job *j, Pando__V1__JobStatus *st, Pando__V1__ShardMap *map,
                       Pando__V1__Shard *shards, Pando__V1__Shard **shard_ptrs,
                       Pando__V1__EpochRecord **history) {
  pando__v1__job_status__init(st);
  st->job = j->id;
  st->name = j->spec.name;
  st->state = j->state;
  st->message = j->message;
  st->epochs = (uint32_t)j->spec.training.epochs;
  st->steps_per_epoch = j->steps_per_epoch;
  st->servers = j->nservers;
  st->workers = j->nworkers;
  double end = terminal(j->state) ? j->finished : pd_now();
  st->elapsed_sec = j->started > 0 ? end - j->started : 0;
  if (j->state == PANDO__V1__JOB_STATE__RUNNING || terminal(j->state)) {
    /* the slowest worker's position; loss averaged; throughput summed */
    uint32_t epoch = UINT32_MAX;
    uint64_t step = 0;
    double loss = 0, sps = 0;
    for (uint32_t w = 0; w < j->nworkers; w++) {
      worker_progress *p = &j->workers[w];
      if (p->epoch < epoch || (p->epoch == epoch && p->step < step)) {
        epoch = p->epoch;
        step = p->step;
      }
      loss += p->loss / j->nworkers;
      sps += p->done ? 0 : p->samples_per_sec;
    }
    st->epoch = epoch == UINT32_MAX ? 0 : epoch;
    st->step = step;
    st->loss = loss;
    st->samples_per_sec = sps;
  }
  pando__v1__shard_map__init(map);
  if (j->server_ids) {
    map->version = 1;
    map->keys = j->keys;
    for (uint32_t s = 0; s < j->nservers; s++) {
      pando__v1__shard__init(&shards[s]);
      node *n = find_node(c, j->server_ids[s]);
      shards[s].begin = j->shard_begin[s];
      shards[s].end = j->shard_end[s];
      shards[s].address = n ? n->address : (char *)"";
      shard_ptrs[s] = &shards[s];
    }
    map->n_shards = j->nservers;
    map->shards = shard_ptrs;
  }
  st->shard_map = map;
  for (size_t h = 0; h < j->nhistory; h++)
    history[h] = &j->history[h];
  st->n_history = j->nhistory;
  st->history = history;
  if (j->rounds)
    pd_rounds_status(j->rounds, st);
}

/* Replies with the status of `j`. */
static void reply_status(pd_coord *c, pd_rpc_call *call, job *j) {
  Pando__V1__JobStatus st;
  Pando__V1__ShardMap map;
  Pando__V1__Shard *shards = pd_xcalloc(j->nservers + 1, sizeof *shards);
  Pando__V1__Shard **ptrs = pd_xcalloc(j->nservers + 1, sizeof *ptrs);
  Pando__V1__EpochRecord **hist = pd_xcalloc(j->nhistory + 1, sizeof *hist);
  job_status(c, j, &st, &map, shards, ptrs, hist);
  pd_rpc_call_reply_msg(call, &st.base);
  free(hist);
  free(ptrs);
  free(shards);
}

/* ---------------------------------------------------------------- handlers */

#define UNPACK(type, lower, call)                                                                  \
  ((Pando__V1__##type *)pd_rpc_call_unpack((call), &pando__v1__##lower##__descriptor))

static void handle_register(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__RegisterRequest *req = UNPACK(RegisterRequest, register_request, call);
  if (!req)
    return;
  if (req->role != PANDO__V1__ROLE__SERVER && req->role != PANDO__V1__ROLE__WORKER &&
      req->role != PANDO__V1__ROLE__SELECTOR) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "role: must be SERVER, WORKER or SELECTOR");
  } else if (req->role != PANDO__V1__ROLE__WORKER && req->address[0] == '\0') {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "address: a server or selector must give its address");
  } else {
    if (c->nnodes == c->nodes_cap) {
      c->nodes_cap = c->nodes_cap ? c->nodes_cap * 2 : 16;
      c->nodes = pd_xrealloc(c->nodes, c->nodes_cap * sizeof *c->nodes);
    }
    node *n = &c->nodes[c->nnodes++];
    memset(n, 0, sizeof *n);
    n->id = c->next_node_id++;
    n->role = req->role;
    pd_strlcpy(n->address, req->address, sizeof n->address);
    pd_strlcpy(n->name, req->name[0] ? req->name : req->address, sizeof n->name);
    n->last_seen = pd_now();
    n->alive = 1;
    PD_INFO("registered %s %s at %s as node %llu",
            n->role == PANDO__V1__ROLE__SERVER
                ? "server"
                : (n->role == PANDO__V1__ROLE__SELECTOR ? "selector" : "worker"),
            n->name, n->address,
            (unsigned long long)n->id);
    Pando__V1__RegisterResponse resp = PANDO__V1__REGISTER_RESPONSE__INIT;
    resp.node_id = n->id;
    resp.heartbeat_ms = (uint32_t)(c->opt.heartbeat_sec * 1000);
    pd_rpc_call_reply_msg(call, &resp.base);
  }
  pando__v1__register_request__free_unpacked(req, NULL);
}

static void handle_heartbeat(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__HeartbeatRequest *req = UNPACK(HeartbeatRequest, heartbeat_request, call);
  if (!req)
    return;
  node *n = find_node(c, req->node_id);
  Pando__V1__HeartbeatResponse resp = PANDO__V1__HEARTBEAT_RESPONSE__INIT;
  if (n && n->alive) {
    n->last_seen = pd_now();
    resp.known = 1;
    resp.assignment = n->generation;
  }
  pd_rpc_call_reply_msg(call, &resp.base);
  pando__v1__heartbeat_request__free_unpacked(req, NULL);
}

static void handle_assignment(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__AssignmentRequest *req = UNPACK(AssignmentRequest, assignment_request, call);
  if (!req)
    return;
  node *n = find_node(c, req->node_id);
  job *j = n && n->job[0] ? find_job(c, n->job) : NULL;
  Pando__V1__Assignment a = PANDO__V1__ASSIGNMENT__INIT;
  Pando__V1__ShardMap map = PANDO__V1__SHARD_MAP__INIT;
  Pando__V1__Shard *shards = NULL, **ptrs = NULL;
  if (!n) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "node %llu is not registered",
                     (unsigned long long)req->node_id);
    goto done;
  }
  if (j && j->state == PANDO__V1__JOB_STATE__RUNNING) {
    a.job = j->id;
    a.spec_yaml = j->spec_yaml;
    a.rank = n->rank;
    a.num_workers = j->nworkers;
    if (j->spec.data.partition == PD_PARTITION_DISJOINT_CONTIGUOUS)
      pd_partition_contiguous(j->train_rows, j->nworkers, n->rank, &a.row_begin, &a.row_end);
    else
      a.row_end = j->train_rows; /* the worker derives its rows from the spec */
    a.steps_per_epoch = j->steps_per_epoch;
    shards = pd_xcalloc(j->nservers, sizeof *shards);
    ptrs = pd_xcalloc(j->nservers, sizeof *ptrs);
    map.version = 1;
    map.keys = j->keys;
    for (uint32_t s = 0; s < j->nservers; s++) {
      pando__v1__shard__init(&shards[s]);
      node *sn = find_node(c, j->server_ids[s]);
      shards[s].begin = j->shard_begin[s];
      shards[s].end = j->shard_end[s];
      shards[s].address = sn ? sn->address : (char *)"";
      ptrs[s] = &shards[s];
    }
    map.n_shards = j->nservers;
    map.shards = ptrs;
    a.shard_map = &map;
  }
  pd_rpc_call_reply_msg(call, &a.base);
done:
  free(shards);
  free(ptrs);
  pando__v1__assignment_request__free_unpacked(req, NULL);
}

/* Job progress as Prometheus gauges, labelled by job (and by rank). */
static void export_progress(const job *j, const Pando__V1__ProgressReport *req) {
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\",rank=\"%u\"", j->id, req->rank);
  pd_metric_set(pd_metric_gauge("pando_job_epoch", "Epoch a worker is in (1-based).", labels),
                req->epoch);
  pd_metric_set(pd_metric_gauge("pando_job_step", "Steps a worker has done in its epoch.", labels),
                (double)req->step);
  pd_metric_set(pd_metric_gauge("pando_job_loss", "Mean training loss reported by a worker.",
                                labels),
                req->loss);
  pd_metric_set(pd_metric_gauge("pando_job_samples_per_second",
                                "Training throughput reported by a worker.", labels),
                req->samples_per_sec);
  if (req->has_eval) {
    snprintf(labels, sizeof labels, "job=\"%s\"", j->id);
    pd_metric_set(pd_metric_gauge("pando_job_test_accuracy",
                                  "Test accuracy after the last finished epoch.", labels),
                  req->test_accuracy);
  }
}

static void handle_progress(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__ProgressReport *req = UNPACK(ProgressReport, progress_report, call);
  if (!req)
    return;
  job *j = find_job(c, req->job);
  if (!j) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
    goto done;
  }
  if (req->rank >= j->nworkers) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "rank %u is out of range: job '%s' has %u workers",
                     req->rank, req->job, j->nworkers);
    goto done;
  }
  /* cancel: the job had ended before this report (not because of it) */
  int cancel = j->state != PANDO__V1__JOB_STATE__RUNNING && j->state != PANDO__V1__JOB_STATE__SUCCEEDED;
  if (j->state == PANDO__V1__JOB_STATE__RUNNING) {
    worker_progress *p = &j->workers[req->rank];
    node *n = find_node(c, p->node_id);
    if (n)
      n->last_seen = pd_now();
    p->epoch = req->epoch;
    p->step = req->step;
    p->loss = req->loss;
    p->samples_per_sec = req->samples_per_sec;
    export_progress(j, req);
    if (req->has_eval && (j->nhistory == 0 || j->history[j->nhistory - 1].epoch < req->epoch)) {
      j->history = pd_xrealloc(j->history, (j->nhistory + 1) * sizeof *j->history);
      Pando__V1__EpochRecord *r = &j->history[j->nhistory++];
      pando__v1__epoch_record__init(r);
      r->epoch = req->epoch;
      r->train_loss = req->loss;
      r->test_accuracy = req->test_accuracy;
      r->test_loss = req->test_loss;
      r->test_rmse = req->test_rmse;
      r->seconds = pd_now() - j->started;
      PD_INFO("job %s: epoch %u: train loss %.4f, test accuracy %.4f, test loss %.4f", j->id,
              req->epoch, req->loss, req->test_accuracy, req->test_loss);
    }
    if (req->error[0]) {
      finish_job(c, j, PANDO__V1__JOB_STATE__FAILED, "worker %u (%s): %s", req->rank,
                 n ? n->name : "?", req->error);
    } else if (req->done && !p->done) {
      p->done = 1;
      int all = 1;
      for (uint32_t w = 0; w < j->nworkers; w++)
        all &= j->workers[w].done;
      if (all)
        finish_job(c, j, PANDO__V1__JOB_STATE__SUCCEEDED, "%s", "");
    }
  }
  Pando__V1__ProgressAck ack = PANDO__V1__PROGRESS_ACK__INIT;
  ack.cancel = cancel || j->state == PANDO__V1__JOB_STATE__CANCELLED;
  pd_rpc_call_reply_msg(call, &ack.base);
done:
  pando__v1__progress_report__free_unpacked(req, NULL);
}

/* Checks what the coordinator can check of a spec beyond its syntax: the
 * training data exists and fits the model. */
static int check_data(const pd_job_spec *spec, uint64_t *rows, char *err, size_t errlen) {
  uint64_t cols = 0, test_rows = 0, test_cols = 0;
  if (spec->training.update == PD_UPDATE_FEDAVG) {
    /* the training data is the devices' own; the test set is evaluated here */
    *rows = 0;
    if (!spec->data.test.features[0])
      return 0;
    int rc = pd_dataset_peek(spec, 1, &test_rows, &test_cols, err, errlen);
    if (rc == 0 && test_cols != (uint64_t)spec->model.layers[0])
      rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.test.features: %llu values per row, but the model takes %d",
                   (unsigned long long)test_cols, spec->model.layers[0]);
    return rc;
  }
  int rc = pd_dataset_peek(spec, 0, rows, &cols, err, errlen);
  if (rc != 0)
    return rc;
  int sparse = strcmp(spec->data.format, "libsvm") == 0 || strcmp(spec->data.format, "synthetic") == 0;
  uint64_t inputs = (uint64_t)spec->model.layers[0];
  /* sparse data may not use the highest features of the model's space */
  if (sparse ? cols > inputs : cols != inputs)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "model.layers[0]: the model takes %llu inputs but the training data has %llu "
                   "%s",
                   (unsigned long long)inputs, (unsigned long long)cols,
                   sparse ? "features" : "values per row");
  if (spec->data.partition != PD_PARTITION_OVERLAP_RESHUFFLE &&
      *rows < (uint64_t)(spec->cluster.workers + spec->training.backup_workers))
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "cluster.workers: %d workers but only %llu training rows",
                   spec->cluster.workers + spec->training.backup_workers,
                   (unsigned long long)*rows);
  rc = pd_dataset_peek(spec, 1, &test_rows, &test_cols, err, errlen);
  if (rc != 0)
    return rc;
  if (test_rows > 0 && (sparse ? test_cols > inputs : test_cols != cols))
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.test.features: %llu values per row, but the model takes %llu",
                   (unsigned long long)test_cols, (unsigned long long)inputs);
  return 0;
}

static void handle_submit(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__SubmitJobRequest *req = UNPACK(SubmitJobRequest, submit_job_request, call);
  if (!req)
    return;
  pd_job_spec spec;
  char err[1024];
  uint64_t rows = 0;
  uint64_t keys = 0;
  if (pd_job_spec_parse(req->spec_yaml, strlen(req->spec_yaml), &spec, err, sizeof err) != 0 ||
      check_data(&spec, &rows, err, sizeof err) != 0 ||
      pd_model_layout(&spec.model, NULL, 0, &keys, err, sizeof err) < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
    goto done;
  }
  if (keys < (uint64_t)spec.cluster.servers) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "cluster.servers: %d servers for a model of only %llu parameters",
                     spec.cluster.servers, (unsigned long long)keys);
    goto done;
  }
  if (c->njobs == c->jobs_cap) {
    c->jobs_cap = c->jobs_cap ? c->jobs_cap * 2 : 16;
    c->jobs = pd_xrealloc(c->jobs, c->jobs_cap * sizeof *c->jobs);
  }
  job *j = pd_xcalloc(1, sizeof *j);
  snprintf(j->id, sizeof j->id, "%s-%llu", spec.name, (unsigned long long)c->next_job++);
  j->spec = spec;
  j->spec_yaml = pd_xstrdup(req->spec_yaml);
  j->state = PANDO__V1__JOB_STATE__PENDING;
  j->submitted = pd_now();
  j->keys = keys;
  j->train_rows = rows;
  j->nservers = (uint32_t)spec.cluster.servers;
  /* with backup workers, N + b workers run and each round takes N gradients */
  j->nworkers = (uint32_t)(spec.cluster.workers + spec.training.backup_workers);
  if (spec.training.update == PD_UPDATE_FEDAVG) /* devices come through the selectors */
    j->nworkers = 0;
  else
    j->steps_per_epoch = pd_plan_partition_steps(rows, j->nworkers, spec.data.partition,
                                                 pd_schedule_batch_size(&spec, 1));
  j->workers = pd_xcalloc(j->nworkers + 1, sizeof *j->workers);
  c->jobs[c->njobs++] = j;
  PD_INFO("job %s submitted: %s, %llu parameters, %llu training rows, %u servers, %u workers",
          j->id, pd_model_type_name(spec.model.type), (unsigned long long)keys,
          (unsigned long long)rows, j->nservers, j->nworkers);
  pd_coord_cron(c); /* start it at once if the nodes are there */
  reply_status(c, call, j);
done:
  pando__v1__submit_job_request__free_unpacked(req, NULL);
}

static void handle_get_job(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__JobRequest *req = UNPACK(JobRequest, job_request, call);
  if (!req)
    return;
  job *j = find_job(c, req->job);
  if (!j)
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
  else
    reply_status(c, call, j);
  pando__v1__job_request__free_unpacked(req, NULL);
}

static void handle_cancel(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__JobRequest *req = UNPACK(JobRequest, job_request, call);
  if (!req)
    return;
  job *j = find_job(c, req->job);
  if (!j) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
  } else {
    finish_job(c, j, PANDO__V1__JOB_STATE__CANCELLED, "cancelled by the user");
    reply_status(c, call, j);
  }
  pando__v1__job_request__free_unpacked(req, NULL);
}

static void handle_list(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__ListJobsRequest *req = UNPACK(ListJobsRequest, list_jobs_request, call);
  if (!req)
    return;
  size_t n = c->njobs;
  Pando__V1__ListJobsResponse resp = PANDO__V1__LIST_JOBS_RESPONSE__INIT;
  Pando__V1__JobStatus *st = pd_xcalloc(n + 1, sizeof *st);
  Pando__V1__JobStatus **stp = pd_xcalloc(n + 1, sizeof *stp);
  Pando__V1__ShardMap *maps = pd_xcalloc(n + 1, sizeof *maps);
  void **owned = pd_xcalloc(3 * n + 1, sizeof *owned);
  for (size_t i = 0; i < n; i++) {
    job *j = c->jobs[i];
    Pando__V1__Shard *shards = pd_xcalloc(j->nservers + 1, sizeof *shards);
    Pando__V1__Shard **ptrs = pd_xcalloc(j->nservers + 1, sizeof *ptrs);
    Pando__V1__EpochRecord **hist = pd_xcalloc(j->nhistory + 1, sizeof *hist);
    owned[3 * i] = shards;
    owned[3 * i + 1] = ptrs;
    owned[3 * i + 2] = hist;
    job_status(c, j, &st[i], &maps[i], shards, ptrs, hist);
    stp[i] = &st[i];
  }
  resp.n_jobs = n;
  resp.jobs = stp;
  pd_rpc_call_reply_msg(call, &resp.base);
  for (size_t i = 0; i < 3 * n; i++)
    free(owned[i]);
  free(owned);
  free(maps);
  free(stp);
  free(st);
  pando__v1__list_jobs_request__free_unpacked(req, NULL);
}

static void handle_cluster(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__ClusterRequest *req = UNPACK(ClusterRequest, cluster_request, call);
  if (!req)
    return;
  size_t n = c->nnodes;
  Pando__V1__NodeStatus *ns = pd_xcalloc(n + 1, sizeof *ns);
  Pando__V1__NodeStatus **nsp = pd_xcalloc(n + 1, sizeof *nsp);
  double now = pd_now();
  for (size_t i = 0; i < n; i++) {
    node *nd = &c->nodes[i];
    pando__v1__node_status__init(&ns[i]);
    ns[i].node_id = nd->id;
    ns[i].role = nd->role;
    ns[i].address = nd->address;
    ns[i].name = nd->name;
    ns[i].alive = nd->alive;
    ns[i].last_seen_sec = now - nd->last_seen;
    ns[i].job = nd->job;
    nsp[i] = &ns[i];
  }
  Pando__V1__ClusterResponse resp = PANDO__V1__CLUSTER_RESPONSE__INIT;
  resp.n_nodes = n;
  resp.nodes = nsp;
  pd_rpc_call_reply_msg(call, &resp.base);
  free(nsp);
  free(ns);
  pando__v1__cluster_request__free_unpacked(req, NULL);
}

static void handle_report_device(pd_rpc_call *call, void *ctx) {
  pd_coord *c = ctx;
  Pando__V1__DeviceReport *req = UNPACK(DeviceReport, device_report, call);
  if (!req)
    return;
  job *j = find_job(c, req->job);
  char err[512];
  Pando__V1__DeviceReportAck ack = PANDO__V1__DEVICE_REPORT_ACK__INIT;
  if (!j) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
  } else if (!j->rounds) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "job '%s' is not running federated rounds",
                     req->job);
  } else if (pd_rounds_report(j->rounds, req, &ack, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s", err);
  } else {
    pd_rpc_call_reply_msg(call, &ack.base);
  }
  pando__v1__device_report__free_unpacked(req, NULL);
}

void pd_coord_register(pd_coord *c, pd_rpc_server *srv) {
  static const struct {
    const char *path;
    pd_rpc_handler handler;
  } methods[] = {
      {"/pando.v1.Coordinator/RegisterNode", handle_register},
      {"/pando.v1.Coordinator/Heartbeat", handle_heartbeat},
      {"/pando.v1.Coordinator/GetAssignment", handle_assignment},
      {"/pando.v1.Coordinator/ReportProgress", handle_progress},
      {"/pando.v1.Coordinator/SubmitJob", handle_submit},
      {"/pando.v1.Coordinator/GetJob", handle_get_job},
      {"/pando.v1.Coordinator/ListJobs", handle_list},
      {"/pando.v1.Coordinator/CancelJob", handle_cancel},
      {"/pando.v1.Coordinator/Cluster", handle_cluster},
      {"/pando.v1.Coordinator/ReportDevice", handle_report_device},
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(methods); i++)
    pd_rpc_server_add_method(srv, methods[i].path, methods[i].handler, c);
  pd_rpc_health_register(srv, health_services);
}
