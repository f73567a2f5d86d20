/* pandoctl explain: what a job spec will do before it runs, in the spirit of
 * SystemDS's -explain: tensors and their key ranges per server, rows per
 * worker, steps and clocks per epoch, bytes on the wire, memory per server
 * and per worker, the consistency model in a line, and warnings. */
#ifndef PANDO_CTL_EXPLAIN_H
#define PANDO_CTL_EXPLAIN_H

#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "pando.pb-c.h"
#include "pando/spec.h"

#define PD_CTL_EXPLAIN_MAX_SHARDS 1024

/* The plan of a job, as pd_ctl_explain_plan computes it. */
typedef struct pd_ctl_plan {
  uint64_t keys;
  uint64_t rows, cols;       /* training rows and values per row (0 when unknown) */
  int rows_known;            /* the data files could be read here */
  uint32_t servers, workers; /* workers: with backup workers */
  uint64_t shard_begin[PD_CTL_EXPLAIN_MAX_SHARDS], shard_end[PD_CTL_EXPLAIN_MAX_SHARDS];
  uint64_t shard_bytes[PD_CTL_EXPLAIN_MAX_SHARDS]; /* what each server holds for its shard */
  uint64_t rows_min, rows_max;                     /* rows per worker */
  uint32_t steps_per_epoch, clocks_per_epoch;      /* clocks: pull/push exchanges */
  uint64_t pull_bytes, push_bytes;                 /* per clock and worker, all shards together */
  uint64_t worker_data_bytes;                      /* the largest partition, as floats */
  uint64_t worker_model_bytes;                     /* its copy of the parameters and a gradient */
} pd_ctl_plan;

/* Computes the plan of `spec` (valid, parsed). The training data's rows
 * are read from the files where pandoctl runs (pd_dataset_peek: headers
 * only for IDX); when they cannot be read, rows_known is 0 and `note` says
 * why. */
void pd_ctl_explain_plan(const pd_job_spec *spec, pd_ctl_plan *plan, char *note, size_t notelen);

/* Prints the plan of `spec` as text, with warnings about `cluster` (the
 * registered nodes, or NULL when the coordinator was not asked). */
void pd_ctl_explain_print(FILE *out, const pd_job_spec *spec, const pd_ctl_plan *plan,
                          const char *note, const Pando__V1__ClusterResponse *cluster);
/* The same as one JSON object. */
void pd_ctl_explain_json(pd_ctl_json *json, const pd_job_spec *spec, const pd_ctl_plan *plan,
                         const char *note, const Pando__V1__ClusterResponse *cluster);

#endif
