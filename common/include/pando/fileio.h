/* Whole-file reads for libpando and its daemons: the data readers and the
 * job spec files read by pando-worker's standalone mode and the tools. */
#ifndef PANDO_FILEIO_H
#define PANDO_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole regular file into memory with io_uring (several reads in
 * flight; plain read() where io_uring is unavailable). A FIFO, device or
 * folder is refused without blocking. On success *data is malloc'd (caller
 * frees) and *len its size. Returns 0 or -errno with a message in `err`
 * naming the file. No data limits apply (pd_data_set_limits() is for the
 * data readers): this is for spec and config files the operator names. */
int pd_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

/* Defaults of the limits below (the daemons' settings data_max_bytes,
 * data_max_inflated_bytes and data_max_gzip_ratio have the same). */
#define PD_DATA_MAX_BYTES_DEFAULT (UINT64_C(4) << 30)
#define PD_DATA_MAX_INFLATED_DEFAULT (UINT64_C(8) << 30)
#define PD_DATA_MAX_GZIP_RATIO_DEFAULT 200.0
/* The gzip ratio limit applies once this much is inflated (a small file
 * may compress very well). */
#define PD_DATA_GZIP_RATIO_AFTER (UINT64_C(64) << 20)
/* At most this many data roots. */
#define PD_DATA_MAX_ROOTS 16

/* What the data readers (pando/dataset.h) may open: every data file must be
 * a regular file (FIFOs, devices and folders are refused without opening
 * them), at most max_bytes long, and a gzipped one may not inflate to more
 * than max_inflated_bytes, nor (past PD_DATA_GZIP_RATIO_AFTER) to more than
 * max_gzip_ratio times the compressed bytes read so far, so a gzip bomb is
 * refused early. With roots, a data file must resolve (realpath: "..",
 * symlinks) to a path under one of them; outside or missing files get the
 * same message, which does not say which. */
typedef struct pd_data_limits {
  const char *roots;           /* comma-separated folders; NULL or "": anywhere */
  uint64_t max_bytes;          /* largest data file on disk */
  uint64_t max_inflated_bytes; /* largest content of a gzipped data file */
  double max_gzip_ratio;       /* largest inflated / compressed ratio */
} pd_data_limits;

/* Sets the limits of every later data read in this process (call it at
 * start-up, before threads that read data; until then: no roots and the
 * defaults above). Each root is resolved with realpath() now; a root that
 * does not exist is skipped (and named in `err`, for a warning; `err` is
 * "" otherwise), and when roots are given but none exists no data file
 * opens. Returns 0, or -EINVAL with a message naming the bad setting in
 * `err` (nothing changed). */
int pd_data_set_limits(const pd_data_limits *limits, char *err, size_t errlen);

/* Opens a data file (job data, model.init) for reading under the limits of
 * pd_data_set_limits() (data roots, regular files only, data_max_bytes),
 * without blocking. On success *fd is open (caller closes) and *size is the
 * file's size. Returns 0 or a negative error with a message naming `path`
 * (and never its contents). */
int pd_data_open(const char *path, int *fd, uint64_t *size, char *err, size_t errlen);

#endif
