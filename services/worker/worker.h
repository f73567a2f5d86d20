/* pando-worker: waits for an assignment from the coordinator, loads its
 * partition of the training data, and runs the worker loop of the job's
 * epochs (pull, gradient of the mini-batch, push), reporting progress. */
#ifndef PANDO_WORKER_WORKER_H
#define PANDO_WORKER_WORKER_H

#include <stddef.h>

#include "pando.pb-c.h"
#include "pando/rpc.h"

typedef struct pd_worker_options {
  const char *coordinator; /* coordinator address */
  const char *listen;      /* where the health service listens */
  const char *advertise;   /* address to register ("" = derived) */
  const char *name;        /* shown in logs and `pandoctl cluster` */
  const char *port_file;   /* write the health port here ("" = no) */
  double slowdown;         /* testing aid: sleep (slowdown - 1) x the compute time per batch */
  double batch_delay_sec;  /* testing aid: and this long */
  uint32_t trace_events;   /* spans kept until reported (pandoctl trace); 0: off */
} pd_worker_options;

/* Runs the worker daemon until SIGTERM/SIGINT. Returns the exit code. */
int pd_worker_main(const pd_worker_options *options);

/* Trains one assignment to the end. Progress goes to `coordinator` (may be
 * NULL: no reports); `options` (may be NULL) gives the straggler settings.
 * Returns 0, -PD_ECANCELLED when the coordinator said to stop, -PD_ERPC when
 * a server could not be reached or ended a call (the job may recover),
 * -PD_ESTATE when a server refused a pull or push, or another negative
 * error with a message in `err`. */
int pd_worker_train(const Pando__V1__Assignment *assignment, pd_rpc_channel *coordinator,
                    const pd_worker_options *options, char *err, size_t errlen);

#endif
