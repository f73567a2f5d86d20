/* Federated rounds of one job; see rounds.h. The state machine:
 *
 *   WAITING --(selectors report ceil(over_selection K) idle eligible devices, or
 *             >= min_reports of them for selection_timeout seconds; a fractional K
 *             also waits, up to selection_timeout, while the eligible population
 *             grows by more than 10% a poll)--> SELECTING
 *   SELECTING --(every Select answered)--> REPORTING (deadline = now + round_timeout),
 *              or CLOSING (abandon) when fewer than min_reports devices were chosen, which
 *              then goes back to WAITING without counting an attempt
 *   REPORTING --(the min_reports-th report, in pd_rounds_report)--> CLOSING (commit)
 *   REPORTING --(deadline, in cron)--> CLOSING (abandon)
 *   CLOSING --(every shard answered CommitRound)--> EVALUATING (every eval_every
 *              rounds and after the last), else WAITING; an abandoned round is
 *              retried with devices not chosen before, max_attempts times
 *   EVALUATING --(the evaluation thread is done)--> WAITING, or DONE after the last round
 *   CLOSING, EVALUATING --(a server failed the call, and the job takes checkpoints)--> STALLED:
 *              the coordinator's recovery stops the rounds and resumes them from the
 *              checkpoint (pd_rounds_resume --> WAITING); failed after cluster.wait_timeout
 */
#include "rounds.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/security.h"
#include "pando/util.h"

#define CALL_TIMEOUT_SEC 10.0
#define POLL_SEC 0.5      /* population polls while waiting for devices */
#define COMMIT_ATTEMPTS 4 /* CommitRound is idempotent: retried on failure */
#define MAX_SELECTORS 64
#define SETTLE_GROWTH 0.1 /* a fractional K selects once the population grew by less a poll */

enum phase { WAITING = 1, SELECTING, REPORTING, CLOSING, EVALUATING, STALLED, DONE };
enum call_kind { CALL_POPULATION = 1, CALL_SELECT, CALL_COMMIT };

typedef struct selected {
  char *device;
  int reported; /* its report arrived before the round closed */
  int counted;  /* it is in the committed set */
  int failed;   /* it reported an error */
} selected;

typedef struct endpoint {
  char address[256];
  pd_rpc_channel *channel;
} endpoint;

struct pd_rounds {
  pd_rounds_env env;
  char job[96];
  pd_job_spec spec;
  char *spec_yaml;
  char job_token[80]; /* RoundTask.job_token; "": none */
  /* SelectRequest.report_key: the devices' report secrets derive from it */
  char report_key[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1];
  endpoint *servers;
  pd_shard_range *ranges;
  uint32_t nservers;
  uint64_t keys;
  endpoint selectors[MAX_SELECTORS];
  size_t nselectors;
  int stopped;
  uint32_t attempt_of_job; /* RoundTask.attempt: the job's, after pd_rounds_resume */
  double checkpoint_asked; /* checkpoint.every_seconds: when a commit last asked for one */
  struct {                 /* pd_rounds_resume: once nothing is in flight */
    int pending;
    uint32_t committed;
    uint64_t id_base;
    uint32_t attempt;
    pd_shard_range *ranges;
    uint32_t n;
  } resume;
  enum phase phase;
  int round;   /* 1-based index of the round being run */
  int attempt; /* 1-based attempt of that round */
  uint64_t id; /* the current attempt's round id (1, 2, ...: one per attempt) */
  double phase_since, deadline, started, wait_since, last_poll, select_started;
  double enough_since; /* since when >= min_reports devices are idle (0: not yet) */
  uint64_t gen;        /* bumped by every phase change: calls of older phases do not count */
  int calls;           /* calls of the current phase in flight */
  int calls_total;     /* every call in flight (for free) */
  /* population answers of the current poll */
  uint32_t idle[MAX_SELECTORS], eligible_sum, idle_sum;
  uint32_t prev_eligible; /* eligible_sum of the poll before (see SETTLE_GROWTH) */
  uint32_t population;    /* eligible_sum when the attempt was selected: scaffold's N */
  /* the attempt's devices */
  selected *chosen;
  size_t nchosen, chosen_cap;
  char **order; /* reported devices in arrival order (borrowed from chosen) */
  size_t nreported;
  uint32_t late_now; /* late reports for the attempt being closed */
  char **exclude;    /* devices chosen by abandoned attempts of this round */
  size_t nexclude;
  int abandoning;
  int short_selection; /* the selectors chose fewer than min_reports (others took them) */
  int commit_failed;
  char message[512];
  char selector_error[600]; /* the last failed call to a selector, for the status */
  /* the devices' label histograms (DeviceReport.label_counts), summed */
  uint32_t label_reports;
  double labels_90_sum;
  uint64_t *label_totals;
  size_t nlabels;
  Pando__V1__LabelSummary label_summary;
  Pando__V1__RoundRecord *history;
  uint64_t *history_ids; /* the round id of each record */
  Pando__V1__RoundRecord **history_ptrs;
  size_t nhistory;
  uint32_t goal, need;
  /* central evaluation */
  pthread_t eval_thread;
  int eval_running;
  atomic_int eval_done;
  double eval_accuracy, eval_loss, last_accuracy;
  char eval_error[512];
  pd_model *model;
  pd_dataset test;
  int test_loaded;
};

typedef struct call_ctx {
  pd_rounds *r;
  enum call_kind kind;
  size_t index; /* selector or server */
  uint64_t id;  /* the round id it belongs to */
  uint64_t gen; /* the phase it belongs to */
  int attempts;
  endpoint *ep;
  const char *method;
  uint8_t *buf;
  size_t len;
} call_ctx;

static void start_call(pd_rounds *r, endpoint *ep, enum call_kind kind, size_t index,
                       const char *method, const ProtobufCMessage *msg);

/* pando_fed_rounds_abandoned_total (or _committed_total) of the job. */
static pd_metric *rounds_counter(const pd_rounds *r, int abandoned) {
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\"", r->job);
  return pd_metric_counter(abandoned ? "pando_fed_rounds_abandoned_total"
                                     : "pando_fed_rounds_committed_total",
                           abandoned ? "Federated round attempts abandoned (too few reports)."
                                     : "Federated rounds committed.",
                           labels);
}

void pd_rounds_set_job_token(pd_rounds *r, const char *token) {
  pd_strlcpy(r->job_token, token ? token : "", sizeof r->job_token);
}

/* The shards' ranges and channels (the old ones freed: nothing may be in
 * flight). */
static void set_servers(pd_rounds *r, const pd_shard_range *shards, uint32_t n) {
  for (uint32_t i = 0; i < r->nservers; i++)
    pd_rpc_channel_free(r->servers[i].channel);
  free(r->servers);
  free(r->ranges);
  r->nservers = n;
  r->servers = pd_xcalloc(n, sizeof *r->servers);
  r->ranges = pd_xcalloc(n, sizeof *r->ranges);
  r->keys = 0;
  for (uint32_t i = 0; i < n; i++) {
    r->ranges[i] = shards[i];
    pd_strlcpy(r->servers[i].address, shards[i].address, sizeof r->servers[i].address);
    r->servers[i].channel = pd_rpc_channel_new(shards[i].address, 0);
    r->keys = PD_MAX(r->keys, shards[i].end);
  }
}

pd_rounds *pd_rounds_new(const pd_rounds_env *env, const char *job, const pd_job_spec *spec,
                         const char *spec_yaml, const pd_shard_range *shards, uint32_t n) {
  pd_rounds *r = pd_xcalloc(1, sizeof *r);
  r->env = *env;
  pd_strlcpy(r->job, job, sizeof r->job);
  r->spec = *spec;
  r->spec_yaml = pd_xstrdup(spec_yaml);
  /* the devices' report secrets derive from it (a failing CSPRNG is no state to run in) */
  int drawn = pd_security_new_token(r->report_key, sizeof r->report_key);
  PD_ASSERT(drawn == 0);
  set_servers(r, shards, n);
  r->round = 1;
  r->attempt = 1;
  r->phase = WAITING;
  r->started = r->wait_since = r->checkpoint_asked = pd_now();
  r->enough_since = 0;
  r->last_poll = -1e9;
  r->last_accuracy = NAN;
  atomic_init(&r->eval_done, 0);
  snprintf(r->message, sizeof r->message, "round 1: waiting for devices");
  /* Both series from the start, at 0, so that an alert on the increase of
   * abandoned rounds sees the job's first one. */
  rounds_counter(r, 0);
  rounds_counter(r, 1);
  return r;
}

static void clear_chosen(pd_rounds *r) {
  for (size_t i = 0; i < r->nchosen; i++)
    free(r->chosen[i].device);
  r->nchosen = 0;
  r->nreported = 0;
}

void pd_rounds_free(pd_rounds *r) {
  if (!r)
    return;
  r->stopped = 1;
  while (r->calls_total > 0)
    pd_loop_run_once(r->env.loop, 1.0);
  if (r->eval_running)
    pthread_join(r->eval_thread, NULL);
  clear_chosen(r);
  free(r->chosen);
  free(r->order);
  for (size_t i = 0; i < r->nexclude; i++)
    free(r->exclude[i]);
  free(r->exclude);
  for (uint32_t i = 0; i < r->nservers; i++)
    pd_rpc_channel_free(r->servers[i].channel);
  for (size_t i = 0; i < r->nselectors; i++)
    pd_rpc_channel_free(r->selectors[i].channel);
  pd_model_free(r->model);
  pd_dataset_close(&r->test);
  free(r->servers);
  free(r->ranges);
  free(r->resume.ranges);
  free(r->history);
  free(r->history_ids);
  free(r->history_ptrs);
  free(r->label_totals);
  free(r->spec_yaml);
  memset(r->job_token, 0, sizeof r->job_token);
  memset(r->report_key, 0, sizeof r->report_key);
  free(r);
}

int pd_rounds_busy(const pd_rounds *r) {
  return r->calls_total > 0 || (r->eval_running && !atomic_load(&r->eval_done));
}

void pd_rounds_stop(pd_rounds *r) {
  r->stopped = 1;
  r->phase = DONE;
}

double pd_rounds_last_accuracy(const pd_rounds *r) { return r->last_accuracy; }

static void fail(pd_rounds *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(pd_rounds *r, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->phase = DONE;
  r->stopped = 1;
  r->env.finish(r->env.user, r->job, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, msg);
}

static void set_phase(pd_rounds *r, enum phase p) {
  r->phase = p;
  r->phase_since = pd_now();
  r->gen++;
  r->calls = 0;
}

/* A server failed a call: with checkpoints the job waits (STALLED) for the
 * coordinator to notice the dead server and roll every shard back, else it
 * fails with `why`. */
static void server_failed(pd_rounds *r, const char *why) {
  if (!pd_job_spec_checkpoints(&r->spec)) {
    fail(r, "%s", why);
    return;
  }
  set_phase(r, STALLED);
  PD_WARN("job %s: %s; waiting for the recovery from the checkpoint", r->job, why);
  snprintf(r->message, sizeof r->message,
           "%.400s; waiting for the server to be declared dead and the job rolled back to its "
           "checkpoint",
           why);
}

/* The selectors to talk to now, with their channels (kept across calls). */
static void refresh_selectors(pd_rounds *r) {
  const char *addr[MAX_SELECTORS];
  size_t n = r->env.selectors(r->env.user, addr, MAX_SELECTORS);
  endpoint next[MAX_SELECTORS];
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    pd_rpc_channel *ch = NULL;
    for (size_t k = 0; k < r->nselectors; k++)
      if (r->selectors[k].channel && strcmp(r->selectors[k].address, addr[i]) == 0) {
        ch = r->selectors[k].channel;
        r->selectors[k].channel = NULL;
      }
    pd_strlcpy(next[kept].address, addr[i], sizeof next[kept].address);
    next[kept].channel = ch ? ch : pd_rpc_channel_new(addr[i], 0);
    kept++;
  }
  /* channels of selectors that went away: only when no call uses them */
  for (size_t k = 0; k < r->nselectors; k++)
    if (r->selectors[k].channel) {
      if (r->calls == 0)
        pd_rpc_channel_free(r->selectors[k].channel);
      else if (kept < MAX_SELECTORS)
        next[kept++] = r->selectors[k]; /* keep it until its calls end */
    }
  memcpy(r->selectors, next, kept * sizeof *next);
  r->nselectors = kept;
}

/* ---------------------------------------------------------------- phases */

static void poll_population(pd_rounds *r) {
  refresh_selectors(r);
  r->last_poll = pd_now();
  r->eligible_sum = r->idle_sum = 0;
  if (r->nselectors == 0) {
    if (r->selector_error[0]) /* one was there: say which, and what went wrong */
      snprintf(r->message, sizeof r->message,
               "round %d: waiting for a selector (none is alive; the last call failed: %.380s)",
               r->round, r->selector_error);
    else
      snprintf(r->message, sizeof r->message,
               "round %d: waiting for a selector (none has registered with the coordinator)",
               r->round);
    return;
  }
  char *require[16];
  size_t nrequire = 0;
  char buf[sizeof r->spec.training.federated.require];
  pd_strlcpy(buf, r->spec.training.federated.require, sizeof buf);
  for (char *tok = strtok(buf, ","); tok && nrequire < 16; tok = strtok(NULL, ","))
    require[nrequire++] = tok;
  Pando__V1__PopulationRequest req = PANDO__V1__POPULATION_REQUEST__INIT;
  req.job_name = r->spec.name;
  req.n_require = nrequire;
  req.require = require;
  req.demand = pd_spec_round_selected(&r->spec, 0);
  for (size_t i = 0; i < r->nselectors; i++) {
    r->idle[i] = 0;
    start_call(r, &r->selectors[i], CALL_POPULATION, i, "/pando.v1.Selector/Population", &req.base);
  }
}

static void start_reporting(pd_rounds *r, double timeout) {
  set_phase(r, REPORTING);
  r->deadline = pd_now() + timeout;
  free(r->order);
  r->order = pd_xcalloc(r->nchosen + 1, sizeof *r->order);
  snprintf(r->message, sizeof r->message,
           "round %d/%d (attempt %d): %zu devices selected, waiting for %u reports", r->round,
           r->spec.training.federated.rounds, r->attempt, r->nchosen, r->need);
}

static void start_selecting(pd_rounds *r) {
  r->id++;
  clear_chosen(r);
  r->late_now = 0;
  r->goal = pd_spec_round_goal(&r->spec, r->eligible_sum);
  r->need = pd_spec_round_min_reports(&r->spec, r->eligible_sum);
  r->population = r->eligible_sum;
  uint32_t want = pd_spec_round_selected(&r->spec, r->eligible_sum);
  set_phase(r, SELECTING);
  r->select_started = pd_now();
  snprintf(r->message, sizeof r->message, "round %d/%d: selecting %u devices", r->round,
           r->spec.training.federated.rounds, want);
  /* split `want` over the selectors by their idle devices (largest remainders) */
  uint32_t share[MAX_SELECTORS] = {0}, given = 0;
  double rem[MAX_SELECTORS];
  for (size_t i = 0; i < r->nselectors; i++) {
    double exact = r->idle_sum ? (double)want * r->idle[i] / r->idle_sum : 0;
    share[i] = PD_MIN((uint32_t)exact, r->idle[i]);
    rem[i] = exact - share[i];
    given += share[i];
  }
  while (given < want) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < r->nselectors; i++)
      if (share[i] < r->idle[i] && (best == SIZE_MAX || rem[i] > rem[best]))
        best = i;
    if (best == SIZE_MAX)
      break;
    share[best]++;
    rem[best] = -1;
    given++;
  }
  char *require[16];
  size_t nrequire = 0;
  char buf[sizeof r->spec.training.federated.require];
  pd_strlcpy(buf, r->spec.training.federated.require, sizeof buf);
  for (char *tok = strtok(buf, ","); tok && nrequire < 16; tok = strtok(NULL, ","))
    require[nrequire++] = tok;
  Pando__V1__ShardMap map = PANDO__V1__SHARD_MAP__INIT;
  Pando__V1__Shard *shards = pd_xcalloc(r->nservers, sizeof *shards);
  Pando__V1__Shard **ptrs = pd_xcalloc(r->nservers, sizeof *ptrs);
  for (uint32_t s = 0; s < r->nservers; s++) {
    pando__v1__shard__init(&shards[s]);
    shards[s].begin = r->ranges[s].begin;
    shards[s].end = r->ranges[s].end;
    shards[s].address = r->ranges[s].address;
    ptrs[s] = &shards[s];
  }
  map.version = 1;
  map.keys = r->keys;
  map.n_shards = r->nservers;
  map.shards = ptrs;
  Pando__V1__RoundTask task = PANDO__V1__ROUND_TASK__INIT;
  task.job = r->job;
  task.round = r->id;
  task.spec_yaml = r->spec_yaml;
  task.shard_map = &map;
  task.deadline_ms = (uint32_t)(r->spec.training.federated.round_timeout_sec * 1000);
  task.seed = pd_mix64(r->spec.training.federated.seed ^ r->id);
  task.round_index = (uint32_t)r->round;
  task.attempt = r->attempt_of_job;
  task.job_token = r->job_token;
  Pando__V1__SelectRequest req = PANDO__V1__SELECT_REQUEST__INIT;
  req.job = r->job;
  req.job_name = r->spec.name;
  req.round = r->id;
  req.seed = r->spec.training.federated.seed;
  req.n_require = nrequire;
  req.require = require;
  req.n_exclude = r->nexclude;
  req.exclude = r->exclude;
  req.task = &task;
  req.report_key = r->report_key;
  for (size_t i = 0; i < r->nselectors; i++) {
    if (share[i] == 0)
      continue;
    req.count = share[i];
    start_call(r, &r->selectors[i], CALL_SELECT, i, "/pando.v1.Selector/Select", &req.base);
  }
  free(ptrs);
  free(shards);
  if (r->calls == 0) /* nothing to ask: the attempt is abandoned at the next cron */
    start_reporting(r, 0);
}

static void enter_waiting(pd_rounds *r) {
  set_phase(r, WAITING);
  r->wait_since = pd_now();
  r->enough_since = 0;
  snprintf(r->message, sizeof r->message, "round %d/%d: waiting for devices", r->round,
           r->spec.training.federated.rounds);
  poll_population(r);
}

/* Closes the attempt on every shard: commit the first `need` reports, or abandon. */
static void close_attempt(pd_rounds *r, int abandon) {
  set_phase(r, CLOSING);
  r->abandoning = abandon;
  r->commit_failed = 0;
  Pando__V1__CommitRoundRequest req = PANDO__V1__COMMIT_ROUND_REQUEST__INIT;
  req.job = r->job;
  req.round = r->id;
  req.abandon = abandon;
  req.population = r->population;
  if (!abandon) {
    req.n_devices = r->nreported;
    req.devices = r->order;
    double every = r->spec.checkpoint.every_seconds, now = pd_now();
    if (every > 0 && now - r->checkpoint_asked >= every) { /* every shard checkpoints after it */
      req.checkpoint = 1;
      r->checkpoint_asked = now;
    }
  }
  for (uint32_t i = 0; i < r->nservers; i++)
    start_call(r, &r->servers[i], CALL_COMMIT, i, "/pando.v1.ParameterServer/CommitRound",
               &req.base);
}

static void record_attempt(pd_rounds *r, int abandoned) {
  size_t n = r->nhistory + 1;
  r->history = pd_xrealloc(r->history, n * sizeof *r->history);
  r->history_ids = pd_xrealloc(r->history_ids, n * sizeof *r->history_ids);
  r->history_ptrs = pd_xrealloc(r->history_ptrs, n * sizeof *r->history_ptrs);
  Pando__V1__RoundRecord *rec = &r->history[r->nhistory];
  r->history_ids[r->nhistory++] = r->id;
  pando__v1__round_record__init(rec);
  rec->round = (uint32_t)r->round;
  rec->attempt = (uint32_t)r->attempt;
  rec->selected = (uint32_t)r->nchosen;
  rec->reported = (uint32_t)r->nreported;
  rec->late = r->late_now;
  rec->dropped = (uint32_t)(r->nchosen - r->nreported - r->late_now);
  rec->abandoned = abandoned;
  rec->seconds = pd_now() - r->select_started;
  rec->finished_sec = pd_now() - r->started;
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\"", r->job);
  pd_metric_add(rounds_counter(r, abandoned), 1);
  pd_metric_add(pd_metric_counter("pando_fed_devices_selected_total",
                                  "Devices selected for federated rounds.", labels),
                rec->selected);
  pd_metric_add(pd_metric_counter("pando_fed_reports_total",
                                  "Device reports that arrived before their round closed.", labels),
                rec->reported);
  pd_metric_add(pd_metric_counter("pando_fed_devices_dropped_total",
                                  "Selected devices that failed or had not reported when their "
                                  "round closed.",
                                  labels),
                rec->dropped);
  pd_metric_set(pd_metric_gauge("pando_fed_round_seconds",
                                "Duration of the last federated round attempt, selection to close.",
                                labels),
                rec->seconds);
  pd_metric_set(
      pd_metric_gauge("pando_fed_rounds_done", "Federated rounds committed so far.", labels),
      abandoned ? r->round - 1 : r->round);
  if (r->env.changed)
    r->env.changed(r->env.user, r->job);
}

static int has_test_set(const pd_job_spec *spec) {
  return spec->data.test.features[0] ||
         (strcmp(spec->data.format, "synthetic") == 0 && spec->data.synthetic.test_rows > 0);
}

/* The evaluation thread: pulls the global model from every shard and
 * evaluates it on the job's test set (loaded once). */
static void *eval_main(void *arg) {
  pd_rounds *r = arg;
  char err[512] = "";
  float *params = NULL;
  pd_psclient *client = NULL;
  if (!r->test_loaded) {
    if (pd_dataset_load(&r->spec, 1, &r->test, err, sizeof err) != 0)
      goto done;
    r->model = pd_model_new(&r->spec.model, 256, err, sizeof err);
    if (!r->model)
      goto done;
    r->test_loaded = 1;
  }
  params = pd_xmalloc(r->keys * sizeof *params);
  client = pd_psclient_new(r->job, 0, r->ranges, (int)r->nservers, 0);
  pd_psclient_set_timeouts(client, 30, 30);
  /* round 0: the model as last committed, or with training.federated.swa_from
   * the servers' running average of the rounds' models */
  if (pd_psclient_pull(client, 0, r->keys, 0, params, NULL, err, sizeof err) != 0)
    goto done;
  pd_eval ev;
  pd_model_evaluate(r->model, params, &r->test, &ev);
  r->eval_accuracy = ev.accuracy;
  r->eval_loss = ev.loss;
done:
  snprintf(r->eval_error, sizeof r->eval_error, "%s", err);
  pd_psclient_free(client);
  free(params);
  atomic_store(&r->eval_done, 1);
  return NULL;
}

static void after_commit(pd_rounds *r) {
  int last = r->round > r->spec.training.federated.rounds;
  if (last) {
    r->phase = DONE;
    r->stopped = 1;
    char msg[128];
    if (isnan(r->last_accuracy))
      snprintf(msg, sizeof msg, "%d rounds committed", r->spec.training.federated.rounds);
    else
      snprintf(msg, sizeof msg, "%d rounds committed, test accuracy %.4f",
               r->spec.training.federated.rounds, r->last_accuracy);
    r->env.finish(r->env.user, r->job, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED, msg);
    return;
  }
  enter_waiting(r);
}

/* Every shard answered CommitRound: the attempt is over. */
static void finish_close(pd_rounds *r) {
  if (r->abandoning && r->short_selection) {
    /* No round ran: between the population poll and Select, other jobs took
     * the idle devices. Not an attempt: select again (cluster.wait_timeout
     * still counts from the first wait). */
    PD_INFO("job %s: round %d: only %zu of the %u devices it needs could be chosen (other jobs "
            "took them): selecting again",
            r->job, r->round, r->nchosen, r->need);
    double since = r->wait_since;
    r->short_selection = 0;
    enter_waiting(r);
    r->wait_since = since;
    return;
  }
  record_attempt(r, r->abandoning);
  const Pando__V1__RoundRecord *rec = &r->history[r->nhistory - 1];
  const int rounds = r->spec.training.federated.rounds;
  if (r->abandoning) {
    PD_WARN("job %s: round %d/%d attempt %d abandoned: %u of the %u reports it needs before "
            "round_timeout from %u selected devices",
            r->job, r->round, rounds, r->attempt, rec->reported, r->need, rec->selected);
    if (r->attempt >= r->spec.training.federated.max_attempts) {
      fail(r,
           "round %d was abandoned %d times (training.federated.max_attempts): its last attempt "
           "had %u of the %u reports it needs before training.federated.round_timeout (%g s) "
           "from %u selected devices; the model stays at round %d",
           r->round, r->attempt, rec->reported, r->need,
           r->spec.training.federated.round_timeout_sec, rec->selected, r->round - 1);
      return;
    }
    /* retried with devices the abandoned attempts did not choose */
    r->exclude = pd_xrealloc(r->exclude, (r->nexclude + r->nchosen + 1) * sizeof *r->exclude);
    for (size_t i = 0; i < r->nchosen; i++)
      r->exclude[r->nexclude++] = pd_xstrdup(r->chosen[i].device);
    r->attempt++;
    enter_waiting(r);
    return;
  }
  PD_INFO("job %s: round %d/%d committed: %u selected, %u reported, %u dropped, %.2f s", r->job,
          r->round, rounds, rec->selected, rec->reported, rec->dropped, rec->seconds);
  for (size_t i = 0; i < r->nexclude; i++)
    free(r->exclude[i]);
  r->nexclude = 0;
  r->attempt = 1;
  r->round++;
  int done_rounds = r->round - 1;
  if (has_test_set(&r->spec) &&
      (done_rounds % r->spec.training.federated.eval_every == 0 || done_rounds == rounds)) {
    set_phase(r, EVALUATING);
    atomic_store(&r->eval_done, 0);
    r->eval_running = 1;
    snprintf(r->message, sizeof r->message, "round %d/%d: evaluating the global model", done_rounds,
             rounds);
    if (pthread_create(&r->eval_thread, NULL, eval_main, r) != 0) {
      r->eval_running = 0;
      fail(r, "cannot start the evaluation thread");
    }
    return;
  }
  after_commit(r);
}

/* ---------------------------------------------------------------- calls */

static void call_done(const pd_rpc_result *res, void *user);

static void send_call(call_ctx *cc) {
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)cc->buf, cc->len);
  int rc = pd_rpc_start(cc->ep->channel, cc->r->env.loop, cc->method, &slice, 1, CALL_TIMEOUT_SEC,
                        call_done, cc);
  grpc_slice_unref(slice);
  if (rc != 0) {
    pd_rpc_result res = {GRPC_STATUS_INTERNAL, "cannot start call", NULL};
    cc->attempts = COMMIT_ATTEMPTS;
    call_done(&res, cc);
  }
}

static void start_call(pd_rounds *r, endpoint *ep, enum call_kind kind, size_t index,
                       const char *method, const ProtobufCMessage *msg) {
  call_ctx *cc = pd_xcalloc(1, sizeof *cc);
  cc->r = r;
  cc->kind = kind;
  cc->index = index;
  cc->id = r->id;
  cc->gen = r->gen;
  cc->ep = ep;
  cc->method = method;
  cc->attempts = 1;
  cc->len = protobuf_c_message_get_packed_size(msg);
  cc->buf = pd_xmalloc(cc->len ? cc->len : 1);
  protobuf_c_message_pack(msg, cc->buf);
  r->calls++;
  r->calls_total++;
  send_call(cc);
}

static void on_population(pd_rounds *r, call_ctx *cc, const pd_rpc_result *res) {
  if (res->status == GRPC_STATUS_OK) {
    Pando__V1__PopulationResponse *resp = NULL;
    char err[256];
    if (pd_rpc_unpack(res->response, &pando__v1__population_response__descriptor,
                      (ProtobufCMessage **)&resp, err, sizeof err) != 0)
      PD_WARN("job %s: selector %s: %s", r->job, cc->ep->address, err);
    if (resp) {
      r->idle[cc->index] = resp->idle;
      r->idle_sum += resp->idle;
      r->eligible_sum += resp->eligible;
      pando__v1__population_response__free_unpacked(resp, NULL);
    }
  } else {
    PD_WARN("job %s: selector %s: Population failed: %s: %s", r->job, cc->ep->address,
            pd_rpc_status_name(res->status), res->details);
    snprintf(r->selector_error, sizeof r->selector_error, "selector %s: %s: %.200s",
             cc->ep->address, pd_rpc_status_name(res->status), res->details);
  }
  if (r->calls > 0)
    return;
  uint32_t need = pd_spec_round_min_reports(&r->spec, r->eligible_sum);
  uint32_t want = pd_spec_round_selected(&r->spec, r->eligible_sum);
  double now = pd_now(), patience = r->spec.training.federated.selection_timeout_sec;
  if (r->idle_sum < need || r->idle_sum == 0) {
    r->enough_since = 0;
    snprintf(r->message, sizeof r->message,
             "round %d/%d: waiting for devices: %u idle of %u eligible at %zu selectors; a round "
             "needs %u reports",
             r->round, r->spec.training.federated.rounds, r->idle_sum, r->eligible_sum,
             r->nselectors, need);
    return;
  }
  if (r->enough_since == 0)
    r->enough_since = now;
  /* K = ceil(C n) of a fraction C is only as good as n: while the eligible
   * population still grows by more than SETTLE_GROWTH a poll (devices checking
   * in at the start of a job), select later, with the larger K. */
  uint32_t prev = r->prev_eligible;
  r->prev_eligible = r->eligible_sum;
  int growing = r->spec.training.federated.clients_per_round < 1 &&
                r->eligible_sum > prev + prev * SETTLE_GROWTH;
  /* Bonawitz et al. s2.2: selection waits for the round's goal count; with
   * fewer (but enough to commit) it goes on after selection_timeout. */
  if (growing && now - r->enough_since < patience) {
    snprintf(r->message, sizeof r->message,
             "round %d/%d: waiting for the population to settle: %u eligible devices (%u a "
             "poll ago) at %zu selectors",
             r->round, r->spec.training.federated.rounds, r->eligible_sum, prev, r->nselectors);
    return;
  }
  if (r->idle_sum >= want || now - r->enough_since >= patience) {
    start_selecting(r);
    return;
  }
  snprintf(r->message, sizeof r->message,
           "round %d/%d: selecting: %u of the %u devices it selects are idle; selecting them "
           "in %.0f s (training.federated.selection_timeout) unless more check in",
           r->round, r->spec.training.federated.rounds, r->idle_sum, want,
           patience - (now - r->enough_since));
}

static void on_select(pd_rounds *r, call_ctx *cc, const pd_rpc_result *res) {
  if (res->status == GRPC_STATUS_OK) {
    Pando__V1__SelectResponse *resp = NULL;
    char err[256];
    if (pd_rpc_unpack(res->response, &pando__v1__select_response__descriptor,
                      (ProtobufCMessage **)&resp, err, sizeof err) != 0)
      PD_WARN("job %s: selector %s: %s", r->job, cc->ep->address, err);
    for (size_t i = 0; resp && i < resp->n_devices; i++) {
      if (r->nchosen == r->chosen_cap) {
        r->chosen_cap = r->chosen_cap ? 2 * r->chosen_cap : 16;
        r->chosen = pd_xrealloc(r->chosen, r->chosen_cap * sizeof *r->chosen);
      }
      r->chosen[r->nchosen++] = (selected){pd_xstrdup(resp->devices[i]), 0, 0, 0};
    }
    if (resp)
      pando__v1__select_response__free_unpacked(resp, NULL);
  } else {
    PD_WARN("job %s: selector %s: Select failed: %s: %s", r->job, cc->ep->address,
            pd_rpc_status_name(res->status), res->details);
    snprintf(r->selector_error, sizeof r->selector_error, "selector %s: %s: %.200s",
             cc->ep->address, pd_rpc_status_name(res->status), res->details);
  }
  if (r->calls > 0)
    return;
  r->short_selection = r->nchosen < r->need;
  start_reporting(r, r->short_selection ? 0 : r->spec.training.federated.round_timeout_sec);
}

static void on_commit(pd_rounds *r, call_ctx *cc, const pd_rpc_result *res) {
  if (res->status != GRPC_STATUS_OK && !r->commit_failed) {
    r->commit_failed = 1;
    snprintf(r->message, sizeof r->message,
             "server %s: CommitRound of round %d (id %llu) failed after %d attempts: %s: %s",
             cc->ep->address, r->round, (unsigned long long)cc->id, cc->attempts,
             pd_rpc_status_name(res->status), res->details);
  }
  if (r->calls > 0)
    return;
  if (r->commit_failed)
    server_failed(r, r->message);
  else
    finish_close(r);
}

static void call_done(const pd_rpc_result *res, void *user) {
  call_ctx *cc = user;
  pd_rounds *r = cc->r;
  int transient =
      res->status == GRPC_STATUS_UNAVAILABLE || res->status == GRPC_STATUS_DEADLINE_EXCEEDED;
  if (cc->kind == CALL_COMMIT && res->status != GRPC_STATUS_OK && transient && !r->stopped &&
      cc->attempts < COMMIT_ATTEMPTS) {
    cc->attempts++; /* CommitRound is idempotent */
    send_call(cc);
    return;
  }
  r->calls_total--;
  if (!r->stopped && cc->gen == r->gen) {
    r->calls--;
    switch (cc->kind) {
    case CALL_POPULATION:
      on_population(r, cc, res);
      break;
    case CALL_SELECT:
      on_select(r, cc, res);
      break;
    case CALL_COMMIT:
      on_commit(r, cc, res);
      break;
    }
  }
  free(cc->buf);
  free(cc);
}

/* ---------------------------------------------------------------- cron, reports, status */

void pd_rounds_resume(pd_rounds *r, const pd_shard_range *shards, uint32_t n, uint32_t committed,
                      uint32_t attempt) {
  r->stopped = 1;
  r->phase = DONE;
  free(r->resume.ranges);
  r->resume.ranges = pd_xmalloc(n * sizeof *shards);
  memcpy(r->resume.ranges, shards, n * sizeof *shards);
  r->resume.n = n;
  r->resume.committed = committed;
  r->resume.id_base = (uint64_t)attempt << 32;
  r->resume.attempt = attempt;
  r->resume.pending = 1;
}

/* pd_rounds_resume's work, once nothing of the stopped rounds is in flight. */
static void finish_resume(pd_rounds *r) {
  if (r->eval_running) {
    pthread_join(r->eval_thread, NULL);
    r->eval_running = 0;
  }
  set_servers(r, r->resume.ranges, r->resume.n);
  free(r->resume.ranges);
  r->resume.ranges = NULL;
  r->resume.pending = 0;
  size_t kept = 0; /* the records of rounds the restored model holds */
  while (kept < r->nhistory && r->history[kept].round <= r->resume.committed)
    kept++;
  r->nhistory = kept;
  r->last_accuracy = NAN;
  for (size_t i = kept; i > 0; i--)
    if (r->history[i - 1].has_eval) {
      r->last_accuracy = r->history[i - 1].test_accuracy;
      break;
    }
  clear_chosen(r);
  for (size_t i = 0; i < r->nexclude; i++)
    free(r->exclude[i]);
  r->nexclude = 0;
  r->short_selection = 0;
  r->round = (int)r->resume.committed + 1;
  r->attempt = 1;
  r->id = PD_MAX(r->id, r->resume.id_base);
  r->attempt_of_job = r->resume.attempt;
  r->stopped = 0;
  PD_INFO("job %s: rounds go on from round %d (round ids from %llu)", r->job, r->round,
          (unsigned long long)r->id + 1);
  if (r->env.changed)
    r->env.changed(r->env.user, r->job);
  if (r->round > r->spec.training.federated.rounds) {
    after_commit(r); /* the checkpoint is of the last round: done */
    return;
  }
  enter_waiting(r);
}

size_t pd_rounds_history(const pd_rounds *r, const Pando__V1__RoundRecord **out) {
  *out = r->history;
  return r->nhistory;
}

void pd_rounds_set_history(pd_rounds *r, const Pando__V1__RoundRecord *records, size_t n) {
  r->history = pd_xrealloc(r->history, (n + 1) * sizeof *r->history);
  r->history_ids = pd_xrealloc(r->history_ids, (n + 1) * sizeof *r->history_ids);
  r->history_ptrs = pd_xrealloc(r->history_ptrs, (n + 1) * sizeof *r->history_ptrs);
  for (size_t i = 0; i < n; i++) {
    r->history[i] = records[i];
    r->history_ids[i] = 0; /* ids of before the restart: no report can match them */
  }
  r->nhistory = n;
}

void pd_rounds_cron(pd_rounds *r) {
  if (r->resume.pending && !pd_rounds_busy(r))
    finish_resume(r);
  if (r->stopped)
    return;
  double now = pd_now();
  switch (r->phase) {
  case WAITING:
    if (now - r->wait_since > r->spec.cluster.wait_timeout_sec) {
      fail(r, "cluster.wait_timeout (%g s) expired: %s", r->spec.cluster.wait_timeout_sec,
           r->message);
      return;
    }
    if (r->calls == 0 && now - r->last_poll >= POLL_SEC)
      poll_population(r);
    return;
  case REPORTING:
    if (now >= r->deadline)
      close_attempt(r, 1);
    return;
  case EVALUATING:
    if (!atomic_load(&r->eval_done))
      return;
    pthread_join(r->eval_thread, NULL);
    r->eval_running = 0;
    if (r->eval_error[0]) {
      char why[700];
      snprintf(why, sizeof why, "evaluating the global model after round %d failed: %s",
               r->round - 1, r->eval_error);
      server_failed(r, why);
      return;
    }
    for (size_t i = r->nhistory; i > 0; i--)
      if (!r->history[i - 1].abandoned) {
        Pando__V1__RoundRecord *rec = &r->history[i - 1];
        rec->has_eval = 1;
        rec->test_accuracy = r->eval_accuracy;
        rec->test_loss = r->eval_loss;
        break;
      }
    r->last_accuracy = r->eval_accuracy;
    char labels[200];
    snprintf(labels, sizeof labels, "job=\"%s\"", r->job);
    pd_metric_set(pd_metric_gauge("pando_job_test_accuracy",
                                  "Test accuracy after the last finished epoch.", labels),
                  r->eval_accuracy);
    PD_INFO("job %s: round %d/%d: test accuracy %.4f, test loss %.4f", r->job, r->round - 1,
            r->spec.training.federated.rounds, r->eval_accuracy, r->eval_loss);
    if (r->env.changed)
      r->env.changed(r->env.user, r->job);
    after_commit(r);
    return;
  case STALLED:
    if (now - r->phase_since > r->spec.cluster.wait_timeout_sec)
      fail(r, "cluster.wait_timeout (%g s) expired: %s", r->spec.cluster.wait_timeout_sec,
           r->message);
    return;
  case SELECTING:
  case CLOSING:
  case DONE:
    return;
  }
}

/* A report after its round closed: discarded, counted late (it was dropped). */
static int count_late(pd_rounds *r, Pando__V1__RoundRecord *rec) {
  rec->late++;
  if (rec->dropped > 0)
    rec->dropped--;
  char labels[200];
  snprintf(labels, sizeof labels, "job=\"%s\"", r->job);
  pd_metric_add(pd_metric_counter("pando_fed_reports_late_total",
                                  "Device reports that came after their round had closed "
                                  "(discarded).",
                                  labels),
                1);
  return 0;
}

#define MAX_LABELS 4096

/* The fewest of the n labels whose counts hold 90% of their sum. */
static uint32_t labels_for_90(const uint64_t *counts, size_t n) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += counts[i];
  if (total == 0)
    return 0;
  uint64_t *sorted = pd_xmalloc(n * sizeof *sorted);
  memcpy(sorted, counts, n * sizeof *sorted);
  /* largest first (n is a number of classes: small) */
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && sorted[k - 1] < sorted[k]; k--) {
      uint64_t t = sorted[k];
      sorted[k] = sorted[k - 1];
      sorted[k - 1] = t;
    }
  uint64_t held = 0;
  uint32_t used = 0;
  while (used < n && (double)held < 0.9 * (double)total)
    held += sorted[used++];
  free(sorted);
  return used;
}

/* Adds an accepted report's label counts to the job's summary. */
static void add_labels(pd_rounds *r, const Pando__V1__DeviceReport *rep) {
  size_t n = rep->n_label_counts;
  if (n == 0 || n > MAX_LABELS)
    return;
  if (n > r->nlabels) {
    r->label_totals = pd_xrealloc(r->label_totals, n * sizeof *r->label_totals);
    memset(r->label_totals + r->nlabels, 0, (n - r->nlabels) * sizeof *r->label_totals);
    r->nlabels = n;
  }
  for (size_t i = 0; i < n; i++)
    r->label_totals[i] += rep->label_counts[i];
  r->labels_90_sum += labels_for_90(rep->label_counts, n);
  r->label_reports++;
}

/* Whether `rep` carries its device's report secret for its round. */
static int report_secret_ok(const pd_rounds *r, const Pando__V1__DeviceReport *rep) {
  char want[sizeof r->report_key];
  int ok = pd_security_report_secret(r->report_key, rep->round, rep->device_id, want,
                                     sizeof want) == 0 &&
           pd_security_secret_is(rep->report_secret, want);
  memset(want, 0, sizeof want);
  return ok;
}

int pd_rounds_report(pd_rounds *r, const Pando__V1__DeviceReport *rep,
                     Pando__V1__DeviceReportAck *ack, char *err, size_t errlen) {
  /* only the device the task was handed to can report it */
  if (!report_secret_ok(r, rep))
    return pd_errf(err, errlen, -EACCES,
                   "device_id, round and report_secret do not match a task of job %s (send the "
                   "RoundTask.report_secret of the task)",
                   r->job);
  if (rep->round == r->id && r->nchosen > 0) {
    selected *s = NULL;
    for (size_t i = 0; i < r->nchosen && !s; i++)
      if (strcmp(r->chosen[i].device, rep->device_id) == 0)
        s = &r->chosen[i];
    if (!s)
      return pd_errf(err, errlen, -1, "device %s was not selected for round id %llu of job %s",
                     rep->device_id, (unsigned long long)rep->round, r->job);
    if (s->reported || s->failed) { /* a retried report */
      ack->accepted = s->reported;
      return 0;
    }
    if (r->phase != REPORTING) { /* the round has closed */
      s->failed = 1;
      ack->late = 1;
      if (r->nhistory == 0 || r->history_ids[r->nhistory - 1] != r->id) {
        r->late_now++; /* closing: its record is not written yet */
        return 0;
      }
      return count_late(r, &r->history[r->nhistory - 1]);
    }
    if (rep->error[0]) {
      s->failed = 1;
      PD_INFO("job %s: device %s dropped out of round %d: %s", r->job, rep->device_id, r->round,
              rep->error);
      return 0;
    }
    s->reported = 1;
    add_labels(r, rep);
    r->order[r->nreported++] = s->device;
    ack->accepted = 1;
    if (r->nreported >= r->need)
      close_attempt(r, 0); /* the goal is met: close now, not at the next poll */
    return 0;
  }
  for (size_t i = r->nhistory; i > 0; i--)
    if (r->history_ids[i - 1] == rep->round) { /* an older attempt: late */
      ack->late = 1;
      return count_late(r, &r->history[i - 1]);
    }
  return pd_errf(err, errlen, -1, "round id %llu of job %s is not known (the current one is %llu)",
                 (unsigned long long)rep->round, r->job, (unsigned long long)r->id);
}

void pd_rounds_status(pd_rounds *r, Pando__V1__JobStatus *st) {
  st->rounds = (uint32_t)r->spec.training.federated.rounds;
  st->rounds_done = (uint32_t)(r->round - 1);
  /* a round being evaluated is shown with its accuracy, once that is known */
  size_t n = r->nhistory - (r->phase == EVALUATING && r->nhistory > 0 ? 1 : 0);
  for (size_t i = 0; i < n; i++)
    r->history_ptrs[i] = &r->history[i];
  st->n_round_history = n;
  st->round_history = r->history_ptrs;
  if (r->label_reports > 0) {
    pando__v1__label_summary__init(&r->label_summary);
    r->label_summary.reports = r->label_reports;
    r->label_summary.mean_labels_90 = r->labels_90_sum / r->label_reports;
    r->label_summary.n_totals = r->nlabels;
    r->label_summary.totals = r->label_totals;
    st->labels = &r->label_summary;
  }
  if (!r->stopped)
    st->message = r->message;
}
