/* The Coordinator service's RPC handlers: decode and check requests, hand
 * them to the node registry (registry.c) and the jobs' state machine
 * (jobs.c), and build the answers; see coordinator.h. Everything runs on the
 * daemon's one event loop, except the check of a submitted job's data files,
 * which runs on a thread of its own (a slow or hostile file must not stall
 * heartbeats); cron collects its result and answers the SubmitJob. */
#include "coordinator.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "fanout.h"
#include "jobs.h"
#include "pando.pb-c.h"
#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/pipeline.h"
#include "pando/plan.h"
#include "pando/security.h"
#include "pando/spec.h"
#include "pando/util.h"
#include "probe.h"
#include "registry.h"
#include "rounds.h"
#include "store.h"

/* A SubmitJob whose data files are being checked by check_thread(). The
 * thread owns nothing but `rc`, `rows`, `err` and `done`; the loop reads
 * them once `done` is set. */
typedef struct submit_check {
  pd_rpc_call *call; /* parked; NULL once the client went away */
  pd_job_spec spec;
  char *spec_yaml; /* owned */
  pthread_t thread;
  atomic_int done; /* set by the thread when rc, rows and err are final */
  int rc;
  uint64_t rows;
  char err[1024];
  struct submit_check *next;
} submit_check;

struct pd_coord {
  pd_loop *loop;
  pd_coord_options opt;
  pd_registry *reg;
  pd_fanout *fanout;
  pd_probes *probes; /* health probes of nodes whose name a newcomer takes */
  pd_jobs *jobs;
  pd_store *store;      /* data_dir's state; NULL: in memory */
  double dashboard_at;  /* when the dashboard's snapshot was last published */
  submit_check *checks; /* submissions whose data is being checked */
  int nchecks;
  /* /metrics: pando_nodes{role,state} and pando_nodes_dead_total{role}, by
   * role (server, worker, selector) */
  pd_metric *nodes_alive[3], *nodes_dead[3], *nodes_died[3];
};

static const char *const node_roles[3] = {"server", "worker", "selector"};

/* Index of `role` in node_roles, or -1. */
static int role_index(Pando__V1__Role role) {
  switch (role) {
  case PANDO__V1__ROLE__ROLE_SERVER:
    return 0;
  case PANDO__V1__ROLE__ROLE_WORKER:
    return 1;
  case PANDO__V1__ROLE__ROLE_SELECTOR:
    return 2;
  default:
    return -1;
  }
}

/* Registers the node series, every one at 0 (an alert on the increase of
 * pando_nodes_dead_total then sees the first death too). */
static void open_node_metrics(pd_coord *c) {
  static const char help[] =
      "Registered nodes, alive or dead (missed heartbeats, not forgotten yet).";
  char labels[64];
  for (int i = 0; i < 3; i++) {
    snprintf(labels, sizeof labels, "role=\"%s\",state=\"alive\"", node_roles[i]);
    c->nodes_alive[i] = pd_metric_gauge("pando_nodes", help, labels);
    snprintf(labels, sizeof labels, "role=\"%s\",state=\"dead\"", node_roles[i]);
    c->nodes_dead[i] = pd_metric_gauge("pando_nodes", help, labels);
    snprintf(labels, sizeof labels, "role=\"%s\"", node_roles[i]);
    c->nodes_died[i] = pd_metric_counter("pando_nodes_dead_total",
                                         "Nodes declared dead for missing heartbeats.", labels);
  }
}

/* Brings pando_nodes up to date with the registry. */
static void export_node_metrics(pd_coord *c) {
  double alive[3] = {0, 0, 0}, dead[3] = {0, 0, 0};
  for (size_t i = 0; i < pd_registry_count(c->reg); i++) {
    const pd_node *n = pd_registry_at(c->reg, i);
    int r = role_index(n->role);
    if (r < 0)
      continue;
    if (n->alive)
      alive[r]++;
    else
      dead[r]++;
  }
  for (int r = 0; r < 3; r++) {
    pd_metric_set(c->nodes_alive[r], alive[r]);
    pd_metric_set(c->nodes_dead[r], dead[r]);
  }
}

static const char *const health_services[] = {"pando.v1.Coordinator", NULL};

/* ---------------------------------------------------------------- federated rounds (rounds.c) */

static size_t live_selectors(void *user, const char **out, size_t max) {
  pd_coord *c = user;
  size_t n = 0;
  for (size_t i = 0; i < pd_registry_count(c->reg) && n < max; i++) {
    pd_node *node = pd_registry_at(c->reg, i);
    if (node->role == PANDO__V1__ROLE__ROLE_SELECTOR && node->alive)
      out[n++] = node->address;
  }
  return n;
}

static void rounds_finished(void *user, const char *id, int state, const char *message) {
  pd_coord *c = user;
  pd_job *j = pd_jobs_find(c->jobs, id);
  if (j)
    pd_jobs_finish(c->jobs, j, pd_now(), (Pando__V1__JobState)state, "%s", message);
}

static void rounds_changed(void *user, const char *id) {
  pd_coord *c = user;
  pd_job *j = pd_jobs_find(c->jobs, id);
  if (!j || !j->rounds)
    return;
  const Pando__V1__RoundRecord *records;
  size_t n = pd_rounds_history(j->rounds, &records);
  pd_jobs_round_history(c->jobs, j, records, n);
}

/* Starts the rounds of RUNNING federated job `j`: at round 1, or after a
 * roll back (j->attempt > 0) from round j->start_clock + 1, the rounds that
 * the checkpoint restored holds (pd_rounds_resume). */
static void rounds_start(void *ctx, pd_job *j) {
  pd_coord *c = ctx;
  pd_shard_range *ranges = pd_xcalloc(j->nservers, sizeof *ranges);
  for (uint32_t s = 0; s < j->nservers; s++) {
    pd_node *n = pd_registry_find(c->reg, j->server_ids[s]);
    ranges[s].begin = j->shard_begin[s];
    ranges[s].end = j->shard_end[s];
    pd_strlcpy(ranges[s].address, n ? n->address : "", sizeof ranges[s].address);
  }
  if (!j->rounds) {
    pd_rounds_env env = {c->loop, live_selectors, rounds_finished, rounds_changed, c};
    j->rounds = pd_rounds_new(&env, j->id, &j->spec, j->spec_yaml, ranges, j->nservers);
    pd_rounds_set_job_token(j->rounds, j->job_token);
    if (j->attempt > 0) /* a restarted coordinator: the stored history */
      pd_rounds_set_history(j->rounds, j->round_history, j->nround_history);
  }
  if (j->attempt > 0)
    pd_rounds_resume(j->rounds, ranges, j->nservers, (uint32_t)j->start_clock, j->attempt);
  free(ranges);
  PD_INFO("job %s: RUNNING federated on %u servers, %llu keys, %d rounds of %g devices%s", j->id,
          j->nservers, (unsigned long long)j->keys, j->spec.training.federated.rounds,
          j->spec.training.federated.clients_per_round,
          j->attempt > 0 ? ", after a roll back" : "");
}

static void rounds_stop(void *ctx, pd_job *j) {
  (void)ctx;
  pd_rounds_stop(j->rounds);
}

static int rounds_forget(void *ctx, pd_job *j) {
  (void)ctx;
  if (pd_rounds_busy(j->rounds))
    return -1;
  pd_rounds_free(j->rounds);
  j->rounds = NULL;
  return 0;
}

pd_coord *pd_coord_new(pd_loop *loop, const pd_coord_options *options, char *err, size_t errlen) {
  pd_coord *c = pd_xcalloc(1, sizeof *c);
  c->loop = loop;
  c->opt = *options;
  c->reg = pd_registry_new();
  c->fanout = pd_fanout_new(loop);
  c->probes = pd_probes_new(loop, c->reg);
  pd_jobs_fanout ops = pd_fanout_ops(c->fanout);
  c->jobs = pd_jobs_new(c->reg, &ops);
  pd_fanout_attach(c->fanout, c->jobs);
  pd_jobs_federated fed = {rounds_start, rounds_stop, rounds_forget, c};
  pd_jobs_set_retention(c->jobs, options->keep_models, options->keep_jobs);
  if (options->dashboard)
    pd_dashboard_publish_page();
  pd_jobs_set_federated(c->jobs, &fed);
  open_node_metrics(c);
  if (options->data_dir && options->data_dir[0]) {
    uint64_t next_node = 1;
    if (pd_store_open(options->data_dir, &c->store, err, errlen) != 0 ||
        pd_store_counter(c->store, PD_STORE_NEXT_NODE, &next_node) != 0 ||
        pd_jobs_reload(c->jobs, c->store, pd_now(), err, errlen) != 0) {
      if (c->store && !err[0])
        snprintf(err, errlen, "cannot read the coordinator's state (see the log)");
      pd_coord_free(c);
      return NULL;
    }
    pd_registry_set_next_id(c->reg, next_node);
    PD_INFO("state in %s/coordinator.db: %zu jobs, next node id %llu", options->data_dir,
            pd_jobs_count(c->jobs), (unsigned long long)next_node);
  }
  return c;
}

static void check_free(submit_check *chk) {
  free(chk->spec_yaml);
  free(chk);
}

void pd_coord_free(pd_coord *c) {
  if (!c)
    return;
  while (c->checks) { /* their calls are gone with the server */
    submit_check *chk = c->checks;
    c->checks = chk->next;
    pthread_join(chk->thread, NULL);
    check_free(chk);
  }
  for (size_t i = 0; i < pd_jobs_count(c->jobs); i++) { /* their calls end first */
    pd_job *j = pd_jobs_at(c->jobs, i);
    pd_rounds_free(j->rounds);
    j->rounds = NULL;
  }
  pd_fanout_free(c->fanout); /* its last results still reach the jobs */
  pd_probes_free(c->probes);
  pd_jobs_free(c->jobs);
  pd_store_close(c->store);
  pd_registry_free(c->reg);
  free(c);
}

static pd_job *submit_checked(pd_coord *c, submit_check *chk);
static void reply_status(pd_coord *c, pd_rpc_call *call, pd_job *j);
static void reply_status_token(pd_coord *c, pd_rpc_call *call, pd_job *j, int with_token);

void pd_coord_cron(pd_coord *c) {
  /* Submissions whose data check finished: queue their jobs now, answer
   * after the rest of cron (which may already start them). */
  submit_check *finished = NULL;
  for (submit_check **at = &c->checks; *at;) {
    submit_check *chk = *at;
    if (!atomic_load(&chk->done)) {
      at = &chk->next;
      continue;
    }
    *at = chk->next;
    c->nchecks--;
    pthread_join(chk->thread, NULL);
    chk->next = finished;
    finished = chk;
  }
  pd_job **started = NULL;
  size_t nfinished = 0;
  for (submit_check *chk = finished; chk; chk = chk->next)
    nfinished++;
  if (nfinished)
    started = pd_xcalloc(nfinished, sizeof *started);
  size_t k = 0;
  for (submit_check *chk = finished; chk; chk = chk->next)
    started[k++] = submit_checked(c, chk);
  double now = pd_now();
  pd_node *n;
  pd_probes_reap(c->probes);
  while ((n = pd_registry_next_dead(c->reg, now, c->opt.node_timeout_sec))) {
    PD_WARN("node %llu (%s at %s) %s for %.1f s: marked dead", (unsigned long long)n->id, n->name,
            n->address,
            n->unreachable ? "was replaced by a node of its name, and not heard from"
                           : "missed heartbeats",
            now - n->last_seen);
    int r = role_index(n->role);
    if (r >= 0)
      pd_metric_add(c->nodes_died[r], 1);
    pd_jobs_node_dead(c->jobs, n, now);
  }
  pd_registry_forget(c->reg, now, PD_COORD_FORGET_AFTER * c->opt.node_timeout_sec);
  export_node_metrics(c);
  pd_jobs_cron(c->jobs, now);
  for (size_t i = 0; i < pd_jobs_count(c->jobs); i++) {
    pd_job *j = pd_jobs_at(c->jobs, i);
    if (j->rounds && j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING)
      pd_rounds_cron(j->rounds);
  }
  k = 0;
  while (finished) {
    submit_check *chk = finished;
    finished = chk->next;
    pd_job *j = started[k++];
    if (j && chk->call)
      reply_status_token(c, chk->call, j, 1); /* the submitter learns the job's token */
    check_free(chk);
  }
  free(started);
  if (c->opt.dashboard && now - c->dashboard_at >= 0.5) {
    c->dashboard_at = now;
    pd_dashboard_publish_state(c->jobs, c->reg, now);
  }
}

/* ---------------------------------------------------------------- status */

/* Fills `map` with the servers of `j` once it has them; pointers borrow from
 * `j`, the registry and `shards`/`shard_ptrs` (j->nservers entries each). */
static void fill_map(pd_coord *c, const pd_job *j, Pando__V1__ShardMap *map,
                     Pando__V1__Shard *shards, Pando__V1__Shard **shard_ptrs, int placement);
static void shard_map(pd_coord *c, const pd_job *j, Pando__V1__ShardMap *map,
                      Pando__V1__Shard *shards, Pando__V1__Shard **shard_ptrs) {
  fill_map(c, j, map, shards, shard_ptrs, 0);
}

/* The server named `name` for JobStatus.placement: the live one of that
 * name (a restarted server has its data_dir), else `n` (its last address),
 * else NULL. */
static const pd_node *placement_server(pd_coord *c, const pd_node *n, const char *name) {
  if (n && n->alive)
    return n;
  for (size_t i = 0; i < pd_registry_count(c->reg); i++) {
    const pd_node *m = pd_registry_at(c->reg, i);
    if (m->role == PANDO__V1__ROLE__ROLE_SERVER && m->alive && strcmp(m->name, name) == 0)
      return m;
  }
  return n;
}

/* shard_map, or with `placement` JobStatus.placement: also after the model
 * was dropped, each server named by placement_server. */
static void fill_map(pd_coord *c, const pd_job *j, Pando__V1__ShardMap *map,
                     Pando__V1__Shard *shards, Pando__V1__Shard **shard_ptrs, int placement) {
  pando__v1__shard_map__init(map);
  if (!j->server_ids || (j->model_dropped && !placement))
    return;
  map->version = 1;
  map->keys = j->keys;
  for (uint32_t s = 0; s < j->nservers; s++) {
    pando__v1__shard__init(&shards[s]);
    const pd_node *n = pd_registry_find(c->reg, j->server_ids[s]);
    if (placement)
      n = placement_server(c, n, j->server_names[s]);
    shards[s].begin = j->shard_begin[s];
    shards[s].end = j->shard_end[s];
    shards[s].address = n ? (char *)n->address : (char *)"";
    shard_ptrs[s] = &shards[s];
  }
  map->n_shards = j->nservers;
  map->shards = shard_ptrs;
}

/* Fills `st` from `j`; pointers borrow from `j` and from `shards`/`shard_ptrs`
 * (arrays of j->nservers entries the caller provides). */
static void job_status(pd_coord *c, pd_job *j, Pando__V1__JobStatus *st, Pando__V1__ShardMap *map,
                       Pando__V1__Shard *shards, Pando__V1__Shard **shard_ptrs,
                       Pando__V1__EpochRecord **history) {
  pando__v1__job_status__init(st);
  st->job = j->id;
  st->name = j->spec.name;
  st->spec_yaml = j->spec_yaml;
  st->state = j->state;
  st->message = j->message;
  st->epochs = (uint32_t)j->spec.training.epochs;
  st->steps_per_epoch = j->steps_per_epoch;
  st->servers = j->nservers;
  st->workers = j->nworkers;
  double end = pd_job_state_final(j->state) ? j->finished : pd_now();
  st->elapsed_sec = j->started > 0 ? end - j->started : 0;
  if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING ||
      j->state == PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING || pd_job_state_final(j->state)) {
    /* the slowest worker's position; loss averaged; throughput summed */
    uint32_t epoch = UINT32_MAX;
    uint64_t step = 0;
    double loss = 0, sps = 0;
    for (uint32_t w = 0; w < j->nworkers; w++) {
      pd_job_worker *p = &j->workers[w];
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
  shard_map(c, j, map, shards, shard_ptrs);
  st->shard_map = map;
  for (size_t h = 0; h < j->nhistory; h++)
    history[h] = &j->history[h];
  st->n_history = j->nhistory;
  st->history = history;
  if (j->rounds)
    pd_rounds_status(j->rounds, st);
}

/* Replies with the status of `j`. */
/* Answers the call with the job's status; with `with_token` (SubmitJob
 * only) the job's token too. */
static void reply_status_token(pd_coord *c, pd_rpc_call *call, pd_job *j, int with_token) {
  Pando__V1__JobStatus st;
  Pando__V1__ShardMap map;
  Pando__V1__Shard *shards = pd_xcalloc(j->nservers + 1, sizeof *shards);
  Pando__V1__Shard **ptrs = pd_xcalloc(j->nservers + 1, sizeof *ptrs);
  Pando__V1__EpochRecord **hist = pd_xcalloc(j->nhistory + 1, sizeof *hist);
  job_status(c, j, &st, &map, shards, ptrs, hist);
  if (with_token)
    st.job_token = j->job_token;
  Pando__V1__ShardMap placement;
  Pando__V1__Shard *placed = pd_xcalloc(j->nservers + 1, sizeof *placed);
  Pando__V1__Shard **placed_ptrs = pd_xcalloc(j->nservers + 1, sizeof *placed_ptrs);
  fill_map(c, j, &placement, placed, placed_ptrs, 1);
  st.placement = &placement;
  /* the workers' phase counters (pandoctl stats): GetJob's answer only */
  Pando__V1__WorkerPhases *wp = pd_xcalloc(j->nworkers + 1, sizeof *wp);
  Pando__V1__WorkerPhases **wpp = pd_xcalloc(j->nworkers + 1, sizeof *wpp);
  Pando__V1__PhaseStat **phase_ptrs =
      pd_xcalloc((size_t)j->nworkers * PD_JOB_PHASES_MAX + 1, sizeof *phase_ptrs);
  for (uint32_t w = 0; j->workers && w < j->nworkers; w++) {
    pd_job_worker *p = &j->workers[w];
    if (p->nphases == 0)
      continue;
    Pando__V1__WorkerPhases *one = &wp[st.n_worker_phases];
    pando__v1__worker_phases__init(one);
    one->rank = w;
    one->wall_ns = p->wall_ns;
    one->epoch = p->epoch;
    one->step = p->step;
    one->phases = &phase_ptrs[(size_t)w * PD_JOB_PHASES_MAX];
    for (size_t i = 0; i < p->nphases; i++)
      one->phases[i] = &p->phases[i];
    one->n_phases = p->nphases;
    wpp[st.n_worker_phases++] = one;
  }
  st.worker_phases = wpp;
  pd_rpc_call_reply_msg(call, &st.base);
  free(phase_ptrs);
  free(wpp);
  free(wp);
  free(hist);
  free(placed_ptrs);
  free(placed);
  free(ptrs);
  free(shards);
}

static void reply_status(pd_coord *c, pd_rpc_call *call, pd_job *j) {
  reply_status_token(c, call, j, 0);
}

/* The job `id`, or NULL after failing the call: UNAUTHENTICATED when it
 * carries neither the cluster token nor the job's token (whether the job
 * exists is then not told), else NOT_FOUND. */
static pd_job *authorized_job(pd_coord *c, pd_rpc_call *call, const char *id) {
  pd_job *j = pd_jobs_find(c->jobs, id);
  if (!pd_rpc_call_authorize_job(call, id, j ? j->job_token : NULL))
    return NULL;
  if (!j)
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", id);
  return j;
}

/* ---------------------------------------------------------------- handlers */

/* The registered node `id` whose secret is `secret`, or NULL after failing
 * the call UNAUTHENTICATED, with the same message whether the id exists or
 * not. */
static pd_node *authorized_node(pd_coord *c, pd_rpc_call *call, uint64_t id, const char *secret) {
  pd_node *n = pd_registry_find(c->reg, id);
  if (n && pd_security_secret_is(secret, n->secret))
    return n;
  pd_rpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED,
                   "node_id and node_secret do not match a registered node (register again)");
  return NULL;
}

/* The certificate role (pando/security.h) of a node that registers as `role`. */
static const char *cert_role(int role) {
  switch (role) {
  case PANDO__V1__ROLE__ROLE_SERVER:
    return PD_ROLE_PS;
  case PANDO__V1__ROLE__ROLE_SELECTOR:
    return PD_ROLE_SELECTOR;
  default:
    return PD_ROLE_WORKER;
  }
}

/* A node registers from `address` under the name of alive node `old` (a
 * restarted process, most likely): from the same address, `old` is gone if
 * it missed REPLACED_HEARTBEATS heartbeats (the newcomer holds its port);
 * from another, if its health service does not answer (probe.h). Then the
 * next cron declares `old` dead and the newcomer's next try registers. */
#define REPLACED_HEARTBEATS 3
static void replaced(pd_coord *c, const pd_node *old, const char *address) {
  if (strcmp(old->address, address) != 0)
    pd_probes_check(c->probes, old);
  else if (pd_now() - old->last_seen >= REPLACED_HEARTBEATS * c->opt.heartbeat_sec)
    pd_registry_unreachable(c->reg, old->id);
}

static void handle_register(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__RegisterRequest *req = (const Pando__V1__RegisterRequest *)msg;
  if (req->role != PANDO__V1__ROLE__ROLE_SERVER && req->role != PANDO__V1__ROLE__ROLE_WORKER &&
      req->role != PANDO__V1__ROLE__ROLE_SELECTOR) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "role: must be SERVER, WORKER or SELECTOR");
  } else if (req->role != PANDO__V1__ROLE__ROLE_WORKER && req->address[0] == '\0') {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "address: a server or selector must give its address");
  } else if (pd_security_client_auth() &&
             strcmp(pd_rpc_call_peer_role(call), cert_role(req->role)) != 0) {
    /* under mTLS a node is what its certificate says */
    pd_rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                     "role: registering as %s needs a certificate of role %s; the client "
                     "certificate names role '%s'",
                     pd_rpc_enum_name(&pando__v1__role__descriptor, req->role),
                     cert_role(req->role), pd_rpc_call_peer_role(call));
  } else {
    pd_node *n = NULL;
    char err[256], secret[sizeof n->secret];
    if (pd_security_new_token(secret, sizeof secret) != 0) {
      pd_rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot draw a random node secret");
      return;
    }
    int rc =
        pd_registry_add(c->reg, req->role, req->address, req->name, pd_now(), &n, err, sizeof err);
    if (rc == 0)
      pd_strlcpy(n->secret, secret, sizeof n->secret);
    memset(secret, 0, sizeof secret);
    if (rc != 0) {
      if (rc == -PD_EDUP)
        replaced(c, n, req->address);
      pd_rpc_call_fail(call,
                       rc == -PD_EDUP ? GRPC_STATUS_ALREADY_EXISTS : GRPC_STATUS_RESOURCE_EXHAUSTED,
                       "%s", err);
      return;
    }
    /* the id counter is durable before the id is answered: never reissued */
    if (c->store)
      pd_store_set_counter(c->store, PD_STORE_NEXT_NODE, pd_registry_next_id(c->reg));
    pd_strlcpy(n->math, req->math, sizeof n->math);
    n->memory_bytes = req->role == PANDO__V1__ROLE__ROLE_SERVER ? req->memory_bytes : 0;
    PD_INFO("registered %s %s at %s as node %llu",
            n->role == PANDO__V1__ROLE__ROLE_SERVER
                ? "server"
                : (n->role == PANDO__V1__ROLE__ROLE_SELECTOR ? "selector" : "worker"),
            n->name, n->address, (unsigned long long)n->id);
    Pando__V1__RegisterResponse resp = PANDO__V1__REGISTER_RESPONSE__INIT;
    resp.node_id = n->id;
    resp.heartbeat_ms = (uint32_t)(c->opt.heartbeat_sec * 1000);
    resp.node_secret = n->secret;
    pd_rpc_call_reply_msg(call, &resp.base);
  }
}

static void handle_heartbeat(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__HeartbeatRequest *req = (const Pando__V1__HeartbeatRequest *)msg;
  if (!authorized_node(c, call, req->node_id, req->node_secret))
    return;
  pd_node *n = pd_registry_heard(c->reg, req->node_id, pd_now());
  Pando__V1__HeartbeatResponse resp = PANDO__V1__HEARTBEAT_RESPONSE__INIT;
  if (n) {
    resp.known = 1;
    resp.assignment = n->generation;
  }
  pd_rpc_call_reply_msg(call, &resp.base);
}

/* The Peer address of place `rank` of `j` ("" when no alive node holds it). */
static const char *place_address(pd_coord *c, const pd_job *j, uint32_t rank) {
  const pd_node *n = pd_registry_find(c->reg, j->workers[rank].node_id);
  return n && n->alive ? n->address : "";
}

/* A pipeline place's stage (README "Pipelines"): place `rank` is stage
 * rank % S of replica rank / S; its layers are the plan's (pd_pipeline_split,
 * balanced by estimated FLOPs), its neighbours the places rank -/+ 1. */
static void assign_stage(pd_coord *c, const pd_job *j, uint32_t rank, Pando__V1__Assignment *a) {
  uint32_t S = pd_job_stages(j);
  int bounds[PD_MAX_LAYERS + 1];
  char err[256];
  pd_param_info info[PD_MODEL_MAX_TENSORS];
  PD_ASSERT(pd_pipeline_split(&j->spec.model, (int)S, bounds, err, sizeof err) == 0);
  PD_ASSERT(pd_model_layout(&j->spec.model, info, PD_MODEL_MAX_TENSORS, NULL, err, sizeof err) >=
            2 * bounds[S]);
  a->stages = S;
  a->stage = rank % S;
  a->replica = rank / S;
  a->num_replicas = pd_job_replicas(j);
  a->stage_layer_begin = (uint32_t)bounds[a->stage];
  a->stage_layer_end = (uint32_t)bounds[a->stage + 1];
  a->stage_key_begin = info[2 * bounds[a->stage]].offset;
  const pd_param_info *last_bias = &info[2 * bounds[a->stage + 1] - 1];
  a->stage_key_end = last_bias->offset + last_bias->size;
  a->peer_prev = (char *)(a->stage > 0 ? place_address(c, j, rank - 1) : "");
  a->peer_next = (char *)(a->stage + 1 < S ? place_address(c, j, rank + 1) : "");
}

static void handle_assignment(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__AssignmentRequest *req = (const Pando__V1__AssignmentRequest *)msg;
  pd_node *n = authorized_node(c, call, req->node_id, req->node_secret);
  if (!n)
    return;
  pd_job *j = n->job[0] ? pd_jobs_find(c->jobs, n->job) : NULL;
  Pando__V1__Assignment a = PANDO__V1__ASSIGNMENT__INIT;
  Pando__V1__ShardMap map = PANDO__V1__SHARD_MAP__INIT;
  Pando__V1__Shard *shards = NULL, **ptrs = NULL;
  if (j && j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING) {
    a.job = j->id;
    a.spec_yaml = j->spec_yaml;
    a.rank = n->rank;
    a.num_workers = j->nworkers;
    uint32_t replica = n->rank / pd_job_stages(j);
    if (pd_job_stages(j) > 1)
      assign_stage(c, j, n->rank, &a);
    if (j->spec.data.partition == PD_PARTITION_DISJOINT_CONTIGUOUS)
      pd_partition_contiguous(j->train_rows, pd_job_replicas(j), replica, &a.row_begin, &a.row_end);
    else
      a.row_end = j->train_rows; /* the worker derives its rows from the spec */
    a.steps_per_epoch = j->steps_per_epoch;
    a.attempt = j->attempt;
    a.start_clock = j->start_clock;
    a.job_token = j->job_token; /* for its Pulls and Pushes on the job's servers */
    shards = pd_xcalloc(j->nservers, sizeof *shards);
    ptrs = pd_xcalloc(j->nservers, sizeof *ptrs);
    shard_map(c, j, &map, shards, ptrs);
    a.shard_map = &map;
  }
  pd_rpc_call_reply_msg(call, &a.base);
  free(shards);
  free(ptrs);
}

static void handle_progress(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__ProgressReport *req = (const Pando__V1__ProgressReport *)msg;
  pd_node *n = authorized_node(c, call, req->node_id, req->node_secret);
  if (!n)
    return;
  pd_job *j = pd_jobs_find(c->jobs, req->job);
  if (!j) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
    return;
  }
  if (req->rank >= j->nworkers) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "rank %u is out of range: job '%s' has %u workers", req->rank, req->job,
                     j->nworkers);
    return;
  }
  /* only the worker of that rank speaks for it; another node (or this one,
   * once its rank went to another) is told to stop and changes nothing */
  int cancel = !j->workers || j->workers[req->rank].node_id != n->id
                   ? 1
                   : pd_jobs_progress(c->jobs, j, req, pd_now());
  Pando__V1__ProgressAck ack = PANDO__V1__PROGRESS_ACK__INIT;
  ack.cancel = cancel;
  pd_rpc_call_reply_msg(call, &ack.base);
}

/* Checks what the coordinator can check of a spec beyond its syntax: the
 * training data exists and fits the model, and so does model.init's file. */
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
  int sparse =
      strcmp(spec->data.format, "libsvm") == 0 || strcmp(spec->data.format, "synthetic") == 0;
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
    return pd_errf(
        err, errlen, -PD_EINVAL_SPEC, "cluster.workers: %d workers but only %llu training rows",
        spec->cluster.workers + spec->training.backup_workers, (unsigned long long)*rows);
  rc = pd_dataset_peek(spec, 1, &test_rows, &test_cols, err, errlen);
  if (rc != 0)
    return rc;
  if (test_rows > 0 && (sparse ? test_cols > inputs : test_cols != cols))
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.test.features: %llu values per row, but the model takes %llu",
                   (unsigned long long)test_cols, (unsigned long long)inputs);
  if (spec->model.init[0]) /* the file's tensors fit the model (no data read) */
    return pd_model_init_range(&spec->model, 0, 0, NULL, err, errlen);
  return 0;
}

/* Checks a submission's data files, off the event loop. */
static void *check_thread(void *arg) {
  submit_check *chk = arg;
  chk->rc = check_data(&chk->spec, &chk->rows, chk->err, sizeof chk->err);
  atomic_store(&chk->done, 1);
  return NULL;
}

/* The client of a SubmitJob went away while its data was being checked. */
static void submit_cancelled(pd_rpc_call *call) {
  submit_check *chk = *pd_rpc_call_user(call);
  chk->call = NULL;
}

/* The rest of a SubmitJob once its data was checked: fails the call, or
 * queues the job and returns it (the caller replies with its status). A
 * submission whose client went away is dropped. */
static pd_job *submit_checked(pd_coord *c, submit_check *chk) {
  pd_rpc_call *call = chk->call;
  char err[1024];
  uint64_t keys = 0;
  if (!call) {
    PD_INFO("job submission dropped: its client went away while its data was checked");
    return NULL;
  }
  if (chk->rc != 0 || pd_model_layout(&chk->spec.model, NULL, 0, &keys, err, sizeof err) < 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", chk->rc != 0 ? chk->err : err);
    return NULL;
  }
  if (keys < (uint64_t)chk->spec.cluster.servers) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "cluster.servers: %d servers for a model of only %llu parameters",
                     chk->spec.cluster.servers, (unsigned long long)keys);
    return NULL;
  }
  if (pd_jobs_admit(c->jobs, &chk->spec, keys, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", err);
    return NULL;
  }
  char job_token[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1] = "";
  if (pd_security_has_token() && pd_security_new_token(job_token, sizeof job_token) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot draw a random job token");
    return NULL;
  }
  pd_job *j = pd_jobs_submit(c->jobs, &chk->spec, chk->spec_yaml, keys, chk->rows, pd_now());
  pd_strlcpy(j->job_token, job_token, sizeof j->job_token);
  memset(job_token, 0, sizeof job_token);
  pd_jobs_changed(c->jobs, j);
  PD_INFO("job %s submitted: %s, %llu parameters, %llu training rows, %u servers, %u workers",
          j->id, pd_model_type_name(chk->spec.model.type), (unsigned long long)keys,
          (unsigned long long)chk->rows, j->nservers, j->nworkers);
  return j;
}

static void handle_submit(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__SubmitJobRequest *req = (const Pando__V1__SubmitJobRequest *)msg;
  char err[1024];
  submit_check *chk = pd_xcalloc(1, sizeof *chk);
  if (pd_job_spec_parse(req->spec_yaml, strlen(req->spec_yaml), &chk->spec, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
    free(chk);
    return;
  }
  if (c->nchecks >= PD_COORD_MAX_CHECKS) {
    pd_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "the data of %d submitted jobs is being checked already; submit again later",
                     c->nchecks);
    free(chk);
    return;
  }
  chk->call = call;
  chk->spec_yaml = pd_xstrdup(req->spec_yaml);
  atomic_init(&chk->done, 0);
  int rc = pthread_create(&chk->thread, NULL, check_thread, chk);
  if (rc != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "cannot check the job's data now: %s",
                     strerror(rc));
    check_free(chk);
    return;
  }
  /* parked until cron sees the check done */
  *pd_rpc_call_user(call) = chk;
  pd_rpc_call_on_cancel(call, submit_cancelled);
  chk->next = c->checks;
  c->checks = chk;
  c->nchecks++;
}

static void handle_get_job(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__JobRequest *req = (const Pando__V1__JobRequest *)msg;
  pd_job *j = authorized_job(c, call, req->job);
  if (j)
    reply_status(c, call, j);
}

static void handle_cancel(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__JobRequest *req = (const Pando__V1__JobRequest *)msg;
  pd_job *j = authorized_job(c, call, req->job);
  if (j) {
    pd_jobs_finish(c->jobs, j, pd_now(), PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED,
                   "cancelled by the user");
    reply_status(c, call, j);
  }
}

static void handle_resume(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__JobRequest *req = (const Pando__V1__JobRequest *)msg;
  pd_job *j = authorized_job(c, call, req->job);
  char err[1400];
  if (!j)
    return;
  if (pd_jobs_resume(c->jobs, j, pd_now(), err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s", err);
    return;
  }
  reply_status(c, call, j);
}

static void handle_list(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  (void)msg;
  size_t n = pd_jobs_count(c->jobs);
  Pando__V1__ListJobsResponse resp = PANDO__V1__LIST_JOBS_RESPONSE__INIT;
  Pando__V1__JobStatus *st = pd_xcalloc(n + 1, sizeof *st);
  Pando__V1__JobStatus **stp = pd_xcalloc(n + 1, sizeof *stp);
  Pando__V1__ShardMap *maps = pd_xcalloc(n + 1, sizeof *maps);
  void **owned = pd_xcalloc(3 * n + 1, sizeof *owned);
  for (size_t i = 0; i < n; i++) {
    pd_job *j = pd_jobs_at(c->jobs, i);
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
}

static void handle_cluster(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  (void)msg;
  size_t n = pd_registry_count(c->reg);
  Pando__V1__NodeStatus *ns = pd_xcalloc(n + 1, sizeof *ns);
  Pando__V1__NodeStatus **nsp = pd_xcalloc(n + 1, sizeof *nsp);
  double now = pd_now();
  for (size_t i = 0; i < n; i++) {
    pd_node *nd = pd_registry_at(c->reg, i);
    pando__v1__node_status__init(&ns[i]);
    ns[i].node_id = nd->id;
    ns[i].role = nd->role;
    ns[i].address = nd->address;
    ns[i].name = nd->name;
    ns[i].alive = nd->alive;
    ns[i].last_seen_sec = now - nd->last_seen;
    ns[i].job = nd->job;
    ns[i].math = nd->math;
    ns[i].memory_bytes = nd->memory_bytes;
    nsp[i] = &ns[i];
  }
  Pando__V1__ClusterResponse resp = PANDO__V1__CLUSTER_RESPONSE__INIT;
  resp.n_nodes = n;
  resp.nodes = nsp;
  pd_rpc_call_reply_msg(call, &resp.base);
  free(nsp);
  free(ns);
}

/* A page of the workers' trace spans of a job (pd_job_trace_page). */
static void handle_trace(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__TraceRequest *req = (const Pando__V1__TraceRequest *)msg;
  pd_job *j = pd_jobs_find(c->jobs, req->job);
  if (!j) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
    return;
  }
  Pando__V1__TraceEvent events[PD_TRACE_MESSAGE_EVENTS], *ptrs[PD_TRACE_MESSAGE_EVENTS];
  Pando__V1__TraceResponse resp = PANDO__V1__TRACE_RESPONSE__INIT;
  for (uint32_t w = 0; j->workers && w < j->nworkers; w++)
    resp.dropped += j->workers[w].trace.dropped + j->workers[w].trace_dropped;
  resp.next_cursor = req->cursor;
  resp.n_events = pd_job_trace_page(j, req->from_clock, req->to_clock, &resp.next_cursor,
                                    pd_trace_page_size(req->max_events), events, ptrs);
  resp.events = ptrs;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void handle_report_device(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_coord *c = ctx;
  const Pando__V1__DeviceReport *req = (const Pando__V1__DeviceReport *)msg;
  pd_job *j = pd_jobs_find(c->jobs, req->job);
  char err[512];
  int rc;
  Pando__V1__DeviceReportAck ack = PANDO__V1__DEVICE_REPORT_ACK__INIT;
  if (!j)
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
  else if (!j->rounds)
    pd_rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                     "job '%s' is not running federated rounds", req->job);
  else if ((rc = pd_rounds_report(j->rounds, req, &ack, err, sizeof err)) != 0)
    pd_rpc_call_fail(call,
                     rc == -EACCES ? GRPC_STATUS_UNAUTHENTICATED : GRPC_STATUS_FAILED_PRECONDITION,
                     "%s", err);
  else
    pd_rpc_call_reply_msg(call, &ack.base);
}

void pd_coord_register(pd_coord *c, pd_rpc_server *srv) {
  static const struct {
    const char *path;
    const ProtobufCMessageDescriptor *request;
    pd_rpc_unary_handler handler;
  } methods[] = {
      {"/pando.v1.Coordinator/RegisterNode", &pando__v1__register_request__descriptor,
       handle_register},
      {"/pando.v1.Coordinator/Heartbeat", &pando__v1__heartbeat_request__descriptor,
       handle_heartbeat},
      {"/pando.v1.Coordinator/GetAssignment", &pando__v1__assignment_request__descriptor,
       handle_assignment},
      {"/pando.v1.Coordinator/ReportProgress", &pando__v1__progress_report__descriptor,
       handle_progress},
      {"/pando.v1.Coordinator/SubmitJob", &pando__v1__submit_job_request__descriptor,
       handle_submit},
      {"/pando.v1.Coordinator/GetJob", &pando__v1__job_request__descriptor, handle_get_job},
      {"/pando.v1.Coordinator/GetTrace", &pando__v1__trace_request__descriptor, handle_trace},
      {"/pando.v1.Coordinator/ListJobs", &pando__v1__list_jobs_request__descriptor, handle_list},
      {"/pando.v1.Coordinator/CancelJob", &pando__v1__job_request__descriptor, handle_cancel},
      {"/pando.v1.Coordinator/ResumeJob", &pando__v1__job_request__descriptor, handle_resume},
      {"/pando.v1.Coordinator/Cluster", &pando__v1__cluster_request__descriptor, handle_cluster},
      {"/pando.v1.Coordinator/ReportDevice", &pando__v1__device_report__descriptor,
       handle_report_device},
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(methods); i++)
    pd_rpc_server_add_unary(srv, methods[i].path, methods[i].request, methods[i].handler, c);
  /* a job's token may stand in for the cluster token (authorized_job checks it) */
  pd_rpc_server_job_scoped(srv, "/pando.v1.Coordinator/GetJob");
  pd_rpc_server_job_scoped(srv, "/pando.v1.Coordinator/CancelJob");
  pd_rpc_server_job_scoped(srv, "/pando.v1.Coordinator/ResumeJob");
  pd_rpc_server_job_scoped(srv, "/pando.v1.Coordinator/GetTrace");
  pd_rpc_health_register(srv, health_services);
}
