/* The selector's online population: every device with a live session (it
 * checked in and its reconnect window has not run out), found by id. Memory
 * is bounded by the devices online: one pd_device (~190 bytes) plus its
 * strings (id, job names, attributes: at most 128 + 2 x 1024 bytes; a
 * typical device with a 16-byte id, one job and two attributes uses ~60)
 * and 8 bytes of index, so 10,000 devices cost about 3 MB. */
#ifndef PANDO_SELECTOR_POPULATION_H
#define PANDO_SELECTOR_POPULATION_H

#include <stddef.h>
#include <stdint.h>

#include "pando/security.h"

/* A task waiting for a device (owned by the selector, reference counted). */
typedef struct pd_task pd_task;

typedef struct pd_device {
  char *id;             /* the device's id (owned) */
  char *jobs;           /* comma-separated job names it serves, "" any (owned) */
  char *attributes;     /* comma-separated attributes that held at its last check-in (owned) */
  uint64_t num_samples; /* n_k */
  double last_seen;     /* pd_now() of its last check-in */
  double expires;       /* forgotten after this pd_now() */
  int busy;             /* working on a task: not selectable */
  pd_task *task;        /* selected: handed out at its next check-in (a reference), or NULL */
  char secret[2 * PD_SECURITY_JOB_TOKEN_BYTES +
              1]; /* CheckInResponse.session_secret; never logged */
} pd_device;

typedef struct pd_population pd_population;

pd_population *pd_population_new(void);
/* Frees every device; `release` (may be NULL) is called on each pending task. */
void pd_population_free(pd_population *p, void (*release)(pd_task *task));
size_t pd_population_size(const pd_population *p);
/* The i-th device, 0 <= i < size (the order changes when devices expire). */
pd_device *pd_population_at(pd_population *p, size_t i);
pd_device *pd_population_find(pd_population *p, const char *id);
/* The device `id`, added (zeroed, strings empty) when it is not online;
 * *created says which. */
pd_device *pd_population_upsert(pd_population *p, const char *id, int *created);
/* Forgets the devices whose `expires` is before `now`, calling `release`
 * (may be NULL) on their pending tasks; returns how many went. */
size_t pd_population_expire(pd_population *p, double now, void (*release)(pd_task *task));
/* Replaces *field (owned) with a copy of `value`. */
void pd_device_set(char **field, const char *value);

#endif
