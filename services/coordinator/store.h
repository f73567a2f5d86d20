/* The coordinator's durable state (data_dir): the job and node id counters
 * and every job (spec, state, message, epoch history, shard map, workers'
 * positions, recovery counters, token) in SQLite, DATA_DIR/coordinator.db.
 * The only place of the coordinator that speaks SQL. Each write is one
 * transaction; errors are logged with the file's name and SQLite's message
 * and returned as -EIO. */
#ifndef PANDO_COORD_STORE_H
#define PANDO_COORD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "jobs.h"

typedef struct pd_store pd_store;

/* The counters the store keeps. */
#define PD_STORE_NEXT_JOB "next_job"   /* the number of the next job id, "<name>-<n>" */
#define PD_STORE_NEXT_NODE "next_node" /* the next node id */

/* Opens (creating it and `data_dir` if missing) DATA_DIR/coordinator.db
 * into *out. Returns 0, or a negative error with the file and SQLite's
 * message in `err`. */
int pd_store_open(const char *data_dir, pd_store **out, char *err, size_t errlen);
/* Closes it; NULL is a no-op. */
void pd_store_close(pd_store *store);

/* Reads counter `name` into *value (left as is when it was never set).
 * Returns 0 or a negative error (logged). */
int pd_store_counter(pd_store *store, const char *name, uint64_t *value);
/* Sets counter `name` durably. Returns 0 or a negative error (logged). */
int pd_store_set_counter(pd_store *store, const char *name, uint64_t value);

/* Writes everything of `job` (borrowed) over what the store held of it, in
 * one transaction, with `seq` its place in submission order. Returns 0 or
 * a negative error (logged). */
int pd_store_put_job(pd_store *store, const pd_job *job, uint64_t seq);
/* Removes job `id` (a forgotten one). Returns 0 or a negative error. */
int pd_store_delete_job(pd_store *store, const char *id);

/* Calls `each` with every stored job, in submission order, as a new pd_job
 * (heap-allocated like pd_jobs_submit's, its spec parsed again from its
 * YAML): `each` takes ownership. A job whose spec no longer parses is
 * skipped with a warning. Returns 0 or a negative error with why in
 * `err`. */
int pd_store_load_jobs(pd_store *store, void (*each)(void *ctx, pd_job *job), void *ctx, char *err,
                       size_t errlen);

#endif
