/* Training data in memory, and the IDX (optionally gzipped) reader that fills
 * it. Files are read with io_uring and inflated with zlib. */
#ifndef PANDO_DATASET_H
#define PANDO_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct pd_dataset {
  uint64_t rows;     /* number of examples held */
  uint32_t cols;     /* features per example */
  float *features;   /* rows x cols, row-major; IDX bytes scaled to [0, 1] */
  uint8_t *labels;   /* rows class labels */
} pd_dataset;

/* Reads rows [row_begin, row_end) of an IDX feature file (ubyte, any number
 * of dimensions after the first, flattened) and its IDX label file (ubyte,
 * one dimension). Paths ending in .gz are inflated. row_end = UINT64_MAX
 * means "to the end". The two files must agree on the number of rows.
 * Returns 0 or a negative error with a message naming the file and problem. */
int pd_dataset_load_idx(const char *features_path, const char *labels_path, uint64_t row_begin,
                        uint64_t row_end, pd_dataset *out, char *err, size_t errlen);
void pd_dataset_close(pd_dataset *ds);

/* Reads only the header of an IDX(.gz) file: the number of rows (first
 * dimension) and the product of the other dimensions. */
int pd_idx_peek(const char *path, uint64_t *rows, uint64_t *cols, char *err, size_t errlen);

/* Reads a whole file into memory with io_uring (several reads in flight).
 * On success *data is malloc'd (caller frees) and *len its size. */
int pd_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

/* Splits `rows` into `workers` disjoint contiguous parts whose sizes differ by
 * at most one, and returns rank's part as [*begin, *end). */
void pd_partition_contiguous(uint64_t rows, uint32_t workers, uint32_t rank, uint64_t *begin,
                             uint64_t *end);

#endif
