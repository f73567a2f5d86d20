/* pando-ps: the ParameterServer service. Holds shards of any number of jobs
 * and answers Pull, Push, CreateShard and DropShard on one event loop. */
#ifndef PANDO_PS_PS_H
#define PANDO_PS_PS_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "pando/rpc.h"

typedef struct pd_ps pd_ps;

/* Counters of one job on this server (for status and tests). */
typedef struct pd_ps_stats {
  uint64_t version;
  uint64_t pushes_applied, pushes_duplicate, pushes_rejected, pushes_dropped;
  pd_clock_stats clock; /* staleness, dropped, blocked, clock gap */
} pd_ps_stats;

pd_ps *pd_ps_new(void);
/* Makes the server write the checkpoints that its jobs' specs ask for
 * (checkpoint.every_*) under `data_dir` (copied; created if missing), on a
 * writer thread, and restore shards from them (CreateShard's
 * restore_checkpoint). Without it no checkpoint is written. Returns 0 or
 * -errno with a message in `err`. */
int pd_ps_set_data_dir(pd_ps *ps, const char *data_dir, char *err, size_t errlen);
/* How much memory the shards of all jobs may take together
 * (pd_shard_bytes); a CreateShard beyond it is refused with
 * RESOURCE_EXHAUSTED saying what is needed and what is free. 0: the default,
 * 3/4 of the machine's memory or of the cgroup's limit, whichever is lower. */
void pd_ps_set_memory_limit(pd_ps *ps, uint64_t bytes);
uint64_t pd_ps_memory_limit(const pd_ps *ps);
/* How many trace spans (pandoctl trace) each job's shard keeps, the oldest
 * overwritten; 0 records none. Applies to shards created afterwards. */
#define PD_PS_TRACE_EVENTS 65536 /* the default */
void pd_ps_set_trace_events(pd_ps *ps, uint32_t events);
/* Finishes the checkpoints being written, fails pulls still waiting and
 * frees every shard. */
void pd_ps_free(pd_ps *ps);
/* Registers the ParameterServer methods (and health) on `srv`. */
void pd_ps_register(pd_ps *ps, pd_rpc_server *srv);
/* Number of jobs held. */
int pd_ps_num_jobs(const pd_ps *ps);
/* Counters of `job`; returns 0 or -PD_ENOTFOUND. */
int pd_ps_stats_get(const pd_ps *ps, const char *job, pd_ps_stats *out);

#endif
