/* pandoctl explain; see explain.h. Every figure comes from the functions the
 * daemons themselves use (pd_model_layout, pd_plan_shards,
 * pd_plan_partition_steps, pd_optimizer_shard_bytes), so the plan is the
 * one the job gets. */
#include "explain.h"

#include <stdlib.h>
#include <string.h>

#include "pando/dataset.h"
#include "pando/model.h"
#include "pando/optimizer.h"
#include "pando/pipeline.h"
#include "pando/plan.h"
#include "pando/schedule.h"
#include "pando/util.h"
#include "table.h"

#define MAX_TENSORS 64
/* Framing of one shard's tensor in a Pull answer or a Push: the message's
 * fields around the float data (job, clock, worker, key range, lengths). */
#define PER_SHARD_OVERHEAD 64

static int federated(const pd_job_spec *spec) { return spec->training.update == PD_UPDATE_FEDAVG; }

void pd_ctl_explain_plan(const pd_job_spec *spec, pd_ctl_plan *p, char *note, size_t notelen) {
  memset(p, 0, sizeof *p);
  note[0] = '\0';
  char err[512];
  if (pd_model_layout(&spec->model, NULL, 0, &p->keys, err, sizeof err) < 0)
    snprintf(note, notelen, "model: %s", err);
  p->servers = (uint32_t)PD_MIN(spec->cluster.servers, PD_CTL_EXPLAIN_MAX_SHARDS);
  p->workers =
      federated(spec) ? 0 : (uint32_t)(spec->cluster.workers + spec->training.backup_workers);
  if (p->keys >= p->servers)
    pd_plan_shards(p->keys, p->servers, p->shard_begin, p->shard_end);
  for (uint32_t s = 0; s < p->servers; s++)
    p->shard_bytes[s] =
        pd_optimizer_shard_bytes(spec, p->shard_end[s] - p->shard_begin[s], p->workers);
  uint64_t exchange = p->keys * sizeof(float) + (uint64_t)p->servers * PER_SHARD_OVERHEAD;
  p->pull_bytes = p->push_bytes = exchange;
  p->worker_model_bytes = 2 * p->keys * sizeof(float);
  if (federated(spec))
    return;
  if (!note[0] && pd_dataset_peek(spec, 0, &p->rows, &p->cols, err, sizeof err) != 0)
    snprintf(note, notelen, "the training data cannot be read here (%s): rows per worker unknown",
             err);
  else if (!note[0])
    p->rows_known = 1;
  if (!p->rows_known || p->rows < p->workers || p->workers == 0)
    return;
  enum pd_partition scheme = spec->data.partition;
  p->rows_min = pd_plan_partition_size(p->rows, p->workers, p->workers - 1, scheme);
  p->rows_max = pd_plan_partition_size(p->rows, p->workers, 0, scheme);
  p->steps_per_epoch =
      pd_plan_partition_steps(p->rows, p->workers, scheme, pd_schedule_batch_size(spec, 1));
  switch (spec->training.frequency) {
  case PD_FREQ_EPOCH:
    p->clocks_per_epoch = 1;
    break;
  case PD_FREQ_NBATCHES: {
    uint32_t k = (uint32_t)PD_MAX(spec->training.nbatches, 1);
    p->clocks_per_epoch = (p->steps_per_epoch + k - 1) / k;
    break;
  }
  default:
    p->clocks_per_epoch = p->steps_per_epoch;
  }
  p->worker_data_bytes = p->rows_max * (p->cols + 1) * sizeof(float); /* features and a label */
}

static const char *consistency(const pd_job_spec *spec, char *buf, size_t len) {
  switch (spec->training.update) {
  case PD_UPDATE_BSP:
    if (spec->training.backup_workers > 0)
      snprintf(buf, len,
               "bsp with %d backup workers: each clock a server applies the average of the first "
               "%d of the %d workers' gradients and drops the rest; pulls of the next clock wait "
               "for it",
               spec->training.backup_workers, spec->cluster.workers,
               spec->cluster.workers + spec->training.backup_workers);
    else
      snprintf(buf, len,
               "bsp: each clock a server waits for the gradients of all %d workers and applies "
               "their average; pulls of the next clock wait for it (the same result as one "
               "worker with %d times the batch)",
               spec->cluster.workers, spec->cluster.workers);
    return buf;
  case PD_UPDATE_ASP:
    snprintf(buf, len,
             "asp: a server applies each gradient as it arrives and no worker ever waits; a "
             "gradient may be computed on parameters any number of updates old");
    return buf;
  case PD_UPDATE_SSP:
    snprintf(buf, len,
             "ssp with staleness %d: gradients are applied as they arrive, but a worker's pull "
             "waits while it is more than %d clocks ahead of the slowest worker",
             spec->training.staleness, spec->training.staleness);
    return buf;
  case PD_UPDATE_FEDAVG:
    snprintf(buf, len,
             "fedavg: in each of %d rounds devices of a selector train locally (E = %d, B = %d) "
             "and the shards commit the n_k-weighted average of the same set of reports",
             spec->training.federated.rounds, spec->training.federated.local_epochs,
             spec->training.federated.local_batch_size);
    return buf;
  }
  return "unknown";
}

/* Calls `warn` for each warning about the plan; returns their number. */
static int warnings(const pd_job_spec *spec, const pd_ctl_plan *p,
                    const Pando__V1__ClusterResponse *cluster,
                    void (*warn)(void *ctx, const char *text), void *ctx) {
  char text[512];
  int n = 0;
  uint64_t most = 0, least = UINT64_MAX;
  for (uint32_t s = 0; s < p->servers; s++) {
    most = PD_MAX(most, p->shard_bytes[s]);
    least = PD_MIN(least, p->shard_bytes[s]);
  }
  if (p->servers > 1 && least > 0 && most > least + least / 2) {
    snprintf(text, sizeof text,
             "unbalanced servers: one holds %.1f MiB, another %.1f MiB; the largest sets the pace",
             most / 1048576.0, least / 1048576.0);
    warn(ctx, text), n++;
  }
  uint32_t batch = pd_schedule_batch_size(spec, 1);
  if (p->rows_known && p->workers > 0 && p->rows_min < batch) {
    snprintf(text, sizeof text,
             "a worker's partition (%llu rows) is smaller than a batch (training.batch_size %u): "
             "every step of that worker is one short batch",
             (unsigned long long)p->rows_min, batch);
    warn(ctx, text), n++;
  }
  if (!cluster)
    return n;
  uint32_t servers = 0, fit = 0, workers = 0, selectors = 0;
  uint64_t largest = 0;
  for (size_t i = 0; i < cluster->n_nodes; i++) {
    const Pando__V1__NodeStatus *node = cluster->nodes[i];
    if (!node->alive)
      continue;
    if (node->role == PANDO__V1__ROLE__ROLE_SERVER) {
      servers++;
      fit += node->memory_bytes == 0 || node->memory_bytes >= most;
      largest = PD_MAX(largest, node->memory_bytes);
    }
    workers += node->role == PANDO__V1__ROLE__ROLE_WORKER && !node->job[0];
    selectors += node->role == PANDO__V1__ROLE__ROLE_SELECTOR;
  }
  if (servers < p->servers) {
    snprintf(text, sizeof text,
             "%u servers are registered, the job needs %u: it waits until more register "
             "(cluster.wait_timeout %g s)",
             servers, p->servers, spec->cluster.wait_timeout_sec);
    warn(ctx, text), n++;
  } else if (fit < p->servers) {
    snprintf(text, sizeof text,
             "memory: a shard needs %.1f MiB but only %u of the %u registered servers have that "
             "much memory_limit (the largest %.1f MiB): the coordinator refuses the job",
             most / 1048576.0, fit, servers, largest / 1048576.0);
    warn(ctx, text), n++;
  }
  if (!federated(spec) && workers < p->workers) {
    snprintf(text, sizeof text,
             "%u idle workers are registered, the job needs %u: it waits until more are idle",
             workers, p->workers);
    warn(ctx, text), n++;
  }
  if (federated(spec) && selectors == 0) {
    snprintf(text, sizeof text, "no selector is registered: its rounds wait for one");
    warn(ctx, text), n++;
  }
  return n;
}

static void mib(char *buf, size_t len, uint64_t bytes) {
  snprintf(buf, len, "%.2f MiB", bytes / 1048576.0);
}

static void print_warning(void *ctx, const char *text) {
  fprintf((FILE *)ctx, "  warning: %s\n", text);
}

/* One stage of a pipeline's plan (pando/pipeline.h). */
typedef struct stage_row {
  int layer_begin, layer_end;
  uint64_t key_begin, key_end;
  double flops_share;        /* of the model's estimated FLOPs */
  uint64_t activation_bytes; /* sent forward (and its gradient backward) per micro-batch */
  int in_flight;             /* the schedule's most micro-batches held */
} stage_row;

/* The plan of each stage; returns their number (0: no pipeline). */
static int stage_rows(const pd_job_spec *spec, stage_row *rows) {
  int S = spec->cluster.stages, bounds[PD_MAX_LAYERS + 1];
  char err[256];
  pd_param_info info[MAX_TENSORS];
  if (S <= 1 || pd_pipeline_split(&spec->model, S, bounds, err, sizeof err) != 0 ||
      pd_model_layout(&spec->model, info, MAX_TENSORS, NULL, err, sizeof err) < 2 * bounds[S])
    return 0;
  double total = 0.0;
  for (int l = 0; l < bounds[S]; l++)
    total += pd_pipeline_layer_flops(&spec->model, l);
  uint32_t m = (uint32_t)spec->training.micro_batches;
  uint64_t micro_rows = ((uint64_t)spec->training.batch_size + m - 1) / m;
  for (int s = 0; s < S; s++) {
    stage_row *r = &rows[s];
    r->layer_begin = bounds[s];
    r->layer_end = bounds[s + 1];
    r->key_begin = info[2 * bounds[s]].offset;
    r->key_end = info[2 * bounds[s + 1] - 1].offset + info[2 * bounds[s + 1] - 1].size;
    double f = 0.0;
    for (int l = bounds[s]; l < bounds[s + 1]; l++)
      f += pd_pipeline_layer_flops(&spec->model, l);
    r->flops_share = total > 0 ? f / total : 0.0;
    r->activation_bytes =
        s + 1 < S ? micro_rows * (uint64_t)spec->model.layers[bounds[s + 1]] * sizeof(float) : 0;
    r->in_flight = pd_pipeline_max_in_flight(spec->training.pipeline_schedule, S, s, m);
  }
  return S;
}

static const char *schedule_name(const pd_job_spec *spec) {
  return spec->training.pipeline_schedule == PD_PIPELINE_1F1B ? "1f1b" : "gpipe";
}

/* The pipeline section of the text plan (nothing without stages). */
static void print_pipeline(FILE *out, const pd_job_spec *spec) {
  stage_row rows[PD_MAX_LAYERS];
  int S = stage_rows(spec, rows);
  if (S == 0)
    return;
  uint32_t m = (uint32_t)spec->training.micro_batches;
  fprintf(out,
          "pipeline: %d stages (cluster.stages) x %d replicas: %d worker places; %u "
          "micro-batches (training.micro_batches), schedule %s; ideal bubble (S-1)/(m+S-1) = "
          "%.3f\n",
          S, spec->cluster.workers, S * spec->cluster.workers, m, schedule_name(spec),
          pd_pipeline_bubble(S, m));
  static const char *const headers[] = {"STAGE",    "LAYERS", "KEYS", "FLOPS", "SENDS/MICRO-BATCH",
                                        "IN FLIGHT"};
  pd_ctl_table *t = pd_ctl_table_new(headers, 6);
  for (int s = 0; s < S; s++) {
    pd_ctl_table_cell(t, "%d", s);
    pd_ctl_table_cell(t, "[%d, %d)", rows[s].layer_begin, rows[s].layer_end);
    pd_ctl_table_cell(t, "[%llu, %llu)", (unsigned long long)rows[s].key_begin,
                      (unsigned long long)rows[s].key_end);
    pd_ctl_table_cell(t, "%.0f%%", 100.0 * rows[s].flops_share);
    if (rows[s].activation_bytes) {
      pd_ctl_table_cell(t, "%llu B", (unsigned long long)rows[s].activation_bytes);
    } else {
      pd_ctl_table_cell(t, "-");
    }
    pd_ctl_table_cell(t, "%d", rows[s].in_flight);
  }
  pd_ctl_table_print(t, out, "  ");
  pd_ctl_table_free(t);
  fprintf(out, "  each stage pulls and pushes its own keys; the activations go forward and their "
               "gradients back over Peer/Send\n");
}

void pd_ctl_explain_print(FILE *out, const pd_job_spec *spec, const pd_ctl_plan *p,
                          const char *note, const Pando__V1__ClusterResponse *cluster) {
  char buf[600], a[32];
  pd_param_info tensors[MAX_TENSORS];
  char err[256];
  int nt = pd_model_layout(&spec->model, tensors, MAX_TENSORS, NULL, err, sizeof err);
  fprintf(out, "job %s: %s model, %llu parameters in %d tensors, %s, %s\n", spec->name,
          pd_model_type_name(spec->model.type), (unsigned long long)p->keys, nt < 0 ? 0 : nt,
          pd_update_name(spec->training.update), pd_optimizer_name(spec->training.optimizer.type));
  static const char *const theaders[] = {"TENSOR", "SHAPE", "KEYS", "SERVERS"};
  pd_ctl_table *t = pd_ctl_table_new(theaders, 4);
  for (int i = 0; i < nt && i < MAX_TENSORS; i++) {
    const pd_param_info *pi = &tensors[i];
    size_t used = 0;
    buf[0] = '\0';
    for (int d = 0; d < pi->ndim; d++)
      used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%lld", d ? ", " : "[",
                               (long long)pi->shape[d]);
    snprintf(buf + used, sizeof buf - used, "]");
    pd_ctl_table_cell(t, "%s", pi->name);
    pd_ctl_table_cell(t, "%s", buf);
    pd_ctl_table_cell(t, "[%llu, %llu)", (unsigned long long)pi->offset,
                      (unsigned long long)(pi->offset + pi->size));
    uint32_t first = 0, last = 0;
    for (uint32_t s = 0; s < p->servers; s++) {
      if (p->shard_begin[s] <= pi->offset && pi->offset < p->shard_end[s])
        first = s;
      if (p->shard_begin[s] < pi->offset + pi->size && pi->offset + pi->size <= p->shard_end[s])
        last = s;
    }
    if (first == last)
      pd_ctl_table_cell(t, "%u", first);
    else
      pd_ctl_table_cell(t, "%u-%u", first, last);
  }
  fprintf(out, "tensors:\n");
  pd_ctl_table_print(t, out, "  ");
  pd_ctl_table_free(t);

  fprintf(out, "servers: %u (cluster.servers), each holding one key range\n", p->servers);
  static const char *const sheaders[] = {"SERVER", "KEYS", "MEMORY"};
  t = pd_ctl_table_new(sheaders, 3);
  for (uint32_t s = 0; s < p->servers; s++) {
    pd_ctl_table_cell(t, "%u", s);
    pd_ctl_table_cell(t, "[%llu, %llu)", (unsigned long long)p->shard_begin[s],
                      (unsigned long long)p->shard_end[s]);
    mib(a, sizeof a, p->shard_bytes[s]);
    pd_ctl_table_cell(t, "%s", a);
  }
  pd_ctl_table_print(t, out, "  ");
  pd_ctl_table_free(t);
  fprintf(out,
          "  memory: parameters and their copy-on-write buffer (8 B a key), the %s optimizer's "
          "state (%llu B a key)%s%s\n",
          pd_optimizer_name(spec->training.optimizer.type),
          (unsigned long long)pd_optimizer_state_bytes_per_key(spec->training.optimizer.type),
          spec->training.update == PD_UPDATE_BSP ? ", the round's sum (4 B a key)" : "",
          spec->training.backup_workers > 0 ? ", the backup workers' buffers" : "");

  if (federated(spec)) {
    fprintf(out,
            "rounds: %d, %g devices a round (clients_per_round), select %u, commit at %u reports, "
            "round_timeout %g s\n",
            spec->training.federated.rounds, spec->training.federated.clients_per_round,
            pd_spec_round_selected(spec, 0), pd_spec_round_min_reports(spec, 0),
            spec->training.federated.round_timeout_sec);
    mib(a, sizeof a, p->pull_bytes);
    fprintf(out, "wire per device and round: pull %s, push %s\n", a, a);
  } else {
    fprintf(out, "workers: %u (cluster.workers %d + training.backup_workers %d), partition %s\n",
            p->workers, spec->cluster.workers, spec->training.backup_workers,
            pd_partition_name(spec->data.partition));
    if (p->rows_known) {
      fprintf(out,
              "  rows: %llu training rows of %llu values; %llu to %llu rows per worker; %u steps "
              "per epoch (batch %u), %u clocks per epoch (frequency %s), %d epochs\n",
              (unsigned long long)p->rows, (unsigned long long)p->cols,
              (unsigned long long)p->rows_min, (unsigned long long)p->rows_max, p->steps_per_epoch,
              pd_schedule_batch_size(spec, 1), p->clocks_per_epoch,
              pd_frequency_name(spec->training.frequency), spec->training.epochs);
      char d[32], m[32];
      mib(d, sizeof d, p->worker_data_bytes);
      mib(m, sizeof m, p->worker_model_bytes);
      fprintf(out, "  memory per worker: data %s, parameters and gradient %s\n", d, m);
    } else {
      fprintf(out, "  rows: unknown (%s)\n", note);
    }
    char pull[32], epoch[32];
    mib(pull, sizeof pull, p->pull_bytes);
    mib(epoch, sizeof epoch, (uint64_t)p->clocks_per_epoch * p->workers * 2 * p->pull_bytes);
    fprintf(out, "wire per clock and worker: pull %s, push %s", pull, pull);
    if (p->rows_known)
      fprintf(out, "; per epoch, all workers: %s", epoch);
    fprintf(out, "\n");
  }
  print_pipeline(out, spec);
  fprintf(out, "consistency: %s\n", consistency(spec, buf, sizeof buf));
  if (warnings(spec, p, cluster, print_warning, out) == 0)
    fprintf(out, "warnings: none%s\n", cluster ? "" : " (the cluster was not asked)");
}

static void json_warning(void *ctx, const char *text) { pd_ctl_json_string(ctx, text); }

void pd_ctl_explain_json(pd_ctl_json *json, const pd_job_spec *spec, const pd_ctl_plan *p,
                         const char *note, const Pando__V1__ClusterResponse *cluster) {
  char buf[600], err[256];
  pd_param_info tensors[MAX_TENSORS];
  int nt = pd_model_layout(&spec->model, tensors, MAX_TENSORS, NULL, err, sizeof err);
  pd_ctl_json_begin_object(json);
  pd_ctl_json_field_string(json, "name", spec->name);
  pd_ctl_json_field_string(json, "model", pd_model_type_name(spec->model.type));
  pd_ctl_json_field_uint(json, "keys", p->keys);
  pd_ctl_json_key(json, "tensors");
  pd_ctl_json_begin_array(json);
  for (int i = 0; i < nt && i < MAX_TENSORS; i++) {
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_string(json, "name", tensors[i].name);
    pd_ctl_json_key(json, "shape");
    pd_ctl_json_begin_array(json);
    for (int d = 0; d < tensors[i].ndim; d++)
      pd_ctl_json_uint(json, (uint64_t)tensors[i].shape[d]);
    pd_ctl_json_end_array(json);
    pd_ctl_json_field_uint(json, "begin", tensors[i].offset);
    pd_ctl_json_field_uint(json, "end", tensors[i].offset + tensors[i].size);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_end_array(json);
  pd_ctl_json_key(json, "shards");
  pd_ctl_json_begin_array(json);
  for (uint32_t s = 0; s < p->servers; s++) {
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "begin", p->shard_begin[s]);
    pd_ctl_json_field_uint(json, "end", p->shard_end[s]);
    pd_ctl_json_field_uint(json, "memory_bytes", p->shard_bytes[s]);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_end_array(json);
  pd_ctl_json_field_uint(json, "workers", p->workers);
  pd_ctl_json_field_string(json, "partition", pd_partition_name(spec->data.partition));
  pd_ctl_json_field_bool(json, "rows_known", p->rows_known);
  pd_ctl_json_field_uint(json, "rows", p->rows);
  pd_ctl_json_field_uint(json, "rows_per_worker_min", p->rows_min);
  pd_ctl_json_field_uint(json, "rows_per_worker_max", p->rows_max);
  pd_ctl_json_field_uint(json, "steps_per_epoch", p->steps_per_epoch);
  pd_ctl_json_field_uint(json, "clocks_per_epoch", p->clocks_per_epoch);
  pd_ctl_json_field_uint(json, "pull_bytes_per_clock", p->pull_bytes);
  pd_ctl_json_field_uint(json, "push_bytes_per_clock", p->push_bytes);
  pd_ctl_json_field_uint(json, "worker_data_bytes", p->worker_data_bytes);
  pd_ctl_json_field_uint(json, "worker_model_bytes", p->worker_model_bytes);
  pd_ctl_json_field_string(json, "consistency", consistency(spec, buf, sizeof buf));
  stage_row rows[PD_MAX_LAYERS];
  int S = stage_rows(spec, rows);
  if (S > 0) {
    pd_ctl_json_key(json, "pipeline");
    pd_ctl_json_begin_object(json);
    pd_ctl_json_field_uint(json, "stages", (uint64_t)S);
    pd_ctl_json_field_uint(json, "micro_batches", (uint64_t)spec->training.micro_batches);
    pd_ctl_json_field_string(json, "schedule", schedule_name(spec));
    pd_ctl_json_field_double(json, "bubble",
                             pd_pipeline_bubble(S, (uint32_t)spec->training.micro_batches));
    pd_ctl_json_key(json, "stage_plan");
    pd_ctl_json_begin_array(json);
    for (int s = 0; s < S; s++) {
      pd_ctl_json_begin_object(json);
      pd_ctl_json_field_uint(json, "layer_begin", (uint64_t)rows[s].layer_begin);
      pd_ctl_json_field_uint(json, "layer_end", (uint64_t)rows[s].layer_end);
      pd_ctl_json_field_uint(json, "key_begin", rows[s].key_begin);
      pd_ctl_json_field_uint(json, "key_end", rows[s].key_end);
      pd_ctl_json_field_double(json, "flops_share", rows[s].flops_share);
      pd_ctl_json_field_uint(json, "activation_bytes_per_micro_batch", rows[s].activation_bytes);
      pd_ctl_json_field_uint(json, "max_in_flight", (uint64_t)rows[s].in_flight);
      pd_ctl_json_end_object(json);
    }
    pd_ctl_json_end_array(json);
    pd_ctl_json_end_object(json);
  }
  pd_ctl_json_field_string(json, "note", note);
  pd_ctl_json_key(json, "warnings");
  pd_ctl_json_begin_array(json);
  warnings(spec, p, cluster, json_warning, json);
  pd_ctl_json_end_array(json);
  pd_ctl_json_end_object(json);
}
