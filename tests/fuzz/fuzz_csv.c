/* The CSV reader (header, label column, numbers): see fuzz_dataset.h. The
 * first input byte chooses a header or not. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  return fuzz_dataset(data + 1, size - 1, "csv", data[0] & 1 ? ", header: true" : "");
}
