/* The decisions of a job's recovery (docs/architecture.md "Recovery"), as
 * pure functions the state machine in jobs.c asks: whether a job can
 * recover at all, and which checkpoint every shard rolls back to. */
#ifndef PANDO_COORD_RECOVERY_H
#define PANDO_COORD_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

/* The first restore asks every shard for its newest checkpoint: a
 * CreateShard with restore_checkpoint = this (the newest id <= it). */
#define PD_RECOVERY_NEWEST UINT64_MAX

/* Recoveries in a row a job may go through without getting past the
 * checkpoint the one before rolled it back to; one more fails it (a death
 * that comes back after each roll back is not worth retrying for ever). A
 * roll back to a newer checkpoint than the last one starts the count
 * again: a long job survives any number of deaths while it progresses. */
#define PD_RECOVERY_MAX 10

/* Whether a job of `spec` can recover from a dead server or worker: it takes
 * checkpoints (checkpoint.every_*, under any consistency model, federated
 * too: at committed rounds). */
int pd_recovery_possible(const pd_job_spec *spec);

/* The roll back's checkpoint, decided from one restore pass to `target`
 * (PD_RECOVERY_NEWEST in the first pass): `answers` are the checkpoint ids
 * that the `n` shards restored, each the newest it holds <= target, or 0
 * when it holds none (its restore was refused; or, for target 0, it was
 * made anew from the model's seed). Returns the next target: the smallest
 * answer. Sets *agreed when every answer equals it and the shards are there
 * (an id > 0, or target 0): every shard then holds that checkpoint and has
 * been rolled back to it, the newest all of them hold complete (a shard
 * answers its newest id <= the target, so a common id is never skipped);
 * 0 is the start. Else the next pass asks for the returned target. n = 0
 * returns 0 with *agreed 0. */
uint64_t pd_recovery_cut(const uint64_t *answers, size_t n, uint64_t target, int *agreed);

#endif
