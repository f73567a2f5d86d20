/* Checkpoint files of a shard: a snapshot (shard.h) written durably under the
 * server's data_dir, read back with every checksum verified, and a writer
 * thread that writes snapshots while the shard keeps training.
 *
 * Layout: DATA_DIR/jobs/JOB/ckpt-ID/shard-BEGIN-END.{data,manifest}. The data
 * file is written first, then the manifest, each durably (pando/durable.h);
 * a shard's checkpoint exists once its manifest does. The manifest is text:
 * the job, the checkpoint id, the keys, the workers, the clock version, the
 * data file's size and CRC-32, and a CRC-32 of the manifest's own lines. The
 * data file is a header (magic "PDSHARD1", the section count, per section
 * its name, offset, size and CRC-32) followed by the sections' bytes. */
#ifndef PANDO_PS_CHECKPOINT_H
#define PANDO_PS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "shard.h"

/* Which shard of which checkpoint: keys [begin, end) of `job`, checkpoint
 * `id` (1, 2, ... as the coordinator numbers them). */
typedef struct pd_checkpoint_key {
  char job[96]; /* as ps.c's job ids */
  uint64_t id;
  uint64_t begin, end;
  uint32_t num_workers;
} pd_checkpoint_key;

/* Whether a shard of `spec` (its workers' smallest partition has
 * `min_partition_rows` rows) takes a checkpoint when its clock reaches
 * `version`, as checkpoint.every_* says: every_clocks N at versions N, 2N,
 * ...; every_epochs N at the first clock after epochs N, 2N, ... (and after
 * the last epoch when N divides training.epochs). Under BSP every shard of
 * a job reaches each version with the same rounds applied, so the shards'
 * checkpoints of one id form a consistent cut without a message between
 * them; the id of a checkpoint is that version. */
int pd_checkpoint_due(const pd_job_spec *spec, uint64_t min_partition_rows, uint64_t version);

/* Whether `job` may name a folder under the data_dir: 1 to 95 letters,
 * digits, '.', '_' and '-', not starting with '.' (no "..", no '/'). Every
 * function below refuses other names (a hostile CreateShard must not write
 * or read outside the data_dir). */
int pd_checkpoint_job_ok(const char *job);

/* The directory of checkpoint `id` of `job` under `data_dir`, in `out`. */
void pd_checkpoint_dir(const char *data_dir, const char *job, uint64_t id, char *out,
                       size_t outlen);

/* Writes `snap` as the shard's part of checkpoint `key` under `data_dir`
 * (creating the directories). Returns 0 once the data file and the manifest
 * are durable, or -errno (ENOSPC...) with a message in `err`; a failed write
 * leaves no manifest, and older checkpoints are untouched. */
int pd_checkpoint_write(const char *data_dir, const pd_checkpoint_key *key,
                        const pd_shard_snapshot *snap, char *err, size_t errlen);

/* A shard's checkpoint read back: sections for pd_shard_restore. */
typedef struct pd_checkpoint_data {
  pd_checkpoint_key key;
  uint64_t version; /* the shard's clock version in the checkpoint */
  size_t nsections;
  pd_shard_section sections[PD_SHARD_MAX_SECTIONS];
  pd_durable_piece pieces[PD_SHARD_MAX_SECTIONS];
  char names[PD_SHARD_MAX_SECTIONS][16];
  char *file; /* the data file's bytes, which the pieces point into */
} pd_checkpoint_data;

/* Reads the shard's part of checkpoint `key` (job, id, begin, end and
 * num_workers must match the manifest; num_workers 0 matches any, and
 * out->key then has the manifest's) into `out`, verifying the manifest's
 * checksum, the data file's size and checksum and each section's checksum.
 * Returns 0, -ENOENT (no manifest: the checkpoint is not complete here) or
 * -PD_EFORMAT with a message naming the file and what is wrong ("checksum
 * mismatch"). Close `out` with pd_checkpoint_data_close after 0. */
int pd_checkpoint_read(const char *data_dir, const pd_checkpoint_key *key, pd_checkpoint_data *out,
                       char *err, size_t errlen);
void pd_checkpoint_data_close(pd_checkpoint_data *data);

/* Ids of the checkpoints of `job` under `data_dir` that have a manifest for
 * keys [begin, end), ascending, up to `max` of them in `ids`; returns how
 * many there are (may exceed max). */
size_t pd_checkpoint_list(const char *data_dir, const char *job, uint64_t begin, uint64_t end,
                          uint64_t *ids, size_t max);

/* The newest id pd_checkpoint_list would list, 0: none. */
uint64_t pd_checkpoint_newest(const char *data_dir, const char *job, uint64_t begin, uint64_t end);

/* Reads the newest checkpoint of the shard with an id <= `max_id` that
 * verifies, skipping damaged or incomplete ones (each refusal is logged with
 * its reason). Returns 0 with `out` filled, or -ENOENT when none verifies. */
int pd_checkpoint_read_latest(const char *data_dir, pd_checkpoint_key *key, uint64_t max_id,
                              pd_checkpoint_data *out, char *err, size_t errlen);

/* Removes checkpoint directories of `job` older than the newest `keep`
 * (by id). Returns how many were removed. */
int pd_checkpoint_prune(const char *data_dir, const char *job, int keep);

/* ---- the writer thread */

typedef struct pd_checkpoint_writer pd_checkpoint_writer;

/* Called on the writer thread when a snapshot was written (rc 0) or failed
 * (rc < 0, message in `err`). */
typedef void (*pd_checkpoint_done_fn)(void *user, const pd_checkpoint_key *key, int rc,
                                      const char *err);

/* Starts a thread that writes snapshots under `data_dir` (copied) in the
 * order they are queued. */
pd_checkpoint_writer *pd_checkpoint_writer_new(const char *data_dir);
/* Queues `snap` (takes ownership: freed once written) as the shard's part
 * of checkpoint `key`, then keeps only the newest `keep` checkpoints of the
 * job (0: keeps all); `done(user, ...)` reports the result. */
void pd_checkpoint_writer_submit(pd_checkpoint_writer *writer, const pd_checkpoint_key *key,
                                 pd_shard_snapshot *snap, int keep, pd_checkpoint_done_fn done,
                                 void *user);
/* Writes what is queued, stops the thread and frees the writer. */
void pd_checkpoint_writer_free(pd_checkpoint_writer *writer);

#endif
