/* Gradient throughput of a job spec's model on its own training data, one
 * thread: `gradbench SPEC.yaml [BATCH] [SECONDS]` computes pd_model_gradient
 * on consecutive batches (batch 64 by default) for about SECONDS (default 3)
 * and prints samples/s, as text and as a "BENCH grad ..." line. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/dataset.h"
#include "pando/fileio.h"
#include "pando/model.h"
#include "pando/util.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gradbench SPEC.yaml [BATCH] [SECONDS]\n");
    return 2;
  }
  int batch = argc > 2 ? atoi(argv[2]) : 64;
  double seconds = argc > 3 ? atof(argv[3]) : 3;
  char err[1024];
  uint8_t *text = NULL;
  size_t len = 0;
  pd_job_spec spec;
  pd_dataset data = {0};
  openblas_set_num_threads(1);
  if (pd_read_file(argv[1], &text, &len, err, sizeof err) != 0 ||
      pd_job_spec_parse((const char *)text, len, &spec, err, sizeof err) != 0 ||
      pd_dataset_load(&spec, 0, &data, err, sizeof err) != 0) {
    fprintf(stderr, "gradbench: %s\n", err);
    return 1;
  }
  free(text);
  pd_model *model = pd_model_new(&spec.model, batch, err, sizeof err);
  if (!model) {
    fprintf(stderr, "gradbench: %s\n", err);
    return 1;
  }
  uint64_t keys = pd_model_num_params(model);
  float *params = pd_xmalloc_aligned(keys * sizeof(float));
  float *grad = pd_xmalloc_aligned(keys * sizeof(float));
  if (pd_model_init_range(&spec.model, 0, keys, params, err, sizeof err) != 0) {
    fprintf(stderr, "gradbench: %s\n", err);
    return 1;
  }
  uint64_t batches = data.rows / (uint64_t)batch, done = 0;
  double sink = 0, t0 = pd_now(), warm = t0 + seconds / 10;
  uint64_t counted = 0;
  double start = 0;
  for (uint64_t i = 0;; i++) {
    pd_dataset b = pd_dataset_view(&data, (i % batches) * batch, (i % batches + 1) * batch);
    sink += pd_model_gradient(model, params, &b, grad);
    double now = pd_now();
    if (!start && now >= warm) /* the first batches warm caches and page in memory */
      start = now;
    else if (start)
      counted += (uint64_t)batch;
    if (start && now - start >= seconds)
      break;
    done++;
  }
  double sps = counted / (pd_now() - start);
  printf("%s: %.0f samples/s (gradient of batch %d, 1 thread, %llu parameters)\n", spec.name, sps,
         batch, (unsigned long long)keys);
  printf("BENCH grad model=%s samples_per_sec=%.0f batch=%d params=%llu loss_sink=%g\n", spec.name,
         sps, batch, (unsigned long long)keys, sink / (double)(done + 1));
  free(params);
  free(grad);
  pd_model_free(model);
  pd_dataset_close(&data);
  return 0;
}
