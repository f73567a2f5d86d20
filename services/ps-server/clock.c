/* Consistency decisions for one shard (BSP, ASP); see clock.h. */
#include "clock.h"

#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

typedef struct interval {
  uint64_t begin, end;
} interval;

/* What the shard has received from one worker for that worker's current clock. */
typedef struct worker_state {
  int64_t clock;      /* the clock the intervals below belong to; -1: none yet */
  interval *received; /* disjoint key ranges pushed at `clock` */
  size_t nreceived, cap;
  uint64_t covered;   /* keys covered by `received` */
} worker_state;

struct pd_clock {
  enum pd_update update;
  uint32_t num_workers;
  uint64_t keys;
  uint64_t version;    /* BSP: the shard's clock (completed rounds) */
  uint32_t complete;   /* BSP: workers whose gradient for this round is whole */
  worker_state *workers;
};

pd_clock *pd_clock_new(enum pd_update update, uint32_t num_workers, uint64_t keys) {
  PD_ASSERT(num_workers > 0 && keys > 0);
  pd_clock *c = pd_xcalloc(1, sizeof *c);
  c->update = update;
  c->num_workers = num_workers;
  c->keys = keys;
  c->workers = pd_xcalloc(num_workers, sizeof *c->workers);
  for (uint32_t w = 0; w < num_workers; w++)
    c->workers[w].clock = -1;
  return c;
}

void pd_clock_free(pd_clock *clock) {
  if (!clock)
    return;
  for (uint32_t w = 0; w < clock->num_workers; w++)
    free(clock->workers[w].received);
  free(clock->workers);
  free(clock);
}

static void start_clock(worker_state *ws, int64_t clock) {
  ws->clock = clock;
  ws->nreceived = 0;
  ws->covered = 0;
}

/* Records [begin, end) for the worker's current clock: DUPLICATE if exactly
 * that range was received, REJECT if it overlaps another one. */
static enum pd_push_verdict record(pd_clock *c, worker_state *ws, uint64_t begin, uint64_t end,
                                   char *err, size_t errlen) {
  for (size_t i = 0; i < ws->nreceived; i++) {
    interval *r = &ws->received[i];
    if (r->begin == begin && r->end == end)
      return PD_PUSH_DUPLICATE;
    if (begin < r->end && r->begin < end) {
      pd_errf(err, errlen, 0, "keys [%llu, %llu) overlap keys [%llu, %llu) already pushed at clock %lld",
              (unsigned long long)begin, (unsigned long long)end, (unsigned long long)r->begin,
              (unsigned long long)r->end, (long long)ws->clock);
      return PD_PUSH_REJECT;
    }
  }
  if (ws->nreceived == ws->cap) {
    ws->cap = ws->cap ? ws->cap * 2 : 8;
    ws->received = pd_xrealloc(ws->received, ws->cap * sizeof *ws->received);
  }
  ws->received[ws->nreceived++] = (interval){begin, end};
  ws->covered += end - begin;
  if (ws->covered == c->keys) {
    if (c->update == PD_UPDATE_BSP)
      c->complete++;
    else
      c->version++;
  }
  return c->update == PD_UPDATE_BSP ? PD_PUSH_ACCUMULATE : PD_PUSH_APPLY;
}

enum pd_push_verdict pd_clock_on_push(pd_clock *c, uint32_t worker, int64_t worker_clock,
                                      uint64_t begin, uint64_t end, char *err, size_t errlen) {
  PD_ASSERT(worker < c->num_workers && begin < end && end <= c->keys);
  worker_state *ws = &c->workers[worker];
  if (worker_clock < 0) {
    pd_errf(err, errlen, 0, "clock must be >= 0, got %lld", (long long)worker_clock);
    return PD_PUSH_REJECT;
  }
  if (c->update == PD_UPDATE_BSP) {
    int64_t round = (int64_t)c->version;
    if (worker_clock < round)
      return PD_PUSH_DUPLICATE; /* that round was applied already */
    if (worker_clock > round) {
      pd_errf(err, errlen, 0,
              "worker %u pushed clock %lld but the shard is at clock %lld; under BSP a worker "
              "pushes clock c only after its pull of clock c",
              worker, (long long)worker_clock, (long long)round);
      return PD_PUSH_REJECT;
    }
  } else if (worker_clock < ws->clock) {
    return PD_PUSH_DUPLICATE; /* ASP clocks of one worker only grow */
  }
  if (worker_clock != ws->clock)
    start_clock(ws, worker_clock);
  return record(c, ws, begin, end, err, errlen);
}

int pd_clock_round_complete(const pd_clock *c) {
  return c->update == PD_UPDATE_BSP && c->complete == c->num_workers;
}

void pd_clock_advance(pd_clock *c) {
  PD_ASSERT(pd_clock_round_complete(c));
  c->version++;
  c->complete = 0;
}

int pd_clock_pull_ready(const pd_clock *c, uint32_t worker, int64_t worker_clock, char *err,
                        size_t errlen) {
  if (worker >= c->num_workers) {
    pd_errf(err, errlen, 0, "worker %u is out of range: the job has %u workers", worker,
            c->num_workers);
    return -1;
  }
  if (worker_clock < 0) {
    pd_errf(err, errlen, 0, "clock must be >= 0, got %lld", (long long)worker_clock);
    return -1;
  }
  if (c->update != PD_UPDATE_BSP)
    return 1;
  if (worker_clock > (int64_t)c->version + 1) {
    pd_errf(err, errlen, 0,
            "worker %u pulled clock %lld but the shard is at clock %llu; under BSP a worker "
            "pulls clock c after pushing clock c-1",
            worker, (long long)worker_clock, (unsigned long long)c->version);
    return -1;
  }
  return worker_clock <= (int64_t)c->version;
}

uint64_t pd_clock_version(const pd_clock *c) { return c->version; }
