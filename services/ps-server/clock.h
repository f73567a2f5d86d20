/* The consistency model of one shard: the only place that decides when a
 * pushed gradient is applied, when a pull may be answered, and which pushes
 * are duplicates or dropped. It also measures what happened (staleness of
 * each applied gradient, dropped gradients, blocked pulls, clock gap).
 *
 * A worker's clock is the number of whole gradients it has pushed (a
 * gradient is whole on this shard once its chunks cover every key).
 *
 * BSP: the shard's clock c counts completed rounds. A round completes when
 * every worker has pushed every key of the shard for clock c; then the shard
 * applies the average and c becomes c + 1. A pull for clock k is answered
 * once c >= k.
 * BSP with b backup workers (N + b workers push): a round completes with the
 * first N whole gradients of clock c; the others of that clock are dropped.
 * Each worker's chunks are buffered until its gradient is whole, then
 * accepted into the round (PD_PUSH_BUFFER_ACCEPT) or dropped.
 * SSP with staleness s > 0: each push is applied when it arrives; a pull at
 * clock k is answered once the slowest worker's clock is >= k - s. SSP with
 * s = 0 is BSP (the same state machine, bit for bit).
 * ASP: each push is applied when it arrives and a pull never waits.
 * Under SSP and ASP the version counts whole gradients applied. */
#ifndef PANDO_PS_CLOCK_H
#define PANDO_PS_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

typedef struct pd_clock pd_clock;

enum pd_push_verdict {
  PD_PUSH_APPLY = 1,     /* apply the gradient now (ASP, SSP) */
  PD_PUSH_ACCUMULATE,    /* add it to the round's sum (BSP) */
  PD_PUSH_BUFFER,        /* backup workers: keep it in the worker's buffer */
  PD_PUSH_BUFFER_ACCEPT, /* buffer it; the worker's gradient is now whole and
                            accepted: add the buffer to the round's sum */
  PD_PUSH_DROP,          /* backup workers: too late for its round, not applied */
  PD_PUSH_DUPLICATE,     /* seen before: acknowledge, apply nothing */
  PD_PUSH_REJECT,        /* invalid: the message in err says why */
};

/* The largest clock a push or pull may carry (2^40: a million clocks per
 * epoch for a million epochs). Under BSP and SSP the consistency model bounds
 * clocks far more tightly (a push of a clock the worker cannot have reached
 * is refused); ASP has no other bound, by design. */
#define PD_CLOCK_MAX (INT64_C(1) << 40)

/* How a clock runs. */
typedef struct pd_clock_options {
  enum pd_update update;
  uint32_t num_workers;    /* workers that push (N, or N + b with backup workers) */
  uint32_t backup_workers; /* BSP: b; a round takes num_workers - b gradients */
  uint32_t staleness;      /* SSP: s */
  uint64_t keys;           /* keys of the shard */
} pd_clock_options;

/* The histogram buckets of staleness: upper bounds 0, 1, 2, 4, ..., 32 and
 * one for larger values. */
#define PD_STALENESS_BUCKETS 8
extern const double pd_staleness_bounds[PD_STALENESS_BUCKETS - 1];

/* What the clock observed since it was made. */
typedef struct pd_clock_stats {
  /* applied (or accepted) whole gradients by staleness: the shard's version
   * when applied minus the version of the model the gradient was computed
   * on; bucket i counts values <= pd_staleness_bounds[i], the last the rest */
  uint64_t staleness[PD_STALENESS_BUCKETS];
  uint64_t staleness_sum;
  uint64_t dropped; /* whole gradients dropped (backup workers) */
  uint64_t blocked; /* pulls that had to wait */
  uint64_t max_gap; /* largest (clock of an answered pull - slowest worker's clock) */
} pd_clock_stats;

/* The options of a shard of `spec` pushed to by `num_workers` workers:
 * training.update (ssp with staleness 0 becomes bsp), staleness and backup
 * workers. */
pd_clock_options pd_clock_options_of(const pd_job_spec *spec, uint32_t num_workers, uint64_t keys);

/* A clock as `options` say. */
pd_clock *pd_clock_new_with(const pd_clock_options *options);
/* A clock for a shard of `keys` keys pushed to by `num_workers` workers
 * (BSP without backup workers, or ASP). */
pd_clock *pd_clock_new(enum pd_update update, uint32_t num_workers, uint64_t keys);
void pd_clock_free(pd_clock *clock);

/* Whether pushes are summed into rounds (BSP, with or without backups). */
int pd_clock_has_rounds(const pd_clock *clock);
/* Gradients averaged per round: num_workers - backup_workers. */
uint32_t pd_clock_round_size(const pd_clock *clock);

/* Decides what to do with a push by `worker` at `clock` of the shard-relative
 * keys [begin, end), computed on the model of version `model_version` (-1:
 * unknown, its staleness is not recorded). Records it unless the verdict is
 * DUPLICATE or REJECT. */
enum pd_push_verdict pd_clock_on_push(pd_clock *clock, uint32_t worker, int64_t worker_clock,
                                      int64_t model_version, uint64_t begin, uint64_t end,
                                      char *err, size_t errlen);

/* BSP: whether the current round has every gradient it takes. The caller
 * then applies the averaged sum and calls pd_clock_advance(). */
int pd_clock_round_complete(const pd_clock *clock);
void pd_clock_advance(pd_clock *clock);

/* Whether a pull at `worker_clock` can be answered now (1), must wait (0),
 * or is invalid (-1, message in err). */
int pd_clock_pull_ready(const pd_clock *clock, uint32_t worker, int64_t worker_clock, char *err,
                        size_t errlen);
/* Records a valid pull at `worker_clock`: answered (the clock gap it saw)
 * or parked (blocked). */
void pd_clock_on_pull(pd_clock *clock, int64_t worker_clock, int answered);

/* BSP: completed rounds; SSP, ASP: whole gradients applied. */
uint64_t pd_clock_version(const pd_clock *clock);
/* The slowest worker's clock. */
int64_t pd_clock_slowest(const pd_clock *clock);
/* The staleness recorded by the last pd_clock_on_push(), or -1 if that push
 * did not make a gradient whole and applied (or accepted). */
int64_t pd_clock_last_staleness(const pd_clock *clock);
/* What the clock observed. */
const pd_clock_stats *pd_clock_stats_get(const pd_clock *clock);

/* A checkpoint of the clock: its version, the round's count, what each
 * worker pushed at its current clock (the duplicate detection) and the
 * stats, as little-endian bytes. pd_clock_save_size() is how many bytes
 * pd_clock_save() writes to `out`. */
size_t pd_clock_save_size(const pd_clock *clock);
void pd_clock_save(const pd_clock *clock, unsigned char *out);
/* Sets `clock` (made with the options of the saved one) to the state saved
 * in `bytes` (`n` bytes). Returns 0, or -PD_EFORMAT with a message in `err`
 * when the bytes are not a saved clock of the same workers and keys; the
 * clock is then unchanged. */
int pd_clock_restore(pd_clock *clock, const unsigned char *bytes, size_t n, char *err,
                     size_t errlen);

#endif
