/* How pandoctl shows Coordinator answers; see output.h. */
#include "output.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "pando/rpc.h"
#include "pando/util.h"
#include "table.h"

const char *pd_ctl_job_state_name(int state) {
  return pd_rpc_enum_name(&pando__v1__job_state__descriptor, state);
}

const char *pd_ctl_role_name(int role) {
  return pd_rpc_enum_name(&pando__v1__role__descriptor, role);
}

int pd_ctl_job_state_final(int state) {
  return state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED ||
         state == PANDO__V1__JOB_STATE__JOB_STATE_FAILED ||
         state == PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED;
}

void pd_ctl_format_duration(double seconds, char *buf, size_t len) {
  if (!isfinite(seconds) || seconds < 0) {
    snprintf(buf, len, "-");
    return;
  }
  unsigned long long total = (unsigned long long)(seconds + 0.5);
  unsigned long long hours = total / 3600, minutes = total / 60 % 60, secs = total % 60;
  if (hours > 0)
    snprintf(buf, len, "%llu:%02llu:%02llu", hours, minutes, secs);
  else
    snprintf(buf, len, "%llu:%02llu", minutes, secs);
}

double pd_ctl_eta_sec(const Pando__V1__JobStatus *status) {
  if (status->state != PANDO__V1__JOB_STATE__JOB_STATE_RUNNING || status->epochs == 0 ||
      status->steps_per_epoch == 0 || status->epoch == 0 || !(status->elapsed_sec > 0))
    return -1;
  double per_epoch = status->steps_per_epoch;
  double total = status->epochs * per_epoch;
  double step = PD_MIN((double)status->step, per_epoch);
  double done = (status->epoch - 1) * per_epoch + step;
  /* Too early to tell: the first steps carry the start-up (loading data). */
  if (done <= 0 || done < 0.01 * total)
    return -1;
  if (done >= total)
    return 0;
  return status->elapsed_sec * (total - done) / done;
}

/* snprintf that appends at *used and never overruns `len`. */
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...) {
  if (*used >= len)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *used, len - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used = PD_MIN(len, *used + (size_t)n);
}

void pd_ctl_progress_line(const Pando__V1__JobStatus *status, char *buf, size_t len) {
  size_t used = 0;
  if (len == 0)
    return;
  buf[0] = '\0';
  if (status->rounds > 0) { /* federated: the coordinator's account of the round */
    append(buf, len, &used, "%s", status->message[0] ? status->message : "federated rounds");
    return;
  }
  if (status->epoch == 0 && status->step == 0) {
    append(buf, len, &used, "waiting for the first progress report");
    return;
  }
  append(buf, len, &used, "epoch %u", status->epoch);
  if (status->epochs)
    append(buf, len, &used, "/%u", status->epochs);
  append(buf, len, &used, "  step %llu", (unsigned long long)status->step);
  if (status->steps_per_epoch)
    append(buf, len, &used, "/%u", status->steps_per_epoch);
  append(buf, len, &used, "  loss %.4f  %.0f samples/s", status->loss, status->samples_per_sec);
  if (status->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING) {
    char eta[32];
    pd_ctl_format_duration(pd_ctl_eta_sec(status), eta, sizeof eta);
    append(buf, len, &used, "  ETA %s", eta);
  }
}

/* A regression's records carry an RMSE and no accuracy. */
static int is_regression(const Pando__V1__EpochRecord *record) {
  return record->test_rmse > 0 && record->test_accuracy == 0;
}

void pd_ctl_epoch_line(const Pando__V1__JobStatus *status, size_t index, char *buf, size_t len) {
  const Pando__V1__EpochRecord *record = status->history[index];
  double start = index > 0 ? status->history[index - 1]->seconds : 0;
  int rmse = is_regression(record);
  snprintf(buf, len, "epoch %u: train loss %.4f, test %s %.4f, test loss %.4f (%.1f s)",
           record->epoch, record->train_loss, rmse ? "rmse" : "accuracy",
           rmse ? record->test_rmse : record->test_accuracy, record->test_loss,
           record->seconds - start);
}

void pd_ctl_round_line(const Pando__V1__JobStatus *status, size_t index, char *buf, size_t len) {
  const Pando__V1__RoundRecord *r = status->round_history[index];
  size_t used = 0;
  buf[0] = '\0';
  if (r->abandoned)
    append(buf, len, &used, "round %u/%u attempt %u abandoned: ", r->round, status->rounds,
           r->attempt);
  else
    append(buf, len, &used, "round %u/%u: ", r->round, status->rounds);
  append(buf, len, &used, "%u selected, %u reported, %u dropped, %u late, %.1f s", r->selected,
         r->reported, r->dropped, r->late, r->seconds);
  if (r->has_eval)
    append(buf, len, &used, ", test accuracy %.4f, test loss %.4f", r->test_accuracy, r->test_loss);
}

double pd_ctl_final_accuracy(const Pando__V1__JobStatus *status) {
  for (size_t i = status->n_round_history; i > 0; i--)
    if (status->round_history[i - 1]->has_eval)
      return status->round_history[i - 1]->test_accuracy;
  if (status->n_history > 0)
    return status->history[status->n_history - 1]->test_accuracy;
  return -1;
}

void pd_ctl_final_line(const Pando__V1__JobStatus *status, char *buf, size_t len) {
  char elapsed[32];
  size_t used = 0;
  if (len == 0)
    return;
  buf[0] = '\0';
  pd_ctl_format_duration(status->elapsed_sec, elapsed, sizeof elapsed);
  append(buf, len, &used, "job %s %s %s %s", status->job, pd_ctl_job_state_name(status->state),
         status->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED ? "in" : "after", elapsed);
  if (status->message[0])
    append(buf, len, &used, ": %s", status->message);
}

/* "-" for an empty string, so that table columns never look shifted. */
static const char *or_dash(const char *text) { return text && text[0] ? text : "-"; }

static const char *const staleness_labels[PD_CTL_STALENESS_BUCKETS] = {"0", "1",  "2",  "4",
                                                                       "8", "16", "32", ">32"};

void pd_ctl_stats_merge(pd_ctl_stats *st, const Pando__V1__StatsResponse *r) {
  st->servers++;
  for (size_t i = 0; i < r->n_staleness && i < PD_CTL_STALENESS_BUCKETS; i++)
    st->staleness[i] += r->staleness[i];
  st->staleness_sum += r->staleness_sum;
  st->dropped += r->dropped;
  st->blocked += r->blocked;
  if (r->max_clock_gap > st->max_clock_gap)
    st->max_clock_gap = r->max_clock_gap;
}

void pd_ctl_stats_line(const pd_ctl_stats *st, char *buf, size_t len) {
  size_t used = 0;
  int n = snprintf(buf, len, "staleness:");
  used = n > 0 ? (size_t)n : 0;
  int any = 0;
  for (int i = 0; i < PD_CTL_STALENESS_BUCKETS && used < len; i++) {
    if (st->staleness[i] == 0)
      continue;
    n = snprintf(buf + used, len - used, " %s:%llu", staleness_labels[i],
                 (unsigned long long)st->staleness[i]);
    used += n > 0 ? (size_t)n : 0;
    any = 1;
  }
  if (used < len)
    snprintf(buf + used, len - used, "%s, dropped %llu, blocked %llu, max clock gap %llu",
             any ? "" : " none", (unsigned long long)st->dropped, (unsigned long long)st->blocked,
             (unsigned long long)st->max_clock_gap);
}

void pd_ctl_print_job_stats(FILE *out, const Pando__V1__JobStatus *status,
                            const pd_ctl_stats *stats) {
  pd_ctl_print_job(out, status);
  if (!stats || stats->servers == 0)
    return;
  char line[512];
  pd_ctl_stats_line(stats, line, sizeof line);
  fprintf(out, "updates:   %s (%u of %u servers)\n", line, stats->servers, stats->asked);
}

/* A federated job's rounds: totals, then one row per attempt. */
static void print_rounds(FILE *out, const Pando__V1__JobStatus *status) {
  uint64_t selected = 0, reported = 0, late = 0, dropped = 0, abandoned = 0;
  for (size_t i = 0; i < status->n_round_history; i++) {
    const Pando__V1__RoundRecord *r = status->round_history[i];
    selected += r->selected;
    reported += r->reported;
    late += r->late;
    dropped += r->dropped;
    abandoned += r->abandoned;
  }
  fprintf(out,
          "rounds:    %u of %u committed; %llu selected, %llu reported, %llu dropped, %llu late, "
          "%llu attempts abandoned\n",
          status->rounds_done, status->rounds, (unsigned long long)selected,
          (unsigned long long)reported, (unsigned long long)dropped, (unsigned long long)late,
          (unsigned long long)abandoned);
  const Pando__V1__LabelSummary *lab = status->labels;
  if (lab && lab->n_totals > 0) {
    uint64_t total = 0;
    for (size_t i = 0; i < lab->n_totals; i++)
      total += lab->totals[i];
    char shares[400];
    size_t used = 0;
    shares[0] = '\0';
    for (size_t i = 0; i < lab->n_totals && i < 16 && used < sizeof shares; i++)
      used += (size_t)snprintf(shares + used, sizeof shares - used, "%s%zu:%.0f%%", i ? " " : "", i,
                               total ? 100.0 * lab->totals[i] / total : 0.0);
    fprintf(out,
            "labels:    %u device reports; 90%% of a device's rows lie in %.1f of the %zu labels "
            "on average (IID data: about %.0f); all reports: %s%s\n",
            lab->reports, lab->mean_labels_90, lab->n_totals, 0.9 * lab->n_totals, shares,
            lab->n_totals > 16 ? " ..." : "");
  }
  if (status->n_round_history == 0)
    return;
  static const char *const headers[] = {"ROUND", "ATTEMPT", "SELECTED", "REPORTED",     "DROPPED",
                                        "LATE",  "RESULT",  "SECONDS",  "TEST ACCURACY"};
  pd_ctl_table *table = pd_ctl_table_new(headers, 9);
  for (size_t i = 0; i < status->n_round_history; i++) {
    const Pando__V1__RoundRecord *r = status->round_history[i];
    pd_ctl_table_cell(table, "%u", r->round);
    pd_ctl_table_cell(table, "%u", r->attempt);
    pd_ctl_table_cell(table, "%u", r->selected);
    pd_ctl_table_cell(table, "%u", r->reported);
    pd_ctl_table_cell(table, "%u", r->dropped);
    pd_ctl_table_cell(table, "%u", r->late);
    pd_ctl_table_cell(table, "%s", r->abandoned ? "abandoned" : "committed");
    pd_ctl_table_cell(table, "%.1f", r->seconds);
    if (r->has_eval)
      pd_ctl_table_cell(table, "%.4f", r->test_accuracy);
    else
      pd_ctl_table_cell(table, "%s", "-");
  }
  pd_ctl_table_print(table, out, "  ");
  pd_ctl_table_free(table);
}

char *pd_ctl_sparkline(const double *values, size_t n, size_t width, char *dst, size_t dstlen) {
  static const char *const bars[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                      "\u2585", "\u2586", "\u2587", "\u2588"};
  if (dstlen == 0)
    return dst;
  dst[0] = '\0';
  size_t first = n > width ? n - width : 0, len = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = first; i < n; i++)
    if (isfinite(values[i]))
      lo = fmin(lo, values[i]), hi = fmax(hi, values[i]);
  for (size_t i = first; i < n; i++) {
    const char *c = " ";
    if (isfinite(values[i])) {
      int level = hi > lo ? (int)floor((values[i] - lo) / (hi - lo) * 7 + 0.5) : 3;
      c = bars[level];
    }
    size_t clen = strlen(c);
    if (len + clen + 1 > dstlen)
      break;
    memcpy(dst + len, c, clen + 1);
    len += clen;
  }
  return dst;
}

void pd_ctl_print_job(FILE *out, const Pando__V1__JobStatus *status) {
  char line[512], elapsed[32];
  fprintf(out, "job:       %s\n", status->job);
  fprintf(out, "name:      %s\n", or_dash(status->name));
  fprintf(out, "state:     %s\n", pd_ctl_job_state_name(status->state));
  if (status->message[0])
    fprintf(out, "message:   %s\n", status->message);
  pd_ctl_progress_line(status, line, sizeof line);
  fprintf(out, "progress:  %s\n", line);
  pd_ctl_format_duration(status->elapsed_sec, elapsed, sizeof elapsed);
  fprintf(out, "elapsed:   %s\n", elapsed);
  fprintf(out, "nodes:     %u servers, %u workers\n", status->servers, status->workers);

  const Pando__V1__ShardMap *map = status->shard_map;
  if (!map || map->n_shards == 0) {
    fprintf(out, "shard map: none\n");
  } else {
    fprintf(out, "shard map: version %llu, %llu keys\n", (unsigned long long)map->version,
            (unsigned long long)map->keys);
    static const char *const headers[] = {"SHARD", "KEYS", "ADDRESS"};
    pd_ctl_table *table = pd_ctl_table_new(headers, 3);
    for (size_t i = 0; i < map->n_shards; i++) {
      const Pando__V1__Shard *shard = map->shards[i];
      pd_ctl_table_cell(table, "%zu", i);
      pd_ctl_table_cell(table, "[%llu, %llu)", (unsigned long long)shard->begin,
                        (unsigned long long)shard->end);
      pd_ctl_table_cell(table, "%s", or_dash(shard->address));
    }
    pd_ctl_table_print(table, out, "  ");
    pd_ctl_table_free(table);
  }

  if (status->rounds > 0) { /* federated: the rounds instead of epochs */
    print_rounds(out, status);
    return;
  }
  if (status->n_history == 0) {
    fprintf(out, "history:   none yet\n");
    return;
  }
  if (status->n_history >= 2 && isatty(fileno(out))) { /* a glance at the curve */
    double loss[64];
    size_t n = PD_MIN(status->n_history, PD_ARRAY_SIZE(loss)), first = status->n_history - n;
    for (size_t i = 0; i < n; i++)
      loss[i] = status->history[first + i]->train_loss;
    char spark[64 * 4 + 1];
    fprintf(out, "loss:      %s %.4f -> %.4f\n", pd_ctl_sparkline(loss, n, n, spark, sizeof spark),
            loss[0], loss[n - 1]);
  }
  fprintf(out, "history:\n");
  int rmse = is_regression(status->history[0]);
  const char *const headers[] = {"EPOCH",     "TRAIN LOSS", rmse ? "TEST RMSE" : "TEST ACCURACY",
                                 "TEST LOSS", "EPOCH TIME", "ELAPSED"};
  pd_ctl_table *table = pd_ctl_table_new(headers, 6);
  for (size_t i = 0; i < status->n_history; i++) {
    const Pando__V1__EpochRecord *record = status->history[i];
    double start = i > 0 ? status->history[i - 1]->seconds : 0;
    pd_ctl_table_cell(table, "%u", record->epoch);
    pd_ctl_table_cell(table, "%.4f", record->train_loss);
    pd_ctl_table_cell(table, "%.4f", rmse ? record->test_rmse : record->test_accuracy);
    pd_ctl_table_cell(table, "%.4f", record->test_loss);
    pd_ctl_table_cell(table, "%.1f s", record->seconds - start);
    pd_ctl_format_duration(record->seconds, elapsed, sizeof elapsed);
    pd_ctl_table_cell(table, "%s", elapsed);
  }
  pd_ctl_table_print(table, out, "  ");
  pd_ctl_table_free(table);
}

void pd_ctl_print_jobs(FILE *out, const Pando__V1__ListJobsResponse *jobs) {
  if (jobs->n_jobs == 0) {
    fprintf(out, "no jobs\n");
    return;
  }
  static const char *const headers[] = {"JOB",  "NAME",     "STATE",  "EPOCH",
                                        "LOSS", "ACCURACY", "ELAPSED"};
  pd_ctl_table *table = pd_ctl_table_new(headers, 7);
  for (size_t i = 0; i < jobs->n_jobs; i++) {
    const Pando__V1__JobStatus *job = jobs->jobs[i];
    char elapsed[32];
    pd_ctl_table_cell(table, "%s", or_dash(job->job));
    pd_ctl_table_cell(table, "%s", or_dash(job->name));
    pd_ctl_table_cell(table, "%s", pd_ctl_job_state_name(job->state));
    if (job->epoch == 0) {
      pd_ctl_table_cell(table, "-");
      pd_ctl_table_cell(table, "-");
    } else {
      pd_ctl_table_cell(table, "%u/%u", job->epoch, job->epochs);
      pd_ctl_table_cell(table, "%.4f", job->loss);
    }
    if (job->n_history == 0)
      pd_ctl_table_cell(table, "-");
    else
      pd_ctl_table_cell(table, "%.4f", job->history[job->n_history - 1]->test_accuracy);
    pd_ctl_format_duration(job->elapsed_sec, elapsed, sizeof elapsed);
    pd_ctl_table_cell(table, "%s", elapsed);
  }
  pd_ctl_table_print(table, out, "");
  pd_ctl_table_free(table);
}

void pd_ctl_print_cluster(FILE *out, const Pando__V1__ClusterResponse *cluster) {
  if (cluster->n_nodes == 0) {
    fprintf(out, "no nodes\n");
    return;
  }
  static const char *const headers[] = {"NODE",  "ROLE",      "NAME", "ADDRESS",
                                        "ALIVE", "LAST SEEN", "JOB",  "MATH"};
  pd_ctl_table *table = pd_ctl_table_new(headers, 8);
  for (size_t i = 0; i < cluster->n_nodes; i++) {
    const Pando__V1__NodeStatus *node = cluster->nodes[i];
    pd_ctl_table_cell(table, "%llu", (unsigned long long)node->node_id);
    pd_ctl_table_cell(table, "%s", pd_ctl_role_name(node->role));
    pd_ctl_table_cell(table, "%s", or_dash(node->name));
    pd_ctl_table_cell(table, "%s", or_dash(node->address));
    pd_ctl_table_cell(table, "%s", node->alive ? "yes" : "no");
    pd_ctl_table_cell(table, "%.1fs ago", node->last_seen_sec);
    pd_ctl_table_cell(table, "%s", or_dash(node->job));
    pd_ctl_table_cell(table, "%s", or_dash(node->math));
  }
  pd_ctl_table_print(table, out, "");
  pd_ctl_table_free(table);
}

void pd_ctl_json_job(pd_ctl_json *json, const Pando__V1__JobStatus *status) {
  pd_ctl_json_job_stats(json, status, NULL);
}

static void json_stats(pd_ctl_json *json, const pd_ctl_stats *st) {
  static const char *const bounds[PD_CTL_STALENESS_BUCKETS] = {"0", "1",  "2",  "4",
                                                               "8", "16", "32", "+Inf"};
  pd_ctl_json_begin_object(json);
  pd_ctl_json_key(json, "staleness");
  pd_ctl_json_begin_object(json);
  for (int i = 0; i < PD_CTL_STALENESS_BUCKETS; i++)
    pd_ctl_json_field_uint(json, bounds[i], st->staleness[i]);
  pd_ctl_json_end_object(json);
  pd_ctl_json_field_uint(json, "staleness_sum", st->staleness_sum);
  pd_ctl_json_field_uint(json, "dropped", st->dropped);
  pd_ctl_json_field_uint(json, "blocked", st->blocked);
  pd_ctl_json_field_uint(json, "max_clock_gap", st->max_clock_gap);
  pd_ctl_json_field_uint(json, "servers", st->servers);
  pd_ctl_json_end_object(json);
}

void pd_ctl_json_job_stats(pd_ctl_json *json, const Pando__V1__JobStatus *status,
                           const pd_ctl_stats *stats) {
  pd_ctl_json_begin_object(json);
  pd_ctl_json_field_string(json, "job", status->job);
  pd_ctl_json_field_string(json, "name", status->name);
  pd_ctl_json_field_string(json, "state", pd_ctl_job_state_name(status->state));
  pd_ctl_json_field_string(json, "message", status->message);
  if (status->job_token[0]) /* SubmitJob's answer only */
    pd_ctl_json_field_string(json, "job_token", status->job_token);
  pd_ctl_json_field_uint(json, "epoch", status->epoch);
  pd_ctl_json_field_uint(json, "epochs", status->epochs);
  pd_ctl_json_field_uint(json, "step", status->step);
  pd_ctl_json_field_uint(json, "steps_per_epoch", status->steps_per_epoch);
  pd_ctl_json_field_double(json, "loss", status->loss);
  pd_ctl_json_field_double(json, "samples_per_sec", status->samples_per_sec);
  pd_ctl_json_field_double(json, "elapsed_sec", status->elapsed_sec);
  pd_ctl_json_key(json, "history");
  pd_ctl_json_begin_array(json);
  for (size_t i = 0; i < status->n_history; i++) {
    const Pando__V1__EpochRecord *record = status->history[i];
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "epoch", record->epoch);
    pd_ctl_json_field_double(json, "train_loss", record->train_loss);
    pd_ctl_json_field_double(json, "test_accuracy", record->test_accuracy);
    pd_ctl_json_field_double(json, "test_loss", record->test_loss);
    pd_ctl_json_field_double(json, "test_rmse", record->test_rmse);
    pd_ctl_json_field_double(json, "seconds", record->seconds);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_end_array(json);
  pd_ctl_json_field_uint(json, "rounds_done", status->rounds_done);
  pd_ctl_json_field_uint(json, "rounds", status->rounds);
  pd_ctl_json_key(json, "round_history");
  pd_ctl_json_begin_array(json);
  for (size_t i = 0; i < status->n_round_history; i++) {
    const Pando__V1__RoundRecord *r = status->round_history[i];
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "round", r->round);
    pd_ctl_json_field_uint(json, "attempt", r->attempt);
    pd_ctl_json_field_uint(json, "selected", r->selected);
    pd_ctl_json_field_uint(json, "reported", r->reported);
    pd_ctl_json_field_uint(json, "late", r->late);
    pd_ctl_json_field_uint(json, "dropped", r->dropped);
    pd_ctl_json_field_bool(json, "abandoned", r->abandoned);
    pd_ctl_json_field_double(json, "seconds", r->seconds);
    pd_ctl_json_field_bool(json, "has_eval", r->has_eval);
    pd_ctl_json_field_double(json, "test_accuracy", r->test_accuracy);
    pd_ctl_json_field_double(json, "test_loss", r->test_loss);
    pd_ctl_json_field_double(json, "finished_sec", r->finished_sec);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_end_array(json);
  pd_ctl_json_key(json, "labels");
  if (!status->labels) {
    pd_ctl_json_null(json);
  } else {
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "reports", status->labels->reports);
    pd_ctl_json_field_double(json, "mean_labels_90", status->labels->mean_labels_90);
    pd_ctl_json_key(json, "totals");
    pd_ctl_json_begin_array(json);
    for (size_t i = 0; i < status->labels->n_totals; i++)
      pd_ctl_json_uint(json, status->labels->totals[i]);
    pd_ctl_json_end_array(json);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_field_uint(json, "servers", status->servers);
  pd_ctl_json_field_uint(json, "workers", status->workers);
  pd_ctl_json_key(json, "shard_map");
  const Pando__V1__ShardMap *map = status->shard_map;
  if (!map) {
    pd_ctl_json_null(json);
  } else {
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "version", map->version);
    pd_ctl_json_field_uint(json, "keys", map->keys);
    pd_ctl_json_key(json, "shards");
    pd_ctl_json_begin_array(json);
    for (size_t i = 0; i < map->n_shards; i++) {
      pd_ctl_json_begin_object(json);
      pd_ctl_json_field_uint(json, "begin", map->shards[i]->begin);
      pd_ctl_json_field_uint(json, "end", map->shards[i]->end);
      pd_ctl_json_field_string(json, "address", map->shards[i]->address);
      pd_ctl_json_end_object(json);
    }
    pd_ctl_json_end_array(json);
    pd_ctl_json_end_object(json);
  }
  if (stats) {
    pd_ctl_json_key(json, "stats");
    if (stats->servers == 0)
      pd_ctl_json_null(json);
    else
      json_stats(json, stats);
  }
  pd_ctl_json_end_object(json);
}

void pd_ctl_json_jobs(pd_ctl_json *json, const Pando__V1__ListJobsResponse *jobs) {
  pd_ctl_json_begin_object(json);
  pd_ctl_json_key(json, "jobs");
  pd_ctl_json_begin_array(json);
  for (size_t i = 0; i < jobs->n_jobs; i++)
    pd_ctl_json_job(json, jobs->jobs[i]);
  pd_ctl_json_end_array(json);
  pd_ctl_json_end_object(json);
}

void pd_ctl_json_cluster(pd_ctl_json *json, const Pando__V1__ClusterResponse *cluster) {
  pd_ctl_json_begin_object(json);
  pd_ctl_json_key(json, "nodes");
  pd_ctl_json_begin_array(json);
  for (size_t i = 0; i < cluster->n_nodes; i++) {
    const Pando__V1__NodeStatus *node = cluster->nodes[i];
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "node_id", node->node_id);
    pd_ctl_json_field_string(json, "role", pd_ctl_role_name(node->role));
    pd_ctl_json_field_string(json, "address", node->address);
    pd_ctl_json_field_string(json, "name", node->name);
    pd_ctl_json_field_bool(json, "alive", node->alive);
    pd_ctl_json_field_double(json, "last_seen_sec", node->last_seen_sec);
    pd_ctl_json_field_string(json, "job", node->job);
    pd_ctl_json_field_string(json, "math", node->math);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_end_array(json);
  pd_ctl_json_end_object(json);
}
