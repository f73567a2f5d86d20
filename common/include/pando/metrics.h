/* Prometheus metrics: a process-wide registry of counters, gauges and
 * histograms, served in the text exposition format on GET /metrics by
 * libmicrohttpd's own thread. Updates are atomic and lock-free, so hot paths
 * (every RPC) pay a few nanoseconds; registering takes a lock. */
#ifndef PANDO_METRICS_H
#define PANDO_METRICS_H

#include <stddef.h>

typedef struct pd_metric pd_metric;

/* Writes `value` to dst[0, dstlen) as a label value of the exposition
 * format: backslash, double quote and newline escaped (\\, \", \n), cut
 * to fit. Label values that come from a request (a job id) must go through
 * it, so that no value can end its label or its line. Returns dst. */
char *pd_metric_escape(const char *value, char *dst, size_t dstlen);

/* Returns the metric `name` with `labels` (Prometheus label pairs without
 * braces, e.g. "method=\"/pando.v1.ParameterServer/Pull\"", or "" for none),
 * registering it the first time. All members of a family (same name) must
 * have the same type and help. Strings are copied. Never returns NULL.
 * The registry holds at most PD_METRIC_MAX_SERIES series (label values come
 * from requests: job ids); past that, a new series is a sink that is never
 * exported, and pando_metric_series_dropped_total counts them. */
#define PD_METRIC_MAX_SERIES 20000
pd_metric *pd_metric_counter(const char *name, const char *help, const char *labels);
pd_metric *pd_metric_gauge(const char *name, const char *help, const char *labels);
/* A histogram with the default latency buckets (50 us .. 60 s). */
pd_metric *pd_metric_histogram(const char *name, const char *help, const char *labels);

/* A histogram with `n` (1..PD_METRIC_MAX_BUCKETS) increasing upper bounds
 * `bounds` (+Inf is implicit), e.g. integer buckets {0, 1, 2, 4, 8}. The
 * array is borrowed for the life of the process (a static table). */
#define PD_METRIC_MAX_BUCKETS 19
pd_metric *pd_metric_histogram_buckets(const char *name, const char *help, const char *labels,
                                       const double *bounds, size_t n);

/* Changes the bound on series (tests). */
void pd_metrics_set_max_series(size_t n);

/* Adds `value` to a counter (value >= 0) or gauge. */
void pd_metric_add(pd_metric *metric, double value);
/* Sets a gauge. */
void pd_metric_set(pd_metric *metric, double value);
/* Records one observation in a histogram. */
void pd_metric_observe(pd_metric *metric, double value);
/* The current value of a counter or gauge (for tests and status output). */
double pd_metric_value(const pd_metric *metric);

/* Writes the whole registry in the text exposition format (version 0.0.4)
 * into a malloc'd string (caller frees); *len receives its length. */
char *pd_metrics_render(size_t *len);

/* Serves GET /metrics on `address` ("host:port"; port 0 picks a free one) on
 * a thread of its own. Returns the bound port, or a negative error with a
 * message in `err`. One server per process. */
int pd_metrics_serve(const char *address, char *err, size_t errlen);
/* Serves `body` (len bytes, copied) at GET `path` (e.g. "/dashboard") with
 * `content_type`, replacing what was published there before: a daemon's
 * loop publishes snapshots, the HTTP thread serves the latest. At most 8
 * paths; "/metrics" is the registry's. Returns 0 or a negative error. */
int pd_metrics_publish(const char *path, const char *content_type, const char *body, size_t len);
/* Stops the server (no-op when none runs). */
void pd_metrics_stop(void);

#endif
