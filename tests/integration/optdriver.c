/* Helper program of test_optimizers.py (not a test by itself): runs the
 * optimizer and lr schedule of a job spec over a fixed sequence of
 * gradients, the way a parameter server applies them.
 *   optdriver SPEC.yaml MIN_PARTITION_ROWS PARAMS.f32 GRADS.f32 OUT.f32
 * PARAMS.f32 holds the K initial parameters, GRADS.f32 S gradients of K
 * values (little-endian float32). Clock t (0-based) is applied with the lr
 * of its epoch, split into three key ranges in an order that changes with t
 * (as chunks of a push reach a shard). Writes the S x K parameters after
 * each step to OUT.f32 and one line "CLOCK EPOCH STEP LR" per step to
 * stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/optimizer.h"
#include "pando/schedule.h"
#include "pando/spec.h"
#include "pando/util.h"

/* Reads the whole file at `path`; *size receives its length. */
static char *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = pd_xmalloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "%s: short read\n", path);
    exit(2);
  }
  buf[n] = '\0';
  fclose(f);
  *size = (size_t)n;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: optdriver SPEC.yaml MIN_PARTITION_ROWS PARAMS.f32 GRADS.f32 OUT.f32\n");
    return 2;
  }
  char err[1024];
  size_t yaml_len, params_len, grads_len;
  char *yaml = slurp(argv[1], &yaml_len);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, yaml_len, &spec, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", argv[1], err);
    return 2;
  }
  uint64_t rows = strtoull(argv[2], NULL, 10);
  float *params = (float *)slurp(argv[3], &params_len);
  float *grads = (float *)slurp(argv[4], &grads_len);
  uint64_t keys = params_len / sizeof(float);
  if (rows == 0 || keys == 0 || grads_len % params_len != 0) {
    fprintf(stderr, "optdriver: need rows >= 1 and S x K gradients for K parameters\n");
    return 2;
  }
  int64_t steps = (int64_t)(grads_len / params_len);
  FILE *out = fopen(argv[5], "wb");
  if (!out) {
    fprintf(stderr, "%s: %s\n", argv[5], strerror(errno));
    return 2;
  }
  pd_optimizer opt;
  pd_optimizer_init(&opt, &spec.training.optimizer, keys);
  for (int64_t clock = 0; clock < steps; clock++) {
    uint32_t step;
    int epoch = pd_schedule_epoch_of_clock(&spec, rows, clock, &step);
    double lr = pd_schedule_lr(&spec, epoch);
    const float *grad = grads + (uint64_t)clock * keys;
    uint64_t a = ((uint64_t)clock * 7919) % keys, b = a + (keys - a) / 3;
    uint64_t begin[3] = {b, 0, a}, end[3] = {keys, a, b};
    for (int i = 0; i < 3; i++) {
      int r = clock % 2 ? 2 - i : i;
      pd_optimizer_step(&opt, params, grad + begin[r], begin[r], end[r] - begin[r], lr);
    }
    fwrite(params, sizeof(float), keys, out);
    printf("%lld %d %u %.17g\n", (long long)clock, epoch, step, lr);
  }
  fclose(out);
  pd_optimizer_close(&opt);
  free(grads);
  free(params);
  free(yaml);
  return 0;
}
