/* How pandoctl shows Coordinator answers: the progress line and ETA of a
 * running job, epoch lines, text tables, and the JSON form of each message
 * (field names as in proto/pando.proto, enums by name). */
#ifndef PANDO_CTL_OUTPUT_H
#define PANDO_CTL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "pando.pb-c.h"

/* Names of enum values as in the proto ("RUNNING", "SERVER"); "UNKNOWN" for
 * a value this build does not know. Static strings. */
const char *pd_ctl_job_state_name(int state);
const char *pd_ctl_role_name(int role);

/* Whether a job in `state` will not change any more. */
int pd_ctl_job_state_final(int state);

/* Formats a duration as "M:SS", or "H:MM:SS" from one hour on; "-" for a
 * negative or non-finite value. */
void pd_ctl_format_duration(double seconds, char *buf, size_t len);

/* Estimated seconds until a running job finishes, from the steps done so far
 * (over all epochs) and its elapsed time; -1 when it cannot be estimated
 * (not running, under 1 % done, or the step counts are unknown). */
double pd_ctl_eta_sec(const Pando__V1__JobStatus *status);

/* The progress of a job in one line:
 * "epoch 2/3  step 120/469  loss 0.4312  12345 samples/s  ETA 0:42".
 * The ETA is only shown for a running job. A federated job shows the
 * coordinator's message about its current round instead. */
void pd_ctl_progress_line(const Pando__V1__JobStatus *status, char *buf, size_t len);

/* The line for finished epoch history[index]:
 * "epoch 1: train loss 0.5123, test accuracy 0.8421, test loss 0.4410 (12.3 s)",
 * where the time is the epoch's own duration. */
void pd_ctl_epoch_line(const Pando__V1__JobStatus *status, size_t index, char *buf, size_t len);

/* The line for federated round attempt round_history[index]:
 * "round 3/30: 13 selected, 10 reported, 3 dropped, 0 late, 1.2 s, test accuracy 0.8123"
 * or "round 3/30 attempt 1 abandoned: 13 selected, 4 reported, 9 dropped, 0 late, 60.0 s". */
void pd_ctl_round_line(const Pando__V1__JobStatus *status, size_t index, char *buf, size_t len);

/* The test accuracy of a finished job: of its last epoch, or of its last
 * evaluated federated round; -1 when there is none. */
double pd_ctl_final_accuracy(const Pando__V1__JobStatus *status);

/* The closing line of `submit --wait`: "job job-1 SUCCEEDED in 0:37", or
 * "job job-1 FAILED after 0:12: <message>". */
void pd_ctl_final_line(const Pando__V1__JobStatus *status, char *buf, size_t len);

/* The update-strategy statistics of a job merged over its servers
 * (ParameterServer/GetStats): counts summed (a gradient counts once per
 * shard), the clock gap the largest any server saw. */
#define PD_CTL_STALENESS_BUCKETS 8
typedef struct pd_ctl_stats {
  uint32_t servers;                             /* servers that answered */
  uint32_t asked;                               /* servers asked */
  uint64_t staleness[PD_CTL_STALENESS_BUCKETS]; /* <= 0, 1, 2, 4, 8, 16, 32, > 32 */
  uint64_t staleness_sum, dropped, blocked, max_clock_gap;
} pd_ctl_stats;

/* Adds one server's answer to `stats`. */
void pd_ctl_stats_merge(pd_ctl_stats *stats, const Pando__V1__StatsResponse *response);
/* "staleness: 0:1234 1:56 2:7, dropped 12, blocked 340, max clock gap 2"
 * (buckets by upper bound, empty ones left out, the last as ">32"). */
void pd_ctl_stats_line(const pd_ctl_stats *stats, char *buf, size_t len);

/* Text output of `status`, `list` and `cluster`. */
void pd_ctl_print_job(FILE *out, const Pando__V1__JobStatus *status);
void pd_ctl_print_jobs(FILE *out, const Pando__V1__ListJobsResponse *jobs);
void pd_ctl_print_cluster(FILE *out, const Pando__V1__ClusterResponse *cluster);

/* Text output of `status` with the job's strategy statistics (stats may be
 * NULL, or have no server answering: no statistics block). */
void pd_ctl_print_job_stats(FILE *out, const Pando__V1__JobStatus *status,
                            const pd_ctl_stats *stats);

/* JSON values of the messages: every field, even when it has its default. */
void pd_ctl_json_job(pd_ctl_json *json, const Pando__V1__JobStatus *status);
/* The job with a "stats" object (null when stats is NULL or no server
 * answered): staleness (bucket bound -> count, "+Inf" last), staleness_sum,
 * dropped, blocked, max_clock_gap, servers. */
void pd_ctl_json_job_stats(pd_ctl_json *json, const Pando__V1__JobStatus *status,
                           const pd_ctl_stats *stats);
void pd_ctl_json_jobs(pd_ctl_json *json, const Pando__V1__ListJobsResponse *jobs);
void pd_ctl_json_cluster(pd_ctl_json *json, const Pando__V1__ClusterResponse *cluster);

/* Writes the `n` values as a sparkline of Unicode block characters (one
 * per value, lowest U+2581, highest U+2588; the last `width` values when
 * there are more) into dst[0, dstlen), NUL-terminated. Non-finite values
 * are blanks. Returns dst. */
char *pd_ctl_sparkline(const double *values, size_t n, size_t width, char *dst, size_t dstlen);

#endif
