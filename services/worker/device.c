/* Federated devices, one or many simulated in one process; see device.h.
 * The main thread checks every device in with its selector when its window
 * is due; a device that gets a task is queued for one of `threads` training
 * threads, which run its round (pull, local epochs, push, report). */
#include "device.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pando.pb-c.h"
#include "pando/daemon.h"
#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/fileio.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/optimizer.h"
#include "pando/partition.h"
#include "pando/plan.h"
#include "pando/psclient.h"
#include "pando/rpc.h"
#include "pando/schedule.h"
#include "pando/security.h"
#include "pando/spec.h"
#include "pando/util.h"

#define CHECKIN_TIMEOUT_SEC 5.0
#define MAX_SELECTORS 16
#define DROPOUT_STREAM 0x64726f706f757400ull /* "dropout" */
#define SLOW_STREAM 0x736c6f7700000000ull    /* "slow" */
#define CONTROL_JOBS 4 /* scaffold jobs a device keeps its control variate c_i of */

/* A device's SCAFFOLD control variate c_i for one job (Karimireddy et al.,
 * ICML 2020): 0 before its first round of the job, then c_i+ of its last
 * round that counted. */
typedef struct control_variate {
  char job[128];
  float *c_i;    /* keys floats; NULL: this slot is free */
  uint64_t keys; /* of the job's model */
  double used;   /* pd_now() of its last round (the oldest slot is reused) */
} control_variate;

typedef struct sim_device {
  char id[136];
  const uint64_t *rows; /* its rows of the data set (borrowed from the partition) */
  uint64_t nrows;
  int slow;
  int selector;
  double next_checkin;
  atomic_int busy;
  control_variate control[CONTROL_JOBS]; /* scaffold jobs (training thread of its round only) */
  Pando__V1__CheckInResponse *task;      /* the answer that carried its task (owned) */
  /* CheckInResponse.session_secret of its session at the selector ("" before
   * the first check-in; check-in thread only; never logged) */
  char session_secret[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1];
} sim_device;

typedef struct devices {
  const pd_device_options *opt;
  pd_job_spec data_spec;
  pd_dataset data;
  pd_device_partition partition;
  sim_device *dev;
  uint32_t ndev;
  double dropout_rate, slow_fraction, slowdown;
  uint64_t seed;
  pd_rpc_channel *selectors[MAX_SELECTORS];
  int nselectors;
  char **jobs, **attributes;
  size_t njobs, nattributes;
  /* the queue of devices with a task */
  pthread_mutex_t lock;
  pthread_cond_t ready;
  uint32_t *queue;
  size_t qhead, qlen;
  int stopping;
  pthread_t *threads;
  int nthreads;
  /* where devices report, one channel per coordinator address */
  pthread_mutex_t coord_lock;
  char coord_address[256];
  pd_rpc_channel *coordinator;
  pd_metric *m_checkins, *m_rounds, *m_dropped, *m_late;
} devices;

int pd_device_drops(uint64_t seed, const char *device_id, uint64_t round, double rate) {
  uint64_t h = pd_mix64(seed ^ DROPOUT_STREAM);
  for (const char *c = device_id; *c; c++)
    h = pd_mix64(h ^ (unsigned char)*c);
  h = pd_mix64(h + round);
  return (double)(h >> 11) * 0x1.0p-53 < rate;
}

static void split_list(const char *text, char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!text || !text[0])
    return;
  char *copy = pd_xstrdup(text);
  for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
    *out = pd_xrealloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = pd_xstrdup(tok);
  }
  free(copy);
}

static void free_list(char **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(list[i]);
  free(list);
}

/* Loads the data spec, the data and the partition. */
static int load(devices *d, char *err, size_t errlen) {
  const pd_device_options *o = d->opt;
  uint8_t *text = NULL;
  size_t len = 0;
  int rc = pd_read_file(o->data, &text, &len, err, errlen);
  if (rc != 0)
    return rc;
  rc = pd_job_spec_parse((const char *)text, len, &d->data_spec, err, errlen);
  free(text);
  if (rc != 0)
    return rc;
  rc = pd_dataset_load(&d->data_spec, 0, &d->data, err, errlen);
  if (rc != 0)
    return rc;
  const pd_job_spec *s = &d->data_spec;
  d->ndev = o->simulate > 0 ? (uint32_t)o->simulate : 1;
  enum pd_partition scheme = s->data.partition;
  if (scheme != PD_PARTITION_DIRICHLET && scheme != PD_PARTITION_SHARDS)
    scheme = PD_PARTITION_IID;
  rc =
      pd_device_partition_init(&d->partition, d->data.labels, d->data.rows, d->ndev, scheme,
                               s->data.alpha, s->data.shards_per_device, s->data.seed, err, errlen);
  if (rc != 0)
    return rc;
  d->dropout_rate = o->dropout_rate >= 0 ? o->dropout_rate : s->simulation.dropout_rate;
  d->slow_fraction = o->slow_fraction >= 0 ? o->slow_fraction : s->simulation.slow_fraction;
  d->slowdown = s->simulation.slowdown;
  d->seed = s->simulation.seed;
  d->dev = pd_xcalloc(d->ndev, sizeof *d->dev);
  uint64_t slow_state = pd_mix64(d->seed ^ SLOW_STREAM);
  for (uint32_t i = 0; i < d->ndev; i++) {
    sim_device *v = &d->dev[i];
    if (o->simulate > 0)
      snprintf(v->id, sizeof v->id, "%s-%u", o->device_id, i);
    else
      snprintf(v->id, sizeof v->id, "%s", o->device_id);
    v->rows = d->partition.index + d->partition.offset[i];
    v->nrows = pd_device_partition_rows(&d->partition, i);
    v->slow = pd_random_unit(&slow_state) < d->slow_fraction;
    v->selector = (int)(i % (uint32_t)d->nselectors);
    /* spread the first check-ins over a second */
    v->next_checkin = pd_now() + (double)i / d->ndev;
    atomic_init(&v->busy, 0);
  }
  return 0;
}

/* ---------------------------------------------------------------- one round of one device */

/* The per-thread state reused from round to round. */
#define FULL_BATCH_CHUNK 1024 /* rows of one model call when local_batch_size is 0 (all) */

typedef struct trainer {
  devices *d;
  char *spec_yaml; /* the spec the model was made for */
  pd_job_spec spec;
  pd_model *model;
  float *theta0, *theta, *grad, *chunk_grad;
  float *control, *control_delta; /* scaffold: c as pulled; Delta c_i of the round */
  uint64_t keys;
  uint64_t steps; /* local steps of the last local_train (K) */
  double lr;      /* their learning rate (eta_l) */
  int max_batch;  /* rows the model takes a call; larger batches go in chunks */
  pd_dataset batch;
  uint64_t *order;
  uint64_t order_cap;
} trainer;

static void trainer_close(trainer *t) {
  pd_model_free(t->model);
  free(t->spec_yaml);
  free(t->theta0);
  free(t->theta);
  free(t->grad);
  free(t->chunk_grad);
  free(t->control);
  free(t->control_delta);
  free(t->order);
  pd_dataset_close(&t->batch);
}

static int trainer_prepare(trainer *t, const char *spec_yaml, char *err, size_t errlen) {
  if (t->spec_yaml && strcmp(t->spec_yaml, spec_yaml) == 0)
    return 0;
  pd_job_spec spec;
  int rc = pd_job_spec_parse(spec_yaml, strlen(spec_yaml), &spec, err, errlen);
  if (rc != 0)
    return rc;
  uint64_t keys;
  if (pd_model_layout(&spec.model, NULL, 0, &keys, err, errlen) < 0)
    return -PD_EINVAL_SPEC;
  int batch = spec.training.federated.local_batch_size;
  int max_batch = batch > 0 ? PD_MIN(batch, FULL_BATCH_CHUNK) : FULL_BATCH_CHUNK;
  pd_model *model = pd_model_new(&spec.model, max_batch, err, errlen);
  if (!model)
    return -PD_EINVAL_SPEC;
  trainer_close(t);
  memset(&t->batch, 0, sizeof t->batch);
  t->order = NULL;
  t->order_cap = 0;
  t->spec_yaml = pd_xstrdup(spec_yaml);
  t->spec = spec;
  /* training.lr_schedule runs over rounds: round r is its epoch r */
  t->spec.training.epochs = spec.training.federated.rounds;
  t->model = model;
  t->max_batch = max_batch;
  t->keys = keys;
  t->theta0 = pd_xmalloc(keys * sizeof(float));
  t->theta = pd_xmalloc(keys * sizeof(float));
  t->grad = pd_xmalloc(keys * sizeof(float));
  t->chunk_grad = pd_xmalloc(keys * sizeof(float));
  t->control = NULL;
  t->control_delta = NULL;
  if (spec.training.federated.aggregation == PD_AGG_SCAFFOLD) {
    t->control = pd_xmalloc(keys * sizeof(float));
    t->control_delta = pd_xmalloc(keys * sizeof(float));
  }
  return 0;
}

/* The gradient (into t->grad) and mean loss of the mean loss over rows[0..m):
 * one call of the model, or, past its max_batch (local_batch_size 0, the
 * device's whole data), the chunks' gradients weighted by their rows, which
 * is the same mean. */
static double batch_gradient(trainer *t, const uint64_t *rows, uint64_t m) {
  if (m <= (uint64_t)t->max_batch) {
    pd_dataset_gather(&t->d->data, rows, m, &t->batch);
    return pd_model_gradient(t->model, t->theta, &t->batch, t->grad);
  }
  memset(t->grad, 0, t->keys * sizeof(float));
  double loss = 0;
  for (uint64_t at = 0; at < m; at += (uint64_t)t->max_batch) {
    uint64_t c = PD_MIN((uint64_t)t->max_batch, m - at);
    pd_dataset_gather(&t->d->data, rows + at, c, &t->batch);
    const float w = (float)((double)c / (double)m);
    loss += w * pd_model_gradient(t->model, t->theta, &t->batch, t->chunk_grad);
    for (uint64_t k = 0; k < t->keys; k++)
      t->grad[k] += w * t->chunk_grad[k];
  }
  return loss;
}

/* E epochs of mini-batch steps with the job's local optimizer over the
 * device's rows, from theta0 into theta; FedProx adds mu (w - w_t) to each
 * gradient, SCAFFOLD c - c_i (`c_i` non-NULL; t->control holds c). Sets
 * t->steps and t->lr. Returns the mean loss of the last epoch. */
static double local_train(trainer *t, const sim_device *v, uint64_t seed, uint32_t round,
                          const float *c_i) {
  const pd_job_spec *s = &t->spec;
  const int fedprox = s->training.federated.aggregation == PD_AGG_FEDPROX;
  const float mu = (float)s->training.federated.mu;
  uint64_t n = v->nrows;
  uint64_t b = s->training.federated.local_batch_size > 0
                   ? (uint64_t)s->training.federated.local_batch_size
                   : n;
  if (t->order_cap < n) {
    t->order = pd_xrealloc(t->order, n * sizeof *t->order);
    t->order_cap = n;
  }
  memcpy(t->theta, t->theta0, t->keys * sizeof(float));
  pd_optimizer opt;
  pd_optimizer_init(&opt, &s->training.optimizer, t->keys);
  pd_model_set_seed(t->model, seed);
  const double lr = pd_schedule_lr(s, round > 0 ? (int)round : 1);
  double loss = 0;
  uint64_t batches = 0;
  for (int e = 0; e < s->training.federated.local_epochs; e++) {
    memcpy(t->order, v->rows, n * sizeof *t->order);
    uint64_t state = pd_mix64(seed + (uint64_t)e);
    pd_shuffle_u64(t->order, n, &state);
    loss = 0;
    batches = 0;
    for (uint64_t at = 0; at < n; at += b) {
      uint64_t m = PD_MIN(b, n - at);
      loss += batch_gradient(t, t->order + at, m);
      batches++;
      if (fedprox)
        for (uint64_t k = 0; k < t->keys; k++)
          t->grad[k] += mu * (t->theta[k] - t->theta0[k]);
      if (c_i) /* y = y - eta_l (g(y) + c - c_i) */
        for (uint64_t k = 0; k < t->keys; k++)
          t->grad[k] += t->control[k] - c_i[k];
      pd_optimizer_step(&opt, t->theta, t->grad, 0, t->keys, lr);
    }
  }
  pd_optimizer_close(&opt);
  t->steps = b > 0 ? (uint64_t)s->training.federated.local_epochs * ((n + b - 1) / b) : 0;
  t->lr = lr;
  return batches ? loss / batches : 0;
}

/* Reports to the coordinator of the task (a channel per address). */
static int report(devices *d, const Pando__V1__RoundTask *task, const sim_device *v, double loss,
                  const char *error, int *late, char *err, size_t errlen) {
  pthread_mutex_lock(&d->coord_lock);
  if (!d->coordinator || strcmp(d->coord_address, task->coordinator) != 0) {
    pd_rpc_channel_free(d->coordinator);
    pd_strlcpy(d->coord_address, task->coordinator, sizeof d->coord_address);
    d->coordinator = pd_rpc_channel_new(task->coordinator, 0);
  }
  pd_rpc_channel *ch = d->coordinator;
  pthread_mutex_unlock(&d->coord_lock);
  Pando__V1__DeviceReport rep = PANDO__V1__DEVICE_REPORT__INIT;
  rep.job = task->job;
  rep.round = task->round;
  rep.device_id = (char *)v->id;
  rep.num_samples = (double)v->nrows;
  rep.loss = loss;
  rep.error = (char *)(error ? error : "");
  rep.report_secret = task->report_secret; /* only the chosen device holds it */
  uint64_t counts[256] = {0}; /* how many of its rows have each label (classes 0..255) */
  size_t nlabels = 0;
  for (uint64_t r = 0; d->data.labels && r < v->nrows; r++) {
    uint8_t label = d->data.labels[v->rows[r]];
    counts[label]++;
    nlabels = PD_MAX(nlabels, (size_t)label + 1);
  }
  rep.n_label_counts = nlabels;
  rep.label_counts = counts;
  ProtobufCMessage *resp = NULL;
  int rc = pd_rpc_unary(ch, "/pando.v1.Coordinator/ReportDevice", &rep.base,
                        &pando__v1__device_report_ack__descriptor, &resp, 10.0, NULL, err, errlen);
  if (rc == 0) {
    *late = ((Pando__V1__DeviceReportAck *)resp)->late;
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  return rc;
}

/* The device's c_i for `job` of `keys` keys: the slot that holds it, or a
 * free one, or the one used longest ago, reset to 0 (a device serving more
 * than CONTROL_JOBS scaffold jobs at once starts one of them over). */
static float *control_of(sim_device *v, const char *job, uint64_t keys) {
  control_variate *slot = NULL;
  for (int i = 0; i < CONTROL_JOBS; i++) {
    control_variate *cv = &v->control[i];
    if (cv->c_i && cv->keys == keys && strcmp(cv->job, job) == 0) {
      slot = cv;
      break;
    }
    if (!slot || (slot->c_i && (!cv->c_i || cv->used < slot->used)))
      slot = cv;
  }
  if (!slot->c_i || slot->keys != keys || strcmp(slot->job, job) != 0) {
    free(slot->c_i);
    slot->c_i = pd_xcalloc(keys, sizeof(float));
    slot->keys = keys;
    pd_strlcpy(slot->job, job, sizeof slot->job);
  }
  slot->used = pd_now();
  return slot->c_i;
}

/* SCAFFOLD, Algorithm 1 option II, after local_train: theta = y - x (Delta
 * y), t->control_delta = c_i+ - c_i with c_i+ = c_i - c + (x - y) / (K eta_l). */
static void scaffold_deltas(trainer *t) {
  const double scale = t->steps > 0 && t->lr > 0 ? 1.0 / ((double)t->steps * t->lr) : 0;
  for (uint64_t k = 0; k < t->keys; k++) {
    const float dy = t->theta[k] - t->theta0[k];
    t->theta[k] = dy;
    t->control_delta[k] = scale > 0 ? (float)(-(double)t->control[k] - scale * dy) : 0.0f;
  }
}

static void run_round(trainer *t, sim_device *v) {
  devices *d = t->d;
  const Pando__V1__RoundTask *task = v->task->task;
  char err[512] = "";
  pd_psclient *client = NULL;
  int late = 0;
  if (pd_device_drops(d->seed, v->id, task->round, d->dropout_rate)) {
    PD_DEBUG("device %s drops out of round %llu", v->id, (unsigned long long)task->round);
    pd_metric_add(d->m_dropped, 1);
    return; /* it never reports: the coordinator counts it as dropped */
  }
  if (trainer_prepare(t, task->spec_yaml, err, sizeof err) != 0 || !task->shard_map ||
      task->shard_map->n_shards == 0) {
    PD_WARN("device %s: round %llu of job %s: %s", v->id, (unsigned long long)task->round,
            task->job, err[0] ? err : "the task has no shard map");
    report(d, task, v, 0, err[0] ? err : "no shard map", &late, err, sizeof err);
    return;
  }
  size_t ns = task->shard_map->n_shards;
  pd_shard_range *ranges = pd_xcalloc(ns, sizeof *ranges);
  for (size_t i = 0; i < ns; i++) {
    ranges[i].begin = task->shard_map->shards[i]->begin;
    ranges[i].end = task->shard_map->shards[i]->end;
    pd_strlcpy(ranges[i].address, task->shard_map->shards[i]->address, sizeof ranges[i].address);
  }
  client = pd_psclient_new(task->job, 0, ranges, (int)ns, 0);
  free(ranges);
  pd_psclient_set_token(client, task->job_token);
  pd_psclient_set_attempt(client, task->attempt);
  pd_psclient_set_timeouts(client, 30, 30);
  pd_psclient_set_device(client, v->id, (double)v->nrows);
  float *c_i = t->control ? control_of(v, task->job, t->keys) : NULL;
  pd_psclient_set_control(client, t->control, t->control_delta);
  double started = pd_now(), loss = 0;
  int rc =
      pd_psclient_pull(client, 0, t->keys, (int64_t)task->round, t->theta0, NULL, err, sizeof err);
  if (rc == 0) {
    loss = local_train(t, v, task->seed ^ pd_mix64((uint64_t)(v - d->dev)), task->round_index, c_i);
    if (v->slow) { /* a slow device: its round takes slowdown x as long */
      double spent = pd_now() - started;
      double nap = (d->slowdown - 1) * spent;
      struct timespec ts = {(time_t)nap, (long)((nap - floor(nap)) * 1e9)};
      nanosleep(&ts, NULL);
    }
    if (c_i)
      scaffold_deltas(t);
    else
      for (uint64_t k = 0; k < t->keys; k++)
        t->theta[k] -= t->theta0[k];
    rc = pd_psclient_push(client, 0, t->keys, (int64_t)task->round, t->theta, err, sizeof err);
    if (rc == 0 && pd_psclient_push_dropped(client))
      late = 1;
  }
  pd_psclient_free(client);
  if (rc != 0) { /* e.g. its round closed before it pulled */
    PD_DEBUG("device %s: round %llu: %s", v->id, (unsigned long long)task->round, err);
    report(d, task, v, 0, err, &late, err, sizeof err);
    return;
  }
  if (late) {
    pd_metric_add(d->m_late, 1);
    return;
  }
  if (report(d, task, v, loss, NULL, &late, err, sizeof err) != 0) {
    PD_WARN("device %s: reporting round %llu failed: %s", v->id, (unsigned long long)task->round,
            err);
    return;
  }
  pd_metric_add(late ? d->m_late : d->m_rounds, 1);
  /* scaffold: c_i = c_i+ once its update counts (the servers add Delta c_i / N to c) */
  for (uint64_t k = 0; c_i && !late && k < t->keys; k++)
    c_i[k] += t->control_delta[k];
}

static void *train_main(void *arg) {
  devices *d = arg;
  trainer t;
  memset(&t, 0, sizeof t);
  t.d = d;
  for (;;) {
    pthread_mutex_lock(&d->lock);
    while (d->qlen == 0 && !d->stopping)
      pthread_cond_wait(&d->ready, &d->lock);
    if (d->stopping) {
      pthread_mutex_unlock(&d->lock);
      break;
    }
    uint32_t i = d->queue[d->qhead];
    d->qhead = (d->qhead + 1) % d->ndev;
    d->qlen--;
    pthread_mutex_unlock(&d->lock);
    sim_device *v = &d->dev[i];
    run_round(&t, v);
    pando__v1__check_in_response__free_unpacked(v->task, NULL);
    v->task = NULL;
    atomic_store(&v->busy, 0);
  }
  trainer_close(&t);
  return NULL;
}

/* ---------------------------------------------------------------- check-ins */

static void check_in(devices *d, uint32_t i) {
  sim_device *v = &d->dev[i];
  Pando__V1__CheckInRequest req = PANDO__V1__CHECK_IN_REQUEST__INIT;
  req.device_id = v->id;
  req.num_samples = v->nrows;
  req.n_jobs = d->njobs;
  req.jobs = d->jobs;
  req.n_attributes = d->nattributes;
  req.attributes = d->attributes;
  req.busy = atomic_load(&v->busy);
  req.session_secret = v->session_secret;
  ProtobufCMessage *resp = NULL;
  char err[512];
  double now = pd_now();
  pd_metric_add(d->m_checkins, 1);
  if (pd_rpc_unary(d->selectors[v->selector], "/pando.v1.Selector/CheckIn", &req.base,
                   &pando__v1__check_in_response__descriptor, &resp, CHECKIN_TIMEOUT_SEC, NULL, err,
                   sizeof err) != 0) {
    PD_DEBUG("device %s: %s", v->id, err);
    v->next_checkin = now + 1.0 + pd_random_unit(&d->seed); /* the selector restarts: back soon */
    return;
  }
  Pando__V1__CheckInResponse *r = (Pando__V1__CheckInResponse *)resp;
  if (r->session_secret[0]) /* this check-in opened a session: its secret from now on */
    pd_strlcpy(v->session_secret, r->session_secret, sizeof v->session_secret);
  v->next_checkin = now + r->reconnect_ms / 1000.0;
  if (!r->task || atomic_load(&v->busy)) {
    pando__v1__check_in_response__free_unpacked(r, NULL);
    return;
  }
  v->task = r;
  atomic_store(&v->busy, 1);
  pthread_mutex_lock(&d->lock);
  d->queue[(d->qhead + d->qlen) % d->ndev] = i;
  d->qlen++;
  pthread_cond_signal(&d->ready);
  pthread_mutex_unlock(&d->lock);
}

int pd_device_main(const pd_device_options *o) {
  devices d;
  memset(&d, 0, sizeof d);
  d.opt = o;
  char err[1024];
  char **sel;
  size_t nsel;
  split_list(o->selectors, &sel, &nsel);
  if (nsel == 0 || nsel > MAX_SELECTORS) {
    fprintf(stderr, "pando-worker: selector: give 1 to %d selector addresses, got %zu\n",
            MAX_SELECTORS, nsel);
    free_list(sel, nsel);
    return 2;
  }
  d.nselectors = (int)nsel;
  if (load(&d, err, sizeof err) != 0) {
    fprintf(stderr, "pando-worker: %s: %s\n", o->data, err);
    free_list(sel, nsel);
    pd_dataset_close(&d.data);
    pd_device_partition_close(&d.partition);
    return 2;
  }
  for (size_t i = 0; i < nsel; i++)
    d.selectors[i] = pd_rpc_channel_new(sel[i], 0);
  split_list(o->jobs, &d.jobs, &d.njobs);
  split_list(o->attributes, &d.attributes, &d.nattributes);
  d.m_checkins =
      pd_metric_counter("pando_device_checkins_total", "Check-ins of this process's devices.", "");
  d.m_rounds = pd_metric_counter("pando_device_rounds_total",
                                 "Rounds this process's devices reported in time.", "");
  d.m_dropped =
      pd_metric_counter("pando_device_dropouts_total",
                        "Rounds simulated devices dropped out of (simulation.dropout_rate).", "");
  d.m_late = pd_metric_counter("pando_device_late_total",
                               "Rounds whose update came after the round had closed.", "");
  pthread_mutex_init(&d.lock, NULL);
  pthread_cond_init(&d.ready, NULL);
  pthread_mutex_init(&d.coord_lock, NULL);
  d.queue = pd_xcalloc(d.ndev, sizeof *d.queue);
  d.nthreads = o->threads > 0 ? o->threads : 1;
  d.threads = pd_xcalloc((size_t)d.nthreads, sizeof *d.threads);
  for (int i = 0; i < d.nthreads; i++)
    pthread_create(&d.threads[i], NULL, train_main, &d);
  PD_INFO("%u devices (%s partition of %llu rows, dropout %.2f, %.0f%% slow) checking in with %zu "
          "selectors",
          d.ndev,
          pd_partition_name(o->simulate > 0 ? d.data_spec.data.partition : PD_PARTITION_IID),
          (unsigned long long)d.data.rows, d.dropout_rate, 100 * d.slow_fraction, nsel);
  while (!pd_daemon_stopping()) {
    double now = pd_now(), next = now + 0.05;
    for (uint32_t i = 0; i < d.ndev && !pd_daemon_stopping(); i++) {
      if (d.dev[i].next_checkin <= now)
        check_in(&d, i);
      next = PD_MIN(next, d.dev[i].next_checkin);
    }
    double nap = next - pd_now();
    if (nap > 0) {
      struct timespec ts = {0, (long)(PD_MIN(nap, 0.05) * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
  pthread_mutex_lock(&d.lock);
  d.stopping = 1;
  pthread_cond_broadcast(&d.ready);
  pthread_mutex_unlock(&d.lock);
  for (int i = 0; i < d.nthreads; i++)
    pthread_join(d.threads[i], NULL);
  for (uint32_t i = 0; i < d.ndev; i++)
    if (d.dev[i].task)
      pando__v1__check_in_response__free_unpacked(d.dev[i].task, NULL);
  for (size_t i = 0; i < nsel; i++)
    pd_rpc_channel_free(d.selectors[i]);
  pd_rpc_channel_free(d.coordinator);
  free_list(sel, nsel);
  free_list(d.jobs, d.njobs);
  free_list(d.attributes, d.nattributes);
  free(d.queue);
  free(d.threads);
  for (uint32_t i = 0; d.dev && i < d.ndev; i++)
    for (int k = 0; k < CONTROL_JOBS; k++)
      free(d.dev[i].control[k].c_i);
  free(d.dev);
  pd_device_partition_close(&d.partition);
  pd_dataset_close(&d.data);
  PD_INFO("devices stopped");
  return 0;
}
