/* The data readers' harnesses (fuzz_idx, fuzz_csv, fuzz_libsvm): the input
 * becomes the training file(s) of a job spec of the given format, which
 * pd_dataset_peek and pd_dataset_load read as the coordinator and the
 * workers do. */
#ifndef PANDO_FUZZ_DATASET_H
#define PANDO_FUZZ_DATASET_H

#include <string.h>

#include "fuzz.h"
#include "pando/dataset.h"
#include "pando/spec.h"

/* `extra` goes into the data section; for idx the input is cut into the
 * features and labels files at the offset its first two bytes give. */
static inline int fuzz_dataset(const uint8_t *data, size_t size, const char *format,
                               const char *extra) {
  char features[64], labels[64], yaml[1024], err[512] = "";
  const uint8_t *labels_data = data;
  size_t labels_size = 0;
  int idx = strcmp(format, "idx") == 0;
  if (idx) {
    if (size < 2)
      return 0;
    size_t cut = ((size_t)data[0] << 8 | data[1]) % (size - 1);
    labels_data = data + 2 + cut;
    labels_size = size - 2 - cut;
    data += 2;
    size = cut;
  }
  int fd = fuzz_file(data, size, features, sizeof features);
  int lfd = idx ? fuzz_file(labels_data, labels_size, labels, sizeof labels) : -1;
  snprintf(yaml, sizeof yaml,
           "name: fuzz\nmodel: {type: softmax, layers: [4, 3]}\n"
           "data: {format: %s, train: {features: '%s'%s%s%s}%s}\n"
           "training: {epochs: 1, batch_size: 2, optimizer: {lr: 0.1}}\n"
           "cluster: {servers: 1, workers: 1}\n",
           format, features, idx ? ", labels: '" : "", idx ? labels : "", idx ? "'" : "", extra);
  pd_job_spec *spec = malloc(sizeof *spec);
  if (pd_job_spec_parse(yaml, strlen(yaml), spec, err, sizeof err) != 0) {
    fprintf(stderr, "harness spec refused: %s\n", err);
    abort();
  }
  uint64_t rows = 0, cols = 0;
  int peek = pd_dataset_peek(spec, 0, &rows, &cols, err, sizeof err);
  if (peek != 0 && err[0] == '\0')
    abort();
  pd_dataset ds;
  err[0] = '\0';
  int rc = pd_dataset_load(spec, 0, &ds, err, sizeof err);
  if (rc != 0 && err[0] == '\0')
    abort();
  if (rc == 0)
    pd_dataset_close(&ds);
  free(spec);
  close(fd);
  if (lfd >= 0)
    close(lfd);
  return 0;
}

#endif
