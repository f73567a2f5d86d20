/* The worker daemon and its training loop; see worker.h. */
#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pando/daemon.h"
#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/model.h"
#include "pando/plan.h"
#include "pando/psclient.h"
#include "pando/session.h"
#include "pando/spec.h"
#include "pando/util.h"

#define REPORT_EVERY_SEC 0.5
#define CONTROL_TIMEOUT_SEC 10.0

/* ---------------------------------------------------------------- training */

typedef struct progress {
  pd_rpc_channel *coordinator;
  const char *job;
  uint32_t rank;
  double last_report;
  double window_start;
  uint64_t window_samples;
  double samples_per_sec;
} progress;

/* Sends a progress report; returns -PD_ECANCELLED if the job must stop. A
 * coordinator that cannot be reached is logged, not fatal. */
static int report(progress *p, Pando__V1__ProgressReport *r) {
  if (!p->coordinator)
    return 0;
  r->job = (char *)p->job;
  r->rank = p->rank;
  r->samples_per_sec = p->samples_per_sec;
  ProtobufCMessage *resp = NULL;
  char err[512];
  if (pd_rpc_unary(p->coordinator, "/pando.v1.Coordinator/ReportProgress", &r->base,
                   &pando__v1__progress_ack__descriptor, &resp, CONTROL_TIMEOUT_SEC, NULL, err,
                   sizeof err) != 0) {
    PD_WARN("progress report failed: %s", err);
    return 0;
  }
  int cancel = ((Pando__V1__ProgressAck *)resp)->cancel;
  protobuf_c_message_free_unpacked(resp, NULL);
  return cancel ? -PD_ECANCELLED : 0;
}

static void shard_map(const Pando__V1__ShardMap *map, pd_shard_range *out) {
  for (size_t i = 0; i < map->n_shards; i++) {
    out[i].begin = map->shards[i]->begin;
    out[i].end = map->shards[i]->end;
    pd_strlcpy(out[i].address, map->shards[i]->address, sizeof out[i].address);
  }
}

int pd_worker_train(const Pando__V1__Assignment *a, pd_rpc_channel *coordinator, char *err,
                    size_t errlen) {
  pd_job_spec spec;
  pd_dataset train = {0}, test = {0};
  pd_model *model = NULL;
  pd_psclient *ps = NULL;
  pd_shard_range *ranges = NULL;
  float *params = NULL, *grad = NULL;
  int rc = pd_job_spec_parse(a->spec_yaml, strlen(a->spec_yaml), &spec, err, errlen);
  if (rc != 0)
    return rc;
  if (!a->shard_map || a->shard_map->n_shards == 0 || a->steps_per_epoch == 0)
    return pd_errf(err, errlen, -PD_EFORMAT, "assignment for job %s has no shard map or steps",
                   a->job);
  double t0 = pd_now();
  rc = pd_dataset_load_idx(spec.data.train.features, spec.data.train.labels, a->row_begin,
                           a->row_end, &train, err, errlen);
  if (rc != 0)
    goto done;
  int evaluates = a->rank == 0 && spec.data.test.features[0];
  if (evaluates) {
    rc = pd_dataset_load_idx(spec.data.test.features, spec.data.test.labels, 0, UINT64_MAX, &test,
                             err, errlen);
    if (rc != 0)
      goto done;
  }
  PD_INFO("job %s: rank %u of %u, rows [%llu, %llu) loaded in %.2f s", a->job, a->rank,
          a->num_workers, (unsigned long long)a->row_begin, (unsigned long long)a->row_end,
          pd_now() - t0);

  uint32_t steps = a->steps_per_epoch, batch = (uint32_t)spec.training.batch_size;
  uint64_t last_begin, last_end;
  pd_plan_batch(train.rows, steps, batch, steps - 1, &last_begin, &last_end);
  int max_batch = (int)PD_MAX((uint64_t)batch, last_end - last_begin);
  model = pd_model_new(&spec.model, max_batch);
  uint64_t keys = pd_model_num_params(model);
  if (keys != a->shard_map->keys) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "model has %llu parameters but the shard map %llu",
                 (unsigned long long)keys, (unsigned long long)a->shard_map->keys);
    goto done;
  }
  ranges = pd_xcalloc(a->shard_map->n_shards, sizeof *ranges);
  shard_map(a->shard_map, ranges);
  ps = pd_psclient_new(a->job, a->rank, ranges, (int)a->shard_map->n_shards, 0);
  params = pd_xmalloc_aligned(keys * sizeof(float));
  grad = pd_xmalloc_aligned(keys * sizeof(float));

  progress p = {coordinator, a->job, a->rank, 0, pd_now(), 0, 0};
  int64_t clock = 0, pulled = -1;
  for (uint32_t epoch = 1; epoch <= (uint32_t)spec.training.epochs; epoch++) {
    double loss_sum = 0;
    for (uint32_t step = 0; step < steps; step++) {
      if (pd_daemon_stopping()) {
        rc = pd_errf(err, errlen, -PD_ESHUTDOWN, "the worker was asked to shut down");
        goto done;
      }
      if (pulled != clock) {
        rc = pd_psclient_pull(ps, 0, keys, clock, params, NULL, err, errlen);
        if (rc != 0)
          goto done;
        pulled = clock;
      }
      uint64_t b, e;
      pd_plan_batch(train.rows, steps, batch, step, &b, &e);
      float loss = pd_model_gradient(model, params, train.features + b * train.cols,
                                     train.labels + b, (int)(e - b), grad);
      rc = pd_psclient_push(ps, 0, keys, clock, grad, err, errlen);
      if (rc != 0)
        goto done;
      clock++;
      loss_sum += loss;
      p.window_samples += e - b;
      double now = pd_now();
      if (now - p.last_report >= REPORT_EVERY_SEC) {
        p.samples_per_sec = p.window_samples / (now - p.window_start);
        p.window_start = now;
        p.window_samples = 0;
        p.last_report = now;
        Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
        r.epoch = epoch;
        r.step = step + 1;
        r.loss = loss_sum / (step + 1);
        if ((rc = report(&p, &r)) != 0)
          goto cancelled;
      }
    }
    Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
    r.epoch = epoch;
    r.step = steps;
    r.loss = loss_sum / steps;
    if (evaluates) {
      /* the model after this epoch: under BSP this waits for every worker */
      rc = pd_psclient_pull(ps, 0, keys, clock, params, NULL, err, errlen);
      if (rc != 0)
        goto done;
      pulled = clock;
      pd_model_evaluate(model, params, test.features, test.labels, test.rows, &r.test_loss,
                        &r.test_accuracy);
      r.has_eval = 1;
      PD_INFO("job %s: epoch %u: train loss %.4f, test accuracy %.4f", a->job, epoch, r.loss,
              r.test_accuracy);
    }
    r.done = epoch == (uint32_t)spec.training.epochs;
    if ((rc = report(&p, &r)) != 0)
      goto cancelled;
  }
  PD_INFO("job %s: finished %u epochs in %.1f s", a->job, spec.training.epochs, pd_now() - t0);
  goto done;
cancelled:
  pd_errf(err, errlen, rc, "job %s was stopped by the coordinator", a->job);
done:
  free(grad);
  free(params);
  free(ranges);
  pd_psclient_free(ps);
  pd_model_free(model);
  pd_dataset_close(&test);
  pd_dataset_close(&train);
  return rc;
}

/* ---------------------------------------------------------------- daemon */

/* State shared between the session thread and the training thread. */
typedef struct worker_daemon {
  const pd_worker_options *opt;
  pd_loop *loop;
  pd_rpc_server *server;
  pd_session *session;
  atomic_uint_fast64_t node_id;
  atomic_uint_fast64_t generation; /* latest assignment generation seen */
  atomic_int stop;
} worker_daemon;

static void assignment_changed(pd_session *s, uint64_t generation, void *user) {
  worker_daemon *d = user;
  (void)s;
  atomic_store(&d->generation, generation);
}

static void session_cron(void *user) {
  worker_daemon *d = user;
  pd_session_tick(d->session);
  atomic_store(&d->node_id, pd_session_node_id(d->session));
}

static void *session_thread(void *arg) {
  worker_daemon *d = arg;
  while (!atomic_load(&d->stop) && !pd_daemon_stopping()) {
    session_cron(d);
    pd_loop_run_once(d->loop, 0.05);
  }
  return NULL;
}

/* Asks the coordinator for this node's assignment. */
static Pando__V1__Assignment *fetch_assignment(pd_rpc_channel *coord, uint64_t node_id) {
  Pando__V1__AssignmentRequest req = PANDO__V1__ASSIGNMENT_REQUEST__INIT;
  req.node_id = node_id;
  ProtobufCMessage *resp = NULL;
  char err[512];
  if (pd_rpc_unary(coord, "/pando.v1.Coordinator/GetAssignment", &req.base,
                   &pando__v1__assignment__descriptor, &resp, CONTROL_TIMEOUT_SEC, NULL, err,
                   sizeof err) != 0) {
    PD_WARN("GetAssignment failed: %s", err);
    return NULL;
  }
  return (Pando__V1__Assignment *)resp;
}

int pd_worker_main(const pd_worker_options *opt) {
  worker_daemon d;
  char err[512], addr[300];
  memset(&d, 0, sizeof d);
  d.opt = opt;
  d.loop = pd_loop_new();
  d.server = pd_rpc_server_new(d.loop);
  static const char *const services[] = {"pando.v1.Worker", NULL};
  pd_rpc_health_register(d.server, services);
  int port = pd_rpc_server_listen(d.server, opt->listen, err, sizeof err);
  if (port < 0) {
    PD_ERROR("%s", err);
    pd_rpc_server_free(d.server);
    pd_loop_free(d.loop);
    return 1;
  }
  pd_rpc_server_start(d.server);
  pd_daemon_advertise(opt->listen, opt->advertise, port, addr, sizeof addr);
  if (pd_daemon_write_port(opt->port_file, port) != 0)
    PD_WARN("cannot write port file %s", opt->port_file);
  PD_INFO("worker %s: health on %s, coordinator %s", opt->name, addr, opt->coordinator);
  d.session = pd_session_new(d.loop, opt->coordinator, PANDO__V1__ROLE__WORKER, addr, opt->name,
                             assignment_changed, &d);
  pthread_t tid;
  pthread_create(&tid, NULL, session_thread, &d);

  pd_rpc_channel *coord = pd_rpc_channel_new(opt->coordinator, 0);
  uint64_t seen = 0;
  while (!pd_daemon_stopping()) {
    uint64_t generation = atomic_load(&d.generation);
    uint64_t node_id = atomic_load(&d.node_id);
    if (generation == seen || node_id == 0) {
      usleep(20000);
      continue;
    }
    Pando__V1__Assignment *a = fetch_assignment(coord, node_id);
    if (!a) {
      usleep(200000);
      continue;
    }
    seen = generation;
    if (a->job[0]) {
      PD_INFO("assigned to job %s as rank %u", a->job, a->rank);
      int rc = pd_worker_train(a, coord, err, sizeof err);
      if (rc != 0 && rc != -PD_ECANCELLED) {
        /* Tell the coordinator; if the job had already ended (cancelled, or
         * failed elsewhere, which drops its shards) this is no error of ours. */
        Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
        progress p = {coord, a->job, a->rank, 0, 0, 0, 0};
        r.error = err;
        if (report(&p, &r) == -PD_ECANCELLED)
          rc = -PD_ECANCELLED;
        else
          PD_ERROR("job %s failed: %s", a->job, err);
      }
      if (rc == -PD_ECANCELLED)
        PD_INFO("job %s was stopped by the coordinator", a->job);
    }
    pando__v1__assignment__free_unpacked(a, NULL);
  }

  atomic_store(&d.stop, 1);
  pthread_join(tid, NULL);
  pd_rpc_channel_free(coord);
  pd_session_free(d.session);
  pd_rpc_server_free(d.server);
  pd_loop_free(d.loop);
  return 0;
}
