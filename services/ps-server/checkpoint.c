/* A shard's checkpoint files: writing, verified reading, listing, pruning,
 * and the writer thread; see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/log.h"
#include "pando/schedule.h"
#include "pando/util.h"

#define DATA_MAGIC "PDSHARD1"
#define MANIFEST_MAGIC "pando-checkpoint 1"
#define NAME_BYTES 16
/* per section: name, offset, bytes, crc32, padding */
#define ENTRY_BYTES (NAME_BYTES + 8 + 8 + 4 + 4)
#define MANIFEST_MAX 4096
/* The largest data file read back: 64 GiB. */
#define DATA_MAX ((size_t)64 << 30)

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoints are little-endian");

int pd_checkpoint_due(const pd_job_spec *spec, uint64_t min_partition_rows, uint64_t version) {
  if (version == 0 || version > INT64_MAX)
    return 0;
  if (spec->checkpoint.every_clocks > 0)
    return version % (uint64_t)spec->checkpoint.every_clocks == 0;
  if (spec->checkpoint.every_epochs > 0 && min_partition_rows > 0) {
    uint32_t step;
    int epoch = pd_schedule_epoch_of_clock(spec, min_partition_rows, (int64_t)version, &step);
    int done = epoch - 1; /* epochs finished when `version` is the first clock of `epoch` */
    return step == 0 && done >= 1 && done <= spec->training.epochs &&
           done % spec->checkpoint.every_epochs == 0;
  }
  return 0;
}

int pd_checkpoint_job_ok(const char *job) {
  size_t n = strlen(job);
  if (n == 0 || n >= sizeof(((pd_checkpoint_key *)0)->job) || job[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = job[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '-'))
      return 0;
  }
  return 1;
}

static int bad_job(const char *job, char *err, size_t errlen) {
  return pd_errf(err, errlen, -EINVAL,
                 "job '%.100s' cannot name a checkpoint folder: letters, digits, '.', '_' and "
                 "'-' only, not starting with '.'",
                 job);
}

void pd_checkpoint_dir(const char *data_dir, const char *job, uint64_t id, char *out,
                       size_t outlen) {
  snprintf(out, outlen, "%s/jobs/%s/ckpt-%08" PRIu64, data_dir, job, id);
}

static void shard_file(const pd_checkpoint_key *key, const char *suffix, char *out, size_t outlen) {
  snprintf(out, outlen, "shard-%" PRIu64 "-%" PRIu64 ".%s", key->begin, key->end, suffix);
}

/* ---- writing */

int pd_checkpoint_write(const char *data_dir, const pd_checkpoint_key *key,
                        const pd_shard_snapshot *snap, char *err, size_t errlen) {
  if (!pd_checkpoint_job_ok(key->job))
    return bad_job(key->job, err, errlen);
  const pd_shard_section *sections;
  size_t nsections = pd_shard_snapshot_sections(snap, &sections);
  char dir[PATH_MAX], data_name[96], manifest_name[96];
  pd_checkpoint_dir(data_dir, key->job, key->id, dir, sizeof dir);
  shard_file(key, "data", data_name, sizeof data_name);
  shard_file(key, "manifest", manifest_name, sizeof manifest_name);
  int rc = pd_durable_mkdirs(dir, err, errlen);
  if (rc != 0)
    return rc;

  /* the header, then every section's pieces */
  size_t header_bytes = 8 + 4 + 4 + nsections * ENTRY_BYTES;
  unsigned char *header = pd_xcalloc(1, header_bytes);
  size_t npieces = 1;
  for (size_t i = 0; i < nsections; i++)
    npieces += sections[i].npieces;
  pd_durable_piece *pieces = pd_xcalloc(npieces, sizeof *pieces);
  memcpy(header, DATA_MAGIC, 8);
  uint32_t count = (uint32_t)nsections;
  memcpy(header + 8, &count, 4);
  uint64_t offset = header_bytes;
  size_t p = 1;
  for (size_t i = 0; i < nsections; i++) {
    const pd_shard_section *s = &sections[i];
    unsigned char *entry = header + 16 + i * ENTRY_BYTES;
    PD_ASSERT(strlen(s->name) < NAME_BYTES);
    memcpy(entry, s->name, strlen(s->name));
    uint32_t crc = 0;
    for (size_t j = 0; j < s->npieces; j++) {
      crc = pd_crc32(crc, s->pieces[j].data, s->pieces[j].bytes);
      pieces[p++] = s->pieces[j];
    }
    memcpy(entry + NAME_BYTES, &offset, 8);
    memcpy(entry + NAME_BYTES + 8, &s->bytes, 8);
    memcpy(entry + NAME_BYTES + 16, &crc, 4);
    offset += s->bytes;
  }
  pieces[0] = (pd_durable_piece){header, header_bytes};
  uint32_t file_crc = 0;
  for (size_t i = 0; i < npieces; i++)
    file_crc = pd_crc32(file_crc, pieces[i].data, pieces[i].bytes);
  rc = pd_durable_write(dir, data_name, pieces, npieces, err, errlen);
  if (rc == 0) {
    char manifest[MANIFEST_MAX];
    int n = snprintf(manifest, sizeof manifest,
                     MANIFEST_MAGIC "\njob %s\ncheckpoint %" PRIu64 "\nbegin %" PRIu64
                                    "\nend %" PRIu64 "\nworkers %u\nversion %" PRIu64
                                    "\ndata %s\nbytes %" PRIu64 "\ncrc32 %08x\n",
                     key->job, key->id, key->begin, key->end, key->num_workers,
                     pd_shard_snapshot_version(snap), data_name, offset, file_crc);
    PD_ASSERT(n > 0 && (size_t)n < sizeof manifest - 32);
    n += snprintf(manifest + n, sizeof manifest - (size_t)n, "manifest-crc32 %08x\n",
                  pd_crc32(0, manifest, (size_t)n));
    pd_durable_piece piece = {manifest, (size_t)n};
    rc = pd_durable_write(dir, manifest_name, &piece, 1, err, errlen);
  }
  free(pieces);
  free(header);
  return rc;
}

/* ---- reading */

/* The value of manifest line "NAME VALUE" in `text`, copied to `out`. */
static int manifest_field(const char *text, const char *name, char *out, size_t outlen) {
  size_t len = strlen(name);
  for (const char *line = text; line && *line;
       line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (strncmp(line, name, len) == 0 && line[len] == ' ') {
      const char *value = line + len + 1, *eol = strchr(value, '\n');
      size_t n = eol ? (size_t)(eol - value) : strlen(value);
      if (n >= outlen)
        return -1;
      memcpy(out, value, n);
      out[n] = '\0';
      return 0;
    }
  }
  return -1;
}

static int manifest_u64(const char *text, const char *name, uint64_t *out) {
  char value[64], *end;
  if (manifest_field(text, name, value, sizeof value) != 0 || !value[0])
    return -1;
  errno = 0;
  unsigned long long v = strtoull(value, &end, 10);
  if (*end || errno)
    return -1;
  *out = v;
  return 0;
}

static int manifest_hex32(const char *text, const char *name, uint32_t *out) {
  char value[16], *end;
  if (manifest_field(text, name, value, sizeof value) != 0 || !value[0])
    return -1;
  unsigned long v = strtoul(value, &end, 16);
  if (*end || v > UINT32_MAX)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

void pd_checkpoint_data_close(pd_checkpoint_data *data) {
  free(data->file);
  data->file = NULL;
}

int pd_checkpoint_read(const char *data_dir, const pd_checkpoint_key *key, pd_checkpoint_data *out,
                       char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!pd_checkpoint_job_ok(key->job))
    return bad_job(key->job, err, errlen);
  char dir[PATH_MAX], name[96], path[PATH_MAX + 100], job[100], data_name[96];
  pd_checkpoint_dir(data_dir, key->job, key->id, dir, sizeof dir);
  shard_file(key, "manifest", name, sizeof name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *manifest = NULL, *file = NULL;
  size_t manifest_bytes, file_bytes;
  int rc = pd_file_read_all(path, MANIFEST_MAX, &manifest, &manifest_bytes, err, errlen);
  if (rc != 0)
    return rc;
  uint64_t id, begin, end, workers, version, bytes;
  uint32_t crc, manifest_crc;
  const char *crc_line = strstr(manifest, "manifest-crc32 ");
  if (strncmp(manifest, MANIFEST_MAGIC "\n", strlen(MANIFEST_MAGIC) + 1) != 0 || !crc_line ||
      manifest_hex32(crc_line, "manifest-crc32", &manifest_crc) != 0 ||
      manifest_field(manifest, "job", job, sizeof job) != 0 ||
      manifest_u64(manifest, "checkpoint", &id) != 0 ||
      manifest_u64(manifest, "begin", &begin) != 0 || manifest_u64(manifest, "end", &end) != 0 ||
      manifest_u64(manifest, "workers", &workers) != 0 ||
      manifest_u64(manifest, "version", &version) != 0 ||
      manifest_field(manifest, "data", data_name, sizeof data_name) != 0 ||
      manifest_u64(manifest, "bytes", &bytes) != 0 ||
      manifest_hex32(manifest, "crc32", &crc) != 0) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: not a complete checkpoint manifest", path);
    goto done;
  }
  if (pd_crc32(0, manifest, (size_t)(crc_line - manifest)) != manifest_crc) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: checksum mismatch: the manifest is damaged", path);
    goto done;
  }
  if (strcmp(job, key->job) != 0 || id != key->id || begin != key->begin || end != key->end ||
      (key->num_workers && workers != key->num_workers) || strchr(data_name, '/')) {
    rc = pd_errf(err, errlen, -PD_EFORMAT,
                 "%s: holds job %s checkpoint %" PRIu64 " keys [%" PRIu64 ", %" PRIu64
                 ") of %" PRIu64 " workers, expected %s %" PRIu64 " [%" PRIu64 ", %" PRIu64
                 ") of %u",
                 path, job, id, begin, end, workers, key->job, key->id, key->begin, key->end,
                 key->num_workers);
    goto done;
  }
  snprintf(path, sizeof path, "%s/%s", dir, data_name);
  if ((rc = pd_file_read_all(path, DATA_MAX, &file, &file_bytes, err, errlen)) != 0)
    goto done;
  if (file_bytes != bytes) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %zu bytes, the manifest says %" PRIu64, path,
                 file_bytes, bytes);
    goto done;
  }
  if (pd_crc32(0, file, file_bytes) != crc) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: checksum mismatch: the file is damaged", path);
    goto done;
  }
  uint32_t count;
  memcpy(&count, file + 8, 4);
  if (file_bytes < 16 || memcmp(file, DATA_MAGIC, 8) != 0 || count > PD_SHARD_MAX_SECTIONS ||
      file_bytes < 16 + (size_t)count * ENTRY_BYTES) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: not a shard checkpoint", path);
    goto done;
  }
  for (uint32_t i = 0; i < count; i++) {
    const char *entry = file + 16 + (size_t)i * ENTRY_BYTES;
    uint64_t offset, size;
    uint32_t section_crc;
    memcpy(out->names[i], entry, NAME_BYTES);
    out->names[i][NAME_BYTES - 1] = '\0';
    memcpy(&offset, entry + NAME_BYTES, 8);
    memcpy(&size, entry + NAME_BYTES + 8, 8);
    memcpy(&section_crc, entry + NAME_BYTES + 16, 4);
    if (offset > file_bytes || size > file_bytes - offset) {
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: section '%s' lies outside the file", path,
                   out->names[i]);
      goto done;
    }
    if (pd_crc32(0, file + offset, size) != section_crc) {
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: checksum mismatch in section '%s'", path,
                   out->names[i]);
      goto done;
    }
    out->pieces[i] = (pd_durable_piece){file + offset, size};
    out->sections[i] = (pd_shard_section){out->names[i], &out->pieces[i], 1, size};
  }
  out->key = *key;
  out->key.num_workers = (uint32_t)workers;
  out->version = version;
  out->nsections = count;
  out->file = file;
  file = NULL;
done:
  free(file);
  free(manifest);
  return rc;
}

/* Checkpoint ids of `job` (directories ckpt-ID), ascending; returns how many. */
static size_t list_ids(const char *data_dir, const char *job, uint64_t **ids) {
  char dir[PATH_MAX];
  *ids = NULL;
  if (!pd_checkpoint_job_ok(job))
    return 0;
  snprintf(dir, sizeof dir, "%s/jobs/%s", data_dir, job);
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    if (strncmp(e->d_name, "ckpt-", 5) != 0 || !e->d_name[5])
      continue;
    unsigned long long id = strtoull(e->d_name + 5, &end, 10);
    if (*end)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      *ids = pd_xrealloc(*ids, cap * sizeof **ids);
    }
    (*ids)[n++] = id;
  }
  closedir(d);
  for (size_t i = 1; i < n; i++) /* insertion sort: a job keeps a few */
    for (size_t j = i; j > 0 && (*ids)[j - 1] > (*ids)[j]; j--) {
      uint64_t t = (*ids)[j];
      (*ids)[j] = (*ids)[j - 1];
      (*ids)[j - 1] = t;
    }
  return n;
}

size_t pd_checkpoint_list(const char *data_dir, const char *job, uint64_t begin, uint64_t end,
                          uint64_t *ids, size_t max) {
  uint64_t *all;
  size_t n = list_ids(data_dir, job, &all), found = 0;
  pd_checkpoint_key key = {.begin = begin, .end = end};
  pd_strlcpy(key.job, job, sizeof key.job);
  for (size_t i = 0; i < n; i++) {
    char dir[PATH_MAX], name[96], path[PATH_MAX + 100];
    key.id = all[i];
    pd_checkpoint_dir(data_dir, job, all[i], dir, sizeof dir);
    shard_file(&key, "manifest", name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    fclose(f);
    if (found < max)
      ids[found] = all[i];
    found++;
  }
  free(all);
  return found;
}

uint64_t pd_checkpoint_newest(const char *data_dir, const char *job, uint64_t begin, uint64_t end) {
  size_t n = pd_checkpoint_list(data_dir, job, begin, end, NULL, 0);
  if (n == 0)
    return 0;
  uint64_t *ids = pd_xcalloc(n, sizeof *ids);
  pd_checkpoint_list(data_dir, job, begin, end, ids, n);
  uint64_t newest = ids[n - 1];
  free(ids);
  return newest;
}

int pd_checkpoint_read_latest(const char *data_dir, pd_checkpoint_key *key, uint64_t max_id,
                              pd_checkpoint_data *out, char *err, size_t errlen) {
  uint64_t *ids;
  size_t n = list_ids(data_dir, key->job, &ids);
  int rc = -ENOENT;
  for (size_t i = n; i-- > 0 && rc != 0;) {
    if (ids[i] > max_id)
      continue;
    key->id = ids[i];
    rc = pd_checkpoint_read(data_dir, key, out, err, errlen);
    if (rc != 0)
      PD_WARN("checkpoint %" PRIu64 " of job %s refused: %s", ids[i], key->job, err);
  }
  free(ids);
  if (rc != 0)
    return pd_errf(err, errlen, -ENOENT,
                   "job %s: no complete checkpoint of keys [%" PRIu64 ", %" PRIu64
                   ") up to %" PRIu64 " verifies under %s",
                   key->job, key->begin, key->end, max_id, data_dir);
  return 0;
}

int pd_checkpoint_prune(const char *data_dir, const char *job, int keep) {
  uint64_t *ids;
  size_t n = list_ids(data_dir, job, &ids);
  int removed = 0;
  for (size_t i = 0; keep > 0 && i + (size_t)keep < n; i++) {
    char dir[PATH_MAX];
    pd_checkpoint_dir(data_dir, job, ids[i], dir, sizeof dir);
    if (pd_durable_remove_dir(dir) == 0)
      removed++;
  }
  free(ids);
  return removed;
}

/* ---- the writer thread */

typedef struct write_job {
  struct write_job *next;
  pd_checkpoint_key key;
  pd_shard_snapshot *snap;
  int keep;
  pd_checkpoint_done_fn done;
  void *user;
} write_job;

struct pd_checkpoint_writer {
  char *data_dir;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  write_job *head, **tail;
  int stopping;
};

static void *writer_main(void *arg) {
  pd_checkpoint_writer *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stopping)
      pthread_cond_wait(&w->cv, &w->mu);
    write_job *job = w->head;
    if (!job)
      break;
    w->head = job->next;
    if (!w->head)
      w->tail = &w->head;
    pthread_mutex_unlock(&w->mu);
    char err[512] = "";
    int rc = pd_checkpoint_write(w->data_dir, &job->key, job->snap, err, sizeof err);
    pd_shard_snapshot_free(job->snap);
    if (rc == 0 && job->keep > 0)
      pd_checkpoint_prune(w->data_dir, job->key.job, job->keep);
    if (job->done)
      job->done(job->user, &job->key, rc, err);
    free(job);
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

pd_checkpoint_writer *pd_checkpoint_writer_new(const char *data_dir) {
  pd_checkpoint_writer *w = pd_xcalloc(1, sizeof *w);
  w->data_dir = pd_xstrdup(data_dir);
  w->tail = &w->head;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  PD_ASSERT(pthread_create(&w->thread, NULL, writer_main, w) == 0);
  return w;
}

void pd_checkpoint_writer_submit(pd_checkpoint_writer *w, const pd_checkpoint_key *key,
                                 pd_shard_snapshot *snap, int keep, pd_checkpoint_done_fn done,
                                 void *user) {
  write_job *job = pd_xcalloc(1, sizeof *job);
  job->key = *key;
  job->snap = snap;
  job->keep = keep;
  job->done = done;
  job->user = user;
  pthread_mutex_lock(&w->mu);
  *w->tail = job;
  w->tail = &job->next;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void pd_checkpoint_writer_free(pd_checkpoint_writer *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->stopping = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w->data_dir);
  free(w);
}
