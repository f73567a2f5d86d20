/* Training data in memory, dense or sparse (CSR), and the readers that fill
 * it: IDX (optionally gzipped), CSV, libsvm, and a seeded synthetic
 * generator. Files are read with io_uring and inflated with zlib
 * (pando/fileio.h). */
#ifndef PANDO_DATASET_H
#define PANDO_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

/* A set of examples. Dense: `features` holds rows x cols values. Sparse
 * (CSR): `features` is NULL and row i's non-zeros are
 * col_idx/values[row_ptr[i] .. row_ptr[i+1]) (row_ptr[0] need not be 0 in a
 * view). Every example has a target; classification data also has labels. */
typedef struct pd_dataset {
  uint64_t rows;     /* number of examples held */
  uint32_t cols;     /* features per example (sparse: size of the feature space) */
  float *features;   /* dense: rows x cols, row-major; IDX bytes scaled to [0, 1] */
  uint64_t *row_ptr; /* sparse: rows + 1 offsets into col_idx and values */
  uint32_t *col_idx; /* sparse: the feature of each non-zero, ascending within a row */
  float *values;     /* sparse: the value of each non-zero */
  uint8_t *labels;   /* class of each row; NULL when a target is not a class 0..255 */
  float *targets;    /* the target of each row as a number (regression, or the class) */
  int owned;         /* the arrays belong to this struct (pd_dataset_close frees them) */
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
/* Frees the arrays of `ds` if it owns them and zeroes it (a zeroed `ds` or a
 * view is fine). */
void pd_dataset_close(pd_dataset *ds);

/* Loads the training (`test` = 0) or test (`test` = 1) split that `spec`'s
 * data section describes, all of its rows, into `out` (owned; free it with
 * pd_dataset_close()). Files may be gzipped (recognised by their magic).
 *  - idx: dense, bytes scaled to [0, 1]; labels and targets are the classes.
 *  - csv: dense numbers separated by ','; a field may be quoted (RFC 4180:
 *    "1.5"); data.header: the first line names the columns (a quoted name
 *    may hold commas and "" for a quote; a line break inside quotes is
 *    refused); data.label_column (a header name, or a 0-based index) is
 *    the target, the other columns are the features, in order. Blank lines
 *    may end the file. Labels are set when every target is a class 0..255.
 *  - libsvm: CSR; lines "label index:value ..." with 1-based, ascending
 *    indices ('#' starts a comment). Labels that are all -1/+1 become classes
 *    0/1; all integers 0..255 are classes; anything else is a regression
 *    target (labels NULL). The feature space is the largest index of the
 *    training split; the test split gets the same cols (an index beyond it is
 *    an error).
 *  - synthetic: CSR, pd_dataset_synthetic() of all the split's rows.
 * The test split of a dense format must have the training split's number of
 * features. data.normalize standard (z-score) or minmax (to [0, 1]) shifts
 * and scales each feature with the training split's statistics, for both
 * splits (a constant feature becomes 0); sparse formats allow only none.
 * Loading a normalised test split therefore reads the training split too.
 * A spec without a test split (no data.test.features, or synthetic with
 * test_rows 0) gives an empty dataset for test. Returns 0, or a negative
 * error (-PD_EFORMAT for bad content, -errno for files) with a message that
 * starts with the spec key and names the file, line and column (columns are
 * counted from 1 in messages), e.g. "data.train.features: /x.csv:17: column
 * 3: expected a number", and never quotes the file's contents; `out` is then
 * zeroed. Files are opened under the limits of pd_data_set_limits()
 * (pando/fileio.h). */
int pd_dataset_load(const pd_job_spec *spec, int test, pd_dataset *out, char *err, size_t errlen);

/* The number of rows and features a pd_dataset_load() of the split would
 * give, without keeping the data (idx: the headers; csv and libsvm: a
 * validating pass over the file, and for libsvm's test split over the
 * training file too; synthetic: the spec). Errors as pd_dataset_load(),
 * except for the content of an IDX file after its header. */
int pd_dataset_peek(const pd_job_spec *spec, int test, uint64_t *rows, uint64_t *cols, char *err,
                    size_t errlen);

/* A view of rows [begin, end) of `ds`: no copy, nothing owned. */
pd_dataset pd_dataset_view(const pd_dataset *ds, uint64_t begin, uint64_t end);

/* Makes `out` hold copies of the rows `index[0..n)` of `src` (in that order),
 * reusing out's arrays when it already owns some (for one batch after the
 * other without allocating). */
void pd_dataset_gather(const pd_dataset *src, const uint64_t *index, uint64_t n, pd_dataset *out);

/* Generates rows [row_begin, row_end) of the training (`test` = 0) or test
 * (`test` = 1) split of data.format synthetic into `out` (CSR, owned):
 * binary classification data for sparse logistic regression. A hidden weight
 * vector w (w_j uniform in [-1, 1), a function of (seed, j)) decides the
 * classes: a row has spec->nnz distinct features, uniformly drawn, each of
 * value 1, and its label is 1 when w.x + noise > 0 (Gaussian noise with 0.25
 * times the standard deviation of w.x), else 0. Each row is a function of
 * (seed, split, row) alone: any range equals the same rows of the whole
 * split, and the test rows come from another stream of the same
 * distribution. Requires row_end <= the split's rows, 1 <= nnz <= features. */
void pd_dataset_synthetic(const pd_synthetic_spec *spec, int test, uint64_t row_begin,
                          uint64_t row_end, pd_dataset *out);

/* The same rows as pd_dataset_synthetic() gives, but rows index[0..n) of the
 * split, in that order (for example a worker's partition from
 * pd_plan_partition(), so that it generates only its own rows). Requires
 * every index < the split's rows. */
void pd_dataset_synthetic_rows(const pd_synthetic_spec *spec, int test, const uint64_t *index,
                               uint64_t n, pd_dataset *out);

/* Reads only the header of an IDX file, gzipped or not (a gzipped file is
 * inflated only as far as its header): the number of rows (first dimension)
 * and the product of the other dimensions. Returns 0 or a negative error with
 * a message in `err`. */
int pd_idx_peek(const char *path, uint64_t *rows, uint64_t *cols, char *err, size_t errlen);

#endif
