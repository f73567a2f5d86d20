/* Phase counters for `pandoctl stats`: how many times each phase of a
 * worker's or a server's work ran and how long it took (CLOCK_MONOTONIC),
 * and their PhaseStat messages (proto/pando.proto). */
#ifndef PANDO_PHASE_H
#define PANDO_PHASE_H

#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"

/* One phase's cumulative counters. */
typedef struct pd_phase_stat {
  uint64_t count; /* runs of the phase */
  uint64_t ns;    /* nanoseconds spent in them */
} pd_phase_stat;

/* Counts one run of a phase that began at `start_ns` (pd_now_ns) and
 * returns the time it ended, so that back-to-back phases read the clock
 * once each. */
uint64_t pd_phase_end(pd_phase_stat *phase, uint64_t start_ns);

/* Adds `count` runs that took `ns` nanoseconds in all. */
static inline void pd_phase_add(pd_phase_stat *phase, uint64_t count, uint64_t ns) {
  phase->count += count;
  phase->ns += ns;
}

/* Fills out[] (and ptrs[], for a repeated field) with one PhaseStat per
 * phase of stats[n] that ran, named names[i] (borrowed, as is nothing
 * else); returns how many were filled (at most n). */
size_t pd_phase_fill(const pd_phase_stat *stats, const char *const *names, size_t n,
                     Pando__V1__PhaseStat *out, Pando__V1__PhaseStat **ptrs);

#endif
