/* Unit tests of the safetensors writer (common/src/ml/safetensors.c): the
 * exact header of a small layout, its 8-byte alignment, the data in key
 * order, and a write error naming the file. */
#include "pando/safetensors.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../test.h"
#include "pando/durable.h"

static void test_header_and_data(void) {
  char *dir = pd_test_tmpdir("pando-st-test"), path[1100], err[512] = "";
  CHECK(dir != NULL);
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  pd_param_info params[2] = {{"layer0.weight", 2, {2, 3, 0, 0}, 0, 6},
                             {"layer0.bias", 1, {3, 0, 0, 0}, 6, 3}};
  float values[9] = {1, 2, 3, 4, 5, 6, -1, -2, -3};
  CHECK_EQ_INT(pd_safetensors_write(path, params, 2, values, "j-1", err, sizeof err), 0);
  char *data;
  size_t bytes;
  CHECK_EQ_INT(pd_file_read_all(path, 4096, &data, &bytes, err, sizeof err), 0);
  uint64_t n;
  memcpy(&n, data, 8);
  const char *want = "{\"__metadata__\":{\"pando.job\":\"j-1\"},"
                     "\"layer0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                     "\"layer0.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}}";
  CHECK_EQ_INT(n % 8, 0);
  CHECK(n >= strlen(want) && n < strlen(want) + 8);
  CHECK(memcmp(data + 8, want, strlen(want)) == 0);
  for (size_t i = strlen(want); i < n; i++)
    CHECK(data[8 + i] == ' ');
  CHECK_EQ_INT(bytes, 8 + n + sizeof values);
  CHECK(memcmp(data + 8 + n, values, sizeof values) == 0);
  free(data);
  snprintf(path, sizeof path, "%s/missing/m.safetensors", dir);
  CHECK_EQ_INT(pd_safetensors_write(path, params, 2, values, NULL, err, sizeof err), -ENOENT);
  CHECK_STR_CONTAINS(err, "missing");
  pd_test_rmtree(dir);
  free(dir);
}

int main(int argc, char **argv) {
  PD_RUN(test_header_and_data);
  PD_TEST_DONE();
}
