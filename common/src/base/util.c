/* Allocation, time and string helpers shared by every module. */
#include "pando/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pando/error.h"

static void *oom(size_t size) {
  fprintf(stderr, "pando: out of memory allocating %zu bytes\n", size);
  abort();
}

void *pd_xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  return p ? p : oom(size);
}

void *pd_xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  return p ? p : oom(count * size);
}

void *pd_xrealloc(void *ptr, size_t size) {
  void *p = realloc(ptr, size ? size : 1);
  return p ? p : oom(size);
}

char *pd_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(pd_xmalloc(n), s, n);
}

void *pd_xmalloc_aligned(size_t size) {
  void *p = NULL;
  if (posix_memalign(&p, 64, size ? size : 64) != 0)
    return oom(size);
  return p;
}

double pd_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t pd_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double pd_wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int pd_strlcpy(char *dst, const char *src, size_t size) {
  size_t n = strlen(src);
  if (size == 0)
    return -PD_EFORMAT;
  if (n >= size) {
    memcpy(dst, src, size - 1);
    dst[size - 1] = '\0';
    return -PD_EFORMAT;
  }
  memcpy(dst, src, n + 1);
  return 0;
}

int pd_errf(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

size_t pd_put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}
