/* Daemon configuration: fills a daemon's config struct from its option table
 * (defaults), a flat YAML file, PANDO_* variables and flags, and prints
 * --help and --check-config from the same table. */
#include "pando/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "pando/error.h"
#include "pando/util.h"

enum origin { FROM_DEFAULT, FROM_FILE, FROM_ENV, FROM_FLAG };

/* Where an option's value came from, for messages and --check-config. */
struct source {
  enum origin origin;
  const char *name; /* FROM_FILE: the path; FROM_FLAG: the argument (borrowed) */
  int name_len;     /* FROM_FLAG: length of the flag in `name` ("--x=1" -> 3) */
  int line;         /* FROM_FILE: 1-based line */
};

/* ---- names: "heartbeat_ms" is also --heartbeat-ms and PANDO_HEARTBEAT_MS */

/* Whether `name` (`len` bytes) is `key`, taking '-' and '_' as equal. */
static int same_name(const char *name, size_t len, const char *key) {
  size_t i = 0;
  for (; i < len && key[i]; i++) {
    char a = name[i] == '-' ? '_' : name[i], b = key[i] == '-' ? '_' : key[i];
    if (a != b)
      return 0;
  }
  return i == len && key[i] == '\0';
}

static int find_option(const pd_config_option *table, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (same_name(name, len, table[i].key))
      return (int)i;
  return -1;
}

static void env_name(const char *key, char *buf, size_t size) {
  size_t j = (size_t)snprintf(buf, size, "PANDO_");
  for (; *key && j + 1 < size; key++)
    buf[j++] = *key == '-' ? '_' : (char)toupper((unsigned char)*key);
  buf[j] = '\0';
}

static void flag_name(const char *key, char *buf, size_t size) {
  size_t j = (size_t)snprintf(buf, size, "--");
  for (; *key && j + 1 < size; key++)
    buf[j++] = *key == '_' ? '-' : *key;
  buf[j] = '\0';
}

static void source_text(const pd_config_option *opt, const struct source *src, char *buf,
                        size_t size) {
  char env[128];
  switch (src->origin) {
  case FROM_DEFAULT:
    snprintf(buf, size, "default");
    return;
  case FROM_FILE:
    snprintf(buf, size, "file %s:%d", src->name, src->line);
    return;
  case FROM_ENV:
    env_name(opt->key, env, sizeof env);
    snprintf(buf, size, "env %s", env);
    return;
  case FROM_FLAG:
    snprintf(buf, size, "flag %.*s", src->name_len, src->name);
    return;
  }
}

/* ---- values */

static const char *type_name(enum pd_config_type type) {
  switch (type) {
  case PD_CFG_STRING:
  case PD_CFG_SECRET:
    return "STRING";
  case PD_CFG_INT:
    return "INT";
  case PD_CFG_DOUBLE:
    return "NUMBER";
  case PD_CFG_BOOL:
    return "BOOL";
  }
  return "?";
}

static int has_bounds(const pd_config_option *opt) { return opt->min != 0 || opt->max != 0; }

static int parse_bool(const char *text, int *out) {
  static const char *const words[][2] = {{"true", "false"}, {"yes", "no"}, {"1", "0"}};
  for (size_t i = 0; i < PD_ARRAY_SIZE(words); i++)
    for (int b = 0; b < 2; b++)
      if (strcasecmp(text, words[i][b]) == 0) {
        *out = !b;
        return 0;
      }
  return -1;
}

/* Stores `text` into the option's field of `config`. Returns 0, or -1 with
 * what is wrong in `what` (e.g. "must be between 10 and 60000, got 5"). */
static int set_option(const pd_config_option *opt, void *config, const char *text, char *what,
                      size_t size) {
  char *field = (char *)config + opt->offset;
  char *end;
  switch (opt->type) {
  case PD_CFG_STRING:
  case PD_CFG_SECRET:
    if (strlen(text) >= opt->size)
      return pd_errf(what, size, -1, "longer than %zu characters", opt->size - 1);
    if (opt->choices) {
      const char *const *c = opt->choices;
      while (*c && strcmp(*c, text) != 0)
        c++;
      if (!*c) {
        char list[256] = "";
        for (c = opt->choices; *c; c++)
          snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                   c == opt->choices ? "" : ", ", *c);
        return pd_errf(what, size, -1, "unknown value '%.80s'; expected one of: %s", text, list);
      }
    }
    pd_strlcpy(field, text, opt->size);
    return 0;
  case PD_CFG_INT: {
    int wide = opt->size == sizeof(int64_t);
    double lo = wide ? (double)INT64_MIN : INT_MIN, hi = wide ? (double)INT64_MAX : INT_MAX;
    if (has_bounds(opt))
      lo = opt->min, hi = opt->max;
    if (!text[0] || isspace((unsigned char)text[0]))
      return pd_errf(what, size, -1, "expected an integer, got '%.80s'", text);
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (*end)
      return pd_errf(what, size, -1, "expected an integer, got '%.80s'", text);
    if (errno == ERANGE || (double)value < lo || (double)value > hi)
      return pd_errf(what, size, -1, "must be between %.15g and %.15g, got %.80s", lo, hi, text);
    if (wide) {
      int64_t v = value;
      memcpy(field, &v, sizeof v);
    } else {
      int v = (int)value;
      memcpy(field, &v, sizeof v);
    }
    return 0;
  }
  case PD_CFG_DOUBLE: {
    if (!text[0] || isspace((unsigned char)text[0]))
      return pd_errf(what, size, -1, "expected a number, got '%.80s'", text);
    double value = strtod(text, &end);
    if (*end)
      return pd_errf(what, size, -1, "expected a number, got '%.80s'", text);
    if (!isfinite(value))
      return pd_errf(what, size, -1, "must be a finite number, got %.80s", text);
    if (has_bounds(opt) && (value < opt->min || value > opt->max))
      return pd_errf(what, size, -1, "must be between %.15g and %.15g, got %.80s", opt->min,
                     opt->max, text);
    memcpy(field, &value, sizeof value);
    return 0;
  }
  case PD_CFG_BOOL: {
    int value;
    if (parse_bool(text, &value) != 0)
      return pd_errf(what, size, -1, "expected true/false/yes/no/1/0, got '%.80s'", text);
    if (opt->size == sizeof(bool)) {
      bool b = value;
      memcpy(field, &b, sizeof b);
    } else {
      memcpy(field, &value, sizeof value);
    }
    return 0;
  }
  }
  return pd_errf(what, size, -1, "bad option type");
}

static void format_value(const pd_config_option *opt, const void *config, char *buf, size_t size) {
  const char *field = (const char *)config + opt->offset;
  switch (opt->type) {
  case PD_CFG_STRING:
    snprintf(buf, size, "%s", field[0] ? field : "\"\"");
    return;
  case PD_CFG_SECRET:
    snprintf(buf, size, "%s", field[0] ? "(set)" : "\"\"");
    return;
  case PD_CFG_INT:
    if (opt->size == sizeof(int64_t)) {
      int64_t v;
      memcpy(&v, field, sizeof v);
      snprintf(buf, size, "%" PRId64, v);
    } else {
      int v;
      memcpy(&v, field, sizeof v);
      snprintf(buf, size, "%d", v);
    }
    return;
  case PD_CFG_DOUBLE: {
    double v;
    memcpy(&v, field, sizeof v);
    snprintf(buf, size, "%.15g", v);
    return;
  }
  case PD_CFG_BOOL: {
    int v;
    if (opt->size == sizeof(bool)) {
      bool b;
      memcpy(&b, field, sizeof b);
      v = b;
    } else {
      memcpy(&v, field, sizeof v);
    }
    snprintf(buf, size, "%s", v ? "true" : "false");
    return;
  }
  }
}

/* The table is code: a mistake in it is a programmer error. */
static void check_table(const pd_config_option *table, size_t n) {
  static const char *const reserved[] = {"help", "config", "check_config", "h"};
  for (size_t i = 0; i < n; i++) {
    const pd_config_option *opt = &table[i];
    PD_ASSERT(opt->key && opt->key[0] && strlen(opt->key) < 64);
    for (size_t r = 0; r < PD_ARRAY_SIZE(reserved); r++)
      PD_ASSERT(!same_name(opt->key, strlen(opt->key), reserved[r]));
    PD_ASSERT(find_option(table, n, opt->key, strlen(opt->key)) == (int)i);
    switch (opt->type) {
    case PD_CFG_STRING:
    case PD_CFG_SECRET:
      PD_ASSERT(opt->size > 0);
      break;
    case PD_CFG_INT:
      PD_ASSERT(opt->size == 0 || opt->size == sizeof(int) || opt->size == sizeof(int64_t));
      break;
    case PD_CFG_DOUBLE:
      PD_ASSERT(opt->size == 0 || opt->size == sizeof(double));
      break;
    case PD_CFG_BOOL:
      PD_ASSERT(opt->size == 0 || opt->size == sizeof(int) || opt->size == sizeof(bool));
      break;
    default:
      PD_ASSERT(!"config table: bad type");
    }
    PD_ASSERT(opt->type == PD_CFG_STRING || opt->type == PD_CFG_SECRET || opt->default_value);
  }
}

/* ---- sources, lowest precedence first */

static void load_defaults(const pd_config_option *table, size_t n, void *config,
                          struct source *sources) {
  char what[256];
  for (size_t i = 0; i < n; i++) {
    const char *text = table[i].default_value ? table[i].default_value : "";
    int rc = set_option(&table[i], config, text, what, sizeof what);
    if (rc != 0)
      fprintf(stderr, "config table: %s: bad default '%s': %s\n", table[i].key, text, what);
    PD_ASSERT(rc == 0);
    sources[i] = (struct source){.origin = FROM_DEFAULT};
  }
}

/* Reads the flat key: value YAML file at `path`, which came from `origin`
 * ("flag --config" or "env PANDO_CONFIG"). */
static int load_file(const pd_config_option *table, size_t n, void *config, struct source *sources,
                     const char *path, const char *origin, char *err, size_t errlen) {
  FILE *file = NULL;
  yaml_parser_t parser;
  yaml_document_t doc;
  int have_parser = 0, have_doc = 0, rc = 0;
  int *seen = NULL; /* line of each key already set by this file */
  char what[256];

  if (!(file = fopen(path, "r"))) {
    int e = errno;
    return pd_errf(err, errlen, -e, "config file %s: %s (%s)", path, strerror(e), origin);
  }
  PD_ASSERT(yaml_parser_initialize(&parser));
  have_parser = 1;
  yaml_parser_set_input_file(&parser, file);
  if (!yaml_parser_load(&parser, &doc)) {
    int line = parser.error == YAML_READER_ERROR ? 0 : (int)parser.problem_mark.line + 1;
    rc = pd_errf(err, errlen, -EINVAL, "config file %s:%d: YAML syntax error: %s", path, line,
                 parser.problem ? parser.problem : "out of memory");
    goto done;
  }
  have_doc = 1;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
                root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
    goto done; /* an empty file sets nothing */
  if (root->type != YAML_MAPPING_NODE) {
    rc = pd_errf(err, errlen, -EINVAL, "config file %s:%d: expected a mapping of key: value", path,
                 (int)root->start_mark.line + 1);
    goto done;
  }
  seen = pd_xcalloc(n, sizeof *seen);
  for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top;
       pair++) {
    yaml_node_t *key = yaml_document_get_node(&doc, pair->key);
    yaml_node_t *value = yaml_document_get_node(&doc, pair->value);
    int line = (int)key->start_mark.line + 1;
    if (key->type != YAML_SCALAR_NODE) {
      rc = pd_errf(err, errlen, -EINVAL, "config file %s:%d: keys must be strings", path, line);
      goto done;
    }
    const char *name = (const char *)key->data.scalar.value;
    int i = find_option(table, n, name, strlen(name));
    if (i < 0) {
      rc = pd_errf(err, errlen, -EINVAL, "%.80s: unknown key (file %s:%d); see --help for the keys",
                   name, path, line);
      goto done;
    }
    if (seen[i]) {
      rc = pd_errf(err, errlen, -EINVAL, "%s: duplicated key (file %s:%d); first set at line %d",
                   table[i].key, path, line, seen[i]);
      goto done;
    }
    seen[i] = line;
    if (value->type != YAML_SCALAR_NODE) {
      rc = pd_errf(err, errlen, -EINVAL, "%s: expected a single value, got a %s (file %s:%d)",
                   table[i].key, value->type == YAML_MAPPING_NODE ? "mapping" : "list", path, line);
      goto done;
    }
    if (set_option(&table[i], config, (const char *)value->data.scalar.value, what, sizeof what) !=
        0) {
      rc = pd_errf(err, errlen, -EINVAL, "%s: %s (file %s:%d)", table[i].key, what, path,
                   (int)value->start_mark.line + 1);
      goto done;
    }
    sources[i] = (struct source){.origin = FROM_FILE, .name = path, .line = line};
  }
done:
  free(seen);
  if (have_doc)
    yaml_document_delete(&doc);
  if (have_parser)
    yaml_parser_delete(&parser);
  fclose(file);
  return rc;
}

/* PANDO_<KEY> for each key; an empty variable counts as unset. */
static int load_env(const pd_config_option *table, size_t n, void *config, struct source *sources,
                    char *err, size_t errlen) {
  char name[128], what[256];
  for (size_t i = 0; i < n; i++) {
    env_name(table[i].key, name, sizeof name);
    const char *text = getenv(name);
    if (!text || !text[0])
      continue;
    if (set_option(&table[i], config, text, what, sizeof what) != 0)
      return pd_errf(err, errlen, -EINVAL, "%s: %s (env %s)", table[i].key, what, name);
    sources[i] = (struct source){.origin = FROM_ENV};
  }
  return 0;
}

/* ---- flags */

enum token_kind { TOK_SKIP, TOK_POSITIONAL, TOK_OPTION, TOK_HELP, TOK_CHECK, TOK_CONFIG };

struct token {
  enum token_kind kind;
  char *arg;         /* the argument as given */
  int name_len;      /* length of the flag in `arg` ("--x=1" -> 3) */
  size_t option;     /* TOK_OPTION: index in the table */
  const char *value; /* TOK_OPTION, TOK_CONFIG */
};

/* Reads the token at argv[*i] (and its value), advancing *i. After "--"
 * (*positional_only set) every argument is positional. Returns 0 or an error
 * about an unknown flag or a missing value. */
static int next_token(const pd_config_option *table, size_t n, int argc, char **argv, int *i,
                      int *positional_only, struct token *tok, char *err, size_t errlen) {
  char *arg = argv[(*i)++];
  *tok = (struct token){.kind = TOK_POSITIONAL, .arg = arg};
  if (*positional_only || arg[0] != '-' || arg[1] == '\0' || isdigit((unsigned char)arg[1]) ||
      arg[1] == '.')
    return 0;
  if (strcmp(arg, "--") == 0) {
    *positional_only = 1;
    tok->kind = TOK_SKIP;
    return 0;
  }
  if (strcmp(arg, "-h") == 0) {
    tok->kind = TOK_HELP;
    return 0;
  }
  if (arg[1] != '-')
    return pd_errf(err, errlen, -EINVAL, "unknown flag '%s' (flags start with --); see --help",
                   arg);
  const char *name = arg + 2, *eq = strchr(name, '=');
  size_t len = eq ? (size_t)(eq - name) : strlen(name);
  const char *next = *i < argc ? argv[*i] : NULL;
  int option = -1, b;
  tok->name_len = (int)len + 2;
  if (same_name(name, len, "help") || same_name(name, len, "check_config")) {
    tok->kind = same_name(name, len, "help") ? TOK_HELP : TOK_CHECK;
    return 0;
  }
  if (same_name(name, len, "config")) {
    tok->kind = TOK_CONFIG;
  } else if ((option = find_option(table, n, name, len)) >= 0) {
    tok->kind = TOK_OPTION;
    tok->option = (size_t)option;
  } else {
    return pd_errf(err, errlen, -EINVAL, "unknown flag '%.*s'; see --help", tok->name_len, arg);
  }
  if (eq) {
    tok->value = eq + 1;
  } else if (option >= 0 && table[option].type == PD_CFG_BOOL) {
    /* A bare --flag means true; the next argument is its value only if it is a bool word. */
    tok->value = next && parse_bool(next, &b) == 0 ? argv[(*i)++] : "true";
  } else if (next) {
    tok->value = argv[(*i)++];
  } else {
    return pd_errf(err, errlen, -EINVAL, "%s: missing value (flag %.*s)",
                   option >= 0 ? table[option].key : "config", tok->name_len, arg);
  }
  return 0;
}

/* ---- output */

static void print_usage(const pd_config_option *table, size_t n, const char *program) {
  char flag[96], env[128];
  printf("usage: %s [--config FILE] [--check-config] [--KEY VALUE ...] [ARGS]\n\n", program);
  printf("Every setting has a default and is then read from the YAML file given by --config\n"
         "(key: value lines), from the environment (PANDO_KEY), and from flags (--key value or\n"
         "--key=value; '-' and '_' are the same), later sources winning. A bare BOOL flag means\n"
         "true; BOOL values are true/false, yes/no or 1/0.\n\n");
  printf("  %-30s %s\n", "--config FILE", "YAML file of settings (env PANDO_CONFIG)");
  printf("  %-30s %s\n", "--check-config", "validate, print the effective configuration, exit");
  printf("  %-30s %s\n\n", "-h, --help", "print this help and exit");
  for (size_t i = 0; i < n; i++) {
    const pd_config_option *opt = &table[i];
    const char *def = opt->default_value ? opt->default_value : "";
    flag_name(opt->key, flag, sizeof flag);
    env_name(opt->key, env, sizeof env);
    size_t used = strlen(flag);
    snprintf(flag + used, sizeof flag - used, " %s", type_name(opt->type));
    printf("  %-30s %s\n", flag, opt->help ? opt->help : "");
    printf("      key %s, env %s, default %s", opt->key, env, def[0] ? def : "\"\"");
    if ((opt->type == PD_CFG_INT || opt->type == PD_CFG_DOUBLE) && has_bounds(opt))
      printf(", range %.15g..%.15g", opt->min, opt->max);
    printf("\n");
  }
  fflush(stdout);
}

static void print_effective(const pd_config_option *table, size_t n, const void *config,
                            const struct source *sources) {
  char value[1024], source[1200];
  for (size_t i = 0; i < n; i++) {
    format_value(&table[i], config, value, sizeof value);
    source_text(&table[i], &sources[i], source, sizeof source);
    printf("%s = %s  (%s)\n", table[i].key, value, source);
  }
  fflush(stdout);
}

int pd_config_load(const pd_config_option *table, size_t n, void *config, const char *program,
                   int argc, char **argv, char **rest, int *nrest, char *err, size_t errlen) {
  struct source *sources = NULL;
  const char *config_path = NULL;
  char config_origin[160] = "", what[256];
  int want_help = 0, want_check = 0, positional_only = 0, rc = 0;
  struct token tok;

  check_table(table, n);
  *nrest = 0;
  /* First pass: --help, --check-config, --config, positional arguments, and
   * unknown flags (reported unless --help was asked for). */
  for (int i = 1; i < argc;) {
    int token_rc = next_token(table, n, argc, argv, &i, &positional_only, &tok, rc ? NULL : err,
                              rc ? 0 : errlen);
    if (token_rc != 0) {
      rc = rc ? rc : token_rc;
      continue;
    }
    if (tok.kind == TOK_HELP)
      want_help = 1;
    else if (tok.kind == TOK_CHECK)
      want_check = 1;
    else if (tok.kind == TOK_POSITIONAL)
      rest[(*nrest)++] = tok.arg;
    else if (tok.kind == TOK_CONFIG) {
      config_path = tok.value;
      snprintf(config_origin, sizeof config_origin, "flag %.*s", tok.name_len, tok.arg);
    }
  }
  if (want_help) {
    print_usage(table, n, program);
    return 1;
  }
  if (rc != 0)
    return rc;

  sources = pd_xcalloc(n ? n : 1, sizeof *sources);
  load_defaults(table, n, config, sources);
  if (!config_path && getenv("PANDO_CONFIG") && getenv("PANDO_CONFIG")[0]) {
    config_path = getenv("PANDO_CONFIG");
    snprintf(config_origin, sizeof config_origin, "env PANDO_CONFIG");
  }
  if (config_path &&
      (rc = load_file(table, n, config, sources, config_path, config_origin, err, errlen)) != 0)
    goto done;
  if ((rc = load_env(table, n, config, sources, err, errlen)) != 0)
    goto done;
  /* Second pass: flag values, which win over everything else. */
  positional_only = 0;
  for (int i = 1; i < argc;) {
    int token_rc = next_token(table, n, argc, argv, &i, &positional_only, &tok, NULL, 0);
    PD_ASSERT(token_rc == 0); /* the first pass accepted every flag */
    if (tok.kind != TOK_OPTION)
      continue;
    const pd_config_option *opt = &table[tok.option];
    if (set_option(opt, config, tok.value, what, sizeof what) != 0) {
      rc = pd_errf(err, errlen, -EINVAL, "%s: %s (flag %.*s)", opt->key, what, tok.name_len,
                   tok.arg);
      goto done;
    }
    sources[tok.option] =
        (struct source){.origin = FROM_FLAG, .name = tok.arg, .name_len = tok.name_len};
  }
  if (want_check) {
    print_effective(table, n, config, sources);
    rc = 1;
  }
done:
  free(sources);
  return rc;
}
