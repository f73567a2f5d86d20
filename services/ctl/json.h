/* A small streaming JSON writer for pandoctl's --output json: objects,
 * arrays, strings (escaped, UTF-8 checked) and numbers, pretty-printed. */
#ifndef PANDO_CTL_JSON_H
#define PANDO_CTL_JSON_H

#include <stdint.h>
#include <stdio.h>

#define PD_CTL_JSON_MAX_DEPTH 16

/* Writer state in caller storage. Calls must form one well-formed value:
 * inside an object every value is preceded by pd_ctl_json_key(); a misuse is
 * a programmer error and aborts. */
typedef struct pd_ctl_json {
  FILE *out;                        /* where the text goes (borrowed) */
  int depth;                        /* number of open objects/arrays */
  char kind[PD_CTL_JSON_MAX_DEPTH]; /* '{' or '[' for each open container */
  int count[PD_CTL_JSON_MAX_DEPTH]; /* values written so far in each container */
  int after_key;                    /* a key was written, its value is due */
} pd_ctl_json;

/* Starts a document written to `out` (borrowed; must outlive the writer). */
void pd_ctl_json_init(pd_ctl_json *json, FILE *out);
/* Ends the document with a newline. All containers must be closed. */
void pd_ctl_json_close(pd_ctl_json *json);

void pd_ctl_json_begin_object(pd_ctl_json *json);
void pd_ctl_json_end_object(pd_ctl_json *json);
void pd_ctl_json_begin_array(pd_ctl_json *json);
void pd_ctl_json_end_array(pd_ctl_json *json);
/* Writes the key of the next member of the current object. */
void pd_ctl_json_key(pd_ctl_json *json, const char *key);

/* Values. A NULL string is written as null; a NaN or infinite number too. */
void pd_ctl_json_string(pd_ctl_json *json, const char *value);
void pd_ctl_json_double(pd_ctl_json *json, double value);
void pd_ctl_json_uint(pd_ctl_json *json, uint64_t value);
void pd_ctl_json_bool(pd_ctl_json *json, int value);
void pd_ctl_json_null(pd_ctl_json *json);

/* A key and its value in one call. */
void pd_ctl_json_field_string(pd_ctl_json *json, const char *key, const char *value);
void pd_ctl_json_field_double(pd_ctl_json *json, const char *key, double value);
void pd_ctl_json_field_uint(pd_ctl_json *json, const char *key, uint64_t value);
void pd_ctl_json_field_bool(pd_ctl_json *json, const char *key, int value);

/* Writes `text` as a quoted JSON string: `"` and `\` escaped, control
 * characters as \n, \t, ... or \u00XX, valid UTF-8 kept as is and each byte
 * of invalid UTF-8 replaced by \ufffd. */
void pd_ctl_json_quote(FILE *out, const char *text);

#endif
