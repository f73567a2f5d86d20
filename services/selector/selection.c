/* Seeded device selection, eligibility and pace steering; see selection.h. */
#include "selection.h"

#include <stdlib.h>
#include <string.h>

#include "pando/util.h"

#define SELECTION_STREAM 0x73656c6563740000ull /* "select" */

uint64_t pd_selection_hash_id(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return pd_mix64(h);
}

uint64_t pd_selection_score(uint64_t seed, uint64_t round, const char *device_id) {
  return pd_mix64(pd_mix64(pd_mix64(seed ^ SELECTION_STREAM) + round) ^
                  pd_selection_hash_id(device_id));
}

typedef struct scored {
  uint64_t score;
  const char *id;
  size_t index;
} scored;

static int by_score(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->score != y->score)
    return x->score < y->score ? -1 : 1;
  return strcmp(x->id, y->id);
}

size_t pd_selection_choose(const char *const *ids, size_t n, uint64_t seed, uint64_t round,
                           size_t count, size_t *out) {
  scored *s = pd_xmalloc((n ? n : 1) * sizeof *s);
  for (size_t i = 0; i < n; i++)
    s[i] = (scored){pd_selection_score(seed, round, ids[i]), ids[i], i};
  qsort(s, n, sizeof *s, by_score);
  size_t k = PD_MIN(count, n);
  for (size_t i = 0; i < k; i++)
    out[i] = s[i].index;
  free(s);
  return k;
}

/* Whether the comma-separated `list` holds `name` (of `len` bytes). */
static int list_has(const char *list, const char *name, size_t len) {
  for (const char *at = list; *at;) {
    const char *comma = strchr(at, ',');
    size_t n = comma ? (size_t)(comma - at) : strlen(at);
    if (n == len && strncmp(at, name, len) == 0)
      return 1;
    if (!comma)
      break;
    at = comma + 1;
  }
  return 0;
}

int pd_selection_eligible(const char *jobs, const char *attributes, const char *job_name,
                          const char *require) {
  if (job_name[0] && jobs[0] && !list_has(jobs, job_name, strlen(job_name)))
    return 0;
  for (const char *at = require; *at;) {
    const char *comma = strchr(at, ',');
    size_t n = comma ? (size_t)(comma - at) : strlen(at);
    if (n > 0 && !list_has(attributes, at, n))
      return 0;
    if (!comma)
      break;
    at = comma + 1;
  }
  return 1;
}

double pd_pace_window(const pd_pace_options *opt, size_t online, size_t demand) {
  if (demand == 0)
    return opt->idle_window_sec;
  if (demand >= online)
    return opt->min_window_sec;
  double w = (double)online / opt->checkin_rate;
  return w < opt->min_window_sec ? opt->min_window_sec
                                 : (w > opt->max_window_sec ? opt->max_window_sec : w);
}

double pd_pace_jitter(double window, uint64_t *state) {
  return window * (0.75 + 0.5 * pd_random_unit(state));
}
