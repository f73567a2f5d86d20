/* psbench: measures pull/push throughput and small-call latency against
 * running pando-ps servers, through pd_psclient as a worker uses it. It
 * starts nothing itself: it creates a job directly on each server with
 * CreateShard (keys split as the coordinator splits them), checks that a
 * first pull returns the model's initial values, runs the measurements as
 * worker 0 of 1, and drops the job again.
 *
 *   psbench --servers HOST:PORT[,HOST:PORT...] [--iters N] [--warmup N]
 *           [--small-keys N] [--small-iters N] [--chunk-bytes N]
 *           [--only pull|push|small_pull|small_push] [--verbose 0|1]
 *
 * The model is a softmax of [524287 inputs, 32 classes]: 16,777,216 float32
 * keys, 64 MiB. Updates are ASP, so pulls never wait. GB/s means 1e9 bytes
 * per second. Each figure is printed as a human-readable line and as a line
 * starting with "BENCH" of key=value pairs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pando.pb-c.h"
#include "pando/model.h"
#include "pando/plan.h"
#include "pando/psclient.h"
#include "pando/rpc.h"
#include "pando/spec.h"
#include "pando/util.h"

#define MAX_SERVERS 16

typedef struct options {
  char *addresses[MAX_SERVERS];
  int nservers;
  int iters;          /* timed full pulls and pushes */
  int warmup;         /* untimed ones before them */
  int small_keys;     /* keys of a small pull/push */
  int small_iters;    /* timed small pulls and pushes */
  size_t chunk_bytes; /* pd_psclient chunk size; 0: its default */
  const char *only;   /* run only "pull", "push", "small_pull" or "small_push" */
  int verbose;        /* print every 64 MiB pull/push to stderr */
} options;

static const char spec_yaml_fmt[] =
    "name: psbench\n"
    "model: {type: softmax, layers: [524287, 32], seed: 1}\n"
    "data:\n"
    "  train: {features: /dev/null, labels: /dev/null}\n"
    "training: {epochs: 1, batch_size: 1, update: asp, optimizer: {type: sgd, lr: 1.0e-9}}\n"
    "cluster: {servers: %d, workers: 1}\n";

static void usage(void) {
  fprintf(stderr, "usage: psbench --servers HOST:PORT[,HOST:PORT...] [--iters N] [--warmup N]\n"
                  "               [--small-keys N] [--small-iters N] [--chunk-bytes N]\n"
                  "               [--only pull|push|small_pull|small_push] [--verbose 0|1]\n");
  exit(2);
}

static void parse_options(int argc, char **argv, options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->iters = 10;
  opt->warmup = 2;
  opt->small_keys = 256;
  opt->small_iters = 2000;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc)
      usage();
    const char *name = argv[i], *value = argv[i + 1];
    if (strcmp(name, "--servers") == 0) {
      char *list = pd_xstrdup(value), *save = NULL;
      for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (opt->nservers == MAX_SERVERS)
          usage();
        opt->addresses[opt->nservers++] = pd_xstrdup(tok);
      }
      free(list);
    } else if (strcmp(name, "--iters") == 0) {
      opt->iters = atoi(value);
    } else if (strcmp(name, "--warmup") == 0) {
      opt->warmup = atoi(value);
    } else if (strcmp(name, "--small-keys") == 0) {
      opt->small_keys = atoi(value);
    } else if (strcmp(name, "--small-iters") == 0) {
      opt->small_iters = atoi(value);
    } else if (strcmp(name, "--verbose") == 0) {
      opt->verbose = atoi(value);
    } else if (strcmp(name, "--only") == 0) {
      opt->only = value;
    } else if (strcmp(name, "--chunk-bytes") == 0) {
      opt->chunk_bytes = (size_t)atoll(value);
    } else {
      usage();
    }
  }
  if (opt->nservers == 0 || opt->iters < 1 || opt->warmup < 0 || opt->small_keys < 1 ||
      opt->small_iters < 1)
    usage();
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts v[0..n) and returns its q-quantile (nearest rank). */
static double quantile(double *v, int n, double q) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  int i = (int)(q * n + 0.5) - 1;
  return v[PD_MAX(0, PD_MIN(n - 1, i))];
}

static void fail(const char *what, const char *err) {
  fprintf(stderr, "psbench: %s: %s\n", what, err);
  exit(1);
}

/* Creates (drop = 0) or drops (drop = 1) the job's shard on every server. */
static void shards_rpc(const options *opt, const char *job, const char *spec_yaml,
                       const uint64_t *begin, const uint64_t *end, int drop) {
  char err[512];
  for (int i = 0; i < opt->nservers; i++) {
    pd_rpc_channel *ch = pd_rpc_channel_new(opt->addresses[i], 0);
    ProtobufCMessage *resp = NULL;
    int rc;
    if (drop) {
      Pando__V1__DropShardRequest req = PANDO__V1__DROP_SHARD_REQUEST__INIT;
      req.job = (char *)job;
      rc = pd_rpc_unary(ch, "/pando.v1.ParameterServer/DropShard", &req.base,
                        &pando__v1__drop_shard_response__descriptor, &resp, 30, NULL, err,
                        sizeof err);
    } else {
      Pando__V1__CreateShardRequest req = PANDO__V1__CREATE_SHARD_REQUEST__INIT;
      req.job = (char *)job;
      req.spec_yaml = (char *)spec_yaml;
      req.begin = begin[i];
      req.end = end[i];
      req.num_workers = 1;
      rc = pd_rpc_unary(ch, "/pando.v1.ParameterServer/CreateShard", &req.base,
                        &pando__v1__create_shard_response__descriptor, &resp, 60, NULL, err,
                        sizeof err);
    }
    if (rc != 0)
      fail(drop ? "DropShard" : "CreateShard", err);
    protobuf_c_message_free_unpacked(resp, NULL);
    pd_rpc_channel_free(ch);
  }
}

/* Times `iters` (after `warmup`) full pulls or pushes and prints GB/s. */
static void bench_bulk(pd_psclient *c, const options *opt, int push, float *buf, int64_t *clock) {
  uint64_t keys = pd_psclient_keys(c);
  double bytes = (double)keys * sizeof(float);
  double *gbps = pd_xcalloc((size_t)opt->iters, sizeof *gbps);
  char err[512];
  for (int i = 0; i < opt->warmup + opt->iters; i++) {
    double t0 = pd_now();
    int rc = push ? pd_psclient_push(c, 0, keys, (*clock)++, buf, err, sizeof err)
                  : pd_psclient_pull(c, 0, keys, 0, buf, NULL, err, sizeof err);
    double sec = pd_now() - t0;
    if (rc != 0)
      fail(push ? "push" : "pull", err);
    if (opt->verbose)
      fprintf(stderr, "%s %d: %.3f ms, %.2f GB/s\n", push ? "push" : "pull", i, sec * 1e3,
              bytes / sec / 1e9);
    if (i >= opt->warmup)
      gbps[i - opt->warmup] = bytes / sec / 1e9;
  }
  double median = quantile(gbps, opt->iters, 0.5), best = gbps[opt->iters - 1];
  const char *what = push ? "push" : "pull";
  printf("%s of %llu keys (%.0f bytes) from %d server(s) x %d: median %.2f GB/s, best %.2f GB/s "
         "(GB = 1e9 bytes)\n",
         what, (unsigned long long)keys, bytes, opt->nservers, opt->iters, median, best);
  printf("BENCH %s servers=%d bytes=%.0f iters=%d median_gbps=%.3f best_gbps=%.3f\n", what,
         opt->nservers, bytes, opt->iters, median, best);
  free(gbps);
}

/* Times `small_iters` pulls or pushes of `small_keys` keys held by the first
 * server, one at a time, and prints p50/p99 in microseconds. */
static void bench_small(pd_psclient *c, const options *opt, int push, float *buf, int64_t *clock) {
  uint64_t n = (uint64_t)opt->small_keys;
  int warmup = PD_MAX(100, opt->small_iters / 10);
  double *us = pd_xcalloc((size_t)opt->small_iters, sizeof *us);
  char err[512];
  for (int i = 0; i < warmup + opt->small_iters; i++) {
    uint64_t t0 = pd_now_ns();
    int rc = push ? pd_psclient_push(c, 0, n, (*clock)++, buf, err, sizeof err)
                  : pd_psclient_pull(c, 0, n, 0, buf, NULL, err, sizeof err);
    uint64_t ns = pd_now_ns() - t0;
    if (rc != 0)
      fail(push ? "small push" : "small pull", err);
    if (i >= warmup)
      us[i - warmup] = (double)ns / 1e3;
  }
  double p50 = quantile(us, opt->small_iters, 0.50);
  double p99 = quantile(us, opt->small_iters, 0.99);
  const char *what = push ? "small_push" : "small_pull";
  printf("%s of %llu keys from server 1 of %d, one in flight, x %d: p50 %.1f us, p99 %.1f us\n",
         push ? "push" : "pull", (unsigned long long)n, opt->nservers, opt->small_iters, p50, p99);
  printf("BENCH %s servers=%d keys=%llu iters=%d p50_us=%.1f p99_us=%.1f\n", what, opt->nservers,
         (unsigned long long)n, opt->small_iters, p50, p99);
  free(us);
}

static int wanted(const options *opt, const char *what) {
  return !opt->only || strcmp(opt->only, what) == 0;
}

/* Before anything was pushed, a pull must return the model's initial values:
 * checks the first and last chunk-sized stretch of every shard (boundaries
 * included) against pd_model_init_range. */
static void check_values(pd_psclient *c, const pd_model_spec *model, const pd_shard_range *ranges,
                         int n, float *buf) {
  uint64_t keys = pd_psclient_keys(c);
  char err[512];
  if (pd_psclient_pull(c, 0, keys, 0, buf, NULL, err, sizeof err) != 0)
    fail("pull", err);
  uint64_t span = 3u << 20; /* keys checked at each end of a shard */
  float *want = pd_xmalloc_aligned(span * sizeof(float));
  for (int i = 0; i < n; i++) {
    uint64_t len = PD_MIN(span, ranges[i].end - ranges[i].begin);
    uint64_t starts[2] = {ranges[i].begin, ranges[i].end - len};
    for (int j = 0; j < 2; j++) {
      if (pd_model_init_range(model, starts[j], starts[j] + len, want, err, sizeof err) != 0)
        fail("init", err);
      if (memcmp(want, buf + starts[j], len * sizeof(float)) != 0) {
        snprintf(err, sizeof err, "keys [%llu, %llu) differ from the model's initial values",
                 (unsigned long long)starts[j], (unsigned long long)(starts[j] + len));
        fail("check", err);
      }
    }
  }
  free(want);
}

int main(int argc, char **argv) {
  options opt;
  parse_options(argc, argv, &opt);

  char spec_yaml[sizeof spec_yaml_fmt + 16], err[512];
  snprintf(spec_yaml, sizeof spec_yaml, spec_yaml_fmt, opt.nservers);
  pd_job_spec spec;
  if (pd_job_spec_parse(spec_yaml, strlen(spec_yaml), &spec, err, sizeof err) != 0)
    fail("spec", err);
  uint64_t keys = 0;
  if (pd_model_layout(&spec.model, NULL, 0, &keys, err, sizeof err) < 0)
    fail("layout", err);
  if ((uint64_t)opt.nservers > keys || (uint64_t)opt.small_keys > keys / (uint64_t)opt.nservers)
    usage();

  uint64_t begin[MAX_SERVERS], end[MAX_SERVERS];
  pd_plan_shards(keys, (uint32_t)opt.nservers, begin, end);
  pd_shard_range ranges[MAX_SERVERS];
  for (int i = 0; i < opt.nservers; i++) {
    ranges[i].begin = begin[i];
    ranges[i].end = end[i];
    pd_strlcpy(ranges[i].address, opt.addresses[i], sizeof ranges[i].address);
  }
  char job[64];
  snprintf(job, sizeof job, "psbench-%ld", (long)getpid());

  pd_rpc_init();
  shards_rpc(&opt, job, spec_yaml, begin, end, 0);
  pd_psclient *c = pd_psclient_new(job, 0, ranges, opt.nservers, opt.chunk_bytes);
  /* Touch the buffers once so page faults are not measured. */
  float *buf = pd_xmalloc_aligned(keys * sizeof(float));
  for (uint64_t k = 0; k < keys; k++)
    buf[k] = 1e-3f;
  int64_t clock = 0;

  printf("psbench: job %s, %llu keys (softmax [524287, 32], float32), %d server(s), chunk %zu "
         "bytes\n",
         job, (unsigned long long)keys, opt.nservers,
         opt.chunk_bytes ? opt.chunk_bytes : (size_t)PD_PSCLIENT_CHUNK_BYTES);
  check_values(c, &spec.model, ranges, opt.nservers, buf);
  fflush(stdout);
  if (wanted(&opt, "pull"))
    bench_bulk(c, &opt, 0, buf, &clock);
  if (wanted(&opt, "push"))
    bench_bulk(c, &opt, 1, buf, &clock);
  if (wanted(&opt, "small_pull"))
    bench_small(c, &opt, 0, buf, &clock);
  if (wanted(&opt, "small_push"))
    bench_small(c, &opt, 1, buf, &clock);

  pd_psclient_free(c);
  shards_rpc(&opt, job, NULL, NULL, NULL, 1);
  free(buf);
  for (int i = 0; i < opt.nservers; i++)
    free(opt.addresses[i]);
  pd_rpc_shutdown();
  return 0;
}
