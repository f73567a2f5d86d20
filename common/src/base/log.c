/* stderr logging: "TIME LEVEL name: message", one write per line. */
#include "pando/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "pando/util.h"

int pd_log_level = PD_LOG_INFO;
static char log_name[64] = "pando";

void pd_log_set_name(const char *name) { pd_strlcpy(log_name, name, sizeof log_name); }

const char *const pd_log_level_names[] = {"debug", "info", "warn", "error", NULL};

int pd_log_parse_level(const char *text) {
  for (int i = 0; pd_log_level_names[i]; i++)
    if (strcmp(text, pd_log_level_names[i]) == 0)
      return i;
  return -1;
}

void pd__log(int level, const char *fmt, ...) {
  static const char tag[] = "DIWE";
  char line[1024];
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  localtime_r(&tv.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03d %c %s: ", tm.tm_hour, tm.tm_min,
                   tm.tm_sec, (int)(tv.tv_usec / 1000), tag[level & 3], log_name);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (size_t)(m < 0 ? 0 : PD_MIN(m, (int)(sizeof line - (size_t)n - 2)));
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
