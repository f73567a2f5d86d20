/* Durable files: a file that is either absent, its old contents, or all of
 * its new contents after a crash (kill -9, power loss), and CRC-32 checksums
 * to notice a file that was damaged after it was written. Checkpoints
 * (services/ps-server/checkpoint.c) are made of such files. */
#ifndef PANDO_DURABLE_H
#define PANDO_DURABLE_H

#include <stddef.h>
#include <stdint.h>

/* One piece of a file's contents: `bytes` bytes at `data` (borrowed). */
typedef struct pd_durable_piece {
  const void *data;
  size_t bytes;
} pd_durable_piece;

/* Writes the concatenation of `pieces` to `dir`/`name` durably: into a
 * temporary file in `dir`, fsync, rename over `name`, fsync of `dir`. On
 * failure (ENOSPC, EIO...) the temporary file is removed, `name` keeps its
 * old contents (or stays absent), and the return is -errno with a message
 * naming the file in `err`. Returns 0 on success. */
int pd_durable_write(const char *dir, const char *name, const pd_durable_piece *pieces,
                     size_t npieces, char *err, size_t errlen);

/* Creates directory `path` and its missing parents (mode 0755) and fsyncs
 * the parent of each one it creates, so that it survives a crash. Returns 0
 * (also when it existed) or -errno with a message in `err`. */
int pd_durable_mkdirs(const char *path, char *err, size_t errlen);

/* Removes directory `path` with the files in it (not recursive: a checkpoint
 * directory holds only files), then fsyncs its parent. Returns 0 or -errno. */
int pd_durable_remove_dir(const char *path);

/* Reads the whole of file `path` into a new buffer (*data, free with free();
 * one NUL byte past the end so text can be parsed) of *bytes bytes, refusing
 * files longer than `max_bytes`. Returns 0 or -errno / -PD_EFORMAT (too
 * long) with a message naming the file in `err`. */
int pd_file_read_all(const char *path, size_t max_bytes, char **data, size_t *bytes, char *err,
                     size_t errlen);

/* CRC-32 (zlib's, the polynomial of gzip and PNG) of `bytes` bytes at
 * `data`, continuing from `crc` (0 to start). */
uint32_t pd_crc32(uint32_t crc, const void *data, size_t bytes);

#endif
