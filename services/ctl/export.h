/* pandoctl export: a job's model, pulled from its servers, written as a
 * safetensors file with the tensors named and shaped as the model's layout. */
#ifndef PANDO_CTL_EXPORT_H
#define PANDO_CTL_EXPORT_H

#include <stdio.h>

#include "pando.pb-c.h"

/* Pulls every key of the job `status` describes (its spec_yaml and shard
 * map) and writes them to `path` (pando/safetensors.h); a line on `out`
 * says what was written. Returns 0, or -1 after a message on `errout`. */
int pd_ctl_export(const Pando__V1__JobStatus *status, const char *path, double timeout_sec,
                  FILE *out, FILE *errout);

#endif
