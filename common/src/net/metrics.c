/* Metric registry, text exposition and the /metrics HTTP server; see
 * pando/metrics.h. libmicrohttpd serves HTTP: a well-kept library beats a
 * hand-written HTTP parser on a port that scrapers and people hit. */
#include "pando/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

/* Upper bounds of the latency buckets, in seconds (+Inf is implicit). */
static const double buckets[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3,
                                 10e-3, 25e-3,  50e-3,  0.1,    0.25, 0.5,    1,
                                 2.5,   5,      10,     30,     60};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
_Static_assert(NBUCKETS == PD_METRIC_MAX_BUCKETS, "bucket count");

struct pd_metric {
  pd_metric *next;
  enum kind kind;
  char *name, *help, *labels;
  _Atomic uint64_t value;            /* a double's bits (counter, gauge) */
  _Atomic uint64_t count;            /* histogram: observations */
  _Atomic uint64_t sum;              /* histogram: a double's bits */
  _Atomic uint64_t bucket[NBUCKETS]; /* histogram: observations <= bounds[i] (not cumulative) */
  const double *bounds;              /* histogram: upper bounds (+Inf implicit) */
  size_t nbounds;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pd_metric *registry; /* newest first; rendered oldest first within a family */
static size_t nseries, max_series = PD_METRIC_MAX_SERIES;
/* Where updates of series past max_series go: one per kind, never rendered. */
static pd_metric sink[3] = {{.kind = COUNTER},
                            {.kind = GAUGE},
                            {.kind = HISTOGRAM, .bounds = buckets, .nbounds = NBUCKETS}};
static pd_metric *dropped; /* pando_metric_series_dropped_total */

static double bits_to_double(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}
static uint64_t double_to_bits(double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  return bits;
}

static void atomic_add_double(_Atomic uint64_t *cell, double value) {
  uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(cell, &old,
                                                double_to_bits(bits_to_double(old) + value),
                                                memory_order_relaxed, memory_order_relaxed))
    ;
}

static pd_metric *get(enum kind kind, const char *name, const char *help, const char *labels,
                      const double *bounds, size_t nbounds) {
  pthread_mutex_lock(&lock);
  pd_metric *m;
  for (m = registry; m; m = m->next)
    if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0)
      break;
  if (!m && nseries >= max_series) {
    if (!dropped) { /* outside the bound: it is the one that tells */
      dropped = pd_xcalloc(1, sizeof *dropped);
      dropped->kind = COUNTER;
      dropped->name = pd_xstrdup("pando_metric_series_dropped_total");
      dropped->help = pd_xstrdup("Series not exported because the process holds "
                                 "PD_METRIC_MAX_SERIES of them already.");
      dropped->labels = pd_xstrdup("");
      dropped->next = registry;
      registry = dropped;
    }
    atomic_add_double(&dropped->value, 1);
    pthread_mutex_unlock(&lock);
    return &sink[kind];
  }
  if (!m) {
    nseries++;
    m = pd_xcalloc(1, sizeof *m);
    m->kind = kind;
    m->name = pd_xstrdup(name);
    m->help = pd_xstrdup(help);
    m->labels = pd_xstrdup(labels);
    m->bounds = bounds;
    m->nbounds = nbounds;
    m->next = registry;
    registry = m;
  }
  pthread_mutex_unlock(&lock);
  PD_ASSERT(m->kind == kind);
  return m;
}

void pd_metrics_set_max_series(size_t n) {
  pthread_mutex_lock(&lock);
  max_series = n;
  pthread_mutex_unlock(&lock);
}

pd_metric *pd_metric_counter(const char *name, const char *help, const char *labels) {
  return get(COUNTER, name, help, labels, NULL, 0);
}
pd_metric *pd_metric_gauge(const char *name, const char *help, const char *labels) {
  return get(GAUGE, name, help, labels, NULL, 0);
}
pd_metric *pd_metric_histogram(const char *name, const char *help, const char *labels) {
  return get(HISTOGRAM, name, help, labels, buckets, NBUCKETS);
}
pd_metric *pd_metric_histogram_buckets(const char *name, const char *help, const char *labels,
                                       const double *bounds, size_t n) {
  PD_ASSERT(n >= 1 && n <= NBUCKETS);
  return get(HISTOGRAM, name, help, labels, bounds, n);
}

void pd_metric_add(pd_metric *m, double value) {
  PD_ASSERT(m->kind != HISTOGRAM && (m->kind == GAUGE || value >= 0));
  atomic_add_double(&m->value, value);
}

void pd_metric_set(pd_metric *m, double value) {
  PD_ASSERT(m->kind == GAUGE);
  atomic_store_explicit(&m->value, double_to_bits(value), memory_order_relaxed);
}

void pd_metric_observe(pd_metric *m, double value) {
  PD_ASSERT(m->kind == HISTOGRAM);
  size_t i = 0;
  while (i < m->nbounds && value > m->bounds[i])
    i++;
  if (i < m->nbounds)
    atomic_fetch_add_explicit(&m->bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
  atomic_add_double(&m->sum, value);
}

double pd_metric_value(const pd_metric *m) {
  return bits_to_double(atomic_load_explicit(&m->value, memory_order_relaxed));
}

/* ---------------------------------------------------------------- exposition */

typedef struct out {
  char *buf;
  size_t len, cap;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 256);
    o->buf = pd_xrealloc(o->buf, o->cap);
  }
}

static const char *type_name(enum kind k) {
  return k == COUNTER ? "counter" : k == GAUGE ? "gauge" : "histogram";
}

/* Prints labels with an optional extra pair, as {a="b",le="0.1"}. */
static void put_labels(out *o, const char *labels, const char *extra) {
  if (!*labels && !extra)
    return;
  put(o, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
}

static void render_one(out *o, const pd_metric *m) {
  if (m->kind != HISTOGRAM) {
    put(o, "%s", m->name);
    put_labels(o, m->labels, NULL);
    put(o, " %.17g\n", pd_metric_value(m));
    return;
  }
  uint64_t cumulative = 0;
  char le[48];
  for (size_t i = 0; i < m->nbounds; i++) {
    cumulative += atomic_load_explicit(&m->bucket[i], memory_order_relaxed);
    snprintf(le, sizeof le, "le=\"%g\"", m->bounds[i]);
    put(o, "%s_bucket", m->name);
    put_labels(o, m->labels, le);
    put(o, " %llu\n", (unsigned long long)cumulative);
  }
  uint64_t count = atomic_load_explicit(&m->count, memory_order_relaxed);
  put(o, "%s_bucket", m->name);
  put_labels(o, m->labels, "le=\"+Inf\"");
  put(o, " %llu\n", (unsigned long long)count);
  put(o, "%s_sum", m->name);
  put_labels(o, m->labels, NULL);
  put(o, " %.17g\n", bits_to_double(atomic_load_explicit(&m->sum, memory_order_relaxed)));
  put(o, "%s_count", m->name);
  put_labels(o, m->labels, NULL);
  put(o, " %llu\n", (unsigned long long)count);
}

char *pd_metrics_render(size_t *len) {
  out o = {pd_xmalloc(4096), 0, 4096};
  o.buf[0] = '\0';
  pthread_mutex_lock(&lock);
  /* oldest first, families together: for each first member of a family (in
   * registration order), print its header and every member */
  size_t n = 0;
  for (pd_metric *m = registry; m; m = m->next)
    n++;
  pd_metric **all = pd_xcalloc(n ? n : 1, sizeof *all);
  size_t i = n;
  for (pd_metric *m = registry; m; m = m->next)
    all[--i] = m;
  for (i = 0; i < n; i++) {
    int first = 1;
    for (size_t j = 0; j < i && first; j++)
      first = strcmp(all[j]->name, all[i]->name) != 0;
    if (!first)
      continue;
    put(&o, "# HELP %s %s\n# TYPE %s %s\n", all[i]->name, all[i]->help, all[i]->name,
        type_name(all[i]->kind));
    for (size_t j = i; j < n; j++)
      if (strcmp(all[j]->name, all[i]->name) == 0)
        render_one(&o, all[j]);
  }
  pthread_mutex_unlock(&lock);
  free(all);
  *len = o.len;
  return o.buf;
}

/* ---------------------------------------------------------------- pages */

#define MAX_PAGES 8
static struct page {
  char path[64], type[64];
  char *body;
  size_t len;
} pages[MAX_PAGES];
static size_t npages;

int pd_metrics_publish(const char *path, const char *content_type, const char *body, size_t len) {
  if (strlen(path) >= sizeof pages[0].path || strlen(content_type) >= sizeof pages[0].type ||
      strcmp(path, "/metrics") == 0)
    return -EINVAL;
  char *copy = pd_xmalloc(len + 1);
  memcpy(copy, body, len);
  copy[len] = '\0';
  pthread_mutex_lock(&lock);
  size_t i = 0;
  while (i < npages && strcmp(pages[i].path, path) != 0)
    i++;
  if (i == MAX_PAGES) {
    pthread_mutex_unlock(&lock);
    free(copy);
    return -PD_ETOOBIG;
  }
  if (i == npages) {
    npages++;
    pd_strlcpy(pages[i].path, path, sizeof pages[i].path);
  }
  pd_strlcpy(pages[i].type, content_type, sizeof pages[i].type);
  free(pages[i].body);
  pages[i].body = copy;
  pages[i].len = len;
  pthread_mutex_unlock(&lock);
  return 0;
}

/* A copy of the page at `url` (caller frees), or NULL. */
static char *page_copy(const char *url, size_t *len, char *type, size_t typelen) {
  char *body = NULL;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < npages && !body; i++)
    if (strcmp(pages[i].path, url) == 0) {
      body = pd_xmalloc(pages[i].len + 1);
      memcpy(body, pages[i].body, pages[i].len + 1);
      *len = pages[i].len;
      pd_strlcpy(type, pages[i].type, typelen);
    }
  pthread_mutex_unlock(&lock);
  return body;
}

/* ---------------------------------------------------------------- HTTP */

static struct MHD_Daemon *daemon_handle;

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload_data, (void)upload_size, (void)state;
  struct MHD_Response *resp;
  unsigned int code;
  char type[64], *page = NULL;
  size_t page_len = 0;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static const char text[] = "only GET\n";
    resp = MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    code = MHD_HTTP_METHOD_NOT_ALLOWED;
  } else if ((page = page_copy(url, &page_len, type, sizeof type))) {
    resp = MHD_create_response_from_buffer(page_len, page, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    code = MHD_HTTP_OK;
  } else if (strcmp(url, "/metrics") != 0) {
    static const char text[] = "not found: Pando serves /metrics\n";
    resp = MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    code = MHD_HTTP_NOT_FOUND;
  } else {
    size_t len;
    char *body = pd_metrics_render(&len);
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    code = MHD_HTTP_OK;
  }
  enum MHD_Result rc = MHD_queue_response(conn, code, resp);
  MHD_destroy_response(resp);
  return rc;
}

int pd_metrics_serve(const char *address, char *err, size_t errlen) {
  PD_ASSERT(!daemon_handle);
  char host[256];
  pd_strlcpy(host, address, sizeof host);
  char *colon = strrchr(host, ':');
  if (!colon)
    return pd_errf(err, errlen, -PD_EFORMAT, "metrics address '%s': expected host:port", address);
  *colon = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (*end || port < 0 || port > 65535 ||
      inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa.sin_addr) != 1)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "metrics address '%s': expected an IPv4 address and a port", address);
  daemon_handle =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
                       NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                       MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (!daemon_handle)
    return pd_errf(err, errlen, -PD_ERPC, "cannot serve metrics on %s (address in use?)", address);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT);
  return info ? (int)info->port : (int)port;
}

void pd_metrics_stop(void) {
  if (daemon_handle)
    MHD_stop_daemon(daemon_handle);
  daemon_handle = NULL;
}

char *pd_metric_escape(const char *value, char *dst, size_t dstlen) {
  size_t n = 0;
  PD_ASSERT(dstlen > 0);
  for (const char *c = value; *c; c++) {
    const char *put = *c == '\\' ? "\\\\" : *c == '"' ? "\\\"" : *c == '\n' ? "\\n" : NULL;
    size_t k = put ? 2 : 1;
    if (n + k >= dstlen)
      break;
    if (put)
      memcpy(dst + n, put, 2);
    else
      dst[n] = *c;
    n += k;
  }
  dst[n] = '\0';
  return dst;
}
