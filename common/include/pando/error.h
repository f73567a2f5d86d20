/* Pando's error codes: 0 is success, failures are negative (-PD_E... or
 * -errno). One X-macro list makes both the enum and pd_strerror(). */
#ifndef PANDO_ERROR_H
#define PANDO_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#define PD_ERRNO_MAP(X)                                                                            \
  X(EINVAL_SPEC, 1000, "invalid job spec")                                                         \
  X(ENOTFOUND, 1001, "not found")                                                                  \
  X(ERANGE_KEYS, 1002, "key range out of bounds")                                                  \
  X(EFORMAT, 1003, "malformed data")                                                               \
  X(ERPC, 1004, "RPC failed")                                                                      \
  X(ETIMEOUT, 1005, "timed out")                                                                   \
  X(ECANCELLED, 1006, "cancelled")                                                                 \
  X(ESTATE, 1007, "operation not allowed in this state")                                           \
  X(EDUP, 1008, "already exists")                                                                  \
  X(ESHUTDOWN, 1009, "shutting down")                                                              \
  X(ETOOBIG, 1010, "larger than allowed")

enum pd_errno {
#define PD__ERR_ENUM(name, value, text) PD_##name = (value),
  PD_ERRNO_MAP(PD__ERR_ENUM)
#undef PD__ERR_ENUM
};

/* Returns a static description of an error code: a negative PD_E* value, a
 * negative errno, or 0. Never returns NULL. */
const char *pd_strerror(int err);

/* Aborts with file:line and the failed expression. For programmer errors
 * only; anything a user can cause is returned as an error instead. */
#define PD_ASSERT(x)                                                                               \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x);                    \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#endif
