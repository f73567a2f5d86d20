/* The coordinator's jobs and their state machine:
 *
 *   PENDING --(enough alive servers and idle workers)--> shards being created
 *           --(every CreateShard answered OK)----------> RUNNING
 *   RUNNING --(every worker reported done)-------------> SUCCEEDED
 *   any non-final state --(a node of the job died, a CreateShard or a worker
 *           failed, cluster.wait_timeout expired)------> FAILED
 *   any non-final state --(CancelJob)------------------> CANCELLED
 *
 * Starting a job picks its servers (the least loaded alive ones) and workers
 * (idle ones, ranked in the order they registered) and fans CreateShard out
 * to the servers; a FAILED or CANCELLED job's shards are dropped. The calls
 * themselves are made through a pd_jobs_fanout (fanout.h in the daemon; a
 * recorder in the unit tests), which reports each CreateShard's result back
 * with pd_jobs_shard_created. Times are passed in. */
#ifndef PANDO_COORD_JOBS_H
#define PANDO_COORD_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"
#include "pando/spec.h"
#include "registry.h"

typedef struct pd_job_worker { /* one rank's last progress report */
  uint64_t node_id;
  uint32_t epoch;
  uint64_t step;
  double loss;
  double samples_per_sec;
  int done;
} pd_job_worker;

typedef struct pd_job {
  char id[PD_JOB_ID_MAX]; /* "<name>-<n>" */
  pd_job_spec spec;
  char *spec_yaml;    /* as submitted; handed to servers and workers */
  char job_token[80]; /* hex, for this job alone (README "Security"); "": none */
  Pando__V1__JobState state;
  char message[512]; /* what it waits for, or why it ended */
  double submitted, started, finished;
  uint64_t keys;       /* model parameters */
  uint64_t train_rows; /* rows of the training set */
  uint32_t steps_per_epoch;
  uint32_t nservers, nworkers;       /* nworkers includes backup workers */
  uint64_t *server_ids;              /* nservers, once started; NULL before */
  uint64_t *shard_begin, *shard_end; /* the key range of each server */
  pd_job_worker *workers;            /* nworkers, by rank */
  int creating;                      /* CreateShard calls in flight */
  int create_failed;
  Pando__V1__EpochRecord *history; /* one per evaluated epoch */
  size_t nhistory;
  struct pd_rounds *rounds; /* training.update fedavg, once RUNNING: its rounds (rounds.c) */
} pd_job;

/* Whether `job` is federated (training.update fedavg): it has no workers; a
 * selector's devices train it in rounds once it is RUNNING. */
int pd_job_federated(const pd_job *job);

/* How the jobs reach the servers. `create_shard` sends CreateShard for shard
 * `shard` of `job` to `server` and later (or at once, if the call cannot
 * start) calls pd_jobs_shard_created; `drop_shard` sends DropShard. */
typedef struct pd_jobs_fanout {
  void (*create_shard)(void *ctx, const pd_job *job, uint32_t shard, const pd_node *server);
  void (*drop_shard)(void *ctx, const pd_job *job, uint32_t shard, const pd_node *server);
  void *ctx;
} pd_jobs_fanout;

typedef struct pd_jobs pd_jobs;

/* Where federated jobs' rounds run (rounds.c in the daemon): `start` when a
 * fedavg job becomes RUNNING (it sets job->rounds), `stop` when it ends
 * otherwise (failed, cancelled). */
typedef struct pd_jobs_federated {
  void (*start)(void *ctx, pd_job *job);
  void (*stop)(void *ctx, pd_job *job);
  void *ctx;
} pd_jobs_federated;
/* Sets them (copied); without, fedavg jobs stay RUNNING with no rounds. */
void pd_jobs_set_federated(pd_jobs *jobs, const pd_jobs_federated *federated);

/* Jobs whose nodes are in `reg` (borrowed) and whose shard calls go through
 * `fanout` (copied). */
pd_jobs *pd_jobs_new(pd_registry *reg, const pd_jobs_fanout *fanout);
void pd_jobs_free(pd_jobs *jobs);

/* Adds a PENDING job of a valid `spec` (its text `spec_yaml`, copied) with
 * `keys` parameters and `rows` training rows, submitted at `now`. */
pd_job *pd_jobs_submit(pd_jobs *jobs, const pd_job_spec *spec, const char *spec_yaml, uint64_t keys,
                       uint64_t rows, double now);
/* The job of `id`, or NULL. */
pd_job *pd_jobs_find(pd_jobs *jobs, const char *id);
/* The jobs in the order they were submitted. */
size_t pd_jobs_count(const pd_jobs *jobs);
pd_job *pd_jobs_at(pd_jobs *jobs, size_t i);

/* Whether `state` is final (SUCCEEDED, FAILED, CANCELLED). */
int pd_job_state_final(Pando__V1__JobState state);
/* "RUNNING", ... */
const char *pd_job_state_name(Pando__V1__JobState state);

/* Periodic work at `now`: starts PENDING jobs whose nodes are there, makes
 * those whose shards all exist RUNNING, and fails the ones that waited
 * longer than cluster.wait_timeout. */
void pd_jobs_cron(pd_jobs *jobs, double now);
/* `node` was declared dead at `now`: fails every unfinished job it serves. */
void pd_jobs_node_dead(pd_jobs *jobs, const pd_node *node, double now);
/* A CreateShard of `job` finished: `failure` is NULL on success, else why
 * (the job fails with it). Unknown jobs are ignored. */
void pd_jobs_shard_created(pd_jobs *jobs, const char *job, const char *failure, double now);
/* Ends `job` in the final `state` with a formatted message, releases its
 * workers and, unless it SUCCEEDED, drops its shards. No-op if it ended
 * already. */
void pd_jobs_finish(pd_jobs *jobs, pd_job *job, double now, Pando__V1__JobState state,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Records a progress report of a rank below job->nworkers at `now`: position
 * and loss, the epoch's evaluation in the history, the worker's error (the
 * job fails) or its being done (the job succeeds with its last worker).
 * Returns whether the worker should stop: the job had ended (not
 * SUCCEEDED) before this report, or was cancelled. */
int pd_jobs_progress(pd_jobs *jobs, pd_job *job, const Pando__V1__ProgressReport *report,
                     double now);

#endif
