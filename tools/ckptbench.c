/* ckptbench: what a checkpoint costs on this machine's disk, next to a
 * plain sequential write of the same bytes in the same run. A shard of
 * `--keys` keys (softmax, adam: parameters and two moments) is made in
 * this process, written as a checkpoint under `--dir` (pd_checkpoint_write:
 * data file, manifest, fsync of each and of their folders, CRC-32 of every
 * section), and read back and restored into a fresh shard (pd_checkpoint_read
 * with every checksum verified, pd_shard_restore), `--reps` times each; the
 * plain write is write(2) of 8 MiB blocks of the same total size, fsync and
 * close, alternating with the checkpoints (which goes first alternates too,
 * so neither always follows the other's write-back). GB/s is 1e9 bytes a second.
 * Prints human-readable lines and one "BENCH" line of key=value pairs.
 *
 *   ckptbench [--keys N] [--dir DIR] [--reps N]
 *
 * Defaults: 53687091 keys (1 GiB of BSP adam shard state at 20 bytes a key:
 * parameters, two moments, the round's sum, the step counts), DIR under
 * $TMPDIR, 3 repetitions (medians). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../services/ps-server/checkpoint.h"
#include "../services/ps-server/shard.h"
#include "pando/durable.h"
#include "pando/spec.h"
#include "pando/util.h"

#define BLOCK (8u << 20)
#define MAX_REPS 15

static pd_shard *make_shard(uint64_t keys, pd_job_spec *spec) {
  char yaml[1024], err[512] = "";
  /* softmax [inputs, 1]: inputs + 1 keys */
  snprintf(yaml, sizeof yaml,
           "name: ckptbench\n"
           "model: {type: softmax, layers: [%llu, 1], seed: 7}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 1, batch_size: 10, update: bsp, optimizer: {type: adam, lr: "
           "0.001}}\n"
           "cluster: {servers: 1, workers: 1}\n",
           (unsigned long long)(keys - 1));
  if (pd_job_spec_parse(yaml, strlen(yaml), spec, err, sizeof err) != 0) {
    fprintf(stderr, "ckptbench: spec: %s\n", err);
    return NULL;
  }
  pd_shard *s = pd_shard_new(spec, 0, keys, 1, 0, err, sizeof err);
  if (!s)
    fprintf(stderr, "ckptbench: shard: %s\n", err);
  return s;
}

/* write(2) of `bytes` in 8 MiB blocks to DIR/plain, fsync, close; the
 * seconds it took, or -1. */
static double plain_write(const char *dir, uint64_t bytes, const char *block) {
  char path[1100];
  snprintf(path, sizeof path, "%s/plain", dir);
  double t0 = pd_now();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return -1;
  for (uint64_t done = 0; done < bytes;) {
    size_t n = (size_t)PD_MIN((uint64_t)BLOCK, bytes - done);
    ssize_t w = write(fd, block, n);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    done += (uint64_t)w;
  }
  int rc = fsync(fd);
  close(fd);
  double t = pd_now() - t0;
  unlink(path);
  return rc == 0 ? t : -1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

int main(int argc, char **argv) {
  uint64_t keys = 53687091;
  int reps = 3;
  char dir[1024] = "";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--keys") == 0)
      keys = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--dir") == 0)
      pd_strlcpy(dir, argv[i + 1], sizeof dir);
    else if (strcmp(argv[i], "--reps") == 0)
      reps = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: ckptbench [--keys N] [--dir DIR] [--reps N]\n");
      return 2;
    }
  }
  if (keys < 2 || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "ckptbench: --keys must be >= 2, --reps 1 to %d\n", MAX_REPS);
    return 2;
  }
  int made_dir = dir[0] == '\0';
  if (made_dir) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ckptbench.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
      perror("ckptbench: mkdtemp");
      return 1;
    }
  }
  pd_job_spec spec;
  fprintf(stderr, "ckptbench: making a shard of %llu keys (adam)\n", (unsigned long long)keys);
  pd_shard *shard = make_shard(keys, &spec);
  pd_shard *fresh = make_shard(keys, &spec);
  if (!shard || !fresh)
    return 1;
  pd_shard_snapshot *snap = pd_shard_snapshot_take(shard);
  const pd_shard_section *sections;
  size_t nsections = pd_shard_snapshot_sections(snap, &sections);
  uint64_t bytes = 0;
  for (size_t i = 0; i < nsections; i++)
    bytes += sections[i].bytes;
  char *block = pd_xmalloc(BLOCK);
  for (size_t i = 0; i < BLOCK; i++)
    block[i] = (char)(i * 131u);
  double ckpt[MAX_REPS], plain[MAX_REPS], restore[MAX_REPS];
  char err[1024];
  for (int r = 0; r < reps; r++) {
    pd_checkpoint_key key = {.id = (uint64_t)r + 1, .begin = 0, .end = keys, .num_workers = 1};
    pd_strlcpy(key.job, "ckptbench", sizeof key.job);
    fprintf(stderr, "ckptbench: run %d of %d\n", r + 1, reps);
    if (r % 2)
      plain[r] = plain_write(dir, bytes, block);
    double t0 = pd_now();
    if (pd_checkpoint_write(dir, &key, snap, err, sizeof err) != 0) {
      fprintf(stderr, "ckptbench: checkpoint: %s\n", err);
      return 1;
    }
    ckpt[r] = pd_now() - t0;
    if (r % 2 == 0)
      plain[r] = plain_write(dir, bytes, block);
    if (plain[r] < 0) {
      perror("ckptbench: plain write");
      return 1;
    }
    t0 = pd_now();
    pd_checkpoint_data data;
    if (pd_checkpoint_read(dir, &key, &data, err, sizeof err) != 0 ||
        pd_shard_restore(fresh, data.sections, data.nsections, err, sizeof err) != 0) {
      fprintf(stderr, "ckptbench: restore: %s\n", err);
      return 1;
    }
    restore[r] = pd_now() - t0;
    pd_checkpoint_data_close(&data);
    pd_checkpoint_prune(dir, "ckptbench", 1);
  }
  double c = median(ckpt, reps), p = median(plain, reps), rs = median(restore, reps);
  printf("shard of %llu keys (adam), %.2f GiB of state in %zu sections\n", (unsigned long long)keys,
         (double)bytes / (1u << 30), nsections);
  printf("checkpoint write (durable, checksummed): %.3f s, %.2f GB/s\n", c,
         (double)bytes / c / 1e9);
  printf("plain sequential write + fsync:          %.3f s, %.2f GB/s\n", p,
         (double)bytes / p / 1e9);
  printf("checkpoint / plain bandwidth: %.2f\n", p / c);
  printf("read back, verified and restored:        %.3f s, %.2f GB/s\n", rs,
         (double)bytes / rs / 1e9);
  printf("BENCH kind=checkpoint keys=%llu bytes=%llu reps=%d ckpt_s=%.4f plain_s=%.4f "
         "restore_s=%.4f ratio=%.3f\n",
         (unsigned long long)keys, (unsigned long long)bytes, reps, c, p, rs, p / c);
  pd_shard_snapshot_free(snap);
  pd_shard_free(shard);
  pd_shard_free(fresh);
  free(block);
  /* the last checkpoint's folder, then the (empty) folders above it */
  char path[1200];
  pd_checkpoint_dir(dir, "ckptbench", (uint64_t)reps, path, sizeof path);
  pd_durable_remove_dir(path);
  snprintf(path, sizeof path, "%s/jobs/ckptbench", dir);
  rmdir(path);
  snprintf(path, sizeof path, "%s/jobs", dir);
  rmdir(path);
  if (made_dir)
    rmdir(dir);
  return 0;
}
