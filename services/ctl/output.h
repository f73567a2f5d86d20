/* How pandoctl shows Coordinator answers: the progress line and ETA of a
 * running job, epoch lines, text tables, and the JSON form of each message
 * (field names as in proto/pando.proto, enums by name). */
#ifndef PANDO_CTL_OUTPUT_H
#define PANDO_CTL_OUTPUT_H

#include <stddef.h>
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
 * The ETA is only shown for a running job. */
void pd_ctl_progress_line(const Pando__V1__JobStatus *status, char *buf, size_t len);

/* The line for finished epoch history[index]:
 * "epoch 1: train loss 0.5123, test accuracy 0.8421, test loss 0.4410 (12.3 s)",
 * where the time is the epoch's own duration. */
void pd_ctl_epoch_line(const Pando__V1__JobStatus *status, size_t index, char *buf, size_t len);

/* The closing line of `submit --wait`: "job job-1 SUCCEEDED in 0:37", or
 * "job job-1 FAILED after 0:12: <message>". */
void pd_ctl_final_line(const Pando__V1__JobStatus *status, char *buf, size_t len);

/* Text output of `status`, `list` and `cluster`. */
void pd_ctl_print_job(FILE *out, const Pando__V1__JobStatus *status);
void pd_ctl_print_jobs(FILE *out, const Pando__V1__ListJobsResponse *jobs);
void pd_ctl_print_cluster(FILE *out, const Pando__V1__ClusterResponse *cluster);

/* JSON values of the messages: every field, even when it has its default. */
void pd_ctl_json_job(pd_ctl_json *json, const Pando__V1__JobStatus *status);
void pd_ctl_json_jobs(pd_ctl_json *json, const Pando__V1__ListJobsResponse *jobs);
void pd_ctl_json_cluster(pd_ctl_json *json, const Pando__V1__ClusterResponse *cluster);

#endif
