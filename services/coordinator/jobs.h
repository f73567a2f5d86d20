/* The coordinator's jobs and their state machine:
 *
 *   PENDING --(enough alive servers and idle workers)--> shards being created
 *           --(every CreateShard answered OK)----------> RUNNING
 *   RUNNING --(every worker reported done)-------------> SUCCEEDED
 *   shards being created --(a CreateShard UNAVAILABLE or DEADLINE_EXCEEDED:
 *           a server dead but not declared so yet; or RESOURCE_EXHAUSTED and
 *           another server has room; or a node of the placement declared
 *           dead)--> its shards dropped, PENDING again, placed anew without
 *           that server (pd_jobs_shard_misplaced)
 *   any non-final state --(a node of the running job died, a CreateShard
 *           was refused or a worker failed, cluster.wait_timeout expired)--> FAILED
 *   any non-final state --(CancelJob)------------------> CANCELLED
 *   RUNNING --(a server or worker died, or a worker's pull or push failed,
 *           and the job takes checkpoints)-------------> RECOVERING
 *   RECOVERING --(the dead server's name registered again, an idle worker
 *           took each dead worker's rank, every shard rolled back to the
 *           newest checkpoint all hold: recovery.c)----> RUNNING (attempt + 1)
 *   RECOVERING --(cluster.wait_timeout since it began)-> FAILED
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
#include "pando/trace.h"
#include "registry.h"

#define PD_JOB_PHASES_MAX 16      /* phases kept per worker (ProgressReport.phases) */
#define PD_JOB_TRACE_EVENTS 65536 /* trace spans kept per worker (ProgressReport.trace) */

typedef struct pd_job_worker { /* one rank's last progress report */
  uint64_t node_id;
  uint32_t epoch;
  uint64_t step;
  double loss;
  double samples_per_sec;
  int done;
  /* its phase counters (pandoctl stats): phases[i].phase points at names[i] */
  Pando__V1__PhaseStat phases[PD_JOB_PHASES_MAX];
  char phase_names[PD_JOB_PHASES_MAX][32];
  size_t nphases;
  uint64_t wall_ns;
  pd_trace trace;         /* its spans, the newest PD_JOB_TRACE_EVENTS (pandoctl trace) */
  uint64_t trace_dropped; /* spans it reported lost */
} pd_job_worker;

typedef struct pd_job_avoid {  /* a server a placement of the job failed on */
  uint64_t node_id;            /* the registration it was (a new one is another node) */
  char name[64], address[256]; /* for messages */
  double since;                /* when its CreateShard failed */
  int unreachable;             /* 1: UNAVAILABLE or DEADLINE_EXCEEDED; 0: no room there */
  char why[400];               /* the failure */
} pd_job_avoid;

typedef struct pd_job {
  char id[PD_JOB_ID_MAX]; /* "<name>-<n>" */
  pd_job_spec spec;
  char *spec_yaml;    /* as submitted; handed to servers and workers */
  char job_token[80]; /* hex, for this job alone (README "Security"); "": none */
  Pando__V1__JobState state;
  char message[1024]; /* what it waits for, or why it ended */
  double submitted, started, finished;
  uint64_t keys;       /* model parameters */
  uint64_t train_rows; /* rows of the training set */
  uint32_t steps_per_epoch;
  uint32_t nservers, nworkers;       /* nworkers includes backup workers */
  uint64_t *server_ids;              /* nservers, once started; NULL before */
  uint64_t *shard_begin, *shard_end; /* the key range of each server */
  pd_job_worker *workers;            /* nworkers, by rank */
  int creating;                      /* CreateShard calls in flight */
  int create_failed;                 /* a CreateShard was refused: the job FAILS */
  int misplaced;           /* a CreateShard failed so that another placement may do, or a node of
                              the placement died before the job ran: undone */
  char misplaced_why[512]; /* why (logged at the undo) */
  uint32_t undoing;        /* DropShard calls of an undone placement in flight */
  pd_job_avoid *tried;     /* servers whose CreateShard failed so (pd_jobs_shard_misplaced) */
  size_t ntried;
  Pando__V1__EpochRecord *history; /* one per evaluated epoch */
  size_t nhistory;
  struct pd_rounds *rounds; /* training.update fedavg, once RUNNING: its rounds (rounds.c) */
  /* fedavg: the rounds' history as last stored (pd_jobs_round_history), which a
   * restarted coordinator gives its new rounds */
  Pando__V1__RoundRecord *round_history;
  size_t nround_history;
  char (*server_names)[64]; /* nservers, once started: a dead server's replacement has its name */
  /* recovery (docs/architecture.md "Recovery") */
  uint32_t attempt;        /* 0, + 1 at every recovery; workers report it back */
  uint64_t start_clock;    /* the clock the workers start at (the checkpoint rolled back to) */
  uint32_t recoveries;     /* RECOVERING in a row without passing start_clock (PD_RECOVERY_MAX) */
  double recover_since;    /* when the present recovery began */
  double retry_at;         /* a failed restore pass is retried from then */
  char recover_why[400];   /* what died */
  uint32_t restore_pass;   /* CreateShard(restore_checkpoint) rounds; older answers are ignored */
  uint64_t restore_target; /* the pass's restore_checkpoint (0: anew from the seed) */
  uint32_t restoring;      /* restore calls of this pass in flight */
  int restore_failed;      /* a restore call of this pass failed */
  char restore_error[400]; /* its error */
  uint64_t *restored;      /* nservers: the checkpoint each shard answered in its last pass */
  int model_dropped;       /* SUCCEEDED, and its shards were dropped (keep_models) */
  uint64_t shard_bytes;    /* the most memory one of its shards takes on its server */
  /* the coordinator's state in its data_dir (store.c) */
  uint64_t seq;      /* its place in submission order */
  int reloaded;      /* loaded from the store at the coordinator's start */
  uint8_t *orphaned; /* nservers, once started: 1 while the shard is still to be dropped from a
                        server that has not registered again since the restart */
} pd_job;

/* Whether `job` is federated (training.update fedavg): it has no workers; a
 * selector's devices train it in rounds once it is RUNNING. */
int pd_job_federated(const pd_job *job);
/* The data-parallel workers of a job as the servers see them: nworkers, or
 * with a pipeline (cluster.stages S > 1) the nworkers / S replicas, each a
 * pipeline of S places whose stages push as one worker (README "Pipelines"). */
uint32_t pd_job_replicas(const pd_job *job);
/* The stages of a job: cluster.stages (1: no pipeline). */
uint32_t pd_job_stages(const pd_job *job);

/* How the jobs reach the servers. `create_shard` sends CreateShard for shard
 * `shard` of `job` to `server` and later (or at once, if the call cannot
 * start) calls pd_jobs_shard_created; `drop_shard` sends DropShard. */
typedef struct pd_jobs_fanout {
  void (*create_shard)(void *ctx, const pd_job *job, uint32_t shard, const pd_node *server);
  void (*drop_shard)(void *ctx, const pd_job *job, uint32_t shard, const pd_node *server);
  void *ctx;
  /* Sends CreateShard with restore_checkpoint = `checkpoint` (roll back to
   * the newest checkpoint <= it; a refusal, FAILED_PRECONDITION, answers
   * checkpoint 0: none), or for `checkpoint` 0 DropShard then CreateShard
   * (anew from the model's seed), and later (or at once) calls
   * pd_jobs_shard_restored with `pass`. May be NULL: jobs then fail instead
   * of recovering. */
  void (*restore_shard)(void *ctx, const pd_job *job, uint32_t shard, const pd_node *server,
                        uint64_t checkpoint, uint32_t pass);
} pd_jobs_fanout;

typedef struct pd_jobs pd_jobs;

/* Where federated jobs' rounds run (rounds.c in the daemon): `start` when a
 * fedavg job becomes RUNNING (it sets job->rounds), `stop` when it ends
 * otherwise (failed, cancelled). */
typedef struct pd_jobs_federated {
  void (*start)(void *ctx, pd_job *job);
  void (*stop)(void *ctx, pd_job *job);
  /* a finished job is about to be forgotten: free job->rounds and return 0,
   * or -1 while its calls are still in flight (asked again later) */
  int (*forget)(void *ctx, pd_job *job);
  void *ctx;
} pd_jobs_federated;
/* Sets them (copied); without, fedavg jobs stay RUNNING with no rounds. */
void pd_jobs_set_federated(pd_jobs *jobs, const pd_jobs_federated *federated);

/* Jobs whose nodes are in `reg` (borrowed) and whose shard calls go through
 * `fanout` (copied). */
pd_jobs *pd_jobs_new(pd_registry *reg, const pd_jobs_fanout *fanout);
void pd_jobs_free(pd_jobs *jobs);
/* Bounds what finished jobs hold (pd_jobs_cron applies it): the shards of
 * succeeded jobs beyond the newest `keep_models` are dropped from their
 * servers, and finished jobs beyond the newest `keep_jobs` are forgotten.
 * Defaults: PD_JOBS_KEEP_MODELS, PD_JOBS_KEEP_JOBS. */
#define PD_JOBS_KEEP_MODELS 16
#define PD_JOBS_KEEP_JOBS 1000
void pd_jobs_set_retention(pd_jobs *jobs, uint32_t keep_models, uint32_t keep_jobs);

struct pd_store;
/* Loads the coordinator's state from `store` (borrowed; kept, and written
 * at every change of a job from then on): the job id counter and every
 * job. Finished jobs are as they were; a PENDING job that had no servers
 * yet waits again (its cluster.wait_timeout from `now`); a job that had its
 * shards (being created, RUNNING, RECOVERING) goes RECOVERING when it
 * takes checkpoints, rolling back to the newest complete one once its
 * servers (by name) and workers have registered, else FAILS, saying that
 * the coordinator restarted and that a checkpoint: key would have let it
 * continue; its shards are dropped from each server when it registers
 * again. Returns 0 or a negative error with why in `err`. */
int pd_jobs_reload(pd_jobs *jobs, struct pd_store *store, double now, char *err, size_t errlen);
/* For store.c: frees a job not (or no longer) in a pd_jobs. */
void pd_jobs_job_free(pd_job *job);
/* For store.c: sets the fields of `job` that follow from its spec and
 * keys (servers, workers, shard size) and allocates its workers. */
void pd_jobs_job_shape(pd_job *job);

/* `job` changed outside this module (its token set after submit): writes
 * it to the store, if there is one. */
void pd_jobs_changed(pd_jobs *jobs, const pd_job *job);
/* Federated job `job`'s rounds have a new history (`n` records, copied):
 * kept in job->round_history and stored. */
void pd_jobs_round_history(pd_jobs *jobs, pd_job *job, const Pando__V1__RoundRecord *records,
                           size_t n);

/* Adds a PENDING job of a valid `spec` (its text `spec_yaml`, copied) with
 * `keys` parameters and `rows` training rows, submitted at `now`. */
pd_job *pd_jobs_submit(pd_jobs *jobs, const pd_job_spec *spec, const char *spec_yaml, uint64_t keys,
                       uint64_t rows, double now);
/* Admission control at submit: 0 if a job of `spec` with `keys` parameters
 * can be placed, now or once more servers register; else -1 with why in
 * `err` (fewer registered servers have a memory_limit its shards fit in than
 * it needs, and every live server said what it has). */
int pd_jobs_admit(pd_jobs *jobs, const pd_job_spec *spec, uint64_t keys, char *err, size_t errlen);
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
 * longer than cluster.wait_timeout; RECOVERING jobs take the replacements
 * that registered and, once complete, start their shards' roll back. */
void pd_jobs_cron(pd_jobs *jobs, double now);
/* `node` was declared dead at `now`: every unfinished job it serves fails,
 * or, when RUNNING and taking checkpoints, goes RECOVERING; a PENDING job
 * whose shards were being created on it (or that had it as a worker) has
 * its placement undone and is placed again, as after
 * pd_jobs_shard_misplaced. */
void pd_jobs_node_dead(pd_jobs *jobs, const pd_node *node, double now);
/* A CreateShard of `job` finished: `failure` is NULL on success, else why
 * (the job fails with it). Unknown jobs are ignored. */
void pd_jobs_shard_created(pd_jobs *jobs, const char *job, const char *failure, double now);
/* A CreateShard of `job` on server `server_id` failed (`why`) for a reason
 * another placement may not have: `unreachable` (UNAVAILABLE, DEADLINE_
 * EXCEEDED: a server killed but not declared dead yet) or, with 0, no room
 * there (RESOURCE_EXHAUSTED). Once its other CreateShards have answered, the
 * placement is undone (its shards dropped, its workers released) and the job
 * is PENDING again, placed anew without that server: an unreachable one until
 * it heartbeats again after `now` or is declared dead (a new registration of
 * its name is another node), a full one for good. When no other server with
 * room is there for a full one, the job FAILS with `why` at once. */
void pd_jobs_shard_misplaced(pd_jobs *jobs, const char *job, uint64_t server_id, int unreachable,
                             const char *why, double now);
/* A DropShard of `job` was answered (whatever it said): the undoing of a
 * misplaced placement waits for these before it places the job again (a
 * CreateShard of the same job overtaking its DropShard would be refused). */
void pd_jobs_shard_dropped(pd_jobs *jobs, const char *job);
/* A restore CreateShard of `job`'s restore pass `pass` for `shard` finished:
 * `failure` NULL and the checkpoint the shard was rolled back to (0: it has
 * none <= the pass's target; or it was made anew for target 0), or why it
 * failed (the pass is retried). Answers of older passes, unknown jobs and
 * jobs no longer RECOVERING are ignored. Once every shard of the pass
 * answered: all at the same checkpoint makes the job RUNNING again from it
 * (recovery.c decides); else the shards above the smallest are asked again. */
void pd_jobs_shard_restored(pd_jobs *jobs, const char *job, uint32_t pass, uint32_t shard,
                            uint64_t checkpoint, const char *failure, double now);
/* Ends `job` in the final `state` with a formatted message, releases its
 * workers and, unless it SUCCEEDED, drops its shards. No-op if it ended
 * already. */
void pd_jobs_finish(pd_jobs *jobs, pd_job *job, double now, Pando__V1__JobState state,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* `pandoctl resume`: a FAILED or CANCELLED `job` that takes checkpoints
 * and had its servers goes RECOVERING at `now`: once its servers (the same
 * names) and a worker per rank are there, every shard is made again from
 * the newest checkpoint all of them hold complete (or from the model's
 * seed if there is none), and it runs on from that clock. Returns 0, or
 * -PD_ESTATE with why it cannot in `err`. */
int pd_jobs_resume(pd_jobs *jobs, pd_job *job, double now, char *err, size_t errlen);

/* A page of the workers' trace spans of `job` (Coordinator.GetTrace): at
 * most `max` spans of clocks in [from_clock, to_clock] (to_clock < 0: no
 * limit) into out[] and ptrs[] (caller storage, borrowing the job's names),
 * worker by worker, each oldest first, from *cursor (0: the first; else what
 * the previous page left in it). *cursor receives where the next page
 * begins, 0 after the last. Returns how many were filled. */
size_t pd_job_trace_page(const pd_job *job, int64_t from_clock, int64_t to_clock, uint64_t *cursor,
                         size_t max, Pando__V1__TraceEvent *out, Pando__V1__TraceEvent **ptrs);
/* Records a progress report of a rank below job->nworkers at `now`: position
 * and loss, the epoch's evaluation in the history, the worker's error (the
 * job fails; or, for a failed pull or push of a job taking checkpoints, goes
 * RECOVERING) or its being done (the job succeeds with its last worker).
 * Returns whether the worker should stop: the job had ended (not
 * SUCCEEDED) before this report, was cancelled, is recovering, or the
 * report is of an older attempt. */
int pd_jobs_progress(pd_jobs *jobs, pd_job *job, const Pando__V1__ProgressReport *report,
                     double now);

#endif
