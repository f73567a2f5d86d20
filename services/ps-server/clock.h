/* The consistency model of one shard: the only place that decides when a
 * pushed gradient is applied, when a pull may be answered, and which pushes
 * are duplicates. BSP and ASP today; SSP and backup workers extend it here.
 *
 * BSP: the shard's clock c counts completed rounds. A round completes when
 * every worker has pushed every key of the shard for clock c; then the shard
 * applies the average and c becomes c + 1. A pull for clock k is answered
 * once c >= k. ASP: each push is applied when it arrives and a pull never
 * waits; the version counts whole gradients (a worker's pushes of one clock
 * covering the shard) applied. */
#ifndef PANDO_PS_CLOCK_H
#define PANDO_PS_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

typedef struct pd_clock pd_clock;

enum pd_push_verdict {
  PD_PUSH_APPLY = 1,  /* apply the gradient now (ASP) */
  PD_PUSH_ACCUMULATE, /* add it to the round's sum (BSP) */
  PD_PUSH_DUPLICATE,  /* seen before: acknowledge, apply nothing */
  PD_PUSH_REJECT,     /* invalid: the message in err says why */
};

/* A clock for a shard of `keys` keys pushed to by `num_workers` workers. */
pd_clock *pd_clock_new(enum pd_update update, uint32_t num_workers, uint64_t keys);
void pd_clock_free(pd_clock *clock);

/* Decides what to do with a push by `worker` at `clock` of the shard-relative
 * keys [begin, end). Records it unless the verdict is DUPLICATE or REJECT. */
enum pd_push_verdict pd_clock_on_push(pd_clock *clock, uint32_t worker, int64_t worker_clock,
                                      uint64_t begin, uint64_t end, char *err, size_t errlen);

/* BSP: whether the current round has every gradient. The caller then applies
 * the averaged sum and calls pd_clock_advance(). */
int pd_clock_round_complete(const pd_clock *clock);
void pd_clock_advance(pd_clock *clock);

/* Whether a pull at `worker_clock` can be answered now (1), must wait (0),
 * or is invalid (-1, message in err). */
int pd_clock_pull_ready(const pd_clock *clock, uint32_t worker, int64_t worker_clock, char *err,
                        size_t errlen);

/* BSP: completed rounds; ASP: whole gradients applied. */
uint64_t pd_clock_version(const pd_clock *clock);

#endif
