/* Trace rings; see trace.h. */
#include "pando/trace.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pando/util.h"

void pd_trace_init(pd_trace *t, size_t capacity) {
  memset(t, 0, sizeof *t);
  t->capacity = capacity;
  struct timespec rt;
  uint64_t mono = pd_now_ns();
  clock_gettime(CLOCK_REALTIME, &rt);
  t->realtime_minus_ns =
      (int64_t)((uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec) - (int64_t)mono;
}

void pd_trace_close(pd_trace *t) {
  free(t->events);
  t->events = NULL;
  t->count = t->next = 0;
}

/* The slot the next span goes to. */
static pd_trace_event *slot(pd_trace *t) {
  if (!t->events)
    t->events = pd_xmalloc(t->capacity * sizeof *t->events);
  pd_trace_event *e = &t->events[t->next];
  t->next = t->next + 1 == t->capacity ? 0 : t->next + 1;
  t->added++;
  if (t->count < t->capacity)
    t->count++;
  else
    t->dropped++;
  return e;
}

void pd_trace_span(pd_trace *t, const char *name, uint64_t start_ns, uint64_t end_ns, int64_t clock,
                   uint32_t worker, uint32_t tid) {
  if (t->capacity == 0)
    return;
  pd_trace_event *e = slot(t);
  pd_strlcpy(e->name, name, sizeof e->name);
  /* floor both ends: a span inside another stays inside once rounded */
  uint64_t begin_us = (uint64_t)((int64_t)start_ns + t->realtime_minus_ns) / 1000;
  uint64_t end_us = (uint64_t)((int64_t)end_ns + t->realtime_minus_ns) / 1000;
  e->ts_us = begin_us;
  e->dur_us = end_us - begin_us;
  e->clock = clock;
  e->worker = worker;
  e->tid = tid;
}

void pd_trace_add(pd_trace *t, const Pando__V1__TraceEvent *in) {
  if (t->capacity == 0)
    return;
  pd_trace_event *e = slot(t);
  pd_strlcpy(e->name, in->name, sizeof e->name);
  e->ts_us = in->ts_us;
  e->dur_us = in->dur_us;
  e->clock = in->clock;
  e->worker = in->worker;
  e->tid = in->tid;
}

void pd_trace_pop(pd_trace *t, size_t n) { t->count -= PD_MIN(n, t->count); }

size_t pd_trace_fill(const pd_trace *t, int64_t from_clock, int64_t to_clock, uint64_t *seq,
                     size_t max, Pando__V1__TraceEvent *out, Pando__V1__TraceEvent **ptrs) {
  uint64_t oldest = t->added - t->count;
  if (*seq < oldest)
    *seq = oldest;
  if (*seq > t->added)
    *seq = t->added;
  size_t filled = 0, first = (t->next + t->capacity - t->count) % (t->capacity ? t->capacity : 1);
  for (; *seq < t->added && filled < max; (*seq)++) {
    const pd_trace_event *e = &t->events[(first + (size_t)(*seq - oldest)) % t->capacity];
    if (e->clock < from_clock || (to_clock >= 0 && e->clock > to_clock))
      continue;
    Pando__V1__TraceEvent *m = &out[filled];
    pando__v1__trace_event__init(m);
    m->name = (char *)e->name;
    m->ts_us = e->ts_us;
    m->dur_us = e->dur_us;
    m->clock = e->clock;
    m->worker = e->worker;
    m->tid = e->tid;
    ptrs[filled++] = m;
  }
  return filled;
}
