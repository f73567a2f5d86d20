/* Bounded rings of trace spans for `pandoctl trace`: a fixed number of
 * events, the oldest overwritten, timestamps in CLOCK_REALTIME
 * microseconds so that the spans of processes on one host merge. Not
 * thread-safe: one thread records into a ring (or the caller locks). */
#ifndef PANDO_TRACE_H
#define PANDO_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"

#define PD_TRACE_NAME_MAX 16

/* The most spans one message carries (ProgressReport.trace, a page of
 * TraceResponse.events). A TraceEvent takes at most 7 field occurrences of
 * a received message's PD_WIRE_MAX_FIELDS (4096, pando/wire.h): 512 take
 * 3584 and leave the rest of a ProgressReport room (test_trace_ring checks
 * a full one passes pd_wire_check). */
#define PD_TRACE_MESSAGE_EVENTS 512

/* One span. */
typedef struct pd_trace_event {
  char name[PD_TRACE_NAME_MAX]; /* the phase */
  uint64_t ts_us;               /* start, CLOCK_REALTIME microseconds */
  uint64_t dur_us;
  int64_t clock;   /* the worker's clock (step) */
  uint32_t worker; /* the worker whose loop or call it is */
  uint32_t tid;    /* lane in the process (TraceEvent.tid) */
} pd_trace_event;

/* A ring in caller storage; `capacity` 0 records nothing. */
typedef struct pd_trace {
  pd_trace_event *events; /* [capacity], allocated on the first span */
  size_t capacity, next, count;
  uint64_t added;            /* spans ever recorded: the newest one's sequence number + 1 */
  uint64_t dropped;          /* spans overwritten */
  int64_t realtime_minus_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC, read at init */
} pd_trace;

void pd_trace_init(pd_trace *trace, size_t capacity);
void pd_trace_close(pd_trace *trace);
/* Whether it records (capacity > 0). */
static inline int pd_trace_on(const pd_trace *trace) { return trace->capacity > 0; }

/* Records a span named `name` (copied, truncated) from `start_ns` to
 * `end_ns` (pd_now_ns, CLOCK_MONOTONIC). */
void pd_trace_span(pd_trace *trace, const char *name, uint64_t start_ns, uint64_t end_ns,
                   int64_t clock, uint32_t worker, uint32_t tid);
/* Records a TraceEvent as it came (the coordinator keeping a worker's). */
void pd_trace_add(pd_trace *trace, const Pando__V1__TraceEvent *event);
/* Forgets the oldest `n` spans (all of them when there are fewer); they
 * were shipped, they are not counted as dropped. */
void pd_trace_pop(pd_trace *trace, size_t n);

/* The page size a TraceRequest.max_events asks for: PD_TRACE_MESSAGE_EVENTS
 * when it is 0 or more. */
static inline size_t pd_trace_page_size(uint32_t max_events) {
  return max_events && max_events < PD_TRACE_MESSAGE_EVENTS ? max_events : PD_TRACE_MESSAGE_EVENTS;
}

/* Fills out[] and ptrs[] (`max` entries each, caller storage) with the spans
 * of clocks in [from_clock, to_clock] (to_clock < 0: no limit), oldest
 * first, beginning with the span of sequence number *seq (0 for the first
 * one recorded; the oldest kept when that one was overwritten), at most
 * `max` of them; names borrow from the ring. *seq receives the sequence
 * number of the first span it did not look at: trace->added when it looked
 * at all of them, so a caller pages through a ring by passing it back.
 * Returns how many were filled. */
size_t pd_trace_fill(const pd_trace *trace, int64_t from_clock, int64_t to_clock, uint64_t *seq,
                     size_t max, Pando__V1__TraceEvent *out, Pando__V1__TraceEvent **ptrs);

#endif
