/* Unit tests of the coordinator's job state machine (services/coordinator/
 * jobs.c) with a fan-out that records the shard calls: waiting and
 * wait_timeout, server and worker assignment, PENDING -> RUNNING once every
 * shard exists, SUCCEEDED when every worker is done, FAILED on a dead node,
 * a refused CreateShard or a worker's error, CANCELLED; a CreateShard that
 * did not reach its server (or found no room) undoes the placement and
 * places the job again without that server, or makes it wait; and what each of them
 * does to the workers and the shards; RECOVERING after a dead server or
 * worker of a job with checkpoints, its roll back passes and deadline; the
 * state kept in a store (store.c) across a restart of the coordinator;
 * resuming a FAILED or CANCELLED job. */
#include "../../../services/coordinator/jobs.h"
#include "../../../services/coordinator/store.h"

#include <string.h>

#include "../../test.h"
#include "nodes.h"
#include "pando/error.h"
#include "pando/util.h"

enum { MAX_CALLS = 32 };

/* What the jobs asked the servers to do. */
typedef struct recorder {
  int ncreate, ndrop, nrestore;
  struct {
    uint32_t shard, pass;
    uint64_t server, checkpoint;
  } restore[MAX_CALLS];
  struct {
    char job[PD_JOB_ID_MAX];
    uint32_t shard;
    uint64_t server, begin, end;
  } create[MAX_CALLS], drop[MAX_CALLS];
} recorder;

static void record_create(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server) {
  recorder *r = ctx;
  if (r->ncreate == MAX_CALLS)
    return;
  strcpy(r->create[r->ncreate].job, j->id);
  r->create[r->ncreate].shard = shard;
  r->create[r->ncreate].server = server->id;
  r->create[r->ncreate].begin = j->shard_begin[shard];
  r->create[r->ncreate].end = j->shard_end[shard];
  r->ncreate++;
}

static void record_drop(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server) {
  recorder *r = ctx;
  if (r->ndrop == MAX_CALLS)
    return;
  strcpy(r->drop[r->ndrop].job, j->id);
  r->drop[r->ndrop].shard = shard;
  r->drop[r->ndrop].server = server->id;
  r->ndrop++;
}

static void record_restore(void *ctx, const pd_job *j, uint32_t shard, const pd_node *server,
                           uint64_t checkpoint, uint32_t pass) {
  recorder *r = ctx;
  (void)j;
  if (r->nrestore == MAX_CALLS)
    return;
  r->restore[r->nrestore].shard = shard;
  r->restore[r->nrestore].pass = pass;
  r->restore[r->nrestore].server = server->id;
  r->restore[r->nrestore].checkpoint = checkpoint;
  r->nrestore++;
}

typedef struct fixture {
  recorder rec;
  pd_registry *reg;
  pd_jobs *jobs;
} fixture;

static void fixture_init(fixture *f) {
  memset(&f->rec, 0, sizeof f->rec);
  f->reg = pd_registry_new();
  pd_jobs_fanout ops = {record_create, record_drop, &f->rec, record_restore};
  f->jobs = pd_jobs_new(f->reg, &ops);
}

static void fixture_close(fixture *f) {
  pd_jobs_free(f->jobs);
  pd_registry_free(f->reg);
}

/* A job of a 784 x 10 softmax model (7850 keys), 600 training rows. */
static pd_job *submit(fixture *f, const char *name, int servers, int workers, double now) {
  char yaml[512], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: %s\n"
           "model: {type: softmax, layers: [784, 10]}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 2, batch_size: 100, optimizer: {lr: 0.1}}\n"
           "cluster: {servers: %d, workers: %d, wait_timeout: 30}\n",
           name, servers, workers);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "  spec: %s\n", err);
    return NULL;
  }
  return pd_jobs_submit(f->jobs, &spec, yaml, 7850, 600, now);
}

/* A RUNNING job of 2 servers (s0, s1: nodes 1, 2) and 2 workers (nodes 3,
 * 4) with `checkpoint` (a spec line, or "") at time 1. */
static pd_job *running(fixture *f, const char *checkpoint) {
  char yaml[512], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: rec\n"
           "model: {type: softmax, layers: [784, 10]}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 2, batch_size: 100, update: bsp, optimizer: {lr: 0.1}}\n"
           "cluster: {servers: 2, workers: 2, wait_timeout: 30}\n"
           "%s\n",
           checkpoint);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "  spec: %s\n", err);
    return NULL;
  }
  add_node(f->reg, PANDO__V1__ROLE__ROLE_SERVER, "s0:7000", "s0", 0.0);
  add_node(f->reg, PANDO__V1__ROLE__ROLE_SERVER, "s1:7000", "s1", 0.0);
  add_node(f->reg, PANDO__V1__ROLE__ROLE_WORKER, "w0:7001", "w0", 0.0);
  add_node(f->reg, PANDO__V1__ROLE__ROLE_WORKER, "w1:7001", "w1", 0.0);
  pd_job *j = pd_jobs_submit(f->jobs, &spec, yaml, 7850, 600, 0.0);
  pd_jobs_cron(f->jobs, 0.0);
  pd_jobs_shard_created(f->jobs, j->id, NULL, 0.5);
  pd_jobs_shard_created(f->jobs, j->id, NULL, 0.5);
  pd_jobs_cron(f->jobs, 1.0);
  return j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING ? j : NULL;
}

static void add_nodes(fixture *f, int servers, int workers, double now) {
  char address[32];
  for (int i = 0; i < servers; i++) {
    snprintf(address, sizeof address, "s%d:7000", i);
    add_node(f->reg, PANDO__V1__ROLE__ROLE_SERVER, address, "", now);
  }
  for (int i = 0; i < workers; i++) {
    snprintf(address, sizeof address, "w%d:7001", i);
    add_node(f->reg, PANDO__V1__ROLE__ROLE_WORKER, address, "", now);
  }
}

static Pando__V1__ProgressReport report(uint32_t rank, uint32_t epoch, int done) {
  Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
  r.rank = rank;
  r.epoch = epoch;
  r.step = 3;
  r.loss = 0.5;
  r.done = done;
  return r;
}

/* A job waits, saying for what, and fails when cluster.wait_timeout ends. */
static void test_pending_until_wait_timeout(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 1, 1, 0.0);
  pd_job *j = submit(&f, "wait", 2, 2, 0.0);
  CHECK(j != NULL);
  CHECK(strcmp(j->id, "wait-1") == 0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_PENDING);
  CHECK_EQ_INT(j->nworkers, 2);
  CHECK_EQ_INT(j->steps_per_epoch, 3); /* 300 rows per worker, batches of 100 */
  pd_jobs_cron(f.jobs, 10.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_PENDING);
  CHECK(strcmp(j->message, "waiting for 2 servers and 2 idle workers; 1 servers and 1 idle "
                           "workers are registered") == 0);
  CHECK_EQ_INT(f.rec.ncreate, 0);
  pd_jobs_cron(f.jobs, 30.5);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK_STR_CONTAINS(j->message, "cluster.wait_timeout (30 s) expired waiting for 2 servers");
  CHECK(j->finished == 30.5);
  CHECK_EQ_INT(f.rec.ndrop, 0); /* it had no shards */
  fixture_close(&f);
}

/* Starting picks the least loaded servers and idle workers in registration
 * order, creates one shard per server, and runs once all exist. */
static void test_assignment_and_running(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 3, 3, 0.0); /* servers 1-3, workers 4-6 */
  pd_job *a = submit(&f, "a", 2, 2, 1.0);
  CHECK(a != NULL);
  pd_jobs_cron(f.jobs, 1.0);
  CHECK_EQ_INT(f.rec.ncreate, 2);
  CHECK_EQ_INT(f.rec.create[0].server, 1);
  CHECK_EQ_INT(f.rec.create[1].server, 2);
  CHECK_EQ_INT(f.rec.create[0].begin, 0);
  CHECK_EQ_INT(f.rec.create[0].end, 3925);
  CHECK_EQ_INT(f.rec.create[1].begin, 3925);
  CHECK_EQ_INT(f.rec.create[1].end, 7850);
  CHECK_EQ_INT(a->creating, 2);
  CHECK(strcmp(pd_registry_find(f.reg, 4)->job, "a-1") == 0);
  CHECK_EQ_INT(pd_registry_find(f.reg, 4)->rank, 0);
  CHECK_EQ_INT(pd_registry_find(f.reg, 5)->rank, 1);
  CHECK(pd_registry_find(f.reg, 6)->job[0] == '\0');
  CHECK_EQ_INT(a->workers[1].node_id, 5);
  CHECK_EQ_INT(pd_registry_find(f.reg, 4)->generation, 0); /* no assignment yet */

  pd_jobs_shard_created(f.jobs, "a-1", NULL, 2.0);
  pd_jobs_cron(f.jobs, 2.0);
  CHECK_EQ_INT(a->state, PANDO__V1__JOB_STATE__JOB_STATE_PENDING); /* one shard still coming */
  pd_jobs_shard_created(f.jobs, "a-1", NULL, 3.0);
  pd_jobs_cron(f.jobs, 3.0);
  CHECK_EQ_INT(a->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK(a->started == 3.0);
  CHECK(a->message[0] == '\0');
  CHECK_EQ_INT(pd_registry_find(f.reg, 4)->generation, 1); /* the workers hear of it */
  CHECK_EQ_INT(pd_registry_find(f.reg, 6)->generation, 0);

  /* a one-server job goes to server 3, the one without a shard */
  pd_job *b = submit(&f, "b", 1, 1, 4.0);
  CHECK(b != NULL);
  pd_jobs_cron(f.jobs, 4.0);
  CHECK_EQ_INT(f.rec.ncreate, 3);
  CHECK_EQ_INT(f.rec.create[2].server, 3);
  CHECK(strcmp(f.rec.create[2].job, "b-2") == 0);
  CHECK_EQ_INT(pd_registry_find(f.reg, 6)->rank, 0);
  fixture_close(&f);
}

/* Progress: epochs go into the history once; the job succeeds with its last
 * worker, keeps its shards and frees its workers. */
static void test_progress_and_success(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 1, 2, 0.0);
  pd_job *j = submit(&f, "ok", 1, 2, 0.0);
  CHECK(j != NULL);
  pd_jobs_cron(f.jobs, 0.0);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 0.5);
  pd_jobs_cron(f.jobs, 1.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  Pando__V1__ProgressReport r = report(0, 1, 0);
  r.has_eval = 1;
  r.test_accuracy = 0.75;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 5.0), 0);
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 5.5), 0); /* the same epoch again */
  CHECK_EQ_INT(j->nhistory, 1);
  CHECK_NEAR(j->history[0].test_accuracy, 0.75, 1e-12);
  CHECK_NEAR(j->history[0].seconds, 4.0, 1e-12);
  CHECK_EQ_INT(j->workers[0].epoch, 1);
  CHECK_EQ_INT(j->workers[0].step, 3);
  CHECK(pd_registry_find(f.reg, 2)->last_seen == 5.5); /* a report is a sign of life */
  r = report(0, 2, 1);
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 6.0), 0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  r = report(1, 2, 1);
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 7.0), 0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
  CHECK(j->finished == 7.0);
  CHECK_EQ_INT(f.rec.ndrop, 0); /* the model stays on the server */
  CHECK(pd_registry_find(f.reg, 2)->job[0] == '\0');
  CHECK(pd_registry_find(f.reg, 3)->job[0] == '\0');
  CHECK_EQ_INT(pd_registry_find(f.reg, 3)->generation, 2); /* assigned, then released */
  /* a late report of a finished job does not cancel the worker */
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 8.0), 0);
  fixture_close(&f);
}

/* A dead worker fails its job with a message naming it; the shards are
 * dropped and the other worker is released and told to stop. */
static void test_dead_node_fails_job(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 2, 2, 0.0);
  pd_job *j = submit(&f, "dies", 2, 2, 0.0);
  CHECK(j != NULL);
  pd_jobs_cron(f.jobs, 0.0);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 0.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 0.2);
  pd_jobs_cron(f.jobs, 0.3);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK(pd_registry_heard(f.reg, 1, 9.0) && pd_registry_heard(f.reg, 2, 9.0) &&
        pd_registry_heard(f.reg, 3, 9.0));
  pd_node *dead = pd_registry_next_dead(f.reg, 12.0, 10.0);
  CHECK(dead != NULL);
  CHECK_EQ_INT(dead->id, 4);
  pd_jobs_node_dead(f.jobs, dead, 12.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK(strcmp(j->message, "worker w1:7001 at w1:7001 stopped sending heartbeats (last seen "
                           "12.0 s ago); a checkpoint: key in the job spec (e.g. checkpoint: "
                           "{every_clocks: 50}) would have let the job recover from "
                           "this") == 0);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  CHECK_EQ_INT(f.rec.drop[0].server, 1);
  CHECK_EQ_INT(f.rec.drop[1].server, 2);
  CHECK(pd_registry_find(f.reg, 3)->job[0] == '\0');
  Pando__V1__ProgressReport r = report(0, 1, 0);
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 13.0), 1); /* stop */
  /* a node of no job dying changes nothing */
  pd_node *idle = add_node(f.reg, PANDO__V1__ROLE__ROLE_WORKER, "w9:1", "w9", 13.0);
  idle->alive = 0;
  pd_jobs_node_dead(f.jobs, idle, 14.0);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  fixture_close(&f);
}

/* A failed CreateShard fails the job with the server's message; the job
 * never runs even when the other shard is created after it. */
static void test_create_failure(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 2, 1, 0.0);
  pd_job *j = submit(&f, "nocreate", 2, 1, 0.0);
  CHECK(j != NULL);
  pd_jobs_cron(f.jobs, 0.0);
  pd_jobs_shard_created(f.jobs, j->id,
                        "creating the shard on server s1:7000 failed: UNAVAILABLE: down", 1.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK(strcmp(j->message, "creating the shard on server s1:7000 failed: UNAVAILABLE: down") == 0);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 2.0);
  pd_jobs_cron(f.jobs, 3.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK_EQ_INT(j->creating, 0);
  pd_jobs_shard_created(f.jobs, "no-such-job", "x", 3.0); /* ignored */
  fixture_close(&f);
}

/* A CreateShard that does not reach its server (killed, not declared dead
 * yet): once the other one answered, both shards are dropped, the worker
 * released, and after the drops' answers the job is placed again on the
 * two other servers and runs. */
static void test_misplaced_placed_again(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 3, 1, 0.0); /* servers 1-3, worker 4 */
  pd_job *j = submit(&f, "replace", 2, 1, 0.0);
  CHECK(j != NULL);
  pd_jobs_cron(f.jobs, 0.0);
  CHECK_EQ_INT(f.rec.ncreate, 2);
  CHECK_EQ_INT(f.rec.create[0].server, 1);
  pd_jobs_shard_misplaced(f.jobs, j->id, 1, 1,
                          "creating the shard on server s0:7000 failed: UNAVAILABLE: down", 1.0);
  CHECK_EQ_INT(f.rec.ndrop, 0); /* the other CreateShard is still in flight */
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_PENDING);
  CHECK(j->server_ids == NULL);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  CHECK_EQ_INT(pd_registry_find(f.reg, 4)->job[0], '\0');
  pd_jobs_cron(f.jobs, 1.5); /* the drops are not answered yet */
  CHECK_EQ_INT(f.rec.ncreate, 2);
  CHECK_STR_CONTAINS(j->message, "placement is being undone");
  pd_jobs_shard_dropped(f.jobs, j->id);
  pd_jobs_shard_dropped(f.jobs, j->id);
  pd_jobs_cron(f.jobs, 2.0);
  CHECK_EQ_INT(f.rec.ncreate, 4);
  CHECK_EQ_INT(f.rec.create[2].server, 2);
  CHECK_EQ_INT(f.rec.create[3].server, 3);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 2.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 2.1);
  pd_jobs_cron(f.jobs, 2.5);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(j->server_ids[0], 2);
  CHECK_EQ_INT(j->server_ids[1], 3);
  fixture_close(&f);
}

/* A worker of a job whose shards are being created is declared dead: once
 * the CreateShards answered, the placement is undone and the job placed
 * again with the other worker; a server declared dead the same, without a
 * DropShard to it. */
static void test_dead_before_running(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 3, 2, 0.0); /* servers 1-3, workers 4-5 */
  pd_job *j = submit(&f, "early", 2, 1, 0.0);
  pd_jobs_cron(f.jobs, 0.0);
  CHECK_EQ_INT(j->workers[0].node_id, 4);
  pd_node *w = pd_registry_find(f.reg, 4);
  w->alive = 0;
  pd_jobs_node_dead(f.jobs, w, 1.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_PENDING);
  CHECK(j->server_ids != NULL); /* the CreateShards are in flight */
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.1);
  CHECK(j->server_ids == NULL);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  pd_jobs_shard_dropped(f.jobs, j->id);
  pd_jobs_shard_dropped(f.jobs, j->id);
  pd_jobs_cron(f.jobs, 2.0);
  CHECK_EQ_INT(f.rec.ncreate, 4);
  CHECK_EQ_INT(j->workers[0].node_id, 5);
  pd_node *s = pd_registry_find(f.reg, j->server_ids[0]);
  s->alive = 0;
  pd_jobs_node_dead(f.jobs, s, 3.0);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 3.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 3.1);
  CHECK_EQ_INT(f.rec.ndrop, 3); /* to the live one only */
  pd_jobs_shard_dropped(f.jobs, j->id);
  pd_jobs_cron(f.jobs, 4.0);
  CHECK_EQ_INT(f.rec.ncreate, 6);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 4.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 4.1);
  pd_jobs_cron(f.jobs, 5.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK(j->server_ids[0] != s->id && j->server_ids[1] != s->id);
  fixture_close(&f);
}

/* With no other server, the job waits naming the avoided server; it is
 * placed on it again once it heartbeats after the failure; or, when it never
 * does, FAILS at cluster.wait_timeout naming the placement it tried. No room
 * on a server and no other server with room fails the job at once. */
static void test_misplaced_waits(void) {
  for (int heartbeat = 0; heartbeat < 2; heartbeat++) {
    fixture f;
    fixture_init(&f);
    add_nodes(&f, 2, 1, 0.0);
    pd_job *j = submit(&f, "wait", 2, 1, 0.0);
    pd_jobs_cron(f.jobs, 0.0);
    pd_jobs_shard_created(f.jobs, j->id, NULL, 1.0);
    pd_jobs_shard_misplaced(f.jobs, j->id, 2, 1,
                            "creating the shard on server s1:7000 failed: UNAVAILABLE: down", 1.0);
    pd_jobs_shard_dropped(f.jobs, j->id);
    pd_jobs_shard_dropped(f.jobs, j->id);
    pd_jobs_cron(f.jobs, 2.0);
    CHECK_EQ_INT(f.rec.ncreate, 2);
    CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_PENDING);
    CHECK_STR_CONTAINS(j->message,
                       "not placed on server s1:7000 at s1:7000 (its CreateShard found it "
                       "unreachable; until it heartbeats again");
    if (heartbeat) {
      pd_registry_heard(f.reg, 2, 3.0);
      pd_jobs_cron(f.jobs, 3.0);
      CHECK_EQ_INT(f.rec.ncreate, 4);
    } else {
      pd_jobs_cron(f.jobs, 31.0);
      CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
      CHECK_STR_CONTAINS(j->message, "cluster.wait_timeout (30 s) expired waiting for 2 servers");
      CHECK_STR_CONTAINS(j->message, "the placements it tried failed: creating the shard on "
                                     "server s1:7000 failed: UNAVAILABLE: down");
    }
    fixture_close(&f);
  }
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 2, 1, 0.0);
  pd_job *j = submit(&f, "full", 2, 1, 0.0);
  pd_jobs_cron(f.jobs, 0.0);
  pd_jobs_shard_misplaced(f.jobs, j->id, 1, 0,
                          "creating the shard on server s0:7000 failed: RESOURCE_EXHAUSTED: full",
                          1.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK_STR_CONTAINS(j->message, "RESOURCE_EXHAUSTED: full; no other live server has room");
  fixture_close(&f);
}

/* A worker's error fails the job with the worker's message; CancelJob ends
 * a job once: a final state is never changed. */
static void test_worker_error_and_cancel(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 1, 2, 0.0);
  pd_job *j = submit(&f, "err", 1, 1, 0.0);
  CHECK(j != NULL);
  pd_jobs_cron(f.jobs, 0.0);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 0.0);
  pd_jobs_cron(f.jobs, 0.0);
  Pando__V1__ProgressReport r = report(0, 1, 0);
  r.error = "pull failed: UNAVAILABLE";
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 1.0), 0); /* ended by this report */
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK(strcmp(j->message, "worker 0 (w0:7001): pull failed: UNAVAILABLE") == 0);
  pd_jobs_finish(f.jobs, j, 2.0, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED,
                 "cancelled by the user");
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);

  pd_job *k = submit(&f, "cancel", 1, 1, 3.0);
  CHECK(k != NULL);
  pd_jobs_cron(f.jobs, 3.0);
  CHECK_EQ_INT(f.rec.ncreate, 2);
  CHECK_EQ_INT(f.rec.create[1].server, 1);
  pd_jobs_finish(f.jobs, k, 4.0, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED,
                 "cancelled by the user");
  CHECK_EQ_INT(k->state, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED);
  CHECK_EQ_INT(f.rec.ndrop, 2); /* err's shard and cancel's */
  CHECK(strcmp(f.rec.drop[1].job, "cancel-2") == 0);
  pd_jobs_shard_created(f.jobs, k->id, NULL, 5.0);
  pd_jobs_cron(f.jobs, 5.0);
  CHECK_EQ_INT(k->state, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED);
  r = report(0, 1, 0);
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, k, &r, 6.0), 1);
  CHECK(pd_job_state_final(PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED));
  CHECK(!pd_job_state_final(PANDO__V1__JOB_STATE__JOB_STATE_RUNNING));
  CHECK(strcmp(pd_job_state_name(PANDO__V1__JOB_STATE__JOB_STATE_RUNNING), "RUNNING") == 0);
  fixture_close(&f);
}

/* What the jobs asked of the federated rounds. */
static int fed_started, fed_stopped;
static void fed_start(void *ctx, pd_job *j) {
  (void)ctx;
  fed_started++;
  j->rounds = (struct pd_rounds *)j; /* any non-NULL marker */
}
static void fed_stop(void *ctx, pd_job *j) {
  (void)ctx;
  (void)j;
  fed_stopped++;
}

/* Submits a fedavg job of `rounds` rounds on 2 servers (with the YAML line
 * `extra`) to a fixture whose federated hooks count their calls. */
static pd_job *submit_federated(fixture *f, int rounds, const char *extra) {
  pd_jobs_federated fed = {fed_start, fed_stop, NULL, NULL};
  pd_jobs_set_federated(f->jobs, &fed);
  fed_started = fed_stopped = 0;
  add_nodes(f, 2, 0, 0.0);
  char yaml[600], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: fed\n"
           "model: {type: softmax, layers: [784, 10]}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training:\n"
           "  update: fedavg\n"
           "  optimizer: {lr: 0.1}\n"
           "  federated: {rounds: %d, clients_per_round: 3}\n"
           "cluster: {servers: 2}\n%s",
           rounds, extra);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "  spec: %s\n", err);
    return NULL;
  }
  return pd_jobs_submit(f->jobs, &spec, yaml, 7850, 0, 0.0);
}

/* A fedavg job takes servers and no workers (devices come through the
 * selectors), starts its rounds once its shards exist, and stops them when
 * it is cancelled; its shards are then dropped. */
static void test_federated_job(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = submit_federated(&f, 5, "");
  CHECK(j != NULL);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_SELECTOR, "sel:7080", "", 0.0);
  CHECK(pd_job_federated(j));
  CHECK_EQ_INT(j->nworkers, 0);
  pd_jobs_cron(f.jobs, 1.0);
  CHECK_EQ_INT(f.rec.ncreate, 2); /* started without workers */
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.2);
  CHECK_EQ_INT(fed_started, 0);
  pd_jobs_cron(f.jobs, 1.3);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(fed_started, 1);
  CHECK(j->rounds != NULL);
  pd_jobs_cron(f.jobs, 100.0); /* RUNNING jobs do not time out waiting */
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  pd_jobs_finish(f.jobs, j, 101.0, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED,
                 "cancelled by the user");
  CHECK_EQ_INT(fed_stopped, 1);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  j->rounds = NULL;
  fixture_close(&f);
}

/* A fedavg job with checkpoints whose server dies: RECOVERING (not FAILED),
 * its rounds stopped; the restarted server takes its shard, both shards
 * roll back to checkpoint 4 (committed rounds) and the rounds start again
 * for attempt 1 from there (coordinator.c resumes them from start_clock). */
static void test_federated_job_recovers(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = submit_federated(&f, 10, "checkpoint: {every_clocks: 2}\n");
  CHECK(j != NULL);
  pd_jobs_cron(f.jobs, 1.0);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.1);
  pd_jobs_shard_created(f.jobs, j->id, NULL, 1.2);
  pd_jobs_cron(f.jobs, 1.3);
  CHECK_EQ_INT(fed_started, 1);
  CHECK(pd_registry_heard(f.reg, 1, 9.0));
  pd_node *dead = pd_registry_next_dead(f.reg, 12.0, 10.0);
  CHECK(dead != NULL && dead->id == 2);
  pd_jobs_node_dead(f.jobs, dead, 12.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  CHECK_EQ_INT(fed_stopped, 1); /* the rounds wait for the roll back */
  CHECK_EQ_INT(f.rec.ndrop, 0);
  pd_node *again =
      add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s1b:7000", j->server_names[1], 14.0);
  pd_jobs_cron(f.jobs, 14.0);
  CHECK_EQ_INT(j->server_ids[1], again->id);
  CHECK_EQ_INT(f.rec.nrestore, 2);
  uint32_t pass = f.rec.restore[0].pass;
  pd_jobs_shard_restored(f.jobs, j->id, pass, 0, 4, NULL, 14.2);
  CHECK_EQ_INT(fed_started, 1);
  pd_jobs_shard_restored(f.jobs, j->id, pass, 1, 4, NULL, 14.3);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(j->attempt, 1);
  CHECK_EQ_INT(j->start_clock, 4);
  CHECK_EQ_INT(fed_started, 2); /* resumed from the 4 committed rounds */
  j->rounds = NULL;
  fixture_close(&f);
}

/* Runs `name` (1 server, 1 worker) to SUCCEEDED at time `now`. */
static pd_job *succeed(fixture *f, const char *name, double now) {
  pd_job *j = submit(f, name, 1, 1, now);
  if (!j)
    return NULL;
  pd_jobs_cron(f->jobs, now);
  pd_jobs_shard_created(f->jobs, j->id, NULL, now);
  pd_jobs_cron(f->jobs, now);
  Pando__V1__ProgressReport r = report(0, 2, 1);
  pd_jobs_progress(f->jobs, j, &r, now + 0.5);
  return j;
}

/* keep_models: the shards of succeeded jobs beyond the newest N are dropped,
 * the oldest first, and the job says so; they no longer count as the
 * server's load. keep_jobs: finished jobs beyond the newest N are forgotten
 * (their model dropped too) and their ids are never reused. */
static void test_retention(void) {
  fixture f;
  fixture_init(&f);
  pd_jobs_set_retention(f.jobs, 2, 3);
  add_nodes(&f, 1, 1, 0.0);
  pd_job *a = succeed(&f, "a", 1.0), *b = succeed(&f, "b", 2.0);
  CHECK(a && b);
  CHECK_EQ_INT(b->state, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
  pd_jobs_cron(f.jobs, 3.0);
  CHECK_EQ_INT(f.rec.ndrop, 0); /* two models, two kept */
  pd_job *c = succeed(&f, "c", 3.0);
  CHECK(c && c->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
  pd_jobs_cron(f.jobs, 4.0);
  CHECK_EQ_INT(f.rec.ndrop, 1);
  CHECK(strcmp(f.rec.drop[0].job, "a-1") == 0);
  CHECK(a->model_dropped && !b->model_dropped && !c->model_dropped);
  CHECK(strstr(a->message, "its model was dropped from the servers") != NULL);
  CHECK(strstr(a->message, "keep_models keeps the newest") != NULL);
  pd_jobs_cron(f.jobs, 5.0);
  CHECK_EQ_INT(f.rec.ndrop, 1); /* once */
  CHECK_EQ_INT(pd_jobs_count(f.jobs), 3);
  pd_job *d = submit(&f, "d", 1, 1, 6.0); /* a fourth job: cancelled while pending */
  CHECK(d != NULL);
  pd_jobs_finish(f.jobs, d, 6.5, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED, "cancelled");
  pd_jobs_cron(f.jobs, 7.0);
  CHECK_EQ_INT(pd_jobs_count(f.jobs), 3); /* a-1 is forgotten */
  CHECK(pd_jobs_find(f.jobs, "a-1") == NULL);
  CHECK(pd_jobs_find(f.jobs, "b-2") != NULL && pd_jobs_find(f.jobs, "d-4") != NULL);
  CHECK_EQ_INT(f.rec.ndrop, 1); /* a's model had been dropped already */
  pd_job *e = submit(&f, "a", 1, 1, 8.0);
  CHECK(e && strcmp(e->id, "a-5") == 0);
  pd_jobs_finish(f.jobs, e, 8.5, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED, "cancelled");
  pd_jobs_cron(f.jobs, 9.0); /* b-2 is forgotten: its model is dropped with it */
  CHECK(pd_jobs_find(f.jobs, "b-2") == NULL);
  CHECK_EQ_INT(f.rec.ndrop, 2);
  CHECK(strcmp(f.rec.drop[1].job, "b-2") == 0);
  fixture_close(&f);
}

/* Admission control: servers register their memory_limit; a job whose shard
 * fits no server is refused at submit saying how much it needs; one that
 * fits a server's limit but not what is free there waits ("waiting for
 * memory"), and the models of succeeded jobs are dropped, oldest first, to
 * make room for it. */
static void test_admission(void) {
  fixture f;
  fixture_init(&f);
  add_nodes(&f, 0, 2, 0.0);
  pd_node *s1 = add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s1:7000", "", 0.0);
  s1->memory_bytes = 100000; /* 7850 keys of plain SGD under BSP: 12 B a key, 94 KiB */
  char yaml[512], err[512] = "";
  pd_job_spec spec;
  snprintf(yaml, sizeof yaml,
           "name: big\nmodel: {type: softmax, layers: [784, 10]}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 2, batch_size: 100, optimizer: {type: adam, lr: 0.1}}\n"
           "cluster: {servers: 1, workers: 1}\n");
  CHECK(pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) == 0);
  CHECK_EQ_INT(pd_jobs_admit(f.jobs, &spec, 7850, err, sizeof err), -1); /* Adam: 20 B a key */
  CHECK(strstr(err, "needs 0.2 MiB on each of its 1 servers") != NULL);
  CHECK(strstr(err, "0 of the 1 registered servers") != NULL);
  pd_job *small = submit(&f, "small", 1, 1, 0.0); /* SGD: fits */
  CHECK(small != NULL);
  CHECK(pd_jobs_admit(f.jobs, &small->spec, 7850, err, sizeof err) == 0);
  CHECK(small->shard_bytes > 90000 && small->shard_bytes <= 100000);
  pd_jobs_cron(f.jobs, 0.0);
  CHECK(small->server_ids != NULL);
  pd_jobs_shard_created(f.jobs, small->id, NULL, 0.0);
  pd_jobs_cron(f.jobs, 0.0);
  pd_job *second = submit(&f, "second", 1, 1, 1.0); /* fits the limit, not what is free */
  CHECK(second != NULL);
  pd_jobs_cron(f.jobs, 1.0);
  CHECK(second->server_ids == NULL);
  CHECK(strstr(second->message, "waiting for memory: each of its 1 servers needs 0.1 MiB") != NULL);
  Pando__V1__ProgressReport r = report(0, 2, 1);
  pd_jobs_progress(f.jobs, small, &r, 2.0);
  CHECK_EQ_INT(small->state, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
  pd_jobs_cron(f.jobs, 3.0); /* small's model is dropped to make room */
  CHECK(small->model_dropped);
  CHECK(strstr(small->message, "a job waiting for memory needed its room") != NULL);
  CHECK_EQ_INT(f.rec.ndrop, 1);
  pd_jobs_cron(f.jobs, 3.5);
  CHECK(second->server_ids != NULL && second->server_ids[0] == s1->id);
  /* a server that said nothing of its memory holds anything */
  s1->memory_bytes = 0;
  CHECK(pd_jobs_admit(f.jobs, &spec, 7850, err, sizeof err) == 0);
  fixture_close(&f);
}

/* A dead server of a job with checkpoints: RECOVERING, waiting for a server
 * of its name; the restarted one takes its shard; pass 1 asks every shard
 * for its newest checkpoint, they differ (12, 8), pass 2 asks the one above
 * for 8; both at 8: RUNNING again, attempt 1, the workers from clock 8.
 * Reports of attempt 0 are answered with stop and change nothing. */
static void test_server_death_recovers(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = running(&f, "checkpoint: {every_clocks: 4}");
  CHECK(j != NULL);
  uint64_t gen = pd_registry_find(f.reg, 3)->generation;
  CHECK(pd_registry_heard(f.reg, 1, 9.0) && pd_registry_heard(f.reg, 3, 9.0) &&
        pd_registry_heard(f.reg, 4, 9.0));
  pd_node *dead = pd_registry_next_dead(f.reg, 12.0, 10.0);
  CHECK(dead != NULL && dead->id == 2);
  pd_jobs_node_dead(f.jobs, dead, 12.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  CHECK(pd_registry_find(f.reg, 3)->generation > gen); /* the workers stop */
  CHECK_EQ_INT(f.rec.ndrop, 0);                        /* the shards stay */
  pd_jobs_cron(f.jobs, 13.0);
  CHECK_STR_CONTAINS(j->message, "server s1 at s1:7000 stopped sending heartbeats");
  CHECK_STR_CONTAINS(j->message, "waiting for server s1 to register again");
  CHECK_EQ_INT(f.rec.nrestore, 0);
  Pando__V1__ProgressReport r = report(0, 1, 0);
  r.error = "job rec-1 pull: UNAVAILABLE";
  r.unreachable = 1;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 13.5), 1); /* stop; nothing else */
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  /* the pod restarts: same name, another address */
  pd_node *again = add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s1b:7000", "s1", 14.0);
  uint64_t again_id = again->id;
  pd_jobs_cron(f.jobs, 14.0);
  CHECK_EQ_INT(j->server_ids[1], again_id);
  CHECK_EQ_INT(f.rec.nrestore, 2);
  CHECK_EQ_INT(f.rec.restore[0].checkpoint, UINT64_MAX);
  CHECK_EQ_INT(f.rec.restore[1].server, again_id);
  uint32_t pass = f.rec.restore[0].pass;
  pd_jobs_cron(f.jobs, 14.1); /* in flight: nothing more */
  CHECK_EQ_INT(f.rec.nrestore, 2);
  pd_jobs_shard_restored(f.jobs, j->id, pass - 1, 0, 4, NULL, 14.2); /* an old pass: ignored */
  pd_jobs_shard_restored(f.jobs, j->id, pass, 0, 12, NULL, 14.2);
  pd_jobs_shard_restored(f.jobs, j->id, pass, 1, 8, NULL, 14.3);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  CHECK_EQ_INT(f.rec.nrestore, 3); /* shard 0 again, for 8 */
  CHECK_EQ_INT(f.rec.restore[2].shard, 0);
  CHECK_EQ_INT(f.rec.restore[2].checkpoint, 8);
  CHECK_STR_CONTAINS(j->message, "rolling every shard back to checkpoint 8");
  gen = pd_registry_find(f.reg, 3)->generation;
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[2].pass, 0, 8, NULL, 14.4);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(j->attempt, 1);
  CHECK_EQ_INT(j->start_clock, 8);
  CHECK(j->message[0] == '\0');
  CHECK(pd_registry_find(f.reg, 3)->generation > gen); /* the workers fetch attempt 1 */
  r = report(1, 2, 1);                                 /* attempt 0's "done": stale */
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 15.0), 1);
  CHECK_EQ_INT(j->workers[1].done, 0);
  r = report(0, 2, 1);
  r.attempt = 1;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 16.0), 0);
  r.rank = 1;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 16.0), 0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED);
  fixture_close(&f);
}

/* A worker's failed pull (unreachable) of a job with checkpoints starts a
 * recovery; a failed restore pass is retried a second later; a dead
 * worker's rank goes to an idle worker; without one before
 * cluster.wait_timeout the job FAILS saying what it waited for. */
static void test_worker_death_and_deadline(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = running(&f, "checkpoint: {every_epochs: 1}");
  CHECK(j != NULL);
  Pando__V1__ProgressReport r = report(0, 1, 0);
  r.error = "job rec-1 push: UNAVAILABLE";
  r.unreachable = 1;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 2.0), 1);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  pd_jobs_cron(f.jobs, 2.0); /* everyone looks alive: try at once */
  CHECK_EQ_INT(f.rec.nrestore, 2);
  uint32_t pass = f.rec.restore[0].pass;
  pd_jobs_shard_restored(f.jobs, j->id, pass, 0, 0,
                         "restoring the shard on server s1 at s1:7000: UNAVAILABLE: refused", 2.1);
  pd_jobs_shard_restored(f.jobs, j->id, pass, 1, 16, NULL, 2.1);
  CHECK_STR_CONTAINS(j->message,
                     "the roll back failed (retrying): restoring the shard on server s1");
  pd_jobs_cron(f.jobs, 2.5);
  CHECK_EQ_INT(f.rec.nrestore, 2); /* not before a second */
  /* worker w1 (node 4) dies meanwhile */
  pd_node *w1 = pd_registry_find(f.reg, 4);
  w1->alive = 0;
  pd_jobs_node_dead(f.jobs, w1, 3.0);
  pd_jobs_cron(f.jobs, 3.2);
  CHECK_STR_CONTAINS(j->message, "waiting for an idle worker to take rank 1");
  CHECK_EQ_INT(f.rec.nrestore, 2);
  pd_node *w2 = add_node(f.reg, PANDO__V1__ROLE__ROLE_WORKER, "w2:7001", "w2", 4.0);
  uint64_t w2_id = w2->id;
  pd_jobs_cron(f.jobs, 4.0);
  CHECK_EQ_INT(j->workers[1].node_id, w2_id);
  CHECK(strcmp(pd_registry_find(f.reg, w2_id)->job, j->id) == 0);
  CHECK_EQ_INT(pd_registry_find(f.reg, w2_id)->rank, 1);
  CHECK_EQ_INT(f.rec.nrestore, 4);
  /* a server that fails every restore: the deadline ends it */
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[2].pass, 0, 0,
                         "restoring the shard on server s0 at s0:7000: RESOURCE_EXHAUSTED", 4.1);
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[2].pass, 1, 16, NULL, 4.1);
  pd_jobs_cron(f.jobs, 33.0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK_STR_CONTAINS(j->message, "cluster.wait_timeout (30 s) expired while recovering");
  CHECK_STR_CONTAINS(j->message, "RESOURCE_EXHAUSTED");
  CHECK_EQ_INT(f.rec.ndrop, 2);
  /* a restore answered after the end made a shard: it is dropped again */
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[3].pass, 1, 16, NULL, 34.0);
  CHECK_EQ_INT(f.rec.ndrop, 3);
  CHECK_EQ_INT(f.rec.drop[2].shard, 1);
  fixture_close(&f);
}

/* A death before any checkpoint: the shards answer 0 (none to restore), so
 * the next pass makes every shard anew (target 0) and the job runs again
 * from clock 0. */
static void test_no_common_checkpoint_restarts(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = running(&f, "checkpoint: {every_clocks: 100}");
  CHECK(j != NULL);
  pd_node *w0 = pd_registry_find(f.reg, 3);
  w0->alive = 0;
  pd_jobs_node_dead(f.jobs, w0, 2.0);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_WORKER, "w2:7001", "w2", 2.0);
  pd_jobs_cron(f.jobs, 2.0);
  CHECK_EQ_INT(f.rec.nrestore, 2);
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[0].pass, 0, 0, NULL, 2.1);
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[0].pass, 1, 0, NULL, 2.1);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  CHECK_EQ_INT(f.rec.nrestore, 4);
  CHECK_EQ_INT(f.rec.restore[2].checkpoint, 0);
  CHECK_EQ_INT(f.rec.restore[3].checkpoint, 0);
  CHECK_STR_CONTAINS(j->message, "starting the job again from the model's seed");
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[2].pass, 0, 0, NULL, 2.2);
  pd_jobs_shard_restored(f.jobs, j->id, f.rec.restore[2].pass, 1, 0, NULL, 2.2);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(j->start_clock, 0);
  CHECK_EQ_INT(j->attempt, 1);
  fixture_close(&f);
}

/* Without checkpoints a worker's failed pull fails the job, saying that a
 * checkpoint: key would have let it recover. */
static void test_no_checkpoint_fails(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = running(&f, "");
  CHECK(j != NULL);
  Pando__V1__ProgressReport r = report(1, 1, 0);
  r.error = "job rec-1 pull: UNAVAILABLE";
  r.unreachable = 1;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 2.0), 1);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK_STR_CONTAINS(j->message, "worker 1 (w1): job rec-1 pull: UNAVAILABLE; a checkpoint: key");
  CHECK_EQ_INT(f.rec.nrestore, 0);
  fixture_close(&f);
}

/* A restart with the state in a store: the counters continue, finished jobs
 * come back as they were (history, shard map, token), a running job with
 * checkpoints goes RECOVERING and rolls back once its servers (by name) and
 * a worker per rank registered, one without checkpoints FAILS saying why
 * and its shards are dropped when its server registers again. */
static void test_restart_from_store(void) {
  char *dir = pd_test_tmpdir("pando-store-test"), err[1400] = "";
  CHECK(dir != NULL);
  pd_store *store = NULL;
  CHECK_EQ_INT(pd_store_open(dir, &store, err, sizeof err), 0);
  fixture f;
  fixture_init(&f);
  CHECK_EQ_INT(pd_jobs_reload(f.jobs, store, 0.0, err, sizeof err), 0); /* empty */
  pd_job *ck = running(&f, "checkpoint: {every_clocks: 4}");            /* rec-1: nodes 1-4 */
  CHECK(ck != NULL);
  Pando__V1__ProgressReport r = report(0, 1, 0);
  r.has_eval = 1;
  r.test_accuracy = 0.75;
  CHECK_EQ_INT(pd_jobs_progress(f.jobs, ck, &r, 2.0), 0);
  pd_strlcpy(ck->job_token, "abcd", sizeof ck->job_token);
  pd_jobs_changed(f.jobs, ck);
  pd_job *done = submit(&f, "plain", 1, 1, 3.0); /* plain-2 on a new server and worker */
  CHECK(done != NULL);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s2:7000", "s2", 3.0);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_WORKER, "w2:7001", "w2", 3.0);
  pd_jobs_cron(f.jobs, 3.0);
  pd_jobs_shard_created(f.jobs, done->id, NULL, 3.1);
  pd_jobs_cron(f.jobs, 3.2);
  CHECK_EQ_INT(done->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(pd_store_set_counter(store, PD_STORE_NEXT_NODE, pd_registry_next_id(f.reg)), 0);
  fixture_close(&f); /* kill -9: nothing more is written */
  pd_store_close(store);

  CHECK_EQ_INT(pd_store_open(dir, &store, err, sizeof err), 0);
  fixture_init(&f);
  uint64_t next_node = 1;
  CHECK_EQ_INT(pd_store_counter(store, PD_STORE_NEXT_NODE, &next_node), 0);
  CHECK_EQ_INT(next_node, 7);
  pd_registry_set_next_id(f.reg, next_node);
  CHECK_EQ_INT(pd_jobs_reload(f.jobs, store, 10.0, err, sizeof err), 0);
  CHECK_EQ_INT(pd_jobs_count(f.jobs), 2);
  ck = pd_jobs_find(f.jobs, "rec-1");
  done = pd_jobs_find(f.jobs, "plain-2");
  CHECK(ck != NULL && done != NULL);
  CHECK_EQ_INT(ck->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  CHECK_STR_CONTAINS(ck->message, "the coordinator restarted while the job was RUNNING");
  CHECK_EQ_INT(ck->nhistory, 1);
  CHECK(ck->history[0].test_accuracy == 0.75);
  CHECK_STR_CONTAINS(ck->job_token, "abcd");
  CHECK_EQ_INT(ck->shard_end[1], 7850);
  CHECK_EQ_INT(done->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  CHECK_STR_CONTAINS(done->message, "a checkpoint: key in the job spec");
  pd_job *again = submit(&f, "rec", 1, 1, 11.0); /* a new id, never rec-1 */
  CHECK(again != NULL);
  CHECK_STR_CONTAINS(again->id, "rec-3");
  pd_node *s0 = add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s0:7000", "s0", 11.0);
  CHECK_EQ_INT(s0->id, 7); /* ids continue */
  add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s1:7000", "s1", 11.0);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_SERVER, "s2:7000", "s2", 11.0);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_WORKER, "w0:7001", "w0", 11.0);
  add_node(f.reg, PANDO__V1__ROLE__ROLE_WORKER, "w1:7001", "w1", 11.0);
  pd_jobs_cron(f.jobs, 11.0);
  CHECK_EQ_INT(f.rec.ndrop, 1); /* plain-2's orphan, on s2 (node 9) */
  CHECK_STR_CONTAINS(f.rec.drop[0].job, "plain-2");
  CHECK_EQ_INT(f.rec.drop[0].server, 9);
  CHECK_EQ_INT(f.rec.nrestore, 2); /* rec-1 rolls back on s0 and s1 */
  CHECK_EQ_INT(f.rec.restore[0].server, 7);
  uint32_t pass = f.rec.restore[0].pass;
  pd_jobs_shard_restored(f.jobs, ck->id, pass, 0, 4, NULL, 11.5);
  pd_jobs_shard_restored(f.jobs, ck->id, pass, 1, 4, NULL, 11.5);
  CHECK_EQ_INT(ck->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(ck->start_clock, 4);
  pd_jobs_cron(f.jobs, 12.0);
  CHECK_EQ_INT(f.rec.ndrop, 1); /* dropped once */
  fixture_close(&f);
  pd_store_close(store);
  /* a damaged file is refused, naming it */
  char path[1200];
  snprintf(path, sizeof path, "%s/coordinator.db", dir);
  FILE *file = fopen(path, "w");
  CHECK(file != NULL);
  fputs("not a database, but longer than its header of a hundred bytes would be, so that SQLite "
        "reads it as one and finds out",
        file);
  fclose(file);
  remove(strcat(strcpy(err, path), "-wal"));
  err[0] = '\0';
  CHECK(pd_store_open(dir, &store, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, "not a database");
  pd_test_rmtree(dir);
  free(dir);
}

/* pandoctl resume: a CANCELLED job with checkpoints goes RECOVERING and
 * rolls back on its servers with an idle worker per rank; a RUNNING job and
 * one without checkpoints are refused, saying why. */
static void test_resume(void) {
  fixture f;
  fixture_init(&f);
  char err[1400] = "";
  pd_job *j = running(&f, "checkpoint: {every_clocks: 4}");
  CHECK(j != NULL);
  CHECK_EQ_INT(pd_jobs_resume(f.jobs, j, 2.0, err, sizeof err), -PD_ESTATE);
  CHECK_STR_CONTAINS(err, "only a FAILED or CANCELLED job can be resumed");
  pd_jobs_finish(f.jobs, j, 3.0, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED,
                 "cancelled by the user");
  CHECK_EQ_INT(f.rec.ndrop, 2);
  CHECK_EQ_INT(pd_jobs_resume(f.jobs, j, 4.0, err, sizeof err), 0);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING);
  CHECK_STR_CONTAINS(j->message,
                     "resumed by the user after it was CANCELLED (cancelled by the user)");
  pd_jobs_cron(f.jobs, 4.1); /* its servers are alive, the workers idle again */
  CHECK_EQ_INT(f.rec.nrestore, 2);
  uint32_t pass = f.rec.restore[0].pass;
  pd_jobs_shard_restored(f.jobs, j->id, pass, 0, 8, NULL, 4.2);
  pd_jobs_shard_restored(f.jobs, j->id, pass, 1, 8, NULL, 4.2);
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING);
  CHECK_EQ_INT(j->start_clock, 8);
  CHECK_EQ_INT(pd_registry_find(f.reg, 3)->job[0] != '\0', 1);
  fixture_close(&f);

  fixture_init(&f);
  j = running(&f, "");
  CHECK(j != NULL);
  pd_jobs_finish(f.jobs, j, 3.0, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "a worker failed");
  CHECK_EQ_INT(pd_jobs_resume(f.jobs, j, 4.0, err, sizeof err), -PD_ESTATE);
  CHECK_STR_CONTAINS(err, "takes no checkpoints");
  CHECK_EQ_INT(j->state, PANDO__V1__JOB_STATE__JOB_STATE_FAILED);
  fixture_close(&f);
}

/* The workers' spans of the reports are kept and paged through worker by
 * worker (Coordinator.GetTrace): every span of the window once, pages of at
 * most `max`, the cursor 0 after the last, also when a page ends exactly at
 * a worker's last span. */
static void test_trace_pages(void) {
  fixture f;
  fixture_init(&f);
  pd_job *j = running(&f, "");
  CHECK(j != NULL);
  Pando__V1__TraceEvent events[10], *ptrs[10];
  for (uint32_t w = 0; w < 2; w++) {
    for (int i = 0; i < 10; i++) {
      pando__v1__trace_event__init(&events[i]);
      events[i].name = "push";
      events[i].clock = i;
      events[i].worker = w;
      ptrs[i] = &events[i];
    }
    Pando__V1__ProgressReport r = report(w, 1, 0);
    r.trace = ptrs;
    r.n_trace = w == 0 ? 10 : 6; /* worker 1: clocks 0..5 */
    CHECK_EQ_INT(pd_jobs_progress(f.jobs, j, &r, 2.0), 0);
  }
  /* pages of 4 over clocks >= 2: worker 0's 8 (two full pages, the second
   * ends at its last span), worker 1's 4 */
  Pando__V1__TraceEvent out[5], *optrs[5];
  uint64_t cursor = 0;
  int seen[2] = {0, 0}, pages = 0;
  int64_t next_clock[2] = {2, 2};
  do {
    size_t n = pd_job_trace_page(j, 2, -1, &cursor, 4, out, optrs);
    CHECK(n <= 4);
    for (size_t i = 0; i < n; i++) {
      uint32_t w = optrs[i]->worker;
      CHECK(w < 2);
      CHECK_EQ_INT(optrs[i]->clock, next_clock[w]++);
      seen[w]++;
    }
    pages++;
  } while (cursor != 0 && pages < 100);
  CHECK_EQ_INT(seen[0], 8);
  CHECK_EQ_INT(seen[1], 4);
  CHECK_EQ_INT(pages, 3);
  /* a window of clocks 3..4: a full page, then an empty last one (worker
   * 1's clock 5 was not looked at) */
  cursor = 0;
  CHECK_EQ_INT(pd_job_trace_page(j, 3, 4, &cursor, 4, out, optrs), 4);
  CHECK(cursor != 0);
  CHECK_EQ_INT(pd_job_trace_page(j, 3, 4, &cursor, 4, out, optrs), 0);
  CHECK_EQ_INT(cursor, 0);
  CHECK_EQ_INT(pd_job_trace_page(j, 3, 4, &cursor, 5, out, optrs), 4); /* room for all */
  CHECK_EQ_INT(cursor, 0);
  fixture_close(&f);
}

int main(int argc, char **argv) {
  PD_RUN(test_pending_until_wait_timeout);
  PD_RUN(test_assignment_and_running);
  PD_RUN(test_progress_and_success);
  PD_RUN(test_dead_node_fails_job);
  PD_RUN(test_create_failure);
  PD_RUN(test_misplaced_placed_again);
  PD_RUN(test_misplaced_waits);
  PD_RUN(test_dead_before_running);
  PD_RUN(test_worker_error_and_cancel);
  PD_RUN(test_federated_job);
  PD_RUN(test_federated_job_recovers);
  PD_RUN(test_server_death_recovers);
  PD_RUN(test_worker_death_and_deadline);
  PD_RUN(test_no_common_checkpoint_restarts);
  PD_RUN(test_no_checkpoint_fails);
  PD_RUN(test_retention);
  PD_RUN(test_admission);
  PD_RUN(test_restart_from_store);
  PD_RUN(test_resume);
  PD_RUN(test_trace_pages);
  PD_TEST_DONE();
}
