/* Planning decisions of pipeline model parallelism (README "Pipelines"), as
 * pure functions shared by the coordinator, pandoctl explain and the
 * workers: which layers each of the S stages holds, how a mini-batch is cut
 * into micro-batches, and in which order a stage runs their forward and
 * backward passes (GPipe, Huang et al., NeurIPS 2019; 1F1B as PipeDream-Flush,
 * Narayanan et al., SOSP 2019). */
#ifndef PANDO_PIPELINE_H
#define PANDO_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

/* Estimated floating-point operations per row of affine layer l (0-based,
 * layers[l] -> layers[l + 1]) in a training step: 2 fan_in fan_out for the
 * forward product, twice that for the backward (weights and input). */
double pd_pipeline_layer_flops(const pd_model_spec *spec, int layer);

/* Splits the model's nlayers - 1 affine layers into `stages` consecutive
 * non-empty groups so that the largest group's estimated FLOPs is the
 * smallest possible (ties: the earliest cut points). Stage s holds layers
 * [bounds[s], bounds[s + 1]); bounds has stages + 1 entries, bounds[0] = 0,
 * bounds[stages] = nlayers - 1. Returns 0, or -EINVAL with a message when
 * there are fewer layers than stages. */
int pd_pipeline_split(const pd_model_spec *spec, int stages, int *bounds, char *err, size_t errlen);

/* Micro-batches a mini-batch of `rows` rows is cut into: min(micro_batches,
 * rows) (a last short batch of an epoch may have fewer rows than m). */
uint32_t pd_pipeline_micro_count(uint64_t rows, uint32_t micro_batches);
/* Rows [*begin, *end) of micro-batch `micro` (< count) of a mini-batch of
 * `rows` rows cut into `count` micro-batches: as equal as can be, the sizes
 * differ by at most one row. */
void pd_pipeline_micro_rows(uint64_t rows, uint32_t count, uint32_t micro, uint64_t *begin,
                            uint64_t *end);

/* One step of a stage's schedule: the forward or the backward pass of one
 * micro-batch. */
typedef struct pd_pipeline_op {
  int backward;   /* 0: forward, 1: backward */
  uint32_t micro; /* the micro-batch, 0-based */
} pd_pipeline_op;

/* Writes the 2 x micro_batches operations stage `stage` (< stages) runs in a
 * mini-batch to ops[], in order:
 *  - gpipe: F0 .. F(m-1), then B0 .. B(m-1);
 *  - 1f1b: min(S - stage - 1, m) warm-up forwards, then alternately one
 *    forward and one backward, then the remaining backwards (a stage holds
 *    at most S - stage micro-batches of activations, <= S).
 * Both run the backwards in the order 0 .. m-1, so the gradient a stage
 * accumulates over the micro-batches is the same, bit for bit; the flush
 * (all backwards done before the one push of the mini-batch) makes 1F1B's
 * update GPipe's. Returns the number of operations written. */
int pd_pipeline_schedule(enum pd_pipeline_schedule schedule, int stages, int stage,
                         uint32_t micro_batches, pd_pipeline_op *ops);
/* The most micro-batches stage `stage` has in flight under `schedule`. */
int pd_pipeline_max_in_flight(enum pd_pipeline_schedule schedule, int stages, int stage,
                              uint32_t micro_batches);

/* The ideal fraction of a stage's time spent idle in a synchronous pipeline
 * of `stages` stages and m micro-batches: (S - 1) / (m + S - 1). */
double pd_pipeline_bubble(int stages, uint32_t micro_batches);

#endif
