/* A pipeline stage: affine layers [first, last) of an MLP run forward and
 * backward per micro-batch, with the layers of layers.c, exactly as
 * model.c's net_forward / net_backward run all of them; see pando/stage.h. */
#include "pando/stage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "pando/error.h"
#include "pando/model.h"
#include "pando/util.h"

/* One micro-batch in flight: its input and the outputs of its layers. */
typedef struct slot {
  int busy;
  uint32_t micro; /* the micro-batch it holds */
  int rows;
  pd_dataset x;                  /* first stage: the rows (borrowed) */
  float *input;                  /* other stages: rows x in_width, copied */
  float *act[PD_MAX_LAYERS + 1]; /* act[j]: output of layer first + j - 1 (j >= 1), after the
                                    activation when that layer is hidden */
} slot;

struct pd_stage {
  pd_model_spec spec;
  int first, last; /* affine layers [first, last) */
  int nlayers;     /* affine layers of the whole model: spec.nlayers - 1 */
  int max_rows;
  uint64_t key_begin, key_end;
  uint64_t weight_off[PD_MAX_LAYERS]; /* layer l's weights, relative to key_begin */
  uint64_t bias_off[PD_MAX_LAYERS];
  int nslots;
  slot *slots;
  float *delta[2];   /* backprop ping-pong: max_rows x widest width of the stage */
  float *layer_grad; /* one layer's weights and biases: its gradient before it is added */
  int in_flight, max_in_flight;
};

static float *scratch(size_t floats) {
  return pd_xmalloc_aligned(PD_MAX(floats, (size_t)1) * sizeof(float));
}

pd_stage *pd_stage_new(const pd_model_spec *spec, int first, int last, int max_rows, int slots,
                       char *err, size_t errlen) {
  if (spec->type != PD_MODEL_MLP || spec->dropout > 0.0) {
    pd_errf(err, errlen, -EINVAL, "pipeline stages: only an mlp without dropout is split");
    return NULL;
  }
  int L = spec->nlayers - 1;
  if (first < 0 || first >= last || last > L || max_rows < 1 || slots < 1) {
    pd_errf(err, errlen, -EINVAL,
            "pipeline stage: layers [%d, %d) of %d, %d rows, %d slots: out of range", first, last,
            L, max_rows, slots);
    return NULL;
  }
  pd_param_info info[PD_MODEL_MAX_TENSORS];
  int count = pd_model_layout(spec, info, PD_MODEL_MAX_TENSORS, NULL, err, errlen);
  if (count < 0)
    return NULL;
  PD_ASSERT(count == 2 * L);
  pd_stage *st = pd_xcalloc(1, sizeof *st);
  st->spec = *spec;
  st->first = first;
  st->last = last;
  st->nlayers = L;
  st->max_rows = max_rows;
  st->key_begin = info[2 * first].offset;
  st->key_end = info[2 * last - 1].offset + info[2 * last - 1].size;
  const int *width = spec->layers;
  size_t widest = 1, largest_layer = 1, rows = (size_t)max_rows;
  for (int l = first; l < last; l++) {
    st->weight_off[l] = info[2 * l].offset - st->key_begin;
    st->bias_off[l] = info[2 * l + 1].offset - st->key_begin;
    largest_layer = PD_MAX(largest_layer, (size_t)(info[2 * l].size + info[2 * l + 1].size));
  }
  for (int l = first; l <= last; l++)
    widest = PD_MAX(widest, (size_t)width[l]);
  st->nslots = slots;
  st->slots = pd_xcalloc((size_t)slots, sizeof *st->slots);
  for (int i = 0; i < slots; i++) {
    slot *s = &st->slots[i];
    if (first > 0)
      s->input = scratch(rows * (size_t)width[first]);
    for (int l = first; l < last; l++)
      s->act[l - first + 1] = scratch(rows * (size_t)width[l + 1]);
  }
  st->delta[0] = scratch(rows * widest);
  st->delta[1] = scratch(rows * widest);
  st->layer_grad = scratch(largest_layer);
  return st;
}

void pd_stage_free(pd_stage *stage) {
  if (!stage)
    return;
  for (int i = 0; i < stage->nslots; i++) {
    free(stage->slots[i].input);
    for (int j = 0; j <= PD_MAX_LAYERS; j++)
      free(stage->slots[i].act[j]);
  }
  free(stage->slots);
  free(stage->delta[0]);
  free(stage->delta[1]);
  free(stage->layer_grad);
  free(stage);
}

void pd_stage_keys(const pd_stage *stage, uint64_t *begin, uint64_t *end) {
  *begin = stage->key_begin;
  *end = stage->key_end;
}

int pd_stage_in_width(const pd_stage *stage) { return stage->spec.layers[stage->first]; }
int pd_stage_out_width(const pd_stage *stage) { return stage->spec.layers[stage->last]; }
int pd_stage_is_first(const pd_stage *stage) { return stage->first == 0; }
int pd_stage_is_last(const pd_stage *stage) { return stage->last == stage->nlayers; }
int pd_stage_in_flight(const pd_stage *stage) { return stage->in_flight; }
int pd_stage_max_in_flight(const pd_stage *stage) { return stage->max_in_flight; }

/* The slot holding micro-batch `micro`, or NULL. */
static slot *held(pd_stage *st, uint32_t micro) {
  slot *s = &st->slots[micro % (uint32_t)st->nslots];
  return s->busy && s->micro == micro ? s : NULL;
}

const float *pd_stage_forward(pd_stage *stage, const float *params, uint32_t micro,
                              const pd_dataset *x, const float *input, int rows) {
  pd_stage *st = stage;
  slot *s = &st->slots[micro % (uint32_t)st->nslots];
  const int *width = st->spec.layers;
  if (s->busy)
    return NULL;
  if (st->first == 0) {
    if (!x || x->rows < 1 || x->rows > (uint64_t)st->max_rows || x->cols != (uint32_t)width[0])
      return NULL;
    s->x = *x;
    rows = (int)x->rows;
  } else {
    if (!input || rows < 1 || rows > st->max_rows)
      return NULL;
    memcpy(s->input, input, (size_t)rows * (size_t)width[st->first] * sizeof(float));
  }
  s->busy = 1;
  s->micro = micro;
  s->rows = rows;
  st->in_flight++;
  st->max_in_flight = PD_MAX(st->max_in_flight, st->in_flight);
  const float *in = st->first == 0 ? s->x.features : s->input;
  for (int l = st->first; l < st->last; l++) {
    const float *weight = params + st->weight_off[l];
    const float *bias = params + st->bias_off[l];
    float *z = s->act[l - st->first + 1];
    if (l == 0 && !s->x.features)
      pd__affine_forward_sparse(&s->x, weight, bias, width[1], z);
    else
      pd__affine_forward(in, rows, width[l], weight, bias, width[l + 1], z);
    if (l + 1 < st->nlayers)
      pd__activation_forward(st->spec.activation, z, (size_t)rows * (size_t)width[l + 1]);
    in = z;
  }
  return in;
}

double pd_stage_loss(pd_stage *stage, uint32_t micro, const int *labels, float grad_scale,
                     uint64_t *correct) {
  slot *s = held(stage, micro);
  PD_ASSERT(s && pd_stage_is_last(stage));
  return pd__softmax_ce(s->act[stage->last - stage->first], s->rows,
                        stage->spec.layers[stage->last], labels, grad_scale, correct);
}

/* grad[0 .. n) += part[0 .. n). */
static void add_into(float *restrict grad, const float *restrict part, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    grad[i] += part[i];
}

int pd_stage_backward(pd_stage *stage, const float *params, uint32_t micro, const float *dy,
                      float *grad, float *dx) {
  pd_stage *st = stage;
  slot *s = held(st, micro);
  if (!s)
    return -1;
  const int *width = st->spec.layers;
  int rows = s->rows, top = st->last - st->first;
  float *delta = s->act[top];
  if (!pd_stage_is_last(st)) {
    /* dy is d loss / d (our output after its activation) */
    size_t n = (size_t)rows * (size_t)width[st->last];
    delta = st->delta[st->last & 1];
    memcpy(delta, dy, n * sizeof(float));
    pd__activation_backward(st->spec.activation, delta, s->act[top], n);
  }
  for (int l = st->last - 1; l >= st->first; l--) {
    const float *weight = params + st->weight_off[l];
    uint64_t weights = (uint64_t)width[l] * (uint64_t)width[l + 1];
    float *grad_weight = st->layer_grad, *grad_bias = st->layer_grad + weights;
    if (l == 0 && !s->x.features) {
      pd__affine_backward_sparse(&s->x, width[1], delta, grad_weight, grad_bias);
    } else {
      const float *input = l > st->first    ? s->act[l - st->first]
                           : st->first == 0 ? s->x.features
                                            : s->input;
      float *prev = l > st->first ? st->delta[l & 1] : st->first > 0 ? dx : NULL;
      pd__affine_backward(input, rows, width[l], weight, width[l + 1], delta, grad_weight,
                          grad_bias, prev);
      if (l > st->first) {
        pd__activation_backward(st->spec.activation, prev, s->act[l - st->first],
                                (size_t)rows * (size_t)width[l]);
        delta = prev;
      }
    }
    add_into(grad + st->weight_off[l], grad_weight, weights);
    add_into(grad + st->bias_off[l], grad_bias, (uint64_t)width[l + 1]);
  }
  s->busy = 0;
  st->in_flight--;
  return 0;
}
