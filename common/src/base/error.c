/* pd_strerror(): text for Pando's error codes and for errno values. */
#include "pando/error.h"

#include <string.h>

const char *pd_strerror(int err) {
  if (err == 0)
    return "success";
  switch (-err) {
#define PD__ERR_TEXT(name, value, text)                                                            \
  case value:                                                                                      \
    return text;
    PD_ERRNO_MAP(PD__ERR_TEXT)
#undef PD__ERR_TEXT
  default:
    return strerror(-err);
  }
}
