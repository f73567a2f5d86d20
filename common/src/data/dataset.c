/* The dataset module's core: whole-file reads with io_uring, gzip inflation
 * (zlib), the IDX reader, views and gathers of rows, normalisation, and
 * pd_dataset_load()/pd_dataset_peek(), which dispatch to the readers of each
 * format (dataset_text.c: CSV and libsvm; dataset_synthetic.c). */
#include "pando/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZLIB_CONST
#include <zlib.h>

#include "dataset_internal.h"
#include "pando/error.h"
#include "pando/util.h"

#define READ_CHUNK (1u << 20) /* bytes per io_uring read */
#define READ_DEPTH 8          /* reads in flight */
#define PEEK_CHUNK (16u << 10)
#define INFLATE_CHUNK (256u << 10)
#define IDX_TYPE_UBYTE 0x08

/* ---- whole-file reads */

static int read_plain(int fd, const char *path, uint8_t *buf, size_t size, char *err,
                      size_t errlen) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, buf + done, size - done, (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pd_errf(err, errlen, -errno, "%s: read: %s", path, strerror(errno));
    if (n == 0)
      return pd_errf(err, errlen, -EIO,
                     "%s: file shrank while reading (expected %zu bytes, got %zu)", path, size,
                     done);
    done += (size_t)n;
  }
  return 0;
}

/* One read in flight: the part of the file it still has to fill. */
struct read_slot {
  uint64_t offset;
  unsigned len;
};

static void queue_read(struct io_uring *ring, int fd, uint8_t *buf, struct read_slot *slot) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  PD_ASSERT(sqe); /* never more than READ_DEPTH in flight */
  io_uring_prep_read(sqe, fd, buf + slot->offset, slot->len, slot->offset);
  io_uring_sqe_set_data(sqe, slot);
}

static int read_uring(struct io_uring *ring, int fd, const char *path, uint8_t *buf, size_t size,
                      char *err, size_t errlen) {
  struct read_slot slots[READ_DEPTH];
  uint64_t next = 0; /* first byte not yet asked for */
  int inflight = 0, rc = 0;
  for (int i = 0; i < READ_DEPTH && next < size; i++) {
    slots[i].offset = next;
    slots[i].len = (unsigned)PD_MIN((uint64_t)READ_CHUNK, size - next);
    next += slots[i].len;
    queue_read(ring, fd, buf, &slots[i]);
    inflight++;
  }
  while (inflight > 0) {
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret == -EINTR || ret == -EAGAIN)
      continue;
    if (ret < 0) {
      if (rc == 0)
        rc = pd_errf(err, errlen, ret, "%s: io_uring_submit: %s", path, strerror(-ret));
      break;
    }
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(ring, &cqe) == 0) {
      struct read_slot *slot = io_uring_cqe_get_data(cqe);
      int res = cqe->res;
      io_uring_cqe_seen(ring, cqe);
      inflight--;
      if (rc != 0)
        continue; /* failed: only drain what is still in flight */
      if (res == -EINTR || res == -EAGAIN)
        res = 0; /* ask again for the same bytes below */
      else if (res < 0)
        rc = pd_errf(err, errlen, res, "%s: read: %s", path, strerror(-res));
      else if (res == 0)
        rc = pd_errf(err, errlen, -EIO, "%s: file shrank while reading (expected %zu bytes)", path,
                     size);
      if (rc != 0)
        continue;
      slot->offset += (unsigned)res; /* a short read asks again for the rest */
      slot->len -= (unsigned)res;
      if (slot->len == 0 && next < size) {
        slot->offset = next;
        slot->len = (unsigned)PD_MIN((uint64_t)READ_CHUNK, size - next);
        next += slot->len;
      }
      if (slot->len > 0) {
        queue_read(ring, fd, buf, slot);
        inflight++;
      }
    }
  }
  return rc;
}

int pd_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen) {
  *data = NULL;
  *len = 0;
  uint8_t *buf = NULL;
  int rc = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return pd_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = pd_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = pd_errf(err, errlen, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, "%s: not a regular file",
                 path);
    goto done;
  }
  size_t size = (size_t)st.st_size;
  buf = pd_xmalloc(size);
  struct io_uring ring;
  int ret = io_uring_queue_init(READ_DEPTH, &ring, 0);
  if (ret == -ENOSYS || ret == -EPERM) {
    rc = read_plain(fd, path, buf, size, err, errlen);
  } else if (ret < 0) {
    rc = pd_errf(err, errlen, ret, "%s: io_uring_queue_init: %s", path, strerror(-ret));
  } else {
    rc = read_uring(&ring, fd, path, buf, size, err, errlen);
    io_uring_queue_exit(&ring);
  }
  if (rc == 0) {
    *data = buf;
    *len = size;
    buf = NULL;
  }
done:
  free(buf);
  close(fd);
  return rc;
}

/* ---- a byte stream over a plain or gzipped file */

typedef struct byte_stream {
  const char *path;        /* for messages */
  int fd;                  /* -1: the whole file is in memory at `in` */
  const uint8_t *in;       /* raw file bytes available: in[in_pos, in_len) */
  size_t in_len, in_pos;
  uint64_t fd_offset;      /* next file offset to read (fd mode) */
  uint8_t *fd_buf;         /* fd mode: PEEK_CHUNK bytes */
  bool gz;                 /* file starts with the gzip magic 1f 8b */
  z_stream z;              /* gz: inflate state (z_live once initialised) */
  bool z_live, z_done;     /* z_done: no more output will come */
  bool gz_truncated;       /* the gzip stream ended without its end marker */
  uint8_t *out;            /* gz: inflated bytes out[out_pos, out_len) */
  size_t out_len, out_pos;
} byte_stream;

/* Makes sure in[in_pos, in_len) is non-empty unless the file is at its end. */
static int stream_fill(byte_stream *s, char *err, size_t errlen) {
  if (s->in_pos < s->in_len || s->fd < 0)
    return 0;
  for (;;) {
    ssize_t n = pread(s->fd, s->fd_buf, PEEK_CHUNK, (off_t)s->fd_offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pd_errf(err, errlen, -errno, "%s: read: %s", s->path, strerror(errno));
    s->in = s->fd_buf;
    s->in_len = (size_t)n;
    s->in_pos = 0;
    s->fd_offset += (uint64_t)n;
    return 0;
  }
}

static int stream_open(byte_stream *s, const char *path, int fd, const uint8_t *data, size_t len,
                       char *err, size_t errlen) {
  memset(s, 0, sizeof(*s));
  s->path = path;
  s->fd = fd;
  s->in = data;
  s->in_len = len;
  if (fd >= 0)
    s->fd_buf = pd_xmalloc(PEEK_CHUNK);
  int rc = stream_fill(s, err, errlen);
  if (rc != 0)
    return rc;
  s->gz = s->in_len - s->in_pos >= 2 && s->in[s->in_pos] == 0x1f && s->in[s->in_pos + 1] == 0x8b;
  if (!s->gz)
    return 0;
  if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
    return pd_errf(err, errlen, -ENOMEM, "%s: inflateInit2 failed", path);
  s->z_live = true;
  s->out = pd_xmalloc(fd >= 0 ? PEEK_CHUNK : INFLATE_CHUNK);
  return 0;
}

static void stream_close(byte_stream *s) {
  if (s->z_live)
    inflateEnd(&s->z);
  free(s->out);
  free(s->fd_buf);
}

/* Points *p at the next *n > 0 bytes of (inflated) content, or sets *n = 0 at
 * the end. Returns 0 or a negative error (corrupt gzip data, read error). */
static int stream_peek(byte_stream *s, const uint8_t **p, size_t *n, char *err, size_t errlen) {
  int rc;
  *n = 0;
  if (!s->gz) {
    if ((rc = stream_fill(s, err, errlen)) != 0)
      return rc;
    *p = s->in + s->in_pos;
    *n = s->in_len - s->in_pos;
    return 0;
  }
  size_t out_cap = s->fd >= 0 ? PEEK_CHUNK : INFLATE_CHUNK;
  while (s->out_pos == s->out_len && !s->z_done) {
    if ((rc = stream_fill(s, err, errlen)) != 0)
      return rc;
    size_t avail = s->in_len - s->in_pos;
    s->z.next_in = s->in + s->in_pos;
    s->z.avail_in = (uInt)PD_MIN(avail, (size_t)1 << 30);
    s->z.next_out = s->out;
    s->z.avail_out = (uInt)out_cap;
    uInt offered = s->z.avail_in;
    int ret = inflate(&s->z, Z_NO_FLUSH);
    s->in_pos += offered - s->z.avail_in;
    s->out_pos = 0;
    s->out_len = out_cap - s->z.avail_out;
    if (ret == Z_STREAM_END) {
      /* Another gzip member may follow (as `cat a.gz b.gz` makes). */
      if ((rc = stream_fill(s, err, errlen)) != 0)
        return rc;
      if (s->in_len - s->in_pos >= 2 && s->in[s->in_pos] == 0x1f && s->in[s->in_pos + 1] == 0x8b)
        inflateReset(&s->z);
      else
        s->z_done = true; /* anything else after the stream is ignored, as gzip does */
    } else if (ret == Z_BUF_ERROR && avail == 0) {
      s->gz_truncated = true; /* the input ended before the stream did */
      s->z_done = true;
    } else if (ret != Z_OK) {
      return pd_errf(err, errlen, -PD_EFORMAT, "%s: corrupt gzip data: %s", s->path,
                     s->z.msg ? s->z.msg : zError(ret));
    }
  }
  *p = s->out + s->out_pos;
  *n = s->out_len - s->out_pos;
  return 0;
}

static void stream_consume(byte_stream *s, size_t n) {
  if (s->gz)
    s->out_pos += n;
  else
    s->in_pos += n;
}

/* Copies up to `want` bytes into `dst`; *got receives how many there were. */
static int stream_read(byte_stream *s, uint8_t *dst, size_t want, size_t *got, char *err,
                       size_t errlen) {
  *got = 0;
  while (*got < want) {
    const uint8_t *p;
    size_t n;
    int rc = stream_peek(s, &p, &n, err, errlen);
    if (rc != 0)
      return rc;
    if (n == 0)
      break;
    n = PD_MIN(n, want - *got);
    memcpy(dst + *got, p, n);
    stream_consume(s, n);
    *got += n;
  }
  return 0;
}

int pd__read_content(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen) {
  uint8_t *raw = NULL, *content = NULL;
  size_t raw_len = 0, used = 0;
  byte_stream s;
  bool stream_live = false;
  *data = NULL;
  *len = 0;
  int rc = pd_read_file(path, &raw, &raw_len, err, errlen);
  if (rc != 0)
    return rc;
  if (raw_len < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
    *data = raw; /* plain: the file is the content */
    *len = raw_len;
    return 0;
  }
  rc = stream_open(&s, path, -1, raw, raw_len, err, errlen);
  stream_live = true;
  if (rc != 0)
    goto done;
  /* The trailer's ISIZE (the last member's size mod 2^32) is a good first
   * guess; the buffer grows when it is wrong. */
  const uint8_t *t = raw + raw_len - 4;
  size_t isize = raw_len >= 18
                     ? (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24
                     : 0;
  size_t cap = PD_MAX(isize + 1, 2 * raw_len);
  content = pd_xmalloc(cap);
  for (;;) {
    const uint8_t *p;
    size_t n;
    if ((rc = stream_peek(&s, &p, &n, err, errlen)) != 0)
      goto done;
    if (n == 0)
      break;
    if (used + n > cap) {
      cap = PD_MAX(2 * cap, used + n);
      content = pd_xrealloc(content, cap);
    }
    memcpy(content + used, p, n);
    used += n;
    stream_consume(&s, n);
  }
  if (s.gz_truncated) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: truncated gzip stream (no end marker)", path);
    goto done;
  }
  *data = content;
  *len = used;
  content = NULL;
done:
  free(content);
  if (stream_live)
    stream_close(&s);
  free(raw);
  return rc;
}

int pd__read_first_line(const char *path, char **line, size_t *len, char *err, size_t errlen) {
  *line = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return pd_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
  byte_stream s;
  char *buf = NULL;
  size_t used = 0, cap = 0;
  int rc = stream_open(&s, path, fd, NULL, 0, err, errlen);
  for (bool eol = false; rc == 0 && !eol;) {
    const uint8_t *p;
    size_t n;
    if ((rc = stream_peek(&s, &p, &n, err, errlen)) != 0 || n == 0)
      break;
    const uint8_t *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    eol = nl != NULL;
    if (used + take + 1 > cap) {
      cap = PD_MAX(2 * cap, used + take + 1);
      buf = pd_xrealloc(buf, cap);
    }
    memcpy(buf + used, p, take);
    used += take;
    stream_consume(&s, take);
  }
  if (rc == 0) {
    *line = buf ? buf : pd_xstrdup("");
    (*line)[used] = '\0';
    *len = used;
    buf = NULL;
  }
  free(buf);
  stream_close(&s);
  close(fd);
  return rc;
}

/* ---- IDX */

typedef struct idx_header {
  uint32_t magic; /* 0x0000TTNN: type TT, NN dimensions */
  int ndim;
  uint64_t rows;  /* first dimension */
  uint64_t cols;  /* product of the others (1 when ndim is 1) */
} idx_header;

static const char *idx_type_name(int type) {
  switch (type) {
  case 0x08: return "unsigned byte";
  case 0x09: return "signed byte";
  case 0x0B: return "short";
  case 0x0C: return "int";
  case 0x0D: return "float";
  case 0x0E: return "double";
  default: return NULL;
  }
}

static int idx_read_header(byte_stream *s, idx_header *h, char *err, size_t errlen) {
  uint8_t buf[4 + 4 * 255];
  size_t got;
  int rc = stream_read(s, buf, 4, &got, err, errlen);
  if (rc != 0)
    return rc;
  if (got < 4)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: not an IDX file (%zu bytes%s)", s->path, got,
                   s->gz_truncated ? " after inflating a truncated gzip stream" : "");
  h->magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
  int type = buf[2];
  h->ndim = buf[3];
  if (buf[0] != 0 || buf[1] != 0 || !idx_type_name(type) || h->ndim == 0)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: not an IDX file (magic 0x%08x)", s->path,
                   h->magic);
  if (type != IDX_TYPE_UBYTE)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: IDX data type 0x%02x (%s) is not supported, only 0x08 (unsigned byte)",
                   s->path, type, idx_type_name(type));
  size_t dims_len = 4 * (size_t)h->ndim;
  if ((rc = stream_read(s, buf + 4, dims_len, &got, err, errlen)) != 0)
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
static int idx_read_data(byte_stream *s, uint64_t expected, uint64_t keep_begin, uint64_t keep_end,
                         float *features, uint8_t *labels, char *err, size_t errlen) {
  float scale[256];
  for (int i = 0; i < 256; i++)
    scale[i] = (float)i / 255.0f;
  uint64_t pos = 0;
  const uint8_t *p;
  size_t n;
  int rc;
  while (pos < expected) {
    if ((rc = stream_peek(s, &p, &n, err, errlen)) != 0)
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
    stream_consume(s, (size_t)take);
    pos += take;
  }
  uint64_t extra = 0;
  for (;;) {
    if ((rc = stream_peek(s, &p, &n, err, errlen)) != 0)
      return rc;
    if (n == 0)
      break;
    extra += n;
    stream_consume(s, n);
  }
  if (extra)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: too long: expected %llu bytes of data, got %llu", s->path,
                   (unsigned long long)expected, (unsigned long long)(expected + extra));
  if (s->gz_truncated)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: truncated gzip stream (no end marker)", s->path);
  return 0;
}

/* Before allocating for a header's claims: a plain file in memory must hold
 * exactly `expected` data bytes, and a gzipped one must be able to inflate to
 * that much (deflate expands at most ~1032:1). */
static int idx_check_size(const byte_stream *s, uint64_t expected, char *err, size_t errlen) {
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
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return pd_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
  byte_stream s;
  idx_header h;
  int rc = stream_open(&s, path, fd, NULL, 0, err, errlen);
  if (rc == 0)
    rc = idx_read_header(&s, &h, err, errlen);
  if (rc == 0) {
    *rows = h.rows;
    *cols = h.cols;
  }
  stream_close(&s);
  close(fd);
  return rc;
}

/* Which file of an IDX pair an error is about (for the spec key). */
enum idx_file { IDX_FEATURES, IDX_LABELS };

static int idx_load(const char *features_path, const char *labels_path, uint64_t row_begin,
                    uint64_t row_end, pd_dataset *out, enum idx_file *bad, char *err,
                    size_t errlen) {
  memset(out, 0, sizeof(*out));
  uint8_t *feature_bytes = NULL, *label_bytes = NULL;
  size_t feature_len = 0, label_len = 0;
  byte_stream fs, ls;
  bool fs_open = false, ls_open = false;
  idx_header fh, lh;
  float *features = NULL, *targets = NULL;
  uint8_t *labels = NULL;
  int rc;

  *bad = IDX_FEATURES;
  if ((rc = pd_read_file(features_path, &feature_bytes, &feature_len, err, errlen)) != 0)
    goto done;
  rc = stream_open(&fs, features_path, -1, feature_bytes, feature_len, err, errlen);
  fs_open = true;
  if (rc != 0 || (rc = idx_read_header(&fs, &fh, err, errlen)) != 0 ||
      (rc = idx_check_size(&fs, fh.rows * fh.cols, err, errlen)) != 0)
    goto done;
  *bad = IDX_LABELS;
  if ((rc = pd_read_file(labels_path, &label_bytes, &label_len, err, errlen)) != 0)
    goto done;
  rc = stream_open(&ls, labels_path, -1, label_bytes, label_len, err, errlen);
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
  *bad = IDX_FEATURES;
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
  *bad = IDX_LABELS;
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
    stream_close(&ls);
  if (fs_open)
    stream_close(&fs);
  free(label_bytes);
  free(feature_bytes);
  return rc;
}

int pd_dataset_load_idx(const char *features_path, const char *labels_path, uint64_t row_begin,
                        uint64_t row_end, pd_dataset *out, char *err, size_t errlen) {
  enum idx_file bad;
  return idx_load(features_path, labels_path, row_begin, row_end, out, &bad, err, errlen);
}

/* ---- the in-memory dataset */

void pd_dataset_close(pd_dataset *ds) {
  if (ds->owned) {
    free(ds->features);
    free(ds->row_ptr);
    free(ds->col_idx);
    free(ds->values);
    free(ds->labels);
    free(ds->targets);
  }
  memset(ds, 0, sizeof(*ds));
}

pd_dataset pd_dataset_view(const pd_dataset *ds, uint64_t begin, uint64_t end) {
  PD_ASSERT(begin <= end && end <= ds->rows);
  pd_dataset view = *ds;
  view.rows = end - begin;
  view.owned = 0;
  if (ds->features)
    view.features = ds->features + begin * ds->cols;
  if (ds->row_ptr)
    view.row_ptr = ds->row_ptr + begin;
  if (ds->labels)
    view.labels = ds->labels + begin;
  if (ds->targets)
    view.targets = ds->targets + begin;
  return view;
}

/* Returns an array of at least `bytes` in place of `old`: `old` itself when
 * it is owned and large enough (no allocation), else a new one (64-byte
 * aligned, as features are). */
static void *reserve(void *old, int owned, size_t bytes) {
  if (owned && old && malloc_usable_size(old) >= bytes)
    return old;
  if (owned)
    free(old);
  return pd_xmalloc_aligned(bytes);
}

/* Drops an array `ds` does not need any more. */
static void *release(void *old, int owned) {
  if (owned)
    free(old);
  return NULL;
}

void pd_dataset_gather(const pd_dataset *src, const uint64_t *index, uint64_t n, pd_dataset *out) {
  PD_ASSERT(src != out);
  int owned = out->owned;
  uint64_t cols = src->cols;
  for (uint64_t i = 0; i < n; i++)
    PD_ASSERT(index[i] < src->rows);
  if (src->features) {
    out->features = reserve(out->features, owned, (size_t)(n * cols) * sizeof(float));
    for (uint64_t i = 0; i < n; i++)
      memcpy(out->features + i * cols, src->features + index[i] * cols, cols * sizeof(float));
    out->row_ptr = release(out->row_ptr, owned);
    out->col_idx = release(out->col_idx, owned);
    out->values = release(out->values, owned);
  } else {
    uint64_t nnz = 0;
    for (uint64_t i = 0; i < n; i++)
      nnz += src->row_ptr[index[i] + 1] - src->row_ptr[index[i]];
    out->row_ptr = reserve(out->row_ptr, owned, (size_t)(n + 1) * sizeof(uint64_t));
    out->col_idx = reserve(out->col_idx, owned, (size_t)nnz * sizeof(uint32_t));
    out->values = reserve(out->values, owned, (size_t)nnz * sizeof(float));
    out->row_ptr[0] = 0;
    for (uint64_t i = 0, at = 0; i < n; i++) {
      uint64_t b = src->row_ptr[index[i]], count = src->row_ptr[index[i] + 1] - b;
      memcpy(out->col_idx + at, src->col_idx + b, count * sizeof(uint32_t));
      memcpy(out->values + at, src->values + b, count * sizeof(float));
      at += count;
      out->row_ptr[i + 1] = at;
    }
    out->features = release(out->features, owned);
  }
  if (src->labels) {
    out->labels = reserve(out->labels, owned, (size_t)n);
    for (uint64_t i = 0; i < n; i++)
      out->labels[i] = src->labels[index[i]];
  } else {
    out->labels = release(out->labels, owned);
  }
  if (src->targets) {
    out->targets = reserve(out->targets, owned, (size_t)n * sizeof(float));
    for (uint64_t i = 0; i < n; i++)
      out->targets[i] = src->targets[index[i]];
  } else {
    out->targets = release(out->targets, owned);
  }
  out->rows = n;
  out->cols = src->cols;
  out->owned = 1;
}

/* ---- normalisation */

/* Per-feature affine maps x -> (x - shift[c]) * scale[c] of a dense dataset. */
typedef struct normalizer {
  float *shift, *scale; /* cols each */
} normalizer;

/* Computes the map of `kind` from `train`'s statistics (in double). */
static void normalizer_fit(normalizer *nz, const pd_dataset *train, enum pd_normalize kind) {
  uint64_t cols = train->cols, rows = train->rows;
  double *a = pd_xcalloc(cols ? cols : 1, sizeof(double));
  double *b = pd_xcalloc(cols ? cols : 1, sizeof(double));
  nz->shift = pd_xmalloc((size_t)(cols ? cols : 1) * sizeof(float));
  nz->scale = pd_xmalloc((size_t)(cols ? cols : 1) * sizeof(float));
  if (rows == 0) { /* no statistics: the identity */
    for (uint64_t c = 0; c < cols; c++) {
      nz->shift[c] = 0;
      nz->scale[c] = 1;
    }
  } else if (kind == PD_NORMALIZE_STANDARD) { /* a: mean, b: sum of squared deviations */
    for (uint64_t r = 0; r < rows; r++)
      for (uint64_t c = 0; c < cols; c++)
        a[c] += train->features[r * cols + c];
    for (uint64_t c = 0; c < cols; c++)
      a[c] /= (double)rows;
    for (uint64_t r = 0; r < rows; r++)
      for (uint64_t c = 0; c < cols; c++) {
        double d = train->features[r * cols + c] - a[c];
        b[c] += d * d;
      }
    for (uint64_t c = 0; c < cols; c++) {
      double sd = sqrt(b[c] / (double)rows);
      nz->shift[c] = (float)a[c];
      nz->scale[c] = sd > 0 ? (float)(1.0 / sd) : 1.0f;
    }
  } else { /* minmax; a: min, b: max */
    for (uint64_t c = 0; c < cols; c++) {
      a[c] = INFINITY;
      b[c] = -INFINITY;
    }
    for (uint64_t r = 0; r < rows; r++)
      for (uint64_t c = 0; c < cols; c++) {
        double x = train->features[r * cols + c];
        a[c] = x < a[c] ? x : a[c];
        b[c] = x > b[c] ? x : b[c];
      }
    for (uint64_t c = 0; c < cols; c++) {
      nz->shift[c] = (float)a[c];
      nz->scale[c] = b[c] > a[c] ? (float)(1.0 / (b[c] - a[c])) : 1.0f;
    }
  }
  free(b);
  free(a);
}

static void normalizer_apply(const normalizer *nz, pd_dataset *ds) {
  for (uint64_t r = 0; r < ds->rows; r++) {
    float *x = ds->features + r * ds->cols;
    for (uint64_t c = 0; c < ds->cols; c++)
      x[c] = (x[c] - nz->shift[c]) * nz->scale[c];
  }
}

static void normalizer_close(normalizer *nz) {
  free(nz->shift);
  free(nz->scale);
}

/* ---- loading a split of a job spec */

static const char *normalize_name(enum pd_normalize kind) {
  return kind == PD_NORMALIZE_STANDARD ? "standard"
         : kind == PD_NORMALIZE_MINMAX ? "minmax"
                                       : "none";
}

static bool is_format(const pd_job_spec *spec, const char *name) {
  return strcmp(spec->data.format, name) == 0;
}

/* The checks every split of a spec shares: a known format, and a
 * normalisation the format allows. */
static int check_format(const pd_job_spec *spec, char *err, size_t errlen) {
  bool sparse = is_format(spec, "libsvm") || is_format(spec, "synthetic");
  if (!sparse && !is_format(spec, "idx") && !is_format(spec, "csv"))
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.format: unknown format '%s'; expected one of: idx, csv, libsvm, synthetic",
                   spec->data.format);
  if (sparse && spec->data.normalize != PD_NORMALIZE_NONE)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.normalize: %s is not supported for sparse data (libsvm, synthetic)",
                   normalize_name(spec->data.normalize));
  return 0;
}

/* Whether the spec has a split `test` at all. */
static bool has_split(const pd_job_spec *spec, int test) {
  if (!test)
    return true;
  if (is_format(spec, "synthetic"))
    return spec->data.synthetic.test_rows > 0;
  return spec->data.test.features[0] != '\0';
}

static const char *features_key(int test) {
  return test ? "data.test.features" : "data.train.features";
}

/* The rows and features of an IDX split, from its files' headers. */
static int idx_peek_split(const pd_job_spec *spec, int test, uint64_t *rows, uint64_t *cols,
                          char *err, size_t errlen) {
  const pd_data_files *files = test ? &spec->data.test : &spec->data.train;
  uint64_t label_rows, label_cols;
  char why[512];
  int rc = pd_idx_peek(files->features, rows, cols, why, sizeof why);
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s: %s", features_key(test), why);
  const char *labels_key = test ? "data.test.labels" : "data.train.labels";
  if ((rc = pd_idx_peek(files->labels, &label_rows, &label_cols, why, sizeof why)) != 0)
    return pd_errf(err, errlen, rc, "%s: %s", labels_key, why);
  if (label_rows != *rows)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: %s has %llu labels for %llu feature rows",
                   labels_key, files->labels, (unsigned long long)label_rows,
                   (unsigned long long)*rows);
  return 0;
}

/* Loads a split as its format reads it, before normalisation. `train_cols`
 * (0: unknown) is the training split's number of features, which a test
 * split must match (dense) or not exceed (libsvm). */
static int load_raw(const pd_job_spec *spec, int test, uint64_t train_cols, pd_dataset *out,
                    char *err, size_t errlen) {
  const pd_data_files *files = test ? &spec->data.test : &spec->data.train;
  const char *key = features_key(test);
  int rc = 0;
  if (is_format(spec, "synthetic")) {
    const pd_synthetic_spec *sy = &spec->data.synthetic;
    pd_dataset_synthetic(sy, test, 0, test ? sy->test_rows : sy->rows, out);
  } else if (is_format(spec, "libsvm")) {
    rc = pd__libsvm_read(key, files->features, (uint32_t)train_cols, (uint32_t)train_cols, out,
                         NULL, NULL, err, errlen);
  } else if (is_format(spec, "csv")) {
    rc = pd__csv_read(key, files->features, spec->data.label_column, spec->data.header,
                      (uint32_t)train_cols, out, NULL, NULL, err, errlen);
  } else {
    enum idx_file bad;
    char why[768];
    rc = idx_load(files->features, files->labels, 0, UINT64_MAX, out, &bad, why, sizeof why);
    if (rc != 0)
      return pd_errf(err, errlen, rc, "%s: %s",
                     bad == IDX_LABELS ? (test ? "data.test.labels" : "data.train.labels") : key,
                     why);
    if (train_cols && out->cols != train_cols) {
      rc = pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s has %u values per row, but the training data has %llu", key,
                   files->features, out->cols, (unsigned long long)train_cols);
      pd_dataset_close(out);
    }
  }
  return rc;
}

/* The training split's number of features, as a test split needs it. */
static int train_cols_of(const pd_job_spec *spec, uint64_t *cols, char *err, size_t errlen) {
  uint64_t rows;
  *cols = 0;
  if (is_format(spec, "libsvm"))
    return pd__libsvm_read("data.train.features", spec->data.train.features, 0, 0, NULL, &rows,
                           cols, err, errlen);
  if (is_format(spec, "csv"))
    return pd__csv_columns("data.train.features", spec->data.train.features, cols, err, errlen);
  if (is_format(spec, "idx"))
    return idx_peek_split(spec, 0, &rows, cols, err, errlen);
  *cols = (uint64_t)spec->data.synthetic.features;
  return 0;
}

int pd_dataset_load(const pd_job_spec *spec, int test, pd_dataset *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  pd_dataset train = {0};
  normalizer nz = {0};
  uint64_t train_cols = 0;
  int rc = check_format(spec, err, errlen);
  if (rc != 0 || !has_split(spec, test))
    return rc;
  bool normalize = spec->data.normalize != PD_NORMALIZE_NONE;
  if (test && normalize) { /* the statistics come from the training split */
    if ((rc = load_raw(spec, 0, 0, &train, err, errlen)) != 0)
      goto done;
    train_cols = train.cols;
  } else if (test && (rc = train_cols_of(spec, &train_cols, err, errlen)) != 0) {
    goto done;
  }
  if ((rc = load_raw(spec, test, train_cols, out, err, errlen)) != 0)
    goto done;
  if (normalize) {
    normalizer_fit(&nz, test ? &train : out, spec->data.normalize);
    normalizer_apply(&nz, out);
  }
done:
  normalizer_close(&nz);
  pd_dataset_close(&train);
  return rc;
}

int pd_dataset_peek(const pd_job_spec *spec, int test, uint64_t *rows, uint64_t *cols, char *err,
                    size_t errlen) {
  *rows = 0;
  *cols = 0;
  uint64_t train_cols = 0;
  int rc = check_format(spec, err, errlen);
  if (rc != 0 || !has_split(spec, test))
    return rc;
  const char *key = features_key(test);
  const char *path = test ? spec->data.test.features : spec->data.train.features;
  if (is_format(spec, "synthetic")) {
    *rows = test ? spec->data.synthetic.test_rows : spec->data.synthetic.rows;
    *cols = (uint64_t)spec->data.synthetic.features;
    return 0;
  }
  if (test && (rc = train_cols_of(spec, &train_cols, err, errlen)) != 0)
    return rc;
  if (is_format(spec, "libsvm"))
    return pd__libsvm_read(key, path, (uint32_t)train_cols, (uint32_t)train_cols, NULL, rows, cols,
                           err, errlen);
  if (is_format(spec, "csv"))
    return pd__csv_read(key, path, spec->data.label_column, spec->data.header, (uint32_t)train_cols,
                        NULL, rows, cols, err, errlen);
  if ((rc = idx_peek_split(spec, test, rows, cols, err, errlen)) != 0)
    return rc;
  if (test && *cols != train_cols)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s has %llu values per row, but the training data has %llu", key, path,
                   (unsigned long long)*cols, (unsigned long long)train_cols);
  return 0;
}

/* ---- partitions */

void pd_partition_contiguous(uint64_t rows, uint32_t workers, uint32_t rank, uint64_t *begin,
                             uint64_t *end) {
  PD_ASSERT(workers > 0 && rank < workers);
  uint64_t base = rows / workers, extra = rows % workers;
  *begin = rank * base + PD_MIN((uint64_t)rank, extra);
  *end = *begin + base + (rank < extra ? 1 : 0);
}
