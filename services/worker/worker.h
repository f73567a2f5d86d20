/* pando-worker: waits for an assignment from the coordinator, loads its
 * partition of the training data, and runs the worker loop of the job's
 * epochs (pull, gradient of the mini-batch, push), reporting progress. */
#ifndef PANDO_WORKER_WORKER_H
#define PANDO_WORKER_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"
#include "pando/rpc.h"
#include "pando/security.h"

typedef struct pd_worker_options {
  const char *coordinator; /* coordinator address */
  const char *listen;      /* where the health service listens */
  const char *advertise;   /* address to register ("" = derived) */
  const char *name;        /* shown in logs and `pandoctl cluster` */
  const char *port_file;   /* write the health port here ("" = no) */
  double slowdown;         /* testing aid: sleep (slowdown - 1) x the compute time per batch */
  double batch_delay_sec;  /* testing aid: and this long */
  uint32_t trace_events;   /* spans kept until reported (pandoctl trace); 0: off */
  double peer_timeout_sec; /* pipelines: deadline of a Peer send and of a wait for a tensor */
  /* pipelines: the mailbox the daemon's Peer service fills (set by
   * pd_worker_main; NULL: this worker cannot run a pipeline stage) */
  struct pd_peer_box *peers;
} pd_worker_options;

/* Who the worker is to the coordinator: its node id and secret
 * (RegisterResponse), sent with each GetAssignment and ProgressReport. The
 * session thread renews them when the node registers again (a coordinator
 * restart) while the training thread reports, hence the lock. */
typedef struct pd_worker_node {
  pthread_mutex_t lock;
  uint64_t id;                                      /* 0: not registered */
  char secret[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1]; /* never logged */
} pd_worker_node;

/* Runs the worker daemon until SIGTERM/SIGINT. Returns the exit code. */
int pd_worker_main(const pd_worker_options *options);

/* Trains one assignment to the end. Progress goes to `coordinator` (may be
 * NULL: no reports) in the name of `node` (borrowed; NULL: node id 0, which
 * the coordinator refuses); `options` (may be NULL) gives the straggler settings.
 * Returns 0, -PD_ECANCELLED when the coordinator said to stop, -PD_ERPC when
 * a server could not be reached or ended a call (the job may recover),
 * -PD_ESTATE when a server refused a pull or push, or another negative
 * error with a message in `err`. */
int pd_worker_train(const Pando__V1__Assignment *assignment, pd_rpc_channel *coordinator,
                    pd_worker_node *node, const pd_worker_options *options, char *err,
                    size_t errlen);

#endif
