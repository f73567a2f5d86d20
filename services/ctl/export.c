/* pandoctl export; see export.h. */
#include "export.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pando/model.h"
#include "pando/psclient.h"
#include "pando/rpc.h"
#include "pando/safetensors.h"
#include "pando/spec.h"
#include "pando/util.h"

/* The tensors of the job `status` describes (its spec_yaml), checked to
 * cover the keys of `map`: their number, or -1 after a message on `errout`.
 * `params` has PD_MODEL_MAX_TENSORS entries; *keys gets the model's keys. */
static int model_layout(const Pando__V1__JobStatus *status, const Pando__V1__ShardMap *map,
                        pd_param_info *params, uint64_t *keys, FILE *errout) {
  char err[1024];
  pd_job_spec spec;
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
  *keys = 0;
  int n = pd_model_layout(&spec.model, params, PD_MODEL_MAX_TENSORS, keys, err, sizeof err);
  if (n < 0) {
    fprintf(errout, "pandoctl: job %s: %s\n", status->job, err);
    return -1;
  }
  if (*keys != map->keys || n == 0 || params[n - 1].offset + params[n - 1].size != *keys) {
    fprintf(errout,
            "pandoctl: job %s: the model's %d tensors do not cover its %" PRIu64
            " parameters, or the shard map's %" PRIu64 "\n",
            status->job, n, *keys, map->keys);
    return -1;
  }
  return n;
}

/* Writes the `n` tensors `params` of `values` to `path` and says so on `out`
 * (`what`: where they came from); 0, or -1 after a message on `errout`. */
static int write_model(const char *path, const pd_param_info *params, int n, const float *values,
                       uint64_t keys, const char *job, const char *what, FILE *out, FILE *errout) {
  char err[1024];
  if (pd_safetensors_write(path, params, n, values, job, err, sizeof err) != 0) {
    fprintf(errout, "pandoctl: %s\n", err);
    return -1;
  }
  fprintf(out, "wrote %s: %d tensors, %" PRIu64 " parameters of job %s (%s)\n", path, n, keys, job,
          what);
  return 0;
}

/* Pulls keys [0, keys) of the job's live shards (`map`) into `values`;
 * `what` gets the version. 0, or -1 after a message on `errout`. */
static int pull_live(const Pando__V1__JobStatus *status, const Pando__V1__ShardMap *map,
                     uint64_t keys, double timeout_sec, float *values, char *what, size_t whatlen,
                     FILE *errout) {
  char err[1024];
  pd_shard_range *ranges = pd_xcalloc(map->n_shards, sizeof *ranges);
  for (size_t i = 0; i < map->n_shards; i++) {
    ranges[i].begin = map->shards[i]->begin;
    ranges[i].end = map->shards[i]->end;
    pd_strlcpy(ranges[i].address, map->shards[i]->address, sizeof ranges[i].address);
  }
  pd_psclient *client = pd_psclient_new(status->job, 0, ranges, (int)map->n_shards, 0);
  pd_psclient_set_timeouts(client, timeout_sec, timeout_sec);
  uint64_t version = 0;
  int rc = 0;
  /* clock 0: answered at once by every strategy (the model as it is now) */
  if (pd_psclient_pull(client, 0, keys, 0, values, &version, err, sizeof err) != 0) {
    fprintf(errout, "pandoctl: job %s: pull failed: %s\n", status->job, err);
    rc = -1;
  }
  snprintf(what, whatlen, "version %" PRIu64, version);
  pd_psclient_free(client);
  free(ranges);
  return rc;
}

/* Keys of one ReadCheckpoint call: 16 MiB of float32, well inside Tensor's
 * 64 MiB. */
#define CHECKPOINT_CHUNK_KEYS (4u << 20)

/* Reads keys [shard->begin, shard->end) of checkpoint `id` of `job` from
 * the shard's server into `dst`; *version gets the checkpoint's clock
 * version. 0, or -1 with why in `err`. */
static int read_shard(const char *job, const Pando__V1__Shard *shard, uint64_t id,
                      double timeout_sec, float *dst, uint64_t *version, char *err, size_t errlen) {
  if (!shard->address || !shard->address[0]) {
    snprintf(err, errlen,
             "the server that held keys [%" PRIu64 ", %" PRIu64 ") is gone (the coordinator "
             "forgot it and no live server has its name)",
             shard->begin, shard->end);
    return -1;
  }
  pd_rpc_channel *channel = pd_rpc_channel_new(shard->address, 0);
  int rc = 0;
  for (uint64_t begin = shard->begin; begin < shard->end && rc == 0;) {
    uint64_t end = PD_MIN(shard->end, begin + CHECKPOINT_CHUNK_KEYS);
    Pando__V1__ReadCheckpointRequest req = PANDO__V1__READ_CHECKPOINT_REQUEST__INIT;
    req.job = (char *)job;
    req.shard_begin = shard->begin;
    req.shard_end = shard->end;
    req.checkpoint = id;
    req.begin = begin;
    req.end = end;
    ProtobufCMessage *msg = NULL;
    rc = pd_rpc_unary(channel, "/pando.v1.ParameterServer/ReadCheckpoint", &req.base,
                      &pando__v1__read_checkpoint_response__descriptor, &msg, timeout_sec, NULL,
                      err, errlen);
    if (rc != 0)
      break;
    const Pando__V1__ReadCheckpointResponse *resp = (const Pando__V1__ReadCheckpointResponse *)msg;
    if (!resp->values || resp->values->data.len != (end - begin) * sizeof(float)) {
      snprintf(err, errlen,
               "%s: ReadCheckpoint of keys [%" PRIu64 ", %" PRIu64
               ") answered %zu bytes, not %" PRIu64,
               shard->address, begin, end, resp->values ? resp->values->data.len : 0,
               (end - begin) * (uint64_t)sizeof(float));
      rc = -1;
    } else {
      memcpy(dst + (begin - shard->begin), resp->values->data.data, resp->values->data.len);
      *version = resp->version;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    begin = end;
  }
  pd_rpc_channel_free(channel);
  return rc == 0 ? 0 : -1;
}

/* Reads keys [0, keys) of checkpoint `id` from the servers of `map` into
 * `values`; `what` names the checkpoint. 0, or -1 after a message on
 * `errout`. */
static int read_checkpoint(const Pando__V1__JobStatus *status, const Pando__V1__ShardMap *map,
                           uint64_t keys, uint64_t id, double timeout_sec, float *values,
                           char *what, size_t whatlen, FILE *errout) {
  char err[1400];
  for (size_t s = 0; s < map->n_shards; s++) {
    const Pando__V1__Shard *shard = map->shards[s];
    uint64_t version = 0;
    if (shard->begin > shard->end || shard->end > keys) {
      fprintf(errout,
              "pandoctl: job %s: shard [%" PRIu64 ", %" PRIu64 ") is outside its %" PRIu64
              " keys\n",
              status->job, shard->begin, shard->end, keys);
      return -1;
    }
    if (read_shard(status->job, shard, id, timeout_sec, values + shard->begin, &version, err,
                   sizeof err) != 0) {
      fprintf(errout, "pandoctl: job %s: checkpoint %" PRIu64 ": %s\n", status->job, id, err);
      return -1;
    }
  }
  snprintf(what, whatlen, "checkpoint %" PRIu64, id);
  return 0;
}

int pd_ctl_export(const Pando__V1__JobStatus *status, uint64_t checkpoint, const char *path,
                  double timeout_sec, FILE *out, FILE *errout) {
  char what[64];
  /* a checkpoint's servers: the placement names them also after the model was dropped */
  const Pando__V1__ShardMap *map = checkpoint && status->placement && status->placement->n_shards
                                       ? status->placement
                                       : status->shard_map;
  uint64_t keys = 0;
  pd_param_info *params = pd_xcalloc(PD_MODEL_MAX_TENSORS, sizeof *params);
  int n = model_layout(status, map, params, &keys, errout);
  if (n < 0) {
    free(params);
    return -1;
  }
  float *values = pd_xmalloc_aligned((keys ? keys : 1) * sizeof(float));
  int rc = checkpoint
               ? read_checkpoint(status, map, keys, checkpoint, timeout_sec, values, what,
                                 sizeof what, errout)
               : pull_live(status, map, keys, timeout_sec, values, what, sizeof what, errout);
  if (rc == 0)
    rc = write_model(path, params, n, values, keys, status->job, what, out, errout);
  free(values);
  free(params);
  return rc;
}
