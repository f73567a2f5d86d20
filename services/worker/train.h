/* The worker loop, independent of where the parameters live: load this
 * worker's partition of the data, then for every clock pull the parameters,
 * compute the mini-batch gradient and push it; evaluate after each epoch.
 * With training.frequency nbatches or epoch a clock covers k batches: SGD
 * steps on a local copy, by training.threads Hogwild threads, and a push of
 * the sum of the k gradients.
 * A parameter store is either the cluster (pd_psclient, worker.c) or a local
 * in-process store (standalone mode), so the baseline and the cluster run the
 * same code. */
#ifndef PANDO_WORKER_TRAIN_H
#define PANDO_WORKER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"
#include "pando/spec.h"

/* Where the parameters live. Each call returns 0 or a negative error with a
 * message in err. */
typedef struct pd_param_store {
  /* Reads all K parameters as of `clock` into params; *version (may be
   * NULL) receives the smallest version of the answers (BSP: the round). */
  int (*pull)(void *ctx, int64_t clock, float *params, uint64_t *version, char *err, size_t errlen);
  /* Sends the gradient of all K parameters computed at `clock`; *dropped
   * (may be NULL) is set when it came too late for its round (backup
   * workers) and was not applied. */
  int (*push)(void *ctx, int64_t clock, const float *grad, int *dropped, char *err, size_t errlen);
  void *ctx;
  /* Non-NULL: the K parameters in this process, read in place (pull is then
   * never called). The local store does this, so standalone mode copies
   * nothing. */
  const float *shared;
  /* Pipelines: pull and push cover the stage's keys only (params and grad
   * are still K floats, indexed by key); this reads all K for the
   * evaluation after an epoch. NULL: pull reads all K. */
  int (*pull_all)(void *ctx, int64_t clock, float *params, char *err, size_t errlen);
} pd_param_store;

/* A pipeline stage's part of a job (Assignment's stage fields, README
 * "Pipelines"): which layers and keys it holds, its neighbours' Peer
 * addresses, and the mailbox the daemon's Peer service fills. */
typedef struct pd_peer_box pd_peer_box;
typedef struct pd_train_stage {
  uint32_t stage, stages;            /* this stage of S */
  int layer_begin, layer_end;        /* affine layers [begin, end) */
  uint64_t key_begin, key_end;       /* its keys: what it pulls and pushes */
  const char *peer_prev, *peer_next; /* Peer addresses of stage -/+ 1 ("": none) */
  uint32_t attempt;
  const char *job_token; /* sent to the peers; a secret */
  pd_peer_box *box;      /* borrowed */
  double timeout_sec;    /* of a Peer send, and of the wait for a tensor */
} pd_train_stage;

/* Where progress goes. `report` returns -PD_ECANCELLED to stop the job. */
typedef struct pd_progress_sink {
  int (*report)(void *ctx, Pando__V1__ProgressReport *report);
  void *ctx;
} pd_progress_sink;

/* One worker's part of a job. */
typedef struct pd_train_job {
  const pd_job_spec *spec;
  const char *job;  /* id, for messages */
  uint32_t rank;    /* this worker */
  uint32_t workers; /* all workers of the job */
  int evaluate;     /* evaluate on the test split after each epoch */
  /* Testing aids that make this worker a straggler: after computing a
   * batch's gradient in t seconds, sleep batch_delay_sec (simulated compute)
   * and (slowdown - 1) x (t + batch_delay_sec), so that the batch takes
   * slowdown times as long as it would at full speed. */
  double slowdown;        /* >= 1; 1: full speed */
  double batch_delay_sec; /* >= 0 */
  /* The clock to start at (Assignment.start_clock): 0, or after a recovery
   * the checkpoint the shards were rolled back to. The clocks before it are
   * skipped; the epoch and batches of every later clock are those of an
   * undisturbed run (they are functions of the seeds and the clock). */
  int64_t start_clock;
  /* pandoctl trace: the spans kept until they are reported (a ring, the
   * oldest overwritten and counted when it is full); 0: no tracing */
  uint32_t trace_events;
  /* A pipeline stage (rank is then the replica, workers the replicas N);
   * NULL: the whole model. */
  const pd_train_stage *stage;
} pd_train_job;

/* Trains `job` to the end. Returns 0; -PD_ESHUTDOWN when the daemon was
 * asked to stop; the error the sink's report returned (-PD_ECANCELLED: the
 * coordinator stopped the job) with "job X was stopped by the coordinator"
 * in `err`; or another negative error (data, model, pull or push) with a
 * message in `err`. */
int pd_train(const pd_train_job *job, const pd_param_store *store, const pd_progress_sink *sink,
             char *err, size_t errlen);

/* A parameter store in this process: the parameters, initialised from the
 * model's seed, and the job's optimizer and learning-rate schedule applied to
 * each push at once (one worker: synchronous SGD). */
typedef struct pd_local_store pd_local_store;
pd_local_store *pd_local_store_new(const pd_job_spec *spec, uint64_t min_partition_rows, char *err,
                                   size_t errlen);
void pd_local_store_free(pd_local_store *store);
pd_param_store pd_local_store_api(pd_local_store *store);

/* Trains the job spec in `path` in this process (no RPC): standalone mode.
 * Prints progress to stderr and "test accuracy: 0.XXXX" (classifiers) or
 * "test rmse: X" (regression) on stdout at the end. Returns an exit code. */
int pd_train_standalone(const char *path);

#endif
