/* The IDX reader (Fashion-MNIST's format), gzipped or not: headers, the
 * rows of a feature file and its label file; see pando/dataset.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset_internal.h"
#include "fileio.h"
#include "pando/dataset.h"
#include "pando/error.h"
#include "pando/util.h"

#define IDX_TYPE_UBYTE 0x08

typedef struct idx_header {
  uint32_t magic; /* 0x0000TTNN: type TT, NN dimensions */
  int ndim;
  uint64_t rows; /* first dimension */
  uint64_t cols; /* product of the others (1 when ndim is 1) */
} idx_header;

static const char *idx_type_name(int type) {
  switch (type) {
  case 0x08:
    return "unsigned byte";
  case 0x09:
    return "signed byte";
  case 0x0B:
    return "short";
  case 0x0C:
    return "int";
  case 0x0D:
    return "float";
  case 0x0E:
    return "double";
  default:
    return NULL;
  }
}

static int idx_read_header(pd__stream *s, idx_header *h, char *err, size_t errlen) {
  uint8_t buf[4 + 4 * 255];
  size_t got;
  int rc = pd__stream_read(s, buf, 4, &got, err, errlen);
  if (rc != 0)
    return rc;
  if (got < 4)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: not an IDX file (%zu bytes%s)", s->path, got,
                   s->gz_truncated ? " after inflating a truncated gzip stream" : "");
  h->magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
  int type = buf[2];
  h->ndim = buf[3];
  if (buf[0] != 0 || buf[1] != 0 || !idx_type_name(type) || h->ndim == 0)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: not an IDX file (its first 4 bytes are not an IDX magic number 0x0000TTNN "
                   "of a known type TT and NN >= 1 dimensions)",
                   s->path); /* the bytes are not shown: it may be anyone's file */
  if (type != IDX_TYPE_UBYTE)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: IDX data type 0x%02x (%s) is not supported, only 0x08 (unsigned byte)",
                   s->path, type, idx_type_name(type));
  size_t dims_len = 4 * (size_t)h->ndim;
  if ((rc = pd__stream_read(s, buf + 4, dims_len, &got, err, errlen)) != 0)
    return rc;
  if (got < dims_len)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: truncated IDX header: %d dimensions need %zu bytes, got %zu", s->path,
                   h->ndim, dims_len, got);
  h->cols = 1;
  for (int i = 0; i < h->ndim; i++) {
    const uint8_t *d = buf + 4 + 4 * i;
    uint64_t dim = (uint64_t)d[0] << 24 | (uint64_t)d[1] << 16 | (uint64_t)d[2] << 8 | d[3];
    if (i == 0) {
      h->rows = dim;
      continue;
    }
    if (dim == 0)
      return pd_errf(err, errlen, -PD_EFORMAT, "%s: IDX dimension %d is 0", s->path, i);
    h->cols *= dim;
    if (h->cols > UINT32_MAX)
      return pd_errf(err, errlen, -PD_EFORMAT,
                     "%s: more than %u values per row (IDX dimensions after the first)", s->path,
                     UINT32_MAX);
  }
  return 0;
}

/* Reads the `expected` data bytes after the header, converts bytes
 * [keep_begin, keep_end) of them into `features` (scaled to [0, 1]) or
 * `labels`, and checks that the data is exactly `expected` bytes long. */
static int idx_read_data(pd__stream *s, uint64_t expected, uint64_t keep_begin, uint64_t keep_end,
                         float *features, uint8_t *labels, char *err, size_t errlen) {
  float scale[256];
  for (int i = 0; i < 256; i++)
    scale[i] = (float)i / 255.0f;
  uint64_t pos = 0;
  const uint8_t *p;
  size_t n;
  int rc;
  while (pos < expected) {
    if ((rc = pd__stream_peek(s, &p, &n, err, errlen)) != 0)
      return rc;
    if (n == 0)
      return pd_errf(err, errlen, -PD_EFORMAT,
                     "%s: truncated: expected %llu bytes of data, got %llu%s", s->path,
                     (unsigned long long)expected, (unsigned long long)pos,
                     s->gz_truncated ? " (the gzip stream is cut short)" : "");
    uint64_t take = PD_MIN((uint64_t)n, expected - pos);
    uint64_t lo = PD_MAX(pos, keep_begin), hi = PD_MIN(pos + take, keep_end);
    if (lo < hi) {
      const uint8_t *src = p + (lo - pos);
      size_t count = (size_t)(hi - lo);
      if (features) {
        float *dst = features + (lo - keep_begin);
        for (size_t i = 0; i < count; i++)
          dst[i] = scale[src[i]];
      } else {
        memcpy(labels + (lo - keep_begin), src, count);
      }
    }
    pd__stream_consume(s, (size_t)take);
    pos += take;
  }
  uint64_t extra = 0;
  for (;;) {
    if ((rc = pd__stream_peek(s, &p, &n, err, errlen)) != 0)
      return rc;
    if (n == 0)
      break;
    extra += n;
    pd__stream_consume(s, n);
  }
  if (extra)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: too long: expected %llu bytes of data, got %llu",
                   s->path, (unsigned long long)expected, (unsigned long long)(expected + extra));
  if (s->gz_truncated)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: truncated gzip stream (no end marker)", s->path);
  return 0;
}

/* Before allocating for a header's claims: a plain file in memory must hold
 * exactly `expected` data bytes, and a gzipped one must be able to inflate to
 * that much (deflate expands at most ~1032:1). */
static int idx_check_size(const pd__stream *s, uint64_t expected, char *err, size_t errlen) {
  uint64_t avail = s->in_len - s->in_pos;
  if (s->gz) {
    if (expected / 1032 > s->in_len)
      return pd_errf(err, errlen, -PD_EFORMAT,
                     "%s: truncated: expected %llu bytes of data, more than %zu gzipped bytes "
                     "can hold",
                     s->path, (unsigned long long)expected, s->in_len);
    return 0;
  }
  if (avail < expected)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: truncated: expected %llu bytes of data, got %llu",
                   s->path, (unsigned long long)expected, (unsigned long long)avail);
  if (avail > expected)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: too long: expected %llu bytes of data, got %llu",
                   s->path, (unsigned long long)expected, (unsigned long long)avail);
  return 0;
}

int pd_idx_peek(const char *path, uint64_t *rows, uint64_t *cols, char *err, size_t errlen) {
  int fd;
  uint64_t size;
  int rc = pd_data_open(path, &fd, &size, err, errlen);
  if (rc != 0)
    return rc;
  pd__stream s;
  idx_header h;
  rc = pd__stream_open(&s, path, fd, NULL, 0, err, errlen);
  if (rc == 0)
    rc = idx_read_header(&s, &h, err, errlen);
  if (rc == 0) {
    *rows = h.rows;
    *cols = h.cols;
  }
  pd__stream_close(&s);
  close(fd);
  return rc;
}

int pd__idx_load(const char *features_path, const char *labels_path, uint64_t row_begin,
                 uint64_t row_end, pd_dataset *out, enum pd__idx_file *bad, char *err,
                 size_t errlen) {
  memset(out, 0, sizeof(*out));
  uint8_t *feature_bytes = NULL, *label_bytes = NULL;
  size_t feature_len = 0, label_len = 0;
  pd__stream fs, ls;
  bool fs_open = false, ls_open = false;
  idx_header fh, lh;
  float *features = NULL, *targets = NULL;
  uint8_t *labels = NULL;
  int rc;

  *bad = PD__IDX_FEATURES;
  if ((rc = pd__read_data(features_path, &feature_bytes, &feature_len, err, errlen)) != 0)
    goto done;
  rc = pd__stream_open(&fs, features_path, -1, feature_bytes, feature_len, err, errlen);
  fs_open = true;
  if (rc != 0 || (rc = idx_read_header(&fs, &fh, err, errlen)) != 0 ||
      (rc = idx_check_size(&fs, fh.rows * fh.cols, err, errlen)) != 0)
    goto done;
  *bad = PD__IDX_LABELS;
  if ((rc = pd__read_data(labels_path, &label_bytes, &label_len, err, errlen)) != 0)
    goto done;
  rc = pd__stream_open(&ls, labels_path, -1, label_bytes, label_len, err, errlen);
  ls_open = true;
  if (rc != 0 || (rc = idx_read_header(&ls, &lh, err, errlen)) != 0 ||
      (rc = idx_check_size(&ls, lh.rows * lh.cols, err, errlen)) != 0)
    goto done;
  if (lh.ndim != 1) {
    rc = pd_errf(err, errlen, -PD_EFORMAT,
                 "%s: a label file must have 1 dimension (magic 0x00000801), got %d (magic 0x%08x)",
                 labels_path, lh.ndim, lh.magic);
    goto done;
  }
  if (fh.rows != lh.rows) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "features (%s) have %llu rows but labels (%s) have %llu",
                 features_path, (unsigned long long)fh.rows, labels_path,
                 (unsigned long long)lh.rows);
    goto done;
  }
  *bad = PD__IDX_FEATURES;
  if (row_end == UINT64_MAX)
    row_end = fh.rows;
  if (row_begin > row_end || row_end > fh.rows) {
    rc = pd_errf(err, errlen, -ERANGE, "%s: rows [%llu, %llu) out of range: the file has %llu rows",
                 features_path, (unsigned long long)row_begin, (unsigned long long)row_end,
                 (unsigned long long)fh.rows);
    goto done;
  }

  uint64_t rows = row_end - row_begin;
  features = pd_xmalloc_aligned((size_t)(rows * fh.cols) * sizeof(float));
  labels = pd_xmalloc((size_t)rows);
  targets = pd_xmalloc((size_t)rows * sizeof(float));
  if ((rc = idx_read_data(&fs, fh.rows * fh.cols, row_begin * fh.cols, row_end * fh.cols, features,
                          NULL, err, errlen)) != 0)
    goto done;
  *bad = PD__IDX_LABELS;
  if ((rc = idx_read_data(&ls, lh.rows, row_begin, row_end, NULL, labels, err, errlen)) != 0)
    goto done;
  for (uint64_t r = 0; r < rows; r++)
    targets[r] = labels[r];
  out->rows = rows;
  out->cols = (uint32_t)fh.cols;
  out->features = features;
  out->labels = labels;
  out->targets = targets;
  out->owned = 1;
  features = NULL;
  labels = NULL;
  targets = NULL;

done:
  free(targets);
  free(labels);
  free(features);
  if (ls_open)
    pd__stream_close(&ls);
  if (fs_open)
    pd__stream_close(&fs);
  free(label_bytes);
  free(feature_bytes);
  return rc;
}

int pd_dataset_load_idx(const char *features_path, const char *labels_path, uint64_t row_begin,
                        uint64_t row_end, pd_dataset *out, char *err, size_t errlen) {
  enum pd__idx_file bad;
  return pd__idx_load(features_path, labels_path, row_begin, row_end, out, &bad, err, errlen);
}
