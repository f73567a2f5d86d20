/* pandoctl stats: the phase tables and their JSON; see stats.h. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "output.h"
#include "pando/util.h"
#include "table.h"

/* Phases sorted by time spent, the most first (pointers into `phases`). */
static Pando__V1__PhaseStat **sorted(Pando__V1__PhaseStat *const *phases, size_t n) {
  Pando__V1__PhaseStat **s = pd_xcalloc(n + 1, sizeof *s);
  memcpy(s, phases, n * sizeof *s);
  for (size_t i = 1; i < n; i++) /* insertion sort: a dozen phases */
    for (size_t k = i; k > 0 && s[k]->total_ns > s[k - 1]->total_ns; k--) {
      Pando__V1__PhaseStat *t = s[k];
      s[k] = s[k - 1];
      s[k - 1] = t;
    }
  return s;
}

static uint64_t phases_ns(Pando__V1__PhaseStat *const *phases, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += phases[i]->total_ns;
  return sum;
}

/* One heavy-hitter table; `wall_ns` 0: no share of the wall time. */
static void print_table(FILE *out, Pando__V1__PhaseStat *const *phases, size_t n,
                        uint64_t wall_ns) {
  static const char *const headers[] = {"PHASE", "COUNT", "TOTAL s", "MEAN ms", "% WALL"};
  pd_ctl_table *t = pd_ctl_table_new(headers, wall_ns ? 5 : 4);
  Pando__V1__PhaseStat **s = sorted(phases, n);
  for (size_t i = 0; i < n; i++) {
    pd_ctl_table_cell(t, "%s", s[i]->phase);
    pd_ctl_table_cell(t, "%llu", (unsigned long long)s[i]->count);
    pd_ctl_table_cell(t, "%.3f", (double)s[i]->total_ns * 1e-9);
    pd_ctl_table_cell(t, "%.3f", s[i]->count ? (double)s[i]->total_ns * 1e-6 / s[i]->count : 0);
    if (wall_ns)
      pd_ctl_table_cell(t, "%.1f", 100.0 * (double)s[i]->total_ns / (double)wall_ns);
  }
  pd_ctl_table_print(t, out, "  ");
  pd_ctl_table_free(t);
  free(s);
}

static void json_phases(pd_ctl_json *json, Pando__V1__PhaseStat *const *phases, size_t n) {
  Pando__V1__PhaseStat **s = sorted(phases, n);
  pd_ctl_json_key(json, "phases");
  pd_ctl_json_begin_array(json);
  for (size_t i = 0; i < n; i++) {
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_string(json, "phase", s[i]->phase);
    pd_ctl_json_field_uint(json, "count", s[i]->count);
    pd_ctl_json_field_double(json, "total_sec", (double)s[i]->total_ns * 1e-9);
    pd_ctl_json_field_double(json, "mean_ms",
                             s[i]->count ? (double)s[i]->total_ns * 1e-6 / s[i]->count : 0);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_end_array(json);
  free(s);
}

static void print_text(FILE *out, const Pando__V1__JobStatus *st,
                       Pando__V1__StatsResponse *const *servers) {
  fprintf(out, "job %s: %s, epoch %u/%u, step %llu/%u\n", st->job, pd_ctl_job_state_name(st->state),
          st->epoch, st->epochs, (unsigned long long)st->step, st->steps_per_epoch);
  if (st->n_worker_phases == 0)
    fprintf(out, "\nworkers: no progress report yet\n");
  for (size_t w = 0; w < st->n_worker_phases; w++) {
    const Pando__V1__WorkerPhases *wp = st->worker_phases[w];
    uint64_t sum = phases_ns(wp->phases, wp->n_phases);
    fprintf(out, "\nworker %u: epoch %u step %llu, wall %.3f s, phases %.3f s (%.1f%%)\n", wp->rank,
            wp->epoch, (unsigned long long)wp->step, (double)wp->wall_ns * 1e-9, (double)sum * 1e-9,
            wp->wall_ns ? 100.0 * (double)sum / (double)wp->wall_ns : 0);
    print_table(out, wp->phases, wp->n_phases, wp->wall_ns);
  }
  const Pando__V1__ShardMap *map = st->shard_map;
  for (size_t i = 0; map && i < map->n_shards; i++) {
    const Pando__V1__Shard *sh = map->shards[i];
    fprintf(out, "\nserver %zu (%s, keys [%llu, %llu))", i, sh->address,
            (unsigned long long)sh->begin, (unsigned long long)sh->end);
    if (!servers[i] || servers[i]->n_phases == 0) {
      fprintf(out, ": %s\n", servers[i] ? "nothing yet" : "did not answer");
      continue;
    }
    fprintf(out, ":\n");
    print_table(out, servers[i]->phases, servers[i]->n_phases, 0);
  }
}

static void print_json(FILE *out, const Pando__V1__JobStatus *st,
                       Pando__V1__StatsResponse *const *servers) {
  pd_ctl_json json;
  pd_ctl_json_init(&json, out);
  pd_ctl_json_begin_object(&json);
  pd_ctl_json_field_string(&json, "job", st->job);
  pd_ctl_json_field_string(&json, "state", pd_ctl_job_state_name(st->state));
  pd_ctl_json_field_uint(&json, "epoch", st->epoch);
  pd_ctl_json_field_uint(&json, "step", st->step);
  pd_ctl_json_key(&json, "workers");
  pd_ctl_json_begin_array(&json);
  for (size_t w = 0; w < st->n_worker_phases; w++) {
    const Pando__V1__WorkerPhases *wp = st->worker_phases[w];
    pd_ctl_json_begin_object(&json);
    pd_ctl_json_field_uint(&json, "rank", wp->rank);
    pd_ctl_json_field_uint(&json, "epoch", wp->epoch);
    pd_ctl_json_field_uint(&json, "step", wp->step);
    pd_ctl_json_field_double(&json, "wall_sec", (double)wp->wall_ns * 1e-9);
    pd_ctl_json_field_double(&json, "phases_sec",
                             (double)phases_ns(wp->phases, wp->n_phases) * 1e-9);
    json_phases(&json, wp->phases, wp->n_phases);
    pd_ctl_json_end_object(&json);
  }
  pd_ctl_json_end_array(&json);
  pd_ctl_json_key(&json, "servers");
  pd_ctl_json_begin_array(&json);
  const Pando__V1__ShardMap *map = st->shard_map;
  for (size_t i = 0; map && i < map->n_shards; i++) {
    pd_ctl_json_begin_object(&json);
    pd_ctl_json_field_uint(&json, "shard", i);
    pd_ctl_json_field_string(&json, "address", map->shards[i]->address);
    pd_ctl_json_field_uint(&json, "begin", map->shards[i]->begin);
    pd_ctl_json_field_uint(&json, "end", map->shards[i]->end);
    pd_ctl_json_field_bool(&json, "answered", servers[i] != NULL);
    if (servers[i])
      json_phases(&json, servers[i]->phases, servers[i]->n_phases);
    pd_ctl_json_end_object(&json);
  }
  pd_ctl_json_end_array(&json);
  pd_ctl_json_end_object(&json);
  pd_ctl_json_close(&json);
}

void pd_ctl_print_phase_stats(FILE *out, int json, const Pando__V1__JobStatus *status,
                              Pando__V1__StatsResponse *const *servers) {
  if (json)
    print_json(out, status, servers);
  else
    print_text(out, status, servers);
}
