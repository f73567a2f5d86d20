/* The worker loop over a parameter store, the local store, and standalone
 * mode; see train.h. */
#include "train.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pando/daemon.h"
#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/fileio.h"
#include "pando/log.h"
#include "pando/model.h"
#include "pando/optimizer.h"
#include "pando/phase.h"
#include "pando/pipeline.h"
#include "pando/plan.h"
#include "pando/schedule.h"
#include "pando/stage.h"
#include "pando/trace.h"
#include "pando/util.h"
#include "peer.h"

#define REPORT_EVERY_SEC 0.5

/* The phases of a worker's time (pandoctl stats; README names them). */
enum worker_phase {
  PH_LOAD,     /* data loading: the partition and the test split */
  PH_BATCH,    /* batch indexing: the epoch's row order, a batch's rows gathered */
  PH_PULL,     /* pull: waiting for the servers (consistency model) and the transfer */
  PH_GRADIENT, /* gradient computation: forward and backward pass */
  PH_LOCAL,    /* local update: SGD steps on the local copy, the clock's sum */
  PH_DELAY,    /* testing straggler delay (--batch-delay, --slowdown) */
  PH_PUSH,     /* push of the gradient */
  PH_EVAL,     /* evaluation after an epoch (with its pull of the model) */
  PH_REPORT,   /* progress reports to the coordinator */
  PH_COUNT
};

static const char *const phase_names[PH_COUNT] = {
    [PH_LOAD] = "load",         [PH_BATCH] = "batch",        [PH_PULL] = "pull",
    [PH_GRADIENT] = "gradient", [PH_LOCAL] = "local_update", [PH_DELAY] = "delay",
    [PH_PUSH] = "push",         [PH_EVAL] = "eval",          [PH_REPORT] = "report"};

static int is_synthetic(const pd_job_spec *spec) {
  return strcmp(spec->data.format, "synthetic") == 0;
}

/* Loads this worker's rows of the training split (data.partition) into
 * `train`; *rows receives the rows of the whole split. */
static int load_partition(const pd_train_job *tj, pd_dataset *train, uint64_t *rows, char *err,
                          size_t errlen) {
  const pd_job_spec *spec = tj->spec;
  pd_dataset all = {0};
  if (is_synthetic(spec)) {
    *rows = spec->data.synthetic.rows;
  } else {
    int rc = pd_dataset_load(spec, 0, &all, err, errlen);
    if (rc != 0)
      return rc;
    *rows = all.rows;
  }
  uint64_t n = pd_plan_partition_size(*rows, tj->workers, tj->rank, spec->data.partition);
  uint64_t *index = pd_xmalloc((n ? n : 1) * sizeof *index);
  pd_plan_partition(*rows, tj->workers, tj->rank, spec->data.partition, spec->data.seed, index);
  if (is_synthetic(spec)) /* generate only this worker's rows */
    pd_dataset_synthetic_rows(&spec->data.synthetic, 0, index, n, train);
  else
    pd_dataset_gather(&all, index, n, train);
  free(index);
  pd_dataset_close(&all);
  if (train->rows == 0)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC, "worker %u has no training rows", tj->rank);
  return 0;
}

/* Sparse data's feature space is the model's inputs: a file's highest
 * feature may be below it (libsvm), never above it. */
static int fit_columns(const pd_job_spec *spec, pd_dataset *ds, const char *split, char *err,
                       size_t errlen) {
  uint32_t inputs = (uint32_t)spec->model.layers[0];
  if (ds->rows == 0 || ds->features || ds->cols == inputs)
    return 0;
  if (ds->cols > inputs)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.%s: features up to %u, but the model takes %u inputs (model.layers[0])",
                   split, ds->cols, inputs);
  ds->cols = inputs;
  return 0;
}

/* A classifier's labels must be classes it has: a label the model cannot
 * take is the data's fault, reported, not a crash in the gradient. */
static int check_labels(const pd_job_spec *spec, const pd_dataset *ds, const char *split, char *err,
                        size_t errlen) {
  const pd_model_spec *m = &spec->model;
  if (m->type == PD_MODEL_LINREG || m->type == PD_MODEL_PLUGIN || ds->rows == 0)
    return 0;
  int classes = m->type == PD_MODEL_LOGREG ? 2 : m->layers[m->nlayers - 1];
  if (!ds->labels)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.%s: a %s model needs integer class labels, the data has other targets",
                   split, pd_model_type_name(m->type));
  for (uint64_t i = 0; i < ds->rows; i++)
    if (ds->labels[i] >= classes)
      return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                     "data.%s: row %llu of this worker's rows has label %u, but the model has %d "
                     "classes (model.layers)",
                     split, (unsigned long long)i, ds->labels[i], classes);
  return 0;
}

/* The most rows a batch of this job can have: the batch size, or an epoch's
 * last batch with the rows left over. */
static int max_batch_rows(const pd_job_spec *spec, uint64_t partition_rows, uint64_t min_rows) {
  uint64_t most = 1;
  for (int e = 1; e <= spec->training.epochs; e++) {
    uint32_t steps = pd_schedule_steps(spec, min_rows, e), size = pd_schedule_batch_size(spec, e);
    uint64_t b, end;
    pd_plan_batch(partition_rows, steps, size, steps - 1, &b, &end);
    most = PD_MAX(most, PD_MAX((uint64_t)size, end - b));
  }
  return (int)PD_MIN(most, partition_rows);
}

/* The worker's testing slowdown after a gradient that took `seconds`: the
 * batch delay stands for more compute, and the slowdown stretches both. */
static int straggle(const pd_train_job *tj, double seconds) {
  double pause = (tj->slowdown - 1) * seconds + tj->slowdown * tj->batch_delay_sec;
  if (pause <= 0)
    return 0;
  struct timespec ts = {(time_t)pause, (long)((pause - (double)(time_t)pause) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && !pd_daemon_stopping())
    ;
  return 1;
}

typedef struct throughput {
  double last_report, window_start;
  uint64_t window_samples;
  double samples_per_sec;
} throughput;

/* One compute thread of a clock that covers several batches (training.frequency
 * nbatches or epoch) or runs several threads (training.threads, Hogwild):
 * it takes batches first + index, first + index + nthreads, ... of
 * [first, last), computes each gradient on the worker's local copy, adds it
 * to its own accumulator and takes a plain SGD step on the local copy. The
 * threads share the local copy without locks (Recht et al., NIPS 2011: with
 * sparse gradients collisions are rare and do little harm). */
typedef struct compute_thread {
  const pd_train_job *tj;
  pd_model *model;     /* this thread's scratch space */
  float *grad, *accum; /* K floats each: the batch's gradient, the clock's sum */
  pd_dataset gathered; /* training.shuffle: the batch's rows */
  float *local;        /* the worker's local copy (shared, no locks) */
  const pd_dataset *train;
  const uint64_t *order; /* the epoch's row order (training.shuffle) */
  uint64_t keys;
  uint32_t steps, size; /* of the epoch */
  uint32_t first, last; /* the clock's batches */
  uint32_t index, nthreads;
  double lr;       /* of the local SGD steps: the epoch's scheduled lr */
  double loss_sum; /* out: of the thread's batches */
  uint64_t batches, samples;
  pd_phase_stat phases[PH_COUNT]; /* out: of the thread's batches (merged when single) */
  pthread_t tid;
} compute_thread;

/* The rows of batch `step`: a view, or the shuffled rows gathered into `gathered`. */
static const pd_dataset *batch_rows(const pd_job_spec *spec, const pd_dataset *train,
                                    const uint64_t *order, uint32_t steps, uint32_t size,
                                    uint32_t step, pd_dataset *view, pd_dataset *gathered) {
  uint64_t b, e;
  pd_plan_batch(train->rows, steps, size, step, &b, &e);
  *view = pd_dataset_view(train, b, e);
  if (!spec->training.shuffle)
    return view;
  pd_dataset_gather(train, order + b, e - b, gathered);
  return gathered;
}

static void *compute(void *arg) {
  compute_thread *ct = arg;
  ct->loss_sum = 0;
  ct->batches = ct->samples = 0;
  memset(ct->accum, 0, ct->keys * sizeof(float));
  memset(ct->phases, 0, sizeof ct->phases);
  for (uint32_t j = ct->first + ct->index; j < ct->last; j += ct->nthreads) {
    if (pd_daemon_stopping())
      break;
    pd_dataset view;
    uint64_t start = pd_now_ns();
    const pd_dataset *batch = batch_rows(ct->tj->spec, ct->train, ct->order, ct->steps, ct->size, j,
                                         &view, &ct->gathered);
    uint64_t compute_start = pd_phase_end(&ct->phases[PH_BATCH], start);
    ct->loss_sum += pd_model_gradient(ct->model, ct->local, batch, ct->grad);
    uint64_t local_start = pd_phase_end(&ct->phases[PH_GRADIENT], compute_start);
    cblas_saxpy((int)ct->keys, 1.0f, ct->grad, 1, ct->accum, 1);
    cblas_saxpy((int)ct->keys, (float)-ct->lr, ct->grad, 1, ct->local, 1);
    uint64_t delay_start = pd_phase_end(&ct->phases[PH_LOCAL], local_start);
    if (straggle(ct->tj, (double)(local_start - compute_start) * 1e-9))
      pd_phase_end(&ct->phases[PH_DELAY], delay_start);
    ct->batches++;
    ct->samples += batch->rows;
  }
  return NULL;
}

/* One worker's training of a job: what pd_train sets up, and where the loop
 * is. Every pointer starts NULL and is freed by trainer_close. */
typedef struct trainer {
  const pd_train_job *tj;
  const pd_job_spec *spec;
  const pd_param_store *store;
  const pd_progress_sink *sink;
  pd_dataset train, test;
  uint64_t rows;     /* training rows of the whole job */
  uint64_t min_rows; /* of the smallest partition: the schedule's clocks */
  uint32_t nthreads;
  compute_thread *ct; /* [nthreads]; ct[0] is the single-threaded path's */
  uint64_t keys;
  const float *params; /* the store's shared parameters, or `own` */
  float *own;          /* the pulled parameters, when the store shares none */
  float *local;        /* nfetch/Hogwild: the local copy of a clock */
  uint64_t *order;     /* the epoch's row order */
  throughput tp;
  int64_t clock, pulled, total; /* pulled: the clock `own` holds (-1: none) */
  int skip_ahead;               /* BSP with backup workers: a pull may move the clock on */
  /* the epoch in progress */
  int epoch;
  uint32_t steps, size, per_clock, done_steps;
  int replay; /* redoing the end of an epoch after a roll back: its train loss is unknown */
  double loss_sum;
  uint64_t lost, skipped_clocks; /* backup workers: gradients dropped, clocks skipped */
  uint64_t start_ns;             /* pd_train began (pd_now_ns): the wall time's origin */
  pd_phase_stat phases[PH_COUNT];
  pd_trace trace;         /* spans not yet reported (pandoctl trace) */
  uint64_t trace_dropped; /* trace.dropped at the previous report */
  /* a report's batch of spans, [PD_TRACE_MESSAGE_EVENTS] (when tracing) */
  Pando__V1__TraceEvent *batch;
  Pando__V1__TraceEvent **batch_ptrs;
  /* a pipeline stage (tj->stage): its layers, schedule, links and buffers */
  pd_stage *stage;
  pd_pipeline_op *ops;       /* [2 m] */
  pd_peer_link *prev, *next; /* to stage -/+ 1; NULL at the ends */
  float *received, *dx;      /* max_batch x widest of the stage's in/out */
  double *micro_loss;        /* [m]: the last stage's loss of each micro-batch */
  int max_batch;
} trainer;

/* Ends phase `phase` begun at `start` (pd_now_ns): counted, and traced at
 * the present clock. Returns the time it ended. */
static uint64_t phase_end(trainer *t, int phase, uint64_t start) {
  uint64_t now = pd_phase_end(&t->phases[phase], start);
  pd_trace_span(&t->trace, phase_names[phase], start, now, t->clock, t->tj->rank, 0);
  return now;
}

/* ---------------------------------------------------------------- pipeline stage */

static int shutting_down(char *err, size_t errlen);

/* Rows of the mini-batch of `clock` (0 past the last clock). */
static uint64_t clock_rows(const trainer *t, int64_t clock) {
  if (clock >= t->total)
    return 0;
  uint32_t step;
  int epoch = pd_schedule_epoch_of_clock(t->spec, t->min_rows, clock, &step);
  uint64_t b, e;
  pd_plan_batch(t->train.rows, pd_schedule_steps(t->spec, t->min_rows, epoch),
                pd_schedule_batch_size(t->spec, epoch), step, &b, &e);
  return e - b;
}

/* Makes the stage, its schedule's buffers and its links, and opens the
 * mailbox (the clock is set per mini-batch). */
static int stage_setup(trainer *t, char *err, size_t errlen) {
  const pd_train_stage *ts = t->tj->stage;
  const pd_job_spec *spec = t->spec;
  uint32_t m = (uint32_t)spec->training.micro_batches;
  int slots = pd_pipeline_max_in_flight(spec->training.pipeline_schedule, (int)ts->stages,
                                        (int)ts->stage, m);
  t->stage =
      pd_stage_new(&spec->model, ts->layer_begin, ts->layer_end, t->max_batch, slots, err, errlen);
  if (!t->stage)
    return -PD_EINVAL_SPEC;
  uint64_t kb, ke;
  pd_stage_keys(t->stage, &kb, &ke);
  if (kb != ts->key_begin || ke != ts->key_end)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "stage %u: layers [%d, %d) hold keys [%llu, %llu), the assignment says [%llu, "
                   "%llu)",
                   ts->stage, ts->layer_begin, ts->layer_end, (unsigned long long)kb,
                   (unsigned long long)ke, (unsigned long long)ts->key_begin,
                   (unsigned long long)ts->key_end);
  int widest = PD_MAX(pd_stage_in_width(t->stage), pd_stage_out_width(t->stage));
  t->received = pd_xmalloc_aligned((size_t)t->max_batch * (size_t)widest * sizeof(float));
  t->dx = pd_xmalloc_aligned((size_t)t->max_batch * (size_t)widest * sizeof(float));
  t->ops = pd_xcalloc(2 * (size_t)m, sizeof *t->ops);
  t->micro_loss = pd_xcalloc(m, sizeof *t->micro_loss);
  if (ts->peer_prev && ts->peer_prev[0])
    t->prev = pd_peer_link_new(ts->peer_prev, ts->job_token);
  if (ts->peer_next && ts->peer_next[0])
    t->next = pd_peer_link_new(ts->peer_next, ts->job_token);
  if ((ts->stage > 0) != (t->prev != NULL) || (ts->stage + 1 < ts->stages) != (t->next != NULL))
    return pd_errf(err, errlen, -PD_EFORMAT, "stage %u of %u: the assignment lacks a peer address",
                   ts->stage, ts->stages);
  pd_peer_expect e = {.job = t->tj->job,
                      .attempt = ts->attempt,
                      .replica = t->tj->rank,
                      .stage = ts->stage,
                      .stages = ts->stages,
                      .in_width = (uint32_t)pd_stage_in_width(t->stage),
                      .out_width = (uint32_t)pd_stage_out_width(t->stage),
                      .micro_batches = m,
                      .clock = -1,
                      .max_batch_rows = (uint64_t)t->max_batch};
  pd_peer_box_open(ts->box, &e, ts->job_token);
  PD_INFO("job %s: replica %u stage %u of %u: layers [%d, %d), keys [%llu, %llu), %u "
          "micro-batches, %s",
          t->tj->job, t->tj->rank, ts->stage, ts->stages, ts->layer_begin, ts->layer_end,
          (unsigned long long)kb, (unsigned long long)ke, m,
          spec->training.pipeline_schedule == PD_PIPELINE_1F1B ? "1f1b" : "gpipe");
  return 0;
}

static void stage_close(trainer *t) {
  if (t->tj->stage && t->stage)
    pd_peer_box_close(t->tj->stage->box);
  pd_stage_free(t->stage);
  pd_peer_link_free(t->prev);
  pd_peer_link_free(t->next);
  free(t->received);
  free(t->dx);
  free(t->ops);
  free(t->micro_loss);
}

/* Sends micro-batch `micro`'s tensor to the neighbour `to` (stage + 1
 * FORWARD, stage - 1 BACKWARD). A failure names the peer. */
static int stage_send(trainer *t, uint32_t count, uint32_t micro, int forward, const float *data,
                      uint64_t rows, uint32_t width, double loss_sum, char *err, size_t errlen) {
  const pd_train_stage *ts = t->tj->stage;
  Pando__V1__PeerTensor msg = PANDO__V1__PEER_TENSOR__INIT;
  msg.job = (char *)t->tj->job;
  msg.attempt = ts->attempt;
  msg.replica = t->tj->rank;
  msg.from_stage = ts->stage;
  msg.clock = t->clock;
  msg.micro = micro;
  msg.micro_batches = count;
  msg.direction = forward ? PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD
                          : PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_BACKWARD;
  msg.loss_sum = loss_sum;
  char why[512];
  int rc = pd_peer_link_send(forward ? t->next : t->prev, &msg, data, rows, width, ts->timeout_sec,
                             NULL, why, sizeof why);
  if (rc != 0)
    return pd_errf(err, errlen, rc,
                   "pipeline peer stage %u of replica %u (%s) is gone or refused micro-batch %u "
                   "of clock %lld: %s",
                   forward ? ts->stage + 1 : ts->stage - 1, t->tj->rank,
                   forward ? ts->peer_next : ts->peer_prev, micro, (long long)t->clock, why);
  return 0;
}

/* Waits for micro-batch `micro`'s tensor from a neighbour into t->received. */
static int stage_receive(trainer *t, uint32_t micro, int forward, uint64_t rows, double *loss_sum,
                         char *err, size_t errlen) {
  const pd_train_stage *ts = t->tj->stage;
  uint64_t got = 0;
  int width = forward ? pd_stage_in_width(t->stage) : pd_stage_out_width(t->stage);
  int rc = pd_peer_box_take(ts->box, t->clock, micro,
                            forward ? PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD
                                    : PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_BACKWARD,
                            t->received, (size_t)t->max_batch * (size_t)width, &got, loss_sum,
                            ts->timeout_sec);
  if (rc == -PD_ESHUTDOWN)
    return shutting_down(err, errlen);
  if (rc != 0)
    return pd_errf(err, errlen, -PD_ERPC,
                   "pipeline peer stage %u of replica %u (%s) sent no %s of micro-batch %u of "
                   "clock %lld within %.0f s: it is gone or stalled",
                   forward ? ts->stage - 1 : ts->stage + 1, t->tj->rank,
                   forward ? ts->peer_prev : ts->peer_next, forward ? "activations" : "gradient",
                   micro, (long long)t->clock, ts->timeout_sec);
  if (got != rows)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "pipeline peer stage %u sent %llu rows for micro-batch %u of clock %lld, "
                   "expected %llu",
                   forward ? ts->stage - 1 : ts->stage + 1, (unsigned long long)got, micro,
                   (long long)t->clock, (unsigned long long)rows);
  return 0;
}

/* The stage's part of mini-batch `step`: its micro-batches forward and
 * backward in the schedule's order, activations and gradients exchanged
 * with the neighbours, the stage's gradient accumulated into grad[key_begin,
 * key_end) (the rest of grad is not pushed). *loss gets the mini-batch's mean
 * loss (computed by the last stage, passed down with the gradients). */
static int stage_clock(trainer *t, uint32_t step, float *grad, double *loss, char *err,
                       size_t errlen) {
  const pd_train_stage *ts = t->tj->stage;
  const pd_job_spec *spec = t->spec;
  pd_dataset view;
  const pd_dataset *batch =
      batch_rows(spec, &t->train, t->order, t->steps, t->size, step, &view, &t->ct[0].gathered);
  uint64_t rows = batch->rows;
  uint32_t count = pd_pipeline_micro_count(rows, (uint32_t)spec->training.micro_batches);
  pd_peer_box_set_clock(ts->box, t->clock, rows, clock_rows(t, t->clock + 1));
  int n = pd_pipeline_schedule(spec->training.pipeline_schedule, (int)ts->stages, (int)ts->stage,
                               count, t->ops);
  const float *params = t->params + ts->key_begin;
  float *stage_grad = grad + ts->key_begin;
  memset(stage_grad, 0, (ts->key_end - ts->key_begin) * sizeof(float));
  int first = pd_stage_is_first(t->stage), last = pd_stage_is_last(t->stage);
  double loss_sum = 0.0;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    uint32_t micro = t->ops[i].micro;
    uint64_t b, e;
    pd_pipeline_micro_rows(rows, count, micro, &b, &e);
    pd_dataset x = pd_dataset_view(batch, b, e);
    int width_in = pd_stage_in_width(t->stage), width_out = pd_stage_out_width(t->stage);
    double micro_loss = 0.0;
    if (!t->ops[i].backward) {
      if (!first && (rc = stage_receive(t, micro, 1, e - b, &micro_loss, err, errlen)) != 0)
        break;
      const float *out =
          pd_stage_forward(t->stage, params, micro, &x, first ? NULL : t->received, (int)(e - b));
      PD_ASSERT(out); /* the schedule keeps at most `slots` in flight */
      if (last) {
        int *label = pd_xmalloc((size_t)(e - b) * sizeof *label);
        for (uint64_t r = 0; r < e - b; r++)
          label[r] = x.labels ? x.labels[r] : (int)x.targets[r];
        t->micro_loss[micro] = pd_stage_loss(t->stage, micro, label, 1.0f / (float)rows, NULL);
        free(label);
      } else {
        rc = stage_send(t, count, micro, 1, out, e - b, (uint32_t)width_out, 0.0, err, errlen);
      }
    } else {
      const float *dy = NULL;
      if (last) {
        micro_loss = t->micro_loss[micro];
      } else {
        if ((rc = stage_receive(t, micro, 0, e - b, &micro_loss, err, errlen)) != 0)
          break;
        dy = t->received;
      }
      PD_ASSERT(pd_stage_backward(t->stage, params, micro, dy, stage_grad, first ? NULL : t->dx) ==
                0);
      loss_sum += micro_loss;
      if (!first)
        rc = stage_send(t, count, micro, 0, t->dx, e - b, (uint32_t)width_in, micro_loss, err,
                        errlen);
    }
  }
  *loss = loss_sum / (double)rows;
  t->tp.window_samples += rows;
  return rc;
}

/* Loads the data, makes the models (one per compute thread) and the
 * buffers. */
static int setup(trainer *t, char *err, size_t errlen) {
  const pd_train_job *tj = t->tj;
  const pd_job_spec *spec = t->spec;
  double t0 = pd_now();
  uint64_t load_start = pd_now_ns();
  int rc;
  if ((rc = load_partition(tj, &t->train, &t->rows, err, errlen)) != 0 ||
      (rc = fit_columns(spec, &t->train, "train", err, errlen)) != 0 ||
      (rc = check_labels(spec, &t->train, "train", err, errlen)) != 0)
    return rc;
  if (tj->evaluate && ((rc = pd_dataset_load(spec, 1, &t->test, err, errlen)) != 0 ||
                       (rc = fit_columns(spec, &t->test, "test", err, errlen)) != 0 ||
                       (rc = check_labels(spec, &t->test, "test", err, errlen)) != 0))
    return rc;
  phase_end(t, PH_LOAD, load_start);
  PD_INFO("job %s: rank %u of %u, %llu of %llu training rows (%s) loaded in %.2f s", tj->job,
          tj->rank, tj->workers, (unsigned long long)t->train.rows, (unsigned long long)t->rows,
          pd_partition_name(spec->data.partition), pd_now() - t0);

  t->min_rows = pd_plan_min_partition_rows(t->rows, tj->workers, spec->data.partition);
  int max_batch = max_batch_rows(spec, t->train.rows, t->min_rows);
  for (uint32_t i = 0; i < t->nthreads; i++) {
    t->ct[i].model = pd_model_new(&spec->model, max_batch, err, errlen);
    if (!t->ct[i].model)
      return -PD_EINVAL_SPEC;
    /* thread 0 as a single-threaded worker; the others' dropout masks differ */
    pd_model_set_seed(t->ct[i].model, (tj->rank + 1) + ((uint64_t)i << 32));
  }
  if (spec->training.frequency != PD_FREQ_BATCH || t->nthreads > 1)
    PD_INFO("job %s: frequency %s (%u batches per pull and push in epoch 1), %u compute "
            "thread%s on a local copy",
            tj->job, pd_frequency_name(spec->training.frequency),
            pd_schedule_batches_per_clock(spec, t->min_rows, 1), t->nthreads,
            t->nthreads > 1 ? "s" : "");
  t->keys = pd_model_num_params(t->ct[0].model);
  t->max_batch = max_batch;
  if (tj->stage && (rc = stage_setup(t, err, errlen)) != 0)
    return rc;
  t->params = t->store->shared;
  if (!t->params)
    t->params = t->own = pd_xmalloc_aligned(t->keys * sizeof(float));
  t->order = pd_xmalloc(t->train.rows * sizeof *t->order);
  for (uint32_t i = 0; i < t->nthreads; i++) {
    compute_thread *c = &t->ct[i];
    c->grad = pd_xmalloc_aligned(t->keys * sizeof(float));
    c->tj = tj;
    c->train = &t->train;
    c->order = t->order;
    c->keys = t->keys;
    c->index = i;
    c->nthreads = t->nthreads;
  }
  t->tp = (throughput){0, pd_now(), 0, 0};
  t->pulled = -1;
  t->total = pd_schedule_epoch_begin(spec, t->min_rows, spec->training.epochs + 1);
  /* BSP with backup workers: rounds go on without a straggler, which then
   * continues from the round its pull answers (its skipped clocks are lost) */
  t->skip_ahead = spec->training.update == PD_UPDATE_BSP && spec->training.backup_workers > 0;
  return 0;
}

static void trainer_close(trainer *t) {
  stage_close(t);
  for (uint32_t i = 0; i < t->nthreads; i++) {
    free(t->ct[i].accum);
    free(t->ct[i].grad);
    pd_model_free(t->ct[i].model);
    pd_dataset_close(&t->ct[i].gathered);
  }
  free(t->ct);
  free(t->order);
  free(t->local);
  free(t->own);
  pd_dataset_close(&t->test);
  pd_dataset_close(&t->train);
}

/* Epoch `epoch` begins: its schedule, its row order, fresh loss sums. */
static void begin_epoch(trainer *t, int epoch) {
  const pd_job_spec *spec = t->spec;
  uint64_t start = pd_now_ns();
  t->epoch = epoch;
  t->steps = pd_schedule_steps(spec, t->min_rows, epoch);
  t->size = pd_schedule_batch_size(spec, epoch);
  t->per_clock = pd_schedule_batches_per_clock(spec, t->min_rows, epoch);
  for (uint64_t i = 0; i < t->train.rows; i++)
    t->order[i] = i;
  if (spec->training.shuffle)
    pd_plan_shuffle(t->order, t->train.rows, spec->data.seed, t->tj->rank, (uint32_t)epoch);
  phase_end(t, PH_BATCH, start);
  t->loss_sum = 0;
  t->done_steps = 0;
}

/* Pulls the parameters of this clock (when the store shares none and they
 * are not pulled yet). With backup workers a pull may answer a later round:
 * the clock moves on to it and *skipped is set. */
static int pull_clock(trainer *t, int *skipped, char *err, size_t errlen) {
  *skipped = 0;
  if (!t->own || t->pulled == t->clock)
    return 0;
  uint64_t version = 0, start = pd_now_ns();
  int rc = t->store->pull(t->store->ctx, t->clock, t->own, &version, err, errlen);
  if (rc != 0)
    return rc;
  phase_end(t, PH_PULL, start);
  t->pulled = t->clock;
  if (t->skip_ahead && (int64_t)version > t->clock) {
    t->skipped_clocks += (uint64_t)(PD_MIN((int64_t)version, t->total) - t->clock);
    t->clock = t->pulled = PD_MIN((int64_t)version, t->total);
    *skipped = 1;
  }
  return 0;
}

/* The update of batches [first, last) of the epoch: one batch's gradient on
 * the pulled parameters, or (nfetch, Dean et al.; Hogwild) the sum of the
 * gradients of SGD steps on a local copy of them. */
static const float *compute_clock(trainer *t, uint32_t first, uint32_t last) {
  compute_thread *ct = t->ct;
  if (last - first == 1 && t->nthreads == 1) {
    pd_dataset view;
    uint64_t start = pd_now_ns();
    const pd_dataset *batch =
        batch_rows(t->spec, &t->train, t->order, t->steps, t->size, first, &view, &ct[0].gathered);
    uint64_t compute_start = phase_end(t, PH_BATCH, start);
    t->loss_sum += pd_model_gradient(ct[0].model, t->params, batch, ct[0].grad);
    uint64_t compute_end = phase_end(t, PH_GRADIENT, compute_start);
    if (straggle(t->tj, (double)(compute_end - compute_start) * 1e-9))
      phase_end(t, PH_DELAY, compute_end);
    t->tp.window_samples += batch->rows;
    t->done_steps++;
    return ct[0].grad;
  }
  uint64_t start = pd_now_ns();
  if (!t->local)
    t->local = pd_xmalloc_aligned(t->keys * sizeof(float));
  for (uint32_t i = 0; i < t->nthreads; i++)
    if (!ct[i].accum)
      ct[i].accum = pd_xmalloc_aligned(t->keys * sizeof(float));
  memcpy(t->local, t->params, t->keys * sizeof(float));
  uint64_t threads_start = phase_end(t, PH_LOCAL, start);
  double lr = pd_schedule_lr(t->spec, t->epoch);
  for (uint32_t i = 0; i < t->nthreads; i++) {
    ct[i].local = t->local;
    ct[i].steps = t->steps;
    ct[i].size = t->size;
    ct[i].first = first;
    ct[i].last = last;
    ct[i].lr = lr;
  }
  for (uint32_t i = 1; i < t->nthreads; i++) {
    int started = pthread_create(&ct[i].tid, NULL, compute, &ct[i]);
    PD_ASSERT(started == 0);
  }
  compute(&ct[0]);
  for (uint32_t i = 1; i < t->nthreads; i++)
    pthread_join(ct[i].tid, NULL);
  if (t->nthreads == 1) { /* the thread's phases are this worker's time */
    for (int p = 0; p < PH_COUNT; p++)
      pd_phase_add(&t->phases[p], ct[0].phases[p].count, ct[0].phases[p].ns);
  } else { /* concurrent threads: their wall time, as gradient computation */
    uint64_t batches = 0;
    for (uint32_t i = 0; i < t->nthreads; i++)
      batches += ct[i].batches;
    pd_phase_add(&t->phases[PH_GRADIENT], batches, pd_now_ns() - threads_start);
  }
  /* one span for the clock's batches (their phases are counted above) */
  start = pd_now_ns();
  pd_trace_span(&t->trace, phase_names[PH_GRADIENT], threads_start, start, t->clock, t->tj->rank,
                0);
  for (uint32_t i = 0; i < t->nthreads; i++) {
    if (i > 0)
      cblas_saxpy((int)t->keys, 1.0f, ct[i].accum, 1, ct[0].accum, 1);
    t->loss_sum += ct[i].loss_sum;
    t->done_steps += (uint32_t)ct[i].batches;
    t->tp.window_samples += ct[i].samples;
  }
  phase_end(t, PH_LOCAL, start);
  return ct[0].accum;
}

/* Sends a progress report of the epoch in progress at `step` (with the
 * evaluation `ev` when not NULL, and `done` after the last epoch), and the
 * spans recorded since the previous one: PD_TRACE_MESSAGE_EVENTS at most a
 * report, so when more wait, as many reports in a row as they need, only the
 * last with `ev` and `done`. A sink that refuses one stopped the job. */
static int report(trainer *t, uint32_t step, const pd_eval *ev, int done, char *err,
                  size_t errlen) {
  Pando__V1__ProgressReport r = PANDO__V1__PROGRESS_REPORT__INIT;
  r.epoch = (uint32_t)t->epoch;
  r.step = step;
  r.loss = t->done_steps ? t->loss_sum / t->done_steps : (t->replay ? NAN : 0);
  r.samples_per_sec = t->tp.samples_per_sec;
  Pando__V1__PhaseStat phases[PH_COUNT], *phase_ptrs[PH_COUNT];
  r.phases = phase_ptrs;
  r.n_phases = pd_phase_fill(t->phases, phase_names, PH_COUNT, phases, phase_ptrs);
  r.trace = t->batch_ptrs;
  uint64_t start = pd_now_ns();
  r.wall_ns = start - t->start_ns;
  int rc, last;
  do {
    uint64_t seq = 0; /* the oldest span not reported */
    r.n_trace =
        pd_trace_fill(&t->trace, 0, -1, &seq, PD_TRACE_MESSAGE_EVENTS, t->batch, t->batch_ptrs);
    last = r.n_trace == t->trace.count;
    r.trace_dropped = t->trace.dropped - t->trace_dropped;
    t->trace_dropped = t->trace.dropped;
    r.done = last && done;
    if (last && ev) {
      r.has_eval = 1;
      r.test_loss = ev->loss;
      r.test_accuracy = ev->accuracy;
      r.test_rmse = ev->rmse;
    }
    rc = t->sink->report(t->sink->ctx, &r);
    pd_trace_pop(&t->trace, r.n_trace);
  } while (rc == 0 && !last);
  phase_end(t, PH_REPORT, start);
  if (rc != 0)
    pd_errf(err, errlen, rc, "job %s was stopped by the coordinator", t->tj->job);
  return rc;
}

/* The end of this worker's part of the epoch: the model evaluated after it
 * (rank 0; under BSP the pull waits for every worker) and reported. */
static int end_epoch(trainer *t, char *err, size_t errlen) {
  if (!t->tj->evaluate || t->test.rows == 0)
    return report(t, t->steps, NULL, t->clock >= t->total, err, errlen);
  uint64_t start = pd_now_ns();
  if (t->own && t->store->pull_all) { /* a stage holds its keys only: read the whole model */
    int rc = t->store->pull_all(t->store->ctx, t->clock, t->own, err, errlen);
    if (rc != 0)
      return rc;
  } else if (t->own && t->pulled != t->clock) {
    int rc = t->store->pull(t->store->ctx, t->clock, t->own, NULL, err, errlen);
    if (rc != 0)
      return rc;
  }
  t->pulled = t->clock;
  pd_eval ev;
  pd_model_evaluate(t->ct[0].model, t->params, &t->test, &ev);
  phase_end(t, PH_EVAL, start);
  return report(t, t->steps, &ev, t->clock >= t->total, err, errlen);
}

/* After a roll back to the first clock of an epoch, or to the job's last
 * clock, the end of the epoch before (its evaluation, its report, the job's
 * last report) may never have reached the coordinator: the coordinator
 * that recorded it was killed, or this rank's worker died between the
 * checkpoint and its report. Redoes it from the checkpoint's model, which
 * is that epoch's end; the coordinator records what it lacks and ignores
 * the rest. The batches' losses are gone: the report's train loss is NaN. */
static int replay_epoch_end(trainer *t, char *err, size_t errlen) {
  uint32_t step = 0;
  int epoch = t->clock >= t->total
                  ? t->spec->training.epochs + 1
                  : pd_schedule_epoch_of_clock(t->spec, t->min_rows, t->clock, &step);
  if (step != 0 || epoch <= 1)
    return 0;
  begin_epoch(t, epoch - 1);
  t->replay = 1;
  int rc = end_epoch(t, err, errlen);
  t->replay = 0;
  return rc;
}

static int shutting_down(char *err, size_t errlen) {
  return pd_errf(err, errlen, -PD_ESHUTDOWN, "the worker was asked to shut down");
}

/* One clock: pull, compute the clock's batches, push, report now and then;
 * and the end of the epoch when this was its last clock. */
static int one_clock(trainer *t, char *err, size_t errlen) {
  uint32_t clock_in_epoch;
  int epoch = pd_schedule_epoch_of_clock(t->spec, t->min_rows, t->clock, &clock_in_epoch);
  if (epoch != t->epoch)
    begin_epoch(t, epoch);
  if (pd_daemon_stopping())
    return shutting_down(err, errlen);
  int skipped, rc;
  if ((rc = pull_clock(t, &skipped, err, errlen)) != 0)
    return rc;
  /* this clock's batches: one, or k (nbatches; the epoch's last clock the rest) */
  uint32_t first = clock_in_epoch * t->per_clock, last = PD_MIN(first + t->per_clock, t->steps);
  if (!skipped) {
    const float *update;
    if (t->stage) { /* frequency batch: one mini-batch a clock */
      double loss = 0.0;
      uint64_t start = pd_now_ns();
      rc = stage_clock(t, first, t->ct[0].grad, &loss, err, errlen);
      phase_end(t, PH_GRADIENT, start);
      if (rc != 0)
        return rc;
      t->loss_sum += loss;
      t->done_steps++;
      update = t->ct[0].grad;
    } else {
      update = compute_clock(t, first, last);
    }
    if (pd_daemon_stopping())
      return shutting_down(err, errlen);
    int dropped = 0;
    uint64_t start = pd_now_ns();
    if ((rc = t->store->push(t->store->ctx, t->clock, update, &dropped, err, errlen)) != 0)
      return rc;
    phase_end(t, PH_PUSH, start);
    t->lost += dropped;
    t->clock++;
    double now = pd_now();
    if (now - t->tp.last_report >= REPORT_EVERY_SEC) {
      t->tp.samples_per_sec = t->tp.window_samples / (now - t->tp.window_start);
      t->tp.window_start = t->tp.last_report = now;
      t->tp.window_samples = 0;
      if ((rc = report(t, last, NULL, 0, err, errlen)) != 0)
        return rc;
    } else if (t->trace.count >= PD_TRACE_MESSAGE_EVENTS) { /* a report's worth of spans waits */
      if ((rc = report(t, last, NULL, 0, err, errlen)) != 0)
        return rc;
    }
  }
  if (t->clock < t->total &&
      pd_schedule_epoch_of_clock(t->spec, t->min_rows, t->clock, NULL) == t->epoch)
    return 0;
  return end_epoch(t, err, errlen);
}

int pd_train(const pd_train_job *tj, const pd_param_store *store, const pd_progress_sink *sink,
             char *err, size_t errlen) {
  trainer t = {.tj = tj, .spec = tj->spec, .store = store, .sink = sink, .start_ns = pd_now_ns()};
  t.nthreads = (uint32_t)PD_MAX(tj->spec->training.threads, 1);
  t.ct = pd_xcalloc(t.nthreads, sizeof *t.ct);
  pd_trace_init(&t.trace, tj->trace_events);
  if (pd_trace_on(&t.trace)) {
    t.batch = pd_xcalloc(PD_TRACE_MESSAGE_EVENTS, sizeof *t.batch);
    t.batch_ptrs = pd_xcalloc(PD_TRACE_MESSAGE_EVENTS, sizeof *t.batch_ptrs);
  }
  double t0 = pd_now();
  int rc = setup(&t, err, errlen);
  if (rc == 0 && tj->start_clock > 0) {
    t.clock = PD_MIN(tj->start_clock, t.total);
    PD_INFO("job %s: resuming at clock %lld of %lld (the checkpoint rolled back to)", tj->job,
            (long long)t.clock, (long long)t.total);
    rc = replay_epoch_end(&t, err, errlen);
  }
  while (rc == 0 && t.clock < t.total)
    rc = one_clock(&t, err, errlen);
  if (rc == 0) {
    PD_INFO("job %s: finished %d epochs in %.1f s", tj->job, tj->spec->training.epochs,
            pd_now() - t0);
    if (t.skip_ahead)
      PD_INFO("job %s: %llu gradients dropped (too late for their rounds), %llu clocks skipped",
              tj->job, (unsigned long long)t.lost, (unsigned long long)t.skipped_clocks);
  }
  trainer_close(&t);
  free(t.batch_ptrs);
  free(t.batch);
  pd_trace_close(&t.trace);
  return rc;
}

/* ---------------------------------------------------------------- local store */

struct pd_local_store {
  pd_job_spec spec;
  uint64_t keys, min_rows;
  float *params;
  pd_optimizer optimizer;
};

pd_local_store *pd_local_store_new(const pd_job_spec *spec, uint64_t min_partition_rows, char *err,
                                   size_t errlen) {
  uint64_t keys = 0;
  if (pd_model_layout(&spec->model, NULL, 0, &keys, err, errlen) < 0)
    return NULL;
  pd_local_store *s = pd_xcalloc(1, sizeof *s);
  s->spec = *spec;
  s->keys = keys;
  s->min_rows = min_partition_rows;
  s->params = pd_xmalloc_aligned(keys * sizeof(float));
  if (pd_model_init_range(&spec->model, 0, keys, s->params, err, errlen) != 0) {
    free(s->params);
    free(s);
    return NULL;
  }
  pd_optimizer_init(&s->optimizer, &spec->training.optimizer, keys);
  return s;
}

void pd_local_store_free(pd_local_store *s) {
  if (!s)
    return;
  pd_optimizer_close(&s->optimizer);
  free(s->params);
  free(s);
}

static int local_push(void *ctx, int64_t clock, const float *grad, int *dropped, char *err,
                      size_t errlen) {
  (void)err, (void)errlen;
  if (dropped)
    *dropped = 0;
  pd_local_store *s = ctx;
  int epoch = pd_schedule_epoch_of_clock(&s->spec, s->min_rows, clock, NULL);
  pd_optimizer_step(&s->optimizer, s->params, grad, 0, s->keys, pd_schedule_lr(&s->spec, epoch));
  return 0;
}

pd_param_store pd_local_store_api(pd_local_store *s) {
  pd_param_store api = {NULL, local_push, s, s->params, NULL};
  return api;
}

/* ---------------------------------------------------------------- standalone */

typedef struct console {
  const pd_job_spec *spec;
  uint32_t steps;
  double t0, last_line, last_epoch_end;
  Pando__V1__ProgressReport final;
} console;

static int console_report(void *ctx, Pando__V1__ProgressReport *r) {
  console *c = ctx;
  double now = pd_now();
  if (!r->has_eval && r->step < c->steps && now - c->last_line < 2)
    return 0;
  c->last_line = now;
  if (r->step < c->steps || !r->has_eval) {
    fprintf(stderr, "epoch %u/%d  step %llu  loss %.4f  %.0f samples/s\n", r->epoch,
            c->spec->training.epochs, (unsigned long long)r->step, r->loss, r->samples_per_sec);
  }
  if (r->has_eval) {
    if (c->spec->model.type == PD_MODEL_LINREG)
      printf("epoch %u: train loss %.4f, test rmse %.4f, test loss %.4f (%.2f s)\n", r->epoch,
             r->loss, r->test_rmse, r->test_loss, now - c->last_epoch_end);
    else
      printf("epoch %u: train loss %.4f, test accuracy %.4f, test loss %.4f (%.2f s)\n", r->epoch,
             r->loss, r->test_accuracy, r->test_loss, now - c->last_epoch_end);
    fflush(stdout);
    c->last_epoch_end = now;
    c->final = *r;
  }
  return 0;
}

int pd_train_standalone(const char *path) {
  char err[1024];
  pd_model_allow_plugins(NULL); /* the user's own process: any plugin */
  uint8_t *text = NULL;
  size_t len = 0;
  pd_job_spec spec;
  uint64_t rows = 0, cols = 0;
  if (pd_read_file(path, &text, &len, err, sizeof err) != 0) {
    fprintf(stderr, "pando-worker: %s\n", err);
    return 2;
  }
  int rc = pd_job_spec_parse((const char *)text, len, &spec, err, sizeof err);
  free(text);
  if (rc != 0 || pd_dataset_peek(&spec, 0, &rows, &cols, err, sizeof err) != 0) {
    fprintf(stderr, "pando-worker: job spec %s: %s\n", path, err);
    return 2;
  }
  uint64_t min_rows = pd_plan_min_partition_rows(rows, 1, spec.data.partition);
  pd_local_store *store = pd_local_store_new(&spec, min_rows, err, sizeof err);
  if (!store) {
    fprintf(stderr, "pando-worker: job spec %s: %s\n", path, err);
    return 2;
  }
  pd_param_store api = pd_local_store_api(store);
  console con = {&spec,    pd_schedule_steps(&spec, min_rows, 1), pd_now(), 0,
                 pd_now(), PANDO__V1__PROGRESS_REPORT__INIT};
  pd_progress_sink sink = {console_report, &con};
  pd_train_job tj = {&spec, spec.name, 0, 1, 1, 1.0, 0.0, 0, 0, NULL};
  double t0 = pd_now();
  rc = pd_train(&tj, &api, &sink, err, sizeof err);
  pd_local_store_free(store);
  if (rc != 0) {
    fprintf(stderr, "pando-worker: %s\n", err);
    return 1;
  }
  fprintf(stderr, "standalone: %d epochs in %.1f s\n", spec.training.epochs, pd_now() - t0);
  if (con.final.has_eval) {
    if (spec.model.type == PD_MODEL_LINREG)
      printf("test rmse: %.4f\n", con.final.test_rmse);
    else
      printf("test accuracy: %.4f\n", con.final.test_accuracy);
  }
  return 0;
}
