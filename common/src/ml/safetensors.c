/* Writing a model as safetensors; see pando/safetensors.h. */
#include "pando/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pando/durable.h"
#include "pando/error.h"
#include "pando/fileio.h"
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

/* ---- reading: a JSON header of objects, strings, numbers and arrays */

#define HEADER_MAX ((uint64_t)100 << 20) /* the format's own limit */

typedef struct json {
  const char *at, *end;
} json;

static void skip_space(json *j) {
  while (j->at < j->end && (*j->at == ' ' || *j->at == '\t' || *j->at == '\n' || *j->at == '\r'))
    j->at++;
}

static int expect(json *j, char ch) {
  skip_space(j);
  if (j->at >= j->end || *j->at != ch)
    return -1;
  j->at++;
  return 0;
}

/* A string into `out` (escapes other than \" and \\ are kept verbatim:
 * tensor names are plain). */
static int parse_string(json *j, char *out, size_t outlen) {
  if (expect(j, '"') != 0)
    return -1;
  size_t n = 0;
  while (j->at < j->end && *j->at != '"') {
    char ch = *j->at++;
    if (ch == '\\') {
      if (j->at >= j->end)
        return -1;
      ch = *j->at++;
    }
    if (n + 1 < outlen)
      out[n++] = ch;
  }
  if (j->at >= j->end)
    return -1;
  j->at++;
  out[n] = '\0';
  return 0;
}

static int parse_int(json *j, int64_t *out) {
  skip_space(j);
  char *stop;
  char buf[32];
  size_t n = 0;
  while (j->at + n < j->end && n + 1 < sizeof buf &&
         (j->at[n] == '-' || (j->at[n] >= '0' && j->at[n] <= '9')))
    n++;
  memcpy(buf, j->at, n);
  buf[n] = '\0';
  errno = 0;
  long long v = strtoll(buf, &stop, 10);
  if (n == 0 || *stop || errno)
    return -1;
  j->at += n;
  *out = v;
  return 0;
}

/* Skips any value (nested objects and arrays, strings, literals). */
static int skip_value(json *j, int depth) {
  skip_space(j);
  if (j->at >= j->end || depth > 16)
    return -1;
  char buf[8];
  int64_t v;
  switch (*j->at) {
  case '"':
    return parse_string(j, buf, sizeof buf);
  case '{':
  case '[': {
    char close = *j->at == '{' ? '}' : ']';
    j->at++;
    skip_space(j);
    if (j->at < j->end && *j->at == close) {
      j->at++;
      return 0;
    }
    for (;;) {
      if (close == '}' && (parse_string(j, buf, sizeof buf) != 0 || expect(j, ':') != 0))
        return -1;
      if (skip_value(j, depth + 1) != 0)
        return -1;
      skip_space(j);
      if (j->at < j->end && *j->at == ',') {
        j->at++;
        continue;
      }
      return expect(j, close);
    }
  }
  default:
    if (parse_int(j, &v) == 0)
      return 0;
    while (j->at < j->end && strchr("truefalsn.eE+-0123456789", *j->at))
      j->at++;
    return 0;
  }
}

/* What the header says of one tensor. */
typedef struct entry {
  char dtype[16];
  int ndim;
  int64_t shape[8];
  int64_t begin, end;
} entry;

static int parse_entry(json *j, entry *e) {
  memset(e, 0, sizeof *e);
  e->begin = e->end = -1;
  if (expect(j, '{') != 0)
    return -1;
  for (;;) {
    char key[32];
    if (parse_string(j, key, sizeof key) != 0 || expect(j, ':') != 0)
      return -1;
    if (strcmp(key, "dtype") == 0) {
      if (parse_string(j, e->dtype, sizeof e->dtype) != 0)
        return -1;
    } else if (strcmp(key, "shape") == 0 || strcmp(key, "data_offsets") == 0) {
      int64_t values[8];
      int count = 0;
      if (expect(j, '[') != 0)
        return -1;
      skip_space(j);
      if (j->at < j->end && *j->at == ']')
        j->at++;
      else
        for (;;) {
          if (count == 8 || parse_int(j, &values[count++]) != 0)
            return -1;
          skip_space(j);
          if (j->at < j->end && *j->at == ',') {
            j->at++;
            continue;
          }
          if (expect(j, ']') != 0)
            return -1;
          break;
        }
      if (key[0] == 's') {
        e->ndim = count;
        memcpy(e->shape, values, sizeof values);
      } else if (count == 2) {
        e->begin = values[0];
        e->end = values[1];
      } else {
        return -1;
      }
    } else if (skip_value(j, 1) != 0) {
      return -1;
    }
    skip_space(j);
    if (j->at < j->end && *j->at == ',') {
      j->at++;
      continue;
    }
    return expect(j, '}');
  }
}

static void shape_text(const int64_t *shape, int ndim, char *out, size_t outlen) {
  size_t n = (size_t)snprintf(out, outlen, "[");
  for (int d = 0; d < ndim && n < outlen; d++)
    n += (size_t)snprintf(out + n, outlen - n, "%s%" PRId64, d ? ", " : "", shape[d]);
  if (n < outlen)
    snprintf(out + n, outlen - n, "]");
}

int pd_safetensors_read_range(const char *path, const pd_param_info *params, int n, uint64_t begin,
                              uint64_t end, float *out, char *err, size_t errlen) {
  int fd;
  uint64_t size;
  int rc =
      pd_data_open(path, &fd, &size, err, errlen); /* no FIFO, device, nor outside data_roots */
  if (rc != 0)
    return rc;
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    rc = pd_errf(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    close(fd);
    return rc;
  }
  char *header = NULL;
  entry *entries = pd_xcalloc((size_t)n, sizeof *entries);
  int *found = pd_xcalloc((size_t)n, sizeof *found);
  uint64_t header_len;
  if (fread(&header_len, 8, 1, f) != 1 || header_len < 2 || header_len > HEADER_MAX) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: not a safetensors file (bad header length)", path);
    goto done;
  }
  header = pd_xmalloc(header_len);
  if (fread(header, 1, header_len, f) != header_len) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: truncated header", path);
    goto done;
  }
  fseeko(f, 0, SEEK_END);
  uint64_t data_len = (uint64_t)ftello(f) - 8 - header_len;
  json j = {header, header + header_len};
  if (expect(&j, '{') != 0)
    goto bad_header;
  skip_space(&j);
  if (j.at < j.end && *j.at == '}')
    j.at++;
  else
    for (;;) {
      char name[64];
      if (parse_string(&j, name, sizeof name) != 0 || expect(&j, ':') != 0)
        goto bad_header;
      int i = 0;
      while (i < n && strcmp(params[i].name, name) != 0)
        i++;
      entry e;
      if (i < n ? parse_entry(&j, &e) != 0 : skip_value(&j, 1) != 0)
        goto bad_header;
      if (i < n) {
        entries[i] = e;
        found[i] = 1;
      }
      skip_space(&j);
      if (j.at < j.end && *j.at == ',') {
        j.at++;
        continue;
      }
      if (expect(&j, '}') != 0)
        goto bad_header;
      break;
    }
  for (int i = 0; i < n && rc == 0; i++) {
    const pd_param_info *p = &params[i];
    const entry *e = &entries[i];
    char want[96], got[96];
    shape_text(p->shape, p->ndim, want, sizeof want);
    shape_text(e->shape, e->ndim, got, sizeof got);
    if (!found[i])
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: has no tensor '%s' (shape %s)", path, p->name,
                   want);
    else if (strcmp(e->dtype, "F32") != 0)
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: tensor '%s' is %s, expected F32", path, p->name,
                   e->dtype);
    else if (e->ndim != p->ndim || memcmp(e->shape, p->shape, (size_t)p->ndim * 8) != 0)
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: tensor '%s' has shape %s, the model needs %s",
                   path, p->name, got, want);
    else if (e->begin < 0 || e->end - e->begin != (int64_t)(p->size * 4) ||
             (uint64_t)e->end > data_len)
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: tensor '%s': data_offsets outside the data", path,
                   p->name);
  }
  for (int i = 0; i < n && rc == 0; i++) {
    const pd_param_info *p = &params[i];
    uint64_t lo = PD_MAX(begin, p->offset), hi = PD_MIN(end, p->offset + p->size);
    if (lo >= hi)
      continue;
    off_t at = (off_t)(8 + header_len + (uint64_t)entries[i].begin + (lo - p->offset) * 4);
    if (fseeko(f, at, SEEK_SET) != 0 || fread(out + (lo - begin), 4, hi - lo, f) != hi - lo)
      rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: tensor '%s': read failed", path, p->name);
  }
  goto done;
bad_header:
  rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: the JSON header is malformed near byte %zu", path,
               (size_t)(j.at - header) + 8);
done:
  free(found);
  free(entries);
  free(header);
  fclose(f);
  return rc;
}
