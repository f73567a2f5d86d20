/* Unit tests of the trace rings and phase counters (common/src/base/trace.c,
 * phase.c). */
#include "pando/trace.h"

#include <stdint.h>
#include <stdlib.h>

#include "../../test.h"
#include "pando/phase.h"
#include "pando/util.h"

/* A ring keeps the newest `capacity` spans, oldest first, and counts the
 * overwritten ones. */
static void test_ring_keeps_the_newest(void) {
  pd_trace t;
  pd_trace_init(&t, 4);
  for (int i = 0; i < 6; i++)
    pd_trace_span(&t, "push", 1000u * (uint64_t)i, 1000u * (uint64_t)i + 500, i, 1, 2);
  CHECK_EQ_INT(t.count, 4);
  CHECK_EQ_INT(t.dropped, 2);
  Pando__V1__TraceEvent out[4], *ptrs[4];
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, out, ptrs), 4);
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(ptrs[i]->clock, i + 2);
    CHECK_EQ_INT(ptrs[i]->worker, 1);
    CHECK_EQ_INT(ptrs[i]->tid, 2);
    CHECK_STR_CONTAINS(ptrs[i]->name, "push");
  }
  CHECK(ptrs[1]->ts_us > ptrs[0]->ts_us);
  CHECK_EQ_INT(pd_trace_fill(&t, 3, 4, out, ptrs), 2); /* the window */
  CHECK_EQ_INT(ptrs[0]->clock, 3);
  CHECK_EQ_INT(ptrs[1]->clock, 4);
  pd_trace_clear(&t);
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, out, ptrs), 0);
  pd_trace_close(&t);
}

/* Timestamps are CLOCK_REALTIME microseconds; rounding keeps a span that
 * lies inside another inside. */
static void test_realtime_and_nesting(void) {
  pd_trace t;
  pd_trace_init(&t, 8);
  uint64_t now = pd_now_ns();
  pd_trace_span(&t, "outer", now, now + 10999, 0, 0, 0);
  pd_trace_span(&t, "inner", now + 1, now + 10998, 0, 0, 0);
  Pando__V1__TraceEvent out[2], *ptrs[2];
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, out, ptrs), 2);
  double wall_us = pd_wall_now() * 1e6;
  CHECK(ptrs[0]->ts_us > wall_us - 60e6 && ptrs[0]->ts_us < wall_us + 1e6);
  CHECK(ptrs[1]->ts_us >= ptrs[0]->ts_us);
  CHECK(ptrs[1]->ts_us + ptrs[1]->dur_us <= ptrs[0]->ts_us + ptrs[0]->dur_us);
  pd_trace_close(&t);
}

/* A ring of capacity 0 records nothing and allocates nothing. */
static void test_off_records_nothing(void) {
  pd_trace t;
  pd_trace_init(&t, 0);
  CHECK(!pd_trace_on(&t));
  pd_trace_span(&t, "pull", 1, 2, 0, 0, 0);
  CHECK_EQ_INT(t.count, 0);
  CHECK(t.events == NULL);
  pd_trace_close(&t);
}

/* Phase counters add up; only phases that ran become PhaseStat messages. */
static void test_phase_fill(void) {
  static const char *const names[] = {"a", "b", "c"};
  pd_phase_stat st[3] = {{0, 0}};
  pd_phase_add(&st[0], 2, 300);
  uint64_t start = pd_now_ns();
  CHECK(pd_phase_end(&st[2], start) >= start);
  Pando__V1__PhaseStat out[3], *ptrs[3];
  CHECK_EQ_INT(pd_phase_fill(st, names, 3, out, ptrs), 2);
  CHECK_STR_CONTAINS(ptrs[0]->phase, "a");
  CHECK_EQ_INT(ptrs[0]->count, 2);
  CHECK_EQ_INT(ptrs[0]->total_ns, 300);
  CHECK_STR_CONTAINS(ptrs[1]->phase, "c");
  CHECK_EQ_INT(ptrs[1]->count, 1);
}

int main(int argc, char **argv) {
  PD_RUN(test_ring_keeps_the_newest);
  PD_RUN(test_realtime_and_nesting);
  PD_RUN(test_off_records_nothing);
  PD_RUN(test_phase_fill);
  PD_TEST_DONE();
}
