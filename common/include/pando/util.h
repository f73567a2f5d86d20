/* Small helpers every module uses: allocation that aborts on out-of-memory,
 * monotonic time, string copies into fixed buffers. */
#ifndef PANDO_UTIL_H
#define PANDO_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define PD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PD_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation: abort with a message when memory is exhausted (never NULL). */
void *pd_xmalloc(size_t size);
void *pd_xcalloc(size_t count, size_t size);
void *pd_xrealloc(void *ptr, size_t size);
char *pd_xstrdup(const char *s);
/* Allocates `size` bytes aligned to 64 bytes; free with free(). */
void *pd_xmalloc_aligned(size_t size);

/* splitmix64 (Steele, Lea, Flood 2014): pd_mix64 is its finaliser, a
 * well-mixed hash of z; pd_splitmix64 the next output of the counter-based
 * generator whose state is *state. Seeded initialisation, partitions,
 * shuffles, dropout masks and synthetic data all draw from it. */
static inline uint64_t pd_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline uint64_t pd_splitmix64(uint64_t *state) {
  return pd_mix64(*state += 0x9e3779b97f4a7c15ull);
}

/* A uniform integer in [0, n), n >= 1, from *state (rejecting the biased
 * low values), and a Fisher-Yates shuffle of index[0..n) with it. */
static inline uint64_t pd_random_below(uint64_t *state, uint64_t n) {
  uint64_t threshold = (0 - n) % n, r;
  do
    r = pd_splitmix64(state);
  while (r < threshold);
  return r % n;
}
static inline void pd_shuffle_u64(uint64_t *index, uint64_t n, uint64_t *state) {
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = pd_random_below(state, i), t = index[i - 1];
    index[i - 1] = index[j];
    index[j] = t;
  }
}
/* A double uniform in [0, 1) from *state. */
static inline double pd_random_unit(uint64_t *state) {
  return (double)(pd_splitmix64(state) >> 11) * 0x1.0p-53;
}

/* Writes v as a protobuf varint (7 bits a byte, low first, high bit: more
 * follow) at p, which has room for 10 bytes; returns the bytes written. */
size_t pd_put_varint(uint8_t *p, uint64_t v);

/* Seconds on the monotonic clock. */
double pd_now(void);
/* Nanoseconds on the monotonic clock. */
uint64_t pd_now_ns(void);
/* Seconds since the Unix epoch (wall clock), for timestamps shown to users. */
double pd_wall_now(void);

/* Copies `src` into `dst` of `size` bytes, always NUL-terminating it.
 * Returns 0, or -PD_EFORMAT when `src` did not fit (dst is then truncated). */
int pd_strlcpy(char *dst, const char *src, size_t size);

/* Formats into `err` of `errlen` bytes (may be NULL/0) and returns `code`, so
 * that a failure path reads `return pd_errf(err, errlen, -EINVAL, "...")`. */
int pd_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
