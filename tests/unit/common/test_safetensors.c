/* Unit tests of the safetensors writer (common/src/ml/safetensors.c): the
 * exact header of a small layout, its 8-byte alignment, the data in key
 * order, and a write error naming the file; the reader (model.init). */
#include "pando/safetensors.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
  const char *want =
      "{\"__metadata__\":{\"pando.job\":\"j-1\"},"
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

static void write_raw(const char *path, const char *header, const void *data, size_t bytes) {
  FILE *f = fopen(path, "wb");
  uint64_t n = strlen(header);
  fwrite(&n, 8, 1, f);
  fwrite(header, 1, n, f);
  fwrite(data, 1, bytes, f);
  fclose(f);
}

/* A written file reads back by range; files from other writers (other key
 * order, extra tensors, escapes, spaces) read too; what does not fit the
 * layout is refused naming the tensor. */
static void test_read_range(void) {
  char *dir = pd_test_tmpdir("pando-st-test"), path[1100], err[512] = "";
  CHECK(dir != NULL);
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  pd_param_info params[2] = {{"layer0.weight", 2, {2, 3, 0, 0}, 0, 6},
                             {"layer0.bias", 1, {3, 0, 0, 0}, 6, 3}};
  float values[9] = {1, 2, 3, 4, 5, 6, -1, -2, -3}, got[9];
  CHECK_EQ_INT(pd_safetensors_write(path, params, 2, values, "j-1", err, sizeof err), 0);
  CHECK_EQ_INT(pd_safetensors_read_range(path, params, 2, 0, 9, got, err, sizeof err), 0);
  CHECK(memcmp(got, values, sizeof values) == 0);
  CHECK_EQ_INT(pd_safetensors_read_range(path, params, 2, 4, 8, got, err, sizeof err), 0);
  CHECK(memcmp(got, values + 4, 4 * sizeof(float)) == 0);

  /* bias first in the data, an extra tensor, metadata last, spaces */
  float other[10] = {-1, -2, -3, 9, 1, 2, 3, 4, 5, 6};
  write_raw(
      path,
      "{ \"layer0.bias\" : {\"shape\": [3], \"dtype\": \"F32\", \"data_offsets\": [0, 12]},"
      " \"extra\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [12, 16]},"
      " \"layer0.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [16, 40]},"
      " \"__metadata__\": {\"a\": \"b\\\"c\"} }   ",
      other, sizeof other);
  CHECK_EQ_INT(pd_safetensors_read_range(path, params, 2, 0, 9, got, err, sizeof err), 0);
  CHECK(memcmp(got, values, sizeof values) == 0);

  static const struct {
    const char *header, *message;
  } bad[] = {
      {"{\"layer0.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}",
       "has no tensor 'layer0.bias' (shape [3])"},
      {"{\"layer0.weight\": {\"dtype\": \"F32\", \"shape\": [3, 2], \"data_offsets\": [0, 24]},"
       " \"layer0.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [24, 36]}}",
       "tensor 'layer0.weight' has shape [3, 2], the model needs [2, 3]"},
      {"{\"layer0.weight\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [0, 12]},"
       " \"layer0.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [24, 36]}}",
       "tensor 'layer0.weight' is F16, expected F32"},
      {"{\"layer0.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
       " \"layer0.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [36, 48]}}",
       "tensor 'layer0.bias': data_offsets outside the data"},
      {"{\"layer0.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3]", "JSON header is malformed"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_raw(path, bad[i].header, values, sizeof values);
    int rc = pd_safetensors_read_range(path, params, 2, 0, 9, got, err, sizeof err);
    if (rc == 0 || !strstr(err, bad[i].message))
      fprintf(stderr, "  case %zu: rc %d, \"%s\"\n", i, rc, err);
    CHECK(rc != 0);
    CHECK_STR_CONTAINS(err, bad[i].message);
  }
  FILE *f = fopen(path, "wb");
  fwrite("\xff\xff\xff\xff\xff\xff\xff\xff", 1, 8, f);
  fclose(f);
  CHECK(pd_safetensors_read_range(path, params, 2, 0, 9, got, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "bad header length");
  /* model.init opens like a data file: a FIFO is refused at once */
  unlink(path);
  CHECK_EQ_INT(mkfifo(path, 0600), 0);
  CHECK(pd_safetensors_read_range(path, params, 2, 0, 9, got, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "is a FIFO, not a regular file");
  pd_test_rmtree(dir);
  free(dir);
}

int main(int argc, char **argv) {
  PD_RUN(test_header_and_data);
  PD_RUN(test_read_range);
  PD_TEST_DONE();
}
