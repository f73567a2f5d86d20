/* pandoctl export; see export.h. */
#include "export.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pando/model.h"
#include "pando/psclient.h"
#include "pando/safetensors.h"
#include "pando/spec.h"
#include "pando/util.h"

int pd_ctl_export(const Pando__V1__JobStatus *status, const char *path, double timeout_sec,
                  FILE *out, FILE *errout) {
  char err[1024];
  pd_job_spec spec;
  const Pando__V1__ShardMap *map = status->shard_map;
  if (!status->spec_yaml || !status->spec_yaml[0] ||
      pd_job_spec_parse(status->spec_yaml, strlen(status->spec_yaml), &spec, err, sizeof err) !=
          0) {
    fprintf(errout, "pandoctl: job %s: the coordinator sent no usable job spec%s%s\n", status->job,
            status->spec_yaml && status->spec_yaml[0] ? ": " : "",
            status->spec_yaml && status->spec_yaml[0] ? err : "");
    return -1;
  }
  if (!map || map->n_shards == 0) {
    fprintf(
        errout, "pandoctl: job %s has no shards to export from (state %s)\n", status->job,
        protobuf_c_enum_descriptor_get_value(&pando__v1__job_state__descriptor, status->state)
            ? protobuf_c_enum_descriptor_get_value(&pando__v1__job_state__descriptor, status->state)
                  ->name
            : "unknown");
    return -1;
  }
  uint64_t keys = 0;
  pd_param_info *params = pd_xcalloc(PD_MODEL_MAX_TENSORS, sizeof *params);
  int n = pd_model_layout(&spec.model, params, PD_MODEL_MAX_TENSORS, &keys, err, sizeof err);
  if (n < 0) {
    free(params);
    fprintf(errout, "pandoctl: job %s: %s\n", status->job, err);
    return -1;
  }
  if (keys != map->keys || n == 0 || params[n - 1].offset + params[n - 1].size != keys) {
    fprintf(errout,
            "pandoctl: job %s: the model's %d tensors do not cover its %" PRIu64
            " parameters, or the shard map's %" PRIu64 "\n",
            status->job, n, keys, map->keys);
    free(params);
    return -1;
  }
  pd_shard_range *ranges = pd_xcalloc(map->n_shards, sizeof *ranges);
  for (size_t i = 0; i < map->n_shards; i++) {
    ranges[i].begin = map->shards[i]->begin;
    ranges[i].end = map->shards[i]->end;
    pd_strlcpy(ranges[i].address, map->shards[i]->address, sizeof ranges[i].address);
  }
  pd_psclient *client = pd_psclient_new(status->job, 0, ranges, (int)map->n_shards, 0);
  pd_psclient_set_timeouts(client, timeout_sec, timeout_sec);
  float *values = pd_xmalloc_aligned((keys ? keys : 1) * sizeof(float));
  uint64_t version = 0;
  int rc = -1;
  /* clock 0: answered at once by every strategy (the model as it is now) */
  if (pd_psclient_pull(client, 0, keys, 0, values, &version, err, sizeof err) != 0)
    fprintf(errout, "pandoctl: job %s: pull failed: %s\n", status->job, err);
  else if (pd_safetensors_write(path, params, n, values, status->job, err, sizeof err) != 0)
    fprintf(errout, "pandoctl: %s\n", err);
  else {
    fprintf(out, "wrote %s: %d tensors, %" PRIu64 " parameters of job %s (version %" PRIu64 ")\n",
            path, n, keys, status->job, version);
    rc = 0;
  }
  free(values);
  pd_psclient_free(client);
  free(ranges);
  free(params);
  return rc;
}
