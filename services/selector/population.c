/* The online population: a dense array of devices and an open-addressing
 * index by id; see population.h. */
#include "population.h"

#include <stdlib.h>
#include <string.h>

#include "pando/util.h"
#include "selection.h"

struct pd_population {
  pd_device **devices;
  size_t n, cap;
  uint32_t *slots; /* index into devices + 1; 0: empty */
  size_t nslots;   /* a power of two, at least 2 n */
};

#define hash_id pd_selection_hash_id

static void reindex(pd_population *p) {
  size_t want = 16;
  while (want < 2 * p->n + 2)
    want *= 2;
  if (want != p->nslots) {
    free(p->slots);
    p->slots = pd_xmalloc(want * sizeof *p->slots);
    p->nslots = want;
  }
  memset(p->slots, 0, p->nslots * sizeof *p->slots);
  for (size_t i = 0; i < p->n; i++) {
    size_t s = hash_id(p->devices[i]->id) & (p->nslots - 1);
    while (p->slots[s])
      s = (s + 1) & (p->nslots - 1);
    p->slots[s] = (uint32_t)i + 1;
  }
}

pd_population *pd_population_new(void) {
  pd_population *p = pd_xcalloc(1, sizeof *p);
  reindex(p);
  return p;
}

static void device_free(pd_device *d, void (*release)(pd_task *task)) {
  if (d->task && release)
    release(d->task);
  free(d->id);
  free(d->jobs);
  free(d->attributes);
  memset(d->secret, 0, sizeof d->secret);
  free(d);
}

void pd_population_free(pd_population *p, void (*release)(pd_task *task)) {
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    device_free(p->devices[i], release);
  free(p->devices);
  free(p->slots);
  free(p);
}

size_t pd_population_size(const pd_population *p) { return p->n; }

pd_device *pd_population_at(pd_population *p, size_t i) { return i < p->n ? p->devices[i] : NULL; }

pd_device *pd_population_find(pd_population *p, const char *id) {
  size_t s = hash_id(id) & (p->nslots - 1);
  for (; p->slots[s]; s = (s + 1) & (p->nslots - 1)) {
    pd_device *d = p->devices[p->slots[s] - 1];
    if (strcmp(d->id, id) == 0)
      return d;
  }
  return NULL;
}

void pd_device_set(char **field, const char *value) {
  if (*field && strcmp(*field, value) == 0)
    return;
  free(*field);
  *field = pd_xstrdup(value);
}

pd_device *pd_population_upsert(pd_population *p, const char *id, int *created) {
  pd_device *d = pd_population_find(p, id);
  *created = d == NULL;
  if (d)
    return d;
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 64;
    p->devices = pd_xrealloc(p->devices, p->cap * sizeof *p->devices);
  }
  d = pd_xcalloc(1, sizeof *d);
  d->id = pd_xstrdup(id);
  d->jobs = pd_xstrdup("");
  d->attributes = pd_xstrdup("");
  p->devices[p->n++] = d;
  if (2 * p->n + 2 > p->nslots) {
    reindex(p);
  } else {
    size_t s = hash_id(id) & (p->nslots - 1);
    while (p->slots[s])
      s = (s + 1) & (p->nslots - 1);
    p->slots[s] = (uint32_t)p->n;
  }
  return d;
}

size_t pd_population_expire(pd_population *p, double now, void (*release)(pd_task *task)) {
  size_t kept = 0, gone = 0;
  for (size_t i = 0; i < p->n; i++) {
    pd_device *d = p->devices[i];
    if (d->expires < now) {
      device_free(d, release);
      gone++;
    } else {
      p->devices[kept++] = d;
    }
  }
  p->n = kept;
  if (gone)
    reindex(p);
  return gone;
}
