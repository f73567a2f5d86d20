/* Plain-text tables for pandoctl; see table.h. */
#include "table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

struct pd_ctl_table {
  int ncols;
  char **cells; /* row-major, the header row first; ncols * (rows + 1) slots */
  int ncells;   /* cells filled, header included */
  int cap;
};

static void push(pd_ctl_table *table, char *cell) {
  if (table->ncells == table->cap) {
    table->cap = table->cap ? 2 * table->cap : 4 * table->ncols;
    table->cells = pd_xrealloc(table->cells, (size_t)table->cap * sizeof *table->cells);
  }
  table->cells[table->ncells++] = cell;
}

pd_ctl_table *pd_ctl_table_new(const char *const *headers, int ncols) {
  PD_ASSERT(ncols > 0);
  pd_ctl_table *table = pd_xcalloc(1, sizeof *table);
  table->ncols = ncols;
  for (int i = 0; i < ncols; i++)
    push(table, pd_xstrdup(headers[i]));
  return table;
}

void pd_ctl_table_free(pd_ctl_table *table) {
  if (!table)
    return;
  for (int i = 0; i < table->ncells; i++)
    free(table->cells[i]);
  free(table->cells);
  free(table);
}

void pd_ctl_table_cell(pd_ctl_table *table, const char *fmt, ...) {
  char *cell = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&cell, fmt, ap);
  va_end(ap);
  PD_ASSERT(n >= 0); /* fails only when out of memory */
  push(table, cell);
}

int pd_ctl_table_rows(const pd_ctl_table *table) {
  return (table->ncells + table->ncols - 1) / table->ncols - 1;
}

/* Characters in a UTF-8 string: bytes that do not continue a sequence. */
static int display_width(const char *text) {
  int width = 0;
  for (const unsigned char *s = (const unsigned char *)text; *s; s++)
    width += (*s & 0xC0) != 0x80;
  return width;
}

void pd_ctl_table_print(const pd_ctl_table *table, FILE *out, const char *indent) {
  int ncols = table->ncols;
  int *widths = pd_xcalloc((size_t)ncols, sizeof *widths);
  for (int i = 0; i < table->ncells; i++)
    widths[i % ncols] = PD_MAX(widths[i % ncols], display_width(table->cells[i]));
  for (int row = 0; row * ncols < table->ncells; row++) {
    fputs(indent, out);
    for (int col = 0; col < ncols; col++) {
      int i = row * ncols + col;
      const char *cell = i < table->ncells ? table->cells[i] : "";
      int last = col == ncols - 1 || i + 1 >= table->ncells;
      fputs(cell, out);
      if (last)
        break;
      fprintf(out, "%*s", widths[col] - display_width(cell) + 2, "");
    }
    fputc('\n', out);
  }
  free(widths);
}
