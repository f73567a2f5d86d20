/* Pipeline plans: the stage split balanced by estimated FLOPs, the cut of a
 * mini-batch into micro-batches, and the GPipe and 1F1B orders of a stage's
 * passes; see pando/pipeline.h. */
#include "pando/pipeline.h"

#include <errno.h>
#include <float.h>

#include "pando/error.h"
#include "pando/util.h"

double pd_pipeline_layer_flops(const pd_model_spec *spec, int layer) {
  PD_ASSERT(layer >= 0 && layer + 1 < spec->nlayers);
  return 6.0 * (double)spec->layers[layer] * (double)spec->layers[layer + 1];
}

int pd_pipeline_split(const pd_model_spec *spec, int stages, int *bounds, char *err,
                      size_t errlen) {
  int L = spec->nlayers - 1;
  if (stages < 1 || stages > L)
    return pd_errf(err, errlen, -EINVAL,
                   "%d stages need at least one affine layer each; the model has %d", stages, L);
  /* best[s][l]: the smallest largest-group cost of layers [0, l) in s groups;
   * cut[s][l]: where the last of those groups starts. L < PD_MAX_LAYERS. */
  double prefix[PD_MAX_LAYERS + 1] = {0};
  double best[PD_MAX_LAYERS + 1][PD_MAX_LAYERS + 1];
  int cut[PD_MAX_LAYERS + 1][PD_MAX_LAYERS + 1];
  for (int l = 0; l < L; l++)
    prefix[l + 1] = prefix[l] + pd_pipeline_layer_flops(spec, l);
  for (int l = 1; l <= L; l++) {
    best[1][l] = prefix[l];
    cut[1][l] = 0;
  }
  for (int s = 2; s <= stages; s++)
    for (int l = s; l <= L; l++) {
      best[s][l] = DBL_MAX;
      for (int c = s - 1; c < l; c++) {
        double cost = PD_MAX(best[s - 1][c], prefix[l] - prefix[c]);
        if (cost < best[s][l]) {
          best[s][l] = cost;
          cut[s][l] = c;
        }
      }
    }
  bounds[stages] = L;
  for (int s = stages, l = L; s >= 1; s--) {
    l = cut[s][l];
    bounds[s - 1] = l;
  }
  PD_ASSERT(bounds[0] == 0);
  return 0;
}

uint32_t pd_pipeline_micro_count(uint64_t rows, uint32_t micro_batches) {
  PD_ASSERT(micro_batches >= 1);
  return rows < micro_batches ? (uint32_t)rows : micro_batches;
}

void pd_pipeline_micro_rows(uint64_t rows, uint32_t count, uint32_t micro, uint64_t *begin,
                            uint64_t *end) {
  PD_ASSERT(micro < count);
  *begin = rows * micro / count;
  *end = rows * (micro + 1) / count;
}

int pd_pipeline_schedule(enum pd_pipeline_schedule schedule, int stages, int stage,
                         uint32_t micro_batches, pd_pipeline_op *ops) {
  PD_ASSERT(stage >= 0 && stage < stages);
  uint32_t m = micro_batches, forwards = 0, backwards = 0;
  int n = 0;
  uint32_t warmup = schedule == PD_PIPELINE_GPIPE ? m : PD_MIN((uint32_t)(stages - stage - 1), m);
  for (; forwards < warmup; forwards++)
    ops[n++] = (pd_pipeline_op){.backward = 0, .micro = forwards};
  for (; forwards < m; forwards++, backwards++) {
    ops[n++] = (pd_pipeline_op){.backward = 0, .micro = forwards};
    ops[n++] = (pd_pipeline_op){.backward = 1, .micro = backwards};
  }
  for (; backwards < m; backwards++)
    ops[n++] = (pd_pipeline_op){.backward = 1, .micro = backwards};
  return n;
}

int pd_pipeline_max_in_flight(enum pd_pipeline_schedule schedule, int stages, int stage,
                              uint32_t micro_batches) {
  if (schedule == PD_PIPELINE_GPIPE)
    return (int)micro_batches;
  return (int)PD_MIN((uint32_t)(stages - stage), micro_batches);
}

double pd_pipeline_bubble(int stages, uint32_t micro_batches) {
  return (double)(stages - 1) / (double)(micro_batches + (uint32_t)stages - 1);
}
