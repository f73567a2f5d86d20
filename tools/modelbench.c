/* Measures the gradient throughput of a model (the shapes of
 * examples/fashion-lenet.yaml and fashion-mlp.yaml) on the first rows of
 * Fashion-MNIST, with THREADS compute threads (pd_kernels_set_threads):
 *   modelbench [lenet|mlp|softmax] [BATCH] [SECONDS] [THREADS]
 * prints which math runs, then "MODEL batch B, T threads: N samples/s (T ms
 * per gradient), M samples per CPU second" and the same as a "BENCH grad"
 * line: on a busy machine the CPU-second figure is the one to compare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pando/dataset.h"
#include "pando/kernels.h"
#include "pando/model.h"
#include "pando/util.h"

#define FASHION "/usr/share/datasets/fashion-mnist/"

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "lenet";
  int batch = argc > 2 ? atoi(argv[2]) : 64;
  double seconds = argc > 3 ? atof(argv[3]) : 3.0;
  int threads = argc > 4 ? atoi(argv[4]) : 1;
  pd_model_spec spec = {.nlayers = 2, .layers = {784, 10}, .activation = PD_ACT_RELU, .seed = 1};
  if (strcmp(name, "lenet") == 0) {
    spec.type = PD_MODEL_LENET;
    spec.ninput_shape = 3;
    spec.input_shape[0] = 1;
    spec.input_shape[1] = spec.input_shape[2] = 28;
  } else if (strcmp(name, "mlp") == 0) { /* examples/fashion-mlp.yaml */
    spec.type = PD_MODEL_MLP;
    spec.nlayers = 3;
    spec.layers[1] = 256;
    spec.layers[2] = 10;
  } else if (strcmp(name, "softmax") == 0) {
    spec.type = PD_MODEL_SOFTMAX;
  } else {
    fprintf(stderr, "usage: modelbench [lenet|mlp|softmax] [BATCH] [SECONDS] [THREADS]\n");
    return 2;
  }
  if (batch < 1 || seconds <= 0 || threads < 1 || threads > PD_KERNELS_MAX_THREADS) {
    fprintf(stderr, "usage: modelbench [lenet|mlp|softmax] [BATCH] [SECONDS] [THREADS]\n");
    return 2;
  }
  pd_kernels_set_threads(threads);
  printf("math: %s\n", pd_kernels_describe());
  char err[512];
  pd_dataset data;
  uint64_t rows = 4096;
  if (pd_dataset_load_idx(FASHION "train-images-idx3-ubyte.gz",
                          FASHION "train-labels-idx1-ubyte.gz", 0, rows, &data, err,
                          sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  pd_model *model = pd_model_new(&spec, batch, err, sizeof err);
  if (!model) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  uint64_t k = pd_model_num_params(model);
  float *params = pd_xmalloc_aligned(k * sizeof(float));
  float *grad = pd_xmalloc_aligned(k * sizeof(float));
  if (pd_model_init_range(&spec, 0, k, params, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  uint64_t samples = 0, calls = 0, start = 0;
  pd_dataset first = data;
  first.rows = (uint64_t)batch <= data.rows ? (uint64_t)batch : data.rows;
  first.owned = 0;
  pd_model_gradient(model, params, &first, grad); /* makes the primitives, pages memory in */
  double t0 = pd_now(), elapsed = 0, cpu0 = cpu_seconds();
  while (elapsed < seconds || calls < 3) {
    if (start + (uint64_t)batch > data.rows)
      start = 0;
    pd_dataset view = data;
    view.rows = (uint64_t)batch;
    view.features = data.features + start * data.cols;
    view.labels = data.labels + start;
    view.owned = 0;
    pd_model_gradient(model, params, &view, grad);
    start += (uint64_t)batch;
    samples += (uint64_t)batch;
    calls++;
    elapsed = pd_now() - t0;
  }
  double cpu = cpu_seconds() - cpu0;
  printf("%s batch %d, %d threads: %.0f samples/s (%.2f ms per gradient), %.0f samples per CPU "
         "second, %llu parameters\n",
         name, batch, threads, (double)samples / elapsed, elapsed / (double)calls * 1e3,
         (double)samples / cpu, (unsigned long long)k);
  printf("BENCH grad model=%s threads=%d samples_per_sec=%.0f samples_per_cpu_sec=%.0f\n", name,
         threads, (double)samples / elapsed, (double)samples / cpu);
  free(grad);
  free(params);
  pd_model_free(model);
  pd_dataset_close(&data);
  return 0;
}
