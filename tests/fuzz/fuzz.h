/* Shared by the libFuzzer harnesses of tests/fuzz (one per decoder or
 * parser; `make fuzz`, `make fuzz-ci`): the entry point each defines, and a
 * way to hand the input to readers that take a path. */
#ifndef PANDO_FUZZ_H
#define PANDO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data[0, size) to a fresh memory file and puts its path
 * (/proc/self/fd/N) into `path`. Returns the descriptor; close it after. */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t pathlen) {
  int fd = memfd_create("fuzz", 0);
  if (fd < 0)
    abort();
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0)
      abort();
    done += (size_t)n;
  }
  snprintf(path, pathlen, "/proc/self/fd/%d", fd);
  return fd;
}

#endif
