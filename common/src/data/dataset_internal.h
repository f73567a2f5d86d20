/* Private to the data readers (common/src/data): the format readers that
 * pd_dataset_load() (dataset.c) dispatches to. File reads are in fileio.h.
 * Never included from outside common/src/data. */
#ifndef PANDO_DATASET_INTERNAL_H
#define PANDO_DATASET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pando/dataset.h"

/* Which file of an IDX pair an error is about (for the spec key). */
enum pd__idx_file { PD__IDX_FEATURES, PD__IDX_LABELS };

/* pd_dataset_load_idx() that also says in *bad which file an error is
 * about. */
int pd__idx_load(const char *features_path, const char *labels_path, uint64_t row_begin,
                 uint64_t row_end, pd_dataset *out, enum pd__idx_file *bad, char *err,
                 size_t errlen);

/* The number of features of a CSV file (the columns of its first line, less
 * the label's), from its first line only. Errors as pd__csv_read(). */
int pd__csv_columns(const char *key, const char *path, uint64_t *features, char *err,
                    size_t errlen);

/* Reads a CSV file of numbers (see pd_dataset_load()): the column
 * `label_column` (a header name, or a 0-based index) is the target, every
 * other column a feature. `header`: the first line names the columns.
 * `want_cols` > 0 requires that many features (a test split must match its
 * training split). Fills `out` (dense, owned) when it is not NULL, else only
 * counts. *rows and *cols (may be NULL) receive the rows and features.
 * Errors are -PD_EFORMAT or -errno; their message starts with `key` (the
 * spec key of the file) or "data.label_column" and names the file, line and
 * column. */
int pd__csv_read(const char *key, const char *path, const char *label_column, int header,
                 uint32_t want_cols, pd_dataset *out, uint64_t *rows, uint64_t *cols, char *err,
                 size_t errlen);

/* Reads a libsvm file ("label index:value ...", 1-based ascending indices).
 * The feature space is the largest index, or `min_cols` when that is larger;
 * `max_cols` > 0 makes an index above it an error (a test split may not use
 * features its training split does not have). Labels that are all -1/+1
 * become classes 0/1; labels that are all integers in 0..255 are classes;
 * anything else is a regression target (labels NULL). Fills `out` (CSR,
 * owned) when it is not NULL, else only counts; *rows and *cols (may be
 * NULL) receive the rows and the feature space. Errors as pd__csv_read(). */
int pd__libsvm_read(const char *key, const char *path, uint32_t min_cols, uint32_t max_cols,
                    pd_dataset *out, uint64_t *rows, uint64_t *cols, char *err, size_t errlen);

#endif
