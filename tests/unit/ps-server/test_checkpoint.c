/* Unit tests of a shard's checkpoints (services/ps-server/checkpoint.c and
 * the snapshot/restore of shard.c): a shard restored from a checkpoint goes
 * on bit for bit as the original does, under BSP (also in the middle of a
 * round), backup workers and ASP, with adam and momentum state; under ASP
 * and SSP the redo from the slowest worker's clock takes what a faster
 * worker had pushed for duplicates; a federated shard resumes bit for bit
 * (server optimizer, running average, closed rounds); a snapshot
 * keeps the values of its moment while pushes go on (copy-on-write); a
 * damaged or torn checkpoint is refused with a message and the previous one
 * is used; a failed write (file size limit, a full tmpfs) leaves the
 * previous checkpoint intact. */
#include "../../../services/ps-server/checkpoint.h"
#include "../../../services/ps-server/fedagg.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

/* A softmax job of `inputs` x 2 (+ 2) keys; `training` adds keys. */
static pd_shard *make_shard(int inputs, const char *training, uint32_t workers) {
  char yaml[1024], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: ckpt-test\n"
           "model: {type: softmax, layers: [%d, 2], seed: 7}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 4, batch_size: 10, %s}\n"
           "cluster: {servers: 1, workers: %u}\n",
           inputs, training, workers);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "  spec: %s\n", err);
    return NULL;
  }
  uint32_t pushers = workers + (uint32_t)spec.training.backup_workers;
  pd_shard *s = pd_shard_new(&spec, 0, (uint64_t)inputs * 2 + 2, pushers, 0, err, sizeof err);
  if (!s)
    fprintf(stderr, "  shard: %s\n", err);
  return s;
}

static uint64_t keys_of(const pd_shard *s) { return pd_shard_end(s) - pd_shard_begin(s); }

/* A gradient that differs by worker, clock and key. */
static void gradient(uint32_t worker, int64_t clock, uint64_t n, float *out) {
  uint64_t state = ((uint64_t)worker << 40) ^ (uint64_t)clock * 7919u;
  for (uint64_t i = 0; i < n; i++)
    out[i] = (float)((double)(pd_splitmix64(&state) >> 11) / 9007199254740992.0 - 0.5);
}

/* Pushes the whole gradient of every worker for clocks [from, to), worker by
 * worker (`first_worker` starts each round), in two chunks. */
static int push_clocks(pd_shard *s, uint32_t workers, int64_t from, int64_t to) {
  uint64_t n = keys_of(s), half = n / 2;
  float *g = malloc(n * sizeof(float));
  char err[256];
  for (int64_t c = from; c < to; c++)
    for (uint32_t w = 0; w < workers; w++) {
      gradient(w, c, n, g);
      if (pd_shard_push(s, w, c, -1, 0, half, g, err, sizeof err) == PD_PUSH_REJECT ||
          pd_shard_push(s, w, c, -1, half, n - half, g + half, err, sizeof err) == PD_PUSH_REJECT) {
        fprintf(stderr, "  push rejected: %s\n", err);
        free(g);
        return -1;
      }
    }
  free(g);
  return 0;
}

static int same_values(const pd_shard *a, const pd_shard *b) {
  uint64_t n = keys_of(a);
  float *va = malloc(n * sizeof(float)), *vb = malloc(n * sizeof(float));
  pd_shard_read(a, 0, n, va);
  pd_shard_read(b, 0, n, vb);
  int same = memcmp(va, vb, n * sizeof(float)) == 0;
  free(va);
  free(vb);
  return same;
}

/* A fresh data dir for one test. */
static pd_checkpoint_key key_of(const pd_shard *s, uint64_t id) {
  pd_checkpoint_key key = {.id = id,
                           .begin = pd_shard_begin(s),
                           .end = pd_shard_end(s),
                           .num_workers = pd_shard_num_workers(s)};
  strcpy(key.job, "ckpt-test");
  return key;
}

static int write_now(const char *dir, pd_shard *s, uint64_t id) {
  char err[512] = "";
  pd_shard_snapshot *snap = pd_shard_snapshot_take(s);
  pd_checkpoint_key key = key_of(s, id);
  int rc = pd_checkpoint_write(dir, &key, snap, err, sizeof err);
  pd_shard_snapshot_free(snap);
  if (rc != 0)
    fprintf(stderr, "  write: %s\n", err);
  return rc;
}

/* Restores shard `into` from checkpoint `id`; returns 0 or the error. */
static int restore(const char *dir, pd_shard *into, uint64_t id, char *err, size_t errlen) {
  pd_checkpoint_key key = key_of(into, id);
  pd_checkpoint_data data;
  int rc = pd_checkpoint_read(dir, &key, &data, err, errlen);
  if (rc != 0)
    return rc;
  rc = pd_shard_restore(into, data.sections, data.nsections, err, errlen);
  pd_checkpoint_data_close(&data);
  return rc;
}

/* Runs `total` clocks on one shard; on another, `at` clocks, a checkpoint
 * (after `extra` pushes of clock `at` by worker 0 when mid_round), a
 * restore into a third, fresh shard and the remaining clocks there: the
 * restored shard ends with the same bits and version. */
static void check_resume(const char *training, uint32_t workers, int mid_round) {
  enum { INPUTS = 300000, AT = 3, TOTAL = 6 }; /* 600002 keys: 3 copy-on-write blocks */
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "";
  CHECK(dir != NULL);
  pd_shard *whole = make_shard(INPUTS, training, workers);
  pd_shard *first = make_shard(INPUTS, training, workers);
  pd_shard *resumed = make_shard(INPUTS, training, workers);
  CHECK(whole && first && resumed);
  uint32_t pushers = pd_shard_num_workers(whole);
  CHECK_EQ_INT(push_clocks(whole, pushers, 0, TOTAL), 0);
  CHECK_EQ_INT(push_clocks(first, pushers, 0, AT), 0);
  uint64_t n = keys_of(first);
  float *g = malloc(n * sizeof(float));
  if (mid_round) { /* worker 0's gradient of clock AT is in the checkpoint */
    gradient(0, AT, n, g);
    CHECK(pd_shard_push(first, 0, AT, -1, 0, n / 2, g, err, sizeof err) != PD_PUSH_REJECT);
    CHECK(pd_shard_push(first, 0, AT, -1, n / 2, n - n / 2, g + n / 2, err, sizeof err) !=
          PD_PUSH_REJECT);
  }
  CHECK_EQ_INT(write_now(dir, first, 1), 0);
  CHECK_EQ_INT(restore(dir, resumed, 1, err, sizeof err), 0);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(resumed)), pd_clock_version(pd_shard_clock(first)));
  CHECK(same_values(first, resumed));
  if (mid_round) {
    /* the retried push of worker 0 is a duplicate after the restore */
    CHECK_EQ_INT(pd_shard_push(resumed, 0, AT, -1, 0, n / 2, g, err, sizeof err),
                 PD_PUSH_DUPLICATE);
    for (uint32_t w = 1; w < pushers; w++) { /* the rest of the round */
      gradient(w, AT, n, g);
      CHECK(pd_shard_push(resumed, w, AT, -1, 0, n / 2, g, err, sizeof err) != PD_PUSH_REJECT);
      CHECK(pd_shard_push(resumed, w, AT, -1, n / 2, n - n / 2, g + n / 2, err, sizeof err) !=
            PD_PUSH_REJECT);
    }
    CHECK_EQ_INT(push_clocks(resumed, pushers, AT + 1, TOTAL), 0);
  } else {
    CHECK_EQ_INT(push_clocks(resumed, pushers, AT, TOTAL), 0);
  }
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(resumed)), pd_clock_version(pd_shard_clock(whole)));
  CHECK(pd_clock_version(pd_shard_clock(whole)) > 0);
  CHECK(same_values(whole, resumed));
  free(g);
  pd_shard_free(whole);
  pd_shard_free(first);
  pd_shard_free(resumed);
  pd_test_rmtree(dir);
  free(dir);
}

static void test_resume_bsp_adam(void) {
  check_resume("update: bsp, optimizer: {type: adam, lr: 0.01}", 2, 0);
}
static void test_resume_bsp_mid_round_momentum(void) {
  check_resume("update: bsp, optimizer: {type: momentum, lr: 0.1}", 2, 1);
}
static void test_resume_backup_workers(void) {
  check_resume("update: bsp, backup_workers: 1, optimizer: {type: sgd, lr: 0.1}", 2, 1);
}
static void test_resume_asp_rmsprop(void) {
  check_resume("update: asp, optimizer: {type: rmsprop, lr: 0.01}", 3, 1);
}

/* Pushes worker w's whole gradient of clock c in two chunks; returns the
 * first chunk's verdict (-1 when the two differ). */
static int push_one(pd_shard *s, uint32_t w, int64_t c) {
  uint64_t n = keys_of(s), half = n / 2;
  float *g = malloc(n * sizeof(float));
  char err[256];
  gradient(w, c, n, g);
  int a = (int)pd_shard_push(s, w, c, -1, 0, half, g, err, sizeof err);
  int b = (int)pd_shard_push(s, w, c, -1, half, n - half, g + half, err, sizeof err);
  free(g);
  return a == b ? a : -1;
}

/* ASP and SSP checkpoint at the slowest worker's clock c (ps.c): the
 * shard then holds every gradient of the clocks before c and the later ones
 * of a faster worker. Restored, both workers redo from c: the faster one's
 * gradients the shard holds are duplicates, the rest apply, and the model
 * is bit for bit that of a shard that took each gradient once, in the same
 * order. */
static void check_redo_from_slowest(const char *training) {
  enum { INPUTS = 300000, FAST = 5, SLOW = 2, TOTAL = 7 };
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "";
  CHECK(dir != NULL);
  pd_shard *whole = make_shard(INPUTS, training, 2);
  pd_shard *first = make_shard(INPUTS, training, 2);
  pd_shard *resumed = make_shard(INPUTS, training, 2);
  CHECK(whole && first && resumed);
  for (int64_t c = 0; c < FAST; c++) { /* worker 0 runs ahead */
    CHECK_EQ_INT(push_one(whole, 0, c), PD_PUSH_APPLY);
    CHECK_EQ_INT(push_one(first, 0, c), PD_PUSH_APPLY);
  }
  for (int64_t c = 0; c < SLOW; c++) {
    CHECK_EQ_INT(push_one(whole, 1, c), PD_PUSH_APPLY);
    CHECK_EQ_INT(push_one(first, 1, c), PD_PUSH_APPLY);
  }
  CHECK_EQ_INT(pd_clock_slowest(pd_shard_clock(first)), SLOW);
  CHECK_EQ_INT(write_now(dir, first, SLOW), 0);
  CHECK_EQ_INT(restore(dir, resumed, SLOW, err, sizeof err), 0);
  CHECK_EQ_INT(pd_clock_slowest(pd_shard_clock(resumed)), SLOW);
  /* the redo from the checkpoint's clock */
  for (int64_t c = SLOW; c < FAST; c++)
    CHECK_EQ_INT(push_one(resumed, 0, c), PD_PUSH_DUPLICATE);
  for (int64_t c = SLOW; c < TOTAL; c++) {
    CHECK_EQ_INT(push_one(resumed, 1, c), PD_PUSH_APPLY);
    CHECK_EQ_INT(push_one(whole, 1, c), PD_PUSH_APPLY);
  }
  for (int64_t c = FAST; c < TOTAL; c++) {
    CHECK_EQ_INT(push_one(resumed, 0, c), PD_PUSH_APPLY);
    CHECK_EQ_INT(push_one(whole, 0, c), PD_PUSH_APPLY);
  }
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(resumed)), 2 * TOTAL);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(whole)), 2 * TOTAL);
  CHECK(same_values(whole, resumed));
  pd_shard_free(whole);
  pd_shard_free(first);
  pd_shard_free(resumed);
  pd_test_rmtree(dir);
  free(dir);
}

static void test_asp_redo_from_slowest(void) {
  check_redo_from_slowest("update: asp, optimizer: {type: adam, lr: 0.01}");
}
static void test_ssp_redo_from_slowest(void) {
  check_redo_from_slowest("update: ssp, staleness: 3, optimizer: {type: momentum, lr: 0.1}");
}

/* A federated shard (fedadam's moments, the swa_from running average)
 * with round `round` committed from two devices' updates, as CommitRound
 * does (ps.c). */
static void fed_round(pd_shard *s, uint64_t round) {
  uint64_t n = keys_of(s);
  float *d = malloc(n * sizeof(float));
  char err[256];
  const char *devices[2] = {"d0", "d1"};
  for (uint32_t k = 0; k < 2; k++) {
    gradient(k, (int64_t)round, n, d);
    CHECK_EQ_INT(pd_fedagg_push(pd_shard_fed(s), devices[k], round, 10.0 + k, 0, n, d, NULL, err,
                                sizeof err),
                 PD_FED_BUFFERED);
  }
  const float *grad;
  pd_fedagg_result r;
  CHECK_EQ_INT(
      pd_fedagg_commit(pd_shard_fed(s), round, devices, 2, 0, 0, &grad, &r, err, sizeof err), 0);
  pd_optimizer_spec server;
  double lr;
  pd_fedagg_server_optimizer(pd_shard_spec(s), &server, &lr);
  pd_shard_apply(s, grad, lr);
  pd_shard_fed_average(s);
  free(d);
}

/* A federated shard checkpointed after round 3 (ps.c takes it after the
 * CommitRound of a due round) and restored goes on bit for bit: the model,
 * the server optimizer's moments, the running average and the closed round
 * id (an older round's push is late) all come back. */
static void test_resume_federated(void) {
  const char *yaml = "name: ckpt-test\n"
                     "model: {type: softmax, layers: [300000, 2], seed: 7}\n"
                     "data: {train: {features: /f, labels: /l}, partition: iid}\n"
                     "training: {update: fedavg, optimizer: {lr: 0.1}, federated: {rounds: 8, "
                     "aggregation: fedadam, "
                     "server_lr: 0.01, swa_from: 2}}\n"
                     "cluster: {servers: 1}\n";
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "";
  CHECK(dir != NULL);
  pd_job_spec spec;
  if (pd_job_spec_parse(yaml, strlen(yaml), &spec, err, sizeof err) != 0) {
    fprintf(stderr, "  spec: %s\n", err);
    CHECK(0);
    return;
  }
  pd_shard *shards[3];
  for (int i = 0; i < 3; i++) {
    shards[i] = pd_shard_new(&spec, 0, 600002, 1, 0, err, sizeof err);
    CHECK(shards[i] != NULL);
  }
  pd_shard *whole = shards[0], *first = shards[1], *resumed = shards[2];
  for (uint64_t round = 1; round <= 6; round++)
    fed_round(whole, round);
  for (uint64_t round = 1; round <= 3; round++)
    fed_round(first, round);
  CHECK_EQ_INT(write_now(dir, first, 3), 0);
  CHECK_EQ_INT(restore(dir, resumed, 3, err, sizeof err), 0);
  CHECK(same_values(first, resumed));
  CHECK_EQ_INT(pd_fedagg_stats_get(pd_shard_fed(resumed))->committed, 3);
  float one = 0;
  CHECK_EQ_INT(
      pd_fedagg_push(pd_shard_fed(resumed), "late", 3, 1, 0, 1, &one, NULL, err, sizeof err),
      PD_FED_LATE);
  for (uint64_t round = 4; round <= 6; round++)
    fed_round(resumed, round);
  CHECK(same_values(whole, resumed));
  const float *a = pd_shard_fed_served(whole), *b = pd_shard_fed_served(resumed);
  CHECK(a && b && memcmp(a, b, 600002 * sizeof(float)) == 0);
  for (int i = 0; i < 3; i++)
    pd_shard_free(shards[i]);
  pd_test_rmtree(dir);
  free(dir);
}

/* A snapshot written by the writer thread while pushes go on holds the
 * values of the moment it was taken. */
static void test_snapshot_is_copy_on_write(void) {
  enum { INPUTS = 300000 };
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "";
  CHECK(dir != NULL);
  pd_shard *s = make_shard(INPUTS, "update: asp, optimizer: {type: sgd, lr: 0.5}", 1);
  pd_shard *back = make_shard(INPUTS, "update: asp, optimizer: {type: sgd, lr: 0.5}", 1);
  CHECK(s && back);
  CHECK_EQ_INT(push_clocks(s, 1, 0, 2), 0);
  uint64_t n = keys_of(s);
  float *then = malloc(n * sizeof(float)), *now = malloc(n * sizeof(float));
  pd_shard_read(s, 0, n, then);
  pd_checkpoint_writer *writer = pd_checkpoint_writer_new(dir);
  pd_checkpoint_key key = key_of(s, 1);
  pd_checkpoint_writer_submit(writer, &key, pd_shard_snapshot_take(s), 0, NULL, NULL);
  CHECK_EQ_INT(push_clocks(s, 1, 2, 5), 0); /* while it is written */
  pd_checkpoint_writer_free(writer);
  pd_shard_read(s, 0, n, now);
  CHECK(memcmp(then, now, n * sizeof(float)) != 0);
  CHECK_EQ_INT(restore(dir, back, 1, err, sizeof err), 0);
  pd_shard_read(back, 0, n, now);
  CHECK(memcmp(then, now, n * sizeof(float)) == 0);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(back)), 2);
  free(then);
  free(now);
  pd_shard_free(s);
  pd_shard_free(back);
  pd_test_rmtree(dir);
  free(dir);
}

static void flip_byte(const char *path, long offset) {
  int fd = open(path, O_RDWR);
  unsigned char b;
  if (fd < 0 || pread(fd, &b, 1, offset) != 1)
    abort();
  b ^= 0x01;
  if (pwrite(fd, &b, 1, offset) != 1)
    abort();
  close(fd);
}

static void shard_path(const char *dir, const pd_shard *s, uint64_t id, const char *suffix,
                       char *out, size_t outlen) {
  char ckpt[512];
  pd_checkpoint_dir(dir, "ckpt-test", id, ckpt, sizeof ckpt);
  snprintf(out, outlen, "%s/shard-%llu-%llu.%s", ckpt, (unsigned long long)pd_shard_begin(s),
           (unsigned long long)pd_shard_end(s), suffix);
}

/* A flipped byte in a data file or a manifest is refused with a message
 * naming the file, and the newest checkpoint that verifies is used. */
static void test_flipped_byte_refused(void) {
  const char *training = "update: bsp, optimizer: {type: adam, lr: 0.01}";
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "", path[1024];
  CHECK(dir != NULL);
  pd_shard *s = make_shard(1000, training, 2), *back = make_shard(1000, training, 2);
  CHECK(s && back);
  CHECK_EQ_INT(push_clocks(s, 2, 0, 1), 0);
  CHECK_EQ_INT(write_now(dir, s, 1), 0);
  CHECK_EQ_INT(push_clocks(s, 2, 1, 2), 0);
  CHECK_EQ_INT(write_now(dir, s, 2), 0);
  CHECK_EQ_INT(push_clocks(s, 2, 2, 3), 0);
  CHECK_EQ_INT(write_now(dir, s, 3), 0);
  shard_path(dir, s, 3, "data", path, sizeof path);
  flip_byte(path, 3000); /* in the values */
  CHECK_EQ_INT(restore(dir, back, 3, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "checksum mismatch");
  CHECK_STR_CONTAINS(err, path);
  shard_path(dir, s, 2, "manifest", path, sizeof path);
  flip_byte(path, 30);
  CHECK_EQ_INT(restore(dir, back, 2, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, path);
  pd_checkpoint_key key = key_of(back, 0);
  pd_checkpoint_data data;
  CHECK_EQ_INT(pd_checkpoint_read_latest(dir, &key, UINT64_MAX, &data, err, sizeof err), 0);
  CHECK_EQ_INT(key.id, 1);
  CHECK_EQ_INT(data.version, 1);
  CHECK_EQ_INT(pd_shard_restore(back, data.sections, data.nsections, err, sizeof err), 0);
  pd_checkpoint_data_close(&data);
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(back)), 1);
  pd_shard_free(s);
  pd_shard_free(back);
  pd_test_rmtree(dir);
  free(dir);
}

/* A checkpoint torn by a crash (no manifest yet, a data file cut short, a
 * temporary file left over) is not used; the one before it is. */
static void test_torn_checkpoint_ignored(void) {
  const char *training = "update: bsp, optimizer: {type: sgd, lr: 0.1}";
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "", path[1024];
  CHECK(dir != NULL);
  pd_shard *s = make_shard(1000, training, 1);
  CHECK(s != NULL);
  CHECK_EQ_INT(push_clocks(s, 1, 0, 1), 0);
  CHECK_EQ_INT(write_now(dir, s, 1), 0);
  CHECK_EQ_INT(push_clocks(s, 1, 1, 2), 0);
  CHECK_EQ_INT(write_now(dir, s, 2), 0);
  CHECK_EQ_INT(push_clocks(s, 1, 2, 3), 0);
  CHECK_EQ_INT(write_now(dir, s, 3), 0);
  /* 3: the crash came before the manifest; 2: a data file cut short */
  shard_path(dir, s, 3, "manifest", path, sizeof path);
  CHECK_EQ_INT(unlink(path), 0);
  shard_path(dir, s, 2, "data", path, sizeof path);
  CHECK_EQ_INT(truncate(path, 100), 0);
  uint64_t ids[8];
  CHECK_EQ_INT(pd_checkpoint_list(dir, "ckpt-test", 0, keys_of(s), ids, 8), 2);
  CHECK_EQ_INT(ids[0], 1);
  CHECK_EQ_INT(ids[1], 2);
  pd_checkpoint_key key = key_of(s, 3);
  pd_checkpoint_data data;
  CHECK_EQ_INT(pd_checkpoint_read(dir, &key, &data, err, sizeof err), -ENOENT);
  key.id = 2;
  CHECK_EQ_INT(pd_checkpoint_read(dir, &key, &data, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "the manifest says");
  CHECK_EQ_INT(pd_checkpoint_read_latest(dir, &key, UINT64_MAX, &data, err, sizeof err), 0);
  CHECK_EQ_INT(key.id, 1);
  pd_checkpoint_data_close(&data);
  /* a checkpoint newer than the coordinator's last complete one is not used */
  CHECK_EQ_INT(write_now(dir, s, 4), 0);
  CHECK_EQ_INT(pd_checkpoint_read_latest(dir, &key, 3, &data, err, sizeof err), 0);
  CHECK_EQ_INT(key.id, 1);
  pd_checkpoint_data_close(&data);
  pd_shard_free(s);
  pd_test_rmtree(dir);
  free(dir);
}

/* A restore into a shard of another optimizer or worker count is refused
 * with the section that does not fit; the shard is unchanged. */
static void test_restore_refuses_other_shard(void) {
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "";
  CHECK(dir != NULL);
  pd_shard *adam = make_shard(100, "update: bsp, optimizer: {type: adam, lr: 0.01}", 2);
  pd_shard *sgd = make_shard(100, "update: bsp, optimizer: {type: sgd, lr: 0.01}", 2);
  pd_shard *three = make_shard(100, "update: bsp, optimizer: {type: adam, lr: 0.01}", 3);
  CHECK(adam && sgd && three);
  CHECK_EQ_INT(push_clocks(adam, 2, 0, 2), 0);
  CHECK_EQ_INT(write_now(dir, adam, 1), 0);
  pd_checkpoint_key key = key_of(adam, 1);
  pd_checkpoint_data data;
  CHECK_EQ_INT(pd_checkpoint_read(dir, &key, &data, err, sizeof err), 0);
  CHECK_EQ_INT(pd_shard_restore(sgd, data.sections, data.nsections, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "section 'velocity'");
  CHECK_EQ_INT(pd_shard_restore(three, data.sections, data.nsections, err, sizeof err),
               -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "2 workers");
  CHECK_EQ_INT(pd_clock_version(pd_shard_clock(three)), 0);
  pd_checkpoint_data_close(&data);
  /* the manifest names the workers: reading it for 3 workers is refused */
  key.num_workers = 3;
  CHECK_EQ_INT(pd_checkpoint_read(dir, &key, &data, err, sizeof err), -PD_EFORMAT);
  CHECK_STR_CONTAINS(err, "of 2 workers");
  pd_shard_free(adam);
  pd_shard_free(sgd);
  pd_shard_free(three);
  pd_test_rmtree(dir);
  free(dir);
}

/* keep K leaves the newest K checkpoint directories. */
static void test_prune_keeps_newest(void) {
  char *dir = pd_test_tmpdir("pando-ckpt-test");
  CHECK(dir != NULL);
  pd_shard *s = make_shard(10, "optimizer: {type: sgd, lr: 0.1}", 1);
  CHECK(s != NULL);
  for (uint64_t id = 1; id <= 5; id++)
    CHECK_EQ_INT(write_now(dir, s, id), 0);
  CHECK_EQ_INT(pd_checkpoint_prune(dir, "ckpt-test", 2), 3);
  uint64_t ids[8];
  CHECK_EQ_INT(pd_checkpoint_list(dir, "ckpt-test", 0, keys_of(s), ids, 8), 2);
  CHECK_EQ_INT(ids[0], 4);
  CHECK_EQ_INT(ids[1], 5);
  pd_shard_free(s);
  pd_test_rmtree(dir);
  free(dir);
}

/* Writes checkpoint 1 (800 KB: 40002 keys of values, adam's three slots and
 * the round's sum), then tries checkpoint 2 with writes limited to
 * `file_limit` bytes per file (if > 0) or where the space runs out; checks the failure and that 1
 * is intact. Returns 0 when everything held. Runs in a child process (limits, mounts). */
static int failed_write_keeps_previous(const char *dir, int expect_errno, long file_limit) {
  char err[512] = "";
  pd_shard *s = make_shard(20000, "update: bsp, optimizer: {type: adam, lr: 0.01}", 1);
  if (!s || push_clocks(s, 1, 0, 1) != 0 || write_now(dir, s, 1) != 0)
    return 1;
  if (file_limit > 0) {
    struct rlimit limit = {(rlim_t)file_limit, (rlim_t)file_limit};
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  if (push_clocks(s, 1, 1, 2) != 0)
    return 2;
  pd_shard_snapshot *snap = pd_shard_snapshot_take(s);
  pd_checkpoint_key key = key_of(s, 2);
  int rc = pd_checkpoint_write(dir, &key, snap, err, sizeof err);
  pd_shard_snapshot_free(snap);
  if (rc != -expect_errno || !strstr(err, strerror(expect_errno))) {
    fprintf(stderr, "  write gave %d (%s), expected -%d\n", rc, err, expect_errno);
    return 3;
  }
  uint64_t ids[4];
  if (pd_checkpoint_list(dir, "ckpt-test", 0, keys_of(s), ids, 4) != 1 || ids[0] != 1)
    return 4;
  pd_shard *back = make_shard(20000, "update: bsp, optimizer: {type: adam, lr: 0.01}", 1);
  key.id = 0;
  pd_checkpoint_data data;
  if (pd_checkpoint_read_latest(dir, &key, UINT64_MAX, &data, err, sizeof err) != 0 ||
      key.id != 1 || pd_shard_restore(back, data.sections, data.nsections, err, sizeof err) != 0)
    return 5;
  pd_checkpoint_data_close(&data);
  /* training goes on after the failure */
  if (push_clocks(s, 1, 2, 3) != 0 || pd_clock_version(pd_shard_clock(s)) != 3)
    return 6;
  pd_shard_free(s);
  pd_shard_free(back);
  return 0;
}

static int wait_child(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

/* A write that fails half way (here: the file size limit, EFBIG) leaves no
 * manifest and the previous checkpoint intact. */
static void test_failed_write_keeps_previous(void) {
  char *dir = pd_test_tmpdir("pando-ckpt-test");
  CHECK(dir != NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    _exit(failed_write_keeps_previous(dir, EFBIG, 200 * 1024));
  }
  CHECK_EQ_INT(wait_child(pid), 0);
  pd_test_rmtree(dir);
  free(dir);
}

/* ENOSPC on a small tmpfs, when this process may mount one (root in a new
 * mount namespace); otherwise says it was skipped. */
static void test_enospc_keeps_previous(void) {
  char *dir = pd_test_tmpdir("pando-ckpt-test");
  CHECK(dir != NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=1200k") != 0)
      _exit(77);
    _exit(failed_write_keeps_previous(dir, ENOSPC, 0));
  }
  int rc = wait_child(pid);
  if (rc == 77)
    printf("  skipped: cannot mount a tmpfs here\n");
  else
    CHECK_EQ_INT(rc, 0);
  pd_test_rmtree(dir);
  free(dir);
}

static int parse_spec(const char *checkpoint, pd_job_spec *spec) {
  char yaml[1024], err[512] = "";
  snprintf(yaml, sizeof yaml,
           "name: due\nmodel: {type: softmax, layers: [4, 2]}\n"
           "data: {train: {features: /f, labels: /l}}\n"
           "training: {epochs: 4, batch_size: 10, optimizer: {type: sgd, lr: 0.1}}\n"
           "cluster: {servers: 1, workers: 2}\ncheckpoint: %s\n",
           checkpoint);
  int rc = pd_job_spec_parse(yaml, strlen(yaml), spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  spec: %s\n", err);
  return rc;
}

/* Which clocks take a checkpoint: every_clocks N at N, 2N...; every_epochs
 * at the first clock after each N-th epoch (25 rows, batches of 10: 3
 * clocks an epoch), the last epoch's end included. */
static void test_due_clocks(void) {
  pd_job_spec spec;
  CHECK_EQ_INT(parse_spec("{every_clocks: 3}", &spec), 0);
  int due[13];
  for (int v = 0; v <= 12; v++)
    due[v] = pd_checkpoint_due(&spec, 25, (uint64_t)v);
  static const int want_clocks[13] = {0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1};
  CHECK(memcmp(due, want_clocks, sizeof due) == 0);
  CHECK_EQ_INT(parse_spec("{every_epochs: 2}", &spec), 0);
  for (int v = 0; v <= 12; v++)
    due[v] = pd_checkpoint_due(&spec, 25, (uint64_t)v);
  static const int want_epochs[13] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1};
  CHECK(memcmp(due, want_epochs, sizeof due) == 0);
  CHECK(!pd_checkpoint_due(&spec, 25, 18));        /* past the last epoch */
  CHECK_EQ_INT(parse_spec("{keep: 3}", &spec), 0); /* no every_*: never */
  for (int v = 0; v <= 12; v++)
    CHECK(!pd_checkpoint_due(&spec, 25, (uint64_t)v));
}

/* A job id that would leave the data_dir ("..", '/') is refused by every
 * function that builds a path from it. */
static void test_job_names_stay_inside(void) {
  char *dir = pd_test_tmpdir("pando-ckpt-test"), err[512] = "", outside[1100];
  CHECK(dir != NULL);
  CHECK(pd_checkpoint_job_ok("fashion-mlp-12"));
  CHECK(pd_checkpoint_job_ok("a.b_C-9"));
  CHECK(!pd_checkpoint_job_ok(""));
  CHECK(!pd_checkpoint_job_ok(".."));
  CHECK(!pd_checkpoint_job_ok(".hidden"));
  CHECK(!pd_checkpoint_job_ok("a/../../b"));
  CHECK(!pd_checkpoint_job_ok("a b"));
  pd_shard *s = make_shard(10, "optimizer: {type: sgd, lr: 0.1}", 1);
  CHECK(s != NULL);
  pd_checkpoint_key key = key_of(s, 1);
  strcpy(key.job, "../escaped");
  pd_shard_snapshot *snap = pd_shard_snapshot_take(s);
  CHECK_EQ_INT(pd_checkpoint_write(dir, &key, snap, err, sizeof err), -EINVAL);
  pd_shard_snapshot_free(snap);
  CHECK_STR_CONTAINS(err, "cannot name a checkpoint folder");
  snprintf(outside, sizeof outside, "%s/escaped", dir);
  struct stat st;
  CHECK(stat(outside, &st) != 0);
  pd_checkpoint_data data;
  CHECK_EQ_INT(pd_checkpoint_read(dir, &key, &data, err, sizeof err), -EINVAL);
  CHECK_EQ_INT(pd_checkpoint_list(dir, key.job, 0, 22, NULL, 0), 0);
  CHECK_EQ_INT(pd_checkpoint_prune(dir, key.job, 1), 0);
  pd_shard_free(s);
  pd_test_rmtree(dir);
  free(dir);
}

int main(int argc, char **argv) {
  PD_RUN(test_due_clocks);
  PD_RUN(test_resume_bsp_adam);
  PD_RUN(test_resume_bsp_mid_round_momentum);
  PD_RUN(test_resume_backup_workers);
  PD_RUN(test_resume_asp_rmsprop);
  PD_RUN(test_asp_redo_from_slowest);
  PD_RUN(test_ssp_redo_from_slowest);
  PD_RUN(test_resume_federated);
  PD_RUN(test_snapshot_is_copy_on_write);
  PD_RUN(test_flipped_byte_refused);
  PD_RUN(test_torn_checkpoint_ignored);
  PD_RUN(test_restore_refuses_other_shard);
  PD_RUN(test_prune_keeps_newest);
  PD_RUN(test_failed_write_keeps_previous);
  PD_RUN(test_enospc_keeps_previous);
  PD_RUN(test_job_names_stay_inside);
  PD_TEST_DONE();
}
