/* A shard: the keys [begin, end) of one job held by this server, with the
 * optimizer state beside them, its clock, and the pulls waiting for it. This
 * is where parameters change. */
#ifndef PANDO_PS_SHARD_H
#define PANDO_PS_SHARD_H

#include <stdint.h>

#include "clock.h"
#include "pando/metrics.h"
#include "pando/optimizer.h"
#include "pando/rpc.h"
#include "pando/spec.h"

#define PD_JOB_ID_MAX 96

typedef struct pd_pending_pull pd_pending_pull;
/* The parameter values of a shard, which pulls in flight borrow instead of
 * copying (see shard.c); read them with pd_shard_read. */
typedef struct pd_shard_values pd_shard_values;

typedef struct pd_shard {
  char job[PD_JOB_ID_MAX]; /* the job's id */
  pd_job_spec spec;        /* the job spec it was created from */
  uint64_t begin, end;     /* global keys held */
  uint32_t num_workers;
  uint64_t min_partition_rows; /* rows of the smallest worker partition (lr schedule) */
  pd_shard_values *values; /* end - begin parameter values */
  float *accum;            /* BSP: sum of the round's gradients; NULL under ASP, SSP */
  float *buffers;          /* backup workers: each worker's gradient until it is whole */
  pd_optimizer optimizer;
  struct {
    int64_t begin, end; /* clocks of the epoch whose lr was looked up last */
    double lr;
  } lr_epoch;
  pd_clock *clock;
  struct pd_fedagg *fed;    /* training.update fedavg: the rounds (fedagg.c); else NULL */
  pd_pending_pull *waiting; /* pulls parked until the clock allows them */
  uint64_t pushes_applied, pushes_duplicate, pushes_rejected, pushes_dropped;
  struct { /* the job's /metrics series (ps.c), and the clock's counts exported so far */
    pd_metric *staleness, *dropped, *blocked, *max_gap;
    uint64_t dropped_seen, blocked_seen;
  } metrics;
} pd_shard;

/* Makes a shard of `spec`'s model keys [begin, end), initialised from the
 * model's seed. Pushes are applied with the learning rate of their clock's
 * epoch (pando/schedule.h), which needs `min_partition_rows`, the rows of
 * the smallest worker partition; it may be 0 only with a constant
 * training.lr_schedule. Returns NULL with a message in `err` when the model
 * cannot initialise the keys (a plugin that does not load). */
pd_shard *pd_shard_new(const char *job, const pd_job_spec *spec, uint64_t begin, uint64_t end,
                       uint32_t num_workers, uint64_t min_partition_rows, char *err,
                       size_t errlen);
/* Frees the shard; parked pulls are failed with `status` first. Values that
 * answers still being sent borrow are freed when gRPC lets go of them. */
void pd_shard_free(pd_shard *shard, grpc_status_code status, const char *why);

/* Copies the current values of shard-relative keys [off, off + n) to `out`. */
void pd_shard_read(const pd_shard *shard, uint64_t off, uint64_t n, float *out);

/* Takes a push of shard-relative keys [off, off + n) (gradient values in
 * `grad`) computed on the model of version `model_version` (-1: unknown).
 * Returns the clock's verdict; on REJECT, err says why. Applies the gradient
 * or the completed round's average as the verdict requires and answers the
 * pulls that can now go on. */
enum pd_push_verdict pd_shard_push(pd_shard *shard, uint32_t worker, int64_t clock,
                                   int64_t model_version, uint64_t off, uint64_t n,
                                   const float *grad, char *err, size_t errlen);

/* Steps every key of the shard with its optimizer at learning rate `lr`
 * with the gradient `grad` (end - begin values): a federated round's
 * pseudo-gradient. Pulls in flight keep the values they borrow. */
void pd_shard_apply(pd_shard *shard, const float *grad, double lr);
/* Answers a pull of shard-relative keys [off, off + n) now, or parks `call`
 * until the clock allows it. Returns 0, or -1 with err set if the pull is
 * invalid (the call is not touched then). */
int pd_shard_pull(pd_shard *shard, pd_rpc_call *call, uint32_t worker, int64_t clock,
                  uint64_t off, uint64_t n, char *err, size_t errlen);

#endif
