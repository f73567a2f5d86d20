/* Unit tests of the metric registry's bound (common/src/net/metrics.c):
 * series past PD_METRIC_MAX_SERIES are sinks that are never exported, the
 * drop is counted, and the exported text stays the same size however many
 * job ids a client makes up. */
#include "pando/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test.h"

static size_t count_lines(const char *text, const char *prefix) {
  size_t n = 0, len = strlen(prefix);
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : 0)
    n += strncmp(line, prefix, len) == 0;
  return n;
}

static void test_series_bound(void) {
  pd_metrics_set_max_series(5);
  char labels[64];
  for (int i = 0; i < 1000; i++) {
    snprintf(labels, sizeof labels, "job=\"job-%d\"", i);
    pd_metric_add(pd_metric_counter("pando_test_total", "A test counter.", labels), 1);
    pd_metric_observe(pd_metric_histogram("pando_test_seconds", "A test histogram.", labels), 0.01);
  }
  size_t len;
  char *text = pd_metrics_render(&len);
  /* the first 5 series: job-0..2's counters, job-0..1's histograms */
  CHECK_EQ_INT(count_lines(text, "pando_test_total{"), 3);
  CHECK_EQ_INT(count_lines(text, "pando_test_seconds_count{"), 2);
  CHECK(strstr(text, "pando_metric_series_dropped_total 1995\n") != NULL);
  /* an existing series is still found and updated */
  pd_metric *first = pd_metric_counter("pando_test_total", "A test counter.", "job=\"job-0\"");
  pd_metric_add(first, 1);
  CHECK(pd_metric_value(first) == 2);
  free(text);
  text = pd_metrics_render(&len);
  CHECK(strstr(text, "pando_test_total{job=\"job-0\"} 2\n") != NULL);
  free(text);
}

int main(int argc, char **argv) {
  PD_RUN(test_series_bound);
  PD_TEST_DONE();
}
