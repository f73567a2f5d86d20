/* The selector's decisions, free of RPC: which devices a round gets (seeded,
 * uniform over the eligible online devices), whether a device is eligible,
 * and pace steering, the reconnect window each check-in is answered with
 * (Bonawitz et al., "Towards Federated Learning at Scale", SysML 2019, 2.3). */
#ifndef PANDO_SELECTOR_SELECTION_H
#define PANDO_SELECTOR_SELECTION_H

#include <stddef.h>
#include <stdint.h>

/* A well-mixed 64-bit hash of a device id (FNV-1a, then splitmix64's
 * finaliser); also the population's index hash. */
uint64_t pd_selection_hash_id(const char *device_id);

/* A device's score for a round: a hash of (seed, round, device id). A round
 * takes the eligible devices with the lowest scores, so the same seed, round
 * and population give the same devices, and over rounds every device has the
 * same chance, count / eligible, to be chosen in each (the scores of
 * different rounds are independent). */
uint64_t pd_selection_score(uint64_t seed, uint64_t round, const char *device_id);

/* Chooses min(count, n) of the `n` candidates `ids` (borrowed) for round
 * `round`: writes the indices of those with the lowest scores to `out`
 * (room for min(count, n)), lowest first, and returns their number. Ties
 * (equal scores) go to the smaller id. */
size_t pd_selection_choose(const char *const *ids, size_t n, uint64_t seed, uint64_t round,
                           size_t count, size_t *out);

/* Whether a device serving `jobs` (comma-separated job names, "" for any)
 * with `attributes` (comma-separated) may serve `job_name` ("" matches any
 * device) under `require` (comma-separated attributes it must all have). */
int pd_selection_eligible(const char *jobs, const char *attributes, const char *job_name,
                          const char *require);

/* Pace steering's settings (pando-selector flags). */
typedef struct pd_pace_options {
  double checkin_rate;    /* check-ins per second the selector aims at for a large population */
  double min_window_sec;  /* shortest reconnect window */
  double max_window_sec;  /* longest */
  double idle_window_sec; /* the window while no job needs devices */
} pd_pace_options;

/* The reconnect window, in seconds, for a selector with `online` devices
 * while the running jobs' rounds need `demand` devices each:
 *  - demand 0 (nothing to do): idle_window_sec;
 *  - demand >= online (a small population: every device counts, so they
 *    should be at hand when a round selects): min_window_sec;
 *  - else online / checkin_rate, within [min_window_sec, max_window_sec]:
 *    the whole population checks in about checkin_rate times a second,
 *    however large it is (no stampede), and a selected device learns of its
 *    task within one window.
 * Check-ins per second are therefore at most
 * max(checkin_rate, online / max_window_sec) while devices need anything, and
 * online / idle_window_sec otherwise. */
double pd_pace_window(const pd_pace_options *opt, size_t online, size_t demand);

/* The window a device is told: `window` spread uniformly over
 * [0.75, 1.25] x window by the generator *state, so that devices told at the
 * same moment do not come back at the same moment. */
double pd_pace_jitter(double window, uint64_t *state);

#endif
