/* The coordinator's state in SQLite; see store.h. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pando/durable.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/util.h"

/* The schema, created when missing. A job's arrays are rows of their own
 * tables, keyed by the job's id; a put rewrites them all (they are small:
 * a shard per server, a row per worker and per evaluated epoch). */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " spec_yaml TEXT NOT NULL, state INTEGER NOT NULL, message TEXT NOT NULL,"
    " submitted REAL, started REAL, finished REAL, keys INTEGER, train_rows INTEGER,"
    " steps_per_epoch INTEGER, job_token TEXT NOT NULL, attempt INTEGER, start_clock INTEGER,"
    " recoveries INTEGER, model_dropped INTEGER, placed INTEGER);"
    "CREATE TABLE IF NOT EXISTS shards (job TEXT NOT NULL, shard INTEGER NOT NULL,"
    " server_id INTEGER, server_name TEXT, key_begin INTEGER, key_end INTEGER,"
    " restored INTEGER, orphaned INTEGER, PRIMARY KEY (job, shard));"
    "CREATE TABLE IF NOT EXISTS workers (job TEXT NOT NULL, rank INTEGER NOT NULL,"
    " node_id INTEGER, epoch INTEGER, step INTEGER, loss REAL, done INTEGER,"
    " PRIMARY KEY (job, rank));"
    "CREATE TABLE IF NOT EXISTS history (job TEXT NOT NULL, i INTEGER NOT NULL,"
    " epoch INTEGER, train_loss REAL, test_accuracy REAL, test_loss REAL, test_rmse REAL,"
    " seconds REAL, PRIMARY KEY (job, i));"
    /* a federated job's rounds: each RoundRecord as protobuf bytes */
    "CREATE TABLE IF NOT EXISTS rounds (job TEXT NOT NULL, i INTEGER NOT NULL,"
    " record BLOB NOT NULL, PRIMARY KEY (job, i));";

/* The prepared statements, by index. */
enum {
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_GET_COUNTER,
  ST_SET_COUNTER,
  ST_PUT_JOB,
  ST_DEL_JOB,
  ST_DEL_SHARDS,
  ST_DEL_WORKERS,
  ST_DEL_HISTORY,
  ST_DEL_ROUNDS,
  ST_PUT_SHARD,
  ST_PUT_WORKER,
  ST_PUT_HISTORY,
  ST_PUT_ROUND,
  ST_LOAD_JOBS,
  ST_LOAD_SHARDS,
  ST_LOAD_WORKERS,
  ST_LOAD_HISTORY,
  ST_LOAD_ROUNDS,
  ST_COUNT
};

static const char *const statements[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET_COUNTER] = "SELECT value FROM counters WHERE name = ?1",
    [ST_SET_COUNTER] = "INSERT OR REPLACE INTO counters (name, value) VALUES (?1, ?2)",
    [ST_PUT_JOB] = "INSERT OR REPLACE INTO jobs (id, seq, spec_yaml, state, message, submitted,"
                   " started, finished, keys, train_rows, steps_per_epoch, job_token, attempt,"
                   " start_clock, recoveries, model_dropped, placed) VALUES (?1, ?2, ?3, ?4, ?5,"
                   " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    [ST_DEL_JOB] = "DELETE FROM jobs WHERE id = ?1",
    [ST_DEL_SHARDS] = "DELETE FROM shards WHERE job = ?1",
    [ST_DEL_WORKERS] = "DELETE FROM workers WHERE job = ?1",
    [ST_DEL_HISTORY] = "DELETE FROM history WHERE job = ?1",
    [ST_DEL_ROUNDS] = "DELETE FROM rounds WHERE job = ?1",
    [ST_PUT_ROUND] = "INSERT INTO rounds (job, i, record) VALUES (?1, ?2, ?3)",
    [ST_LOAD_ROUNDS] = "SELECT record FROM rounds WHERE job = ?1 ORDER BY i",
    [ST_PUT_SHARD] = "INSERT INTO shards (job, shard, server_id, server_name, key_begin, key_end,"
                     " restored, orphaned) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_PUT_WORKER] = "INSERT INTO workers (job, rank, node_id, epoch, step, loss, done)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_PUT_HISTORY] = "INSERT INTO history (job, i, epoch, train_loss, test_accuracy, test_loss,"
                       " test_rmse, seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_LOAD_JOBS] = "SELECT id, spec_yaml, state, message, submitted, started, finished, keys,"
                     " train_rows, steps_per_epoch, job_token, attempt, start_clock, recoveries,"
                     " model_dropped, placed FROM jobs ORDER BY seq",
    [ST_LOAD_SHARDS] = "SELECT shard, server_id, server_name, key_begin, key_end, restored,"
                       " orphaned FROM shards WHERE job = ?1 ORDER BY shard",
    [ST_LOAD_WORKERS] = "SELECT rank, node_id, epoch, step, loss, done FROM workers"
                        " WHERE job = ?1 ORDER BY rank",
    [ST_LOAD_HISTORY] = "SELECT epoch, train_loss, test_accuracy, test_loss, test_rmse, seconds"
                        " FROM history WHERE job = ?1 ORDER BY i",
};

struct pd_store {
  sqlite3 *db;
  char path[1100];
  sqlite3_stmt *st[ST_COUNT];
};

/* Logs SQLite's error of `what` with the file's name; returns -EIO (the
 * database could not do it) and fills `err` when it is not NULL. */
static int fail(pd_store *s, const char *what, char *err, size_t errlen) {
  char buf[1400];
  snprintf(buf, sizeof buf, "coordinator state %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
  PD_ERROR("%s", buf);
  if (err)
    pd_strlcpy(err, buf, errlen);
  return -EIO;
}

/* A statement ready for new bindings. */
static sqlite3_stmt *stmt(pd_store *s, int which) {
  sqlite3_stmt *st = s->st[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

/* Runs a statement that returns no rows. */
static int run(pd_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : fail(s, what, NULL, 0);
}

int pd_store_open(const char *data_dir, pd_store **out, char *err, size_t errlen) {
  *out = NULL;
  int rc = pd_durable_mkdirs(data_dir, err, errlen);
  if (rc != 0)
    return rc;
  pd_store *s = pd_xcalloc(1, sizeof *s);
  snprintf(s->path, sizeof s->path, "%s/coordinator.db", data_dir);
  /* The file holds the jobs' tokens: only its owner reads it. */
  int fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    rc = pd_errf(err, errlen, -errno, "coordinator state %s: %s", s->path, strerror(errno));
    free(s);
    return rc;
  }
  close(fd);
  if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    rc = fail(s, "open", err, errlen);
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 5000);
  /* WAL: a commit appends to the log instead of rewriting pages, and a
   * reader (sqlite3 on the file, by hand) does not block the daemon.
   * synchronous=FULL: every commit is fsynced before it returns, so an id
   * answered to a client (SubmitJob, RegisterNode) is on disk and is never
   * issued again, even after a power loss (NORMAL may lose the last
   * commits then). Commits are rare (state changes, one per epoch), so the
   * fsync costs nothing that matters. */
  static const char pragmas[] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
  if (sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
    rc = fail(s, "setting WAL mode", err, errlen);
    goto fail;
  }
  if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
    rc = fail(s, "creating the tables", err, errlen);
    goto fail;
  }
  for (int i = 0; i < ST_COUNT; i++)
    if (sqlite3_prepare_v3(s->db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
        SQLITE_OK) {
      rc = fail(s, statements[i], err, errlen);
      goto fail;
    }
  *out = s;
  return 0;
fail:
  pd_store_close(s);
  return rc;
}

void pd_store_close(pd_store *s) {
  if (!s)
    return;
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(s->st[i]);
  sqlite3_close(s->db);
  free(s);
}

int pd_store_counter(pd_store *s, const char *name, uint64_t *value) {
  sqlite3_stmt *st = stmt(s, ST_GET_COUNTER);
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *value = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, "reading a counter", NULL, 0);
}

int pd_store_set_counter(pd_store *s, const char *name, uint64_t value) {
  sqlite3_stmt *st = stmt(s, ST_SET_COUNTER);
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)value);
  return run(s, st, "writing a counter");
}

/* Deletes every row of job `id` in the job tables. */
static int delete_rows(pd_store *s, const char *id) {
  static const int dels[] = {ST_DEL_JOB, ST_DEL_SHARDS, ST_DEL_WORKERS, ST_DEL_HISTORY,
                             ST_DEL_ROUNDS};
  for (size_t i = 0; i < PD_ARRAY_SIZE(dels); i++) {
    sqlite3_stmt *st = stmt(s, dels[i]);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (run(s, st, "deleting a job's rows") != 0)
      return -EIO;
  }
  return 0;
}

/* The rows of `j`, inside a transaction. */
static int put_rows(pd_store *s, const pd_job *j, uint64_t seq) {
  if (delete_rows(s, j->id) != 0)
    return -EIO;
  sqlite3_stmt *st = stmt(s, ST_PUT_JOB);
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
  sqlite3_bind_text(st, 3, j->spec_yaml, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, (int)j->state);
  sqlite3_bind_text(st, 5, j->message, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 6, j->submitted);
  sqlite3_bind_double(st, 7, j->started);
  sqlite3_bind_double(st, 8, j->finished);
  sqlite3_bind_int64(st, 9, (sqlite3_int64)j->keys);
  sqlite3_bind_int64(st, 10, (sqlite3_int64)j->train_rows);
  sqlite3_bind_int64(st, 11, j->steps_per_epoch);
  /* The token as it is, not a hash of it: GetJob and CancelJob compare
   * the presented token with it (pd_rpc_call_authorized), and the file is
   * readable by its owner only, like the cluster token's file. */
  sqlite3_bind_text(st, 12, j->job_token, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 13, j->attempt);
  sqlite3_bind_int64(st, 14, (sqlite3_int64)j->start_clock);
  sqlite3_bind_int64(st, 15, j->recoveries);
  sqlite3_bind_int(st, 16, j->model_dropped);
  sqlite3_bind_int(st, 17, j->server_ids != NULL);
  if (run(s, st, "writing a job") != 0)
    return -EIO;
  for (uint32_t k = 0; j->server_ids && k < j->nservers; k++) {
    st = stmt(s, ST_PUT_SHARD);
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, k);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)j->server_ids[k]);
    sqlite3_bind_text(st, 4, j->server_names[k], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)j->shard_begin[k]);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)j->shard_end[k]);
    sqlite3_bind_int64(st, 7, j->restored ? (sqlite3_int64)j->restored[k] : 0);
    sqlite3_bind_int(st, 8, j->orphaned ? j->orphaned[k] : 0);
    if (run(s, st, "writing a job's shard") != 0)
      return -EIO;
  }
  for (uint32_t r = 0; r < j->nworkers; r++) {
    const pd_job_worker *w = &j->workers[r];
    st = stmt(s, ST_PUT_WORKER);
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)w->node_id);
    sqlite3_bind_int64(st, 4, w->epoch);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)w->step);
    sqlite3_bind_double(st, 6, w->loss);
    sqlite3_bind_int(st, 7, w->done);
    if (run(s, st, "writing a job's worker") != 0)
      return -EIO;
  }
  for (size_t h = 0; h < j->nhistory; h++) {
    const Pando__V1__EpochRecord *e = &j->history[h];
    st = stmt(s, ST_PUT_HISTORY);
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)h);
    sqlite3_bind_int64(st, 3, e->epoch);
    sqlite3_bind_double(st, 4, e->train_loss);
    sqlite3_bind_double(st, 5, e->test_accuracy);
    sqlite3_bind_double(st, 6, e->test_loss);
    sqlite3_bind_double(st, 7, e->test_rmse);
    sqlite3_bind_double(st, 8, e->seconds);
    if (run(s, st, "writing a job's epoch") != 0)
      return -EIO;
  }
  for (size_t h = 0; h < j->nround_history; h++) {
    uint8_t buf[256]; /* a RoundRecord: 12 scalars */
    size_t len = pando__v1__round_record__get_packed_size(&j->round_history[h]);
    PD_ASSERT(len <= sizeof buf);
    pando__v1__round_record__pack(&j->round_history[h], buf);
    st = stmt(s, ST_PUT_ROUND);
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)h);
    sqlite3_bind_blob(st, 3, buf, (int)len, SQLITE_TRANSIENT);
    if (run(s, st, "writing a job's round") != 0)
      return -EIO;
  }
  return 0;
}

/* A transaction: begin(), the writes, end() with their result (COMMIT on
 * 0, else ROLLBACK). */
static int begin(pd_store *s) { return run(s, stmt(s, ST_BEGIN), "BEGIN"); }

static int end(pd_store *s, int rc) {
  if (rc == 0 && run(s, stmt(s, ST_COMMIT), "COMMIT") == 0)
    return 0;
  if (!sqlite3_get_autocommit(s->db)) /* still open (a failed COMMIT may leave it so) */
    run(s, stmt(s, ST_ROLLBACK), "ROLLBACK");
  return rc ? rc : -EIO;
}

int pd_store_put_job(pd_store *s, const pd_job *j, uint64_t seq) {
  if (begin(s) != 0)
    return -EIO;
  return end(s, put_rows(s, j, seq));
}

int pd_store_delete_job(pd_store *s, const char *id) {
  if (begin(s) != 0)
    return -EIO;
  return end(s, delete_rows(s, id));
}

static uint64_t col_u64(sqlite3_stmt *st, int i) { return (uint64_t)sqlite3_column_int64(st, i); }

static const char *col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : "";
}

/* The shards, workers and history of `j` (its id, nservers and nworkers
 * set). */
static int load_arrays(pd_store *s, pd_job *j, int placed) {
  sqlite3_stmt *st;
  int rc;
  if (placed) {
    j->server_ids = pd_xcalloc(j->nservers, sizeof *j->server_ids);
    j->server_names = pd_xcalloc(j->nservers, sizeof *j->server_names);
    j->shard_begin = pd_xcalloc(j->nservers, sizeof *j->shard_begin);
    j->shard_end = pd_xcalloc(j->nservers, sizeof *j->shard_end);
    j->restored = pd_xcalloc(j->nservers, sizeof *j->restored);
    j->orphaned = pd_xcalloc(j->nservers, sizeof *j->orphaned);
    st = stmt(s, ST_LOAD_SHARDS);
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      uint64_t k = col_u64(st, 0);
      if (k >= j->nservers)
        continue;
      j->server_ids[k] = col_u64(st, 1);
      pd_strlcpy(j->server_names[k], col_text(st, 2), sizeof j->server_names[k]);
      j->shard_begin[k] = col_u64(st, 3);
      j->shard_end[k] = col_u64(st, 4);
      j->restored[k] = col_u64(st, 5);
      j->orphaned[k] = (uint8_t)sqlite3_column_int(st, 6);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
      return fail(s, "reading a job's shards", NULL, 0);
  }
  st = stmt(s, ST_LOAD_WORKERS);
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    uint64_t r = col_u64(st, 0);
    if (r >= j->nworkers)
      continue;
    pd_job_worker *w = &j->workers[r];
    w->node_id = col_u64(st, 1);
    w->epoch = (uint32_t)col_u64(st, 2);
    w->step = col_u64(st, 3);
    w->loss = sqlite3_column_double(st, 4);
    w->done = sqlite3_column_int(st, 5);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return fail(s, "reading a job's workers", NULL, 0);
  st = stmt(s, ST_LOAD_HISTORY);
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    j->history = pd_xrealloc(j->history, (j->nhistory + 1) * sizeof *j->history);
    Pando__V1__EpochRecord *e = &j->history[j->nhistory++];
    pando__v1__epoch_record__init(e);
    e->epoch = (uint32_t)col_u64(st, 0);
    /* SQLite stores NaN (a replayed epoch end's unknown loss) as NULL */
    e->train_loss = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
    e->test_accuracy = sqlite3_column_double(st, 2);
    e->test_loss = sqlite3_column_double(st, 3);
    e->test_rmse = sqlite3_column_double(st, 4);
    e->seconds = sqlite3_column_double(st, 5);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return fail(s, "reading a job's history", NULL, 0);
  st = stmt(s, ST_LOAD_ROUNDS);
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    Pando__V1__RoundRecord *rec = pando__v1__round_record__unpack(
        NULL, (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_blob(st, 0));
    if (!rec) {
      PD_WARN("coordinator state %s: job %s: a round record does not parse; skipped", s->path,
              j->id);
      continue;
    }
    j->round_history =
        pd_xrealloc(j->round_history, (j->nround_history + 1) * sizeof *j->round_history);
    Pando__V1__RoundRecord *copy = &j->round_history[j->nround_history++];
    *copy = *rec; /* scalars only: a shallow copy is whole, but for unknown fields */
    copy->base.n_unknown_fields = 0;
    copy->base.unknown_fields = NULL;
    pando__v1__round_record__free_unpacked(rec, NULL);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : fail(s, "reading a job's rounds", NULL, 0);
}

int pd_store_load_jobs(pd_store *s, void (*each)(void *ctx, pd_job *job), void *ctx, char *err,
                       size_t errlen) {
  sqlite3_stmt *st = stmt(s, ST_LOAD_JOBS);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    pd_job *j = pd_xcalloc(1, sizeof *j);
    char why[1024];
    pd_strlcpy(j->id, col_text(st, 0), sizeof j->id);
    j->spec_yaml = pd_xstrdup(col_text(st, 1));
    if (pd_job_spec_parse(j->spec_yaml, strlen(j->spec_yaml), &j->spec, why, sizeof why) != 0) {
      PD_WARN("coordinator state %s: job %s skipped: its spec no longer parses: %s", s->path, j->id,
              why);
      pd_jobs_job_free(j);
      continue;
    }
    j->state = (Pando__V1__JobState)sqlite3_column_int(st, 2);
    pd_strlcpy(j->message, col_text(st, 3), sizeof j->message);
    j->submitted = sqlite3_column_double(st, 4);
    j->started = sqlite3_column_double(st, 5);
    j->finished = sqlite3_column_double(st, 6);
    j->keys = col_u64(st, 7);
    j->train_rows = col_u64(st, 8);
    j->steps_per_epoch = (uint32_t)col_u64(st, 9);
    pd_strlcpy(j->job_token, col_text(st, 10), sizeof j->job_token);
    j->attempt = (uint32_t)col_u64(st, 11);
    j->start_clock = col_u64(st, 12);
    j->recoveries = (uint32_t)col_u64(st, 13);
    j->model_dropped = sqlite3_column_int(st, 14);
    int placed = sqlite3_column_int(st, 15);
    pd_jobs_job_shape(j);
    if (load_arrays(s, j, placed) != 0) {
      rc = pd_errf(err, errlen, -EIO, "coordinator state %s: cannot read job %s: %s", s->path,
                   j->id, sqlite3_errmsg(s->db));
      pd_jobs_job_free(j);
      sqlite3_reset(st);
      return rc;
    }
    each(ctx, j);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return fail(s, "reading the jobs", err, errlen);
  return 0;
}
