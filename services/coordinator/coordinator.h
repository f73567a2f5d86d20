/* pando-coordinator: the Coordinator service. Registers servers and
 * workers, validates and queues jobs, plans their shards and data
 * partitions, creates the shards on the servers, hands out assignments,
 * records progress, and fails jobs whose nodes stop sending heartbeats. */
#ifndef PANDO_COORD_COORDINATOR_H
#define PANDO_COORD_COORDINATOR_H

#include "pando/rpc.h"

typedef struct pd_coord pd_coord;

/* A dead node is shown (pandoctl cluster) for this many node timeouts, then
 * forgotten: the registry is bounded (PD_REGISTRY_MAX) and a flood of
 * registrations that never send a heartbeat does not stay for ever. */
#define PD_COORD_FORGET_AFTER 6

/* At most this many SubmitJob calls have their data files checked at once
 * (each on a thread of its own, off the event loop); more are refused with
 * RESOURCE_EXHAUSTED. */
#define PD_COORD_MAX_CHECKS 8

typedef struct pd_coord_options {
  double heartbeat_sec;    /* how often nodes should send Heartbeat */
  double node_timeout_sec; /* a node silent this long is dead */
  uint32_t keep_models;    /* succeeded jobs whose shards stay on the servers */
  uint32_t keep_jobs;      /* finished jobs remembered (pd_jobs_set_retention) */
  int dashboard;           /* serve the web dashboard (dashboard.h) on the metrics port */
  const char *data_dir;    /* its state in SQLite there (store.h); NULL or "": in memory */
} pd_coord_options;

/* The coordinator's client calls (CreateShard, DropShard) complete on `loop`.
 * With options->data_dir it loads its state from there (pd_jobs_reload).
 * Returns NULL when that fails, with why in `err`. */
pd_coord *pd_coord_new(pd_loop *loop, const pd_coord_options *options, char *err, size_t errlen);
/* Waits for its calls in flight and frees everything. */
void pd_coord_free(pd_coord *coord);
/* Registers the Coordinator methods (and health) on `srv`. */
void pd_coord_register(pd_coord *coord, pd_rpc_server *srv);
/* Periodic work: start pending jobs, time out waiting ones, detect dead
 * nodes. Call it from the daemon's cron. */
void pd_coord_cron(pd_coord *coord);

#endif
