/* Plain-text tables for pandoctl: a header row and cells padded to the
 * widest entry of each column, separated by two spaces. */
#ifndef PANDO_CTL_TABLE_H
#define PANDO_CTL_TABLE_H

#include <stdio.h>

typedef struct pd_ctl_table pd_ctl_table;

/* Makes a table with `ncols` columns named by `headers` (copied). */
pd_ctl_table *pd_ctl_table_new(const char *const *headers, int ncols);
void pd_ctl_table_free(pd_ctl_table *table);

/* Appends one formatted cell; a row is complete after `ncols` cells and the
 * next cell starts a new row. */
void pd_ctl_table_cell(pd_ctl_table *table, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Number of complete or started rows, the header not counted. */
int pd_ctl_table_rows(const pd_ctl_table *table);

/* Prints the header and the rows, each line starting with `indent`. Widths
 * count UTF-8 characters, not bytes; the last column is not padded. */
void pd_ctl_table_print(const pd_ctl_table *table, FILE *out, const char *indent);

#endif
