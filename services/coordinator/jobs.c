/* The job state machine, its server and worker assignment, and the shard
 * fan-out it asks for; see jobs.h. */
#include "jobs.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/optimizer.h"
#include "pando/plan.h"
#include "pando/rpc.h"
#include "pando/schedule.h"
#include "pando/util.h"
#include "recovery.h"
#include "store.h"

struct pd_jobs {
  pd_registry *reg;
  pd_jobs_fanout fanout;
  pd_jobs_federated federated;
  pd_job **jobs;
  size_t njobs, cap;
  uint64_t next_job;
  uint64_t next_seq;
  uint32_t keep_models, keep_jobs;
  pd_store *store; /* NULL: in memory only */
};

/* Writes `j` to the store, if there is one (an error is logged there; the
 * job goes on in memory). */
static void persist(pd_jobs *jobs, const pd_job *j) {
  if (jobs->store)
    pd_store_put_job(jobs->store, j, j->seq);
}

/* pando_jobs_finished_total of `state`. */
static pd_metric *finished_counter(Pando__V1__JobState state) {
  char labels[64];
  snprintf(labels, sizeof labels, "state=\"%s\"", pd_job_state_name(state));
  return pd_metric_counter("pando_jobs_finished_total", "Jobs that ended, by final state.", labels);
}

pd_jobs *pd_jobs_new(pd_registry *reg, const pd_jobs_fanout *fanout) {
  pd_jobs *jobs = pd_xcalloc(1, sizeof *jobs);
  jobs->reg = reg;
  jobs->fanout = *fanout;
  jobs->next_job = 1;
  jobs->keep_models = PD_JOBS_KEEP_MODELS;
  jobs->keep_jobs = PD_JOBS_KEEP_JOBS;
  /* Every final state's series from the start, at 0: an alert on
   * increase(pando_jobs_finished_total{state="FAILED"}[...]) then sees the
   * first failure too (a series born at 1 has no increase). */
  static const Pando__V1__JobState finals[] = {PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED,
                                               PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                                               PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED};
  for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++)
    finished_counter(finals[i]);
  return jobs;
}

void pd_jobs_set_retention(pd_jobs *jobs, uint32_t keep_models, uint32_t keep_jobs) {
  jobs->keep_models = keep_models;
  jobs->keep_jobs = keep_jobs;
}

void pd_jobs_job_free(pd_job *j) {
  free(j->orphaned);
  free(j->tried);
  free(j->spec_yaml);
  free(j->server_ids);
  free(j->shard_begin);
  free(j->shard_end);
  for (uint32_t w = 0; j->workers && w < j->nworkers; w++)
    pd_trace_close(&j->workers[w].trace);
  free(j->workers);
  free(j->history);
  free(j->round_history);
  free(j->server_names);
  free(j->restored);
  free(j);
}

void pd_jobs_free(pd_jobs *jobs) {
  if (!jobs)
    return;
  for (size_t i = 0; i < jobs->njobs; i++)
    pd_jobs_job_free(jobs->jobs[i]);
  free(jobs->jobs);
  free(jobs);
}

void pd_jobs_set_federated(pd_jobs *jobs, const pd_jobs_federated *federated) {
  jobs->federated = *federated;
}

int pd_job_federated(const pd_job *j) { return j->spec.training.update == PD_UPDATE_FEDAVG; }

pd_job *pd_jobs_find(pd_jobs *jobs, const char *id) {
  for (size_t i = 0; i < jobs->njobs; i++)
    if (strcmp(jobs->jobs[i]->id, id) == 0)
      return jobs->jobs[i];
  return NULL;
}

size_t pd_jobs_count(const pd_jobs *jobs) { return jobs->njobs; }

pd_job *pd_jobs_at(pd_jobs *jobs, size_t i) { return jobs->jobs[i]; }

int pd_job_state_final(Pando__V1__JobState s) {
  return s == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED ||
         s == PANDO__V1__JOB_STATE__JOB_STATE_FAILED ||
         s == PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED;
}

const char *pd_job_state_name(Pando__V1__JobState s) {
  return pd_rpc_enum_name(&pando__v1__job_state__descriptor, (int)s);
}

static uint32_t job_workers(const pd_job_spec *spec) {
  if (spec->training.update == PD_UPDATE_FEDAVG) /* devices come through the selectors */
    return 0;
  /* with backup workers, N + b workers run and each round takes N gradients;
   * a pipeline runs S places for each */
  return (uint32_t)(spec->cluster.workers + spec->training.backup_workers) *
         (uint32_t)PD_MAX(spec->cluster.stages, 1);
}

uint32_t pd_job_stages(const pd_job *j) { return (uint32_t)PD_MAX(j->spec.cluster.stages, 1); }

uint32_t pd_job_replicas(const pd_job *j) { return j->nworkers / pd_job_stages(j); }

/* What the largest of the job's shards (pd_plan_shards: ceil(keys / M)) takes. */
static uint64_t shard_bytes(const pd_job_spec *spec, uint64_t keys) {
  uint64_t m = (uint64_t)spec->cluster.servers;
  return pd_optimizer_shard_bytes(spec, (keys + m - 1) / m,
                                  job_workers(spec) / (uint32_t)PD_MAX(spec->cluster.stages, 1));
}

int pd_jobs_admit(pd_jobs *jobs, const pd_job_spec *spec, uint64_t keys, char *err, size_t errlen) {
  uint64_t need = shard_bytes(spec, keys), largest = 0;
  size_t alive = 0, fit = 0;
  for (size_t i = 0; i < pd_registry_count(jobs->reg); i++) {
    const pd_node *n = pd_registry_at(jobs->reg, i);
    if (n->role != PANDO__V1__ROLE__ROLE_SERVER || !n->alive)
      continue;
    if (n->memory_bytes == 0) /* it said nothing: it may hold anything */
      return 0;
    alive++;
    fit += n->memory_bytes >= need;
    largest = PD_MAX(largest, n->memory_bytes);
  }
  if (alive < (size_t)spec->cluster.servers || fit >= (size_t)spec->cluster.servers)
    return 0; /* more servers may register; or it fits */
  snprintf(err, errlen,
           "the job needs %.1f MiB on each of its %d servers (cluster.servers) for a shard of "
           "ceil(%llu / %d) parameters with their optimizer state, but %zu of the %zu registered "
           "servers have that much memory_limit (the largest has %.1f MiB)",
           (double)need / (1 << 20), spec->cluster.servers, (unsigned long long)keys,
           spec->cluster.servers, fit, alive, (double)largest / (1 << 20));
  return -1;
}

void pd_jobs_job_shape(pd_job *j) {
  j->nservers = (uint32_t)j->spec.cluster.servers;
  j->nworkers = job_workers(&j->spec);
  j->shard_bytes = shard_bytes(&j->spec, j->keys);
  j->workers = pd_xcalloc(j->nworkers + 1, sizeof *j->workers);
}

/* Appends `j` (taking ownership) to the jobs. */
static void add_job(pd_jobs *jobs, pd_job *j) {
  if (jobs->njobs == jobs->cap) {
    jobs->cap = jobs->cap ? jobs->cap * 2 : 16;
    jobs->jobs = pd_xrealloc(jobs->jobs, jobs->cap * sizeof *jobs->jobs);
  }
  j->seq = jobs->next_seq++;
  jobs->jobs[jobs->njobs++] = j;
}

pd_job *pd_jobs_submit(pd_jobs *jobs, const pd_job_spec *spec, const char *spec_yaml, uint64_t keys,
                       uint64_t rows, double now) {
  pd_job *j = pd_xcalloc(1, sizeof *j);
  snprintf(j->id, sizeof j->id, "%s-%llu", spec->name, (unsigned long long)jobs->next_job++);
  /* the counter first: even if the job's row were lost, its id is not
   * issued again */
  if (jobs->store)
    pd_store_set_counter(jobs->store, PD_STORE_NEXT_JOB, jobs->next_job);
  j->spec = *spec;
  j->spec_yaml = pd_xstrdup(spec_yaml);
  j->state = PANDO__V1__JOB_STATE__JOB_STATE_PENDING;
  j->submitted = now;
  j->keys = keys;
  j->train_rows = rows;
  pd_jobs_job_shape(j);
  if (!pd_job_federated(j))
    j->steps_per_epoch = pd_plan_partition_steps(rows, pd_job_replicas(j), spec->data.partition,
                                                 pd_schedule_batch_size(spec, 1));
  add_job(jobs, j);
  return j;
}

void pd_jobs_changed(pd_jobs *jobs, const pd_job *j) { persist(jobs, j); }

void pd_jobs_round_history(pd_jobs *jobs, pd_job *j, const Pando__V1__RoundRecord *records,
                           size_t n) {
  j->round_history = pd_xrealloc(j->round_history, (n + 1) * sizeof *records);
  memcpy(j->round_history, records, n * sizeof *records);
  j->nround_history = n;
  persist(jobs, j);
}

void pd_jobs_finish(pd_jobs *jobs, pd_job *j, double now, Pando__V1__JobState state,
                    const char *fmt, ...) {
  if (pd_job_state_final(j->state))
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->message, sizeof j->message, fmt, ap);
  va_end(ap);
  j->state = state;
  j->finished = now;
  pd_metric_add(finished_counter(state), 1);
  pd_registry_reassign(jobs->reg, j->id, 1);
  if (j->rounds && jobs->federated.stop)
    jobs->federated.stop(jobs->federated.ctx, j);
  /* A finished job's model stays on the servers; a failed or cancelled one
   * gives its memory back. */
  if (j->server_ids && state != PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED)
    for (uint32_t s = 0; s < j->nservers; s++) {
      const pd_node *server = pd_registry_find(jobs->reg, j->server_ids[s]);
      if (server)
        jobs->fanout.drop_shard(jobs->fanout.ctx, j, s, server);
      else if (j->reloaded) /* a server of before the restart: once it registers again */
        j->orphaned[s] = 1;
    }
  persist(jobs, j);
  PD_INFO("job %s: %s%s%s", j->id, pd_job_state_name(state), j->message[0] ? ": " : "", j->message);
}

/* Whether `j` holds a shard on a server: unfinished with servers, or
 * succeeded and its model kept. */
static int holds_shards(const pd_job *j) {
  if (!j->server_ids)
    return 0;
  if (pd_job_state_final(j->state))
    return j->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED && !j->model_dropped;
  return 1;
}

/* Whether server `n` has room for a shard of `j` besides the shards it holds. */
static int has_room(pd_jobs *jobs, const pd_node *n, const pd_job *j) {
  if (n->memory_bytes == 0)
    return 1;
  uint64_t held = 0;
  for (size_t i = 0; i < jobs->njobs; i++) {
    const pd_job *o = jobs->jobs[i];
    for (uint32_t s = 0; o != j && holds_shards(o) && s < o->nservers; s++)
      if (o->server_ids[s] == n->id)
        held += o->shard_bytes;
  }
  return held <= n->memory_bytes && j->shard_bytes <= n->memory_bytes - held;
}

/* The rule of avoided servers: a server a CreateShard of `j` failed on is
 * not used for `j` again while it is the same registration (node id) and,
 * when it was unreachable, has not heartbeated since the failure; a server
 * without room stays avoided. One declared dead is no candidate anyway, and
 * a server registering again under its name is a new node: both end it. */
static const pd_job_avoid *avoided(const pd_job *j, const pd_node *n) {
  for (size_t t = 0; t < j->ntried; t++) {
    const pd_job_avoid *a = &j->tried[t];
    if (a->node_id == n->id && (!a->unreachable || n->last_seen <= a->since))
      return a;
  }
  return NULL;
}

/* Whether a shard of `j` can go to node `n`: a live server with room, not
 * avoided for `j`. */
static int placeable(pd_jobs *jobs, const pd_node *n, const pd_job *j) {
  return n->role == PANDO__V1__ROLE__ROLE_SERVER && n->alive && has_room(jobs, n, j) &&
         !avoided(j, n);
}

/* Live servers with room for a shard of `j` (not avoided for it, if `avoid`). */
static size_t servers_with_room(pd_jobs *jobs, const pd_job *j, int avoid) {
  size_t n = 0;
  for (size_t i = 0; i < pd_registry_count(jobs->reg); i++) {
    const pd_node *node = pd_registry_at(jobs->reg, i);
    n += avoid
             ? placeable(jobs, node, j)
             : node->role == PANDO__V1__ROLE__ROLE_SERVER && node->alive && has_room(jobs, node, j);
  }
  return n;
}

/* Shards of unfinished or succeeded jobs that server `id` holds. */
static size_t server_load(pd_jobs *jobs, uint64_t id) {
  size_t load = 0;
  for (size_t i = 0; i < jobs->njobs; i++) {
    pd_job *j = jobs->jobs[i];
    if (pd_job_state_final(j->state) &&
        (j->state != PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED || j->model_dropped))
      continue;
    for (uint32_t s = 0; j->server_ids && s < j->nservers; s++)
      load += j->server_ids[s] == id;
  }
  return load;
}

/* Gives `j` the least loaded alive servers (the first registered on a tie)
 * it may be placed on (placeable: not avoided for it) and idle workers in
 * registration order, then creates its shards. The caller has checked that
 * there are enough. */
static void start_job(pd_jobs *jobs, pd_job *j) {
  pd_registry *reg = jobs->reg;
  j->server_ids = pd_xcalloc(j->nservers, sizeof *j->server_ids);
  j->server_names = pd_xcalloc(j->nservers, sizeof *j->server_names);
  j->shard_begin = pd_xcalloc(j->nservers, sizeof *j->shard_begin);
  j->shard_end = pd_xcalloc(j->nservers, sizeof *j->shard_end);
  for (uint32_t s = 0; s < j->nservers; s++) {
    pd_node *best = NULL;
    size_t best_load = SIZE_MAX;
    for (size_t i = 0; i < pd_registry_count(reg); i++) {
      pd_node *n = pd_registry_at(reg, i);
      int taken = 0;
      for (uint32_t k = 0; k < s; k++)
        taken |= j->server_ids[k] == n->id;
      if (taken || !placeable(jobs, n, j))
        continue;
      size_t load = server_load(jobs, n->id);
      if (load < best_load) {
        best = n;
        best_load = load;
      }
    }
    j->server_ids[s] = best->id;
    pd_strlcpy(j->server_names[s], best->name, sizeof j->server_names[s]);
  }
  pd_plan_shards(j->keys, j->nservers, j->shard_begin, j->shard_end);
  uint32_t rank = 0;
  for (size_t i = 0; i < pd_registry_count(reg) && rank < j->nworkers; i++) {
    pd_node *n = pd_registry_at(reg, i);
    if (!pd_node_idle_worker(n))
      continue;
    pd_strlcpy(n->job, j->id, sizeof n->job);
    n->rank = rank;
    j->workers[rank].node_id = n->id;
    rank++;
  }
  snprintf(j->message, sizeof j->message, "creating shards on %u servers", j->nservers);
  for (uint32_t s = 0; s < j->nservers && !pd_job_state_final(j->state); s++) {
    j->creating++;
    jobs->fanout.create_shard(jobs->fanout.ctx, j, s, pd_registry_find(reg, j->server_ids[s]));
  }
  if (!pd_job_state_final(j->state))
    persist(jobs, j);
}

/* Once every shard exists, the workers get their assignments. */
static void maybe_run(pd_jobs *jobs, pd_job *j, double now) {
  if (j->state != PANDO__V1__JOB_STATE__JOB_STATE_PENDING || !j->server_ids || j->creating > 0 ||
      j->create_failed || j->misplaced)
    return;
  j->state = PANDO__V1__JOB_STATE__JOB_STATE_RUNNING;
  j->started = now;
  j->message[0] = '\0';
  pd_registry_reassign(jobs->reg, j->id, 0);
  persist(jobs, j);
  if (pd_job_federated(j)) {
    if (jobs->federated.start)
      jobs->federated.start(jobs->federated.ctx, j);
    return;
  }
  PD_INFO("job %s: RUNNING on %u servers and %u workers, %llu keys, %u steps per epoch", j->id,
          j->nservers, j->nworkers, (unsigned long long)j->keys, j->steps_per_epoch);
}

/* Appends `text` to the list in `out` (", " between items). */
static void append_item(char *out, size_t outlen, const char *text) {
  size_t used = strlen(out);
  if (used < outlen)
    snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", text);
}

/* What PENDING `j`, not placed, waits for (in `out`). */
static void describe_missing(pd_jobs *jobs, const pd_job *j, char *out, size_t outlen) {
  size_t servers = pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_SERVER, 0);
  size_t workers = pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_WORKER, 1);
  size_t room = servers_with_room(jobs, j, 1);
  char avoid[700] = "";
  for (size_t i = 0; i < pd_registry_count(jobs->reg); i++) {
    const pd_node *n = pd_registry_at(jobs->reg, i);
    const pd_job_avoid *a = n->alive ? avoided(j, n) : NULL;
    if (!a)
      continue;
    char item[512];
    snprintf(item, sizeof item, "server %s at %s (%s)", n->name, n->address,
             a->unreachable ? "its CreateShard found it unreachable; until it heartbeats again "
                              "or is declared dead"
                            : "no room there");
    append_item(avoid, sizeof avoid, item);
  }
  if (j->undoing > 0) {
    snprintf(out, outlen,
             "its placement is being undone (%u DropShard calls in flight) to place it again "
             "without %s",
             j->undoing, avoid[0] ? avoid : "the servers it failed on");
    return;
  }
  if (avoid[0]) {
    snprintf(out, outlen,
             "waiting for %u servers it can be placed on and %u idle workers; %zu of the %zu live "
             "servers can take a shard and %zu idle workers are registered; not placed on %s",
             j->nservers, j->nworkers, room, servers, workers, avoid);
    return;
  }
  if (servers >= j->nservers && room < j->nservers && workers >= j->nworkers) {
    snprintf(out, outlen,
             "waiting for memory: each of its %u servers needs %.1f MiB free for its shard; %zu "
             "of the %zu servers have that much of their memory_limit free",
             j->nservers, (double)j->shard_bytes / (1 << 20), room, servers);
    return;
  }
  snprintf(out, outlen,
           "waiting for %u servers and %u idle workers; %zu servers and %zu idle workers are "
           "registered",
           j->nservers, j->nworkers, servers, workers);
}

/* What a job that cannot recover says after what killed it. */
#define NO_CHECKPOINT_HINT                                                                         \
  "; a checkpoint: key in the job spec (e.g. checkpoint: {every_clocks: 50}) would "               \
  "have let the job recover from this"

/* Something of RUNNING job `j` died (`why`): RECOVERING when the job can
 * recover (checkpoints, a restore path, recoveries left), else FAILED. The
 * workers learn of it through their assignment generation; until the roll
 * back their pulls and pushes fail or are aborted, and their reports are
 * answered with cancel. */
static void begin_recovery(pd_jobs *jobs, pd_job *j, double now, const char *why);
static void undo_placement(pd_jobs *jobs, pd_job *j);
static void recover(pd_jobs *jobs, pd_job *j, double now, const char *why) {
  if (!pd_recovery_possible(&j->spec) || !jobs->fanout.restore_shard) {
    pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "%s%s", why,
                   pd_recovery_possible(&j->spec) ? "" : NO_CHECKPOINT_HINT);
    return;
  }
  if (j->recoveries >= PD_RECOVERY_MAX) {
    pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                   "%s; the job recovered %u times in a row without getting past checkpoint "
                   "%llu, the most it may",
                   why, j->recoveries, (unsigned long long)j->start_clock);
    return;
  }
  begin_recovery(jobs, j, now, why);
}

/* Makes `j` RECOVERING because of `why`: recovering_cron then finds its
 * replacements and rolls every shard back. */
static void begin_recovery(pd_jobs *jobs, pd_job *j, double now, const char *why) {
  j->state = PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING;
  j->recoveries++;
  j->recover_since = now;
  j->retry_at = 0;
  j->restore_pass++; /* answers of an earlier pass are ignored */
  j->restoring = 0;
  pd_strlcpy(j->recover_why, why, sizeof j->recover_why);
  snprintf(j->message, sizeof j->message, "%s; recovering", why);
  if (!j->restored)
    j->restored = pd_xcalloc(j->nservers, sizeof *j->restored);
  pd_registry_reassign(jobs->reg, j->id, 0);
  if (j->rounds && jobs->federated.stop) /* resumed from the checkpoint once it is restored */
    jobs->federated.stop(jobs->federated.ctx, j);
  pd_metric_add(pd_metric_counter("pando_job_recoveries_total",
                                  "Times a job went RECOVERING after a server or worker died.", ""),
                1);
  persist(jobs, j);
  PD_WARN("job %s: RECOVERING: %s", j->id, why);
}

void pd_jobs_node_dead(pd_jobs *jobs, const pd_node *n, double now) {
  for (size_t k = 0; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    if (pd_job_state_final(j->state))
      continue;
    int involved = n->role == PANDO__V1__ROLE__ROLE_WORKER && strcmp(n->job, j->id) == 0;
    for (uint32_t s = 0; j->server_ids && s < j->nservers; s++)
      involved |= j->server_ids[s] == n->id;
    if (!involved)
      continue;
    char why[400];
    snprintf(why, sizeof why, "%s %s at %s stopped sending heartbeats (last seen %.1f s ago)",
             n->role == PANDO__V1__ROLE__ROLE_SERVER ? "server" : "worker", n->name, n->address,
             now - n->last_seen);
    if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING) {
      recover(jobs, j, now, why);
    } else if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_PENDING && j->server_ids) {
      /* it has not run yet: placed again without the dead node */
      snprintf(j->misplaced_why, sizeof j->misplaced_why, "%s before the job ran", why);
      j->misplaced = 1;
      if (j->creating == 0)
        undo_placement(jobs, j);
    } else if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING)
      PD_WARN("job %s: while recovering, %s", j->id, why); /* the cron replaces it too */
    else
      pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "%s", why);
  }
}

/* The alive server named `name`, or NULL. */
static pd_node *alive_server_named(pd_registry *reg, const char *name) {
  for (size_t i = 0; i < pd_registry_count(reg); i++) {
    pd_node *m = pd_registry_at(reg, i);
    if (m->role == PANDO__V1__ROLE__ROLE_SERVER && m->alive && strcmp(m->name, name) == 0)
      return m;
  }
  return NULL;
}

/* Fills the dead servers' and workers' places of RECOVERING `j` with the
 * nodes that registered: a server of the same name (a restarted pod keeps
 * its name and data_dir), an idle worker (in registration order) for a
 * dead worker's rank. Returns 1 when every place is filled, else 0 with
 * what is missing in `missing`. */
static int fill_places(pd_jobs *jobs, pd_job *j, char *missing, size_t len) {
  pd_registry *reg = jobs->reg;
  char item[200];
  missing[0] = '\0';
  for (uint32_t s = 0; s < j->nservers; s++) {
    pd_node *n = pd_registry_find(reg, j->server_ids[s]);
    if (n && n->alive)
      continue;
    pd_node *same = alive_server_named(reg, j->server_names[s]);
    if (same) {
      PD_INFO("job %s: server %s registered again at %s (node %llu): it takes shard %u", j->id,
              same->name, same->address, (unsigned long long)same->id, s);
      j->server_ids[s] = same->id;
      continue;
    }
    snprintf(item, sizeof item, "server %s to register again (the same name, its data_dir kept)",
             j->server_names[s]);
    append_item(missing, len, item);
  }
  for (uint32_t r = 0; r < j->nworkers; r++) {
    pd_node *n = pd_registry_find(reg, j->workers[r].node_id);
    if (n && n->alive && strcmp(n->job, j->id) == 0 && n->rank == r)
      continue;
    pd_node *idle = NULL;
    for (size_t i = 0; i < pd_registry_count(reg) && !idle; i++)
      if (pd_node_idle_worker(pd_registry_at(reg, i)))
        idle = pd_registry_at(reg, i);
    if (idle) {
      PD_INFO("job %s: worker %s (node %llu) takes rank %u", j->id, idle->name,
              (unsigned long long)idle->id, r);
      pd_strlcpy(idle->job, j->id, sizeof idle->job);
      idle->rank = r;
      j->workers[r].node_id = idle->id;
      continue;
    }
    snprintf(item, sizeof item, "an idle worker to take rank %u", r);
    append_item(missing, len, item);
  }
  return missing[0] == '\0';
}

/* Whether restore pass to `target` goes to shard `s`: a shard that answered
 * checkpoint `target` > 0 in the last pass is there already. */
static int restore_to(const pd_job *j, uint32_t s, uint64_t target) {
  return target == PD_RECOVERY_NEWEST || target == 0 || j->restored[s] != target;
}

/* Sends restore pass `j->restore_pass` to `target` (0: the shards made anew
 * from the model's seed) to the shards restore_to() picks. */
static void restore_pass(pd_jobs *jobs, pd_job *j, uint64_t target) {
  uint32_t pass = j->restore_pass, send = 0;
  j->restore_failed = 0;
  j->restore_target = target;
  for (uint32_t s = 0; s < j->nservers; s++)
    send += restore_to(j, s, target);
  j->restoring = send;
  if (target == PD_RECOVERY_NEWEST)
    snprintf(j->message, sizeof j->message, "%s; rolling every shard back to its newest checkpoint",
             j->recover_why);
  else if (target == 0)
    snprintf(j->message, sizeof j->message,
             "%s; no checkpoint that every shard holds: starting the job again from the "
             "model's seed",
             j->recover_why);
  else
    snprintf(j->message, sizeof j->message, "%s; rolling every shard back to checkpoint %llu",
             j->recover_why, (unsigned long long)target);
  for (uint32_t s = 0; s < j->nservers && pass == j->restore_pass; s++)
    if (restore_to(j, s, target))
      jobs->fanout.restore_shard(jobs->fanout.ctx, j, s,
                                 pd_registry_find(jobs->reg, j->server_ids[s]), target, pass);
}

/* A RECOVERING job's periodic work: its deadline, its replacements, the
 * start of its roll back. */
static void recovering_cron(pd_jobs *jobs, pd_job *j, double now) {
  if (now - j->recover_since > j->spec.cluster.wait_timeout_sec) {
    pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                   "cluster.wait_timeout (%g s) expired while recovering: %s",
                   j->spec.cluster.wait_timeout_sec, j->message);
    return;
  }
  if (j->restoring > 0 || now < j->retry_at)
    return;
  char missing[400];
  if (!fill_places(jobs, j, missing, sizeof missing)) {
    snprintf(j->message, sizeof j->message, "%s; waiting for %s", j->recover_why, missing);
    return;
  }
  j->restore_pass++;
  restore_pass(jobs, j, PD_RECOVERY_NEWEST);
}

void pd_jobs_shard_restored(pd_jobs *jobs, const char *id, uint32_t pass, uint32_t shard,
                            uint64_t checkpoint, const char *failure, double now) {
  pd_job *j = pd_jobs_find(jobs, id);
  if (j && !failure && shard < j->nservers && pd_job_state_final(j->state) &&
      j->state != PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED) {
    /* it ended (cancelled, deadline) while this shard was being made: drop it again */
    const pd_node *server = pd_registry_find(jobs->reg, j->server_ids[shard]);
    if (server)
      jobs->fanout.drop_shard(jobs->fanout.ctx, j, shard, server);
    return;
  }
  if (!j || j->state != PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING || pass != j->restore_pass ||
      shard >= j->nservers || j->restoring == 0)
    return;
  j->restoring--;
  if (failure) {
    j->restore_failed = 1;
    pd_strlcpy(j->restore_error, failure, sizeof j->restore_error);
  } else {
    j->restored[shard] = checkpoint;
  }
  if (j->restoring > 0)
    return;
  if (j->restore_failed) { /* e.g. the dead server not declared dead yet: again in a second */
    snprintf(j->message, sizeof j->message, "%s; the roll back failed (retrying): %s",
             j->recover_why, j->restore_error);
    j->retry_at = now + 1.0;
    return;
  }
  int agreed = 0;
  uint64_t cut = pd_recovery_cut(j->restored, j->nservers, j->restore_target, &agreed);
  if (!agreed) {
    j->restore_pass++;
    restore_pass(jobs, j, cut);
    return;
  }
  /* every shard is at checkpoint `cut`: the workers redo their clocks from it */
  if (cut > j->start_clock) /* it got past the last roll back's checkpoint: count anew */
    j->recoveries = 1;
  j->state = PANDO__V1__JOB_STATE__JOB_STATE_RUNNING;
  j->attempt++;
  j->start_clock = cut;
  j->message[0] = '\0';
  for (uint32_t w = 0; w < j->nworkers; w++) {
    pd_job_worker *p = &j->workers[w];
    p->done = 0;
    p->step = 0;
    p->samples_per_sec = 0;
  }
  pd_registry_reassign(jobs->reg, j->id, 0);
  persist(jobs, j);
  if (pd_job_federated(j) && jobs->federated.start) /* the rounds go on from the checkpoint's */
    jobs->federated.start(jobs->federated.ctx, j);
  PD_INFO("job %s: RUNNING again from checkpoint %llu%s (attempt %u) after %.1f s of recovery "
          "from: %s",
          j->id, (unsigned long long)cut, cut ? "" : " (the start)", j->attempt,
          now - j->recover_since, j->recover_why);
}

/* The finished job (with a model on the servers, if `with_model`) that
 * finished first, or SIZE_MAX. */
static size_t oldest_finished(pd_jobs *jobs, int with_model) {
  size_t best = SIZE_MAX;
  for (size_t k = 0; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    if (!pd_job_state_final(j->state))
      continue;
    if (with_model && (j->state != PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED || !j->server_ids ||
                       j->model_dropped))
      continue;
    if (best == SIZE_MAX || j->finished < jobs->jobs[best]->finished)
      best = k;
  }
  return best;
}

/* keep_models and keep_jobs (pd_jobs_set_retention). */
static void retain(pd_jobs *jobs) {
  size_t models = 0, finished = 0, starved = 0;
  size_t servers = pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_SERVER, 0);
  for (size_t k = 0; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    finished += pd_job_state_final(j->state) != 0;
    models +=
        j->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED && j->server_ids && !j->model_dropped;
    /* a job waiting for memory that finished models hold gets it: one model a cron */
    starved |= j->state == PANDO__V1__JOB_STATE__JOB_STATE_PENDING && !j->server_ids &&
               servers >= j->nservers && servers_with_room(jobs, j, 0) < j->nservers;
  }
  for (; models > jobs->keep_models || (starved && models > 0); models--, starved = 0) {
    pd_job *j = jobs->jobs[oldest_finished(jobs, 1)];
    for (uint32_t s = 0; s < j->nservers; s++) {
      const pd_node *server = pd_registry_find(jobs->reg, j->server_ids[s]);
      if (server)
        jobs->fanout.drop_shard(jobs->fanout.ctx, j, s, server);
      else if (j->reloaded) /* a server of before the restart: once it registers again */
        j->orphaned[s] = 1;
    }
    j->model_dropped = 1;
    size_t len = strlen(j->message);
    snprintf(j->message + len, sizeof j->message - len,
             "%sits model was dropped from the servers (%s)", len ? "; " : "",
             models > jobs->keep_models ? "the coordinator's keep_models keeps the newest "
                                          "succeeded jobs' models"
                                        : "a job waiting for memory needed its room");
    persist(jobs, j);
    PD_INFO("job %s: model dropped from its %u servers (%s)", j->id, j->nservers,
            models > jobs->keep_models ? "keep_models" : "a pending job needs the memory");
  }
  for (; finished > jobs->keep_jobs; finished--) {
    size_t k = oldest_finished(jobs, 0);
    pd_job *j = jobs->jobs[k];
    if (j->rounds && (!jobs->federated.forget || jobs->federated.forget(jobs->federated.ctx, j)))
      return; /* its rounds' calls are in flight: at a later cron */
    if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED && j->server_ids && !j->model_dropped)
      for (uint32_t s = 0; s < j->nservers; s++) {
        const pd_node *server = pd_registry_find(jobs->reg, j->server_ids[s]);
        if (server)
          jobs->fanout.drop_shard(jobs->fanout.ctx, j, s, server);
      }
    PD_DEBUG("job %s: forgotten (keep_jobs %u)", j->id, jobs->keep_jobs);
    if (jobs->store)
      pd_store_delete_job(jobs->store, j->id);
    pd_jobs_job_free(j);
    memmove(&jobs->jobs[k], &jobs->jobs[k + 1], (jobs->njobs - k - 1) * sizeof *jobs->jobs);
    jobs->njobs--;
  }
}

/* A finished job loaded at the restart, holding shards on servers of
 * before it: each server of its shard's name that registers again gets the
 * shard dropped (a failed or cancelled job's), or is its shard's server
 * again (a succeeded job's kept model: status and export find it). */
static void reloaded_cron(pd_jobs *jobs, pd_job *j) {
  int changed = 0;
  for (uint32_t s = 0; s < j->nservers; s++) {
    const pd_node *n = pd_registry_find(jobs->reg, j->server_ids[s]);
    if ((n && n->alive) || (!j->orphaned[s] && !holds_shards(j)))
      continue;
    pd_node *same = alive_server_named(jobs->reg, j->server_names[s]);
    if (!same)
      continue;
    j->server_ids[s] = same->id;
    changed = 1;
    if (j->orphaned[s]) {
      PD_INFO("job %s: dropping its shard %u from server %s, registered again after the "
              "coordinator restarted",
              j->id, s, same->name);
      jobs->fanout.drop_shard(jobs->fanout.ctx, j, s, same);
      j->orphaned[s] = 0;
    }
  }
  if (changed)
    persist(jobs, j);
}

void pd_jobs_cron(pd_jobs *jobs, double now) {
  retain(jobs);
  for (size_t k = 0; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    if (j->reloaded && j->server_ids && pd_job_state_final(j->state))
      reloaded_cron(jobs, j);
    if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_RECOVERING)
      recovering_cron(jobs, j, now);
    if (j->state != PANDO__V1__JOB_STATE__JOB_STATE_PENDING)
      continue;
    if (j->server_ids) {
      maybe_run(jobs, j, now);
      continue;
    }
    if (j->undoing == 0 && servers_with_room(jobs, j, 1) >= j->nservers &&
        pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_WORKER, 1) >= j->nworkers) {
      start_job(jobs, j);
      continue;
    }
    describe_missing(jobs, j, j->message, sizeof j->message);
    if (now - j->submitted > j->spec.cluster.wait_timeout_sec) {
      char why[sizeof j->message], tried[sizeof j->message] = "";
      describe_missing(jobs, j, why, sizeof why);
      for (size_t t = 0; t < j->ntried; t++)
        append_item(tried, sizeof tried, j->tried[t].why);
      pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                     "cluster.wait_timeout (%g s) expired %s%s%s", j->spec.cluster.wait_timeout_sec,
                     why, tried[0] ? "; the placements it tried failed: " : "", tried);
    }
  }
}

/* Undoes the placement of `j`, misplaced and with every CreateShard
 * answered: DropShard to each of its servers (the failed one too: a
 * DEADLINE_EXCEEDED shard may exist), its workers released, its servers
 * forgotten; PENDING again, pd_jobs_cron places it anew once the drops are
 * answered (pd_jobs_shard_dropped). */
static void undo_placement(pd_jobs *jobs, pd_job *j) {
  char names[400] = "";
  for (uint32_t s = 0; s < j->nservers; s++) {
    const pd_node *server = pd_registry_find(jobs->reg, j->server_ids[s]);
    append_item(names, sizeof names, j->server_names[s]);
    if (!server || !server->alive) /* declared dead: it holds nothing after its restart */
      continue;
    j->undoing++; /* first: the answer may come at once */
    jobs->fanout.drop_shard(jobs->fanout.ctx, j, s, server);
  }
  pd_registry_reassign(jobs->reg, j->id, 1);
  for (uint32_t w = 0; w < j->nworkers; w++)
    j->workers[w].node_id = 0;
  free(j->server_ids);
  free(j->server_names);
  free(j->shard_begin);
  free(j->shard_end);
  free(j->orphaned);
  j->server_ids = NULL;
  j->server_names = NULL;
  j->orphaned = NULL;
  j->shard_begin = j->shard_end = NULL;
  j->misplaced = 0;
  describe_missing(jobs, j, j->message, sizeof j->message);
  persist(jobs, j);
  PD_WARN("job %s: placement on %s undone (%s): PENDING again", j->id, names, j->misplaced_why);
}

void pd_jobs_shard_misplaced(pd_jobs *jobs, const char *id, uint64_t server_id, int unreachable,
                             const char *why, double now) {
  pd_job *j = pd_jobs_find(jobs, id);
  if (!j)
    return;
  j->creating--;
  if (pd_job_state_final(j->state))
    return;
  const pd_node *n = pd_registry_find(jobs->reg, server_id);
  pd_job_avoid *a = NULL;
  for (size_t t = 0; t < j->ntried && !a; t++)
    if (j->tried[t].node_id == server_id)
      a = &j->tried[t];
  if (!a) {
    j->tried = pd_xrealloc(j->tried, (j->ntried + 1) * sizeof *j->tried);
    a = &j->tried[j->ntried++];
  }
  memset(a, 0, sizeof *a);
  a->node_id = server_id;
  pd_strlcpy(a->name, n ? n->name : "?", sizeof a->name);
  pd_strlcpy(a->address, n ? n->address : "?", sizeof a->address);
  a->since = now;
  a->unreachable = unreachable;
  pd_strlcpy(a->why, why, sizeof a->why);
  if (!unreachable && servers_with_room(jobs, j, 1) < j->nservers) {
    j->create_failed = 1;
    pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                   "%s; no other live server has room for the shard", why);
    return;
  }
  PD_WARN("job %s: %s; placing it again without server %s", j->id, why, a->name);
  pd_strlcpy(j->misplaced_why, why, sizeof j->misplaced_why);
  j->misplaced = 1;
  if (j->creating == 0 && !j->create_failed)
    undo_placement(jobs, j);
}

void pd_jobs_shard_dropped(pd_jobs *jobs, const char *id) {
  pd_job *j = pd_jobs_find(jobs, id);
  if (j && j->undoing > 0)
    j->undoing--;
}

void pd_jobs_shard_created(pd_jobs *jobs, const char *id, const char *failure, double now) {
  pd_job *j = pd_jobs_find(jobs, id);
  if (!j)
    return;
  j->creating--;
  if (failure && !pd_job_state_final(j->state)) {
    j->create_failed = 1;
    pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "%s", failure);
  } else if (j->misplaced && j->creating == 0 && !pd_job_state_final(j->state)) {
    undo_placement(jobs, j);
  }
}

/* Job progress as Prometheus gauges, labelled by job (and by rank). */
static void export_progress(const pd_job *j, const Pando__V1__ProgressReport *req) {
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\",rank=\"%u\"", j->id, req->rank);
  pd_metric_set(pd_metric_gauge("pando_job_epoch", "Epoch a worker is in (1-based).", labels),
                req->epoch);
  pd_metric_set(pd_metric_gauge("pando_job_step", "Steps a worker has done in its epoch.", labels),
                (double)req->step);
  pd_metric_set(
      pd_metric_gauge("pando_job_loss", "Mean training loss reported by a worker.", labels),
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

/* Keeps the report's phase counters (pandoctl stats), the first
 * PD_JOB_PHASES_MAX of them, and its trace spans (pandoctl trace). */
static void keep_phases(pd_job_worker *p, const Pando__V1__ProgressReport *req) {
  p->nphases = PD_MIN(req->n_phases, (size_t)PD_JOB_PHASES_MAX);
  p->wall_ns = req->wall_ns;
  for (size_t i = 0; i < p->nphases; i++) {
    pando__v1__phase_stat__init(&p->phases[i]);
    pd_strlcpy(p->phase_names[i], req->phases[i]->phase, sizeof p->phase_names[i]);
    p->phases[i].phase = p->phase_names[i];
    p->phases[i].count = req->phases[i]->count;
    p->phases[i].total_ns = req->phases[i]->total_ns;
  }
  if (req->n_trace && !pd_trace_on(&p->trace))
    pd_trace_init(&p->trace, PD_JOB_TRACE_EVENTS);
  for (size_t i = 0; i < req->n_trace; i++)
    pd_trace_add(&p->trace, req->trace[i]);
  p->trace_dropped += req->trace_dropped;
}

/* A GetTrace cursor: the worker (rank) in the high bits, the sequence number
 * of its next span (pd_trace_fill) in the low TRACE_SEQ_BITS. */
#define TRACE_SEQ_BITS 40
#define TRACE_SEQ_MASK ((UINT64_C(1) << TRACE_SEQ_BITS) - 1)

size_t pd_job_trace_page(const pd_job *j, int64_t from_clock, int64_t to_clock, uint64_t *cursor,
                         size_t max, Pando__V1__TraceEvent *out, Pando__V1__TraceEvent **ptrs) {
  uint64_t w = *cursor >> TRACE_SEQ_BITS, seq = *cursor & TRACE_SEQ_MASK;
  size_t filled = 0;
  *cursor = 0;
  for (; j->workers && w < j->nworkers; w++, seq = 0) {
    const pd_trace *trace = &j->workers[w].trace;
    filled +=
        pd_trace_fill(trace, from_clock, to_clock, &seq, max - filled, out + filled, ptrs + filled);
    if (seq < trace->added) { /* the page is full before this worker's last span */
      *cursor = w << TRACE_SEQ_BITS | (seq & TRACE_SEQ_MASK);
      break;
    }
    if (filled == max) { /* full at this worker's last span: the next page starts at the next */
      *cursor = w + 1 < j->nworkers ? (w + 1) << TRACE_SEQ_BITS : 0;
      break;
    }
  }
  return filled;
}

int pd_jobs_progress(pd_jobs *jobs, pd_job *j, const Pando__V1__ProgressReport *req, double now) {
  PD_ASSERT(req->rank < j->nworkers);
  /* cancel: the job had ended before this report (not because of it) */
  int cancel = j->state != PANDO__V1__JOB_STATE__JOB_STATE_RUNNING &&
               j->state != PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
  if (req->attempt != j->attempt) /* a training rolled back since: it stops */
    return 1;
  if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING) {
    pd_job_worker *p = &j->workers[req->rank];
    pd_node *n = pd_registry_find(jobs->reg, p->node_id);
    if (n)
      n->last_seen = now;
    /* a replayed epoch end (NaN: its batches' losses are gone) keeps the
     * loss this rank last reported in that epoch, when there is one */
    double known = p->epoch == req->epoch ? p->loss : NAN;
    p->epoch = req->epoch;
    p->step = req->step;
    if (!isnan(req->loss))
      p->loss = req->loss;
    p->samples_per_sec = req->samples_per_sec;
    keep_phases(p, req);
    export_progress(j, req);
    if (req->has_eval && (j->nhistory == 0 || j->history[j->nhistory - 1].epoch < req->epoch)) {
      j->history = pd_xrealloc(j->history, (j->nhistory + 1) * sizeof *j->history);
      Pando__V1__EpochRecord *r = &j->history[j->nhistory++];
      pando__v1__epoch_record__init(r);
      r->epoch = req->epoch;
      r->train_loss = isnan(req->loss) ? known : req->loss;
      r->test_accuracy = req->test_accuracy;
      r->test_loss = req->test_loss;
      r->test_rmse = req->test_rmse;
      r->seconds = now - j->started;
      PD_INFO("job %s: epoch %u: train loss %.4f, test accuracy %.4f, test loss %.4f", j->id,
              req->epoch, r->train_loss, req->test_accuracy, req->test_loss);
      persist(jobs, j);
    }
    if (req->error[0] && req->unreachable) { /* a server may have died */
      char why[400];
      snprintf(why, sizeof why, "worker %u (%s): %s", req->rank, n ? n->name : "?", req->error);
      recover(jobs, j, now, why);
      return 1;
    } else if (req->error[0]) {
      pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "worker %u (%s): %s",
                     req->rank, n ? n->name : "?", req->error);
    } else if (req->done && !p->done) {
      p->done = 1;
      int all = 1;
      for (uint32_t w = 0; w < j->nworkers; w++)
        all &= j->workers[w].done;
      if (all)
        pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED, "%s", "");
    }
  }
  return cancel || j->state == PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED;
}

/* What a job that was placed says once the coordinator restarted. */
#define RESTARTED "the coordinator restarted while the job was %s"

/* A job just loaded from the store (see pd_jobs_reload). */
static void restarted(pd_jobs *jobs, pd_job *j, double now) {
  j->reloaded = 1;
  if (pd_job_state_final(j->state))
    return;
  if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_PENDING && !j->server_ids) {
    j->submitted = now; /* it waits its cluster.wait_timeout again */
    return;
  }
  char why[400];
  snprintf(why, sizeof why, RESTARTED, pd_job_state_name(j->state));
  j->creating = 0;
  if (pd_recovery_possible(&j->spec) && jobs->fanout.restore_shard) {
    j->state = PANDO__V1__JOB_STATE__JOB_STATE_RUNNING; /* recover() starts from RUNNING */
    recover(jobs, j, now, why);
    return;
  }
  pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "%s%s", why,
                 "; a checkpoint: key in the job spec (e.g. checkpoint: {every_clocks: 50}) "
                 "would have let it continue");
}

/* pd_store_load_jobs' callback. */
static void loaded(void *ctx, pd_job *j) { add_job(ctx, j); }

int pd_jobs_reload(pd_jobs *jobs, pd_store *store, double now, char *err, size_t errlen) {
  jobs->store = store;
  if (pd_store_counter(store, PD_STORE_NEXT_JOB, &jobs->next_job) != 0)
    return pd_errf(err, errlen, -EIO, "cannot read the job id counter (see the log)");
  size_t before = jobs->njobs;
  int rc = pd_store_load_jobs(store, loaded, jobs, err, errlen);
  if (rc != 0)
    return rc;
  for (size_t k = before; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    Pando__V1__JobState was = j->state;
    restarted(jobs, j, now);
    PD_INFO("job %s: reloaded, %s%s%s", j->id, pd_job_state_name(was),
            was == j->state ? "" : " -> ", was == j->state ? "" : pd_job_state_name(j->state));
  }
  return 0;
}

int pd_jobs_resume(pd_jobs *jobs, pd_job *j, double now, char *err, size_t errlen) {
  if (j->state != PANDO__V1__JOB_STATE__JOB_STATE_FAILED &&
      j->state != PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED)
    return pd_errf(err, errlen, -PD_ESTATE,
                   "job %s is %s: only a FAILED or CANCELLED job can be resumed", j->id,
                   pd_job_state_name(j->state));
  if (!pd_recovery_possible(&j->spec) || !jobs->fanout.restore_shard)
    return pd_errf(err, errlen, -PD_ESTATE,
                   "job %s takes no checkpoints (its spec has no checkpoint: key): there is "
                   "nothing to resume it from; submit it again",
                   j->id);
  if (!j->server_ids)
    return pd_errf(err, errlen, -PD_ESTATE,
                   "job %s never started (it ended before it had servers): submit it again", j->id);
  char why[sizeof j->recover_why];
  snprintf(why, sizeof why, "resumed by the user after it was %s%s%.300s%s",
           pd_job_state_name(j->state), j->message[0] ? " (" : "", j->message,
           j->message[0] ? ")" : "");
  for (uint32_t s = 0; j->orphaned && s < j->nservers; s++)
    j->orphaned[s] = 0; /* the roll back makes the shard again */
  j->finished = 0;
  j->recoveries = 0; /* a resume gives it its PD_RECOVERY_MAX again */
  begin_recovery(jobs, j, now, why);
  return 0;
}
