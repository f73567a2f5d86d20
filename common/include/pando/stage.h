/* One stage of a pipeline-parallel MLP (README "Pipelines"): a contiguous
 * range of its affine layers, run forward and backward one micro-batch at a
 * time with activations and gradients in and out, so that S workers holding
 * consecutive ranges compute together the gradient pd_model_gradient computes
 * alone. A stage reads and writes only its own keys of the job's key space. */
#ifndef PANDO_STAGE_H
#define PANDO_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "pando/dataset.h"
#include "pando/spec.h"

typedef struct pd_stage pd_stage;

/* Makes the stage of affine layers [first, last) of the MLP `spec` (layer l
 * maps width layers[l] to layers[l + 1]; 0 <= first < last <= nlayers - 1),
 * with room for `slots` micro-batches in flight (forwarded, not yet
 * backwarded) of up to `max_rows` rows each (`spec` is copied). Only mlp
 * without dropout is split into stages; another model, a bad range or
 * max_rows / slots < 1 returns NULL with a message in `err`. */
pd_stage *pd_stage_new(const pd_model_spec *spec, int first, int last, int max_rows, int slots,
                       char *err, size_t errlen);
/* Frees `stage`; NULL is a no-op. */
void pd_stage_free(pd_stage *stage);

/* The stage's keys [*begin, *end) in the job's key space: the weights and
 * biases of its layers, contiguous in the model's layout. The `params` and
 * `grad` of the calls below are these keys only (index 0 = key *begin). */
void pd_stage_keys(const pd_stage *stage, uint64_t *begin, uint64_t *end);
/* Floats per row of the stage's input (layers[first]) and of its output
 * (layers[last]): the activation tensor it receives and sends is
 * rows x width, row-major. */
int pd_stage_in_width(const pd_stage *stage);
int pd_stage_out_width(const pd_stage *stage);
/* Whether the stage holds the first layer (its input is the data) or the
 * last one (its output goes to the loss). */
int pd_stage_is_first(const pd_stage *stage);
int pd_stage_is_last(const pd_stage *stage);

/* Runs micro-batch `micro` forward into a free slot (micro % slots) and
 * returns its output, rows x out_width floats owned by the stage, valid
 * until that micro-batch's pd_stage_backward. The first stage reads the rows
 * of `x` (dense or sparse, 1 <= x->rows <= max_rows; `x` is borrowed until
 * the backward) and ignores `input`; the others copy `rows` x in_width floats
 * from `input`. After a hidden layer the activation is applied, so a stage's
 * output is the next stage's input as it is. Returns NULL when that slot
 * still holds a micro-batch (more in flight than slots), or rows is out of
 * range. */
const float *pd_stage_forward(pd_stage *stage, const float *params, uint32_t micro,
                              const pd_dataset *x, const float *input, int rows);
/* The last stage: the summed softmax cross-entropy of micro-batch `micro`'s
 * output against `labels` (one per row, < classes), turning the output into
 * grad_scale x its gradient (grad_scale = 1 / rows of the whole mini-batch
 * gives the gradient of the mini-batch's mean loss). *correct (may be NULL)
 * counts the rows classified right. */
double pd_stage_loss(pd_stage *stage, uint32_t micro, const int *labels, float grad_scale,
                     uint64_t *correct);
/* Runs micro-batch `micro` backward and frees its slot: from `dy` (rows x
 * out_width, d loss / d output; NULL at the last stage, which starts from
 * pd_stage_loss's gradient), ADDS the gradient of the stage's keys to `grad`
 * (accumulated over micro-batches: zero it at the start of a mini-batch) and
 * writes d loss / d input (rows x in_width) to `dx` unless the stage is the
 * first or `dx` is NULL. Returns 0, or -1 when `micro` is not in flight. */
int pd_stage_backward(pd_stage *stage, const float *params, uint32_t micro, const float *dy,
                      float *grad, float *dx);

/* Micro-batches in flight now, and the most there ever were since the stage
 * was made (the activation memory a schedule needs: 1F1B keeps it <= S). */
int pd_stage_in_flight(const pd_stage *stage);
int pd_stage_max_in_flight(const pd_stage *stage);

#endif
