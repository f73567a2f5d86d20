/* The coordinator's calls to the parameter servers: CreateShard and
 * DropShard for the jobs' state machine (jobs.h), sent asynchronously on the
 * daemon's loop over one channel per server. */
#ifndef PANDO_COORD_FANOUT_H
#define PANDO_COORD_FANOUT_H

#include "jobs.h"
#include "pando/rpc.h"

typedef struct pd_fanout pd_fanout;

/* Calls complete on `loop` (borrowed). */
pd_fanout *pd_fanout_new(pd_loop *loop);
/* Waits for the calls in flight (their results still reach the jobs), then
 * closes the channels. */
void pd_fanout_free(pd_fanout *fanout);
/* The pd_jobs_fanout that sends through `fanout`; results of CreateShard
 * go to `jobs` (set with pd_fanout_attach before any call). */
pd_jobs_fanout pd_fanout_ops(pd_fanout *fanout);
void pd_fanout_attach(pd_fanout *fanout, pd_jobs *jobs);

#endif
