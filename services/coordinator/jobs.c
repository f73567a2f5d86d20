/* The job state machine, its server and worker assignment, and the shard
 * fan-out it asks for; see jobs.h. */
#include "jobs.h"

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

struct pd_jobs {
  pd_registry *reg;
  pd_jobs_fanout fanout;
  pd_jobs_federated federated;
  pd_job **jobs;
  size_t njobs, cap;
  uint64_t next_job;
  uint32_t keep_models, keep_jobs;
};

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

static void job_free(pd_job *j) {
  free(j->spec_yaml);
  free(j->server_ids);
  free(j->shard_begin);
  free(j->shard_end);
  free(j->workers);
  free(j->history);
  free(j);
}

void pd_jobs_free(pd_jobs *jobs) {
  if (!jobs)
    return;
  for (size_t i = 0; i < jobs->njobs; i++)
    job_free(jobs->jobs[i]);
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
  /* with backup workers, N + b workers run and each round takes N gradients */
  return (uint32_t)(spec->cluster.workers + spec->training.backup_workers);
}

/* What the largest of the job's shards (pd_plan_shards: ceil(keys / M)) takes. */
static uint64_t shard_bytes(const pd_job_spec *spec, uint64_t keys) {
  uint64_t m = (uint64_t)spec->cluster.servers;
  return pd_optimizer_shard_bytes(spec, (keys + m - 1) / m, job_workers(spec));
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

pd_job *pd_jobs_submit(pd_jobs *jobs, const pd_job_spec *spec, const char *spec_yaml, uint64_t keys,
                       uint64_t rows, double now) {
  if (jobs->njobs == jobs->cap) {
    jobs->cap = jobs->cap ? jobs->cap * 2 : 16;
    jobs->jobs = pd_xrealloc(jobs->jobs, jobs->cap * sizeof *jobs->jobs);
  }
  pd_job *j = pd_xcalloc(1, sizeof *j);
  snprintf(j->id, sizeof j->id, "%s-%llu", spec->name, (unsigned long long)jobs->next_job++);
  j->spec = *spec;
  j->spec_yaml = pd_xstrdup(spec_yaml);
  j->state = PANDO__V1__JOB_STATE__JOB_STATE_PENDING;
  j->submitted = now;
  j->keys = keys;
  j->train_rows = rows;
  j->nservers = (uint32_t)spec->cluster.servers;
  j->nworkers = job_workers(spec);
  j->shard_bytes = shard_bytes(spec, keys);
  if (!pd_job_federated(j))
    j->steps_per_epoch = pd_plan_partition_steps(rows, j->nworkers, spec->data.partition,
                                                 pd_schedule_batch_size(spec, 1));
  j->workers = pd_xcalloc(j->nworkers + 1, sizeof *j->workers);
  jobs->jobs[jobs->njobs++] = j;
  return j;
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
    }
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

/* Live servers with room for a shard of `j`. */
static size_t servers_with_room(pd_jobs *jobs, const pd_job *j) {
  size_t n = 0;
  for (size_t i = 0; i < pd_registry_count(jobs->reg); i++) {
    const pd_node *node = pd_registry_at(jobs->reg, i);
    n += node->role == PANDO__V1__ROLE__ROLE_SERVER && node->alive && has_room(jobs, node, j);
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
 * and idle workers in registration order, then creates its shards. The
 * caller has checked that there are enough. */
static void start_job(pd_jobs *jobs, pd_job *j) {
  pd_registry *reg = jobs->reg;
  j->server_ids = pd_xcalloc(j->nservers, sizeof *j->server_ids);
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
      if (n->role != PANDO__V1__ROLE__ROLE_SERVER || !n->alive || taken || !has_room(jobs, n, j))
        continue;
      size_t load = server_load(jobs, n->id);
      if (load < best_load) {
        best = n;
        best_load = load;
      }
    }
    j->server_ids[s] = best->id;
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
}

/* Once every shard exists, the workers get their assignments. */
static void maybe_run(pd_jobs *jobs, pd_job *j, double now) {
  if (j->state != PANDO__V1__JOB_STATE__JOB_STATE_PENDING || !j->server_ids || j->creating > 0 ||
      j->create_failed)
    return;
  j->state = PANDO__V1__JOB_STATE__JOB_STATE_RUNNING;
  j->started = now;
  j->message[0] = '\0';
  pd_registry_reassign(jobs->reg, j->id, 0);
  if (pd_job_federated(j)) {
    if (jobs->federated.start)
      jobs->federated.start(jobs->federated.ctx, j);
    return;
  }
  PD_INFO("job %s: RUNNING on %u servers and %u workers, %llu keys, %u steps per epoch", j->id,
          j->nservers, j->nworkers, (unsigned long long)j->keys, j->steps_per_epoch);
}

static void describe_missing(pd_jobs *jobs, const pd_job *j, char *out, size_t outlen) {
  size_t servers = pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_SERVER, 0);
  size_t workers = pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_WORKER, 1);
  size_t room = servers_with_room(jobs, j);
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

void pd_jobs_node_dead(pd_jobs *jobs, const pd_node *n, double now) {
  for (size_t k = 0; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    if (pd_job_state_final(j->state))
      continue;
    int involved = n->role == PANDO__V1__ROLE__ROLE_WORKER && strcmp(n->job, j->id) == 0;
    for (uint32_t s = 0; j->server_ids && s < j->nservers; s++)
      involved |= j->server_ids[s] == n->id;
    if (involved)
      pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                     "%s %s at %s stopped sending heartbeats (last seen %.1f s ago)",
                     n->role == PANDO__V1__ROLE__ROLE_SERVER ? "server" : "worker", n->name,
                     n->address, now - n->last_seen);
  }
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
               servers >= j->nservers && servers_with_room(jobs, j) < j->nservers;
  }
  for (; models > jobs->keep_models || (starved && models > 0); models--, starved = 0) {
    pd_job *j = jobs->jobs[oldest_finished(jobs, 1)];
    for (uint32_t s = 0; s < j->nservers; s++) {
      const pd_node *server = pd_registry_find(jobs->reg, j->server_ids[s]);
      if (server)
        jobs->fanout.drop_shard(jobs->fanout.ctx, j, s, server);
    }
    j->model_dropped = 1;
    size_t len = strlen(j->message);
    snprintf(j->message + len, sizeof j->message - len,
             "%sits model was dropped from the servers (%s)", len ? "; " : "",
             models > jobs->keep_models ? "the coordinator's keep_models keeps the newest "
                                          "succeeded jobs' models"
                                        : "a job waiting for memory needed its room");
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
    job_free(j);
    memmove(&jobs->jobs[k], &jobs->jobs[k + 1], (jobs->njobs - k - 1) * sizeof *jobs->jobs);
    jobs->njobs--;
  }
}

void pd_jobs_cron(pd_jobs *jobs, double now) {
  retain(jobs);
  for (size_t k = 0; k < jobs->njobs; k++) {
    pd_job *j = jobs->jobs[k];
    if (j->state != PANDO__V1__JOB_STATE__JOB_STATE_PENDING)
      continue;
    if (j->server_ids) {
      maybe_run(jobs, j, now);
      continue;
    }
    if (servers_with_room(jobs, j) >= j->nservers &&
        pd_registry_alive(jobs->reg, PANDO__V1__ROLE__ROLE_WORKER, 1) >= j->nworkers) {
      start_job(jobs, j);
      continue;
    }
    describe_missing(jobs, j, j->message, sizeof j->message);
    if (now - j->submitted > j->spec.cluster.wait_timeout_sec) {
      char why[400];
      describe_missing(jobs, j, why, sizeof why);
      pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED,
                     "cluster.wait_timeout (%g s) expired %s", j->spec.cluster.wait_timeout_sec,
                     why);
    }
  }
}

void pd_jobs_shard_created(pd_jobs *jobs, const char *id, const char *failure, double now) {
  pd_job *j = pd_jobs_find(jobs, id);
  if (!j)
    return;
  j->creating--;
  if (failure && !pd_job_state_final(j->state)) {
    j->create_failed = 1;
    pd_jobs_finish(jobs, j, now, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, "%s", failure);
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

int pd_jobs_progress(pd_jobs *jobs, pd_job *j, const Pando__V1__ProgressReport *req, double now) {
  PD_ASSERT(req->rank < j->nworkers);
  /* cancel: the job had ended before this report (not because of it) */
  int cancel = j->state != PANDO__V1__JOB_STATE__JOB_STATE_RUNNING &&
               j->state != PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
  if (j->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING) {
    pd_job_worker *p = &j->workers[req->rank];
    pd_node *n = pd_registry_find(jobs->reg, p->node_id);
    if (n)
      n->last_seen = now;
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
      r->seconds = now - j->started;
      PD_INFO("job %s: epoch %u: train loss %.4f, test accuracy %.4f, test loss %.4f", j->id,
              req->epoch, req->loss, req->test_accuracy, req->test_loss);
    }
    if (req->error[0]) {
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
