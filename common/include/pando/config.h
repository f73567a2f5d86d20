/* Daemon configuration as a table: one row per key with its type, bounds,
 * default and help. Values come from the YAML file (--config FILE), then the
 * environment (PANDO_<KEY>), then flags (--key value / --key=value); the same
 * key names everywhere. Defaults live in the table only. */
#ifndef PANDO_CONFIG_H
#define PANDO_CONFIG_H

#include <stddef.h>

/* PD_CFG_SECRET is a string (e.g. the path of a token file) that
 * --check-config shows only as "(set)" or "". */
enum pd_config_type { PD_CFG_STRING = 1, PD_CFG_INT, PD_CFG_DOUBLE, PD_CFG_BOOL, PD_CFG_SECRET };

typedef struct pd_config_option {
  const char
      *key; /* "heartbeat_ms": flag --heartbeat-ms or --heartbeat_ms, env PANDO_HEARTBEAT_MS */
  enum pd_config_type type;
  size_t offset;              /* offsetof() the field in the daemon's config struct */
  size_t size;                /* for PD_CFG_STRING/SECRET: size of the char[] field */
  double min, max;            /* bounds for INT and DOUBLE */
  const char *default_value;  /* text, parsed like any other source */
  const char *help;           /* one line for --help */
  const char *const *choices; /* PD_CFG_STRING: NULL-terminated allowed values, or NULL */
} pd_config_option;

/* Fills `config` from defaults, file, environment and argv (in that order of
 * precedence, later wins). Handles --help (prints usage built from the table)
 * and --check-config (validates, prints the effective configuration, and asks
 * the caller to exit). Positional arguments (not starting with --) are left
 * in argv order in `rest`/`nrest` (rest has room for argc entries).
 * Returns 0 to go on, 1 when the caller should exit 0 (help/check-config
 * done), or a negative error with a message naming the key, value and source
 * (file:line, environment variable or flag) in `err`. */
int pd_config_load(const pd_config_option *table, size_t n, void *config, const char *program,
                   int argc, char **argv, char **rest, int *nrest, char *err, size_t errlen);

#endif
