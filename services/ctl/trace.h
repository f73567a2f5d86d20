/* `pandoctl trace JOB -o FILE`: the workers' spans (from the coordinator)
 * and the servers' (from each shard) merged into one file of the Chrome
 * trace event format, for Perfetto or chrome://tracing. */
#ifndef PANDO_CTL_TRACE_H
#define PANDO_CTL_TRACE_H

#include <stdio.h>

#include "pando.pb-c.h"

/* Writes the trace of the job `status` describes to `path`: `workers` is
 * the coordinator's GetTrace answer (NULL: none), servers[i] shard i's
 * (NULL: it did not answer). One process (pid) per worker and per server,
 * named by process_name metadata events; lanes (tid) as TraceEvent.tid; a
 * complete event ("ph": "X") per span, ts and dur in microseconds since the
 * earliest span, its worker, clock and kind in "args". A line on `out` says
 * what was written. Returns 0, or -1 after a message on `errout`. */
int pd_ctl_write_trace(const char *path, const Pando__V1__JobStatus *status,
                       const Pando__V1__TraceResponse *workers,
                       Pando__V1__TraceResponse *const *servers, FILE *out, FILE *errout);

#endif
