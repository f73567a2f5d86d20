/* Federated rounds on one shard (training.update fedavg): the devices'
 * updates buffered per device and round until the coordinator names the set
 * that counts (CommitRound), then their n_k-weighted average. The shard
 * (shard.c) turns the average into the new model with the server optimizer.
 * Nothing here knows gRPC.
 *
 * A round is identified by the coordinator's round id (the pushes' clock).
 * Round ids only grow; once a round id is closed (committed or abandoned),
 * pushes and pulls for it or older ones are late. */
#ifndef PANDO_PS_FEDAGG_H
#define PANDO_PS_FEDAGG_H

#include <stddef.h>
#include <stdint.h>

#include "pando/optimizer.h"
#include "pando/spec.h"

#define PD_FEDAGG_DEVICE_MAX 128 /* bytes of a device id */

typedef struct pd_fedagg pd_fedagg;

/* What became of a pushed chunk. */
enum pd_fed_push {
  PD_FED_BUFFERED = 1, /* kept in the device's buffer for its round */
  PD_FED_DUPLICATE,    /* this chunk of this device and round was received before */
  PD_FED_LATE,         /* its round is closed: discarded (counted) */
  PD_FED_REJECT,       /* invalid (err says why) */
};

/* Counts of one shard's rounds. */
typedef struct pd_fedagg_stats {
  uint64_t committed;   /* rounds committed (the model's version) */
  uint64_t abandoned;   /* rounds abandoned */
  uint64_t updates;     /* device updates averaged into committed rounds */
  uint64_t late_pushes; /* chunks pushed for closed rounds */
  uint64_t discarded;   /* buffered updates of devices outside a round's set */
} pd_fedagg_stats;

/* The result of closing a round (as CommitRoundResponse). */
typedef struct pd_fedagg_commit {
  uint64_t round;
  uint32_t committed, discarded;
  double weight; /* sum of the committed devices' n_k */
  int abandoned;
} pd_fedagg_result;

/* Rounds for a shard of `keys` keys of a fedavg job `spec` (borrowed). */
pd_fedagg *pd_fedagg_new(const pd_job_spec *spec, uint64_t keys);
void pd_fedagg_free(pd_fedagg *fed);

/* The server optimizer a fedavg job's shards step the model with, and its
 * learning rate, for the pseudo-gradient g = theta_t - average (Reddi et al.,
 * ICLR 2021, Algorithm 2 with Delta = -g):
 *   fedavg, fedprox  sgd, lr 1:               theta = average exactly
 *   fedavgm          momentum mu = server_momentum, lr = server_lr
 *   fedadam          adam without bias correction, beta1, beta2, epsilon = tau
 *   fedyogi          yogi, beta1, beta2, epsilon = tau */
void pd_fedagg_server_optimizer(const pd_job_spec *spec, pd_optimizer_spec *out, double *lr);

/* Takes a chunk of keys [off, off + n) of `device`'s update for round
 * `round`: delta = theta_k - theta_t, `weight` its n_k (> 0, the same in
 * every chunk); `control_delta` (n floats) its Delta c_i of the same keys,
 * required by a scaffold job, NULL for any other. A device's update is whole when its chunks cover
 * every key; chunks may come in any order but not overlap. At most pd_fedagg_max_updates() updates
 * are buffered. */
enum pd_fed_push pd_fedagg_push(pd_fedagg *fed, const char *device, uint64_t round, double weight,
                                uint64_t off, uint64_t n, const float *delta,
                                const float *control_delta, char *err, size_t errlen);

/* Whether a pull for round `round` may be answered: 0, or -1 with err when
 * the round is closed. Round 0 reads the model as last committed (pandoctl
 * export, the coordinator's evaluation): always answered. */
int pd_fedagg_pull_ok(const pd_fedagg *fed, uint64_t round, char *err, size_t errlen);

/* Closes round `round` with exactly the `n` devices `devices`, in that order
 * (abandon: with none, the model unchanged). On success writes the
 * pseudo-gradient -(sum_k n_k delta_k / sum_k n_k) (accumulated in double,
 * in the order given; scaffold: -(1/n) sum_k delta_k, and c becomes
 * c + (1/N) sum_k Delta c_k with N = max(population, n), Karimireddy et al.,
 * Algorithm 1) to *grad (keys floats, borrowed from `fed` until the
 * next call; NULL when abandoned or an old round's retry), fills *result and
 * returns 0; the caller applies *grad with pd_fedagg_server_optimizer's rule.
 * Every buffered update of this round or an older one is discarded. A retry
 * of the last closed round gives its result again (and *grad NULL). Returns
 * -1 with err naming the problem (a device of the set without a whole update
 * here, a device twice, an older round) and changes nothing. */
int pd_fedagg_commit(pd_fedagg *fed, uint64_t round, const char *const *devices, size_t n,
                     int abandon, uint32_t population, const float **grad, pd_fedagg_result *result,
                     char *err, size_t errlen);

/* scaffold: the shard's slice of the server control variate c (keys
 * floats, borrowed, changed by each commit); NULL for any other job. */
const float *pd_fedagg_control(const pd_fedagg *fed);

/* A checkpoint of the rounds: the highest closed round id, the counts, the
 * last result (so a retried CommitRound of it answers the same) and, for
 * scaffold, the server control variate c, as
 * little-endian bytes; not the buffered updates of a round still open (after
 * a restore the coordinator runs that round again under a new id).
 * pd_fedagg_save_size() is how many bytes pd_fedagg_save() writes. */
size_t pd_fedagg_save_size(const pd_fedagg *fed);
void pd_fedagg_save(const pd_fedagg *fed, unsigned char *out);
/* Sets `fed` (of the same keys) to the state saved in `bytes` (`n` bytes),
 * dropping every buffered update. Returns 0, or -PD_EFORMAT with a message in
 * `err` when the bytes are not saved rounds of as many keys; `fed` is then
 * unchanged. */
int pd_fedagg_restore(pd_fedagg *fed, const unsigned char *bytes, size_t n, char *err,
                      size_t errlen);

/* Updates buffered at most: min(4096, max(16, 1 GiB / (4 keys))). */
size_t pd_fedagg_max_updates(const pd_fedagg *fed);
const pd_fedagg_stats *pd_fedagg_stats_get(const pd_fedagg *fed);

#endif
