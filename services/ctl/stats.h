/* `pandoctl stats JOB`: where a job's time went, per worker (the phase
 * counters of its last progress report, JobStatus.worker_phases) and per
 * server shard (StatsResponse.phases), as heavy-hitter tables sorted by
 * time, or as JSON. */
#ifndef PANDO_CTL_STATS_H
#define PANDO_CTL_STATS_H

#include <stddef.h>
#include <stdio.h>

#include "pando.pb-c.h"

/* Prints the phase tables of `status` (borrowed) and of its shards:
 * servers[i] is shard i's GetStats answer, NULL when it did not answer
 * (status->shard_map gives the shards). `json`: the JSON document instead
 * (README "pandoctl stats" shows both). */
void pd_ctl_print_phase_stats(FILE *out, int json, const Pando__V1__JobStatus *status,
                              Pando__V1__StatsResponse *const *servers);

#endif
