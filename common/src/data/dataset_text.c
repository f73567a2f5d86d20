/* The text readers of the dataset module: CSV (dense) and libsvm (sparse),
 * parsed in one pass over the whole (inflated) file with a hand-written
 * number scanner and no allocation per field. Messages name the file, line
 * and column but never quote the file's text (a client could otherwise read
 * any file the daemon can open). */
#include "dataset_internal.h"

#include <errno.h>
#include <float.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "pando/error.h"
#include "pando/util.h"

/* ---- numbers */

enum scan_result { SCAN_OK, SCAN_NOT_A_NUMBER, SCAN_OUT_OF_RANGE };

static const double exact_powers_of_ten[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool is_digit(char c) { return (unsigned)(c - '0') < 10; }
static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Whether the double `d` lies exactly halfway between two floats (where
 * rounding the double to float could differ from rounding the decimal). */
static bool float_midpoint(double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  return (bits & ((1ull << 29) - 1)) == 1ull << 28;
}

/* The slow path: strtof() on a NUL-terminated copy of [start, end). */
static enum scan_result scan_float_slow(const char *start, const char *end, float *out) {
  char small[128];
  size_t len = (size_t)(end - start);
  char *copy = len < sizeof small ? small : pd_xmalloc(len + 1);
  memcpy(copy, start, len);
  copy[len] = '\0';
  char *stop;
  float value = strtof(copy, &stop);
  enum scan_result rc = stop != copy + len                    ? SCAN_NOT_A_NUMBER
                        : value > FLT_MAX || value < -FLT_MAX ? SCAN_OUT_OF_RANGE
                                                              : SCAN_OK;
  if (copy != small)
    free(copy);
  *out = value;
  return rc;
}

/* Parses a decimal number ([+-]digits[.digits][(e|E)[+-]digits], digits on at
 * least one side of the point) at [*p, end) into *out, rounded as strtof()
 * rounds it, and advances *p past it. Short numbers, the usual case, take a
 * fast path: their digits fit a double exactly and one multiplication by an
 * exact power of ten rounds correctly. NaN, infinities, hex and values
 * beyond float's range are refused. */
static enum scan_result scan_float(const char **p, const char *end, float *out) {
  const char *start = *p, *s = *p;
  bool negative = false;
  if (s < end && (*s == '-' || *s == '+'))
    negative = *s++ == '-';
  uint64_t mantissa = 0;
  int digits = 0, exponent = 0;
  bool any = false, dropped = false;
  for (; s < end && is_digit(*s); s++, any = true) {
    if (digits < 19) {
      mantissa = mantissa * 10 + (uint64_t)(*s - '0');
      digits += mantissa != 0;
    } else {
      exponent++;
      dropped = true;
    }
  }
  if (s < end && *s == '.') {
    for (s++; s < end && is_digit(*s); s++, any = true) {
      if (digits < 19) {
        mantissa = mantissa * 10 + (uint64_t)(*s - '0');
        digits += mantissa != 0;
        exponent--;
      } else {
        dropped = true;
      }
    }
  }
  if (!any)
    return SCAN_NOT_A_NUMBER;
  if (s < end && (*s == 'e' || *s == 'E')) {
    const char *e = s + 1;
    bool exp_negative = false;
    if (e < end && (*e == '-' || *e == '+'))
      exp_negative = *e++ == '-';
    if (e == end || !is_digit(*e))
      return SCAN_NOT_A_NUMBER;
    int value = 0;
    for (; e < end && is_digit(*e); e++)
      value = value < 100000 ? value * 10 + (*e - '0') : value;
    exponent += exp_negative ? -value : value;
    s = e;
  }
  *p = s;
  if (mantissa == 0 && !dropped) {
    *out = negative ? -0.0f : 0.0f;
    return SCAN_OK;
  }
  if (!dropped && mantissa <= (1ull << 53) && exponent >= -22 && exponent <= 22) {
    double d = exponent >= 0 ? (double)mantissa * exact_powers_of_ten[exponent]
                             : (double)mantissa / exact_powers_of_ten[-exponent];
    if (d >= FLT_MIN && d <= FLT_MAX && !float_midpoint(d)) {
      float f = (float)d;
      *out = negative ? -f : f;
      return SCAN_OK;
    }
  }
  return scan_float_slow(start, s, out);
}

/* Parses an unsigned decimal integer at [*p, end) up to UINT32_MAX. */
static bool scan_index(const char **p, const char *end, uint32_t *out) {
  const char *s = *p;
  uint64_t value = 0;
  for (; s < end && is_digit(*s); s++) {
    value = value * 10 + (uint64_t)(*s - '0');
    if (value > UINT32_MAX)
      return false;
  }
  if (s == *p)
    return false;
  *p = s;
  *out = (uint32_t)value;
  return true;
}

/* ---- lines */

/* Counts `c` in [p, end). */
static uint64_t count_char(const char *p, const char *end, char c) {
  uint64_t n = 0;
  while ((p = memchr(p, c, (size_t)(end - p))) != NULL) {
    n++;
    p++;
  }
  return n;
}

/* The line starting at `p`: [p, *line_end) without its '\n' and trailing
 * '\r'; returns where the next line starts. */
static const char *next_line(const char *p, const char *end, const char **line_end) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  const char *e = nl ? nl : end;
  if (e > p && e[-1] == '\r')
    e--;
  *line_end = e;
  return nl ? nl + 1 : end;
}

static const char *skip_blanks(const char *p, const char *end) {
  while (p < end && is_blank(*p))
    p++;
  return p;
}

/* Whether only blank lines remain in [p, end). */
static bool only_blank_lines(const char *p, const char *end) {
  for (; p < end; p++)
    if (!is_blank(*p) && *p != '\n')
      return false;
  return true;
}

/* ---- CSV */

/* One column name of a header line: [name, name + len). */
typedef struct csv_name {
  const char *name;
  int len;
} csv_name;

/* Counts the columns of a line: its commas outside double quotes plus one
 * (RFC 4180: a quoted field may hold commas; a doubled quote is a quote). */
static uint64_t csv_columns(const char *p, const char *line_end) {
  uint64_t n = 1;
  bool quoted = false;
  for (; p < line_end; p++) {
    if (*p == '"')
      quoted = !quoted; /* "" toggles twice */
    else if (*p == ',' && !quoted)
      n++;
  }
  return n;
}

/* Splits the header line into names, trimmed of blanks. A name may be
 * quoted (RFC 4180): then it may hold commas, and "" stands for a quote; the
 * unquoted names are copied into `buf` (the line's length). Returns 0, or
 * the 1-based column whose quotes are not closed on the line (a line break
 * inside quotes is not supported) or that has text after its closing
 * quote. */
static uint64_t csv_split_header(const char *p, const char *line_end, csv_name *names,
                                 uint64_t ncols, char *buf) {
  char *out = buf;
  for (uint64_t c = 0; c < ncols; c++) {
    const char *b = skip_blanks(p, line_end);
    names[c].name = out;
    if (b < line_end && *b == '"') {
      const char *q = b + 1;
      for (;; q++) {
        if (q >= line_end)
          return c + 1;
        if (*q == '"' && q + 1 < line_end && q[1] == '"')
          *out++ = *q++;
        else if (*q == '"')
          break;
        else
          *out++ = *q;
      }
      names[c].len = (int)(out - names[c].name);
      p = skip_blanks(q + 1, line_end);
      if (p < line_end && *p != ',')
        return c + 1;
    } else {
      const char *comma = memchr(b, ',', (size_t)(line_end - b));
      const char *e = comma ? comma : line_end;
      p = e;
      while (e > b && is_blank(e[-1]))
        e--;
      if (memchr(b, '"', (size_t)(e - b)))
        return c + 1; /* a quote inside an unquoted name */
      memcpy(out, b, (size_t)(e - b));
      out += e - b;
      names[c].len = (int)(e - b);
    }
    if (p < line_end)
      p++; /* the comma */
  }
  return 0;
}

/* Finds the label column: a header name, else a 0-based index. */
static int csv_label_index(const char *path, const char *label_column, const csv_name *names,
                           uint64_t ncols, uint64_t *index, char *err, size_t errlen) {
  if (names)
    for (uint64_t c = 0; c < ncols; c++)
      if ((size_t)names[c].len == strlen(label_column) &&
          memcmp(names[c].name, label_column, (size_t)names[c].len) == 0) {
        *index = c;
        return 0;
      }
  const char *s = label_column;
  uint32_t value;
  if (scan_index(&s, s + strlen(s), &value) && *s == '\0') {
    if (value < ncols) {
      *index = value;
      return 0;
    }
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "data.label_column: column %u does not exist: %s has %llu columns (0 to %llu)",
                   value, path, (unsigned long long)ncols, (unsigned long long)ncols - 1);
  }
  if (!names)
    return pd_errf(err, errlen, -PD_EFORMAT,
                   "data.label_column: '%s' is not a column index (0, 1, ...), and without "
                   "data.header: true the columns of %s have no names",
                   label_column, path);
  return pd_errf(err, errlen, -PD_EFORMAT,
                 "data.label_column: %s has no column named '%s' (its header line names %llu "
                 "columns)",
                 path, label_column, (unsigned long long)ncols);
}

/* Sets ds->labels when every target is a class 0..255. */
static void labels_from_targets(pd_dataset *ds) {
  for (uint64_t r = 0; r < ds->rows; r++) {
    float t = ds->targets[r];
    if (!(t >= 0 && t <= 255 && t == (float)(int)t))
      return;
  }
  ds->labels = pd_xmalloc(ds->rows ? ds->rows : 1);
  for (uint64_t r = 0; r < ds->rows; r++)
    ds->labels[r] = (uint8_t)ds->targets[r];
}

/* Skips a UTF-8 byte order mark (spreadsheets write one). */
static const char *skip_bom(const char *p, const char *end) {
  return end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? p + 3 : p;
}

static int csv_parse(const char *key, const char *path, const char *label_column, int header,
                     uint32_t want_cols, const char *text, size_t len, pd_dataset *out,
                     uint64_t *rows_out, uint64_t *cols_out, char *err, size_t errlen) {
  const char *end = text + len, *p = skip_bom(text, end), *line_end;
  csv_name *names = NULL;
  char *name_buf = NULL;
  float *features = NULL, *targets = NULL;
  uint64_t line = 1, rows = 0;
  int rc = 0;

  if (only_blank_lines(p, end)) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %s: no data (the file is empty)", key, path);
    goto done;
  }
  /* The first line fixes the number of columns. */
  next_line(p, end, &line_end);
  uint64_t ncols = csv_columns(p, line_end), label = 0;
  if (header) {
    names = pd_xmalloc(ncols * sizeof *names);
    name_buf = pd_xmalloc((size_t)(line_end - p) + 1);
    uint64_t bad = csv_split_header(p, line_end, names, ncols, name_buf);
    if (bad) {
      rc = pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s:1: column %llu: a quoted name must end with its closing quote on the "
                   "same line (RFC 4180; a quote inside a name is written \"\")",
                   key, path, (unsigned long long)bad);
      goto done;
    }
    p = next_line(p, end, &line_end);
    line++;
  }
  if ((rc = csv_label_index(path, label_column, names, ncols, &label, err, errlen)) != 0)
    goto done;
  if (ncols < 2) {
    rc = pd_errf(err, errlen, -PD_EFORMAT,
                 "%s: %s:%llu: 1 column: need the label column and at least one feature", key, path,
                 (unsigned long long)line);
    goto done;
  }
  if (ncols - 1 > UINT32_MAX) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %s: more than %u columns", key, path, UINT32_MAX);
    goto done;
  }
  uint64_t nfeat = ncols - 1;
  if (want_cols && nfeat != want_cols) {
    rc = pd_errf(err, errlen, -PD_EFORMAT,
                 "%s: %s: %llu columns, but the training data has %u (%u features and the label)",
                 key, path, (unsigned long long)ncols, want_cols + 1, want_cols);
    goto done;
  }
  uint64_t max_rows = count_char(p, end, '\n') + 1;
  if (out) {
    features = pd_xmalloc_aligned((size_t)(max_rows * nfeat) * sizeof(float));
    targets = pd_xmalloc((size_t)max_rows * sizeof(float));
  }

  for (; p < end; line++) {
    const char *next = next_line(p, end, &line_end);
    const char *s = skip_blanks(p, line_end);
    if (s == line_end) {
      if (only_blank_lines(next, end))
        break;
      rc = pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s:%llu: empty line (only the end of the file may have blank lines)", key,
                   path, (unsigned long long)line);
      goto done;
    }
    float *row = features ? features + rows * nfeat : NULL;
    for (uint64_t c = 0; c < ncols; c++) {
      float value = 0;
      enum scan_result scanned;
      if (s < line_end && *s == '"') { /* RFC 4180: a quoted field, here a number */
        const char *close = memchr(s + 1, '"', (size_t)(line_end - s - 1));
        if (!close) {
          rc = pd_errf(err, errlen, -PD_EFORMAT,
                       "%s: %s:%llu: column %llu: a quoted field must end with its closing quote "
                       "on the same line",
                       key, path, (unsigned long long)line, (unsigned long long)c + 1);
          goto done;
        }
        const char *inner = skip_blanks(s + 1, close);
        scanned = scan_float(&inner, close, &value);
        if (scanned == SCAN_OK && skip_blanks(inner, close) != close)
          scanned = SCAN_NOT_A_NUMBER; /* "1,5", "12abc", "a""b" */
        s = close + 1;
      } else {
        scanned = scan_float(&s, line_end, &value);
      }
      if (scanned == SCAN_OK) {
        s = skip_blanks(s, line_end);
        if (s < line_end && *s != ',')
          scanned = SCAN_NOT_A_NUMBER; /* "12abc" */
      }
      if (scanned != SCAN_OK) {
        /* the field's text is not quoted back: it may be anyone's file */
        rc = pd_errf(err, errlen, -PD_EFORMAT,
                     scanned == SCAN_OUT_OF_RANGE
                         ? "%s: %s:%llu: column %llu: the number is out of the range of a float"
                         : "%s: %s:%llu: column %llu: expected a number",
                     key, path, (unsigned long long)line, (unsigned long long)c + 1);
        goto done;
      }
      bool last = c + 1 == ncols;
      if (last != (s == line_end)) { /* a comma after the last column, or too few */
        rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %s:%llu: %llu columns, expected %llu", key,
                     path, (unsigned long long)line, (unsigned long long)csv_columns(p, line_end),
                     (unsigned long long)ncols);
        goto done;
      }
      s = skip_blanks(s + !last, line_end);
      if (!row)
        continue;
      if (c == label)
        targets[rows] = value;
      else
        *row++ = value;
    }
    rows++;
    p = next;
  }
  if (rows == 0) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %s: no data rows%s", key, path,
                 header ? " after the header line" : "");
    goto done;
  }
  if (out) {
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = (uint32_t)nfeat;
    out->features = features;
    out->targets = targets;
    out->owned = 1;
    features = NULL;
    targets = NULL;
    labels_from_targets(out);
  }
  if (rows_out)
    *rows_out = rows;
  if (cols_out)
    *cols_out = nfeat;
done:
  free(targets);
  free(features);
  free(name_buf);
  free(names);
  return rc;
}

int pd__csv_read(const char *key, const char *path, const char *label_column, int header,
                 uint32_t want_cols, pd_dataset *out, uint64_t *rows, uint64_t *cols, char *err,
                 size_t errlen) {
  if (out)
    memset(out, 0, sizeof *out);
  uint8_t *text = NULL;
  size_t len = 0;
  char why[512];
  int rc = pd__read_content(path, &text, &len, why, sizeof why);
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s: %s", key, why);
  rc = csv_parse(key, path, label_column, header, want_cols, (const char *)text, len, out, rows,
                 cols, err, errlen);
  free(text);
  return rc;
}

int pd__csv_columns(const char *key, const char *path, uint64_t *features, char *err,
                    size_t errlen) {
  char *line = NULL, why[512];
  size_t len = 0;
  *features = 0;
  int rc = pd__read_first_line(path, &line, &len, why, sizeof why);
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s: %s", key, why);
  *features = csv_columns(line, line + len) - 1;
  free(line);
  return 0;
}

/* ---- libsvm */

/* Turns -1/+1 labels into classes 0/1, keeps classes 0..255, and leaves
 * anything else a regression target (labels NULL). */
static void libsvm_labels(pd_dataset *ds) {
  bool plus_minus_one = true;
  for (uint64_t r = 0; r < ds->rows && plus_minus_one; r++)
    plus_minus_one = ds->targets[r] == 1.0f || ds->targets[r] == -1.0f;
  if (plus_minus_one)
    for (uint64_t r = 0; r < ds->rows; r++)
      ds->targets[r] = ds->targets[r] > 0 ? 1.0f : 0.0f;
  labels_from_targets(ds);
}

static int libsvm_parse(const char *key, const char *path, uint32_t min_cols, uint32_t max_cols,
                        const char *text, size_t len, pd_dataset *out, uint64_t *rows_out,
                        uint64_t *cols_out, char *err, size_t errlen) {
  const char *end = text + len, *p = skip_bom(text, end), *line_end;
  uint64_t *row_ptr = NULL;
  uint32_t *col_idx = NULL;
  float *values = NULL, *targets = NULL;
  uint64_t line = 1, rows = 0, nnz = 0, blank_line = 0;
  uint32_t max_index = 0;
  int rc = 0;

  if (out) {
    uint64_t max_rows = count_char(p, end, '\n') + 1, max_nnz = count_char(p, end, ':');
    row_ptr = pd_xmalloc((size_t)(max_rows + 1) * sizeof *row_ptr);
    col_idx = pd_xmalloc((size_t)max_nnz * sizeof *col_idx);
    values = pd_xmalloc((size_t)max_nnz * sizeof *values);
    targets = pd_xmalloc((size_t)max_rows * sizeof *targets);
    row_ptr[0] = 0;
  }
  for (; p < end; line++) {
    const char *next = next_line(p, end, &line_end);
    const char *hash = memchr(p, '#', (size_t)(line_end - p));
    bool comment = hash != NULL;
    if (hash)
      line_end = hash;
    const char *s = skip_blanks(p, line_end);
    p = next;
    if (s == line_end) {
      if (!blank_line && !comment)
        blank_line = line; /* an error unless only blank lines follow */
      continue;
    }
    if (blank_line) {
      rc = pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s:%llu: empty line (only the end of the file may have blank lines)", key,
                   path, (unsigned long long)blank_line);
      goto done;
    }
    float label;
    enum scan_result scanned = scan_float(&s, line_end, &label);
    if (scanned != SCAN_OK || (s < line_end && !is_blank(*s))) {
      rc = pd_errf(err, errlen, -PD_EFORMAT,
                   "%s: %s:%llu: expected a label (a number) at the start of the line", key, path,
                   (unsigned long long)line);
      goto done;
    }
    uint32_t previous = 0;
    unsigned item = 0;
    for (s = skip_blanks(s, line_end); s < line_end; s = skip_blanks(s, line_end)) {
      uint32_t index;
      item++;
      if (!scan_index(&s, line_end, &index) || s == line_end || *s != ':') {
        rc = pd_errf(err, errlen, -PD_EFORMAT,
                     "%s: %s:%llu: item %u after the label: expected index:value (a 1-based "
                     "feature index, ':' and a number)",
                     key, path, (unsigned long long)line, item);
        goto done;
      }
      ++s;
      float value;
      scanned = scan_float(&s, line_end, &value);
      if (scanned != SCAN_OK || (s < line_end && !is_blank(*s))) {
        rc = pd_errf(err, errlen, -PD_EFORMAT,
                     scanned == SCAN_OUT_OF_RANGE
                         ? "%s: %s:%llu: feature %u: the value is out of the range of a float"
                         : "%s: %s:%llu: feature %u: expected a number after ':'",
                     key, path, (unsigned long long)line, index);
        goto done;
      }
      if (index == 0) {
        rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %s:%llu: feature index 0: indices start at 1",
                     key, path, (unsigned long long)line);
        goto done;
      }
      if (index <= previous) {
        rc = pd_errf(err, errlen, -PD_EFORMAT,
                     "%s: %s:%llu: feature %u after feature %u: indices must be ascending", key,
                     path, (unsigned long long)line, index, previous);
        goto done;
      }
      if (max_cols && index > max_cols) {
        rc = pd_errf(err, errlen, -PD_EFORMAT,
                     "%s: %s:%llu: feature %u, but the training data has only %u features", key,
                     path, (unsigned long long)line, index, max_cols);
        goto done;
      }
      previous = index;
      if (out) {
        col_idx[nnz] = index - 1;
        values[nnz] = value;
      }
      nnz++;
    }
    max_index = PD_MAX(max_index, previous);
    if (out) {
      targets[rows] = label;
      row_ptr[rows + 1] = nnz;
    }
    rows++;
  }
  if (rows == 0) {
    rc = pd_errf(err, errlen, -PD_EFORMAT, "%s: %s: no data (the file is empty)", key, path);
    goto done;
  }
  uint32_t cols = PD_MAX(max_index, min_cols);
  if (out) {
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    out->row_ptr = row_ptr;
    out->col_idx = col_idx;
    out->values = values;
    out->targets = targets;
    out->owned = 1;
    row_ptr = NULL;
    col_idx = NULL;
    values = NULL;
    targets = NULL;
    libsvm_labels(out);
  }
  if (rows_out)
    *rows_out = rows;
  if (cols_out)
    *cols_out = cols;
done:
  free(targets);
  free(values);
  free(col_idx);
  free(row_ptr);
  return rc;
}

int pd__libsvm_read(const char *key, const char *path, uint32_t min_cols, uint32_t max_cols,
                    pd_dataset *out, uint64_t *rows, uint64_t *cols, char *err, size_t errlen) {
  if (out)
    memset(out, 0, sizeof *out);
  uint8_t *text = NULL;
  size_t len = 0;
  char why[512];
  int rc = pd__read_content(path, &text, &len, why, sizeof why);
  if (rc != 0)
    return pd_errf(err, errlen, rc, "%s: %s", key, why);
  rc = libsvm_parse(key, path, min_cols, max_cols, (const char *)text, len, out, rows, cols, err,
                    errlen);
  free(text);
  return rc;
}
