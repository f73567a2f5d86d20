/* The JSON writer behind --output json; see json.h. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/error.h"

void pd_ctl_json_init(pd_ctl_json *json, FILE *out) {
  memset(json, 0, sizeof *json);
  json->out = out;
}

void pd_ctl_json_close(pd_ctl_json *json) {
  PD_ASSERT(json->depth == 0 && !json->after_key);
  fputc('\n', json->out);
}

static void newline_indent(pd_ctl_json *json) {
  fputc('\n', json->out);
  for (int i = 0; i < json->depth; i++)
    fputs("  ", json->out);
}

/* Writes what must come before a value: a comma and indentation inside a
 * container, nothing after a key. */
static void before_value(pd_ctl_json *json) {
  if (json->after_key) {
    json->after_key = 0;
    return;
  }
  if (json->depth == 0)
    return;
  PD_ASSERT(json->kind[json->depth - 1] == '[');
  if (json->count[json->depth - 1]++ > 0)
    fputc(',', json->out);
  newline_indent(json);
}

static void begin(pd_ctl_json *json, char kind) {
  before_value(json);
  PD_ASSERT(json->depth < PD_CTL_JSON_MAX_DEPTH);
  fputc(kind, json->out);
  json->kind[json->depth] = kind;
  json->count[json->depth] = 0;
  json->depth++;
}

static void end(pd_ctl_json *json, char kind) {
  PD_ASSERT(json->depth > 0 && json->kind[json->depth - 1] == kind && !json->after_key);
  int had_members = json->count[json->depth - 1] > 0;
  json->depth--;
  if (had_members)
    newline_indent(json);
  fputc(kind == '{' ? '}' : ']', json->out);
}

void pd_ctl_json_begin_object(pd_ctl_json *json) { begin(json, '{'); }
void pd_ctl_json_end_object(pd_ctl_json *json) { end(json, '{'); }
void pd_ctl_json_begin_array(pd_ctl_json *json) { begin(json, '['); }
void pd_ctl_json_end_array(pd_ctl_json *json) { end(json, '['); }

void pd_ctl_json_key(pd_ctl_json *json, const char *key) {
  PD_ASSERT(json->depth > 0 && json->kind[json->depth - 1] == '{' && !json->after_key);
  if (json->count[json->depth - 1]++ > 0)
    fputc(',', json->out);
  newline_indent(json);
  pd_ctl_json_quote(json->out, key);
  fputs(": ", json->out);
  json->after_key = 1;
}

void pd_ctl_json_string(pd_ctl_json *json, const char *value) {
  before_value(json);
  if (value)
    pd_ctl_json_quote(json->out, value);
  else
    fputs("null", json->out);
}

void pd_ctl_json_double(pd_ctl_json *json, double value) {
  before_value(json);
  if (!isfinite(value)) {
    fputs("null", json->out);
    return;
  }
  /* The shortest of %.15g and %.17g that reads back as the same double. */
  char text[32];
  snprintf(text, sizeof text, "%.15g", value);
  if (strtod(text, NULL) != value)
    snprintf(text, sizeof text, "%.17g", value);
  fputs(text, json->out);
}

void pd_ctl_json_uint(pd_ctl_json *json, uint64_t value) {
  before_value(json);
  fprintf(json->out, "%llu", (unsigned long long)value);
}

void pd_ctl_json_bool(pd_ctl_json *json, int value) {
  before_value(json);
  fputs(value ? "true" : "false", json->out);
}

void pd_ctl_json_null(pd_ctl_json *json) {
  before_value(json);
  fputs("null", json->out);
}

void pd_ctl_json_field_string(pd_ctl_json *json, const char *key, const char *value) {
  pd_ctl_json_key(json, key);
  pd_ctl_json_string(json, value);
}

void pd_ctl_json_field_double(pd_ctl_json *json, const char *key, double value) {
  pd_ctl_json_key(json, key);
  pd_ctl_json_double(json, value);
}

void pd_ctl_json_field_uint(pd_ctl_json *json, const char *key, uint64_t value) {
  pd_ctl_json_key(json, key);
  pd_ctl_json_uint(json, value);
}

void pd_ctl_json_field_bool(pd_ctl_json *json, const char *key, int value) {
  pd_ctl_json_key(json, key);
  pd_ctl_json_bool(json, value);
}

/* Length of the well-formed UTF-8 sequence starting at `s` (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static int utf8_sequence_length(const unsigned char *s) {
  unsigned char lead = s[0];
  int n;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (lead < 0x80)
    return 1;
  if (lead >= 0xC2 && lead <= 0xDF)
    n = 2;
  else if (lead >= 0xE0 && lead <= 0xEF)
    n = 3;
  else if (lead >= 0xF0 && lead <= 0xF4)
    n = 4;
  else
    return 0;
  if (lead == 0xE0)
    lo = 0xA0;
  else if (lead == 0xED)
    hi = 0x9F;
  else if (lead == 0xF0)
    lo = 0x90;
  else if (lead == 0xF4)
    hi = 0x8F;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (int i = 2; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return n;
}

void pd_ctl_json_quote(FILE *out, const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  fputc('"', out);
  while (*s) {
    unsigned char c = *s;
    switch (c) {
    case '"':
      fputs("\\\"", out);
      break;
    case '\\':
      fputs("\\\\", out);
      break;
    case '\b':
      fputs("\\b", out);
      break;
    case '\f':
      fputs("\\f", out);
      break;
    case '\n':
      fputs("\\n", out);
      break;
    case '\r':
      fputs("\\r", out);
      break;
    case '\t':
      fputs("\\t", out);
      break;
    default:
      if (c < 0x20 || c == 0x7F) {
        fprintf(out, "\\u%04x", c);
      } else {
        int n = utf8_sequence_length(s);
        if (n == 0) {
          fputs("\\ufffd", out);
        } else {
          fwrite(s, 1, (size_t)n, out);
          s += n;
          continue;
        }
      }
    }
    s++;
  }
  fputc('"', out);
}
