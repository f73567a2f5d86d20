/* Consistency decisions for one shard (BSP, BSP with backup workers, SSP,
 * ASP) and what they observed; see clock.h. */
#include "clock.h"

#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

const double pd_staleness_bounds[PD_STALENESS_BUCKETS - 1] = {0, 1, 2, 4, 8, 16, 32};

typedef struct interval {
  uint64_t begin, end;
} interval;

/* What the shard has received from one worker for that worker's current clock. */
typedef struct worker_state {
  int64_t clock;      /* the clock the intervals below belong to; -1: none yet */
  interval *received; /* disjoint key ranges pushed at `clock` */
  size_t nreceived, cap;
  uint64_t covered; /* keys covered by `received` */
  int64_t done;     /* the worker's clock: 1 + the newest clock of a whole gradient */
} worker_state;

struct pd_clock {
  pd_clock_options opt; /* update is BSP for SSP with staleness 0 */
  uint64_t version;     /* BSP: the shard's clock (completed rounds); else gradients applied */
  uint32_t complete;    /* BSP: whole gradients accepted into this round */
  worker_state *workers;
  pd_clock_stats stats;
  int64_t last_staleness; /* of the last push, -1: none */
};

pd_clock_options pd_clock_options_of(const pd_job_spec *spec, uint32_t num_workers, uint64_t keys) {
  pd_clock_options o = {spec->training.update, num_workers, 0, 0, keys};
  if (o.update == PD_UPDATE_SSP) {
    o.staleness = (uint32_t)spec->training.staleness;
    if (o.staleness == 0)
      o.update = PD_UPDATE_BSP; /* SSP with s = 0 is BSP, bit for bit */
  }
  if (o.update == PD_UPDATE_BSP)
    o.backup_workers = (uint32_t)spec->training.backup_workers;
  return o;
}

pd_clock *pd_clock_new_with(const pd_clock_options *o) {
  PD_ASSERT(o->num_workers > 0 && o->keys > 0 && o->backup_workers < o->num_workers);
  PD_ASSERT(o->update == PD_UPDATE_BSP || o->backup_workers == 0);
  pd_clock *c = pd_xcalloc(1, sizeof *c);
  c->opt = *o;
  if (c->opt.update == PD_UPDATE_SSP && c->opt.staleness == 0)
    c->opt.update = PD_UPDATE_BSP;
  c->last_staleness = -1;
  c->workers = pd_xcalloc(o->num_workers, sizeof *c->workers);
  for (uint32_t w = 0; w < o->num_workers; w++)
    c->workers[w].clock = -1;
  return c;
}

pd_clock *pd_clock_new(enum pd_update update, uint32_t num_workers, uint64_t keys) {
  pd_clock_options o = {update, num_workers, 0, 0, keys};
  return pd_clock_new_with(&o);
}

void pd_clock_free(pd_clock *clock) {
  if (!clock)
    return;
  for (uint32_t w = 0; w < clock->opt.num_workers; w++)
    free(clock->workers[w].received);
  free(clock->workers);
  free(clock);
}

int pd_clock_has_rounds(const pd_clock *c) { return c->opt.update == PD_UPDATE_BSP; }

uint32_t pd_clock_round_size(const pd_clock *c) {
  return c->opt.num_workers - c->opt.backup_workers;
}

static void start_clock(worker_state *ws, int64_t clock) {
  ws->clock = clock;
  ws->nreceived = 0;
  ws->covered = 0;
}

static void observe_staleness(pd_clock *c, int64_t model_version) {
  if (model_version < 0)
    return;
  uint64_t staleness =
      c->version > (uint64_t)model_version ? c->version - (uint64_t)model_version : 0;
  size_t i = 0;
  while (i < PD_STALENESS_BUCKETS - 1 && (double)staleness > pd_staleness_bounds[i])
    i++;
  c->stats.staleness[i]++;
  c->last_staleness = (int64_t)staleness;
  c->stats.staleness_sum += staleness;
}

/* Records [begin, end) for the worker's current clock: DUPLICATE if exactly
 * that range was received, REJECT if it overlaps another one, else 0; *whole
 * is set when this range completes the worker's gradient. */
static int record(pd_clock *c, worker_state *ws, uint64_t begin, uint64_t end, int *whole,
                  char *err, size_t errlen) {
  *whole = 0;
  for (size_t i = 0; i < ws->nreceived; i++) {
    interval *r = &ws->received[i];
    if (r->begin == begin && r->end == end)
      return PD_PUSH_DUPLICATE;
    if (begin < r->end && r->begin < end) {
      pd_errf(err, errlen, 0,
              "keys [%llu, %llu) overlap keys [%llu, %llu) already pushed at clock %lld",
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
  if (ws->covered == c->opt.keys) {
    *whole = 1;
    ws->done = PD_MAX(ws->done, ws->clock + 1);
  }
  return 0;
}

/* BSP: a push for the round `version` or an older one. */
static enum pd_push_verdict on_round_push(pd_clock *c, worker_state *ws, uint32_t worker,
                                          int64_t worker_clock, int64_t model_version,
                                          uint64_t begin, uint64_t end, char *err, size_t errlen) {
  int64_t round = (int64_t)c->version;
  int backups = c->opt.backup_workers > 0, whole;
  if (worker_clock > round) {
    pd_errf(err, errlen, 0,
            "worker %u pushed clock %lld but the shard is at clock %lld; under BSP a worker "
            "pushes clock c only after its pull of clock c",
            worker, (long long)worker_clock, (long long)round);
    return PD_PUSH_REJECT;
  }
  if (worker_clock < ws->clock || (!backups && worker_clock < round))
    return PD_PUSH_DUPLICATE; /* that gradient was applied (or dropped) already */
  if (worker_clock != ws->clock)
    start_clock(ws, worker_clock);
  int rc = record(c, ws, begin, end, &whole, err, errlen);
  if (rc != 0)
    return (enum pd_push_verdict)rc;
  if (!backups) {
    if (whole) {
      c->complete++;
      observe_staleness(c, model_version);
    }
    return PD_PUSH_ACCUMULATE;
  }
  /* backup workers: the first round-size whole gradients of the round count */
  if (worker_clock < round || (whole && c->complete == pd_clock_round_size(c))) {
    if (whole)
      c->stats.dropped++;
    return PD_PUSH_DROP;
  }
  if (!whole)
    return PD_PUSH_BUFFER;
  c->complete++;
  observe_staleness(c, model_version);
  return PD_PUSH_BUFFER_ACCEPT;
}

enum pd_push_verdict pd_clock_on_push(pd_clock *c, uint32_t worker, int64_t worker_clock,
                                      int64_t model_version, uint64_t begin, uint64_t end,
                                      char *err, size_t errlen) {
  PD_ASSERT(worker < c->opt.num_workers && begin < end && end <= c->opt.keys);
  worker_state *ws = &c->workers[worker];
  c->last_staleness = -1;
  if (worker_clock < 0 || worker_clock > PD_CLOCK_MAX) {
    pd_errf(err, errlen, 0,
            worker_clock < 0 ? "clock must be >= 0, got %lld"
                             : "clock %lld is beyond the largest clock a job can reach (2^40)",
            (long long)worker_clock);
    return PD_PUSH_REJECT;
  }
  if (c->opt.update == PD_UPDATE_BSP)
    return on_round_push(c, ws, worker, worker_clock, model_version, begin, end, err, errlen);
  if (c->opt.update == PD_UPDATE_SSP && worker_clock > ws->done) {
    /* an honest worker pushes clock c after its pull of clock c, which
     * needs c <= its whole gradients: a later clock would make its correct
     * pushes look like retries */
    pd_errf(err, errlen, 0,
            "worker %u pushed clock %lld but has pushed %lld whole gradients; under SSP a "
            "worker pushes clock c only after its pull of clock c",
            worker, (long long)worker_clock, (long long)ws->done);
    return PD_PUSH_REJECT;
  }
  if (worker_clock < ws->clock)
    return PD_PUSH_DUPLICATE; /* ASP and SSP clocks of one worker only grow */
  if (worker_clock != ws->clock)
    start_clock(ws, worker_clock);
  int whole;
  int rc = record(c, ws, begin, end, &whole, err, errlen);
  if (rc != 0)
    return (enum pd_push_verdict)rc;
  if (whole) {
    observe_staleness(c, model_version);
    c->version++;
  }
  return PD_PUSH_APPLY;
}

int pd_clock_round_complete(const pd_clock *c) {
  return c->opt.update == PD_UPDATE_BSP && c->complete == pd_clock_round_size(c);
}

void pd_clock_advance(pd_clock *c) {
  PD_ASSERT(pd_clock_round_complete(c));
  c->version++;
  c->complete = 0;
}

int64_t pd_clock_slowest(const pd_clock *c) {
  int64_t slowest = INT64_MAX;
  for (uint32_t w = 0; w < c->opt.num_workers; w++)
    slowest = PD_MIN(slowest, c->workers[w].done);
  return slowest;
}

int pd_clock_pull_ready(const pd_clock *c, uint32_t worker, int64_t worker_clock, char *err,
                        size_t errlen) {
  if (worker >= c->opt.num_workers) {
    pd_errf(err, errlen, 0, "worker %u is out of range: the job has %u workers", worker,
            c->opt.num_workers);
    return -1;
  }
  if (worker_clock < 0 || worker_clock > PD_CLOCK_MAX) {
    pd_errf(err, errlen, 0,
            worker_clock < 0 ? "clock must be >= 0, got %lld"
                             : "clock %lld is beyond the largest clock a job can reach (2^40)",
            (long long)worker_clock);
    return -1;
  }
  switch (c->opt.update) {
  case PD_UPDATE_FEDAVG: /* rounds are fedagg.c's; ps.c never asks the clock */
  case PD_UPDATE_ASP:
    return 1;
  case PD_UPDATE_SSP:
    if (worker_clock > c->workers[worker].done) {
      pd_errf(err, errlen, 0,
              "worker %u pulled clock %lld but has pushed %lld whole gradients; under SSP a "
              "worker pulls clock c after pushing clock c-1",
              worker, (long long)worker_clock, (long long)c->workers[worker].done);
      return -1;
    }
    return pd_clock_slowest(c) >= worker_clock - (int64_t)c->opt.staleness;
  case PD_UPDATE_BSP:
    break;
  }
  if (worker_clock > (int64_t)c->version + 1) {
    pd_errf(err, errlen, 0,
            "worker %u pulled clock %lld but the shard is at clock %llu; under BSP a worker "
            "pulls clock c after pushing clock c-1",
            worker, (long long)worker_clock, (unsigned long long)c->version);
    return -1;
  }
  return worker_clock <= (int64_t)c->version;
}

void pd_clock_on_pull(pd_clock *c, int64_t worker_clock, int answered) {
  if (!answered) {
    c->stats.blocked++;
    return;
  }
  int64_t gap = worker_clock - pd_clock_slowest(c);
  if (gap > 0 && (uint64_t)gap > c->stats.max_gap)
    c->stats.max_gap = (uint64_t)gap;
}

uint64_t pd_clock_version(const pd_clock *c) { return c->version; }

int64_t pd_clock_last_staleness(const pd_clock *c) { return c->last_staleness; }

const pd_clock_stats *pd_clock_stats_get(const pd_clock *c) { return &c->stats; }

/* ---- checkpoints: fixed-width little-endian fields */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoints are little-endian");

#define CLOCK_MAGIC 0x4b434c43u /* "CLCK" */
/* magic, workers, keys, version, complete, stats (8 buckets + 4), per worker 4 */
#define CLOCK_HEADER (4 + 4 + 8 + 8 + 4 + 8 * (PD_STALENESS_BUCKETS + 4))
#define WORKER_HEADER (8 * 4)

size_t pd_clock_save_size(const pd_clock *c) {
  size_t n = CLOCK_HEADER;
  for (uint32_t w = 0; w < c->opt.num_workers; w++)
    n += WORKER_HEADER + 16 * c->workers[w].nreceived;
  return n;
}

static unsigned char *put(unsigned char *out, const void *v, size_t n) {
  memcpy(out, v, n);
  return out + n;
}

void pd_clock_save(const pd_clock *c, unsigned char *out) {
  uint32_t magic = CLOCK_MAGIC;
  out = put(out, &magic, 4);
  out = put(out, &c->opt.num_workers, 4);
  out = put(out, &c->opt.keys, 8);
  out = put(out, &c->version, 8);
  out = put(out, &c->complete, 4);
  out = put(out, c->stats.staleness, 8 * PD_STALENESS_BUCKETS);
  out = put(out, &c->stats.staleness_sum, 8);
  out = put(out, &c->stats.dropped, 8);
  out = put(out, &c->stats.blocked, 8);
  out = put(out, &c->stats.max_gap, 8);
  for (uint32_t w = 0; w < c->opt.num_workers; w++) {
    const worker_state *ws = &c->workers[w];
    uint64_t count = ws->nreceived;
    out = put(out, &ws->clock, 8);
    out = put(out, &ws->done, 8);
    out = put(out, &ws->covered, 8);
    out = put(out, &count, 8);
    for (size_t i = 0; i < ws->nreceived; i++) {
      out = put(out, &ws->received[i].begin, 8);
      out = put(out, &ws->received[i].end, 8);
    }
  }
}

/* Reads `n` bytes at *at into `v` unless fewer than that are left before `end`. */
static int take(const unsigned char **at, const unsigned char *end, void *v, size_t n) {
  if ((size_t)(end - *at) < n)
    return -1;
  memcpy(v, *at, n);
  *at += n;
  return 0;
}

int pd_clock_restore(pd_clock *c, const unsigned char *bytes, size_t n, char *err, size_t errlen) {
  const unsigned char *at = bytes, *end = bytes + n;
  uint32_t magic, workers, complete;
  uint64_t keys, version;
  pd_clock_stats stats;
  if (take(&at, end, &magic, 4) || take(&at, end, &workers, 4) || take(&at, end, &keys, 8) ||
      take(&at, end, &version, 8) || take(&at, end, &complete, 4) ||
      take(&at, end, stats.staleness, 8 * PD_STALENESS_BUCKETS) ||
      take(&at, end, &stats.staleness_sum, 8) || take(&at, end, &stats.dropped, 8) ||
      take(&at, end, &stats.blocked, 8) || take(&at, end, &stats.max_gap, 8))
    return pd_errf(err, errlen, -PD_EFORMAT, "clock state: truncated (%zu bytes)", n);
  if (magic != CLOCK_MAGIC)
    return pd_errf(err, errlen, -PD_EFORMAT, "clock state: not a saved clock");
  if (workers != c->opt.num_workers || keys != c->opt.keys)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "clock state: saved for %u workers and %llu keys, the shard has %u and %llu",
                   workers, (unsigned long long)keys, c->opt.num_workers,
                   (unsigned long long)c->opt.keys);
  if (complete > pd_clock_round_size(c))
    return pd_errf(err, errlen, -PD_EFORMAT, "clock state: %u gradients in a round of %u", complete,
                   pd_clock_round_size(c));
  worker_state *ws = pd_xcalloc(workers, sizeof *ws);
  int rc = 0;
  for (uint32_t w = 0; w < workers && rc == 0; w++) {
    uint64_t count, covered = 0;
    if (take(&at, end, &ws[w].clock, 8) || take(&at, end, &ws[w].done, 8) ||
        take(&at, end, &ws[w].covered, 8) || take(&at, end, &count, 8) ||
        count > (uint64_t)(end - at) / 16) {
      rc = pd_errf(err, errlen, -PD_EFORMAT, "clock state: worker %u truncated", w);
      break;
    }
    ws[w].nreceived = ws[w].cap = (size_t)count;
    ws[w].received = count ? pd_xmalloc(count * sizeof(interval)) : NULL;
    for (size_t i = 0; i < count; i++) {
      interval *r = &ws[w].received[i];
      take(&at, end, &r->begin, 8);
      take(&at, end, &r->end, 8);
      if (r->begin >= r->end || r->end > keys) {
        rc = pd_errf(err, errlen, -PD_EFORMAT, "clock state: worker %u: bad key range", w);
        break;
      }
      covered += r->end - r->begin;
    }
    if (rc == 0 && (covered != ws[w].covered || covered > keys || ws[w].clock < -1))
      rc = pd_errf(err, errlen, -PD_EFORMAT, "clock state: worker %u: inconsistent counts", w);
  }
  if (rc == 0 && at != end)
    rc = pd_errf(err, errlen, -PD_EFORMAT, "clock state: %zu bytes left over", (size_t)(end - at));
  if (rc != 0) {
    for (uint32_t w = 0; w < workers; w++)
      free(ws[w].received);
    free(ws);
    return rc;
  }
  for (uint32_t w = 0; w < c->opt.num_workers; w++)
    free(c->workers[w].received);
  free(c->workers);
  c->workers = ws;
  c->version = version;
  c->complete = complete;
  c->stats = stats;
  c->last_staleness = -1;
  return 0;
}
