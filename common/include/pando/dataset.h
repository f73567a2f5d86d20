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
 * one dimension). Gzipped files (recognised by their magic bytes 1f 8b, not
 * by name) are inflated. row_end = UINT64_MAX means "to the end". The two
 * files must agree on the number of rows, and each must hold exactly the
 * data its header announces. On success `out` owns its arrays (free them
 * with pd_dataset_close()). Returns 0, or -errno (file errors), -ERANGE (rows
 * out of range) or -PD_EFORMAT (bad content) with a message in `err` that
 * names the file and the problem; `out` is then zeroed. */
int pd_dataset_load_idx(const char *features_path, const char *labels_path, uint64_t row_begin,
                        uint64_t row_end, pd_dataset *out, char *err, size_t errlen);
/* Frees the arrays of `ds` and zeroes it (a zeroed `ds` is fine). */
void pd_dataset_close(pd_dataset *ds);

/* Reads only the header of an IDX file, gzipped or not (a gzipped file is
 * inflated only as far as its header): the number of rows (first dimension)
 * and the product of the other dimensions. Returns 0 or a negative error with
 * a message in `err`. */
int pd_idx_peek(const char *path, uint64_t *rows, uint64_t *cols, char *err, size_t errlen);

/* Reads a whole regular file into memory with io_uring (several reads in
 * flight; plain read() where io_uring is unavailable). On success *data is
 * malloc'd (caller frees) and *len its size. Returns 0 or -errno with a
 * message in `err` naming the file. */
int pd_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen);

/* Splits `rows` into `workers` disjoint contiguous parts whose sizes differ by
 * at most one (the first rows % workers parts get the extra row), and returns
 * rank's part as [*begin, *end). Requires rank < workers. */
void pd_partition_contiguous(uint64_t rows, uint32_t workers, uint32_t rank, uint64_t *begin,
                             uint64_t *end);

#endif
