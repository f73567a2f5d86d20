/* Every model of the job spec: parameter layout, seeded initialisation, and
 * the gradient and evaluation that workers run. Built-in models are composed
 * from the layers of layers.c; user models are plugins (pando/plugin.h),
 * loaded by plugin.c. */
#include "pando/model.h"
#include "pando/safetensors.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "pando/error.h"
#include "pando/kernels.h"
#include "pando/plugin.h"
#include "pando/util.h"
#include "plugin.h"

/* LeNet's fixed architecture: conv 5x5 (32, pad 2), relu, max-pool 2, conv
 * 5x5 (64, pad 2), relu, max-pool 2, affine 512, relu, dropout, affine. */
#define LENET_KERNEL 5
#define LENET_PAD 2
#define LENET_FILTERS1 32
#define LENET_FILTERS2 64
#define LENET_HIDDEN 512
#define LENET_DROPOUT 0.5 /* when model.dropout is not set */
/* LeNet's scratch is ~0.4 MB per row (28 x 28): larger batches run in
 * micro-batches of this many rows, their gradients summed. */
#define LENET_MICRO_BATCH 128

/* The models fall into three shapes of computation. */
enum family {
  FAMILY_NET,    /* affine layers with hidden activations: softmax, mlp, linreg, logreg */
  FAMILY_LENET,  /* the CNN */
  FAMILY_PLUGIN, /* a user's shared object */
};

/* Scratch of a chain of affine layers (l = 1 .. L for the L = nlayers - 1
 * affine layers; entry 0 is the batch itself). */
typedef struct net {
  float *act[PD_MAX_LAYERS];  /* output of affine layer l-1, after the activation if hidden */
  float *drop[PD_MAX_LAYERS]; /* hidden l with dropout: act * mask, the next layer's input */
  float *mask[PD_MAX_LAYERS]; /* hidden l with dropout: the mask of this call */
  float *delta[2];            /* backprop ping-pong, max_batch x widest hidden layer */
} net;

/* Scratch of the CNN, for `micro` samples; conv data is NCHW (a batch of
 * rows as it is). */
typedef struct lenet {
  int micro;        /* rows per pass: min(rows of a thread's slice, LENET_MICRO_BATCH) */
  float *grad_part; /* K: a later micro-batch's gradient (slices longer than micro) */
  pd__conv conv1, conv2;
  size_t plane1, plane2;       /* pixels of a plane after pool 1, after pool 2 */
  size_t flat;                 /* features after pool 2: filters2 x plane2 */
  float *input;                /* sparse batches made dense */
  float *c1, *c2;              /* conv outputs; their gradients in backward */
  float *p1, *p2;              /* pooled, after relu (p2 is fc1's input rows) */
  uint8_t *arg1, *arg2;        /* max-pool winners */
  float *hidden, *mask, *drop; /* affine 512 after relu; dropout mask; hidden * mask */
  float *logits;
  float *d_hidden, *d_p2, *d_p1;
} lenet;

/* Running sums of an evaluation. */
typedef struct eval_sums {
  double loss;
  uint64_t correct;
  double sq_err;
} eval_sums;

/* What one compute thread owns: scratch for its slice of a batch (or its own
 * plugin instance), its part of the gradient, and its results of a call. */
typedef struct replica {
  int rows;           /* rows its scratch holds: ceil(max_batch / threads) */
  int *labels;        /* rows: classes of the slice */
  float *targets;     /* rows: targets (regression, logreg 0/1) */
  float *predictions; /* rows: a plugin's predictions */
  net net;
  lenet lenet;
  pd__plugin plugin; /* replica 0's is the model's; the others are instances of it */
  float *grad;       /* K: the slice's gradient (replicas 1 and up) */
  uint64_t first;    /* this call: the slice's rows [first, first + count) */
  uint64_t count;
  double loss;    /* this call: sum of the slice's losses */
  eval_sums sums; /* pd_model_evaluate: this thread's chunks */
} replica;

/* The compute threads of a model: threads 1 .. n-1 run a job that thread 0
 * (the caller) runs too, between two barriers. */
typedef struct team_member {
  pd_model *model;
  int index; /* 1 .. n-1 */
} team_member;

typedef struct team {
  int n;
  pthread_t *threads;   /* [n]; 0 is the caller's place */
  team_member *members; /* [n]: what each thread is told */
  pthread_barrier_t barrier;
  void (*job)(pd_model *m, int thread); /* NULL: stop */
} team;

struct pd_model {
  pd_model_spec spec; /* copy of the caller's spec */
  enum family family;
  int max_batch;                              /* rows a call may have */
  int ntensors;                               /* entries used in params[] */
  pd_param_info params[PD_MODEL_MAX_TENSORS]; /* parameter tensors in key order */
  uint64_t num_params;                        /* K */
  uint64_t seed;                              /* of the dropout masks */
  uint64_t calls;                             /* pd_model_gradient calls since the seed was set */
  float dropout;                              /* rate after hidden layers in gradients, or 0 */
  int nthreads;                               /* compute threads: replicas */
  replica *rep;                               /* [nthreads] */
  team team;                                  /* when nthreads > 1 */
  /* the call in progress (gradient or evaluation) */
  const float *call_params;
  const pd_dataset *call_data;
  float *call_grad;
  uint64_t call_stream;
};

static void *scratch(size_t floats) {
  return pd_xmalloc_aligned(PD_MAX(floats, (size_t)1) * sizeof(float));
}

/* ---------------------------------------------------------------- layout */

static enum family family_of(enum pd_model_type type) {
  switch (type) {
  case PD_MODEL_LENET:
    return FAMILY_LENET;
  case PD_MODEL_PLUGIN:
    return FAMILY_PLUGIN;
  default:
    return FAMILY_NET;
  }
}

/* Built-in specs are validated by spec.c; what reaches here is checked with
 * asserts only. */
static void check_builtin(const pd_model_spec *spec) {
  PD_ASSERT(spec->nlayers >= 2 && spec->nlayers <= PD_MAX_LAYERS);
  for (int i = 0; i < spec->nlayers; i++)
    PD_ASSERT(spec->layers[i] > 0);
  PD_ASSERT(spec->dropout >= 0.0 && spec->dropout < 1.0);
  switch (spec->type) {
  case PD_MODEL_SOFTMAX:
  case PD_MODEL_LENET:
    PD_ASSERT(spec->nlayers == 2);
    break;
  case PD_MODEL_LINREG:
  case PD_MODEL_LOGREG:
    PD_ASSERT(spec->nlayers == 2 && spec->layers[1] == 1);
    break;
  case PD_MODEL_MLP:
    if (spec->nlayers > 2)
      PD_ASSERT(spec->activation == PD_ACT_RELU || spec->activation == PD_ACT_TANH ||
                spec->activation == PD_ACT_SIGMOID);
    break;
  case PD_MODEL_PLUGIN:
    PD_ASSERT(!"check_builtin: a plugin");
  }
  if (spec->type == PD_MODEL_LENET) {
    const int *shape = spec->input_shape;
    PD_ASSERT(spec->ninput_shape == 3 && shape[0] > 0 && shape[1] > 0 && shape[2] > 0);
    PD_ASSERT((int64_t)shape[0] * shape[1] * shape[2] == spec->layers[0]);
    PD_ASSERT(shape[1] % 4 == 0 && shape[2] % 4 == 0);
  }
}

/* Appends a tensor of `ndim` dimensions to info[*count] at key *offset. */
static void add_tensor(pd_param_info *info, int *count, uint64_t *offset, const char *name,
                       int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  PD_ASSERT(*count < PD_MODEL_MAX_TENSORS);
  pd_param_info *t = &info[(*count)++];
  memset(t, 0, sizeof *t);
  pd_strlcpy(t->name, name, sizeof t->name);
  t->ndim = ndim;
  int64_t dims[4] = {d0, d1, d2, d3};
  t->size = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = dims[i];
    t->size *= (uint64_t)dims[i];
  }
  t->offset = *offset;
  *offset += t->size;
}

/* The layout of a built-in model: all its tensors into info (room for
 * PD_MODEL_MAX_TENSORS); returns their number. */
static int builtin_layout(const pd_model_spec *spec, pd_param_info *info, uint64_t *num_params) {
  check_builtin(spec);
  int count = 0;
  uint64_t offset = 0;
  char name[32];
  if (spec->type == PD_MODEL_LENET) {
    const int *shape = spec->input_shape;
    int64_t flat = (int64_t)LENET_FILTERS2 * (shape[1] / 4) * (shape[2] / 4);
    add_tensor(info, &count, &offset, "conv1.weight", 4, LENET_FILTERS1, shape[0], LENET_KERNEL,
               LENET_KERNEL);
    add_tensor(info, &count, &offset, "conv1.bias", 1, LENET_FILTERS1, 0, 0, 0);
    add_tensor(info, &count, &offset, "conv2.weight", 4, LENET_FILTERS2, LENET_FILTERS1,
               LENET_KERNEL, LENET_KERNEL);
    add_tensor(info, &count, &offset, "conv2.bias", 1, LENET_FILTERS2, 0, 0, 0);
    add_tensor(info, &count, &offset, "fc1.weight", 2, flat, LENET_HIDDEN, 0, 0);
    add_tensor(info, &count, &offset, "fc1.bias", 1, LENET_HIDDEN, 0, 0, 0);
    add_tensor(info, &count, &offset, "fc2.weight", 2, LENET_HIDDEN, spec->layers[1], 0, 0);
    add_tensor(info, &count, &offset, "fc2.bias", 1, spec->layers[1], 0, 0, 0);
  } else {
    for (int l = 0; l + 1 < spec->nlayers; l++) {
      snprintf(name, sizeof name, "layer%d.weight", l);
      add_tensor(info, &count, &offset, name, 2, spec->layers[l], spec->layers[l + 1], 0, 0);
      snprintf(name, sizeof name, "layer%d.bias", l);
      add_tensor(info, &count, &offset, name, 1, spec->layers[l + 1], 0, 0, 0);
    }
  }
  *num_params = offset;
  return count;
}

/* ---------------------------------------------------------------- plugins */

/* The layout of an open plugin's model (its tensors checked by plugin.c). */
static int plugin_layout(const pd_model_spec *spec, const pd__plugin *p, pd_param_info *info,
                         uint64_t *num_params, char *err, size_t errlen) {
  pando_plugin_tensor tensors[PD_MODEL_MAX_TENSORS];
  int count = pd__plugin_tensors(spec, p, tensors, err, errlen);
  if (count < 0)
    return count;
  uint64_t offset = 0;
  int added = 0;
  for (int i = 0; i < count; i++) {
    const pando_plugin_tensor *t = &tensors[i];
    add_tensor(info, &added, &offset, t->name, t->ndim, t->shape[0], t->ndim > 1 ? t->shape[1] : 0,
               t->ndim > 2 ? t->shape[2] : 0, t->ndim > 3 ? t->shape[3] : 0);
  }
  *num_params = offset;
  return count;
}

/* ---------------------------------------------------------------- layout API */

int pd_model_layout(const pd_model_spec *spec, pd_param_info *out, int cap, uint64_t *num_params,
                    char *err, size_t errlen) {
  pd_param_info info[PD_MODEL_MAX_TENSORS];
  uint64_t k = 0;
  int count;
  if (spec->type == PD_MODEL_PLUGIN) {
    pd__plugin p;
    int rc = pd__plugin_open(spec, 1, &p, err, errlen);
    if (rc != 0)
      return rc;
    count = plugin_layout(spec, &p, info, &k, err, errlen);
    pd__plugin_close(&p);
    if (count < 0)
      return count;
  } else {
    count = builtin_layout(spec, info, &k);
  }
  int written = PD_MIN(PD_MAX(cap, 0), count);
  if (written > 0)
    memcpy(out, info, (size_t)written * sizeof *out);
  if (num_params)
    *num_params = k;
  return written;
}

uint64_t pd_model_num_params(const pd_model *model) { return model->num_params; }

const pd_param_info *pd_model_params(const pd_model *model, int *count) {
  *count = model->ntensors;
  return model->params;
}

void pd_model_set_seed(pd_model *model, uint64_t seed) {
  model->seed = seed;
  model->calls = 0;
  if (model->family != FAMILY_PLUGIN || !model->rep[0].plugin.api->set_seed)
    return;
  for (int t = 0; t < model->nthreads; t++) /* each instance its own stream */
    model->rep[t].plugin.api->set_seed(model->rep[t].plugin.handle, seed + ((uint64_t)t << 40));
}

/* ---------------------------------------------------------------- initialisation */

/* N(0, 1) for one key: outputs 2k and 2k+1 of the splitmix64 sequence seeded
 * with mix(seed), turned into a normal by Box-Muller. */
static double key_normal(uint64_t seed_mix, uint64_t key) {
  const uint64_t gamma = 0x9e3779b97f4a7c15ull;
  uint64_t h1 = pd_mix64(seed_mix + (2 * key + 1) * gamma);
  uint64_t h2 = pd_mix64(seed_mix + (2 * key + 2) * gamma);
  double u1 = (double)((h1 >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
  double u2 = (double)(h2 >> 11) * 0x1.0p-53;       /* [0, 1) */
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int pd_model_init_range(const pd_model_spec *spec, uint64_t begin, uint64_t end, float *out,
                        char *err, size_t errlen) {
  if (spec->init[0]) { /* model.init: the values of an exported model */
    pd_param_info layout[PD_MODEL_MAX_TENSORS];
    char why[900];
    int count = pd_model_layout(spec, layout, PD_MODEL_MAX_TENSORS, NULL, err, errlen);
    if (count < 0)
      return count;
    int rc = pd_safetensors_read_range(spec->init, layout, count, begin, end, out, why, sizeof why);
    return rc == 0 ? 0 : pd_errf(err, errlen, rc, "model.init: %s", why);
  }
  if (spec->type == PD_MODEL_PLUGIN) {
    pd__plugin p;
    pd_param_info info[PD_MODEL_MAX_TENSORS];
    uint64_t k = 0;
    int rc = pd__plugin_open(spec, 1, &p, err, errlen);
    if (rc != 0)
      return rc;
    if ((rc = plugin_layout(spec, &p, info, &k, err, errlen)) >= 0) {
      PD_ASSERT(begin <= end && end <= k);
      if (begin < end)
        p.api->init(p.handle, spec->seed, begin, end, out);
      rc = 0;
    }
    pd__plugin_close(&p);
    return rc;
  }
  pd_param_info params[PD_MODEL_MAX_TENSORS];
  uint64_t num_params = 0;
  int count = builtin_layout(spec, params, &num_params);
  PD_ASSERT(begin <= end && end <= num_params);
  uint64_t seed_mix = pd_mix64(spec->seed);
  for (int i = 0; i < count; i++) {
    uint64_t lo = PD_MAX(begin, params[i].offset);
    uint64_t hi = PD_MIN(end, params[i].offset + params[i].size);
    if (lo >= hi)
      continue;
    float *dst = out + (lo - begin);
    if (params[i].ndim == 1) {
      memset(dst, 0, (hi - lo) * sizeof(float));
      continue;
    }
    const int64_t *shape = params[i].shape;
    int64_t fan_in = params[i].ndim == 4 ? shape[1] * shape[2] * shape[3] : shape[0];
    double scale = sqrt(2.0 / (double)fan_in);
    for (uint64_t key = lo; key < hi; key++)
      *dst++ = (float)(key_normal(seed_mix, key) * scale);
  }
  return 0;
}

/* ---------------------------------------------------------------- new, free */

static void net_alloc(const pd_model *m, replica *r) {
  const pd_model_spec *spec = &m->spec;
  size_t rows = (size_t)r->rows, widest_hidden = 1;
  for (int l = 1; l < spec->nlayers; l++) {
    r->net.act[l] = scratch(rows * (size_t)spec->layers[l]);
    if (l + 1 < spec->nlayers) {
      widest_hidden = PD_MAX(widest_hidden, (size_t)spec->layers[l]);
      if (m->dropout > 0.0f) {
        r->net.drop[l] = scratch(rows * (size_t)spec->layers[l]);
        r->net.mask[l] = scratch(rows * (size_t)spec->layers[l]);
      }
    }
  }
  for (int i = 0; i < 2; i++)
    r->net.delta[i] = scratch(rows * widest_hidden);
}

static void net_free(net *n) {
  for (int l = 0; l < PD_MAX_LAYERS; l++) {
    free(n->act[l]);
    free(n->drop[l]);
    free(n->mask[l]);
  }
  free(n->delta[0]);
  free(n->delta[1]);
}

static void lenet_alloc(const pd_model *m, replica *r) {
  lenet *n = &r->lenet;
  const int *shape = m->spec.input_shape;
  int channels = shape[0], height = shape[1], width = shape[2];
  int batch = PD_MIN(r->rows, LENET_MICRO_BATCH);
  size_t rows = (size_t)batch;
  n->micro = batch;
  if (r->rows > batch)
    n->grad_part = scratch(m->num_params);
  pd__conv_init(&n->conv1, channels, height, width, LENET_FILTERS1, LENET_KERNEL, LENET_PAD);
  pd__conv_init(&n->conv2, LENET_FILTERS1, height / 2, width / 2, LENET_FILTERS2, LENET_KERNEL,
                LENET_PAD);
  size_t plane0 = (size_t)height * (size_t)width;
  n->plane1 = plane0 / 4;
  n->plane2 = plane0 / 16;
  n->flat = (size_t)LENET_FILTERS2 * n->plane2;
  n->input = scratch(rows * (size_t)channels * plane0);
  n->c1 = scratch(rows * LENET_FILTERS1 * plane0);
  n->p1 = scratch(rows * LENET_FILTERS1 * n->plane1);
  n->arg1 = pd_xmalloc(rows * LENET_FILTERS1 * n->plane1);
  n->c2 = scratch(rows * LENET_FILTERS2 * n->plane1);
  n->p2 = scratch(rows * n->flat);
  n->arg2 = pd_xmalloc(rows * n->flat);
  n->hidden = scratch(rows * LENET_HIDDEN);
  n->mask = scratch(rows * LENET_HIDDEN);
  n->drop = scratch(rows * LENET_HIDDEN);
  n->logits = scratch(rows * (size_t)m->spec.layers[1]);
  n->d_hidden = scratch(rows * LENET_HIDDEN);
  n->d_p2 = scratch(rows * n->flat);
  n->d_p1 = scratch(rows * LENET_FILTERS1 * n->plane1);
}

static void lenet_free(lenet *n) {
  float *floats[] = {n->input, n->c1,   n->p1,     n->c2,       n->p2,   n->hidden,
                     n->mask,  n->drop, n->logits, n->d_hidden, n->d_p2, n->d_p1};
  for (size_t i = 0; i < PD_ARRAY_SIZE(floats); i++)
    free(floats[i]);
  free(n->arg1);
  free(n->arg2);
  free(n->grad_part);
  pd__conv_close(&n->conv1);
  pd__conv_close(&n->conv2);
}

static void replica_free(replica *r) {
  net_free(&r->net);
  lenet_free(&r->lenet);
  pd__plugin_close(&r->plugin);
  free(r->predictions);
  free(r->targets);
  free(r->labels);
  free(r->grad);
}

/* Threads 1 .. n-1 of the team: each job between two barriers. */
static void *team_main(void *arg) {
  const team_member *me = arg;
  pd_model *m = me->model;
  team *tm = &m->team;
  int thread = me->index;
  pd__kernels_thread_init();
  for (;;) {
    pthread_barrier_wait(&tm->barrier);
    if (!tm->job)
      break;
    tm->job(m, thread);
    pthread_barrier_wait(&tm->barrier);
  }
  return NULL;
}

/* Runs job(m, t) on every compute thread t (the caller is thread 0) and
 * returns when all have finished. */
static void team_run(pd_model *m, void (*job)(pd_model *m, int thread)) {
  team *tm = &m->team;
  if (m->nthreads == 1) {
    job(m, 0);
    return;
  }
  tm->job = job;
  pthread_barrier_wait(&tm->barrier);
  job(m, 0);
  pthread_barrier_wait(&tm->barrier);
}

/* Inside a job: waits until every thread has got here. */
static void team_sync(pd_model *m) {
  if (m->nthreads > 1)
    pthread_barrier_wait(&m->team.barrier);
}

static void team_start(pd_model *m) {
  team *tm = &m->team;
  tm->n = m->nthreads;
  tm->threads = pd_xcalloc((size_t)tm->n, sizeof *tm->threads);
  tm->members = pd_xcalloc((size_t)tm->n, sizeof *tm->members);
  PD_ASSERT(pthread_barrier_init(&tm->barrier, NULL, (unsigned)tm->n) == 0);
  for (int i = 1; i < tm->n; i++) {
    tm->members[i] = (team_member){m, i};
    PD_ASSERT(pthread_create(&tm->threads[i], NULL, team_main, &tm->members[i]) == 0);
  }
}

static void team_stop(pd_model *m) {
  team *tm = &m->team;
  if (!tm->threads)
    return;
  tm->job = NULL;
  pthread_barrier_wait(&tm->barrier);
  for (int i = 1; i < tm->n; i++)
    pthread_join(tm->threads[i], NULL);
  pthread_barrier_destroy(&tm->barrier);
  free(tm->members);
  free(tm->threads);
  memset(tm, 0, sizeof *tm);
}

pd_model *pd_model_new(const pd_model_spec *spec, int max_batch, char *err, size_t errlen) {
  PD_ASSERT(max_batch > 0);
  pd_model *m = pd_xcalloc(1, sizeof *m);
  m->spec = *spec;
  m->family = family_of(spec->type);
  m->max_batch = max_batch;
  m->nthreads = PD_MAX(1, PD_MIN(pd_kernels_threads(), max_batch));
  m->rep = pd_xcalloc((size_t)m->nthreads, sizeof *m->rep);
  int slice = (max_batch + m->nthreads - 1) / m->nthreads;
  if (m->family == FAMILY_PLUGIN) {
    int count;
    for (int t = 0; t < m->nthreads; t++)
      if (pd__plugin_open(spec, slice, &m->rep[t].plugin, err, errlen) != 0) {
        pd_model_free(m);
        return NULL;
      }
    if ((count = plugin_layout(spec, &m->rep[0].plugin, m->params, &m->num_params, err, errlen)) <
        0) {
      pd_model_free(m);
      return NULL;
    }
    m->ntensors = count;
  } else {
    m->ntensors = builtin_layout(spec, m->params, &m->num_params);
  }
  if (m->family == FAMILY_LENET)
    m->dropout = spec->dropout > 0.0 ? (float)spec->dropout : (float)LENET_DROPOUT;
  else if (spec->type == PD_MODEL_MLP)
    m->dropout = (float)spec->dropout;
  for (int t = 0; t < m->nthreads; t++) {
    replica *r = &m->rep[t];
    r->rows = slice;
    r->labels = pd_xmalloc((size_t)slice * sizeof(int));
    r->targets = scratch((size_t)slice);
    r->predictions = scratch((size_t)slice);
    if (t > 0)
      r->grad = scratch(m->num_params);
    if (m->family == FAMILY_NET)
      net_alloc(m, r);
    else if (m->family == FAMILY_LENET)
      lenet_alloc(m, r);
  }
  if (m->nthreads > 1)
    team_start(m);
  return m;
}

void pd_model_free(pd_model *model) {
  if (!model)
    return;
  team_stop(model);
  for (int t = 0; t < model->nthreads; t++)
    replica_free(&model->rep[t]);
  free(model->rep);
  free(model);
}

/* ---------------------------------------------------------------- the batch */

static int is_dense(const pd_dataset *d) {
  PD_ASSERT(d->features || (d->row_ptr && d->col_idx && d->values));
  return d->features != NULL;
}

/* Rows [begin, end) of `d`, without copying (row_ptr keeps its absolute
 * offsets into col_idx and values). */
static pd_dataset rows_of(const pd_dataset *d, uint64_t begin, uint64_t end) {
  pd_dataset v = *d;
  v.rows = end - begin;
  v.owned = 0;
  if (d->features)
    v.features = d->features + begin * d->cols;
  if (d->row_ptr)
    v.row_ptr = d->row_ptr + begin;
  if (d->labels)
    v.labels = d->labels + begin;
  if (d->targets)
    v.targets = d->targets + begin;
  return v;
}

/* The class of row r: its label, else its target. */
static int class_of(const pd_dataset *d, uint64_t r) {
  PD_ASSERT(d->labels || d->targets);
  return d->labels ? d->labels[r] : (int)d->targets[r];
}

/* The regression target of row r: its target, else its label. */
static float target_of(const pd_dataset *d, uint64_t r) {
  PD_ASSERT(d->labels || d->targets);
  return d->targets ? d->targets[r] : (float)d->labels[r];
}

/* ---------------------------------------------------------------- affine nets */

/* Fills act[1..L] for the rows of `x`, rows [first, first + x->rows) of the
 * call's batch; with dropout when `stream` is not UINT64_MAX. Returns the
 * outputs (act[L]). */
static float *net_forward(const pd_model *m, replica *r, const float *params, const pd_dataset *x,
                          uint64_t stream, uint64_t first) {
  const int *width = m->spec.layers;
  int L = m->spec.nlayers - 1, rows = (int)x->rows;
  const float *input = x->features;
  for (int l = 0; l < L; l++) {
    const float *weight = params + m->params[2 * l].offset;
    const float *bias = params + m->params[2 * l + 1].offset;
    float *z = r->net.act[l + 1];
    if (l == 0 && !is_dense(x))
      pd__affine_forward_sparse(x, weight, bias, width[1], z);
    else
      pd__affine_forward(input, rows, width[l], weight, bias, width[l + 1], z);
    input = z;
    if (l + 1 == L)
      break;
    size_t n = (size_t)rows * (size_t)width[l + 1];
    pd__activation_forward(m->spec.activation, z, n);
    if (m->dropout > 0.0f && stream != UINT64_MAX) {
      float *mask = r->net.mask[l + 1], *drop = r->net.drop[l + 1];
      pd__dropout_mask(m->seed, stream * PD_MAX_LAYERS + (uint64_t)l, m->dropout,
                       first * (uint64_t)width[l + 1], mask, n);
      memcpy(drop, z, n * sizeof(float));
      pd__dropout_apply(drop, mask, n);
      input = drop;
    }
  }
  return r->net.act[L];
}

/* Backward from `delta` = d(mean loss)/d(outputs) (act[L], overwritten). */
static void net_backward(const pd_model *m, replica *r, const float *params, const pd_dataset *x,
                         int dropped, float *grad) {
  const int *width = m->spec.layers;
  int L = m->spec.nlayers - 1, rows = (int)x->rows;
  float *delta = r->net.act[L];
  for (int l = L - 1; l >= 0; l--) {
    const float *weight = params + m->params[2 * l].offset;
    float *grad_weight = grad + m->params[2 * l].offset;
    float *grad_bias = grad + m->params[2 * l + 1].offset;
    if (l == 0 && !is_dense(x)) {
      pd__affine_backward_sparse(x, width[1], delta, grad_weight, grad_bias);
      break;
    }
    const float *input = l == 0 ? x->features : dropped ? r->net.drop[l] : r->net.act[l];
    float *prev = l == 0 ? NULL : r->net.delta[l & 1];
    pd__affine_backward(input, rows, width[l], weight, width[l + 1], delta, grad_weight, grad_bias,
                        prev);
    if (l == 0)
      break;
    size_t n = (size_t)rows * (size_t)width[l];
    if (dropped)
      pd__dropout_apply(prev, r->net.mask[l], n);
    pd__activation_backward(m->spec.activation, prev, r->net.act[l], n);
    delta = prev;
  }
}

/* ---------------------------------------------------------------- lenet */

/* The batch as NCHW rows: the dense rows themselves, or sparse rows made
 * dense in n->input. */
static const float *lenet_input(const pd_model *m, replica *r, const pd_dataset *x) {
  if (is_dense(x))
    return x->features;
  lenet *n = &r->lenet;
  size_t cols = (size_t)m->spec.layers[0], rows = x->rows;
  memset(n->input, 0, rows * cols * sizeof(float));
  for (size_t row = 0; row < rows; row++)
    for (uint64_t p = x->row_ptr[row]; p < x->row_ptr[row + 1]; p++) {
      uint32_t col = x->col_idx[p];
      PD_ASSERT(col < x->cols);
      n->input[row * cols + col] = x->values[p];
    }
  return n->input;
}

/* Forward pass of rows [first, first + x->rows) of the call's batch; dropout
 * when `stream` is not UINT64_MAX. Returns the logits. Max-pooling comes
 * before the relu: max and relu commute, and the pooled planes are 4 times
 * smaller. */
static float *lenet_forward(const pd_model *m, replica *r, const float *params, const pd_dataset *x,
                            uint64_t stream, uint64_t first) {
  lenet *n = &r->lenet;
  const pd_param_info *t = m->params;
  int rows = (int)x->rows, classes = m->spec.layers[1];
  const float *input = lenet_input(m, r, x);
  size_t planes1 = (size_t)LENET_FILTERS1 * (size_t)rows;
  size_t planes2 = (size_t)LENET_FILTERS2 * (size_t)rows;
  pd__conv_forward(&n->conv1, input, rows, params + t[0].offset, params + t[1].offset, n->c1);
  pd__maxpool2_forward(n->c1, planes1, n->conv1.out_height, n->conv1.out_width, n->p1, n->arg1);
  pd__activation_forward(PD_ACT_RELU, n->p1, planes1 * n->plane1);
  pd__conv_forward(&n->conv2, n->p1, rows, params + t[2].offset, params + t[3].offset, n->c2);
  pd__maxpool2_forward(n->c2, planes2, n->conv2.out_height, n->conv2.out_width, n->p2, n->arg2);
  pd__activation_forward(PD_ACT_RELU, n->p2, planes2 * n->plane2);
  pd__affine_forward(n->p2, rows, (int)n->flat, params + t[4].offset, params + t[5].offset,
                     LENET_HIDDEN, n->hidden);
  size_t hidden = (size_t)rows * LENET_HIDDEN;
  pd__activation_forward(PD_ACT_RELU, n->hidden, hidden);
  const float *fc2_input = n->hidden;
  if (stream != UINT64_MAX && m->dropout > 0.0f) {
    pd__dropout_mask(m->seed, stream * PD_MAX_LAYERS, m->dropout, first * LENET_HIDDEN, n->mask,
                     hidden);
    memcpy(n->drop, n->hidden, hidden * sizeof(float));
    pd__dropout_apply(n->drop, n->mask, hidden);
    fc2_input = n->drop;
  }
  pd__affine_forward(fc2_input, rows, LENET_HIDDEN, params + t[6].offset, params + t[7].offset,
                     classes, n->logits);
  return n->logits;
}

/* Backward from d(mean loss)/d(logits) in n->logits. The conv outputs c1, c2
 * are not needed any more and take their own gradients. */
static void lenet_backward(const pd_model *m, replica *r, const float *params, const pd_dataset *x,
                           int dropped, float *grad) {
  lenet *n = &r->lenet;
  const pd_param_info *t = m->params;
  int rows = (int)x->rows, classes = m->spec.layers[1];
  size_t hidden = (size_t)rows * LENET_HIDDEN;
  size_t planes1 = (size_t)LENET_FILTERS1 * (size_t)rows;
  size_t planes2 = (size_t)LENET_FILTERS2 * (size_t)rows;
  pd__affine_backward(dropped ? n->drop : n->hidden, rows, LENET_HIDDEN, params + t[6].offset,
                      classes, n->logits, grad + t[6].offset, grad + t[7].offset, n->d_hidden);
  if (dropped)
    pd__dropout_apply(n->d_hidden, n->mask, hidden);
  pd__activation_backward(PD_ACT_RELU, n->d_hidden, n->hidden, hidden);
  pd__affine_backward(n->p2, rows, (int)n->flat, params + t[4].offset, LENET_HIDDEN, n->d_hidden,
                      grad + t[4].offset, grad + t[5].offset, n->d_p2);
  pd__activation_backward(PD_ACT_RELU, n->d_p2, n->p2, planes2 * n->plane2);
  pd__maxpool2_backward(n->d_p2, n->arg2, planes2, n->conv2.out_height, n->conv2.out_width, n->c2);
  pd__conv_backward(&n->conv2, n->p1, rows, params + t[2].offset, n->c2, grad + t[2].offset,
                    grad + t[3].offset, n->d_p1);
  pd__activation_backward(PD_ACT_RELU, n->d_p1, n->p1, planes1 * n->plane1);
  pd__maxpool2_backward(n->d_p1, n->arg1, planes1, n->conv1.out_height, n->conv1.out_width, n->c1);
  /* the input is the same as in the forward pass (lenet_input is pure) */
  const float *input = is_dense(x) ? x->features : n->input;
  pd__conv_backward(&n->conv1, input, rows, params + t[0].offset, n->c1, grad + t[0].offset,
                    grad + t[1].offset, NULL);
}

/* ---------------------------------------------------------------- loss */

/* The loss of the model's outputs `out` for the rows of `x`: adds to `sums`
 * (may be NULL) and overwrites `out` with grad_scale x d(row loss)/d(out). */
static double loss_of(const pd_model *m, replica *r, float *out, const pd_dataset *x,
                      float grad_scale, eval_sums *sums) {
  int rows = (int)x->rows;
  uint64_t correct = 0;
  double sq_err = 0.0, loss;
  switch (m->spec.type) {
  case PD_MODEL_LINREG:
    for (int i = 0; i < rows; i++)
      r->targets[i] = target_of(x, (uint64_t)i);
    loss = pd__squared_loss(out, rows, r->targets, grad_scale, &sq_err);
    break;
  case PD_MODEL_LOGREG:
    for (int i = 0; i < rows; i++) {
      if (x->labels)
        PD_ASSERT(x->labels[i] <= 1);
      r->targets[i] = x->labels ? (float)x->labels[i] : x->targets[i] > 0.5f ? 1.0f : 0.0f;
    }
    loss = pd__logistic_loss(out, rows, r->targets, grad_scale, &correct);
    break;
  default:
    for (int i = 0; i < rows; i++)
      r->labels[i] = class_of(x, (uint64_t)i);
    loss = pd__softmax_ce(out, rows, m->spec.layers[m->spec.nlayers - 1], r->labels, grad_scale,
                          &correct);
    break;
  }
  if (sums) {
    sums->loss += loss;
    sums->correct += correct;
    sums->sq_err += sq_err;
  }
  return loss;
}

/* ---------------------------------------------------------------- gradient, evaluation */

/* Thread t's slice of the call's batch: rows [first, first + count). */
static void slice_of(const pd_model *m, int t, replica *r) {
  uint64_t rows = m->call_data->rows, n = (uint64_t)m->nthreads;
  r->first = rows * (uint64_t)t / n;
  r->count = rows * (uint64_t)(t + 1) / n - r->first;
}

/* The gradient of thread t's slice, times its share of the batch, into
 * call_grad (thread 0) or its own buffer; then, once every thread is done,
 * thread t sums its share of the keys of all the slices' gradients. */
static void gradient_job(pd_model *m, int t) {
  replica *r = &m->rep[t];
  const pd_dataset *batch = m->call_data;
  const float *params = m->call_params;
  float *g = t == 0 ? m->call_grad : r->grad;
  slice_of(m, t, r);
  r->loss = 0.0;
  float scale = 1.0f / (float)batch->rows;
  int dropped = m->dropout > 0.0f;
  uint64_t step = m->family == FAMILY_LENET ? (uint64_t)r->lenet.micro : r->count;
  for (uint64_t first = r->first; first < r->first + r->count; first += step) {
    pd_dataset x = rows_of(batch, first, PD_MIN(r->first + r->count, first + step));
    float *part = first == r->first ? g : r->lenet.grad_part;
    if (m->family == FAMILY_PLUGIN) {
      pando_plugin_batch b = pd__plugin_batch(&x);
      r->loss =
          (double)r->plugin.api->gradient(r->plugin.handle, params, &b, part) * (double)x.rows;
    } else if (m->family == FAMILY_LENET) {
      float *out = lenet_forward(m, r, params, &x, m->call_stream, first);
      r->loss += loss_of(m, r, out, &x, scale, NULL);
      lenet_backward(m, r, params, &x, dropped, part);
    } else {
      float *out = net_forward(m, r, params, &x, m->call_stream, first);
      r->loss += loss_of(m, r, out, &x, scale, NULL);
      net_backward(m, r, params, &x, dropped, part);
    }
    if (part != g)
      for (uint64_t j = 0; j < m->num_params; j++)
        g[j] += part[j];
  }
  team_sync(m);
  if (m->nthreads == 1)
    return;
  /* plugins give the mean gradient of their slice: weigh by the slice */
  uint64_t keys = m->num_params, n = (uint64_t)m->nthreads;
  uint64_t lo = keys * (uint64_t)t / n, hi = keys * (uint64_t)(t + 1) / n;
  float *grad = m->call_grad;
  float weight0 = 1.0f;
  if (m->family == FAMILY_PLUGIN)
    weight0 = (float)m->rep[0].count * scale;
  if (m->family == FAMILY_PLUGIN && m->rep[0].count == 0)
    weight0 = 0.0f;
  for (uint64_t j = lo; j < hi; j++)
    grad[j] *= weight0;
  for (int u = 1; u < m->nthreads; u++) {
    const replica *o = &m->rep[u];
    if (o->count == 0)
      continue;
    float w = m->family == FAMILY_PLUGIN ? (float)o->count * scale : 1.0f;
    const float *src = o->grad;
    for (uint64_t j = lo; j < hi; j++)
      grad[j] += w * src[j];
  }
}

float pd_model_gradient(pd_model *model, const float *params, const pd_dataset *batch,
                        float *grad) {
  pd_model *m = model;
  PD_ASSERT(batch->rows >= 1 && batch->rows <= (uint64_t)m->max_batch);
  PD_ASSERT(batch->cols == (uint32_t)m->spec.layers[0]);
  m->call_stream = m->calls++;
  m->call_params = params;
  m->call_data = batch;
  m->call_grad = grad;
  if (m->family == FAMILY_PLUGIN && m->nthreads == 1) {
    pando_plugin_batch b = pd__plugin_batch(batch);
    return m->rep[0].plugin.api->gradient(m->rep[0].plugin.handle, params, &b, grad);
  }
  if (m->nthreads > 1 && batch->rows < (uint64_t)m->nthreads)
    memset(grad, 0, m->num_params * sizeof(float)); /* thread 0's slice may be empty */
  team_run(m, gradient_job);
  double loss = 0.0;
  for (int t = 0; t < m->nthreads; t++)
    loss += m->rep[t].loss;
  return (float)(loss / (double)batch->rows);
}

/* Thread t evaluates chunks t, t + threads, ... of the call's data. */
static void evaluate_job(pd_model *m, int t) {
  replica *r = &m->rep[t];
  const pd_dataset *data = m->call_data;
  const float *params = m->call_params;
  memset(&r->sums, 0, sizeof r->sums);
  int task = m->family == FAMILY_PLUGIN        ? r->plugin.api->task(r->plugin.handle)
             : m->spec.type == PD_MODEL_LINREG ? PANDO_PLUGIN_REGRESS
                                               : PANDO_PLUGIN_CLASSIFY;
  uint64_t chunk = (uint64_t)(m->family == FAMILY_LENET ? r->lenet.micro : r->rows);
  for (uint64_t start = chunk * (uint64_t)t; start < data->rows;
       start += chunk * (uint64_t)m->nthreads) {
    pd_dataset x = rows_of(data, start, PD_MIN(data->rows, start + chunk));
    PD_ASSERT(x.cols == (uint32_t)m->spec.layers[0]);
    if (m->family == FAMILY_PLUGIN) {
      pando_plugin_batch b = pd__plugin_batch(&x);
      float *pred = r->predictions;
      r->sums.loss +=
          (double)r->plugin.api->predict(r->plugin.handle, params, &b, pred) * (double)x.rows;
      for (uint64_t i = 0; i < x.rows; i++) {
        if (task == PANDO_PLUGIN_CLASSIFY) {
          r->sums.correct += pred[i] == (float)class_of(&x, i);
        } else {
          double diff = (double)pred[i] - (double)target_of(&x, i);
          r->sums.sq_err += diff * diff;
        }
      }
      continue;
    }
    float *logits = m->family == FAMILY_LENET ? lenet_forward(m, r, params, &x, UINT64_MAX, 0)
                                              : net_forward(m, r, params, &x, UINT64_MAX, 0);
    loss_of(m, r, logits, &x, 0.0f, &r->sums);
  }
}

void pd_model_evaluate(pd_model *model, const float *params, const pd_dataset *data, pd_eval *out) {
  pd_model *m = model;
  m->call_params = params;
  m->call_data = data;
  team_run(m, evaluate_job);
  eval_sums sums = {0};
  for (int t = 0; t < m->nthreads; t++) {
    sums.loss += m->rep[t].sums.loss;
    sums.correct += m->rep[t].sums.correct;
    sums.sq_err += m->rep[t].sums.sq_err;
  }
  int task = m->family == FAMILY_PLUGIN        ? m->rep[0].plugin.api->task(m->rep[0].plugin.handle)
             : m->spec.type == PD_MODEL_LINREG ? PANDO_PLUGIN_REGRESS
                                               : PANDO_PLUGIN_CLASSIFY;
  memset(out, 0, sizeof *out);
  if (data->rows == 0)
    return;
  double n = (double)data->rows;
  out->loss = sums.loss / n;
  if (task == PANDO_PLUGIN_REGRESS)
    out->rmse = sqrt(sums.sq_err / n);
  else
    out->accuracy = (double)sums.correct / n;
}
