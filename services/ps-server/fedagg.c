/* Per-device round buffers and commit-by-set; see fedagg.h. */
#include "fedagg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

typedef struct chunk {
  uint64_t off, n;
} chunk;

/* One device's update for one round. */
typedef struct update {
  char device[PD_FEDAGG_DEVICE_MAX + 1];
  uint64_t round;
  double weight;
  float *delta;     /* keys values */
  float *control;   /* scaffold: keys values of Delta c_i; else NULL */
  uint64_t covered; /* keys received */
  chunk *chunks;    /* received ranges */
  size_t nchunks, chunks_cap;
} update;

struct pd_fedagg {
  uint64_t keys;
  uint64_t closed; /* highest round id closed; 0: none yet (round ids start at 1) */
  update **updates;
  size_t nupdates, cap, max_updates;
  double *sum;    /* keys: the weighted sum of a commit */
  float *grad;    /* keys: the pseudo-gradient of the last commit */
  int scaffold;   /* training.federated.aggregation scaffold */
  float *control; /* scaffold: keys, the server control variate c (0 at the start); else NULL */
  pd_fedagg_result last;
  pd_fedagg_stats stats;
};

pd_fedagg *pd_fedagg_new(const pd_job_spec *spec, uint64_t keys) {
  pd_fedagg *f = pd_xcalloc(1, sizeof *f);
  f->keys = keys;
  f->scaffold = spec->training.federated.aggregation == PD_AGG_SCAFFOLD;
  if (f->scaffold)
    f->control = pd_xcalloc(keys, sizeof *f->control);
  uint64_t by_memory = ((uint64_t)1 << 30) / (keys * sizeof(float));
  f->max_updates = (size_t)PD_MIN(4096, PD_MAX(16, by_memory));
  return f;
}

static void update_free(update *u) {
  free(u->delta);
  free(u->control);
  free(u->chunks);
  free(u);
}

void pd_fedagg_free(pd_fedagg *f) {
  if (!f)
    return;
  for (size_t i = 0; i < f->nupdates; i++)
    update_free(f->updates[i]);
  free(f->updates);
  free(f->sum);
  free(f->grad);
  free(f->control);
  free(f);
}

size_t pd_fedagg_max_updates(const pd_fedagg *f) { return f->max_updates; }

const float *pd_fedagg_control(const pd_fedagg *f) { return f->control; }

const pd_fedagg_stats *pd_fedagg_stats_get(const pd_fedagg *f) { return &f->stats; }

void pd_fedagg_server_optimizer(const pd_job_spec *spec, pd_optimizer_spec *out, double *lr) {
#define fed (&spec->training.federated)
  memset(out, 0, sizeof *out);
  out->type = PD_OPT_SGD;
  *lr = 1.0;
  switch (fed->aggregation) {
  case PD_AGG_FEDAVG:
  case PD_AGG_FEDPROX:
    break;
  case PD_AGG_SCAFFOLD: /* x = x + eta_g mean(Delta y) */
    *lr = fed->server_lr;
    break;
  case PD_AGG_FEDAVGM:
    out->type = PD_OPT_MOMENTUM;
    out->momentum = fed->server_momentum;
    *lr = fed->server_lr;
    break;
  case PD_AGG_FEDADAM:
  case PD_AGG_FEDYOGI:
    out->type = fed->aggregation == PD_AGG_FEDADAM ? PD_OPT_ADAM : PD_OPT_YOGI;
    out->no_bias_correction = 1;
    out->beta1 = fed->beta1;
    out->beta2 = fed->beta2;
    out->epsilon = fed->tau;
    *lr = fed->server_lr;
    break;
  }
  out->lr = *lr;
#undef fed
}

static update *find_update(pd_fedagg *f, const char *device, uint64_t round) {
  for (size_t i = 0; i < f->nupdates; i++)
    if (f->updates[i]->round == round && strcmp(f->updates[i]->device, device) == 0)
      return f->updates[i];
  return NULL;
}

enum pd_fed_push pd_fedagg_push(pd_fedagg *f, const char *device, uint64_t round, double weight,
                                uint64_t off, uint64_t n, const float *delta,
                                const float *control_delta, char *err, size_t errlen) {
  size_t len = strlen(device);
  if (len == 0 || len > PD_FEDAGG_DEVICE_MAX) {
    pd_errf(err, errlen, 0, "device: a federated push needs a device id of 1 to %d bytes",
            PD_FEDAGG_DEVICE_MAX);
    return PD_FED_REJECT;
  }
  if (round == 0) {
    pd_errf(err, errlen, 0, "clock: a federated push carries its round id (>= 1), got 0");
    return PD_FED_REJECT;
  }
  if (!(weight > 0) || !isfinite(weight)) {
    pd_errf(err, errlen, 0, "weight: the device's number of samples must be > 0, got %g", weight);
    return PD_FED_REJECT;
  }
  if (n == 0 || off + n > f->keys) {
    pd_errf(err, errlen, 0, "keys [%llu, %llu) are outside the shard's %llu keys",
            (unsigned long long)off, (unsigned long long)(off + n), (unsigned long long)f->keys);
    return PD_FED_REJECT;
  }
  if (f->scaffold != (control_delta != NULL)) {
    pd_errf(err, errlen, 0,
            f->scaffold ? "control_delta: a scaffold job's update carries Delta c_i with Delta y"
                        : "control_delta: only a scaffold job's update carries one");
    return PD_FED_REJECT;
  }
  if (round <= f->closed) {
    f->stats.late_pushes++;
    return PD_FED_LATE;
  }
  update *u = find_update(f, device, round);
  if (u) {
    if (u->weight != weight) {
      pd_errf(err, errlen, 0, "weight: device %s pushed weight %g for round %llu, then %g", device,
              u->weight, (unsigned long long)round, weight);
      return PD_FED_REJECT;
    }
    for (size_t i = 0; i < u->nchunks; i++) {
      const chunk *c = &u->chunks[i];
      if (c->off == off && c->n == n)
        return PD_FED_DUPLICATE;
      if (off < c->off + c->n && c->off < off + n) {
        pd_errf(err, errlen, 0,
                "device %s's chunk [%llu, %llu) of round %llu overlaps [%llu, %llu) it pushed "
                "before",
                device, (unsigned long long)off, (unsigned long long)(off + n),
                (unsigned long long)round, (unsigned long long)c->off,
                (unsigned long long)(c->off + c->n));
        return PD_FED_REJECT;
      }
    }
  } else {
    if (f->nupdates >= f->max_updates) {
      pd_errf(err, errlen, 0,
              "%zu device updates are buffered, the most this shard holds; round %llu has too "
              "many devices",
              f->nupdates, (unsigned long long)round);
      return PD_FED_REJECT;
    }
    if (f->nupdates == f->cap) {
      f->cap = f->cap ? 2 * f->cap : 16;
      f->updates = pd_xrealloc(f->updates, f->cap * sizeof *f->updates);
    }
    u = pd_xcalloc(1, sizeof *u);
    memcpy(u->device, device, len + 1);
    u->round = round;
    u->weight = weight;
    u->delta = pd_xmalloc(f->keys * sizeof(float));
    if (f->scaffold)
      u->control = pd_xmalloc(f->keys * sizeof(float));
    f->updates[f->nupdates++] = u;
  }
  if (u->nchunks == u->chunks_cap) {
    u->chunks_cap = u->chunks_cap ? 2 * u->chunks_cap : 4;
    u->chunks = pd_xrealloc(u->chunks, u->chunks_cap * sizeof *u->chunks);
  }
  u->chunks[u->nchunks++] = (chunk){off, n};
  memcpy(u->delta + off, delta, n * sizeof(float));
  if (control_delta)
    memcpy(u->control + off, control_delta, n * sizeof(float));
  u->covered += n;
  return PD_FED_BUFFERED;
}

int pd_fedagg_pull_ok(const pd_fedagg *f, uint64_t round, char *err, size_t errlen) {
  if (round == 0 || round > f->closed) /* 0: the model as committed (export, evaluation) */
    return 0;
  pd_errf(err, errlen, 0, "round %llu is closed (rounds up to %llu are)", (unsigned long long)round,
          (unsigned long long)f->closed);
  return -1;
}

/* Drops every update of round `round` or older; returns how many were not
 * in the committed set (`counted` of them were). */
static uint32_t drop_through(pd_fedagg *f, uint64_t round, size_t counted) {
  size_t kept = 0, dropped = 0;
  for (size_t i = 0; i < f->nupdates; i++) {
    update *u = f->updates[i];
    if (u->round <= round) {
      update_free(u);
      dropped++;
    } else {
      f->updates[kept++] = u;
    }
  }
  f->nupdates = kept;
  return (uint32_t)(dropped - counted);
}

int pd_fedagg_commit(pd_fedagg *f, uint64_t round, const char *const *devices, size_t n,
                     int abandon, uint32_t population, const float **grad, pd_fedagg_result *result,
                     char *err, size_t errlen) {
  *grad = NULL;
  if (round == 0)
    return pd_errf(err, errlen, -1, "round: must be >= 1");
  if (round <= f->closed) {
    if (round == f->last.round && abandon == f->last.abandoned) {
      *result = f->last; /* a retry */
      return 0;
    }
    return pd_errf(err, errlen, -1, "round %llu is already closed (rounds up to %llu are)",
                   (unsigned long long)round, (unsigned long long)f->closed);
  }
  update **set = NULL;
  if (!abandon) {
    if (n == 0)
      return pd_errf(err, errlen, -1, "devices: a committed round needs at least one device");
    set = pd_xmalloc(n * sizeof *set);
    for (size_t i = 0; i < n; i++) {
      for (size_t k = 0; k < i; k++)
        if (strcmp(devices[i], devices[k]) == 0) {
          free(set);
          return pd_errf(err, errlen, -1, "devices: %s is named twice", devices[i]);
        }
      set[i] = find_update(f, devices[i], round);
      if (!set[i] || set[i]->covered != f->keys) {
        uint64_t got = set[i] ? set[i]->covered : 0;
        free(set);
        return pd_errf(err, errlen, -1,
                       "device %s has pushed %llu of the %llu keys of its round %llu update to "
                       "this shard",
                       devices[i], (unsigned long long)got, (unsigned long long)f->keys,
                       (unsigned long long)round);
      }
    }
  }
  memset(result, 0, sizeof *result);
  result->round = round;
  result->abandoned = abandon;
  if (abandon) {
    f->stats.abandoned++;
  } else {
    if (!f->sum) {
      f->sum = pd_xmalloc(f->keys * sizeof *f->sum);
      f->grad = pd_xmalloc(f->keys * sizeof *f->grad);
    }
    double weight = 0, total = 0;
    for (size_t i = 0; i < n; i++)
      weight += set[i]->weight;
    memset(f->sum, 0, f->keys * sizeof *f->sum);
    for (size_t i = 0; i < n; i++) {
      const float *d = set[i]->delta;
      double w = f->scaffold ? 1 : set[i]->weight; /* scaffold: 1/|S| sum, as Algorithm 1 */
      total += w;
      for (uint64_t k = 0; k < f->keys; k++)
        f->sum[k] += w * (double)d[k];
    }
    for (uint64_t k = 0; k < f->keys; k++)
      f->grad[k] = (float)(-f->sum[k] / total);
    if (f->scaffold) { /* c = c + (1/N) sum_{i in S} Delta c_i */
      double N = (double)PD_MAX((size_t)population, n);
      memset(f->sum, 0, f->keys * sizeof *f->sum);
      for (size_t i = 0; i < n; i++)
        for (uint64_t k = 0; k < f->keys; k++)
          f->sum[k] += (double)set[i]->control[k];
      for (uint64_t k = 0; k < f->keys; k++)
        f->control[k] = (float)((double)f->control[k] + f->sum[k] / N);
    }
    *grad = f->grad;
    result->committed = (uint32_t)n;
    result->weight = weight;
    f->stats.committed++;
    f->stats.updates += n;
  }
  result->discarded = drop_through(f, round, n);
  f->stats.discarded += result->discarded;
  f->closed = round;
  f->last = *result;
  free(set);
  return 0;
}

/* ---- checkpoints: fixed-width little-endian fields */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoints are little-endian");

#define FEDAGG_MAGIC 0x44454646u /* "FFED" */
/* magic, keys, closed, 5 counts, last: round, committed, discarded, weight, abandoned */
#define FEDAGG_BYTES (4 + 8 + 8 + 5 * 8 + 8 + 4 + 4 + 8 + 4)

size_t pd_fedagg_save_size(const pd_fedagg *f) {
  return FEDAGG_BYTES + (f->control ? f->keys * sizeof(float) : 0);
}

static unsigned char *put(unsigned char *out, const void *v, size_t n) {
  memcpy(out, v, n);
  return out + n;
}

void pd_fedagg_save(const pd_fedagg *f, unsigned char *out) {
  uint32_t magic = FEDAGG_MAGIC, abandoned = (uint32_t)f->last.abandoned;
  const pd_fedagg_stats *st = &f->stats;
  out = put(out, &magic, 4);
  out = put(out, &f->keys, 8);
  out = put(out, &f->closed, 8);
  out = put(out, &st->committed, 8);
  out = put(out, &st->abandoned, 8);
  out = put(out, &st->updates, 8);
  out = put(out, &st->late_pushes, 8);
  out = put(out, &st->discarded, 8);
  out = put(out, &f->last.round, 8);
  out = put(out, &f->last.committed, 4);
  out = put(out, &f->last.discarded, 4);
  out = put(out, &f->last.weight, 8);
  out = put(out, &abandoned, 4);
  if (f->control) /* scaffold: the server control variate */
    put(out, f->control, f->keys * sizeof(float));
}

int pd_fedagg_restore(pd_fedagg *f, const unsigned char *bytes, size_t n, char *err,
                      size_t errlen) {
  if (n != pd_fedagg_save_size(f))
    return pd_errf(err, errlen, -PD_EFORMAT, "rounds state: %zu bytes, not %zu", n,
                   pd_fedagg_save_size(f));
  uint32_t magic, abandoned;
  uint64_t keys, closed;
  pd_fedagg_stats st;
  pd_fedagg_result last;
  const unsigned char *at = bytes;
#define TAKE(v, k) (memcpy((v), at, (k)), at += (k))
  TAKE(&magic, 4);
  TAKE(&keys, 8);
  TAKE(&closed, 8);
  TAKE(&st.committed, 8);
  TAKE(&st.abandoned, 8);
  TAKE(&st.updates, 8);
  TAKE(&st.late_pushes, 8);
  TAKE(&st.discarded, 8);
  TAKE(&last.round, 8);
  TAKE(&last.committed, 4);
  TAKE(&last.discarded, 4);
  TAKE(&last.weight, 8);
  TAKE(&abandoned, 4);
#undef TAKE
  if (magic != FEDAGG_MAGIC)
    return pd_errf(err, errlen, -PD_EFORMAT, "rounds state: not saved rounds");
  if (keys != f->keys)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "rounds state: saved for %llu keys, the shard has %llu",
                   (unsigned long long)keys, (unsigned long long)f->keys);
  if (last.round > closed || abandoned > 1 || st.committed + st.abandoned > closed)
    return pd_errf(err, errlen, -PD_EFORMAT, "rounds state: inconsistent counts");
  last.abandoned = (int)abandoned;
  if (f->control)
    memcpy(f->control, at, f->keys * sizeof(float));
  drop_through(f, UINT64_MAX, 0);
  f->closed = closed;
  f->stats = st;
  f->last = last;
  return 0;
}
