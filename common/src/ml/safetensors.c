/* Writing a model as safetensors; see pando/safetensors.h. */
#include "pando/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/durable.h"
#include "pando/error.h"
#include "pando/util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

/* Appends to a growing string. */
typedef struct text {
  char *data;
  size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    PD_ASSERT(n >= 0);
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    t->cap = PD_MAX(t->cap * 2, t->len + (size_t)n + 256);
    t->data = pd_xrealloc(t->data, t->cap);
  }
}

/* A JSON string of `s` (names are ASCII; anything else is escaped). */
static void add_string(text *t, const char *s) {
  add(t, "\"");
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      add(t, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      add(t, "\\u%04x", ch);
    else
      add(t, "%c", ch);
  }
  add(t, "\"");
}

int pd_safetensors_write(const char *path, const pd_param_info *params, int n, const float *values,
                         const char *metadata_job, char *err, size_t errlen) {
  text header = {pd_xmalloc(256), 0, 256};
  header.data[0] = '\0';
  add(&header, "{");
  if (metadata_job) {
    add(&header, "\"__metadata__\":{\"pando.job\":");
    add_string(&header, metadata_job);
    add(&header, "}");
  }
  uint64_t end = 0;
  for (int i = 0; i < n; i++) {
    const pd_param_info *p = &params[i];
    PD_ASSERT(p->offset == end); /* a layout covers the keys in order */
    add(&header, "%s", i > 0 || metadata_job ? "," : "");
    add_string(&header, p->name);
    add(&header, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < p->ndim; d++)
      add(&header, "%s%" PRId64, d ? "," : "", p->shape[d]);
    add(&header, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", p->offset * 4,
        (p->offset + p->size) * 4);
    end = p->offset + p->size;
  }
  add(&header, "}");
  while (header.len % 8) /* the data starts 8-byte aligned; spaces are allowed */
    add(&header, " ");
  uint64_t header_len = header.len;
  pd_durable_piece pieces[3] = {
      {&header_len, 8}, {header.data, header.len}, {values, end * sizeof(float)}};
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
  if (!slash)
    pd_strlcpy(dir, ".", sizeof dir);
  else if (slash == path)
    pd_strlcpy(dir, "/", sizeof dir);
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  int rc = *name ? pd_durable_write(dir, name, pieces, 3, err, errlen)
                 : pd_errf(err, errlen, -EINVAL, "%s: not a file name", path);
  free(header.data);
  return rc;
}
