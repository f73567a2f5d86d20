/* The tensor wire decoder (pd_wire_decode) on PushRequest and PullResponse,
 * over any slicing, in its three modes (into a destination, into scratch,
 * deferred + pd_wire_tensor_copy). The first byte picks message, mode and
 * slice size. A tensor with a codec (Tensor.codec) then goes through the
 * codec decoder (pd_codec_decode) for its shape, as pando-ps decodes a
 * compressed push. Nothing may crash, leak, read out of bounds, or allocate
 * more than the message holds. */
#include <string.h>

#include "fuzz.h"
#include "pando.pb-c.h"
#include "pando/codec.h"
#include "pando/error.h"
#include "pando/rpc.h"
#include "pando/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  if (!inited) {
    pd_rpc_init();
    inited = 1;
  }
  if (size < 1)
    return 0;
  uint8_t how = data[0];
  data++;
  size--;
  const ProtobufCMessageDescriptor *desc =
      how & 1 ? &pando__v1__pull_response__descriptor : &pando__v1__push_request__descriptor;
  uint32_t field = how & 1 ? 2 : 6;
  int mode = (how >> 1) % 3; /* 0 dst, 1 scratch, 2 deferred */
  size_t chunk = (size_t)(how >> 3) + 1;
  size_t nslices = size / chunk + 1;
  grpc_slice *slices = malloc(nslices * sizeof *slices);
  size_t n = 0;
  for (size_t at = 0; at < size || n == 0; at += chunk) {
    size_t k = size - at < chunk ? size - at : chunk;
    slices[n++] = grpc_slice_from_copied_buffer((const char *)data + at, k);
    if (at + k >= size)
      break;
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
  for (size_t i = 0; i < n; i++)
    grpc_slice_unref(slices[i]);
  free(slices);

  uint8_t dst[256];
  pd_buf scratch = {0};
  ProtobufCMessage *rest = NULL;
  pd_wire_tensor t;
  char err[256];
  int rc = pd_wire_decode(bb, desc, field, mode == 0 ? dst : NULL, sizeof dst,
                          mode == 1 ? &scratch : NULL, &rest, &t, err, sizeof err);
  if (rc == 0) {
    if (t.data_len > size || (rc == 0) != (rest != NULL))
      abort();
    if (mode == 2 && t.present) {
      uint8_t *copy = malloc(t.data_len + 1);
      if (pd_wire_tensor_copy(bb, &t, copy) != 0 ||
          (t.data_len && memcmp(copy, data + t.data_offset, t.data_len) != 0))
        abort();
      free(copy);
    }
    /* the codec decoder over what the message says: any method, block, length */
    if (t.present && t.codec != 0 && t.data && t.ndim == 1 && t.shape[0] >= 0 &&
        t.shape[0] <= 65536) {
      size_t keys = (size_t)t.shape[0];
      float *values = malloc(keys ? keys * sizeof *values : 1);
      int crc = pd_codec_decode((enum pd_codec)t.codec, (uint32_t)t.codec_block, t.data, t.data_len,
                                values, keys, err, sizeof err);
      if (crc != 0 && (crc != -PD_EFORMAT || err[0] == '\0'))
        abort();
      free(values);
    }
    protobuf_c_message_free_unpacked(rest, NULL);
  } else if (rest != NULL || (rc != -PD_EFORMAT && rc != -PD_ETOOBIG) || err[0] == '\0') {
    abort();
  }
  pd_buf_free(&scratch);
  grpc_byte_buffer_destroy(bb);
  return 0;
}
