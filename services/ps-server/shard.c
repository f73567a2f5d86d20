/* Shard storage, push application and the pulls waiting for the clock; see
 * shard.h. */
#include "shard.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fedagg.h"
#include "pando/error.h"
#include "pando/model.h"
#include "pando/optimizer.h"
#include "pando/schedule.h"
#include "pando/util.h"

/* ---------------------------------------------------------------- values
 *
 * A pull answer's payload is not a copy: it is made of slices that borrow the
 * parameter memory, which gRPC reads asynchronously (until the bytes are in
 * the socket) and releases from any of its threads. Memory that a slice
 * borrows must not change, so the values are kept copy-on-write, block by
 * block:
 *
 * - There are two full-size buffers; buf[1] is allocated the first time it is
 *   needed. cur[b] says which one holds the current values of block b.
 * - Every (buffer, block) has a lease: the number of slices borrowing it.
 *   Only the loop thread adds to a lease; gRPC threads only subtract.
 * - A write to block b (a push or a BSP round) first checks the lease of
 *   cur[b]. Zero: nobody reads it, write in place. Otherwise: copy the block
 *   into the other buffer, make that one current, and write there.
 * - A pull borrows block b only when the other buffer's lease of b is zero,
 *   so that a later write can always move the block; otherwise it copies the
 *   block as a snapshot. At most one buffer of a block is ever borrowed.
 *
 * Pulls and pushes that do not overlap in time (a worker's pull finishes
 * before its push) never copy. */

#define BLOCK_KEYS PD_SHARD_BLOCK_KEYS

typedef struct pd_shard_values pd_shard_values;

typedef struct lease {
  pd_shard_values *values;
  atomic_uint slices; /* slices borrowing this block of this buffer */
} lease;

struct pd_shard_values {
  uint64_t keys, nblocks;
  float *buf[2];    /* keys values each; buf[1] NULL until first needed */
  uint8_t *cur;     /* per block: index of the buffer holding its values */
  lease *leases[2]; /* per buffer, per block */
  atomic_uint refs; /* one for the shard, one per borrowing slice */
};

static pd_shard_values *values_new(uint64_t keys) {
  pd_shard_values *v = pd_xcalloc(1, sizeof *v);
  v->keys = keys;
  v->nblocks = (keys + BLOCK_KEYS - 1) / BLOCK_KEYS;
  v->buf[0] = pd_xmalloc_aligned(keys * sizeof(float));
  v->cur = pd_xcalloc(v->nblocks, 1);
  for (int i = 0; i < 2; i++) {
    v->leases[i] = pd_xcalloc(v->nblocks, sizeof(lease));
    for (uint64_t b = 0; b < v->nblocks; b++) {
      v->leases[i][b].values = v;
      atomic_init(&v->leases[i][b].slices, 0);
    }
  }
  atomic_init(&v->refs, 1);
  return v;
}

static void values_unref(pd_shard_values *v) {
  if (atomic_fetch_sub(&v->refs, 1) != 1)
    return;
  for (int i = 0; i < 2; i++) {
    free(v->buf[i]);
    free(v->leases[i]);
  }
  free(v->cur);
  free(v);
}

/* Runs on whichever thread drops a borrowing slice's last reference. */
static void lease_release(void *user) {
  lease *l = user;
  pd_shard_values *v = l->values;
  atomic_fetch_sub(&l->slices, 1);
  values_unref(v);
}

static uint64_t block_end(const pd_shard_values *v, uint64_t b) {
  return PD_MIN(v->keys, (b + 1) * BLOCK_KEYS);
}

/* The buffer whose block b may be written now, moving the block first if
 * slices borrow it. */
static float *block_for_write(pd_shard_values *v, uint64_t b) {
  int c = v->cur[b];
  if (atomic_load(&v->leases[c][b].slices) == 0)
    return v->buf[c];
  PD_ASSERT(atomic_load(&v->leases[!c][b].slices) == 0);
  if (!v->buf[1])
    v->buf[1] = pd_xmalloc_aligned(v->keys * sizeof(float));
  uint64_t lo = b * BLOCK_KEYS;
  memcpy(v->buf[!c] + lo, v->buf[c] + lo, (block_end(v, b) - lo) * sizeof(float));
  v->cur[b] = (uint8_t)!c;
  return v->buf[!c];
}

/* Copies a block that moved while its old copy is still being sent. */
static void copy_release(void *user) { free(user); }

size_t pd_shard_max_slices(uint64_t n) { return (size_t)(n / PD_SHARD_BLOCK_KEYS + 2); }

/* Slices holding keys [off, off + n), borrowed where possible; returns how
 * many were written to `out` (room for pd_shard_max_slices(n)). */
static size_t values_slices(pd_shard_values *v, uint64_t off, uint64_t n, pd_shard_slice *out) {
  PD_ASSERT(off + n <= v->keys);
  size_t count = 0;
  for (uint64_t b = off / BLOCK_KEYS; b * BLOCK_KEYS < off + n; b++) {
    uint64_t lo = PD_MAX(off, b * BLOCK_KEYS), hi = PD_MIN(off + n, block_end(v, b));
    int c = v->cur[b];
    const float *src = v->buf[c] + lo;
    pd_shard_slice *out_slice = &out[count++];
    out_slice->n = hi - lo;
    if (atomic_load(&v->leases[!c][b].slices) == 0) {
      atomic_fetch_add(&v->leases[c][b].slices, 1);
      atomic_fetch_add(&v->refs, 1);
      out_slice->data = src;
      out_slice->release = lease_release;
      out_slice->user = &v->leases[c][b];
    } else { /* the block moved while the old copy is still being sent */
      float *copy = pd_xmalloc((hi - lo) * sizeof(float));
      memcpy(copy, src, (hi - lo) * sizeof(float));
      out_slice->data = copy;
      out_slice->release = copy_release;
      out_slice->user = copy;
    }
  }
  return count;
}

/* Applies `grad` (values of keys [off, off + n)) with the optimizer at
 * learning rate `lr`. */
static void values_step(pd_shard_values *v, pd_optimizer *opt, const float *grad, uint64_t off,
                        uint64_t n, double lr) {
  for (uint64_t b = off / BLOCK_KEYS; b * BLOCK_KEYS < off + n; b++) {
    uint64_t lo = PD_MAX(off, b * BLOCK_KEYS), hi = PD_MIN(off + n, block_end(v, b));
    pd_optimizer_step(opt, block_for_write(v, b), grad + (lo - off), lo, hi - lo, lr);
  }
}

static void values_read(const pd_shard_values *v, uint64_t off, uint64_t n, float *out) {
  PD_ASSERT(off + n <= v->keys);
  for (uint64_t b = off / BLOCK_KEYS; b * BLOCK_KEYS < off + n; b++) {
    uint64_t lo = PD_MAX(off, b * BLOCK_KEYS), hi = PD_MIN(off + n, block_end(v, b));
    memcpy(out + (lo - off), v->buf[v->cur[b]] + lo, (hi - lo) * sizeof(float));
  }
}

uint64_t pd_shard_bytes(const pd_job_spec *spec, uint64_t begin, uint64_t end,
                        uint32_t num_workers) {
  return pd_optimizer_shard_bytes(spec, end - begin, num_workers);
}

/* ---------------------------------------------------------------- shard */

struct pd_shard_parked {
  pd_shard_parked *next, **prev; /* in shard->waiting or shard->ready */
  void *tag;
  uint32_t worker;
  int64_t clock;
  uint64_t off, n;
  uint64_t parked_ns; /* when it was parked (pd_now_ns) */
};

struct pd_shard {
  pd_job_spec spec;    /* the job spec it was created from */
  uint64_t begin, end; /* global keys held */
  uint32_t num_workers;
  uint64_t min_partition_rows; /* rows of the smallest worker partition (lr schedule) */
  pd_shard_values *values;     /* end - begin parameter values */
  float *accum;                /* BSP: sum of the round's gradients; NULL under ASP, SSP */
  float *buffers;              /* backup workers: each worker's gradient until it is whole */
  pd_optimizer optimizer;
  struct {
    int64_t begin, end; /* clocks of the epoch whose lr was looked up last */
    double lr;
  } lr_epoch;
  pd_clock *clock;
  struct pd_fedagg *fed;    /* training.update fedavg: the rounds (fedagg.c); else NULL */
  float *swa;               /* training.federated.swa_from: the models' running average */
  uint64_t swa_n;           /* rounds in it */
  uint64_t swa_round;       /* the committed round added last */
  pd_shard_parked *waiting; /* pulls parked until the clock allows them */
  pd_shard_parked *ready;   /* parked pulls the clock now allows, to be answered */
};

pd_shard *pd_shard_new(const pd_job_spec *spec, uint64_t begin, uint64_t end, uint32_t num_workers,
                       uint64_t min_partition_rows, char *err, size_t errlen) {
  PD_ASSERT(begin < end && num_workers > 0);
  PD_ASSERT(min_partition_rows > 0 || spec->training.lr_schedule.type == PD_LR_CONSTANT);
  pd_shard *s = pd_xcalloc(1, sizeof *s);
  s->spec = *spec;
  s->begin = begin;
  s->end = end;
  s->num_workers = num_workers;
  s->min_partition_rows = min_partition_rows;
  s->lr_epoch.begin = s->lr_epoch.end = -1;
  uint64_t keys = end - begin;
  s->values = values_new(keys);
  if (pd_model_init_range(&spec->model, begin, end, s->values->buf[0], err, errlen) != 0) {
    values_unref(s->values);
    free(s);
    return NULL;
  }
  pd_clock_options clock = pd_clock_options_of(spec, num_workers, keys);
  s->clock = pd_clock_new_with(&clock);
  if (pd_clock_has_rounds(s->clock)) {
    s->accum = pd_xmalloc_aligned(keys * sizeof(float));
    memset(s->accum, 0, keys * sizeof(float));
  }
  if (clock.backup_workers > 0)
    s->buffers = pd_xmalloc_aligned((size_t)num_workers * keys * sizeof(float));
  if (spec->training.update == PD_UPDATE_FEDAVG) {
    /* training.optimizer is the devices'; the shard steps with the server's */
    pd_optimizer_spec server;
    double lr;
    pd_fedagg_server_optimizer(spec, &server, &lr);
    pd_optimizer_init(&s->optimizer, &server, keys);
    s->fed = pd_fedagg_new(spec, keys);
    if (spec->training.federated.swa_from > 0)
      s->swa = pd_xcalloc(keys, sizeof(float));
  } else {
    pd_optimizer_init(&s->optimizer, &spec->training.optimizer, keys);
  }
  return s;
}

void pd_shard_free(pd_shard *s) {
  if (!s)
    return;
  PD_ASSERT(!s->waiting && !s->ready);
  pd_clock_free(s->clock);
  pd_fedagg_free(s->fed);
  pd_optimizer_close(&s->optimizer);
  values_unref(s->values);
  free(s->accum);
  free(s->buffers);
  free(s->swa);
  free(s);
}

uint64_t pd_shard_begin(const pd_shard *s) { return s->begin; }
uint64_t pd_shard_end(const pd_shard *s) { return s->end; }
uint32_t pd_shard_num_workers(const pd_shard *s) { return s->num_workers; }
uint64_t pd_shard_min_partition_rows(const pd_shard *s) { return s->min_partition_rows; }
const pd_job_spec *pd_shard_spec(const pd_shard *s) { return &s->spec; }
const pd_clock *pd_shard_clock(const pd_shard *s) { return s->clock; }

struct pd_fedagg *pd_shard_fed(pd_shard *s) {
  return s->fed;
}

void pd_shard_apply(pd_shard *s, const float *grad, double lr) {
  values_step(s->values, &s->optimizer, grad, 0, s->end - s->begin, lr);
}

void pd_shard_fed_average(pd_shard *s) {
  const uint64_t committed = s->swa ? pd_fedagg_stats_get(s->fed)->committed : 0;
  if (!s->swa || committed < (uint64_t)s->spec.training.federated.swa_from ||
      committed == s->swa_round)
    return; /* off, too early, or this round is in already */
  s->swa_round = committed;
  s->swa_n++;
  const float w = 1.0f / (float)s->swa_n;
  float chunk[1024];
  for (uint64_t at = 0, keys = s->end - s->begin; at < keys; at += PD_ARRAY_SIZE(chunk)) {
    uint64_t n = PD_MIN((uint64_t)PD_ARRAY_SIZE(chunk), keys - at);
    values_read(s->values, at, n, chunk);
    for (uint64_t k = 0; k < n; k++)
      s->swa[at + k] += (chunk[k] - s->swa[at + k]) * w;
  }
}

const float *pd_shard_fed_served(const pd_shard *s) { return s->swa_n > 0 ? s->swa : NULL; }

void pd_shard_read(const pd_shard *s, uint64_t off, uint64_t n, float *out) {
  values_read(s->values, off, n, out);
}

size_t pd_shard_slices(pd_shard *s, uint64_t off, uint64_t n, pd_shard_slice *out) {
  return values_slices(s->values, off, n, out);
}

static void link_pull(pd_shard_parked **list, pd_shard_parked *p) {
  p->next = *list;
  p->prev = list;
  if (*list)
    (*list)->prev = &p->next;
  *list = p;
}

static void unlink_pull(pd_shard_parked *p) {
  *p->prev = p->next;
  if (p->next)
    p->next->prev = p->prev;
}

/* Moves the parked pulls the clock now allows to the ready list. */
static void wake_pulls(pd_shard *s) {
  pd_shard_parked *p = s->waiting;
  while (p) {
    pd_shard_parked *next = p->next;
    if (pd_clock_pull_ready(s->clock, p->worker, p->clock, NULL, 0) == 1) {
      pd_clock_on_pull(s->clock, p->clock, 1);
      unlink_pull(p);
      link_pull(&s->ready, p);
    }
    p = next;
  }
}

enum pd_shard_pull_state pd_shard_pull(pd_shard *s, void *tag, uint32_t worker, int64_t clock,
                                       uint64_t off, uint64_t n, pd_shard_parked **parked,
                                       char *err, size_t errlen) {
  PD_ASSERT(off + n <= s->end - s->begin);
  int ready = pd_clock_pull_ready(s->clock, worker, clock, err, errlen);
  if (ready < 0)
    return PD_SHARD_PULL_INVALID;
  pd_clock_on_pull(s->clock, clock, ready);
  if (ready)
    return PD_SHARD_PULL_READY;
  pd_shard_parked *p = pd_xcalloc(1, sizeof *p);
  p->tag = tag;
  p->worker = worker;
  p->clock = clock;
  p->off = off;
  p->n = n;
  p->parked_ns = pd_now_ns();
  link_pull(&s->waiting, p);
  *parked = p;
  return PD_SHARD_PULL_PARKED;
}

void pd_shard_unpark(pd_shard_parked *p) {
  unlink_pull(p);
  free(p);
}

void *pd_shard_next_ready(pd_shard *s, uint64_t *off, uint64_t *n) {
  pd_shard_ready ready = {0};
  void *tag = pd_shard_next_ready_info(s, &ready);
  *off = ready.off;
  *n = ready.n;
  return tag;
}

void *pd_shard_next_ready_info(pd_shard *s, pd_shard_ready *out) {
  pd_shard_parked *p = s->ready;
  if (!p)
    return NULL;
  void *tag = p->tag;
  out->off = p->off;
  out->n = p->n;
  out->parked_ns = p->parked_ns;
  out->worker = p->worker;
  out->clock = p->clock;
  pd_shard_unpark(p);
  return tag;
}

void *pd_shard_next_parked(pd_shard *s) {
  pd_shard_parked *p = s->ready ? s->ready : s->waiting;
  if (!p)
    return NULL;
  void *tag = p->tag;
  pd_shard_unpark(p);
  return tag;
}

/* The learning rate of a gradient pushed at worker clock `clock`: the lr
 * schedule's value for the clock's epoch, looked up once per epoch (an
 * epoch's clocks follow training.frequency, as the workers count them). */
static double lr_of_clock(pd_shard *s, int64_t clock) {
  if (s->spec.training.lr_schedule.type == PD_LR_CONSTANT)
    return s->spec.training.optimizer.lr;
  if (clock < s->lr_epoch.begin || clock >= s->lr_epoch.end) {
    uint32_t step;
    int epoch = pd_schedule_epoch_of_clock(&s->spec, s->min_partition_rows, clock, &step);
    s->lr_epoch.begin = clock - step;
    s->lr_epoch.end =
        s->lr_epoch.begin + pd_schedule_clocks(&s->spec, s->min_partition_rows, epoch);
    s->lr_epoch.lr = pd_schedule_lr(&s->spec, epoch);
  }
  return s->lr_epoch.lr;
}

/* BSP: applies the round's average once it has every gradient it takes. */
static void finish_round(pd_shard *s, int64_t clock) {
  if (!pd_clock_round_complete(s->clock))
    return;
  uint64_t keys = s->end - s->begin;
  cblas_sscal((int)keys, 1.0f / (float)pd_clock_round_size(s->clock), s->accum, 1);
  /* every push of the round has the round's clock: the lr of its epoch */
  values_step(s->values, &s->optimizer, s->accum, 0, keys, lr_of_clock(s, clock));
  memset(s->accum, 0, keys * sizeof(float));
  pd_clock_advance(s->clock);
  wake_pulls(s);
}

enum pd_push_verdict pd_shard_push(pd_shard *s, uint32_t worker, int64_t clock,
                                   int64_t model_version, uint64_t off, uint64_t n,
                                   const float *grad, char *err, size_t errlen) {
  enum pd_push_verdict v =
      pd_clock_on_push(s->clock, worker, clock, model_version, off, off + n, err, errlen);
  uint64_t keys = s->end - s->begin;
  float *buffer = s->buffers ? s->buffers + (size_t)worker * keys : NULL;
  switch (v) {
  case PD_PUSH_APPLY: /* ASP, SSP: at the lr of this push's epoch */
    values_step(s->values, &s->optimizer, grad, off, n, lr_of_clock(s, clock));
    if (s->waiting) /* SSP: the slowest worker may have moved */
      wake_pulls(s);
    break;
  case PD_PUSH_ACCUMULATE:
    cblas_saxpy((int)n, 1.0f, grad, 1, s->accum + off, 1);
    finish_round(s, clock);
    break;
  case PD_PUSH_BUFFER:
    memcpy(buffer + off, grad, n * sizeof(float));
    break;
  case PD_PUSH_BUFFER_ACCEPT:
    memcpy(buffer + off, grad, n * sizeof(float));
    cblas_saxpy((int)keys, 1.0f, buffer, 1, s->accum, 1);
    finish_round(s, clock);
    break;
  case PD_PUSH_DROP: /* nothing changes: the counts are the clock's and the caller's */
  case PD_PUSH_DUPLICATE:
  case PD_PUSH_REJECT:
    break;
  }
  return v;
}

/* ---------------------------------------------------------------- checkpoints */

struct pd_shard_snapshot {
  uint64_t version;
  pd_shard_section sections[PD_SHARD_MAX_SECTIONS];
  size_t nsections;
  pd_shard_slice *slices; /* of "values": borrowed blocks */
  size_t nslices;
  pd_durable_piece *value_pieces;
  pd_durable_piece copies[PD_SHARD_MAX_SECTIONS]; /* the other sections: one copy each */
};

static void add_copy(pd_shard_snapshot *snap, const char *name, const void *data, size_t bytes) {
  size_t i = snap->nsections++;
  PD_ASSERT(i < PD_SHARD_MAX_SECTIONS);
  void *copy = pd_xmalloc(bytes ? bytes : 1);
  memcpy(copy, data, bytes);
  snap->copies[i] = (pd_durable_piece){copy, bytes};
  snap->sections[i] = (pd_shard_section){name, &snap->copies[i], 1, bytes};
}

pd_shard_snapshot *pd_shard_snapshot_take(pd_shard *s) {
  pd_shard_snapshot *snap = pd_xcalloc(1, sizeof *snap);
  uint64_t keys = s->end - s->begin;
  snap->version = pd_clock_version(s->clock);
  snap->slices = pd_xcalloc(pd_shard_max_slices(keys), sizeof *snap->slices);
  snap->nslices = values_slices(s->values, 0, keys, snap->slices);
  snap->value_pieces = pd_xcalloc(snap->nslices, sizeof *snap->value_pieces);
  for (size_t i = 0; i < snap->nslices; i++)
    snap->value_pieces[i] = (pd_durable_piece){snap->slices[i].data, snap->slices[i].n * 4};
  snap->sections[snap->nsections++] =
      (pd_shard_section){"values", snap->value_pieces, snap->nslices, keys * sizeof(float)};
  pd_optimizer_slot slots[PD_OPTIMIZER_MAX_SLOTS];
  int nslots = pd_optimizer_slots(&s->optimizer, slots);
  for (int i = 0; i < nslots; i++)
    add_copy(snap, slots[i].name, slots[i].data, keys * slots[i].elem_size);
  if (s->accum)
    add_copy(snap, "accum", s->accum, keys * sizeof(float));
  if (s->buffers)
    add_copy(snap, "buffers", s->buffers, (size_t)s->num_workers * keys * sizeof(float));
  size_t clock_bytes = pd_clock_save_size(s->clock);
  unsigned char *clock = pd_xmalloc(clock_bytes);
  pd_clock_save(s->clock, clock);
  add_copy(snap, "clock", clock, clock_bytes);
  free(clock);
  if (s->fed) { /* federated: the rounds closed, and the running average */
    size_t fed_bytes = pd_fedagg_save_size(s->fed);
    unsigned char *fed = pd_xmalloc(fed_bytes);
    pd_fedagg_save(s->fed, fed);
    add_copy(snap, "fedagg", fed, fed_bytes);
    free(fed);
  }
  if (s->swa) { /* the average's values, then swa_n and swa_round */
    size_t bytes = keys * sizeof(float) + 16;
    unsigned char *swa = pd_xmalloc(bytes);
    memcpy(swa, s->swa, keys * sizeof(float));
    memcpy(swa + keys * sizeof(float), &s->swa_n, 8);
    memcpy(swa + keys * sizeof(float) + 8, &s->swa_round, 8);
    add_copy(snap, "swa", swa, bytes);
    free(swa);
  }
  return snap;
}

size_t pd_shard_snapshot_sections(const pd_shard_snapshot *snap,
                                  const pd_shard_section **sections) {
  *sections = snap->sections;
  return snap->nsections;
}

uint64_t pd_shard_snapshot_version(const pd_shard_snapshot *snap) { return snap->version; }

void pd_shard_snapshot_free(pd_shard_snapshot *snap) {
  if (!snap)
    return;
  for (size_t i = 0; i < snap->nslices; i++)
    snap->slices[i].release(snap->slices[i].user);
  for (size_t i = 1; i < snap->nsections; i++)
    free((void *)snap->copies[i].data);
  free(snap->slices);
  free(snap->value_pieces);
  free(snap);
}

/* Reads sections' pieces in order into destinations. */
typedef struct piece_reader {
  const pd_shard_section *section;
  size_t piece;
  size_t at; /* bytes of the piece already read */
} piece_reader;

static void read_pieces(piece_reader *r, void *dst, size_t bytes) {
  char *out = dst;
  while (bytes > 0) {
    const pd_durable_piece *p = &r->section->pieces[r->piece];
    size_t n = PD_MIN(bytes, p->bytes - r->at);
    memcpy(out, (const char *)p->data + r->at, n);
    out += n;
    bytes -= n;
    r->at += n;
    if (r->at == p->bytes) {
      r->piece++;
      r->at = 0;
    }
  }
}

static void read_section(const pd_shard_section *section, void *dst) {
  piece_reader r = {section, 0, 0};
  read_pieces(&r, dst, section->bytes);
}

int pd_shard_restore(pd_shard *s, const pd_shard_section *sections, size_t n, char *err,
                     size_t errlen) {
  PD_ASSERT(!s->waiting && !s->ready);
  uint64_t keys = s->end - s->begin;
  /* what this shard's state is made of, and where each part goes */
  struct expect {
    const char *name;
    void *dst; /* NULL: values (block by block) or clock (parsed) */
    uint64_t bytes;
    const pd_shard_section *found;
  } want[PD_SHARD_MAX_SECTIONS];
  size_t nwant = 0;
  want[nwant++] = (struct expect){"values", NULL, keys * sizeof(float), NULL};
  pd_optimizer_slot slots[PD_OPTIMIZER_MAX_SLOTS];
  int nslots = pd_optimizer_slots(&s->optimizer, slots);
  for (int i = 0; i < nslots; i++)
    want[nwant++] = (struct expect){slots[i].name, slots[i].data, keys * slots[i].elem_size, NULL};
  if (s->accum)
    want[nwant++] = (struct expect){"accum", s->accum, keys * sizeof(float), NULL};
  if (s->buffers)
    want[nwant++] = (struct expect){"buffers", s->buffers,
                                    (uint64_t)s->num_workers * keys * sizeof(float), NULL};
  want[nwant++] = (struct expect){"clock", NULL, 0, NULL};
  const size_t clock_at = nwant - 1, fed_at = nwant, swa_at = nwant + (s->fed != NULL);
  if (s->fed)
    want[nwant++] = (struct expect){"fedagg", NULL, 0, NULL};
  if (s->swa)
    want[nwant++] = (struct expect){"swa", NULL, keys * sizeof(float) + 16, NULL};
  for (size_t i = 0; i < n; i++) {
    size_t w = 0;
    while (w < nwant && strcmp(want[w].name, sections[i].name) != 0)
      w++;
    if (w == nwant || want[w].found)
      return pd_errf(err, errlen, -PD_EFORMAT,
                     "section '%s' %s (the shard's optimizer or update strategy differs?)",
                     sections[i].name, w == nwant ? "is not part of this shard" : "appears twice");
    if (want[w].dst || w == 0 || (s->swa && w == swa_at)) {
      if (sections[i].bytes != want[w].bytes)
        return pd_errf(err, errlen, -PD_EFORMAT,
                       "section '%s' has %llu bytes, the shard's %llu keys need %llu",
                       sections[i].name, (unsigned long long)sections[i].bytes,
                       (unsigned long long)keys, (unsigned long long)want[w].bytes);
    }
    want[w].found = &sections[i];
  }
  for (size_t w = 0; w < nwant; w++)
    if (!want[w].found)
      return pd_errf(err, errlen, -PD_EFORMAT, "section '%s' is missing", want[w].name);
  /* the clock and the rounds first: the only parts that can still be refused */
  const pd_shard_section *clock = want[clock_at].found;
  unsigned char *clock_bytes = pd_xmalloc(clock->bytes ? clock->bytes : 1);
  read_section(clock, clock_bytes);
  int rc = pd_clock_restore(s->clock, clock_bytes, clock->bytes, err, errlen);
  free(clock_bytes);
  if (rc == 0 && s->fed) {
    const pd_shard_section *fed = want[fed_at].found;
    unsigned char *fed_bytes = pd_xmalloc(fed->bytes ? fed->bytes : 1);
    read_section(fed, fed_bytes);
    rc = pd_fedagg_restore(s->fed, fed_bytes, fed->bytes, err, errlen);
    free(fed_bytes);
  }
  if (rc != 0)
    return rc;
  piece_reader values = {want[0].found, 0, 0};
  for (uint64_t b = 0; b < s->values->nblocks; b++) {
    uint64_t lo = b * BLOCK_KEYS;
    read_pieces(&values, block_for_write(s->values, b) + lo,
                (block_end(s->values, b) - lo) * sizeof(float));
  }
  for (size_t w = 1; w < clock_at; w++)
    read_section(want[w].found, want[w].dst);
  if (s->swa) {
    piece_reader swa = {want[swa_at].found, 0, 0};
    read_pieces(&swa, s->swa, keys * sizeof(float));
    read_pieces(&swa, &s->swa_n, 8);
    read_pieces(&swa, &s->swa_round, 8);
  }
  s->lr_epoch.begin = s->lr_epoch.end = -1;
  return 0;
}
