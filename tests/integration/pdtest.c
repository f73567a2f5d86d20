/* Helper program of the integration tests (not a test by itself):
 *   pdtest reference SPEC.yaml WORKERS OUT.f32
 *     trains SPEC in one process as synchronous SGD over WORKERS workers'
 *     batches (the definition BSP must match) and writes the parameters.
 *   pdtest roundtrip JOB ADDR[,ADDR...]
 *     checks pull/push through pd_psclient against the shards of JOB
 *     (created by the caller with sgd lr=1, asp) key for key.
 *   pdtest pull JOB KEYS ADDR[,ADDR...] OUT.f32
 *     pulls keys [0, KEYS) of JOB (ASP-style clock 0) into OUT.f32.
 * Like pandoctl it takes TLS and the token from PANDO_CA, PANDO_CERT,
 * PANDO_KEY and PANDO_TOKEN_FILE (set by t_tls in lib.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/dataset.h"
#include "pando/model.h"
#include "pando/plan.h"
#include "pando/psclient.h"
#include "pando/rpc.h"
#include "pando/security.h"
#include "pando/spec.h"
#include "pando/util.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = pd_xmalloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n)
    exit(2);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static int reference(const char *spec_path, int workers, const char *out_path) {
  char err[1024];
  char *yaml = slurp(spec_path);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  if (spec.training.optimizer.type != PD_OPT_SGD || spec.training.update != PD_UPDATE_BSP) {
    fprintf(stderr, "reference: only sgd with bsp\n");
    return 2;
  }
  pd_dataset all;
  if (pd_dataset_load_idx(spec.data.train.features, spec.data.train.labels, 0, UINT64_MAX, &all,
                          err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  uint32_t batch = (uint32_t)spec.training.batch_size;
  uint32_t steps =
      pd_plan_partition_steps(all.rows, (uint32_t)workers, PD_PARTITION_DISJOINT_CONTIGUOUS, batch);
  /* the largest batch: a worker's last batch takes the rows left */
  uint64_t max_batch = batch;
  for (int r = 0; r < workers; r++) {
    uint64_t pb, pe, b, e;
    pd_partition_contiguous(all.rows, (uint32_t)workers, (uint32_t)r, &pb, &pe);
    pd_plan_batch(pe - pb, steps, batch, steps - 1, &b, &e);
    max_batch = PD_MAX(max_batch, e - b);
  }
  pd_model *model = pd_model_new(&spec.model, (int)max_batch, err, sizeof err);
  if (!model) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  uint64_t keys = pd_model_num_params(model);
  float *x = pd_xmalloc(keys * sizeof(float));
  float *g = pd_xmalloc(keys * sizeof(float));
  float *sum = pd_xmalloc(keys * sizeof(float));
  if (pd_model_init_range(&spec.model, 0, keys, x, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  for (int epoch = 0; epoch < spec.training.epochs; epoch++) {
    for (uint32_t step = 0; step < steps; step++) {
      memset(sum, 0, keys * sizeof(float));
      for (int r = 0; r < workers; r++) {
        uint64_t pb, pe, b, e;
        pd_partition_contiguous(all.rows, (uint32_t)workers, (uint32_t)r, &pb, &pe);
        pd_plan_batch(pe - pb, steps, batch, step, &b, &e);
        pd_dataset view = all;
        view.rows = e - b;
        view.features = all.features + (pb + b) * all.cols;
        view.labels = all.labels + pb + b;
        view.targets = all.targets ? all.targets + pb + b : NULL;
        view.owned = 0;
        pd_model_gradient(model, x, &view, g);
        for (uint64_t k = 0; k < keys; k++)
          sum[k] += g[k];
      }
      for (uint64_t k = 0; k < keys; k++)
        x[k] -= (float)spec.training.optimizer.lr * (sum[k] / (float)workers);
    }
  }
  FILE *f = fopen(out_path, "wb");
  fwrite(x, sizeof(float), keys, f);
  fclose(f);
  printf("reference: %llu keys, %u steps per epoch\n", (unsigned long long)keys, steps);
  free(x);
  free(g);
  free(sum);
  pd_model_free(model);
  pd_dataset_close(&all);
  free(yaml);
  return 0;
}

/* Parses "a,b,c" into shard ranges covering [0, keys) like the coordinator. */
static int shard_ranges(const char *list, uint64_t keys, pd_shard_range *out, int cap) {
  char *copy = pd_xstrdup(list), *save = NULL;
  int n = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save))
    pd_strlcpy(out[n++].address, tok, sizeof out[0].address);
  free(copy);
  uint64_t begin[16], end[16];
  pd_plan_shards(keys, (uint32_t)n, begin, end);
  for (int i = 0; i < n; i++) {
    out[i].begin = begin[i];
    out[i].end = end[i];
  }
  return n;
}

static int roundtrip(const char *job, const char *spec_path, const char *list) {
  char err[1024];
  char *yaml = slurp(spec_path);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  uint64_t keys;
  if (pd_model_layout(&spec.model, NULL, 0, &keys, err, sizeof err) < 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  pd_shard_range ranges[16];
  int n = shard_ranges(list, keys, ranges, 16);
  /* a chunk size that does not divide the shards, so chunks and shard
   * boundaries fall in different places */
  pd_psclient *c = pd_psclient_new(job, 0, ranges, n, 4 * 1000);
  float *want = pd_xmalloc(keys * sizeof(float)), *got = pd_xmalloc(keys * sizeof(float));
  float *grad = pd_xmalloc(keys * sizeof(float));
  int failures = 0;
  if (pd_model_init_range(&spec.model, 0, keys, want, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  if (pd_psclient_pull(c, 0, keys, 0, got, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "pull: %s\n", err);
    return 1;
  }
  failures += memcmp(want, got, keys * sizeof(float)) != 0;
  printf("%s - full pull equals the seeded initialisation\n", failures ? "FAIL" : "ok");
  /* a push across every shard boundary, then sub-range pulls */
  for (uint64_t k = 0; k < keys; k++)
    grad[k] = (float)((k % 97) * 0.25 - 12.0);
  uint64_t b = ranges[0].end - 5, e = ranges[n - 1].begin + 7;
  if (pd_psclient_push(c, b, e, 0, grad + b, err, sizeof err) != 0) {
    fprintf(stderr, "push: %s\n", err);
    return 1;
  }
  for (uint64_t k = b; k < e; k++)
    want[k] -= (float)spec.training.optimizer.lr * grad[k];
  int bad = 0;
  for (int i = 0; i < n; i++) {
    uint64_t pb = ranges[i].begin > 3 ? ranges[i].begin - 3 : 0;
    uint64_t pe = PD_MIN(ranges[i].begin + 11, keys);
    if (pd_psclient_pull(c, pb, pe, 1, got, NULL, err, sizeof err) != 0) {
      fprintf(stderr, "pull: %s\n", err);
      return 1;
    }
    bad |= memcmp(want + pb, got, (pe - pb) * sizeof(float)) != 0;
  }
  if (pd_psclient_pull(c, 0, keys, 1, got, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "pull: %s\n", err);
    return 1;
  }
  bad |= memcmp(want, got, keys * sizeof(float)) != 0;
  failures += bad;
  printf("%s - push across %d shard boundaries applied exactly once per key\n", bad ? "FAIL" : "ok",
         n - 1);
  /* the same push again (a retry) changes nothing */
  if (pd_psclient_push(c, b, e, 0, grad + b, err, sizeof err) != 0) {
    fprintf(stderr, "push: %s\n", err);
    return 1;
  }
  pd_psclient_pull(c, 0, keys, 1, got, NULL, err, sizeof err);
  bad = memcmp(want, got, keys * sizeof(float)) != 0;
  failures += bad;
  printf("%s - a retried push is not applied twice\n", bad ? "FAIL" : "ok");
  /* out of range is refused by the client */
  bad = pd_psclient_pull(c, 0, keys + 1, 1, got, NULL, err, sizeof err) == 0;
  failures += bad;
  printf("%s - pull beyond the key space is refused (%s)\n", bad ? "FAIL" : "ok", err);
  pd_psclient_free(c);
  free(want);
  free(got);
  free(grad);
  free(yaml);
  return failures ? 1 : 0;
}

static int pull(const char *job, uint64_t keys, const char *list, const char *out_path) {
  char err[1024];
  pd_shard_range ranges[16];
  int n = shard_ranges(list, keys, ranges, 16);
  pd_psclient *c = pd_psclient_new(job, 0, ranges, n, 0);
  float *x = pd_xmalloc(keys * sizeof(float));
  if (pd_psclient_pull(c, 0, keys, 0, x, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "pull: %s\n", err);
    return 1;
  }
  FILE *f = fopen(out_path, "wb");
  fwrite(x, sizeof(float), keys, f);
  fclose(f);
  free(x);
  pd_psclient_free(c);
  return 0;
}

int main(int argc, char **argv) {
  pd_rpc_init();
  int rc = 2;
  pd_security_settings security = {getenv("PANDO_CERT"),
                                   getenv("PANDO_KEY"),
                                   getenv("PANDO_CA"),
                                   getenv("PANDO_TOKEN_FILE"),
                                   NULL,
                                   0};
  char err[512];
  if (pd_security_configure(&security, err, sizeof err) != 0)
    fprintf(stderr, "pdtest: %s\n", err);
  else if (argc == 5 && strcmp(argv[1], "reference") == 0)
    rc = reference(argv[2], atoi(argv[3]), argv[4]);
  else if (argc == 5 && strcmp(argv[1], "roundtrip") == 0)
    rc = roundtrip(argv[2], argv[3], argv[4]);
  else if (argc == 6 && strcmp(argv[1], "pull") == 0)
    rc = pull(argv[2], strtoull(argv[3], NULL, 10), argv[4], argv[5]);
  else
    fprintf(stderr, "usage: see the comment at the top of tests/integration/pdtest.c\n");
  pd_rpc_shutdown();
  return rc;
}
