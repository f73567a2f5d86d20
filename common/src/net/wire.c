/* Tensor messages written as [header slice, payload slice] and read as a
 * stream over the received slices; see pando/wire.h. */
#include "pando/wire.h"

#include <grpc/byte_buffer_reader.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pando/error.h"
#include "pando/util.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
enum { TENSOR_DTYPE = 1, TENSOR_SHAPE = 2, TENSOR_DATA = 3, TENSOR_CODEC = 190 };
enum { CODEC_METHOD = 1, CODEC_BLOCK = 2 };

void pd_buf_free(pd_buf *buf) {
  if (buf->mapped)
    munmap(buf->data, buf->cap);
  else
    free(buf->data);
  buf->data = NULL;
  buf->cap = 0;
  buf->mapped = 0;
}

void pd_buf_reserve(pd_buf *buf, size_t size) {
  if (buf->cap >= size)
    return;
  pd_buf_free(buf);
  if (size >= PD_BUF_MAP_MIN) { /* its own mapping: pd_buf_free gives it back */
    size_t len = (size + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    PD_ASSERT(p != MAP_FAILED); /* out of memory aborts, as pd_xmalloc */
    buf->data = p;
    buf->cap = len;
    buf->mapped = 1;
    return;
  }
  buf->data = pd_xmalloc_aligned(size);
  buf->cap = size;
}

void pd_buf_trim(pd_buf *buf, size_t keep) {
  if (buf->cap > keep)
    pd_buf_free(buf);
}

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

grpc_slice pd_wire_tensor_header(const ProtobufCMessage *rest, uint32_t tensor_field,
                                 enum pd_dtype dtype, const int64_t *shape, int ndim,
                                 size_t payload_len) {
  return pd_wire_tensor_header_codec(rest, tensor_field, dtype, shape, ndim, payload_len, 0, 0);
}

grpc_slice pd_wire_tensor_header_codec(const ProtobufCMessage *rest, uint32_t tensor_field,
                                       enum pd_dtype dtype, const int64_t *shape, int ndim,
                                       size_t payload_len, int method, uint32_t block) {
  PD_ASSERT(ndim >= 0 && ndim <= PD_TENSOR_MAX_DIMS);
  /* Tensor body before the payload: dtype, packed shape, codec, data tag +
   * length. */
  uint8_t tensor_head[8 + 2 + 10 * PD_TENSOR_MAX_DIMS + 2 + 1 + 11 + 6 + 11];
  size_t shape_len = 0, t = 0;
  for (int i = 0; i < ndim; i++)
    shape_len += varint_size((uint64_t)shape[i]);
  tensor_head[t++] = (TENSOR_DTYPE << 3) | WT_VARINT;
  t += pd_put_varint(tensor_head + t, (uint64_t)dtype);
  if (ndim > 0) {
    tensor_head[t++] = (TENSOR_SHAPE << 3) | WT_LEN;
    t += pd_put_varint(tensor_head + t, shape_len);
    for (int i = 0; i < ndim; i++)
      t += pd_put_varint(tensor_head + t, (uint64_t)shape[i]);
  }
  if (method != 0) { /* TensorCodec{method, block} */
    uint8_t codec[2 + 10 + 1 + 5];
    size_t k = 0;
    codec[k++] = (CODEC_METHOD << 3) | WT_VARINT;
    k += pd_put_varint(codec + k, (uint64_t)method);
    if (block) {
      codec[k++] = (CODEC_BLOCK << 3) | WT_VARINT;
      k += pd_put_varint(codec + k, block);
    }
    t += pd_put_varint(tensor_head + t, (TENSOR_CODEC << 3) | WT_LEN);
    t += pd_put_varint(tensor_head + t, k);
    memcpy(tensor_head + t, codec, k);
    t += k;
  }
  if (payload_len > 0) { /* proto3 leaves empty bytes out, as protobuf-c does */
    tensor_head[t++] = (TENSOR_DATA << 3) | WT_LEN;
    t += pd_put_varint(tensor_head + t, payload_len);
  }

  size_t rest_len = protobuf_c_message_get_packed_size(rest);
  uint64_t tensor_len = t + payload_len;
  grpc_slice slice = grpc_slice_malloc(rest_len + 10 + 10 + t);
  uint8_t *p = GRPC_SLICE_START_PTR(slice);
  size_t n = protobuf_c_message_pack(rest, p);
  n += pd_put_varint(p + n, ((uint64_t)tensor_field << 3) | WT_LEN);
  n += pd_put_varint(p + n, tensor_len);
  memcpy(p + n, tensor_head, t);
  n += t;
  return grpc_slice_sub_no_ref(slice, 0, n);
}

static void noop_destroy(void *p, size_t len) {
  (void)p;
  (void)len;
}

grpc_slice pd_wire_borrow(const void *data, size_t len) {
  return grpc_slice_new_with_len((void *)data, len, noop_destroy);
}

/* ---------------------------------------------------------------- decoding */

/* A read position in a received message. Every read is bounded by `stop`,
 * the value `left` takes at the end of the field being read (0 for the
 * message itself), so no length can reach past its enclosing field. */
typedef struct cursor {
  grpc_byte_buffer_reader reader;
  const uint8_t *p, *end;
  size_t left;  /* bytes of the message not consumed yet */
  size_t stop;  /* `left` at the end of the enclosing field */
  size_t total; /* bytes of the whole message */
} cursor;

/* Bytes left in the enclosing field. */
static size_t cur_avail(const cursor *c) { return c->left - c->stop; }

static int cur_fill(cursor *c) {
  while (c->p == c->end) {
    grpc_slice *s;
    if (!grpc_byte_buffer_reader_peek(&c->reader, &s))
      return -1;
    c->p = GRPC_SLICE_START_PTR(*s);
    c->end = c->p + GRPC_SLICE_LENGTH(*s);
  }
  return 0;
}

static int cur_byte(cursor *c, uint8_t *b) {
  if (cur_avail(c) == 0 || cur_fill(c) != 0)
    return -1;
  *b = *c->p++;
  c->left--;
  return 0;
}

/* Reads a varint of at most 10 bytes; if `raw` is given, its bytes are
 * appended there too. */
static int cur_varint(cursor *c, uint64_t *v, uint8_t *raw, size_t *rawn) {
  uint64_t x = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    uint8_t b;
    if (cur_byte(c, &b) != 0)
      return -1;
    if (raw)
      raw[(*rawn)++] = b;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Reads the length of a LEN field and checks it against what is left of the
 * enclosing field, before anyone reserves memory for it. */
static int cur_length(cursor *c, uint64_t *len, uint8_t *raw, size_t *rawn) {
  if (cur_varint(c, len, raw, rawn) != 0 || *len > cur_avail(c))
    return -1;
  return 0;
}

/* Copies (dst != NULL) or skips the next n bytes of the enclosing field. */
static int cur_take(cursor *c, void *dst, size_t n) {
  if (n > cur_avail(c))
    return -1;
  uint8_t *out = dst;
  while (n > 0) {
    if (cur_fill(c) != 0)
      return -1;
    size_t k = PD_MIN(n, (size_t)(c->end - c->p));
    if (out) {
      memcpy(out, c->p, k);
      out += k;
    }
    c->p += k;
    c->left -= k;
    n -= k;
  }
  return 0;
}

/* Enters a field of `len` bytes (checked by cur_length): reads stop at its
 * end until cur_leave. Returns the enclosing stop, for cur_leave. */
static size_t cur_enter(cursor *c, size_t len) {
  size_t outer = c->stop;
  c->stop = c->left - len;
  return outer;
}

/* Leaves a field entered with cur_enter; fails if it was not consumed
 * exactly. */
static int cur_leave(cursor *c, size_t outer) {
  if (c->left != c->stop)
    return -1;
  c->stop = outer;
  return 0;
}

typedef struct rest_buf {
  uint8_t *data;
  size_t len, cap;
} rest_buf;

static uint8_t *rest_grow(rest_buf *r, size_t n) {
  if (r->len + n > r->cap) {
    r->cap = PD_MAX(r->cap * 2, r->len + n + 64);
    r->data = pd_xrealloc(r->data, r->cap);
  }
  uint8_t *p = r->data + r->len;
  r->len += n;
  return p;
}

/* Skips (or copies into `rest`) the value of a field of wire type `wt`. */
static int cur_field_value(cursor *c, int wt, rest_buf *rest) {
  uint8_t raw[10];
  size_t rawn = 0;
  uint64_t v;
  switch (wt) {
  case WT_VARINT:
    if (cur_varint(c, &v, raw, &rawn) != 0)
      return -1;
    if (rest)
      memcpy(rest_grow(rest, rawn), raw, rawn);
    return 0;
  case WT_I64:
  case WT_I32: {
    size_t n = wt == WT_I64 ? 8 : 4;
    return cur_take(c, rest ? rest_grow(rest, n) : NULL, n);
  }
  case WT_LEN:
    if (cur_length(c, &v, raw, &rawn) != 0)
      return -1;
    if (rest)
      memcpy(rest_grow(rest, rawn), raw, rawn);
    return cur_take(c, rest ? rest_grow(rest, (size_t)v) : NULL, (size_t)v);
  default:
    return -1;
  }
}

static int decode_tensor(cursor *c, size_t len, void *dst, size_t dst_cap, pd_buf *scratch,
                         pd_wire_tensor *t, char *err, size_t errlen) {
  size_t outer = cur_enter(c, len);
  int have_data = 0;
  while (cur_avail(c) > 0) {
    uint64_t tag, v;
    if (cur_varint(c, &tag, NULL, NULL) != 0)
      goto truncated;
    int field = (int)(tag >> 3), wt = (int)(tag & 7);
    if (field == TENSOR_DTYPE && wt == WT_VARINT) {
      if (cur_varint(c, &v, NULL, NULL) != 0)
        goto truncated;
      t->dtype = (int)PD_MIN(v, (uint64_t)INT32_MAX);
    } else if (field == TENSOR_SHAPE && (wt == WT_VARINT || wt == WT_LEN)) {
      int packed = wt == WT_LEN;
      size_t shape_outer = 0;
      if (packed) {
        if (cur_length(c, &v, NULL, NULL) != 0)
          goto truncated;
        shape_outer = cur_enter(c, (size_t)v);
      }
      while (!packed || cur_avail(c) > 0) { /* unpacked: one value */
        if (cur_varint(c, &v, NULL, NULL) != 0)
          goto truncated;
        if (t->ndim >= PD_TENSOR_MAX_DIMS)
          return pd_errf(err, errlen, -PD_EFORMAT, "tensor has more than %d dimensions",
                         PD_TENSOR_MAX_DIMS);
        t->shape[t->ndim++] = (int64_t)v;
        if (!packed)
          break;
      }
      if (packed && cur_leave(c, shape_outer) != 0)
        goto truncated;
    } else if (field == TENSOR_CODEC && wt == WT_LEN) {
      if (cur_length(c, &v, NULL, NULL) != 0)
        goto truncated;
      size_t codec_outer = cur_enter(c, (size_t)v);
      while (cur_avail(c) > 0) {
        uint64_t ctag, cv;
        if (cur_varint(c, &ctag, NULL, NULL) != 0)
          goto truncated;
        if ((ctag >> 3) == CODEC_METHOD && (ctag & 7) == WT_VARINT) {
          if (cur_varint(c, &cv, NULL, NULL) != 0)
            goto truncated;
          t->codec = (int)PD_MIN(cv, (uint64_t)INT32_MAX);
        } else if ((ctag >> 3) == CODEC_BLOCK && (ctag & 7) == WT_VARINT) {
          if (cur_varint(c, &t->codec_block, NULL, NULL) != 0)
            goto truncated;
        } else if (cur_field_value(c, (int)(ctag & 7), NULL) != 0) {
          goto truncated;
        }
      }
      if (cur_leave(c, codec_outer) != 0)
        goto truncated;
    } else if (field == TENSOR_DATA && wt == WT_LEN) {
      if (have_data++)
        return pd_errf(err, errlen, -PD_EFORMAT, "tensor data appears twice");
      if (cur_length(c, &v, NULL, NULL) != 0)
        goto truncated;
      if (v > PD_WIRE_MAX_TENSOR_BYTES)
        return pd_errf(err, errlen, -PD_ETOOBIG,
                       "tensor data is %llu bytes, more than the limit of %u",
                       (unsigned long long)v, (unsigned)PD_WIRE_MAX_TENSOR_BYTES);
      if (dst && v > dst_cap)
        return pd_errf(err, errlen, -PD_EFORMAT,
                       "tensor data is %llu bytes, more than the %zu expected",
                       (unsigned long long)v, dst_cap);
      t->data_len = (size_t)v;
      t->data_offset = c->total - c->left;
      if (!dst && !scratch) { /* deferred: pd_wire_tensor_copy reads it later */
        if (cur_take(c, NULL, (size_t)v) != 0)
          goto truncated;
        continue;
      }
      if (!dst) {
        pd_buf_reserve(scratch, (size_t)v);
        dst = scratch->data;
      }
      if (cur_take(c, dst, (size_t)v) != 0)
        goto truncated;
      t->data = dst;
    } else if (cur_field_value(c, wt, NULL) != 0) {
      goto truncated;
    }
  }
  if (cur_leave(c, outer) != 0)
    goto truncated;
  return 0;
truncated:
  return pd_errf(err, errlen, -PD_EFORMAT, "malformed or truncated tensor field");
}

int pd_wire_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                   uint32_t tensor_field, void *dst, size_t dst_cap, pd_buf *scratch,
                   ProtobufCMessage **rest, pd_wire_tensor *tensor, char *err, size_t errlen) {
  cursor c;
  rest_buf r = {NULL, 0, 0};
  int rc = 0;
  memset(tensor, 0, sizeof *tensor);
  *rest = NULL;
  memset(&c, 0, sizeof c);
  if (bb) {
    if (!grpc_byte_buffer_reader_init(&c.reader, bb))
      return pd_errf(err, errlen, -PD_EFORMAT, "cannot read the %s message", desc->name);
    c.left = c.total = grpc_byte_buffer_length(bb);
  }
  while (c.left > 0) {
    uint8_t raw[10];
    size_t rawn = 0;
    uint64_t tag, len;
    if (cur_varint(&c, &tag, raw, &rawn) != 0)
      goto malformed;
    if ((tag >> 3) == tensor_field && (tag & 7) == WT_LEN) {
      if (tensor->present++) {
        rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: tensor field appears twice", desc->name);
        goto done;
      }
      if (cur_length(&c, &len, NULL, NULL) != 0)
        goto malformed;
      rc = decode_tensor(&c, (size_t)len, dst, dst_cap, scratch, tensor, err, errlen);
      if (rc != 0)
        goto done;
    } else if ((tag >> 3) > UINT32_MAX ||
               !protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3))) {
      /* An unknown field is skipped, not kept: protobuf-c would allocate a
       * record for each one. */
      if (cur_field_value(&c, (int)(tag & 7), NULL) != 0)
        goto malformed;
    } else {
      memcpy(rest_grow(&r, rawn), raw, rawn);
      if (cur_field_value(&c, (int)(tag & 7), &r) != 0)
        goto malformed;
    }
  }
  rc = pd_wire_check(r.data, r.len, desc, err, errlen);
  if (rc != 0)
    goto done;
  *rest = protobuf_c_message_unpack(desc, NULL, r.len, r.data);
  if (!*rest)
    goto malformed;
  goto done;
malformed:
  rc = pd_errf(err, errlen, -PD_EFORMAT, "malformed %s message", desc->name);
done:
  if (bb)
    grpc_byte_buffer_reader_destroy(&c.reader);
  free(r.data);
  return rc;
}

int pd_wire_tensor_copy(grpc_byte_buffer *bb, const pd_wire_tensor *t, void *dst) {
  cursor c;
  memset(&c, 0, sizeof c);
  if (t->data_len == 0)
    return 0;
  if (!bb || !grpc_byte_buffer_reader_init(&c.reader, bb))
    return -PD_EFORMAT;
  c.left = grpc_byte_buffer_length(bb);
  int rc = -PD_EFORMAT;
  if (t->data_offset <= c.left && t->data_len <= c.left - t->data_offset &&
      cur_take(&c, NULL, t->data_offset) == 0 && cur_take(&c, dst, t->data_len) == 0)
    rc = 0;
  grpc_byte_buffer_reader_destroy(&c.reader);
  return rc;
}

/* ---------------------------------------------------------------- checking before protobuf-c */

/* What pd_wire_check has counted so far. */
typedef struct check_state {
  size_t fields; /* field occurrences, nested ones included */
  char *err;
  size_t errlen;
} check_state;

/* The longest string or bytes value allowed for field `f` of a received
 * message. */
static size_t value_max(const ProtobufCFieldDescriptor *f) {
  if (strcmp(f->name, "spec_yaml") == 0)
    return PD_WIRE_MAX_SPEC_BYTES;
  if (f->type == PROTOBUF_C_TYPE_BYTES)
    return PD_WIRE_MAX_TENSOR_BYTES;
  return PD_WIRE_MAX_STRING_BYTES;
}

/* Nested messages are checked with their own descriptor; pando.proto has no
 * recursive message, so the depth is bounded by the schema. Unknown fields
 * are skipped whole (protobuf-c keeps them as bytes). */
static int check_message(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *desc,
                         check_state *st) {
  const uint8_t *end = p + len;
  while (p < end) {
    uint64_t tag = 0, v = 0;
    int shift = 0, n = 0;
    do { /* varint tag */
      if (p >= end || n++ == 10)
        goto malformed;
      tag |= (uint64_t)(*p & 0x7f) << shift;
      shift += 7;
    } while (*p++ & 0x80);
    if (++st->fields > PD_WIRE_MAX_FIELDS)
      return pd_errf(st->err, st->errlen, -PD_ETOOBIG, "%s: more than %d fields", desc->name,
                     PD_WIRE_MAX_FIELDS);
    int wt = (int)(tag & 7);
    const ProtobufCFieldDescriptor *f =
        (tag >> 3) <= UINT32_MAX
            ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3))
            : NULL;
    switch (wt) {
    case WT_VARINT:
      for (n = 0;; n++) {
        if (p >= end || n == 10)
          goto malformed;
        if (!(*p++ & 0x80))
          break;
      }
      break;
    case WT_I64:
    case WT_I32:
      if ((size_t)(end - p) < (wt == WT_I64 ? 8u : 4u))
        goto malformed;
      p += wt == WT_I64 ? 8 : 4;
      break;
    case WT_LEN:
      shift = n = 0;
      do {
        if (p >= end || n++ == 10)
          goto malformed;
        v |= (uint64_t)(*p & 0x7f) << shift;
        shift += 7;
      } while (*p++ & 0x80);
      if (v > (uint64_t)(end - p))
        goto malformed;
      if (f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) &&
          v > value_max(f))
        return pd_errf(st->err, st->errlen, -PD_ETOOBIG,
                       "%s.%s is %llu bytes, more than the limit of %zu", desc->name, f->name,
                       (unsigned long long)v, value_max(f));
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        int rc = check_message(p, (size_t)v, f->descriptor, st);
        if (rc != 0)
          return rc;
      } else if (f && f->label == PROTOBUF_C_LABEL_REPEATED && f->type != PROTOBUF_C_TYPE_STRING &&
                 f->type != PROTOBUF_C_TYPE_BYTES) {
        /* packed scalars: each element becomes an array entry (counted as
         * varints; fixed-size ones cost no more than their bytes) */
        for (const uint8_t *q = p; q < p + v; q++)
          if (!(*q & 0x80) && ++st->fields > PD_WIRE_MAX_FIELDS)
            return pd_errf(st->err, st->errlen, -PD_ETOOBIG, "%s.%s: more than %d values",
                           desc->name, f->name, PD_WIRE_MAX_FIELDS);
      }
      p += v;
      break;
    default:
      goto malformed;
    }
  }
  return 0;
malformed:
  return pd_errf(st->err, st->errlen, -PD_EFORMAT, "malformed %s message", desc->name);
}

int pd_wire_check(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *desc,
                  char *err, size_t errlen) {
  check_state st = {0, err, errlen};
  return check_message(data, len, desc, &st);
}
