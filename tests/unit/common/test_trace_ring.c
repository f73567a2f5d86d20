/* Unit tests of the trace rings and phase counters (common/src/base/trace.c,
 * phase.c). */
#include "pando/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/phase.h"
#include "pando/util.h"
#include "pando/wire.h"

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
  uint64_t seq = 0;
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, &seq, 4, out, ptrs), 4);
  CHECK_EQ_INT(seq, 6); /* sequence numbers 2..5: the oldest two were overwritten */
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(ptrs[i]->clock, i + 2);
    CHECK_EQ_INT(ptrs[i]->worker, 1);
    CHECK_EQ_INT(ptrs[i]->tid, 2);
    CHECK_STR_CONTAINS(ptrs[i]->name, "push");
  }
  CHECK(ptrs[1]->ts_us > ptrs[0]->ts_us);
  seq = 0;
  CHECK_EQ_INT(pd_trace_fill(&t, 3, 4, &seq, 4, out, ptrs), 2); /* the window */
  CHECK_EQ_INT(ptrs[0]->clock, 3);
  CHECK_EQ_INT(ptrs[1]->clock, 4);
  /* popped spans were shipped: gone, not dropped */
  pd_trace_pop(&t, 3);
  CHECK_EQ_INT(t.count, 1);
  CHECK_EQ_INT(t.dropped, 2);
  seq = 0;
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, &seq, 4, out, ptrs), 1);
  CHECK_EQ_INT(ptrs[0]->clock, 5);
  pd_trace_pop(&t, 10);
  seq = 0;
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, &seq, 4, out, ptrs), 0);
  CHECK_EQ_INT(seq, t.added);
  pd_trace_close(&t);
}

/* Paging through a ring `max` spans at a time gives every span of the
 * window once, in order, also when spans are recorded and overwritten
 * between pages (those are skipped). */
static void test_pages(void) {
  pd_trace t;
  pd_trace_init(&t, 100);
  for (int i = 0; i < 90; i++)
    pd_trace_span(&t, "pull", 1000u * (uint64_t)i, 1000u * (uint64_t)i + 1, i, 0, 0);
  Pando__V1__TraceEvent out[7], *ptrs[7];
  uint64_t seq = 0;
  int64_t expect = 10, pages = 0;
  while (seq < t.added) {
    size_t n = pd_trace_fill(&t, 10, 79, &seq, 7, out, ptrs);
    CHECK(n <= 7);
    for (size_t i = 0; i < n; i++)
      CHECK_EQ_INT(ptrs[i]->clock, expect++);
    pages++;
  }
  CHECK_EQ_INT(expect, 80); /* clocks 10..79, each once */
  CHECK_EQ_INT(pages, 11);  /* 70 spans in 10 pages of 7, and an empty one: past the window */
  /* 20 more overwrite the 10 oldest while a reader is at clock 5 */
  seq = 0;
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, &seq, 5, out, ptrs), 5);
  for (int i = 90; i < 110; i++)
    pd_trace_span(&t, "push", 1000u * (uint64_t)i, 1000u * (uint64_t)i + 1, i, 0, 0);
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, &seq, 7, out, ptrs), 7);
  CHECK_EQ_INT(ptrs[0]->clock, 10); /* the oldest kept */
  CHECK_EQ_INT(seq, 17);
  pd_trace_close(&t);
}

/* A ProgressReport at its largest (every phase, a full batch of spans with
 * every field set and names of the longest kept) passes the limits a
 * coordinator checks before it decodes a report; one more batch would not. */
static void test_full_report_passes_wire_check(void) {
  static Pando__V1__TraceEvent events[2 * PD_TRACE_MESSAGE_EVENTS];
  static Pando__V1__TraceEvent *event_ptrs[2 * PD_TRACE_MESSAGE_EVENTS];
  Pando__V1__PhaseStat phases[16], *phase_ptrs[16];
  char name[PD_TRACE_NAME_MAX];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  for (size_t i = 0; i < 2 * PD_TRACE_MESSAGE_EVENTS; i++) {
    pando__v1__trace_event__init(&events[i]);
    events[i].name = name;
    events[i].ts_us = UINT64_MAX;
    events[i].dur_us = UINT64_MAX;
    events[i].clock = -1;
    events[i].worker = UINT32_MAX;
    events[i].tid = UINT32_MAX;
    event_ptrs[i] = &events[i];
  }
  for (size_t i = 0; i < 16; i++) {
    pando__v1__phase_stat__init(&phases[i]);
    phases[i].phase = "local_update";
    phases[i].count = phases[i].total_ns = UINT64_MAX;
    phase_ptrs[i] = &phases[i];
  }
  Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
  r.job = "job-with-a-long-name-0123456789";
  r.rank = r.attempt = r.epoch = UINT32_MAX;
  r.step = UINT64_MAX;
  r.loss = r.samples_per_sec = r.test_loss = r.test_accuracy = r.test_rmse = 1.5;
  r.has_eval = r.done = r.unreachable = 1;
  r.error = "an error";
  r.phases = phase_ptrs;
  r.n_phases = 16; /* the most the coordinator keeps (PD_JOB_PHASES_MAX) */
  r.wall_ns = r.trace_dropped = UINT64_MAX;
  r.trace = event_ptrs;
  r.n_trace = PD_TRACE_MESSAGE_EVENTS;
  char err[256];
  size_t len = protobuf_c_message_get_packed_size(&r.base);
  uint8_t *buf = malloc(len);
  protobuf_c_message_pack(&r.base, buf);
  CHECK_EQ_INT(pd_wire_check(buf, len, &pando__v1__progress_report__descriptor, err, sizeof err),
               0);
  free(buf);
  r.n_trace = 2 * PD_TRACE_MESSAGE_EVENTS;
  len = protobuf_c_message_get_packed_size(&r.base);
  buf = malloc(len);
  protobuf_c_message_pack(&r.base, buf);
  CHECK_EQ_INT(pd_wire_check(buf, len, &pando__v1__progress_report__descriptor, err, sizeof err),
               -PD_ETOOBIG);
  free(buf);
  /* and a page of GetTrace */
  Pando__V1__TraceResponse page = PANDO__V1__TRACE_RESPONSE__INIT;
  page.events = event_ptrs;
  page.n_events = PD_TRACE_MESSAGE_EVENTS;
  page.dropped = page.next_cursor = UINT64_MAX;
  len = protobuf_c_message_get_packed_size(&page.base);
  buf = malloc(len);
  protobuf_c_message_pack(&page.base, buf);
  CHECK_EQ_INT(pd_wire_check(buf, len, &pando__v1__trace_response__descriptor, err, sizeof err), 0);
  free(buf);
}

/* The page size a request asks for, within the message limit. */
static void test_page_size(void) {
  CHECK_EQ_INT(pd_trace_page_size(0), PD_TRACE_MESSAGE_EVENTS);
  CHECK_EQ_INT(pd_trace_page_size(7), 7);
  CHECK_EQ_INT(pd_trace_page_size(PD_TRACE_MESSAGE_EVENTS + 1), PD_TRACE_MESSAGE_EVENTS);
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
  uint64_t seq = 0;
  CHECK_EQ_INT(pd_trace_fill(&t, 0, -1, &seq, 2, out, ptrs), 2);
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
  PD_RUN(test_pages);
  PD_RUN(test_full_report_passes_wire_check);
  PD_RUN(test_page_size);
  PD_RUN(test_realtime_and_nesting);
  PD_RUN(test_off_records_nothing);
  PD_RUN(test_phase_fill);
  PD_TEST_DONE();
}
