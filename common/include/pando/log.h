/* Logging to stderr, one line per event. The level is checked before the
 * message is formatted, so disabled debug lines cost one comparison. */
#ifndef PANDO_LOG_H
#define PANDO_LOG_H

enum pd_log_level { PD_LOG_DEBUG = 0, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR };

extern int pd_log_level;

/* Sets the process name shown in each line (e.g. "ps", "worker-1"). The
 * string is copied. */
void pd_log_set_name(const char *name);
/* The level names, NULL-terminated, in level order. */
extern const char *const pd_log_level_names[];
/* Parses "debug", "info", "warn" or "error"; returns the level or -1. */
int pd_log_parse_level(const char *text);
void pd__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PD_LOG(level, ...)                                                                         \
  do {                                                                                             \
    if ((level) >= pd_log_level)                                                                   \
      pd__log((level), __VA_ARGS__);                                                               \
  } while (0)
#define PD_DEBUG(...) PD_LOG(PD_LOG_DEBUG, __VA_ARGS__)
#define PD_INFO(...) PD_LOG(PD_LOG_INFO, __VA_ARGS__)
#define PD_WARN(...) PD_LOG(PD_LOG_WARN, __VA_ARGS__)
#define PD_ERROR(...) PD_LOG(PD_LOG_ERROR, __VA_ARGS__)

#endif
