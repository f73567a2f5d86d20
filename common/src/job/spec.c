/* Job spec: parses the YAML a user submits into a pd_job_spec (libyaml's
 * document API) and validates it. One table of keys drives the parser, the
 * validator and every error message. */
#include "pando/spec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "pando/error.h"
#include "pando/util.h"

/* One YAML name of an enum value; each list ends with {0, NULL}. Shared by
 * the parser, the validator and the pd_*_name() functions. */
struct enum_name {
  int value;
  const char *name;
};

static const struct enum_name model_type_names[] = {{PD_MODEL_SOFTMAX, "softmax"},
                                                    {PD_MODEL_MLP, "mlp"},
                                                    {PD_MODEL_LINREG, "linreg"},
                                                    {PD_MODEL_LOGREG, "logreg"},
                                                    {PD_MODEL_LENET, "lenet"},
                                                    {PD_MODEL_PLUGIN, "plugin"},
                                                    {0, NULL}};
static const struct enum_name activation_names[] = {
    {PD_ACT_RELU, "relu"}, {PD_ACT_TANH, "tanh"}, {PD_ACT_SIGMOID, "sigmoid"}, {0, NULL}};
static const struct enum_name update_names[] = {{PD_UPDATE_BSP, "bsp"},
                                                {PD_UPDATE_ASP, "asp"},
                                                {PD_UPDATE_SSP, "ssp"},
                                                {PD_UPDATE_FEDAVG, "fedavg"},
                                                {0, NULL}};
static const struct enum_name aggregation_names[] = {{PD_AGG_FEDAVG, "fedavg"},
                                                     {PD_AGG_FEDAVGM, "fedavgm"},
                                                     {PD_AGG_FEDADAM, "fedadam"},
                                                     {PD_AGG_FEDYOGI, "fedyogi"},
                                                     {PD_AGG_FEDPROX, "fedprox"},
                                                     {PD_AGG_SCAFFOLD, "scaffold"},
                                                     {0, NULL}};
static const struct enum_name frequency_names[] = {
    {PD_FREQ_BATCH, "batch"}, {PD_FREQ_EPOCH, "epoch"}, {PD_FREQ_NBATCHES, "nbatches"}, {0, NULL}};
static const struct enum_name nonfinite_names[] = {
    {PD_NONFINITE_FAIL, "fail"}, {PD_NONFINITE_SKIP, "skip"}, {0, NULL}};
static const struct enum_name optimizer_names[] = {{PD_OPT_SGD, "sgd"},
                                                   {PD_OPT_MOMENTUM, "momentum"},
                                                   {PD_OPT_NESTEROV, "nesterov"},
                                                   {PD_OPT_ADAGRAD, "adagrad"},
                                                   {PD_OPT_RMSPROP, "rmsprop"},
                                                   {PD_OPT_ADAM, "adam"},
                                                   {0, NULL}};
static const struct enum_name partition_names[] = {
    {PD_PARTITION_DISJOINT_CONTIGUOUS, "disjoint_contiguous"},
    {PD_PARTITION_DISJOINT_ROUND_ROBIN, "disjoint_round_robin"},
    {PD_PARTITION_DISJOINT_RANDOM, "disjoint_random"},
    {PD_PARTITION_OVERLAP_RESHUFFLE, "overlap_reshuffle"},
    {PD_PARTITION_IID, "iid"},
    {PD_PARTITION_DIRICHLET, "dirichlet"},
    {PD_PARTITION_SHARDS, "shards"},
    {0, NULL}};
static const struct enum_name normalize_names[] = {{PD_NORMALIZE_NONE, "none"},
                                                   {PD_NORMALIZE_STANDARD, "standard"},
                                                   {PD_NORMALIZE_MINMAX, "minmax"},
                                                   {0, NULL}};
static const struct enum_name lr_schedule_names[] = {{PD_LR_CONSTANT, "constant"},
                                                     {PD_LR_STEP, "step"},
                                                     {PD_LR_EXPONENTIAL, "exponential"},
                                                     {PD_LR_COSINE, "cosine"},
                                                     {0, NULL}};
static const struct enum_name batch_schedule_names[] = {
    {PD_BATCH_CONSTANT, "constant"}, {PD_BATCH_INCREASE, "increase"}, {0, NULL}};
static const struct enum_name pipeline_schedule_names[] = {
    {PD_PIPELINE_GPIPE, "gpipe"}, {PD_PIPELINE_1F1B, "1f1b"}, {0, NULL}};
static const struct enum_name bool_names[] = {
    {0, "false"}, {1, "true"}, {0, "no"}, {1, "yes"}, {0, NULL}};
static const struct enum_name codec_names[] = {
    {PD_CODEC_NONE, "none"},       {PD_CODEC_FP16, "fp16"},           {PD_CODEC_BF16, "bf16"},
    {PD_CODEC_INT8, "int8"},       {PD_CODEC_ONEBIT, "onebit"},       {PD_CODEC_TOPK, "topk"},
    {PD_CODEC_RANDOMK, "randomk"}, {PD_CODEC_THRESHOLD, "threshold"}, {0, NULL}};
/* data.format is a string; these are the values it may take. */
static const struct enum_name format_names[] = {
    {1, "idx"}, {2, "csv"}, {3, "libsvm"}, {4, "synthetic"}, {0, NULL}};

/* Enum fields are read and written as int. */
_Static_assert(sizeof(enum pd_model_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_activation) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_update) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_optimizer_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_frequency) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_on_nonfinite) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_partition) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_normalize) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_lr_schedule) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_batch_schedule) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_aggregation) == sizeof(int), "enum size");
_Static_assert(sizeof(enum pd_codec) == sizeof(int), "enum size");

/* What is wrong with one key: `what` goes right after "path: ", `hint` (may
 * be empty) after the line number, as in
 * "training.update: unknown value 'bsq' (line 9); expected one of: bsp, asp". */
struct problem {
  char what[320];
  char hint[480];
};

static int problem(struct problem *pb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int problem(struct problem *pb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pb->what, sizeof pb->what, fmt, ap);
  va_end(ap);
  pb->hint[0] = '\0';
  return -1;
}

/* Appends to the NUL-terminated `buf` of `size` bytes, truncating. */
static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...) {
  size_t used = strlen(buf);
  if (used + 1 >= size)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, size - used, fmt, ap);
  va_end(ap);
}

static const char *enum_to_name(const struct enum_name *names, int value) {
  for (; names->name; names++)
    if (names->value == value)
      return names->name;
  return NULL;
}

static const struct enum_name *enum_from_name(const struct enum_name *names, const char *name) {
  for (; names->name; names++)
    if (strcmp(names->name, name) == 0)
      return names;
  return NULL;
}

static void names_hint(struct problem *pb, const struct enum_name *names) {
  snprintf(pb->hint, sizeof pb->hint, "expected one of: ");
  for (const struct enum_name *n = names; n->name; n++)
    append(pb->hint, sizeof pb->hint, "%s%s", n == names ? "" : ", ", n->name);
}

/* Rules that involve more than one field's own bounds. */
static int check_name(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  (void)path;
  (void)pathlen;
  const char *name = spec->name;
  size_t len = strlen(name);
  int ok = len >= 1 && len <= 63 && name[0] >= 'a' && name[0] <= 'z';
  for (size_t i = 1; ok && i < len; i++)
    ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-';
  if (ok)
    return 0;
  return problem(pb,
                 "must match [a-z][a-z0-9-]{0,62} (lowercase letters, digits and '-', starting "
                 "with a letter), got '%.80s'",
                 name);
}

static int check_layers(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  const pd_model_spec *m = &spec->model;
  if ((m->type == PD_MODEL_LINREG || m->type == PD_MODEL_LOGREG) &&
      (m->nlayers != 2 || m->layers[1] != 1))
    return problem(pb, "a %s model takes exactly 2 layers [inputs, 1], got %d layers",
                   enum_to_name(model_type_names, m->type), m->nlayers);
  if ((m->type == PD_MODEL_LENET || m->type == PD_MODEL_PLUGIN) && m->nlayers != 2)
    return problem(pb, "a %s model takes exactly 2 layers (inputs, outputs), got %d",
                   enum_to_name(model_type_names, m->type), m->nlayers);
  if (m->type == PD_MODEL_LENET) {
    long long product = 1;
    for (int i = 0; i < m->ninput_shape; i++)
      product *= m->input_shape[i];
    snprintf(path, pathlen, "model.input_shape");
    if (m->ninput_shape != 3 || product != m->layers[0])
      return problem(pb,
                     "lenet's inputs (%d) must equal model.input_shape's channels x height x "
                     "width (%lld)",
                     m->layers[0], m->ninput_shape == 3 ? product : 0);
    if (m->input_shape[1] % 4 != 0 || m->input_shape[2] % 4 != 0)
      return problem(pb, "lenet pools twice by 2: model.input_shape's height and width must be "
                         "multiples of 4");
  }
  if (m->type == PD_MODEL_PLUGIN && !m->path[0]) {
    snprintf(path, pathlen, "model.path");
    return problem(pb, "required for a plugin model (the shared object)");
  }
  snprintf(path, pathlen, "model.layers");
  if (spec->model.type == PD_MODEL_SOFTMAX && spec->model.nlayers != 2)
    return problem(pb, "a softmax model takes exactly 2 layers (inputs, classes), got %d",
                   spec->model.nlayers);
  return 0;
}

/* K_RAW_MAP: a mapping of any keys with scalar values, stored as
 * "key=value\n" lines in a char[] field (a plugin's own configuration). */
enum key_kind { K_MAP, K_STRING, K_INT, K_UINT64, K_DOUBLE, K_ENUM, K_INT_LIST, K_RAW_MAP };

/* One key of the job spec. */
struct spec_key {
  const char *path;              /* full key path, e.g. "training.optimizer.lr" */
  enum key_kind kind;            /* K_MAP: a mapping of the keys under it */
  size_t offset, size;           /* the field in pd_job_spec (not for K_MAP) */
  int required;                  /* must be present whenever its parent mapping is */
  const char *default_value;     /* parsed like a YAML value before the document */
  const struct enum_name *names; /* K_ENUM values; allowed K_STRING values */
  double min, max;               /* bounds of a K_INT, K_DOUBLE or each K_INT_LIST entry */
  int min_exclusive;             /* min itself is out of range */
  size_t count_offset;           /* K_INT_LIST: the int that counts its entries */
  int min_count, max_count;      /* K_INT_LIST: bounds of that count */
  int central_only;              /* `required` only for data-centre jobs (not fedavg) */
  /* extra rule, or NULL; it may narrow `path` to the key at fault */
  int (*check)(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen);
};

/* An increasing batch size must have room to grow. */
static int check_batch_schedule(const pd_job_spec *spec, struct problem *pb, char *path,
                                size_t pathlen) {
  if (spec->training.batch_schedule.type != PD_BATCH_INCREASE ||
      spec->training.batch_schedule.max_batch_size >= spec->training.batch_size)
    return 0;
  snprintf(path, pathlen, "training.batch_schedule.max_batch_size");
  return problem(pb, "must be >= training.batch_size (%d) when the batch size increases, got %d",
                 spec->training.batch_size, spec->training.batch_schedule.max_batch_size);
}

/* Which data keys a format uses. */
static int check_data(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  const char *f = spec->data.format;
  int idx = strcmp(f, "idx") == 0, synthetic = strcmp(f, "synthetic") == 0;
  const pd_data_files *train = &spec->data.train, *test = &spec->data.test;
#define AT(key) snprintf(path, pathlen, "%s", key)
  if (synthetic) {
    const pd_synthetic_spec *sy = &spec->data.synthetic;
    if (train->features[0] || test->features[0])
      return AT("data.train"), problem(pb, "not used with format synthetic (set data.synthetic)");
    if (sy->rows == 0)
      return AT("data.synthetic.rows"), problem(pb, "required for format synthetic (>= 1)");
    if (sy->features <= 0)
      return AT("data.synthetic.features"), problem(pb, "required for format synthetic (>= 1)");
    if (sy->nnz <= 0 || sy->nnz > sy->features)
      return AT("data.synthetic.nnz_per_row"),
             problem(pb, "must be between 1 and data.synthetic.features (%d), got %d", sy->features,
                     sy->nnz);
    return 0;
  }
  if (!train->features[0])
    return AT("data.train.features"), problem(pb, "required for format %s", f);
  if (idx && !train->labels[0])
    return AT("data.train.labels"), problem(pb, "required for format idx");
  if (test->labels[0] && !test->features[0])
    return AT("data.test.features"), problem(pb, "required with data.test.labels");
  if (idx && test->features[0] && !test->labels[0])
    return AT("data.test.labels"), problem(pb, "required for format idx with data.test.features");
  if (!idx && (train->labels[0] || test->labels[0]))
    return AT(train->labels[0] ? "data.train.labels" : "data.test.labels"),
           problem(pb,
                   "not used with format %s: the label is in the file (data.label_column "
                   "for csv)",
                   f);
#undef AT
  return 0;
}

/* training.staleness belongs to ssp. */
static int check_staleness(const pd_job_spec *spec, struct problem *pb, char *path,
                           size_t pathlen) {
  (void)path, (void)pathlen;
  if (spec->training.staleness == 0 || spec->training.update == PD_UPDATE_SSP)
    return 0;
  return problem(pb, "only used with training.update ssp, got %d with update %s",
                 spec->training.staleness, enum_to_name(update_names, spec->training.update));
}

/* Backup workers belong to bsp, and N + b workers must fit the cluster. */
static int check_backup_workers(const pd_job_spec *spec, struct problem *pb, char *path,
                                size_t pathlen) {
  (void)path, (void)pathlen;
  int b = spec->training.backup_workers;
  if (b == 0)
    return 0;
  if (spec->training.update != PD_UPDATE_BSP)
    return problem(pb, "only used with training.update bsp, got %d with update %s", b,
                   enum_to_name(update_names, spec->training.update));
  if (spec->cluster.workers + b > 4096)
    return problem(pb, "cluster.workers + backup_workers must be <= 4096, got %d + %d",
                   spec->cluster.workers, b);
  return 0;
}

/* training.nbatches belongs to frequency nbatches. */
static int check_nbatches(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  (void)path, (void)pathlen;
  if (spec->training.nbatches == 1 || spec->training.frequency == PD_FREQ_NBATCHES)
    return 0;
  return problem(pb, "only used with training.frequency nbatches, got %d with frequency %s",
                 spec->training.nbatches, enum_to_name(frequency_names, spec->training.frequency));
}

/* Hogwild threads share the batches between a pull and the next push. */
static int check_threads(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  (void)path, (void)pathlen;
  int t = spec->training.threads;
  if (t == 1 || spec->training.frequency == PD_FREQ_EPOCH ||
      (spec->training.frequency == PD_FREQ_NBATCHES && spec->training.nbatches >= t))
    return 0;
  return problem(pb,
                 "%d threads share the batches between a pull and a push: they need "
                 "training.frequency epoch, or nbatches with training.nbatches >= %d (got "
                 "frequency %s, nbatches %d)",
                 t, t, enum_to_name(frequency_names, spec->training.frequency),
                 spec->training.nbatches);
}

/* A pipeline (cluster.stages S > 1) splits an mlp's affine layers into S
 * groups of at least one layer, and is built for BSP with a pull and a push
 * of each stage's keys every mini-batch (README "Pipelines"). */
static int check_stages(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  (void)path, (void)pathlen;
  int S = spec->cluster.stages;
  if (S == 1)
    return 0;
  if (spec->model.type != PD_MODEL_MLP)
    return problem(pb, "%d stages split an mlp's layers; model.type %s is not split", S,
                   enum_to_name(model_type_names, spec->model.type));
  if (S > spec->model.nlayers - 1)
    return problem(pb,
                   "%d stages need at least one affine layer each; model.layers (%d widths) has "
                   "%d",
                   S, spec->model.nlayers, spec->model.nlayers - 1);
  if (spec->model.dropout > 0.0)
    return problem(pb, "pipeline stages do not take model.dropout yet, got dropout %g",
                   spec->model.dropout);
  if (spec->training.update != PD_UPDATE_BSP)
    return problem(pb, "pipeline stages need training.update bsp, got update %s",
                   enum_to_name(update_names, spec->training.update));
  if (spec->training.frequency != PD_FREQ_BATCH || spec->training.threads != 1 ||
      spec->training.backup_workers != 0)
    return problem(pb,
                   "pipeline stages need training.frequency batch, threads 1 and no "
                   "backup_workers, got frequency %s, threads %d, backup_workers %d",
                   enum_to_name(frequency_names, spec->training.frequency), spec->training.threads,
                   spec->training.backup_workers);
  if ((int64_t)spec->cluster.workers * S > 4096)
    return problem(pb, "cluster.workers x stages must be <= 4096, got %d x %d",
                   spec->cluster.workers, S);
  return 0;
}

/* Micro-batches cut a mini-batch of a pipeline; there must be rows for each. */
static int check_micro_batches(const pd_job_spec *spec, struct problem *pb, char *path,
                               size_t pathlen) {
  (void)path, (void)pathlen;
  int m = spec->training.micro_batches;
  if (m == 1)
    return 0;
  if (spec->cluster.stages == 1)
    return problem(pb, "only used with cluster.stages > 1, got %d with stages 1", m);
  if (m > spec->training.batch_size)
    return problem(pb, "must be <= training.batch_size (%d): each micro-batch needs a row, got %d",
                   spec->training.batch_size, m);
  return 0;
}

static int federated(const pd_job_spec *spec) { return spec->training.update == PD_UPDATE_FEDAVG; }

/* training.compression: a pull has no error feedback, so only the dense
 * codecs that keep every value may encode it; momentum correction belongs
 * to topk; federated devices push model deltas uncompressed. */
static int check_compression(const pd_job_spec *spec, struct problem *pb, char *path,
                             size_t pathlen) {
  enum pd_codec push = spec->training.compression.push, pull = spec->training.compression.pull;
  if (push == PD_CODEC_NONE && pull == PD_CODEC_NONE)
    return 0;
  snprintf(path, pathlen, "training.compression");
  if (federated(spec))
    return problem(pb, "not used with training.update fedavg, got push %s, pull %s",
                   enum_to_name(codec_names, push), enum_to_name(codec_names, pull));
  snprintf(path, pathlen, "training.compression.pull");
  if (pull != PD_CODEC_NONE && pull != PD_CODEC_FP16 && pull != PD_CODEC_BF16 &&
      pull != PD_CODEC_INT8)
    return problem(pb,
                   "must be none, fp16, bf16 or int8 (a pulled model has no error feedback), "
                   "got %s",
                   enum_to_name(codec_names, pull));
  snprintf(path, pathlen, "training.compression.momentum_correction");
  if (spec->training.compression.momentum_correction > 0 && push != PD_CODEC_TOPK)
    return problem(pb, "only used with push topk, got push %s", enum_to_name(codec_names, push));
  return 0;
}

/* The device partitions are for simulated federated devices; the data-centre
 * schemes split rows over workers. */
static int check_partition(const pd_job_spec *spec, struct problem *pb, char *path,
                           size_t pathlen) {
  (void)path, (void)pathlen;
  enum pd_partition p = spec->data.partition;
  int device_scheme =
      p == PD_PARTITION_IID || p == PD_PARTITION_DIRICHLET || p == PD_PARTITION_SHARDS;
  if (device_scheme && !federated(spec))
    return problem(pb,
                   "%s splits data over simulated devices: only used with training.update "
                   "fedavg, got update %s",
                   enum_to_name(partition_names, p),
                   enum_to_name(update_names, spec->training.update));
  return 0;
}

/* training.federated belongs to fedavg, which needs its rounds; K is a
 * count (an integer) or a fraction below 1; a round cannot need more reports
 * than it selects devices. */
static int check_federated(const pd_job_spec *spec, struct problem *pb, char *path,
                           size_t pathlen) {
  const double k = spec->training.federated.clients_per_round;
  int rounds = spec->training.federated.rounds, m = spec->training.federated.min_reports;
  snprintf(path, pathlen, "training.federated.rounds");
  if (federated(spec) && rounds == 0)
    return problem(pb, "required with training.update fedavg (the rounds to commit, >= 1)");
  if (!federated(spec)) {
    if (rounds == 0)
      return 0;
    return problem(pb, "training.federated is only used with training.update fedavg, got update %s",
                   enum_to_name(update_names, spec->training.update));
  }
  snprintf(path, pathlen, "training.federated.swa_from");
  if (spec->training.federated.swa_from > rounds)
    return problem(pb, "must be <= training.federated.rounds (%d), got %d", rounds,
                   spec->training.federated.swa_from);
  snprintf(path, pathlen, "training.optimizer.type");
  if (spec->training.federated.aggregation == PD_AGG_SCAFFOLD &&
      spec->training.optimizer.type != PD_OPT_SGD)
    return problem(pb,
                   "training.federated.aggregation scaffold needs the devices' local optimizer "
                   "sgd (its control variates correct plain SGD steps), got %s",
                   pd_optimizer_name(spec->training.optimizer.type));
  snprintf(path, pathlen, "training.federated.clients_per_round");
  if (k >= 1 && k != floor(k))
    return problem(pb, "a number of devices (an integer >= 1) or a fraction in (0, 1), got %g", k);
  snprintf(path, pathlen, "training.federated.min_reports");
  if (k >= 1 && m > 0 && (uint32_t)m > pd_spec_round_selected(spec, 0))
    return problem(pb,
                   "must be <= the devices a round selects, ceil(over_selection %g x "
                   "clients_per_round %g) = %u, got %d",
                   spec->training.federated.over_selection, k, pd_spec_round_selected(spec, 0), m);
  return 0;
}

/* Eligibility attributes: comma-separated names of [a-z0-9_-]. */
static int check_require(const pd_job_spec *spec, struct problem *pb, char *path, size_t pathlen) {
  (void)path, (void)pathlen;
  const char *r = spec->training.federated.require;
  for (const char *c = r; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ||
          *c == ','))
      return problem(pb, "comma-separated attribute names of [a-z0-9_-], got '%.80s'", r);
  return 0;
}

#define FIELD(member) offsetof(pd_job_spec, member), sizeof(((pd_job_spec *)0)->member)

static const struct spec_key keys[] = {
    {"name", K_STRING, FIELD(name), .required = 1, .check = check_name},
    {"model", K_MAP, .required = 1},
    {"model.type", K_ENUM, FIELD(model.type), .required = 1, .names = model_type_names},
    {"model.layers", K_INT_LIST, FIELD(model.layers), .required = 1, .min = 1, .max = 1000000000,
     .count_offset = offsetof(pd_job_spec, model.nlayers), .min_count = 2,
     .max_count = PD_MAX_LAYERS, .check = check_layers},
    {"model.activation", K_ENUM, FIELD(model.activation), .default_value = "relu",
     .names = activation_names},
    {"model.seed", K_UINT64, FIELD(model.seed), .default_value = "0"},
    {"model.dropout", K_DOUBLE, FIELD(model.dropout), .default_value = "0", .min = 0, .max = 0.99},
    {"model.input_shape", K_INT_LIST, FIELD(model.input_shape), .min = 1, .max = 100000,
     .count_offset = offsetof(pd_job_spec, model.ninput_shape), .min_count = 0, .max_count = 3},
    {"model.path", K_STRING, FIELD(model.path), .default_value = ""},
    {"model.config", K_RAW_MAP, FIELD(model.config), .required = 0},
    {"model.init", K_STRING, FIELD(model.init), .default_value = ""},
    {"data", K_MAP, .required = 1},
    {"data.format", K_STRING, FIELD(data.format), .default_value = "idx", .names = format_names,
     .check = check_data},
    {"data.train", K_MAP, .required = 0},
    {"data.train.features", K_STRING, FIELD(data.train.features), .required = 0},
    {"data.train.labels", K_STRING, FIELD(data.train.labels), .required = 0},
    {"data.test", K_MAP, .required = 0}, /* optional: no test set, no evaluation */
    {"data.test.features", K_STRING, FIELD(data.test.features), .required = 0},
    {"data.test.labels", K_STRING, FIELD(data.test.labels), .required = 0},
    {"data.partition", K_ENUM, FIELD(data.partition), .default_value = "disjoint_contiguous",
     .names = partition_names, .check = check_partition},
    {"data.alpha", K_DOUBLE, FIELD(data.alpha), .default_value = "0.5", .min = 0,
     .min_exclusive = 1, .max = 1e9},
    {"data.shards_per_device", K_INT, FIELD(data.shards_per_device), .default_value = "2", .min = 1,
     .max = 1000},
    {"data.seed", K_UINT64, FIELD(data.seed), .default_value = "0"},
    {"data.normalize", K_ENUM, FIELD(data.normalize), .default_value = "none",
     .names = normalize_names},
    {"data.label_column", K_STRING, FIELD(data.label_column), .default_value = "0"},
    {"data.header", K_ENUM, FIELD(data.header), .default_value = "false", .names = bool_names},
    {"data.synthetic", K_MAP, .required = 0},
    {"data.synthetic.rows", K_UINT64, FIELD(data.synthetic.rows), .default_value = "0"},
    {"data.synthetic.test_rows", K_UINT64, FIELD(data.synthetic.test_rows), .default_value = "0"},
    {"data.synthetic.features", K_INT, FIELD(data.synthetic.features), .default_value = "0",
     .min = 0, .max = 2000000000},
    {"data.synthetic.nnz_per_row", K_INT, FIELD(data.synthetic.nnz), .default_value = "0", .min = 0,
     .max = 1000000},
    {"data.synthetic.seed", K_UINT64, FIELD(data.synthetic.seed), .default_value = "0"},
    {"training", K_MAP, .required = 1},
    {"training.epochs", K_INT, FIELD(training.epochs), .required = 1, .central_only = 1,
     .default_value = "1", .min = 1, .max = 100000},
    {"training.batch_size", K_INT, FIELD(training.batch_size), .required = 1, .central_only = 1,
     .default_value = "1", .min = 1, .max = 65536, .check = check_batch_schedule},
    {"training.update", K_ENUM, FIELD(training.update), .default_value = "bsp",
     .names = update_names, .check = check_federated},
    {"training.staleness", K_INT, FIELD(training.staleness), .default_value = "0", .min = 0,
     .max = 1000000, .check = check_staleness},
    {"training.backup_workers", K_INT, FIELD(training.backup_workers), .default_value = "0",
     .min = 0, .max = 4095, .check = check_backup_workers},
    {"training.frequency", K_ENUM, FIELD(training.frequency), .default_value = "batch",
     .names = frequency_names},
    {"training.on_nonfinite", K_ENUM, FIELD(training.on_nonfinite), .default_value = "fail",
     .names = nonfinite_names},
    {"training.nbatches", K_INT, FIELD(training.nbatches), .default_value = "1", .min = 1,
     .max = 1000000, .check = check_nbatches},
    {"training.threads", K_INT, FIELD(training.threads), .default_value = "1", .min = 1, .max = 256,
     .check = check_threads},
    {"training.micro_batches", K_INT, FIELD(training.micro_batches), .default_value = "1", .min = 1,
     .max = 65536, .check = check_micro_batches},
    {"training.pipeline_schedule", K_ENUM, FIELD(training.pipeline_schedule),
     .default_value = "gpipe", .names = pipeline_schedule_names},
    {"training.shuffle", K_ENUM, FIELD(training.shuffle), .default_value = "false",
     .names = bool_names},
    {"training.lr_schedule", K_MAP, .required = 0},
    {"training.lr_schedule.type", K_ENUM, FIELD(training.lr_schedule.type),
     .default_value = "constant", .names = lr_schedule_names},
    {"training.lr_schedule.step_epochs", K_INT, FIELD(training.lr_schedule.step_epochs),
     .default_value = "1", .min = 1, .max = 100000},
    {"training.lr_schedule.gamma", K_DOUBLE, FIELD(training.lr_schedule.gamma),
     .default_value = "0.1", .min = 0, .min_exclusive = 1, .max = 1},
    {"training.lr_schedule.min_lr", K_DOUBLE, FIELD(training.lr_schedule.min_lr),
     .default_value = "0", .min = 0, .max = INFINITY},
    {"training.batch_schedule", K_MAP, .required = 0},
    {"training.batch_schedule.type", K_ENUM, FIELD(training.batch_schedule.type),
     .default_value = "constant", .names = batch_schedule_names},
    {"training.batch_schedule.step_epochs", K_INT, FIELD(training.batch_schedule.step_epochs),
     .default_value = "1", .min = 1, .max = 100000},
    {"training.batch_schedule.factor", K_DOUBLE, FIELD(training.batch_schedule.factor),
     .default_value = "2", .min = 1, .max = 1000},
    {"training.batch_schedule.max_batch_size", K_INT, FIELD(training.batch_schedule.max_batch_size),
     .default_value = "65536", .min = 1, .max = 65536},
    {"training.optimizer", K_MAP, .required = 1},
    {"training.optimizer.type", K_ENUM, FIELD(training.optimizer.type), .default_value = "sgd",
     .names = optimizer_names},
    {"training.optimizer.lr", K_DOUBLE, FIELD(training.optimizer.lr), .required = 1, .min = 0,
     .min_exclusive = 1, .max = INFINITY},
    {"training.optimizer.momentum", K_DOUBLE, FIELD(training.optimizer.momentum),
     .default_value = "0.9", .min = 0, .max = 0.999999},
    {"training.optimizer.beta1", K_DOUBLE, FIELD(training.optimizer.beta1), .default_value = "0.9",
     .min = 0, .max = 0.999999},
    {"training.optimizer.beta2", K_DOUBLE, FIELD(training.optimizer.beta2),
     .default_value = "0.999", .min = 0, .max = 0.999999999},
    {"training.optimizer.epsilon", K_DOUBLE, FIELD(training.optimizer.epsilon),
     .default_value = "1e-8", .min = 0, .min_exclusive = 1, .max = 1},
    {"training.optimizer.weight_decay", K_DOUBLE, FIELD(training.optimizer.weight_decay),
     .default_value = "0", .min = 0, .max = INFINITY},
    {"training.optimizer.decay_rate", K_DOUBLE, FIELD(training.optimizer.decay_rate),
     .default_value = "0.9", .min = 0, .max = 0.999999999},
    {"training.compression", K_MAP, .required = 0},
    {"training.compression.push", K_ENUM, FIELD(training.compression.push), .default_value = "none",
     .names = codec_names},
    {"training.compression.pull", K_ENUM, FIELD(training.compression.pull), .default_value = "none",
     .names = codec_names},
    {"training.compression.block", K_INT, FIELD(training.compression.block), .default_value = "0",
     .min = 0, .max = 16777216},
    {"training.compression.ratio", K_DOUBLE, FIELD(training.compression.ratio),
     .default_value = "0.01", .min = 0, .min_exclusive = 1, .max = 1},
    {"training.compression.threshold", K_DOUBLE, FIELD(training.compression.threshold),
     .default_value = "0.001", .min = 0, .min_exclusive = 1, .max = INFINITY},
    {"training.compression.error_feedback", K_ENUM, FIELD(training.compression.error_feedback),
     .default_value = "true", .names = bool_names},
    {"training.compression.momentum_correction", K_DOUBLE,
     FIELD(training.compression.momentum_correction), .default_value = "0", .min = 0, .max = 0.999},
    {"training.federated", K_MAP, .required = 0},
    {"training.federated.rounds", K_INT, FIELD(training.federated.rounds), .default_value = "0",
     .min = 0, .max = 1000000},
    {"training.federated.clients_per_round", K_DOUBLE, FIELD(training.federated.clients_per_round),
     .default_value = "10", .min = 0, .min_exclusive = 1, .max = 1000000},
    {"training.federated.over_selection", K_DOUBLE, FIELD(training.federated.over_selection),
     .default_value = "1.3", .min = 1, .max = 10},
    {"training.federated.min_reports", K_INT, FIELD(training.federated.min_reports),
     .default_value = "0", .min = 0, .max = 1000000},
    {"training.federated.round_timeout", K_DOUBLE, FIELD(training.federated.round_timeout_sec),
     .default_value = "60", .min = 0, .min_exclusive = 1, .max = 86400},
    {"training.federated.selection_timeout", K_DOUBLE,
     FIELD(training.federated.selection_timeout_sec), .default_value = "10", .min = 0,
     .max = 86400},
    {"training.federated.max_attempts", K_INT, FIELD(training.federated.max_attempts),
     .default_value = "3", .min = 1, .max = 1000},
    {"training.federated.local_epochs", K_INT, FIELD(training.federated.local_epochs),
     .default_value = "1", .min = 1, .max = 10000},
    {"training.federated.local_batch_size", K_INT, FIELD(training.federated.local_batch_size),
     .default_value = "10", .min = 0, .max = 65536},
    {"training.federated.aggregation", K_ENUM, FIELD(training.federated.aggregation),
     .default_value = "fedavg", .names = aggregation_names},
    {"training.federated.server_lr", K_DOUBLE, FIELD(training.federated.server_lr),
     .default_value = "1", .min = 0, .min_exclusive = 1, .max = 1000},
    {"training.federated.server_momentum", K_DOUBLE, FIELD(training.federated.server_momentum),
     .default_value = "0.9", .min = 0, .max = 0.999999},
    {"training.federated.beta1", K_DOUBLE, FIELD(training.federated.beta1), .default_value = "0.9",
     .min = 0, .max = 0.999999},
    {"training.federated.beta2", K_DOUBLE, FIELD(training.federated.beta2), .default_value = "0.99",
     .min = 0, .max = 0.999999999},
    {"training.federated.tau", K_DOUBLE, FIELD(training.federated.tau), .default_value = "1e-3",
     .min = 0, .min_exclusive = 1, .max = 10},
    {"training.federated.mu", K_DOUBLE, FIELD(training.federated.mu), .default_value = "0.01",
     .min = 0, .max = 1000},
    {"training.federated.swa_from", K_INT, FIELD(training.federated.swa_from), .default_value = "0",
     .min = 0, .max = 1000000},
    {"training.federated.eval_every", K_INT, FIELD(training.federated.eval_every),
     .default_value = "1", .min = 1, .max = 1000000},
    {"training.federated.seed", K_UINT64, FIELD(training.federated.seed), .default_value = "0"},
    {"training.federated.require", K_STRING, FIELD(training.federated.require), .default_value = "",
     .check = check_require},
    {"cluster", K_MAP, .required = 1},
    {"cluster.servers", K_INT, FIELD(cluster.servers), .required = 1, .min = 1, .max = 1024},
    {"cluster.workers", K_INT, FIELD(cluster.workers), .required = 1, .central_only = 1,
     .default_value = "1", .min = 1, .max = 4096},
    {"cluster.stages", K_INT, FIELD(cluster.stages), .default_value = "1", .min = 1,
     .max = PD_MAX_LAYERS - 1, .check = check_stages},
    {"cluster.wait_timeout", K_DOUBLE, FIELD(cluster.wait_timeout_sec), .default_value = "60",
     .min = 0, .min_exclusive = 1, .max = INFINITY},
    {"checkpoint", K_MAP, .required = 0},
    {"checkpoint.every_epochs", K_INT, FIELD(checkpoint.every_epochs), .default_value = "0",
     .min = 0, .max = 100000},
    {"checkpoint.every_clocks", K_INT, FIELD(checkpoint.every_clocks), .default_value = "0",
     .min = 0, .max = 2000000000},
    {"checkpoint.every_seconds", K_DOUBLE, FIELD(checkpoint.every_seconds), .default_value = "0",
     .min = 0, .max = 31536000},
    {"checkpoint.keep", K_INT, FIELD(checkpoint.keep), .default_value = "2", .min = 1, .max = 1000},
    {"simulation", K_MAP, .required = 0},
    {"simulation.devices", K_INT, FIELD(simulation.devices), .default_value = "0", .min = 0,
     .max = 1000000},
    {"simulation.dropout_rate", K_DOUBLE, FIELD(simulation.dropout_rate), .default_value = "0",
     .min = 0, .max = 1},
    {"simulation.slow_fraction", K_DOUBLE, FIELD(simulation.slow_fraction), .default_value = "0",
     .min = 0, .max = 1},
    {"simulation.slowdown", K_DOUBLE, FIELD(simulation.slowdown), .default_value = "10", .min = 1,
     .max = 1000},
    {"simulation.seed", K_UINT64, FIELD(simulation.seed), .default_value = "0"},
};

#define NKEYS PD_ARRAY_SIZE(keys)

/* ---- the key table as a tree: a key's parent is its path minus the last part */

static const char *last_part(const char *path) {
  const char *dot = strrchr(path, '.');
  return dot ? dot + 1 : path;
}

/* Returns the index of the mapping `i` lives in, or -1 for the top level. */
static int parent_of(int i) {
  const char *path = keys[i].path;
  size_t len = (size_t)(last_part(path) - path);
  if (len == 0)
    return -1;
  for (int p = 0; p < (int)NKEYS; p++)
    if (strlen(keys[p].path) == len - 1 && strncmp(keys[p].path, path, len - 1) == 0)
      return p;
  PD_ASSERT(!"key table: parent missing");
  return -1;
}

static int find_child(int parent, const char *name) {
  for (int i = 0; i < (int)NKEYS; i++)
    if (parent_of(i) == parent && strcmp(last_part(keys[i].path), name) == 0)
      return i;
  return -1;
}

static void children_hint(struct problem *pb, int parent) {
  snprintf(pb->hint, sizeof pb->hint, "expected one of: ");
  const char *sep = "";
  for (int i = 0; i < (int)NKEYS; i++)
    if (parent_of(i) == parent) {
      append(pb->hint, sizeof pb->hint, "%s%s", sep, last_part(keys[i].path));
      sep = ", ";
    }
}

/* ---- field access */

static void *field_of(pd_job_spec *spec, const struct spec_key *key) {
  return (char *)spec + key->offset;
}
static const void *cfield_of(const pd_job_spec *spec, const struct spec_key *key) {
  return (const char *)spec + key->offset;
}
static int get_int(const void *p) {
  int v;
  memcpy(&v, p, sizeof v);
  return v;
}
static void set_int(void *p, int v) { memcpy(p, &v, sizeof v); }

/* ---- values */

static const char *kind_noun(enum key_kind kind) {
  switch (kind) {
  case K_MAP:
    return "a mapping";
  case K_STRING:
  case K_ENUM:
    return "a string";
  case K_INT:
  case K_UINT64:
    return "an integer";
  case K_DOUBLE:
    return "a number";
  case K_INT_LIST:
    return "a list of integers";
  case K_RAW_MAP:
    return "a mapping";
  }
  return "?";
}

/* Checks `value` (shown to the user as `shown`) against the key's bounds. */
static int check_number(const struct spec_key *key, double value, const char *shown,
                        struct problem *pb) {
  if (!isfinite(value) && key->kind == K_DOUBLE)
    return problem(pb, "must be a finite number, got %s", shown);
  int below = key->min_exclusive ? !(value > key->min) : !(value >= key->min);
  if (!below && !(value > key->max))
    return 0;
  if (isinf(key->max))
    return problem(pb, "must be %s %.15g, got %s", key->min_exclusive ? ">" : ">=", key->min,
                   shown);
  return problem(pb, "must be between %.15g and %.15g, got %s", key->min, key->max, shown);
}

static int count_problem(const struct spec_key *key, int count, struct problem *pb) {
  return problem(pb, "expected %d to %d entries, got %d", key->min_count, key->max_count, count);
}

/* Parses a decimal integer: 0, -1 when `text` is not one, -2 when it
 * overflows (then *out is LLONG_MIN or LLONG_MAX). */
static int parse_integer(const char *text, long long *out) {
  char *end;
  if (!text[0] || isspace((unsigned char)text[0]))
    return -1;
  errno = 0;
  *out = strtoll(text, &end, 10);
  if (end == text || *end)
    return -1;
  return errno == ERANGE ? -2 : 0;
}

/* Stores the value `text` into the field of `key` (not K_MAP/K_INT_LIST). */
static int set_value(pd_job_spec *spec, const struct spec_key *key, const char *text,
                     struct problem *pb) {
  void *field = field_of(spec, key);
  long long integer;
  char *end;
  switch (key->kind) {
  case K_STRING:
    if (strlen(text) >= key->size)
      return problem(pb, "longer than %zu characters", key->size - 1);
    pd_strlcpy(field, text, key->size);
    return 0;
  case K_INT: {
    int rc = parse_integer(text, &integer);
    if (rc == -1)
      return problem(pb, "expected an integer, got '%.80s'", text);
    double value = rc == -2 ? (integer < 0 ? -HUGE_VAL : HUGE_VAL) : (double)integer;
    if (check_number(key, value, text, pb) != 0)
      return -1;
    set_int(field, (int)integer);
    return 0;
  }
  case K_UINT64: {
    if (!text[0] || isspace((unsigned char)text[0]) || text[0] == '-') {
      if (parse_integer(text, &integer) == -1)
        return problem(pb, "expected an integer, got '%.80s'", text);
      return problem(pb, "must be between 0 and %" PRIu64 ", got %.80s", UINT64_MAX, text);
    }
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (*end)
      return problem(pb, "expected an integer, got '%.80s'", text);
    if (errno == ERANGE)
      return problem(pb, "must be between 0 and %" PRIu64 ", got %.80s", UINT64_MAX, text);
    uint64_t u = (uint64_t)value;
    memcpy(field, &u, sizeof u);
    return 0;
  }
  case K_DOUBLE: {
    if (!text[0] || isspace((unsigned char)text[0]))
      return problem(pb, "expected a number, got '%.80s'", text);
    double value = strtod(text, &end);
    if (*end)
      return problem(pb, "expected a number, got '%.80s'", text);
    if (check_number(key, value, text, pb) != 0)
      return -1;
    memcpy(field, &value, sizeof value);
    return 0;
  }
  case K_ENUM: {
    const struct enum_name *found = enum_from_name(key->names, text);
    if (!found) {
      problem(pb, "unknown value '%.80s'", text);
      names_hint(pb, key->names);
      return -1;
    }
    set_int(field, found->value);
    return 0;
  }
  case K_MAP:
  case K_RAW_MAP:
  case K_INT_LIST:
    break;
  }
  PD_ASSERT(!"set_value: not a scalar key");
  return -1;
}

/* Formats the error for the key at `path` (may be "") found at `line` (1-based, 0: unknown). */
static int fail(char *err, size_t errlen, const char *path, int line, const struct problem *pb) {
  char at[32] = "";
  if (line > 0)
    snprintf(at, sizeof at, " (line %d)", line);
  return pd_errf(err, errlen, -PD_EINVAL_SPEC, "%s%s%s%s%s%s", path, path[0] ? ": " : "", pb->what,
                 at, pb->hint[0] ? "; " : "", pb->hint);
}

/* ---- validation (also of specs built in code) */

/* Whether the mapping `m` is in use: required ones always are (if their
 * parent is), optional ones (data.test) when one of their strings is set. */
static int in_use(const pd_job_spec *spec, int m) {
  if (m < 0)
    return 1;
  if (keys[m].required)
    return in_use(spec, parent_of(m));
  for (int i = 0; i < (int)NKEYS; i++)
    if (parent_of(i) == m && keys[i].kind == K_STRING && *(const char *)cfield_of(spec, &keys[i]))
      return in_use(spec, parent_of(m));
  return 0;
}

/* Checks one field against the table; on failure `path` may be narrowed to
 * a list entry ("model.layers[2]"). */
static int check_field(const pd_job_spec *spec, const struct spec_key *key, char *path,
                       size_t pathlen, struct problem *pb) {
  const void *field = cfield_of(spec, key);
  char shown[64];
  switch (key->kind) {
  case K_STRING:
    if (!memchr(field, '\0', key->size))
      return problem(pb, "not NUL-terminated");
    if (key->required && !*(const char *)field)
      return problem(pb, "required");
    if (key->names && !enum_from_name(key->names, field)) {
      problem(pb, "unknown value '%.80s'", (const char *)field);
      names_hint(pb, key->names);
      return -1;
    }
    return 0;
  case K_INT:
    snprintf(shown, sizeof shown, "%d", get_int(field));
    return check_number(key, get_int(field), shown, pb);
  case K_DOUBLE: {
    double value;
    memcpy(&value, field, sizeof value);
    snprintf(shown, sizeof shown, "%.15g", value);
    return check_number(key, value, shown, pb);
  }
  case K_ENUM:
    if (!enum_to_name(key->names, get_int(field))) {
      problem(pb, "unknown value %d", get_int(field));
      names_hint(pb, key->names);
      return -1;
    }
    return 0;
  case K_INT_LIST: {
    int count = get_int((const char *)spec + key->count_offset);
    if (count < key->min_count || count > key->max_count)
      return count_problem(key, count, pb);
    for (int j = 0; j < count; j++) {
      int value = get_int((const int *)field + j);
      snprintf(shown, sizeof shown, "%d", value);
      if (check_number(key, value, shown, pb) != 0) {
        snprintf(path, pathlen, "%s[%d]", key->path, j);
        return -1;
      }
    }
    return 0;
  }
  case K_UINT64:
  case K_RAW_MAP:
  case K_MAP:
    return 0;
  }
  return 0;
}

/* The line to show for a problem at `path` found by key `i`'s rules: the
 * line of that key, or of its nearest mapping that appeared. */
static int line_of(const char *path, const int *line, int i) {
  for (int k = 0; k < (int)NKEYS; k++)
    if (strcmp(keys[k].path, path) == 0) {
      for (int m = k; m >= 0; m = parent_of(m))
        if (line[m])
          return line[m];
      return 0;
    }
  return line[i];
}

int pd_job_spec_checkpoints(const pd_job_spec *spec) {
  return spec->checkpoint.every_epochs > 0 || spec->checkpoint.every_clocks > 0 ||
         spec->checkpoint.every_seconds > 0;
}

/* checkpoint: one of every_epochs, every_clocks, every_seconds; keep >= 1.
 * A mapping of numbers only, so checked whether or not it appeared. */
static int check_checkpoint(const pd_job_spec *spec, struct problem *pb, char *path,
                            size_t pathlen) {
  const char *set[3];
  int n = 0;
  if (spec->checkpoint.every_epochs > 0)
    set[n++] = "every_epochs";
  if (spec->checkpoint.every_clocks > 0)
    set[n++] = "every_clocks";
  if (spec->checkpoint.every_seconds > 0)
    set[n++] = "every_seconds";
  if (n > 1) {
    snprintf(path, pathlen, "checkpoint.%s", set[1]);
    return problem(pb,
                   "set only one of every_epochs, every_clocks and every_seconds, got %s and %s",
                   set[0], set[1]);
  }
  if (n == 0)
    return 0;
  if (spec->checkpoint.every_seconds > 0 && spec->checkpoint.every_seconds < 1) {
    snprintf(path, pathlen, "checkpoint.every_seconds");
    return problem(pb, "must be >= 1 (a checkpoint writes the whole model), got %g",
                   spec->checkpoint.every_seconds);
  }
  /* every_seconds: worker 0's push of clock k asks every shard for
   * checkpoint k + 1 (PushRequest.checkpoint), which needs worker 0 to push
   * every clock to every shard */
  if (spec->checkpoint.every_seconds > 0 && spec->training.update == PD_UPDATE_BSP &&
      spec->training.backup_workers > 0) {
    snprintf(path, pathlen, "checkpoint.every_seconds");
    return problem(pb, "not with training.backup_workers (worker 0's push, which asks for the "
                       "checkpoint, may be dropped); use every_clocks or every_epochs");
  }
  if (spec->checkpoint.every_seconds > 0 && spec->cluster.stages > 1) {
    snprintf(path, pathlen, "checkpoint.every_seconds");
    return problem(pb, "not with cluster.stages (worker 0 pushes only its stage's keys); use "
                       "every_clocks or every_epochs");
  }
  if (federated(spec) && spec->checkpoint.every_epochs > 0) {
    snprintf(path, pathlen, "checkpoint.every_epochs");
    return problem(pb, "a federated job has rounds, not epochs: use checkpoint.every_clocks, "
                       "a checkpoint after every N-th committed round");
  }
  if (federated(spec) && spec->checkpoint.every_clocks > spec->training.federated.rounds) {
    snprintf(path, pathlen, "checkpoint.every_clocks");
    return problem(pb,
                   "must be <= training.federated.rounds (%d), got %d: no checkpoint would be "
                   "taken",
                   spec->training.federated.rounds, spec->checkpoint.every_clocks);
  }
  if (spec->checkpoint.every_epochs > spec->training.epochs) {
    snprintf(path, pathlen, "checkpoint.every_epochs");
    return problem(pb, "must be <= training.epochs (%d), got %d: no checkpoint would be taken",
                   spec->training.epochs, spec->checkpoint.every_epochs);
  }
  if (spec->checkpoint.keep < 1 || spec->checkpoint.keep > 1000) {
    snprintf(path, pathlen, "checkpoint.keep");
    return problem(pb, "must be between 1 and 1000, got %d", spec->checkpoint.keep);
  }
  return 0;
}

/* Validates `spec`; `line` (may be NULL) gives the line of each key for messages. */
static int validate(const pd_job_spec *spec, const int *line, char *err, size_t errlen) {
  struct problem pb;
  char path[128];
  for (int i = 0; i < (int)NKEYS; i++) {
    const struct spec_key *key = &keys[i];
    if (key->kind == K_MAP || !in_use(spec, parent_of(i)))
      continue;
    snprintf(path, sizeof path, "%s", key->path);
    if (check_field(spec, key, path, sizeof path, &pb) != 0 ||
        (key->check && key->check(spec, &pb, path, sizeof path) != 0))
      return fail(err, errlen, path, line ? line_of(path, line, i) : 0, &pb);
  }
  if (check_checkpoint(spec, &pb, path, sizeof path) != 0 ||
      check_compression(spec, &pb, path, sizeof path) != 0)
    return fail(err, errlen, path, line ? line_of(path, line, 0) : 0, &pb);
  return 0;
}

int pd_job_spec_validate(const pd_job_spec *spec, char *err, size_t errlen) {
  return validate(spec, NULL, err, errlen);
}

/* ---- parsing */

struct spec_parser {
  yaml_document_t *doc;
  pd_job_spec *spec;
  int line[NKEYS]; /* 1-based line of each key in the document, 0: absent */
  char *err;
  size_t errlen;
};

static int node_line(const yaml_node_t *node) { return (int)node->start_mark.line + 1; }

static int is_null(const yaml_node_t *node) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return 0;
  for (size_t i = 0; i < PD_ARRAY_SIZE(nulls); i++)
    if (strcmp((const char *)node->data.scalar.value, nulls[i]) == 0)
      return 1;
  return 0;
}

/* Describes a node for "got ..." in messages. */
static const char *describe(const yaml_node_t *node, char *buf, size_t len) {
  if (node->type == YAML_MAPPING_NODE)
    return "a mapping";
  if (node->type == YAML_SEQUENCE_NODE)
    return "a list";
  if (is_null(node))
    return "null";
  const char *text = (const char *)node->data.scalar.value;
  snprintf(buf, len, "'%.80s%s'", text, strlen(text) > 80 ? "..." : "");
  return buf;
}

/* A scalar's text, or -1 with a problem when `node` is not a usable scalar. */
static int scalar_text(const struct spec_key *key, const yaml_node_t *node, const char **text,
                       struct problem *pb) {
  char shown[96];
  if (node->type != YAML_SCALAR_NODE || is_null(node)) {
    problem(pb, "expected %s, got %s", kind_noun(key->kind), describe(node, shown, sizeof shown));
    if (key->names)
      names_hint(pb, key->names);
    return -1;
  }
  *text = (const char *)node->data.scalar.value;
  if (strlen(*text) != node->data.scalar.length)
    return problem(pb, "contains a NUL character");
  return 0;
}

static int parse_list(struct spec_parser *p, int i, const yaml_node_t *node) {
  const struct spec_key *key = &keys[i];
  struct problem pb;
  char path[128], shown[96];
  if (node->type != YAML_SEQUENCE_NODE) {
    problem(&pb, "expected %s, got %s", kind_noun(key->kind), describe(node, shown, sizeof shown));
    return fail(p->err, p->errlen, key->path, node_line(node), &pb);
  }
  int count = (int)(node->data.sequence.items.top - node->data.sequence.items.start);
  if (count > key->max_count) {
    count_problem(key, count, &pb);
    return fail(p->err, p->errlen, key->path, node_line(node), &pb);
  }
  PD_ASSERT(key->size == (size_t)key->max_count * sizeof(int));
  int *values = field_of(p->spec, key);
  for (int j = 0; j < count; j++) {
    const yaml_node_t *item = yaml_document_get_node(p->doc, node->data.sequence.items.start[j]);
    const char *text = NULL;
    long long value = 0;
    int rc = scalar_text(key, item, &text, &pb);
    if (rc == 0) {
      int parsed = parse_integer(text, &value);
      if (parsed == -1)
        rc = problem(&pb, "expected an integer, got '%.80s'", text);
      else
        rc = check_number(key, parsed == -2 ? (value < 0 ? -HUGE_VAL : HUGE_VAL) : (double)value,
                          text, &pb);
    }
    if (rc != 0) {
      snprintf(path, sizeof path, "%s[%d]", key->path, j);
      return fail(p->err, p->errlen, path, node_line(item), &pb);
    }
    values[j] = (int)value;
  }
  set_int((char *)p->spec + key->count_offset, count);
  return 0;
}

/* A mapping of any keys with scalar values, kept as "key=value\n" lines. */
static int parse_raw_map(struct spec_parser *p, int i, const yaml_node_t *node) {
  const struct spec_key *key = &keys[i];
  struct problem pb;
  char shown[96];
  char *out = field_of(p->spec, key);
  out[0] = '\0';
  if (node->type != YAML_MAPPING_NODE) {
    problem(&pb, "expected a mapping, got %s", describe(node, shown, sizeof shown));
    return fail(p->err, p->errlen, key->path, node_line(node), &pb);
  }
  for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top;
       pair++) {
    const yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
    const yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
    if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
      problem(&pb, "keys and values must be scalars, got %s",
              describe(k->type != YAML_SCALAR_NODE ? k : v, shown, sizeof shown));
      return fail(p->err, p->errlen, key->path, node_line(k), &pb);
    }
    const char *name = (const char *)k->data.scalar.value,
               *text = (const char *)v->data.scalar.value;
    if (strpbrk(name, "=\n") || strchr(text, '\n')) {
      problem(&pb, "'%.80s' contains '=' or a line break", strpbrk(name, "=\n") ? name : text);
      return fail(p->err, p->errlen, key->path, node_line(k), &pb);
    }
    if (strlen(out) + strlen(name) + strlen(text) + 3 > key->size) {
      problem(&pb, "longer than %zu characters", key->size - 1);
      return fail(p->err, p->errlen, key->path, node_line(k), &pb);
    }
    append(out, key->size, "%s=%s\n", name, text);
  }
  return 0;
}

static int parse_map(struct spec_parser *p, int parent, const yaml_node_t *node) {
  const char *path = parent < 0 ? "" : keys[parent].path;
  struct problem pb;
  char shown[96];
  if (node->type != YAML_MAPPING_NODE) {
    problem(&pb, "expected a mapping, got %s", describe(node, shown, sizeof shown));
    return fail(p->err, p->errlen, path, node_line(node), &pb);
  }
  for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top;
       pair++) {
    const yaml_node_t *key_node = yaml_document_get_node(p->doc, pair->key);
    const yaml_node_t *value = yaml_document_get_node(p->doc, pair->value);
    int line = node_line(key_node);
    if (key_node->type != YAML_SCALAR_NODE) {
      problem(&pb, "keys must be strings, got %s", describe(key_node, shown, sizeof shown));
      return fail(p->err, p->errlen, path, line, &pb);
    }
    const char *name = (const char *)key_node->data.scalar.value;
    int i = find_child(parent, name);
    if (i < 0) {
      problem(&pb, "unknown key '%.80s'", name);
      children_hint(&pb, parent);
      return fail(p->err, p->errlen, path, line, &pb);
    }
    if (p->line[i]) {
      problem(&pb, "duplicated key");
      snprintf(pb.hint, sizeof pb.hint, "first set at line %d", p->line[i]);
      return fail(p->err, p->errlen, keys[i].path, line, &pb);
    }
    p->line[i] = line;
    int rc;
    const char *text;
    if (keys[i].kind == K_MAP)
      rc = parse_map(p, i, value);
    else if (keys[i].kind == K_RAW_MAP)
      rc = parse_raw_map(p, i, value);
    else if (keys[i].kind == K_INT_LIST)
      rc = parse_list(p, i, value);
    else if (scalar_text(&keys[i], value, &text, &pb) != 0 ||
             set_value(p->spec, &keys[i], text, &pb) != 0)
      rc = fail(p->err, p->errlen, keys[i].path, node_line(value), &pb);
    else
      rc = 0;
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Whether the keys under mapping `m` must be there: it appeared, or it is
 * required and its own parent must be there. */
static int expected(const struct spec_parser *p, int m) {
  if (m < 0 || p->line[m])
    return 1;
  return keys[m].required && expected(p, parent_of(m));
}

static int check_required(const struct spec_parser *p) {
  struct problem pb;
  for (int i = 0; i < (int)NKEYS; i++) {
    int parent = parent_of(i);
    if (keys[i].kind == K_MAP || !keys[i].required || p->line[i] || !expected(p, parent) ||
        (keys[i].central_only && federated(p->spec)))
      continue;
    if (parent >= 0 && p->line[parent])
      problem(&pb, "required (missing from '%s' at line %d)", keys[parent].path, p->line[parent]);
    else
      problem(&pb, "required");
    return fail(p->err, p->errlen, keys[i].path, 0, &pb);
  }
  return 0;
}

static int syntax_error(const yaml_parser_t *parser, char *err, size_t errlen) {
  const char *what = parser->problem ? parser->problem : "out of memory";
  if (parser->error == YAML_READER_ERROR)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC, "YAML syntax error: %s (byte %zu)", what,
                   parser->problem_offset);
  char context[160] = "";
  if (parser->context)
    snprintf(context, sizeof context, "; %s at line %d", parser->context,
             (int)parser->context_mark.line + 1);
  return pd_errf(err, errlen, -PD_EINVAL_SPEC, "YAML syntax error: %s (line %d, column %d)%s", what,
                 (int)parser->problem_mark.line + 1, (int)parser->problem_mark.column + 1, context);
}

/* Values that default from other keys. */
static void derive(pd_job_spec *spec) {
  pd_model_spec *m = &spec->model;
  if (m->type == PD_MODEL_LENET && m->ninput_shape == 0 && m->nlayers >= 1) {
    int side = (int)(sqrt((double)m->layers[0]) + 0.5);
    if (side * side == m->layers[0]) { /* a square grey image, as Fashion-MNIST */
      m->ninput_shape = 3;
      m->input_shape[0] = 1;
      m->input_shape[1] = m->input_shape[2] = side;
    }
  }
}

static void set_defaults(pd_job_spec *spec) {
  struct problem pb;
  memset(spec, 0, sizeof *spec);
  for (size_t i = 0; i < NKEYS; i++)
    if (keys[i].default_value) {
      int rc = set_value(spec, &keys[i], keys[i].default_value, &pb);
      if (rc != 0)
        fprintf(stderr, "spec key table: %s: bad default: %s\n", keys[i].path, pb.what);
      PD_ASSERT(rc == 0);
    }
}

/* The bounds of spec.h (PD_SPEC_MAX_*), in one pass of parser events that
 * stops at the first excess, before yaml_parser_load builds anything. */
static int check_bounds(const char *text, size_t len, char *err, size_t errlen) {
  if (len > PD_SPEC_MAX_BYTES)
    return pd_errf(err, errlen, -PD_EINVAL_SPEC, "job spec is %zu bytes, more than the limit of %u",
                   len, PD_SPEC_MAX_BYTES);
  yaml_parser_t parser;
  yaml_event_t ev;
  int depth = 0, aliases = 0, rc = 0;
  PD_ASSERT(yaml_parser_initialize(&parser));
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  for (;;) {
    if (!yaml_parser_parse(&parser, &ev)) {
      rc = syntax_error(&parser, err, errlen);
      break;
    }
    yaml_event_type_t type = ev.type;
    int line = (int)ev.start_mark.line + 1;
    yaml_event_delete(&ev);
    if (type == YAML_STREAM_END_EVENT)
      break;
    if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
      if (++depth > PD_SPEC_MAX_DEPTH) {
        rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                     "job spec nests collections more than %d deep (line %d)", PD_SPEC_MAX_DEPTH,
                     line);
        break;
      }
    } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
      depth--;
    } else if (type == YAML_ALIAS_EVENT && ++aliases > PD_SPEC_MAX_ALIASES) {
      rc = pd_errf(err, errlen, -PD_EINVAL_SPEC, "job spec has more than %d aliases (line %d)",
                   PD_SPEC_MAX_ALIASES, line);
      break;
    }
  }
  yaml_parser_delete(&parser);
  return rc;
}

int pd_job_spec_parse(const char *text, size_t len, pd_job_spec *spec, char *err, size_t errlen) {
  yaml_parser_t parser;
  yaml_document_t doc, extra;
  int have_doc = 0, have_extra = 0, rc;
  struct spec_parser p = {.doc = &doc, .spec = spec, .err = err, .errlen = errlen};

  set_defaults(spec);
  if ((rc = check_bounds(text, len, err, errlen)) != 0)
    return rc;
  PD_ASSERT(yaml_parser_initialize(&parser));
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    rc = syntax_error(&parser, err, errlen);
    goto done;
  }
  have_doc = 1;
  const yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || is_null(root)) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC, "job spec is empty");
    goto done;
  }
  if (root->type != YAML_MAPPING_NODE) {
    char shown[96];
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "job spec must be a mapping at the top level, got %s (line %d)",
                 describe(root, shown, sizeof shown), node_line(root));
    goto done;
  }
  if (!yaml_parser_load(&parser, &extra)) {
    rc = syntax_error(&parser, err, errlen);
    goto done;
  }
  have_extra = 1;
  if (yaml_document_get_root_node(&extra)) {
    rc = pd_errf(err, errlen, -PD_EINVAL_SPEC,
                 "job spec must be a single YAML document, found another at line %d",
                 (int)extra.start_mark.line + 1);
    goto done;
  }
  if ((rc = parse_map(&p, -1, root)) != 0 || (rc = check_required(&p)) != 0)
    goto done;
  derive(spec);
  rc = validate(spec, p.line, err, errlen);
done:
  if (have_extra)
    yaml_document_delete(&extra);
  if (have_doc)
    yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

/* ---- names */

const char *pd_update_name(enum pd_update update) {
  const char *name = enum_to_name(update_names, (int)update);
  return name ? name : "unknown";
}

const char *pd_model_type_name(enum pd_model_type type) {
  const char *name = enum_to_name(model_type_names, (int)type);
  return name ? name : "unknown";
}

const char *pd_partition_name(enum pd_partition partition) {
  const char *name = enum_to_name(partition_names, (int)partition);
  return name ? name : "unknown";
}

const char *pd_optimizer_name(enum pd_optimizer_type type) {
  const char *name = enum_to_name(optimizer_names, (int)type);
  return name ? name : "unknown";
}

const char *pd_aggregation_name(enum pd_aggregation aggregation) {
  const char *name = enum_to_name(aggregation_names, (int)aggregation);
  return name ? name : "unknown";
}

uint32_t pd_spec_round_goal(const pd_job_spec *spec, uint32_t eligible) {
  double k = spec->training.federated.clients_per_round;
  if (k >= 1)
    return (uint32_t)k;
  uint32_t goal = (uint32_t)ceil(k * eligible - 1e-9);
  return goal ? goal : 1;
}

uint32_t pd_spec_round_selected(const pd_job_spec *spec, uint32_t eligible) {
  uint32_t goal = pd_spec_round_goal(spec, eligible);
  return (uint32_t)ceil(spec->training.federated.over_selection * goal - 1e-9);
}

uint32_t pd_spec_round_min_reports(const pd_job_spec *spec, uint32_t eligible) {
  int m = spec->training.federated.min_reports;
  return m > 0 ? (uint32_t)m : pd_spec_round_goal(spec, eligible);
}

const char *pd_frequency_name(enum pd_frequency frequency) {
  const char *name = enum_to_name(frequency_names, (int)frequency);
  return name ? name : "unknown";
}

void pd_job_spec_compression(const pd_job_spec *spec, pd_codec_params *push,
                             pd_codec_params *pull) {
  uint32_t block = (uint32_t)spec->training.compression.block;
  *push = (pd_codec_params){.method = spec->training.compression.push,
                            .block = block,
                            .ratio = spec->training.compression.ratio,
                            .threshold = spec->training.compression.threshold,
                            .momentum_correction = spec->training.compression.momentum_correction,
                            .error_feedback = spec->training.compression.error_feedback};
  *pull = (pd_codec_params){.method = spec->training.compression.pull, .block = block};
}
