/* pandoctl trace: the Chrome trace event file; see trace.h. */
#include "trace.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "json.h"

/* The process ids: workers 1 + rank, servers after them. */
static uint64_t worker_pid(uint32_t rank) { return 1 + (uint64_t)rank; }
static uint64_t server_pid(const Pando__V1__JobStatus *st, size_t shard) {
  return 1 + (uint64_t)st->workers + shard;
}

static void metadata(pd_ctl_json *json, const char *what, uint64_t pid, uint64_t tid,
                     const char *name) {
  pd_ctl_json_begin_object(json);
  pd_ctl_json_field_string(json, "name", what);
  pd_ctl_json_field_string(json, "ph", "M");
  pd_ctl_json_field_uint(json, "pid", pid);
  pd_ctl_json_field_uint(json, "tid", tid);
  pd_ctl_json_key(json, "args");
  pd_ctl_json_begin_object(json);
  pd_ctl_json_field_string(json, "name", name);
  pd_ctl_json_end_object(json);
  pd_ctl_json_end_object(json);
}

static void span(pd_ctl_json *json, const Pando__V1__TraceEvent *e, uint64_t pid, uint64_t origin,
                 const char *process) {
  pd_ctl_json_begin_object(json);
  pd_ctl_json_field_string(json, "name", e->name);
  pd_ctl_json_field_string(json, "cat", process);
  pd_ctl_json_field_string(json, "ph", "X");
  pd_ctl_json_field_uint(json, "ts", e->ts_us - origin);
  pd_ctl_json_field_uint(json, "dur", e->dur_us);
  pd_ctl_json_field_uint(json, "pid", pid);
  pd_ctl_json_field_uint(json, "tid", e->tid);
  pd_ctl_json_key(json, "args");
  pd_ctl_json_begin_object(json);
  pd_ctl_json_field_uint(json, "worker", e->worker);
  pd_ctl_json_key(json, "clock");
  if (e->clock >= 0)
    pd_ctl_json_uint(json, (uint64_t)e->clock);
  else
    pd_ctl_json_double(json, (double)e->clock);
  pd_ctl_json_field_string(json, "kind", e->name);
  pd_ctl_json_end_object(json);
  pd_ctl_json_end_object(json);
}

/* The earliest span's start: the file's time origin. */
static uint64_t origin_of(const Pando__V1__JobStatus *st, const Pando__V1__TraceResponse *workers,
                          Pando__V1__TraceResponse *const *servers) {
  uint64_t origin = UINT64_MAX;
  for (size_t i = 0; workers && i < workers->n_events; i++)
    if (workers->events[i]->ts_us < origin)
      origin = workers->events[i]->ts_us;
  for (size_t s = 0; st->shard_map && s < st->shard_map->n_shards; s++)
    for (size_t i = 0; servers[s] && i < servers[s]->n_events; i++)
      if (servers[s]->events[i]->ts_us < origin)
        origin = servers[s]->events[i]->ts_us;
  return origin == UINT64_MAX ? 0 : origin;
}

int pd_ctl_write_trace(const char *path, const Pando__V1__JobStatus *st,
                       const Pando__V1__TraceResponse *workers,
                       Pando__V1__TraceResponse *const *servers, FILE *out, FILE *errout) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(errout, "pandoctl: %s: %s\n", path, strerror(errno));
    return -1;
  }
  uint64_t origin = origin_of(st, workers, servers), events = 0, dropped = 0;
  size_t nshards = st->shard_map ? st->shard_map->n_shards : 0;
  pd_ctl_json json;
  pd_ctl_json_init(&json, f);
  pd_ctl_json_begin_object(&json);
  pd_ctl_json_field_string(&json, "displayTimeUnit", "ms");
  pd_ctl_json_key(&json, "otherData");
  pd_ctl_json_begin_object(&json);
  pd_ctl_json_field_string(&json, "job", st->job);
  pd_ctl_json_field_uint(&json, "origin_unix_us", origin);
  pd_ctl_json_end_object(&json);
  pd_ctl_json_key(&json, "traceEvents");
  pd_ctl_json_begin_array(&json);
  char name[96];
  for (uint32_t w = 0; w < st->workers; w++) {
    snprintf(name, sizeof name, "worker %u", w);
    metadata(&json, "process_name", worker_pid(w), 0, name);
    metadata(&json, "thread_name", worker_pid(w), 0, "training loop");
  }
  for (size_t s = 0; s < nshards; s++) {
    snprintf(name, sizeof name, "server %zu (%s)", s, st->shard_map->shards[s]->address);
    metadata(&json, "process_name", server_pid(st, s), 0, name);
    metadata(&json, "thread_name", server_pid(st, s), 0, "shard");
    for (uint32_t w = 0; w < st->workers; w++) {
      snprintf(name, sizeof name, "calls of worker %u", w);
      metadata(&json, "thread_name", server_pid(st, s), 1 + (uint64_t)w, name);
    }
  }
  for (size_t i = 0; workers && i < workers->n_events; i++, events++)
    span(&json, workers->events[i], worker_pid(workers->events[i]->worker), origin, "worker");
  dropped += workers ? workers->dropped : 0;
  for (size_t s = 0; s < nshards; s++) {
    for (size_t i = 0; servers[s] && i < servers[s]->n_events; i++, events++)
      span(&json, servers[s]->events[i], server_pid(st, s), origin, "server");
    dropped += servers[s] ? servers[s]->dropped : 0;
  }
  pd_ctl_json_end_array(&json);
  pd_ctl_json_end_object(&json);
  pd_ctl_json_close(&json);
  if (fclose(f) != 0) {
    fprintf(errout, "pandoctl: %s: %s\n", path, strerror(errno));
    return -1;
  }
  fprintf(out, "wrote %s: %" PRIu64 " spans of %u workers and %zu servers", path, events,
          st->workers, nshards);
  if (dropped)
    fprintf(out, " (%" PRIu64 " older spans were overwritten)", dropped);
  fprintf(out, "\n");
  return 0;
}
