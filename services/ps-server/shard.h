/* A shard: the keys [begin, end) of one job held by this server, with the
 * optimizer state beside them, its clock, and the pulls waiting for it. This
 * is where parameters change. It knows nothing of gRPC: it decides whether a
 * pull is answered now or parked, and hands out the values as slices; the
 * handlers in ps.c build and send the responses. */
#ifndef PANDO_PS_SHARD_H
#define PANDO_PS_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "pando/durable.h"
#include "pando/spec.h"

typedef struct pd_shard pd_shard;
/* A pull waiting for the clock (see pd_shard_pull). */
typedef struct pd_shard_parked pd_shard_parked;

/* Keys of one block of a shard's values: a pull's answer borrows whole
 * blocks (1 MiB of float32), see shard.c. */
#define PD_SHARD_BLOCK_KEYS ((uint64_t)1 << 18)

/* A piece of a pull's answer: `n` values at `data`, readable until
 * `release(user)` is called. Release exactly once, from any thread. */
typedef struct pd_shard_slice {
  const float *data;
  uint64_t n;
  void (*release)(void *user);
  void *user;
} pd_shard_slice;

/* The most memory a shard of `spec` with keys [begin, end) pushed to by
 * `num_workers` workers can take: parameters (and their copy-on-write
 * second buffer), the optimizer's state, the BSP round's sum, the backup
 * workers' buffers and the clock's state of each worker. Saturates at
 * UINT64_MAX instead of overflowing. */
uint64_t pd_shard_bytes(const pd_job_spec *spec, uint64_t begin, uint64_t end,
                        uint32_t num_workers);

/* Makes a shard of `spec`'s model keys [begin, end), initialised from the
 * model's seed. Pushes are applied with the learning rate of their clock's
 * epoch (pando/schedule.h), which needs `min_partition_rows`, the rows of
 * the smallest worker partition; it may be 0 only with a constant
 * training.lr_schedule. Returns NULL with a message in `err` when the model
 * cannot initialise the keys (a plugin that does not load). */
pd_shard *pd_shard_new(const pd_job_spec *spec, uint64_t begin, uint64_t end, uint32_t num_workers,
                       uint64_t min_partition_rows, char *err, size_t errlen);
/* Frees the shard. Every parked pull must have been taken out first
 * (pd_shard_next_parked). Values that slices still borrow are freed when the
 * last slice is released. */
void pd_shard_free(pd_shard *shard);

/* The global keys [begin, end) held, the workers that push, the spec. */
uint64_t pd_shard_begin(const pd_shard *shard);
uint64_t pd_shard_end(const pd_shard *shard);
uint32_t pd_shard_num_workers(const pd_shard *shard);
uint64_t pd_shard_min_partition_rows(const pd_shard *shard);
const pd_job_spec *pd_shard_spec(const pd_shard *shard);
/* The shard's consistency clock (version, staleness and the other counts). */
const pd_clock *pd_shard_clock(const pd_shard *shard);

/* training.update fedavg: the shard's federated rounds (fedagg.h); NULL
 * for the other strategies. */
struct pd_fedagg *pd_shard_fed(pd_shard *shard);
/* Steps every key of the shard with its optimizer (for fedavg jobs the
 * server optimizer, pd_fedagg_server_optimizer) at learning rate `lr` with
 * `grad` (end - begin values): a federated round's pseudo-gradient. Slices
 * handed out keep the values they borrow. */
void pd_shard_apply(pd_shard *shard, const float *grad, double lr);
/* training.federated.swa_from R > 0 (stochastic weight averaging, Izmailov
 * et al., UAI 2018; in federated learning Caldarola et al., ECCV 2022):
 * after a committed round whose count (pd_fedagg_stats committed) is R or
 * more, adds the model as it now is to the running average of the models of
 * rounds R, R + 1, ...: avg += (theta - avg) / n. Call it after
 * pd_shard_apply of that round; a no-op without swa_from, before round R,
 * and when the newest committed round is in the average already. */
void pd_shard_fed_average(pd_shard *shard);
/* The values a fedavg shard serves for evaluation and export (pulls of
 * round 0): the running average once it holds a round, else NULL (the
 * model itself). Rounds' pulls (clock > 0) always read the model. */
const float *pd_shard_fed_served(const pd_shard *shard);

/* Copies the current values of shard-relative keys [off, off + n) to `out`. */
void pd_shard_read(const pd_shard *shard, uint64_t off, uint64_t n, float *out);

/* The most slices pd_shard_slices writes for `n` keys. */
size_t pd_shard_max_slices(uint64_t n);
/* Writes the current values of shard-relative keys [off, off + n) as slices
 * to `out` (room for pd_shard_max_slices(n)) and returns how many. The
 * slices borrow the parameter memory where they can (later writes move the
 * block instead of changing what a slice reads) and copy it otherwise. */
size_t pd_shard_slices(pd_shard *shard, uint64_t off, uint64_t n, pd_shard_slice *out);

/* Takes a push of shard-relative keys [off, off + n) (gradient values in
 * `grad`) computed on the model of version `model_version` (-1: unknown).
 * Returns the clock's verdict; on REJECT, err says why. Applies the gradient
 * or the completed round's average as the verdict requires; parked pulls
 * that may now be answered are then returned by pd_shard_next_ready. */
enum pd_push_verdict pd_shard_push(pd_shard *shard, uint32_t worker, int64_t clock,
                                   int64_t model_version, uint64_t off, uint64_t n,
                                   const float *grad, char *err, size_t errlen);

/* What pd_shard_pull decided. */
enum pd_shard_pull_state {
  PD_SHARD_PULL_INVALID = -1, /* refused; err says why */
  PD_SHARD_PULL_PARKED = 0,   /* waits for the clock; *parked is its handle */
  PD_SHARD_PULL_READY = 1,    /* answer it now (pd_shard_slices) */
};

/* A pull by `worker` at `clock` of shard-relative keys [off, off + n): ready,
 * refused, or parked with `tag` (the caller's, returned by
 * pd_shard_next_ready once the clock allows the pull) until the pull is
 * answered or pd_shard_unpark is called. */
enum pd_shard_pull_state pd_shard_pull(pd_shard *shard, void *tag, uint32_t worker, int64_t clock,
                                       uint64_t off, uint64_t n, pd_shard_parked **parked,
                                       char *err, size_t errlen);
/* Takes out a parked pull whose caller went away; the handle is freed. */
void pd_shard_unpark(pd_shard_parked *parked);
/* A parked pull the clock now allows (its handle is freed): returns its tag
 * and its keys in *off, *n, or NULL when there is none. Answer it at once. */
void *pd_shard_next_ready(pd_shard *shard, uint64_t *off, uint64_t *n);
/* What pd_shard_next_ready_info says of a parked pull. */
typedef struct pd_shard_ready {
  uint64_t off, n;    /* its shard-relative keys */
  uint64_t parked_ns; /* when it was parked (pd_now_ns): its wait is now minus that */
  uint32_t worker;    /* whose pull it is, and at which clock */
  int64_t clock;
} pd_shard_ready;
/* The same as pd_shard_next_ready, all of it in *ready. */
void *pd_shard_next_ready_info(pd_shard *shard, pd_shard_ready *ready);
/* Takes out any parked pull (to fail it before pd_shard_free) and returns
 * its tag, or NULL when none is left. */
void *pd_shard_next_parked(pd_shard *shard);

/* ---- checkpoints (services/ps-server/checkpoint.c writes them) */

/* One named part of a shard's state: `bytes` bytes made of `npieces`
 * pieces. The parts are "values" (float32 parameters), the optimizer's
 * "velocity", "second" (float32) and "steps" (uint32) when it has them,
 * "accum" (BSP: float32 sum of the round), "buffers" (backup workers: float32
 * per worker), "clock" (pd_clock_save) and, for federated shards, "fedagg"
 * (pd_fedagg_save) and "swa" (float32 average, then uint64 rounds in it and
 * the round added last). */
typedef struct pd_shard_section {
  const char *name;
  const pd_durable_piece *pieces;
  size_t npieces;
  uint64_t bytes;
} pd_shard_section;

#define PD_SHARD_MAX_SECTIONS 8

/* A frozen copy of a shard's whole state, taken between two pushes. */
typedef struct pd_shard_snapshot pd_shard_snapshot;

/* Takes a snapshot of the shard now (on the thread that pushes). The values
 * are not copied: the snapshot borrows their blocks, and pushes after it
 * move a borrowed block before they write it (copy-on-write), so training
 * goes on while another thread writes the snapshot. The optimizer state, the
 * round's sums and the clock are copied. */
pd_shard_snapshot *pd_shard_snapshot_take(pd_shard *shard);
/* The snapshot's sections (PD_SHARD_MAX_SECTIONS at most) in *sections;
 * returns their number. Valid until pd_shard_snapshot_free. */
size_t pd_shard_snapshot_sections(const pd_shard_snapshot *snap, const pd_shard_section **sections);
/* The shard's clock version when the snapshot was taken. */
uint64_t pd_shard_snapshot_version(const pd_shard_snapshot *snap);
/* Frees the snapshot (from any thread), releasing the blocks it borrowed. */
void pd_shard_snapshot_free(pd_shard_snapshot *snap);

/* Sets the shard's state to `sections` (`n` of them, as a snapshot of a
 * shard of the same spec, keys and workers had them). No pull may be
 * parked. Returns 0, or -PD_EFORMAT with a message in `err` naming the
 * section that is missing, unexpected or of the wrong size; the shard is
 * then unchanged. */
int pd_shard_restore(pd_shard *shard, const pd_shard_section *sections, size_t n, char *err,
                     size_t errlen);

#endif
