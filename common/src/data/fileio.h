/* Private to the data readers (common/src/data): the byte stream over a
 * plain or gzipped file that the IDX reader parses, and whole-file reads
 * that inflate gzip for the text readers. fileio.c is the bottom of the data
 * code: it includes no other data header. */
#ifndef PANDO_DATA_FILEIO_H
#define PANDO_DATA_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifndef ZLIB_CONST
#define ZLIB_CONST
#endif
#include <zlib.h>

#include "pando/fileio.h"

/* A byte stream over a plain or gzipped file, read from an fd in small
 * chunks or from the whole file in memory. */
typedef struct pd__stream {
  const char *path;  /* for messages */
  int fd;            /* -1: the whole file is in memory at `in` */
  const uint8_t *in; /* raw file bytes available: in[in_pos, in_len) */
  size_t in_len, in_pos;
  uint64_t fd_offset;  /* next file offset to read (fd mode) */
  uint8_t *fd_buf;     /* fd mode: a small read buffer */
  bool gz;             /* file starts with the gzip magic 1f 8b */
  z_stream z;          /* gz: inflate state (z_live once initialised) */
  bool z_live, z_done; /* z_done: no more output will come */
  bool gz_truncated;   /* the gzip stream ended without its end marker */
  uint8_t *out;        /* gz: inflated bytes out[out_pos, out_len) */
  size_t out_len, out_pos;
  uint64_t inflated; /* gz: bytes inflated so far (checked against the limits) */
  uint64_t deflated; /* gz: compressed bytes fed to inflate so far */
} pd__stream;

/* pd_read_file() of a data file: opened with pd_data_open(). */
int pd__read_data(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

/* Opens a stream over `fd` (read from its start) or, with fd < 0, over the
 * `len` bytes at `data` (borrowed). Close it with pd__stream_close() even
 * when this fails. Returns 0 or a negative error naming `path`. */
int pd__stream_open(pd__stream *s, const char *path, int fd, const uint8_t *data, size_t len,
                    char *err, size_t errlen);
void pd__stream_close(pd__stream *s);
/* Points *p at the next *n > 0 bytes of (inflated) content, or sets *n = 0 at
 * the end. Returns 0 or a negative error (corrupt gzip data, read error). */
int pd__stream_peek(pd__stream *s, const uint8_t **p, size_t *n, char *err, size_t errlen);
/* Marks `n` bytes of the last peek as read. */
void pd__stream_consume(pd__stream *s, size_t n);
/* Copies up to `want` bytes into `dst`; *got receives how many there were. */
int pd__stream_read(pd__stream *s, uint8_t *dst, size_t want, size_t *got, char *err,
                    size_t errlen);

/* Reads a whole data file with pd__read_data() and, when it starts with the gzip
 * magic 1f 8b, inflates it (several members are fine; the inflate limits
 * apply). On success *data is
 * malloc'd (caller frees) and *len is the content's size. Returns 0 or a
 * negative error with a message naming the file. */
int pd__read_content(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

/* Reads the first line of a data file (pd_data_open(); inflated if
 * gzipped), without its '\n',
 * reading no further than needed. On success *line is malloc'd and
 * NUL-terminated (caller frees) and *len is its length. Returns 0 or a
 * negative error with a message naming the file. */
int pd__read_first_line(const char *path, char **line, size_t *len, char *err, size_t errlen);

#endif
