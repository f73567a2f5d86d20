/* Whole-file reads for libpando and its daemons: the data readers and the
 * job spec files read by pando-worker's standalone mode and the tools. */
#ifndef PANDO_FILEIO_H
#define PANDO_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole regular file into memory with io_uring (several reads in
 * flight; plain read() where io_uring is unavailable). On success *data is
 * malloc'd (caller frees) and *len its size. Returns 0 or -errno with a
 * message in `err` naming the file. */
int pd_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

#endif
