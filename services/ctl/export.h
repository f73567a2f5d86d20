/* pandoctl export: a job's model, pulled from its servers, written as a
 * safetensors file with the tensors named and shaped as the model's layout. */
#ifndef PANDO_CTL_EXPORT_H
#define PANDO_CTL_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "pando.pb-c.h"

/* Pulls every key of the job `status` describes (its spec_yaml and shard
 * map) and writes them to `path` (pando/safetensors.h); a line on `out`
 * says what was written. With `checkpoint` > 0 the keys are those of that
 * checkpoint (exactly that id), read with ReadCheckpoint from the data_dirs
 * of the servers the job's JobStatus.placement names (its shard_map when
 * there is none), in chunks of at most 4 Mi keys, whether or not the shards
 * are still held. Returns 0, or -1 after a message on `errout`. */
int pd_ctl_export(const Pando__V1__JobStatus *status, uint64_t checkpoint, const char *path,
                  double timeout_sec, FILE *out, FILE *errout);

#endif
