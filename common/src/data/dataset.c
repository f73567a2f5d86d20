/* The top of the data code: views and gathers of rows, normalisation, and
 * pd_dataset_load()/pd_dataset_peek(), which dispatch to the reader of each
 * format (dataset_idx.c, dataset_text.c: CSV and libsvm,
 * dataset_synthetic.c), which read files through fileio.c. */
#include "pando/dataset.h"

#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"
#include "pando/error.h"
#include "pando/util.h"

/* ---- the in-memory dataset */

void pd_dataset_close(pd_dataset *ds) {
  if (ds->owned) {
    free(ds->features);
    free(ds->row_ptr);
    free(ds->col_idx);
    free(ds->values);
    free(ds->labels);
    free(ds->targets);
  }
  memset(ds, 0, sizeof(*ds));
}

pd_dataset pd_dataset_view(const pd_dataset *ds, uint64_t begin, uint64_t end) {
  PD_ASSERT(begin <= end && end <= ds->rows);
  pd_dataset view = *ds;
  view.rows = end - begin;
  view.owned = 0;
  if (ds->features)
    view.features = ds->features + begin * ds->cols;
  if (ds->row_ptr)
    view.row_ptr = ds->row_ptr + begin;
  if (ds->labels)
    view.labels = ds->labels + begin;
  if (ds->targets)
    view.targets = ds->targets + begin;
  return view;
}

/* Returns an array of at least `bytes` in place of `old`: `old` itself when
 * it is owned and large enough (no allocation), else a new one (64-byte
 * aligned, as features are). */
static void *reserve(void *old, int owned, size_t bytes) {
  if (owned && old && malloc_usable_size(old) >= bytes)
    return old;
  if (owned)
    free(old);
  return pd_xmalloc_aligned(bytes);
}

/* Drops an array `ds` does not need any more. */
static void *release(void *old, int owned) {
  if (owned)
    free(old);
  return NULL;
}

void pd_dataset_gather(const pd_dataset *src, const uint64_t *index, uint64_t n, pd_dataset *out) {
  PD_ASSERT(src != out);
  int owned = out->owned;
  uint64_t cols = src->cols;
  for (uint64_t i = 0; i < n; i++)
    PD_ASSERT(index[i] < src->rows);
  if (src->features) {
    out->features = reserve(out->features, owned, (size_t)(n * cols) * sizeof(float));
    for (uint64_t i = 0; i < n; i++)
      memcpy(out->features + i * cols, src->features + index[i] * cols, cols * sizeof(float));
    out->row_ptr = release(out->row_ptr, owned);
    out->col_idx = release(out->col_idx, owned);
    out->values = release(out->values, owned);
  } else {
    uint64_t nnz = 0;
    for (uint64_t i = 0; i < n; i++)
      nnz += src->row_ptr[index[i] + 1] - src->row_ptr[index[i]];
    out->row_ptr = reserve(out->row_ptr, owned, (size_t)(n + 1) * sizeof(uint64_t));
    out->col_idx = reserve(out->col_idx, owned, (size_t)nnz * sizeof(uint32_t));
    out->values = reserve(out->values, owned, (size_t)nnz * sizeof(float));
    out->row_ptr[0] = 0;
    for (uint64_t i = 0, at = 0; i < n; i++) {
      uint64_t b = src->row_ptr[index[i]], count = src->row_ptr[index[i] + 1] - b;
      memcpy(out->col_idx + at, src->col_idx + b, count * sizeof(uint32_t));
      memcpy(out->values + at, src->values + b, count * sizeof(float));
      at += count;
      out->row_ptr[i + 1] = at;
    }
    out->features = release(out->features, owned);
  }
  if (src->labels) {
    out->labels = reserve(out->labels, owned, (size_t)n);
    for (uint64_t i = 0; i < n; i++)
      out->labels[i] = src->labels[index[i]];
  } else {
    out->labels = release(out->labels, owned);
  }
  if (src->targets) {
    out->targets = reserve(out->targets, owned, (size_t)n * sizeof(float));
    for (uint64_t i = 0; i < n; i++)
      out->targets[i] = src->targets[index[i]];
  } else {
    out->targets = release(out->targets, owned);
  }
  out->rows = n;
  out->cols = src->cols;
  out->owned = 1;
}

/* ---- normalisation */

/* Per-feature affine maps x -> (x - shift[c]) * scale[c] of a dense dataset. */
typedef struct normalizer {
  float *shift, *scale; /* cols each */
} normalizer;

/* Computes the map of `kind` from `train`'s statistics (in double). */
static void normalizer_fit(normalizer *nz, const pd_dataset *train, enum pd_normalize kind) {
  uint64_t cols = train->cols, rows = train->rows;
  double *a = pd_xcalloc(cols ? cols : 1, sizeof(double));
  double *b = pd_xcalloc(cols ? cols : 1, sizeof(double));
  nz->shift = pd_xmalloc((size_t)(cols ? cols : 1) * sizeof(float));
  nz->scale = pd_xmalloc((size_t)(cols ? cols : 1) * sizeof(float));
  if (rows == 0) { /* no statistics: the identity */
    for (uint64_t c = 0; c < cols; c++) {
      nz->shift[c] = 0;
      nz->scale[c] = 1;
    }
  } else if (kind == PD_NORMALIZE_STANDARD) { /* a: mean, b: sum of squared deviations */
    for (uint64_t r = 0; r < rows; r++)
      for (uint64_t c = 0; c < cols; c++)
        a[c] += train->features[r * cols + c];
    for (uint64_t c = 0; c < cols; c++)
      a[c] /= (double)rows;
    for (uint64_t r = 0; r < rows; r++)
      for (uint64_t c = 0; c < cols; c++) {
        double d = train->features[r * cols + c] - a[c];
        b[c] += d * d;
      }
    for (uint64_t c = 0; c < cols; c++) {
      double sd = sqrt(b[c] / (double)rows);
      nz->shift[c] = (float)a[c];
      nz->scale[c] = sd > 0 ? (float)(1.0 / sd) : 1.0f;
    }
  } else { /* minmax; a: min, b: max */
    for (uint64_t c = 0; c < cols; c++) {
      a[c] = INFINITY;
      b[c] = -INFINITY;
    }
    for (uint64_t r = 0; r < rows; r++)
      for (uint64_t c = 0; c < cols; c++) {
        double x = train->features[r * cols + c];
        a[c] = x < a[c] ? x : a[c];
        b[c] = x > b[c] ? x : b[c];
      }
    for (uint64_t c = 0; c < cols; c++) {
      nz->shift[c] = (float)a[c];
      nz->scale[c] = b[c] > a[c] ? (float)(1.0 / (b[c] - a[c])) : 1.0f;
    }
  }
  free(b);
  free(a);
}

static void normalizer_apply(const normalizer *nz, pd_dataset *ds) {
  for (uint64_t r = 0; r < ds->rows; r++) {
    float *x = ds->features + r * ds->cols;
    for (uint64_t c = 0; c < ds->cols; c++)
      x[c] = (x[c] - nz->shift[c]) * nz->scale[c];
  }
}

static void normalizer_close(normalizer *nz) {
  free(nz->shift);
  free(nz->scale);
}

/* ---- loading a split of a job spec */

static const char *normalize_name(enum pd_normalize kind) {
  return kind == PD_NORMALIZE_STANDARD ? "standard"
         : kind == PD_NORMALIZE_MINMAX ? "minmax"
                                       : "none";
}

static bool is_format(const pd_job_spec *spec, const char *name) {
  return strcmp(spec->data.format, name) == 0;
}

/* The checks every split of a spec shares: a known format, and a
 * normalisation the format allows. */
static int check_format(const pd_job_spec *spec, char *err, size_t errlen) {
  bool sparse = is_format(spec, "libsvm") || is_format(spec, "synthetic");
  if (!sparse && !is_format(spec, "idx") && !is_format(spec, "csv"))
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.format: unknown format '%s'; expected one of: idx, csv, libsvm, synthetic",
                   spec->data.format);
  if (sparse && spec->data.normalize != PD_NORMALIZE_NONE)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC,
                   "data.normalize: %s is not supported for sparse data (libsvm, synthetic)",
                   normalize_name(spec->data.normalize));
  return 0;
}

/* Whether the spec has a split `test` at all. */
static bool has_split(const pd_job_spec *spec, int test) {
  if (!test)
    return true;
  if (is_format(spec, "synthetic"))
    return spec->data.synthetic.test_rows > 0;
  return spec->data.test.features[0] != '\0';
}

static const char *features_key(int test) {
  return test ? "data.test.features" : "data.train.features";
}

/* The rows and features of an IDX split, from its files' headers. */
static int idx_peek_split(const pd_job_spec *spec, int test, uint64_t *rows, uint64_t *cols,
                          char *err, size_t errlen) {
  const pd_data_files *files = test ? &spec->data.test : &spec->data.train;
  uint64_t label_rows, label_cols;
  char why[512];
  int rc = pd_idx_peek(files->features, rows, cols, why, sizeof why);
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s: %s", features_key(test), why);
  const char *labels_key = test ? "data.test.labels" : "data.train.labels";
  if ((rc = pd_idx_peek(files->labels, &label_rows, &label_cols, why, sizeof why)) != 0)
    return pd_errf(err, errlen, rc, "%s: %s", labels_key, why);
  if (label_rows != *rows)
    return pd_errf(err, errlen, -PD_EFORMAT, "%s: %s has %llu labels for %llu feature rows",
                   labels_key, files->labels, (unsigned long long)label_rows,
                   (unsigned long long)*rows);
  return 0;
}

/* Loads a split as its format reads it, before normalisation. `train_cols`
 * (0: unknown) is the training split's number of features, which a test
 * split must match (dense) or not exceed (libsvm). */
static int load_raw(const pd_job_spec *spec, int test, uint64_t train_cols, pd_dataset *out,
                    char *err, size_t errlen) {
  const pd_data_files *files = test ? &spec->data.test : &spec->data.train;
  const char *key = features_key(test);
  int rc = 0;
  if (is_format(spec, "synthetic")) {
    const pd_synthetic_spec *sy = &spec->data.synthetic;
    pd_dataset_synthetic(sy, test, 0, test ? sy->test_rows : sy->rows, out);
  } else if (is_format(spec, "libsvm")) {
    rc = pd__libsvm_read(key, files->features, (uint32_t)train_cols, (uint32_t)train_cols, out,
                         NULL, NULL, err, errlen);
  } else if (is_format(spec, "csv")) {
    rc = pd__csv_read(key, files->features, spec->data.label_column, spec->data.header,
                      (uint32_t)train_cols, out, NULL, NULL, err, errlen);
  } else {
    enum pd__idx_file bad;
    char why[768];
    rc = pd__idx_load(files->features, files->labels, 0, UINT64_MAX, out, &bad, why, sizeof why);
    if (rc != 0)
      return pd_errf(
          err, errlen, rc, "%s: %s",
          bad == PD__IDX_LABELS ? (test ? "data.test.labels" : "data.train.labels") : key, why);
    if (train_cols && out->cols != train_cols) {
      rc = pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s has %u values per row, but the training data has %llu", key,
                   files->features, out->cols, (unsigned long long)train_cols);
      pd_dataset_close(out);
    }
  }
  return rc;
}

/* The training split's number of features, as a test split needs it. */
static int train_cols_of(const pd_job_spec *spec, uint64_t *cols, char *err, size_t errlen) {
  uint64_t rows;
  *cols = 0;
  if (is_format(spec, "libsvm"))
    return pd__libsvm_read("data.train.features", spec->data.train.features, 0, 0, NULL, &rows,
                           cols, err, errlen);
  if (is_format(spec, "csv"))
    return pd__csv_columns("data.train.features", spec->data.train.features, cols, err, errlen);
  if (is_format(spec, "idx"))
    return idx_peek_split(spec, 0, &rows, cols, err, errlen);
  *cols = (uint64_t)spec->data.synthetic.features;
  return 0;
}

int pd_dataset_load(const pd_job_spec *spec, int test, pd_dataset *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  pd_dataset train = {0};
  normalizer nz = {0};
  uint64_t train_cols = 0;
  int rc = check_format(spec, err, errlen);
  if (rc != 0 || !has_split(spec, test))
    return rc;
  bool normalize = spec->data.normalize != PD_NORMALIZE_NONE;
  if (test && normalize) { /* the statistics come from the training split */
    if ((rc = load_raw(spec, 0, 0, &train, err, errlen)) != 0)
      goto done;
    train_cols = train.cols;
  } else if (test && (rc = train_cols_of(spec, &train_cols, err, errlen)) != 0) {
    goto done;
  }
  if ((rc = load_raw(spec, test, train_cols, out, err, errlen)) != 0)
    goto done;
  if (normalize) {
    normalizer_fit(&nz, test ? &train : out, spec->data.normalize);
    normalizer_apply(&nz, out);
  }
done:
  normalizer_close(&nz);
  pd_dataset_close(&train);
  return rc;
}

int pd_dataset_peek(const pd_job_spec *spec, int test, uint64_t *rows, uint64_t *cols, char *err,
                    size_t errlen) {
  *rows = 0;
  *cols = 0;
  uint64_t train_cols = 0;
  int rc = check_format(spec, err, errlen);
  if (rc != 0 || !has_split(spec, test))
    return rc;
  const char *key = features_key(test);
  const char *path = test ? spec->data.test.features : spec->data.train.features;
  if (is_format(spec, "synthetic")) {
    *rows = test ? spec->data.synthetic.test_rows : spec->data.synthetic.rows;
    *cols = (uint64_t)spec->data.synthetic.features;
    return 0;
  }
  if (test && (rc = train_cols_of(spec, &train_cols, err, errlen)) != 0)
    return rc;
  if (is_format(spec, "libsvm"))
    return pd__libsvm_read(key, path, (uint32_t)train_cols, (uint32_t)train_cols, NULL, rows, cols,
                           err, errlen);
  if (is_format(spec, "csv"))
    return pd__csv_read(key, path, spec->data.label_column, spec->data.header, (uint32_t)train_cols,
                        NULL, rows, cols, err, errlen);
  if ((rc = idx_peek_split(spec, test, rows, cols, err, errlen)) != 0)
    return rc;
  if (test && *cols != train_cols)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s has %llu values per row, but the training data has %llu", key, path,
                   (unsigned long long)*cols, (unsigned long long)train_cols);
  return 0;
}
