/* The Peer message decoder and its checks (pd_peer_decode, pd_peer_check)
 * on any bytes: a PeerTensor of any shape, size, clock or micro-batch
 * against a stage 1 of 3 expecting [rows, 16] forward and [rows, 8]
 * backward. Nothing may crash, leak, read out of bounds, or allocate more
 * than the message holds; an accepted tensor's payload copies whole. */
#include <string.h>

#include "fuzz.h"
#include "pando.pb-c.h"
#include "pando/peer.h"
#include "pando/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  if (!inited) {
    pd_rpc_init();
    inited = 1;
  }
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)data, size);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  Pando__V1__PeerTensor *msg = NULL;
  pd_wire_tensor t;
  char err[512];
  if (pd_peer_decode(bb, &msg, &t, err, sizeof err) == 0) {
    pd_peer_expect e = {.job = "job-1",
                        .attempt = 0,
                        .replica = 0,
                        .stage = 1,
                        .stages = 3,
                        .in_width = 16,
                        .out_width = 8,
                        .micro_batches = 4,
                        .clock = 0,
                        .batch_rows = {32, 0},
                        .max_batch_rows = 33};
    uint64_t rows = 0;
    if (pd_peer_check(msg, &t, &e, &rows, err, sizeof err) == GRPC_STATUS_OK) {
      if (t.data_len > size || rows == 0 ||
          (t.data_len != rows * 16 * sizeof(float) && t.data_len != rows * 8 * sizeof(float)))
        abort();
      void *copy = malloc(t.data_len);
      if (pd_wire_tensor_copy(bb, &t, copy) != 0)
        abort();
      free(copy);
    }
    pando__v1__peer_tensor__free_unpacked(msg, NULL);
  }
  grpc_byte_buffer_destroy(bb);
  return 0;
}
