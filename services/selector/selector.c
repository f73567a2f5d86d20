/* Selector RPC handlers: check-ins, selection for rounds, population; see
 * selector.h. Everything runs on the daemon's one event loop. */
#include "selector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/security.h"
#include "pando/util.h"
#include "population.h"

#define ID_MAX 128        /* bytes of a device id */
#define NAME_MAX_LEN 63   /* bytes of a job name or attribute */
#define LIST_MAX 16       /* job names or attributes of one device */
#define SELECT_MAX 100000 /* devices one Select may ask for */
#define DEMAND_TTL_SEC 10 /* a job's demand counts this long after a poll or its round's end */
#define DEMANDS_MAX 64

/* A round's task, shared by the devices chosen for it. */
struct pd_task {
  int refs;
  Pando__V1__SelectRequest *req; /* unpacked, owned: req->task is what devices get */
  double deadline;               /* pd_now() when the round times out */
};

typedef struct demand {
  char job_name[NAME_MAX_LEN + 1];
  uint32_t devices;
  double until; /* it counts until then */
} demand;

struct pd_selector {
  pd_selector_options opt;
  char coordinator[256];
  pd_population *population;
  pd_selector_stats stats;
  uint64_t jitter_state;
  demand demands[DEMANDS_MAX];
  size_t ndemands;
  struct {
    pd_metric *online, *window, *checkins, *selected, *given, *task_expired, *expired;
    pd_selector_stats seen;
  } metrics;
};

static const char *const health_services[] = {"pando.v1.Selector", NULL};

static void task_release(pd_task *t) {
  if (--t->refs > 0)
    return;
  pando__v1__select_request__free_unpacked(t->req, NULL);
  free(t);
}

pd_selector *pd_selector_new(const pd_selector_options *options) {
  pd_selector *s = pd_xcalloc(1, sizeof *s);
  s->opt = *options;
  pd_strlcpy(s->coordinator, options->coordinator ? options->coordinator : "",
             sizeof s->coordinator);
  s->opt.coordinator = s->coordinator;
  s->population = pd_population_new();
  s->jitter_state = options->seed;
  s->metrics.online = pd_metric_gauge("pando_selector_devices_online",
                                      "Devices with a live session at this selector.", "");
  s->metrics.window =
      pd_metric_gauge("pando_selector_reconnect_window_seconds",
                      "Reconnect window pace steering gives now (before jitter).", "");
  s->metrics.checkins =
      pd_metric_counter("pando_selector_checkins_total", "Device check-ins answered.", "");
  s->metrics.selected =
      pd_metric_counter("pando_selector_devices_selected_total", "Devices chosen for rounds.", "");
  s->metrics.given = pd_metric_counter("pando_selector_tasks_given_total",
                                       "Round tasks handed to devices at their check-in.", "");
  s->metrics.task_expired = pd_metric_counter(
      "pando_selector_tasks_expired_total",
      "Round tasks whose round timed out before the chosen device checked in.", "");
  s->metrics.expired =
      pd_metric_counter("pando_selector_devices_expired_total",
                        "Devices forgotten because they did not check in within their window.", "");
  return s;
}

void pd_selector_free(pd_selector *s) {
  if (!s)
    return;
  pd_population_free(s->population, task_release);
  free(s);
}

size_t pd_selector_online(const pd_selector *s) { return pd_population_size(s->population); }

const pd_selector_stats *pd_selector_stats_get(const pd_selector *s) { return &s->stats; }

/* Devices the running jobs' rounds need: the sum of the demands the
 * coordinator told recently. */
static size_t total_demand(pd_selector *s, double now) {
  size_t sum = 0;
  for (size_t i = 0; i < s->ndemands; i++)
    if (now < s->demands[i].until)
      sum += s->demands[i].devices;
  return sum;
}

/* Records that `job_name` needs `devices` a round, until `until` at least
 * (after a Select: while its round runs the coordinator does not poll). */
static void set_demand(pd_selector *s, const char *job_name, uint32_t devices, double until) {
  size_t i;
  for (i = 0; i < s->ndemands; i++)
    if (strcmp(s->demands[i].job_name, job_name) == 0)
      break;
  if (i == s->ndemands) {
    if (s->ndemands == DEMANDS_MAX) { /* reuse the stalest entry */
      i = 0;
      for (size_t k = 1; k < s->ndemands; k++)
        if (s->demands[k].until < s->demands[i].until)
          i = k;
    } else {
      s->ndemands++;
    }
    pd_strlcpy(s->demands[i].job_name, job_name, sizeof s->demands[i].job_name);
    s->demands[i].until = 0;
  }
  s->demands[i].devices = devices;
  s->demands[i].until = PD_MAX(s->demands[i].until, until);
}

void pd_selector_cron(pd_selector *s) {
  double now = pd_now();
  size_t gone = pd_population_expire(s->population, now, task_release);
  if (gone)
    PD_DEBUG("forgot %zu devices that did not check in again", gone);
  s->stats.expired += gone;
  s->stats.last_window_sec =
      pd_pace_window(&s->opt.pace, pd_population_size(s->population), total_demand(s, now));
  pd_metric_set(s->metrics.online, (double)pd_population_size(s->population));
  pd_metric_set(s->metrics.window, s->stats.last_window_sec);
#define EXPORT(metric, field)                                                                      \
  pd_metric_add(s->metrics.metric, (double)(s->stats.field - s->metrics.seen.field));              \
  s->metrics.seen.field = s->stats.field
  EXPORT(checkins, checkins);
  EXPORT(selected, selected);
  EXPORT(given, tasks_given);
  EXPORT(task_expired, tasks_expired);
  EXPORT(expired, expired);
#undef EXPORT
}

/* ---------------------------------------------------------------- handlers */

/* A job name or attribute: 1..63 bytes of [a-z0-9_-]. */
static int valid_name(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > NAME_MAX_LEN)
    return 0;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
      return 0;
  return 1;
}

/* Checks a list of names from a request; on a bad one fails the call naming
 * `field`. Joins them with ',' into `out` (room for LIST_MAX x 64 bytes). */
static int join_names(pd_rpc_call *call, const char *field, char **names, size_t n, char *out,
                      size_t outlen) {
  out[0] = '\0';
  if (n > LIST_MAX) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s: at most %d entries, got %zu", field,
                     LIST_MAX, n);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!valid_name(names[i])) {
      pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                       "%s[%zu]: must be 1 to %d characters of [a-z0-9_-], got '%.80s'", field, i,
                       NAME_MAX_LEN, names[i]);
      return -1;
    }
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, "%s%s", i ? "," : "", names[i]);
  }
  return 0;
}

static int valid_device_id(const char *id) {
  size_t len = strlen(id);
  if (len == 0 || len > ID_MAX)
    return 0;
  for (const char *c = id; *c; c++)
    if (*c <= ' ' || *c > '~' || *c == ',')
      return 0;
  return 1;
}

static void handle_checkin(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_selector *s = ctx;
  const Pando__V1__CheckInRequest *req = (const Pando__V1__CheckInRequest *)msg;
  char jobs[LIST_MAX * (NAME_MAX_LEN + 1) + 1], attributes[sizeof jobs];
  double now = pd_now();
  if (!valid_device_id(req->device_id)) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "device_id: must be 1 to %d printable characters without spaces or ',', "
                     "got '%.80s'",
                     ID_MAX, req->device_id);
    goto done;
  }
  if (join_names(call, "jobs", req->jobs, req->n_jobs, jobs, sizeof jobs) != 0 ||
      join_names(call, "attributes", req->attributes, req->n_attributes, attributes,
                 sizeof attributes) != 0)
    goto done;
  pd_device *live = pd_population_find(s->population, req->device_id);
  if (live && live->expires < now) { /* its session ran out (cron had not seen it yet) */
    s->stats.expired += pd_population_expire(s->population, now, task_release);
    live = NULL;
  }
  /* a live session is its device's: only the device's secret continues it */
  if (live && !pd_security_secret_is(req->session_secret, live->secret)) {
    pd_rpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED,
                     "device_id and session_secret do not match the device's session (a live "
                     "session needs the session_secret its first check-in was given)");
    goto done;
  }
  if (!live && pd_population_size(s->population) >= s->opt.max_devices) {
    pd_rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                     "this selector holds its maximum of %zu devices; check in with another "
                     "selector or later",
                     s->opt.max_devices);
    goto done;
  }
  char secret[sizeof live->secret] = "";
  if (!live && pd_security_new_token(secret, sizeof secret) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot draw a random session secret");
    goto done;
  }
  int created;
  pd_device *d = pd_population_upsert(s->population, req->device_id, &created);
  if (created) /* a new session: the answer gives the device its secret */
    pd_strlcpy(d->secret, secret, sizeof d->secret);
  memset(secret, 0, sizeof secret);
  pd_device_set(&d->jobs, jobs);
  pd_device_set(&d->attributes, attributes);
  d->num_samples = req->num_samples;
  d->last_seen = now;
  d->busy = req->busy;
  double window =
      pd_pace_window(&s->opt.pace, pd_population_size(s->population), total_demand(s, now));
  double told = pd_pace_jitter(window, &s->jitter_state);
  d->expires = now + 2 * told + s->opt.grace_sec;
  Pando__V1__CheckInResponse resp = PANDO__V1__CHECK_IN_RESPONSE__INIT;
  Pando__V1__RoundTask task;
  char report_secret[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1] = "";
  pd_task *t = d->task;
  d->task = NULL;
  if (t && t->deadline > now) {
    task = *t->req->task;
    task.deadline_ms = (uint32_t)((t->deadline - now) * 1000);
    if (!task.coordinator[0])
      task.coordinator = s->coordinator;
    /* this device's own secret for the round (none without a report key) */
    if (t->req->report_key[0])
      pd_security_report_secret(t->req->report_key, task.round, d->id, report_secret,
                                sizeof report_secret);
    task.report_secret = report_secret;
    resp.task = &task;
    d->busy = 1;
    /* it need not check in while it works on the round */
    d->expires = PD_MAX(d->expires, t->deadline + told + s->opt.grace_sec);
    s->stats.tasks_given++;
  } else if (t) {
    s->stats.tasks_expired++;
  }
  resp.reconnect_ms = (uint32_t)(told * 1000 + 0.5);
  if (created)
    resp.session_secret = d->secret;
  s->stats.checkins++;
  pd_rpc_call_reply_msg(call, &resp.base);
  memset(report_secret, 0, sizeof report_secret);
  if (t)
    task_release(t);
  if (created)
    PD_DEBUG("device %s checked in (%llu samples)", d->id, (unsigned long long)d->num_samples);
done:;
}

/* Whether `id` is in the request's exclude list. */
static int excluded(const Pando__V1__SelectRequest *req, const char *id) {
  for (size_t i = 0; i < req->n_exclude; i++)
    if (strcmp(req->exclude[i], id) == 0)
      return 1;
  return 0;
}

/* A copy of `msg` the task keeps (the handler's request is borrowed). */
static Pando__V1__SelectRequest *copy_request(const ProtobufCMessage *msg) {
  grpc_slice packed = pd_rpc_pack(msg);
  Pando__V1__SelectRequest *copy = pando__v1__select_request__unpack(
      NULL, GRPC_SLICE_LENGTH(packed), GRPC_SLICE_START_PTR(packed));
  grpc_slice_unref(packed);
  PD_ASSERT(copy);
  return copy;
}

static void handle_select(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_selector *s = ctx;
  const Pando__V1__SelectRequest *req = (const Pando__V1__SelectRequest *)msg;
  char require[LIST_MAX * (NAME_MAX_LEN + 1) + 1];
  const char **ids = NULL, **chosen_ids = NULL;
  size_t *chosen = NULL;
  pd_device **candidates = NULL;
  double now = pd_now();
  if (!req->job[0] || !req->task || !req->task->job[0] || !req->task->shard_map) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "job, task.job and task.shard_map are required");
    goto fail;
  }
  if (req->count == 0 || req->count > SELECT_MAX) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "count: must be 1 to %d, got %u",
                     SELECT_MAX, req->count);
    goto fail;
  }
  if (req->job_name[0] && !valid_name(req->job_name)) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "job_name: must be 1 to %d characters of [a-z0-9_-], got '%.80s'",
                     NAME_MAX_LEN, req->job_name);
    goto fail;
  }
  if (join_names(call, "require", req->require, req->n_require, require, sizeof require) != 0)
    goto fail;
  size_t n = pd_population_size(s->population), ncand = 0;
  candidates = pd_xmalloc((n ? n : 1) * sizeof *candidates);
  ids = pd_xmalloc((n ? n : 1) * sizeof *ids);
  for (size_t i = 0; i < n; i++) {
    pd_device *d = pd_population_at(s->population, i);
    if (d->busy || d->task ||
        !pd_selection_eligible(d->jobs, d->attributes, req->job_name, require) ||
        excluded(req, d->id))
      continue;
    candidates[ncand] = d;
    ids[ncand++] = d->id;
  }
  chosen = pd_xmalloc((req->count) * sizeof *chosen);
  size_t k = pd_selection_choose(ids, ncand, req->seed, req->round, req->count, chosen);
  pd_task *t = pd_xcalloc(1, sizeof *t);
  t->req = copy_request(msg);
  t->refs = 1; /* this handler's, released below */
  t->deadline = now + req->task->deadline_ms / 1000.0;
  chosen_ids = pd_xmalloc((k ? k : 1) * sizeof *chosen_ids);
  for (size_t i = 0; i < k; i++) {
    pd_device *d = candidates[chosen[i]];
    d->task = t;
    t->refs++;
    /* it keeps its session at least until its round times out */
    d->expires = PD_MAX(d->expires, t->deadline + s->opt.grace_sec);
    chosen_ids[i] = d->id;
  }
  s->stats.selected += k;
  if (req->job_name[0])
    set_demand(s, req->job_name, req->count, t->deadline + DEMAND_TTL_SEC);
  Pando__V1__SelectResponse resp = PANDO__V1__SELECT_RESPONSE__INIT;
  resp.n_devices = k;
  resp.devices = (char **)chosen_ids;
  resp.eligible = (uint32_t)ncand;
  pd_rpc_call_reply_msg(call, &resp.base);
  PD_INFO("job %s round %llu: chose %zu of %zu eligible devices (asked for %u)", req->job,
          (unsigned long long)req->round, k, ncand, req->count);
  task_release(t); /* frees its copy of the request when no device was chosen */
fail:
  free(chosen_ids);
  free(chosen);
  free(ids);
  free(candidates);
}

static void handle_population(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  pd_selector *s = ctx;
  const Pando__V1__PopulationRequest *req = (const Pando__V1__PopulationRequest *)msg;
  char require[LIST_MAX * (NAME_MAX_LEN + 1) + 1];
  if (req->job_name[0] && !valid_name(req->job_name)) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "job_name: must be 1 to %d characters of [a-z0-9_-], got '%.80s'",
                     NAME_MAX_LEN, req->job_name);
    goto done;
  }
  if (join_names(call, "require", req->require, req->n_require, require, sizeof require) != 0)
    goto done;
  Pando__V1__PopulationResponse resp = PANDO__V1__POPULATION_RESPONSE__INIT;
  size_t n = pd_population_size(s->population);
  resp.online = (uint32_t)n;
  for (size_t i = 0; i < n; i++) {
    pd_device *d = pd_population_at(s->population, i);
    if (!pd_selection_eligible(d->jobs, d->attributes, req->job_name, require))
      continue;
    resp.eligible++;
    resp.idle += !d->busy && !d->task;
  }
  if (req->job_name[0])
    set_demand(s, req->job_name, req->demand, pd_now() + DEMAND_TTL_SEC);
  pd_rpc_call_reply_msg(call, &resp.base);
done:;
}

void pd_selector_register(pd_selector *s, pd_rpc_server *srv) {
  pd_rpc_server_add_unary(srv, "/pando.v1.Selector/CheckIn",
                          &pando__v1__check_in_request__descriptor, handle_checkin, s);
  pd_rpc_server_add_unary(srv, "/pando.v1.Selector/Select", &pando__v1__select_request__descriptor,
                          handle_select, s);
  pd_rpc_server_add_unary(srv, "/pando.v1.Selector/Population",
                          &pando__v1__population_request__descriptor, handle_population, s);
  pd_rpc_health_register(srv, health_services);
}
