/* pando-selector: the Selector service. Devices check in and keep a session
 * by checking in again within the reconnect window each answer gives (pace
 * steering); the coordinator asks for the devices of each round (Select),
 * which learn of their task at their next check-in, and polls the eligible
 * population and tells the demand of its jobs (Population). State: the
 * online population (population.c); decisions: selection.c. */
#ifndef PANDO_SELECTOR_SELECTOR_H
#define PANDO_SELECTOR_SELECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "pando/rpc.h"
#include "selection.h"

typedef struct pd_selector pd_selector;

typedef struct pd_selector_options {
  pd_pace_options pace;
  const char *coordinator; /* put into tasks that name none (where devices report); copied */
  size_t max_devices;      /* check-ins of new devices beyond this are refused */
  double grace_sec;        /* a device is forgotten 2 windows + this after its check-in */
  uint64_t seed;           /* of the reconnect windows' jitter */
} pd_selector_options;

/* What the selector did, for tests and /metrics. */
typedef struct pd_selector_stats {
  uint64_t checkins;      /* check-ins answered */
  uint64_t selected;      /* devices chosen for rounds */
  uint64_t tasks_given;   /* tasks handed to devices at check-in */
  uint64_t tasks_expired; /* tasks whose round timed out before the device checked in */
  uint64_t expired;       /* devices forgotten because they did not check in again */
  double last_window_sec; /* the last (unjittered) reconnect window */
} pd_selector_stats;

pd_selector *pd_selector_new(const pd_selector_options *options);
void pd_selector_free(pd_selector *selector);
/* Registers the Selector methods (and health) on `srv`. */
void pd_selector_register(pd_selector *selector, pd_rpc_server *srv);
/* Periodic work: forgets devices whose window ran out, exports /metrics. */
void pd_selector_cron(pd_selector *selector);
size_t pd_selector_online(const pd_selector *selector);
const pd_selector_stats *pd_selector_stats_get(const pd_selector *selector);

#endif
