/* Unit tests of the job spec parser and validator (common/src/job/spec.c). */
#include "pando/spec.h"

#include <stdint.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

#define IMAGES "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define LABELS "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
#define T_IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define T_LABELS "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"

/* The example of the README, in its own mixed block/flow style. */
static const char example_mixed[] =
    "name: fashion-mlp\n"
    "model: {type: mlp, layers: [784, 256, 10], activation: relu, seed: 42}\n"
    "data:\n"
    "  format: idx\n"
    "  train: {features: " IMAGES ", labels: " LABELS "}\n"
    "  test:  {features: " T_IMAGES ",  labels: " T_LABELS "}\n"
    "  partition: disjoint_contiguous\n"
    "training: {epochs: 3, batch_size: 64, update: bsp, optimizer: {type: sgd, lr: 0.1}}\n"
    "cluster: {servers: 2, workers: 2, wait_timeout: 60}\n";

static const char example_block[] = "# the same job, block style only\n"
                                    "name: fashion-mlp\n"
                                    "model:\n"
                                    "  type: mlp\n"
                                    "  layers:\n"
                                    "    - 784\n"
                                    "    - 256\n"
                                    "    - 10\n"
                                    "  activation: relu\n"
                                    "  seed: 42\n"
                                    "data:\n"
                                    "  format: idx\n"
                                    "  train:\n"
                                    "    features: " IMAGES "\n"
                                    "    labels: " LABELS "\n"
                                    "  test:\n"
                                    "    features: '" T_IMAGES "'\n"
                                    "    labels: \"" T_LABELS "\"\n"
                                    "  partition: disjoint_contiguous\n"
                                    "training:\n"
                                    "  epochs: 3\n"
                                    "  batch_size: 64\n"
                                    "  update: bsp\n"
                                    "  optimizer:\n"
                                    "    type: sgd\n"
                                    "    lr: 0.1\n"
                                    "cluster:\n"
                                    "  servers: 2\n"
                                    "  workers: 2\n"
                                    "  wait_timeout: 60\n";

static const char example_flow[] =
    "{name: fashion-mlp, model: {type: mlp, layers: [784, 256, 10], activation: relu, seed: 42},\n"
    " data: {format: idx, train: {features: " IMAGES ", labels: " LABELS "},\n"
    "        test: {features: " T_IMAGES ", labels: " T_LABELS "},\n"
    "        partition: disjoint_contiguous},\n"
    " training: {epochs: 3, batch_size: 64, update: bsp, optimizer: {type: sgd, lr: 0.1}},\n"
    " cluster: {servers: 2, workers: 2, wait_timeout: 60}}\n";

static int parse(const char *text, pd_job_spec *spec, char *err, size_t errlen) {
  return pd_job_spec_parse(text, strlen(text), spec, err, errlen);
}

static void check_example(const char *text) {
  pd_job_spec spec;
  char err[512] = "";
  int rc = parse(text, &spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  unexpected error: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK(strcmp(spec.name, "fashion-mlp") == 0);
  CHECK_EQ_INT(spec.model.type, PD_MODEL_MLP);
  CHECK_EQ_INT(spec.model.nlayers, 3);
  CHECK_EQ_INT(spec.model.layers[0], 784);
  CHECK_EQ_INT(spec.model.layers[1], 256);
  CHECK_EQ_INT(spec.model.layers[2], 10);
  CHECK_EQ_INT(spec.model.activation, PD_ACT_RELU);
  CHECK(spec.model.seed == 42);
  CHECK(strcmp(spec.data.format, "idx") == 0);
  CHECK(strcmp(spec.data.train.features, IMAGES) == 0);
  CHECK(strcmp(spec.data.train.labels, LABELS) == 0);
  CHECK(strcmp(spec.data.test.features, T_IMAGES) == 0);
  CHECK(strcmp(spec.data.test.labels, T_LABELS) == 0);
  CHECK_EQ_INT(spec.data.partition, PD_PARTITION_DISJOINT_CONTIGUOUS);
  CHECK_EQ_INT(spec.training.epochs, 3);
  CHECK_EQ_INT(spec.training.batch_size, 64);
  CHECK_EQ_INT(spec.training.update, PD_UPDATE_BSP);
  CHECK_EQ_INT(spec.training.optimizer.type, PD_OPT_SGD);
  CHECK(spec.training.optimizer.lr == 0.1);
  CHECK_EQ_INT(spec.cluster.servers, 2);
  CHECK_EQ_INT(spec.cluster.workers, 2);
  CHECK(spec.cluster.wait_timeout_sec == 60.0);
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
}

static void test_example_mixed(void) { check_example(example_mixed); }
static void test_example_block(void) { check_example(example_block); }
static void test_example_flow(void) { check_example(example_flow); }

static void test_parse_uses_len(void) {
  /* Bytes after `len` are not part of the document. */
  char text[sizeof example_mixed + 32];
  snprintf(text, sizeof text, "%sbogus: [", example_mixed);
  pd_job_spec spec;
  char err[256] = "";
  CHECK_EQ_INT(pd_job_spec_parse(text, strlen(example_mixed), &spec, err, sizeof err), 0);
  CHECK_EQ_INT(spec.cluster.workers, 2);
}

static void test_defaults(void) {
  static const char minimal[] = "name: a\n"
                                "model: {type: softmax, layers: [784, 10]}\n"
                                "data: {train: {features: /f, labels: /l}}\n"
                                "training: {epochs: 1, batch_size: 1, optimizer: {lr: 1e-3}}\n"
                                "cluster: {servers: 1, workers: 1}\n";
  pd_job_spec spec;
  char err[512] = "";
  int rc = parse(minimal, &spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  unexpected error: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(spec.model.type, PD_MODEL_SOFTMAX);
  CHECK_EQ_INT(spec.model.activation, PD_ACT_RELU);
  CHECK(spec.model.seed == 0);
  CHECK(strcmp(spec.data.format, "idx") == 0);
  CHECK(spec.data.test.features[0] == '\0');
  CHECK(spec.data.test.labels[0] == '\0');
  CHECK_EQ_INT(spec.data.partition, PD_PARTITION_DISJOINT_CONTIGUOUS);
  CHECK_EQ_INT(spec.training.update, PD_UPDATE_BSP);
  CHECK_EQ_INT(spec.training.optimizer.type, PD_OPT_SGD);
  CHECK(spec.training.optimizer.lr == 1e-3);
  CHECK(spec.cluster.wait_timeout_sec == 60.0);
  CHECK_EQ_INT(spec.training.on_nonfinite, PD_NONFINITE_FAIL);
}

/* Edge values that are accepted. */
static void test_limits_accepted(void) {
  static const char text[] =
      "name: a123456789012345678901234567890123456789012345678901234567890-z\n" /* 63 chars */
      "model: {type: mlp, layers: [1000000, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 1],\n"
      "        activation: sigmoid, seed: 18446744073709551615}\n"
      "data: {train: {features: /f, labels: /l}}\n"
      "training: {epochs: 100000, batch_size: 65536, update: asp, optimizer: {lr: 1e-300}}\n"
      "cluster: {servers: 1024, workers: 4096, wait_timeout: 0.5}\n";
  pd_job_spec spec;
  char err[512] = "";
  int rc = parse(text, &spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  unexpected error: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(strlen(spec.name), 63);
  CHECK_EQ_INT(spec.model.nlayers, 16);
  CHECK_EQ_INT(spec.model.layers[0], 1000000);
  CHECK_EQ_INT(spec.model.activation, PD_ACT_SIGMOID);
  CHECK(spec.model.seed == UINT64_MAX);
  CHECK_EQ_INT(spec.training.update, PD_UPDATE_ASP);
  CHECK_EQ_INT(spec.cluster.workers, 4096);
  CHECK(spec.cluster.wait_timeout_sec == 0.5);
}

/* ---- errors: the base document below with one line replaced (or deleted) */

static const char *const base[] = {
    /* 1 */ "name: fashion-mlp",
    /* 2 */ "model: {type: mlp, layers: [784, 256, 10], activation: relu, seed: 42}",
    /* 3 */ "data:",
    /* 4 */ "  format: idx",
    /* 5 */ "  train: {features: /d/train-images.gz, labels: /d/train-labels.gz}",
    /* 6 */ "  test: {features: /d/test-images.gz, labels: /d/test-labels.gz}",
    /* 7 */ "  partition: disjoint_contiguous",
    /* 8 */ "training:",
    /* 9 */ "  epochs: 3",
    /* 10 */ "  batch_size: 64",
    /* 11 */ "  update: bsp",
    /* 12 */ "  optimizer: {type: sgd, lr: 0.1}",
    /* 13 */ "cluster: {servers: 2, workers: 2, wait_timeout: 60}",
};

struct error_case {
  int line;              /* 1-based line of base[] to replace; 0: `text` is the whole document */
  const char *text;      /* replacement line, or NULL to delete the line */
  const char *expect[3]; /* substrings of the error message */
};

static void build(const struct error_case *c, char *out, size_t size) {
  out[0] = '\0';
  if (c->line == 0) {
    snprintf(out, size, "%s", c->text);
    return;
  }
  for (size_t i = 0; i < PD_ARRAY_SIZE(base); i++) {
    const char *line = (int)i + 1 == c->line ? c->text : base[i];
    if (line)
      snprintf(out + strlen(out), size - strlen(out), "%s\n", line);
  }
}

static void run_error_cases(const struct error_case *cases, size_t n) {
  static char text[8192];
  for (size_t i = 0; i < n; i++) {
    pd_job_spec spec;
    char err[512] = "";
    build(&cases[i], text, sizeof text);
    int rc = parse(text, &spec, err, sizeof err);
    int ok = rc == -PD_EINVAL_SPEC;
    for (int j = 0; ok && j < 3 && cases[i].expect[j]; j++)
      ok = strstr(err, cases[i].expect[j]) != NULL;
    if (!ok)
      fprintf(stderr, "  case %zu (line %d: %s): rc %d, error \"%s\"\n", i, cases[i].line,
              cases[i].text ? cases[i].text : "(deleted)", rc, err);
    CHECK(ok);
  }
}

/* Parses base[] as it is into `spec`; returns parse()'s result. */
static int parse_base(pd_job_spec *spec) {
  static const struct error_case none = {.line = 99};
  char text[4096], err[512] = "";
  build(&none, text, sizeof text);
  return parse(text, spec, err, sizeof err);
}

static void test_base_is_valid(void) {
  pd_job_spec spec;
  CHECK_EQ_INT(parse_base(&spec), 0);
}

static void test_unknown_keys(void) {
  static const struct error_case cases[] = {
      {8,
       "trainig:",
       {"unknown key 'trainig' (line 8); expected one of: name, model, data, training, cluster, "
        "checkpoint"}},
      {9,
       "  epoch: 3",
       {"training: unknown key 'epoch' (line 9); expected one of: epochs, batch_size, update, "
        "staleness, backup_workers, frequency, on_nonfinite, nbatches, threads, micro_batches, "
        "pipeline_schedule, shuffle, "
        "lr_schedule, "
        "batch_schedule, optimizer"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1, nesterov: true}",
       {"training.optimizer: unknown key 'nesterov' (line 12); expected one of: type, lr, "
        "momentum, beta1, beta2, epsilon, weight_decay, decay_rate"}},
      {5,
       "  train: {features: /a, labels: /b, extra: 1}",
       {"data.train: unknown key 'extra' (line 5); expected one of: features, labels"}},
      {1, "? [a, b]\n: 1", {"keys must be strings, got a list (line 1)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_duplicate_keys(void) {
  static const struct error_case cases[] = {
      {10, "  epochs: 4", {"training.epochs: duplicated key (line 10); first set at line 9"}},
      {13,
       "cluster: {servers: 2, workers: 2, servers: 3}",
       {"cluster.servers: duplicated key (line 13)", "first set at line 13"}},
      {13, "name: other", {"name: duplicated key (line 13); first set at line 1"}},
      {7,
       "  train: {features: /a, labels: /b}",
       {"data.train: duplicated key (line 7); first set at line 5"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_wrong_types(void) {
  static const struct error_case cases[] = {
      {9, "  epochs: three", {"training.epochs: expected an integer, got 'three' (line 9)"}},
      {9, "  epochs: 2.5", {"training.epochs: expected an integer, got '2.5' (line 9)"}},
      {9, "  epochs:", {"training.epochs: expected an integer, got null (line 9)"}},
      {9, "  epochs: {a: 1}", {"training.epochs: expected an integer, got a mapping (line 9)"}},
      {9, "  epochs: [1]", {"training.epochs: expected an integer, got a list (line 9)"}},
      {12,
       "  optimizer: {type: sgd, lr: fast}",
       {"training.optimizer.lr: expected a number, got 'fast' (line 12)"}},
      {13, "cluster: big", {"cluster: expected a mapping, got 'big' (line 13)"}},
      {13,
       "cluster: {servers: 2, workers: 2, wait_timeout: soon}",
       {"cluster.wait_timeout: expected a number, got 'soon' (line 13)"}},
      {2,
       "model: {type: mlp, layers: 784}",
       {"model.layers: expected a list of integers, got '784' (line 2)"}},
      {2,
       "model: {type: mlp, layers: [784, x, 10]}",
       {"model.layers[1]: expected an integer, got 'x' (line 2)"}},
      {2,
       "model: {type: mlp, layers: [784, [1], 10]}",
       {"model.layers[1]: expected a list of integers, got a list (line 2)"}},
      {2,
       "model: {type: mlp, layers: [784, 10], seed: lucky}",
       {"model.seed: expected an integer, got 'lucky' (line 2)"}},
      {1, "name: [a]", {"name: expected a string, got a list (line 1)"}},
      {11,
       "  update: [bsp]",
       {"training.update: expected a string, got a list (line 11); expected one of: bsp, asp"}},
      {6, "  test:", {"data.test: expected a mapping, got null (line 6)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_enums(void) {
  static const struct error_case cases[] = {
      {11,
       "  update: bsq",
       {"training.update: unknown value 'bsq' (line 11); expected one of: bsp, asp, ssp"}},
      {11,
       "  update: bsp\n  staleness: 2",
       {"training.staleness: only used with training.update ssp, got 2 with update bsp (line 12)"}},
      {11,
       "  update: ssp\n  staleness: -1",
       {"training.staleness: must be between 0 and 1000000, got -1 (line 12)"}},
      {11,
       "  update: asp\n  backup_workers: 1",
       {"training.backup_workers: only used with training.update bsp, got 1 with update asp "
        "(line 12)"}},
      {11,
       "  nbatches: 4",
       {"training.nbatches: only used with training.frequency nbatches, got 4 with frequency "
        "batch (line 11)"}},
      {11,
       "  frequency: nbatches\n  nbatches: 0",
       {"training.nbatches: must be between 1 and 1000000, got 0 (line 12)"}},
      {11,
       "  on_nonfinite: ignore",
       {"training.on_nonfinite: unknown value 'ignore' (line 11); expected one of: fail, skip"}},
      {11,
       "  frequency: often",
       {"training.frequency: unknown value 'often' (line 11); expected one of: batch, epoch, "
        "nbatches"}},
      {11,
       "  threads: 2",
       {"training.threads: 2 threads share the batches between a pull and a push: they need "
        "training.frequency epoch, or nbatches with training.nbatches >= 2 (got frequency "
        "batch, nbatches 1) (line 11)"}},
      {11,
       "  frequency: nbatches\n  nbatches: 3\n  threads: 4",
       {"training.threads: 4 threads share the batches between a pull and a push"}},
      {11,
       "  update: bsp\n  backup_workers: 4095",
       {"training.backup_workers: cluster.workers + backup_workers must be <= 4096, got 2 + 4095"}},
      {2,
       "model: {type: cnn, layers: [784, 10]}",
       {"model.type: unknown value 'cnn' (line 2); expected one of: softmax, mlp"}},
      {2,
       "model: {type: mlp, layers: [784, 10], activation: gelu}",
       {"model.activation: unknown value 'gelu' (line 2); expected one of: relu, tanh, sigmoid"}},
      {12,
       "  optimizer: {type: adamw, lr: 0.1}",
       {"training.optimizer.type: unknown value 'adamw' (line 12); expected one of: sgd, "
        "momentum, nesterov, adagrad, rmsprop, adam"}},
      {7,
       "  partition: random",
       {"data.partition: unknown value 'random' (line 7); expected one of: disjoint_contiguous, "
        "disjoint_round_robin, disjoint_random, overlap_reshuffle"}},
      {4,
       "  format: parquet",
       {"data.format: unknown value 'parquet' (line 4); expected one of: idx, csv, libsvm, "
        "synthetic"}},
      {4,
       "  format: csv",
       {"data.train.labels: not used with format csv: the label is in the file "
        "(data.label_column for csv) (line 5)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_ranges(void) {
  static const struct error_case cases[] = {
      {9, "  epochs: 0", {"training.epochs: must be between 1 and 100000, got 0 (line 9)"}},
      {9, "  epochs: 100001", {"training.epochs: must be between 1 and 100000, got 100001"}},
      {9, "  epochs: -3", {"training.epochs: must be between 1 and 100000, got -3 (line 9)"}},
      {10,
       "  batch_size: 0",
       {"training.batch_size: must be between 1 and 65536, got 0 (line 10)"}},
      {10, "  batch_size: 65537", {"training.batch_size: must be between 1 and 65536, got 65537"}},
      {10,
       "  batch_size: 99999999999999999999",
       {"training.batch_size: must be between 1 and 65536, got 99999999999999999999 (line 10)"}},
      {12, "  optimizer: {lr: 0}", {"training.optimizer.lr: must be > 0, got 0 (line 12)"}},
      {12, "  optimizer: {lr: -0.1}", {"training.optimizer.lr: must be > 0, got -0.1 (line 12)"}},
      {12,
       "  optimizer: {lr: nan}",
       {"training.optimizer.lr: must be a finite number, got nan (line 12)"}},
      {12, "  optimizer: {lr: inf}", {"training.optimizer.lr: must be a finite number, got inf"}},
      {13,
       "cluster: {servers: 0, workers: 2}",
       {"cluster.servers: must be between 1 and 1024, got 0 (line 13)"}},
      {13,
       "cluster: {servers: 1025, workers: 2}",
       {"cluster.servers: must be between 1 and 1024, got 1025 (line 13)"}},
      {13,
       "cluster: {servers: 2, workers: 4097}",
       {"cluster.workers: must be between 1 and 4096, got 4097 (line 13)"}},
      {13,
       "cluster: {servers: 2, workers: 2, wait_timeout: 0}",
       {"cluster.wait_timeout: must be > 0, got 0 (line 13)"}},
      {13,
       "cluster: {servers: 2, workers: 2, wait_timeout: -5}",
       {"cluster.wait_timeout: must be > 0, got -5 (line 13)"}},
      {2,
       "model: {type: mlp, layers: [784, 0, 10]}",
       {"model.layers[1]: must be between 1 and 1000000000, got 0 (line 2)"}},
      {2,
       "model: {type: mlp, layers: [1000000001, 10]}",
       {"model.layers[0]: must be between 1 and 1000000000, got 1000000001 (line 2)"}},
      {2,
       "model: {type: mlp, layers: [784]}",
       {"model.layers: expected 2 to 16 entries, got 1 (line 2)"}},
      {2,
       "model: {type: mlp, layers: []}",
       {"model.layers: expected 2 to 16 entries, got 0 (line 2)"}},
      {2,
       "model: {type: mlp, layers: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]}",
       {"model.layers: expected 2 to 16 entries, got 17 (line 2)"}},
      {2,
       "model: {type: softmax, layers: [784, 256, 10]}",
       {"model.layers: a softmax model takes exactly 2 layers (inputs, classes), got 3 (line 2)"}},
      {2,
       "model: {type: mlp, layers: [784, 10], seed: -1}",
       {"model.seed: must be between 0 and 18446744073709551615, got -1 (line 2)"}},
      {2,
       "model: {type: mlp, layers: [784, 10], seed: 18446744073709551616}",
       {"model.seed: must be between 0 and 18446744073709551615, got 18446744073709551616"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_required(void) {
  static const struct error_case cases[] = {
      {1, NULL, {"name: required"}},
      {10, NULL, {"training.batch_size: required (missing from 'training' at line 8)"}},
      {9, NULL, {"training.epochs: required"}},
      {12, "  optimizer: {type: sgd}", {"training.optimizer.lr: required"}},
      {12, NULL, {"training.optimizer.lr: required"}},
      {13, NULL, {"cluster.servers: required"}},
      {13, "cluster: {servers: 2}", {"cluster.workers: required"}},
      {2, "model: {layers: [784, 10]}", {"model.type: required"}},
      {2, "model: {type: mlp}", {"model.layers: required"}},
      {5, "  train: {labels: /b}", {"data.train.features: required"}},
      {5, "  train: {features: /a}", {"data.train.labels: required"}},
      {6, "  test: {features: /a}", {"data.test.labels: required"}},
      {5,
       "  train: {features: '', labels: /b}",
       {"data.train.features: required for format idx (line 5)"}},
      {1, "name: ''", {"name: required (line 1)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

/* A federated job: no epochs, batch size or workers; the keys of rounds. */
static const char federated_job[] =
    "name: fed\n"
    "model: {type: mlp, layers: [784, 200, 10]}\n"
    "data: {train: {features: /f, labels: /l}, partition: dirichlet, alpha: 0.3}\n"
    "training:\n"
    "  update: fedavg\n"
    "  optimizer: {type: sgd, lr: 0.05}\n"
    "  federated: {rounds: 20, clients_per_round: 10, local_epochs: 5, local_batch_size: 10}\n"
    "cluster: {servers: 3}\n";

static void test_federated_defaults(void) {
  pd_job_spec spec;
  char err[512] = "";
  int rc = parse(federated_job, &spec, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  unexpected error: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(spec.training.update, PD_UPDATE_FEDAVG);
  CHECK_EQ_INT(spec.training.federated.rounds, 20);
  CHECK_EQ_INT(spec.training.federated.local_epochs, 5);
  CHECK_EQ_INT(spec.training.federated.local_batch_size, 10);
  CHECK_EQ_INT(spec.training.federated.aggregation, PD_AGG_FEDAVG);
  CHECK(spec.training.federated.over_selection == 1.3);
  CHECK(spec.training.federated.round_timeout_sec == 60);
  CHECK(spec.training.federated.selection_timeout_sec == 10);
  CHECK_EQ_INT(spec.training.federated.max_attempts, 3);
  CHECK(spec.training.federated.beta2 == 0.99 && spec.training.federated.tau == 1e-3);
  CHECK_EQ_INT(spec.data.partition, PD_PARTITION_DIRICHLET);
  CHECK(spec.data.alpha == 0.3);
  CHECK_EQ_INT(spec.data.shards_per_device, 2);
  /* Bonawitz et al.: select 130% of the goal; commit with K reports */
  CHECK_EQ_INT(pd_spec_round_goal(&spec, 1000), 10);
  CHECK_EQ_INT(pd_spec_round_selected(&spec, 1000), 13);
  CHECK_EQ_INT(pd_spec_round_min_reports(&spec, 1000), 10);
  /* a fraction C of the eligible devices: max(ceil(C n), 1) */
  spec.training.federated.clients_per_round = 0.1;
  CHECK_EQ_INT(pd_spec_round_goal(&spec, 100), 10);
  CHECK_EQ_INT(pd_spec_round_goal(&spec, 95), 10);
  CHECK_EQ_INT(pd_spec_round_goal(&spec, 3), 1);
  CHECK_EQ_INT(pd_spec_round_selected(&spec, 100), 13);
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
}

static void test_federated_errors(void) {
  static const struct error_case cases[] = {
      {7,
       "  federated: {clients_per_round: 10}",
       {"training.federated.rounds: required with training.update fedavg"}},
      {7,
       "  federated: {rounds: 5, clients_per_round: 2.5}",
       {"training.federated.clients_per_round: a number of devices (an integer >= 1) or a "
        "fraction in (0, 1), got 2.5"}},
      {7,
       "  federated: {rounds: 5, clients_per_round: 10, min_reports: 14}",
       {"training.federated.min_reports: must be <= the devices a round selects, "
        "ceil(over_selection 1.3 x clients_per_round 10) = 13, got 14"}},
      {7,
       "  federated: {rounds: 5, over_selection: 0.9}",
       {"training.federated.over_selection: must be between 1 and 10, got 0.9 (line 7)"}},
      {7,
       "  federated: {rounds: 5, aggregation: fedsgd}",
       {"training.federated.aggregation: unknown value 'fedsgd' (line 7)",
        "fedavg, fedavgm, fedadam, fedyogi, fedprox, scaffold"}},
      {3,
       "data: {train: {features: /f, labels: /l}}\ntraining:\n  update: fedavg\n  optimizer: "
       "{type: momentum, lr: 0.1}\n  federated: {rounds: 5, aggregation: scaffold}\ncluster: "
       "{servers: 1}",
       {"training.optimizer.type: training.federated.aggregation scaffold needs the devices' "
        "local optimizer sgd",
        "got momentum"}},
      {7,
       "  federated: {rounds: 5, require: 'charging; wifi'}",
       {"training.federated.require: comma-separated attribute names"}},
      {3,
       "data: {train: {features: /f, labels: /l}}\ntraining:\n  update: bsp\n  epochs: 1\n  "
       "batch_size: 1\n  optimizer: {lr: 1}\n  federated: {rounds: 3}\ncluster: {servers: 1, "
       "workers: 1}",
       {"training.federated.rounds: training.federated is only used with training.update "
        "fedavg, got update bsp"}},
      {5, "  update: bsp", {"training.epochs: required"}},
      {3,
       "data: {train: {features: /f, labels: /l}, partition: shards}\ntraining:\n  update: bsp\n  "
       "epochs: 1\n  batch_size: 1\n  optimizer: {lr: 1}\ncluster: {servers: 1, workers: 1}\n#",
       {"data.partition: shards splits data over simulated devices: only used with "
        "training.update fedavg, got update bsp"}},
  };
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    /* replace line `line` of the federated job */
    char text[2048] = "";
    const char *at = federated_job;
    int line = 1;
    while (*at) {
      const char *nl = strchr(at, '\n');
      size_t len = (size_t)(nl - at) + 1;
      if (line == cases[i].line) {
        strcat(text, cases[i].text);
        strcat(text, "\n");
        if (cases[i].line == 3) { /* the replacement brings its own rest */
          break;
        }
      } else {
        strncat(text, at, len);
      }
      at += len;
      line++;
    }
    pd_job_spec spec;
    char err[512] = "";
    int rc = parse(text, &spec, err, sizeof err);
    if (rc == 0)
      fprintf(stderr, "  case %zu parsed:\n%s", i, text);
    CHECK_EQ_INT(rc, -PD_EINVAL_SPEC);
    for (int k = 0; k < 2 && cases[i].expect[k]; k++)
      CHECK_STR_CONTAINS(err, cases[i].expect[k]);
  }
}

static void test_name(void) {
  static const struct error_case cases[] = {
      {1, "name: Fashion", {"name: must match [a-z][a-z0-9-]{0,62}", "got 'Fashion' (line 1)"}},
      {1, "name: 9lives", {"name: must match", "got '9lives' (line 1)"}},
      {1, "name: my_job", {"name: must match", "got 'my_job'"}},
      {1,
       "name: a12345678901234567890123456789012345678901234567890123456789012z",
       {"name: longer than 63 characters (line 1)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_syntax_errors(void) {
  static const struct error_case cases[] = {
      {12,
       "  optimizer: {type: sgd, lr: 0.1",
       {"YAML syntax error: did not find expected ',' or '}' (line 13", "flow mapping at line 12"}},
      {10, "   batch_size: 64", {"YAML syntax error: ", "(line 10"}},
      {1, "name: \"fashion", {"YAML syntax error: ", "quoted scalar at line 1"}},
      {1, "name: *nothing", {"YAML syntax error: found undefined alias (line 1"}},
      {13,
       "cluster: {servers: 2, workers: 2}\n---\nname: other",
       {"job spec must be a single YAML document, found another at line 14"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_document_shape(void) {
  static const struct error_case cases[] = {
      {0, "", {"job spec is empty"}},
      {0, "# only a comment\n", {"job spec is empty"}},
      {0, "---\n", {"job spec is empty"}},
      {0,
       "- name: a\n- name: b\n",
       {"job spec must be a mapping at the top level, got a list (line 1)"}},
      {0,
       "\nfashion-mlp\n",
       {"job spec must be a mapping at the top level, got 'fashion-mlp' (line 2)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

/* ---- pd_job_spec_validate on specs built in code */

static int example(pd_job_spec *spec) {
  char err[256];
  return parse(example_mixed, spec, err, sizeof err);
}

static void test_validate_built_spec(void) {
  pd_job_spec spec;
  char err[512] = "";
  CHECK_EQ_INT(example(&spec), 0);
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);

  spec.training.epochs = 0;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "training.epochs: must be between 1 and 100000, got 0");
  CHECK(strstr(err, "line") == NULL);

  CHECK_EQ_INT(example(&spec), 0);
  spec.training.update = (enum pd_update)7;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "training.update: unknown value 7; expected one of: bsp, asp");

  CHECK_EQ_INT(example(&spec), 0);
  spec.name[0] = '\0';
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "name: required");

  CHECK_EQ_INT(example(&spec), 0);
  strcpy(spec.name, "Bad Name");
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "name: must match");

  CHECK_EQ_INT(example(&spec), 0);
  spec.model.nlayers = 17;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "model.layers: expected 2 to 16 entries, got 17");

  CHECK_EQ_INT(example(&spec), 0);
  spec.model.layers[2] = -1;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "model.layers[2]: must be between 1 and 1000000000, got -1");

  CHECK_EQ_INT(example(&spec), 0);
  spec.model.type = PD_MODEL_SOFTMAX;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "model.layers: a softmax model takes exactly 2 layers");

  CHECK_EQ_INT(example(&spec), 0);
  spec.training.optimizer.lr = NAN;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "training.optimizer.lr: must be a finite number");

  CHECK_EQ_INT(example(&spec), 0);
  spec.cluster.wait_timeout_sec = 0;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "cluster.wait_timeout: must be > 0, got 0");

  CHECK_EQ_INT(example(&spec), 0);
  spec.training.batch_schedule.type = PD_BATCH_INCREASE;
  spec.training.batch_schedule.max_batch_size = spec.training.batch_size - 1;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "training.batch_schedule.max_batch_size: must be >= "
                          "training.batch_size (64) when the batch size increases, got 63");

  CHECK_EQ_INT(example(&spec), 0);
  strcpy(spec.data.format, "parquet");
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err,
                     "data.format: unknown value 'parquet'; expected one of: idx, csv, libsvm, "
                     "synthetic");

  CHECK_EQ_INT(example(&spec), 0);
  strcpy(spec.data.format, "csv");
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "data.train.labels: not used with format csv");
}

static void test_validate_test_set(void) {
  pd_job_spec spec;
  char err[512] = "";
  /* No test set at all is fine; half of one is not. */
  CHECK_EQ_INT(example(&spec), 0);
  spec.data.test.features[0] = spec.data.test.labels[0] = '\0';
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
  spec.data.test.labels[0] = '/';
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "data.test.features: required");
  /* The train set is always needed. */
  CHECK_EQ_INT(example(&spec), 0);
  spec.data.train.labels[0] = '\0';
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "data.train.labels: required");
}

static void test_names(void) {
  CHECK(strcmp(pd_update_name(PD_UPDATE_BSP), "bsp") == 0);
  CHECK(strcmp(pd_update_name(PD_UPDATE_ASP), "asp") == 0);
  CHECK(strcmp(pd_model_type_name(PD_MODEL_SOFTMAX), "softmax") == 0);
  CHECK(strcmp(pd_model_type_name(PD_MODEL_MLP), "mlp") == 0);
  CHECK(strcmp(pd_optimizer_name(PD_OPT_SGD), "sgd") == 0);
  CHECK(strcmp(pd_update_name((enum pd_update)0), "unknown") == 0);
  CHECK(strcmp(pd_model_type_name((enum pd_model_type)99), "unknown") == 0);
}

/* checkpoint: parsed with keep's default; one every_* at a time, each error
 * naming the key and the line. */
/* training.compression: defaults, a full setting, and bad values refused
 * naming the field and the line. */
static void test_compression_keys(void) {
  char text[4096], err[512] = "";
  pd_job_spec spec;
  static const struct error_case none = {.line = 99};
  build(&none, text, sizeof text);
  CHECK_EQ_INT(parse(text, &spec, err, sizeof err), 0);
  CHECK_EQ_INT(spec.training.compression.push, PD_CODEC_NONE);
  CHECK_EQ_INT(spec.training.compression.pull, PD_CODEC_NONE);
  CHECK_EQ_INT(spec.training.compression.error_feedback, 1);
  CHECK_NEAR(spec.training.compression.ratio, 0.01, 1e-12);
  static const struct error_case full = {
      12,
      "  optimizer: {type: sgd, lr: 0.1}\n"
      "  compression: {push: topk, pull: bf16, ratio: 0.05, momentum_correction: 0.9,\n"
      "                error_feedback: false, block: 64, threshold: 0.5}",
      {NULL}};
  build(&full, text, sizeof text);
  CHECK_EQ_INT(parse(text, &spec, err, sizeof err), 0);
  CHECK_EQ_INT(spec.training.compression.push, PD_CODEC_TOPK);
  CHECK_EQ_INT(spec.training.compression.pull, PD_CODEC_BF16);
  CHECK_EQ_INT(spec.training.compression.block, 64);
  CHECK_EQ_INT(spec.training.compression.error_feedback, 0);
  CHECK_NEAR(spec.training.compression.ratio, 0.05, 1e-12);
  CHECK_NEAR(spec.training.compression.threshold, 0.5, 1e-12);
  CHECK_NEAR(spec.training.compression.momentum_correction, 0.9, 1e-12);
  static const struct error_case cases[] = {
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: twobit}",
       {"training.compression.push: unknown value 'twobit' (line 13); expected one of: none, fp16, "
        "bf16, int8, onebit, topk, randomk, threshold"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression:\n    pull: onebit",
       {"training.compression.pull: must be none, fp16, bf16 or int8", "got onebit (line 14)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: topk, ratio: 0}",
       {"training.compression.ratio: must be", "got 0 (line 13)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: topk, ratio: 1.5}",
       {"training.compression.ratio: must be", "got 1.5 (line 13)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: threshold, threshold: -1}",
       {"training.compression.threshold: must be", "got -1 (line 13)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: int8, block: -3}",
       {"training.compression.block: must be between 0 and 16777216, got -3 (line 13)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression:\n    push: onebit\n"
       "    momentum_correction: 0.9",
       {"training.compression.momentum_correction: only used with push topk, got push onebit",
        "(line 15)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: fp16, error_feedback: maybe}",
       {"training.compression.error_feedback: unknown value 'maybe' (line 13)"}},
      {12,
       "  optimizer: {type: sgd, lr: 0.1}\n  compression: {push: fp16, level: 3}",
       {"training.compression: unknown key 'level' (line 13)"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

static void test_checkpoint_keys(void) {
  static const struct error_case ok_case = {13,
                                            "cluster: {servers: 2, workers: 2}\n"
                                            "checkpoint: {every_epochs: 1}",
                                            {NULL}};
  char text[4096], err[512] = "";
  pd_job_spec spec;
  build(&ok_case, text, sizeof text);
  CHECK_EQ_INT(parse(text, &spec, err, sizeof err), 0);
  CHECK_EQ_INT(spec.checkpoint.every_epochs, 1);
  CHECK_EQ_INT(spec.checkpoint.keep, 2);
  CHECK(pd_job_spec_checkpoints(&spec));
  static const struct error_case none = {.line = 99};
  build(&none, text, sizeof text);
  CHECK_EQ_INT(parse(text, &spec, err, sizeof err), 0);
  CHECK(!pd_job_spec_checkpoints(&spec));
  static const struct error_case cases[] = {
      {13,
       "cluster: {servers: 2, workers: 2}\ncheckpoint: {every_epochs: 1, every_clocks: 5}",
       {"checkpoint.every_clocks: set only one of every_epochs, every_clocks and every_seconds, "
        "got every_epochs and every_clocks (line 14)"}},
      {13,
       "cluster: {servers: 2, workers: 2}\ncheckpoint: {every_epochs: 4}",
       {"checkpoint.every_epochs: must be <= training.epochs (3), got 4", "(line 14)"}},
      {13,
       "cluster: {servers: 2, workers: 2}\ncheckpoint: {every_seconds: 0.5}",
       {"checkpoint.every_seconds: must be >= 1", "(line 14)"}},
      {13,
       "cluster: {servers: 2, workers: 2}\ncheckpoint: {every_seconds: -1}",
       {"checkpoint.every_seconds: must be between 0 and 31536000, got -1 (line 14)"}},
      {13,
       "cluster: {servers: 2, workers: 2}\ncheckpoint: {every_clocks: 10, keep: 0}",
       {"checkpoint.keep: must be between 1 and 1000, got 0 (line 14)"}},
      {13,
       "cluster: {servers: 2, workers: 2}\ncheckpoint: {every_epoch: 1}",
       {"checkpoint: unknown key 'every_epoch' (line 14); expected one of: every_epochs, "
        "every_clocks, every_seconds, keep"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
  /* a spec built in code: the same rules */
  build(&ok_case, text, sizeof text);
  CHECK_EQ_INT(parse(text, &spec, err, sizeof err), 0);
  spec.checkpoint.every_seconds = 30;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "checkpoint.every_seconds: set only one");
  int every_epochs = spec.checkpoint.every_epochs; /* every_seconds alone */
  spec.checkpoint.every_epochs = 0;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
  spec.training.backup_workers = 1; /* worker 0's push may be dropped */
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "checkpoint.every_seconds: not with training.backup_workers");
  spec.training.backup_workers = 0;
  spec.checkpoint.every_epochs = every_epochs;
  spec.checkpoint.every_seconds = 0;
  /* every consistency model checkpoints (ASP and SSP at the slowest
   * worker's clock, services/ps-server/ps.c) */
  spec.training.update = PD_UPDATE_ASP;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
  spec.training.update = PD_UPDATE_SSP;
  spec.training.staleness = 3;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
  spec.training.staleness = 0; /* bsp */
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), 0);
  /* federated: a checkpoint after every N-th committed round */
  static const char fed[] = "name: f\nmodel: {type: softmax, layers: [4, 2]}\n"
                            "data: {train: {features: /x, labels: /y}, partition: iid}\n"
                            "training: {update: fedavg, optimizer: {lr: 0.1},\n"
                            "  federated: {rounds: 6}}\ncluster: {servers: 2}\n"
                            "checkpoint: {every_clocks: 2}\n";
  CHECK_EQ_INT(parse(fed, &spec, err, sizeof err), 0);
  spec.checkpoint.every_clocks = 7;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "checkpoint.every_clocks: must be <= training.federated.rounds (6)");
  spec.checkpoint.every_clocks = 0;
  spec.checkpoint.every_epochs = 1;
  CHECK_EQ_INT(pd_job_spec_validate(&spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "checkpoint.every_epochs: a federated job has rounds, not epochs");
}

/* Issue 14: a 160 KB spec of nested brackets stalled the coordinator for
 * 45 s inside libyaml. Nesting, aliases and size are bounded before the
 * document is built. */
static void test_document_bounds(void) {
  pd_job_spec spec;
  char err[512] = "";
  size_t n = 80000, len = 0;
  char *deep = malloc(2 * n + 64);
  if (!deep) {
    CHECK(deep != NULL);
    return;
  }
  len += (size_t)sprintf(deep, "name: a\nmodel: ");
  memset(deep + len, '[', n);
  memset(deep + len + n, ']', n);
  len += 2 * n;
  CHECK_EQ_INT(pd_job_spec_parse(deep, len, &spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "job spec nests collections more than 16 deep (line 2)");
  free(deep);

  static const char aliases[] =
      "name: &n a\n"
      "model: {type: softmax, layers: [*n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n,\n"
      "  *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n,\n"
      "  *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n, *n,\n"
      "  *n, *n, *n, *n, *n, *n, *n, *n, *n]}\n";
  CHECK_EQ_INT(pd_job_spec_parse(aliases, strlen(aliases), &spec, err, sizeof err),
               -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "job spec has more than 64 aliases (line 5)");

  size_t big = PD_SPEC_MAX_BYTES + 1;
  char *huge = malloc(big);
  memset(huge, '#', big);
  CHECK_EQ_INT(pd_job_spec_parse(huge, big, &spec, err, sizeof err), -PD_EINVAL_SPEC);
  CHECK_STR_CONTAINS(err, "job spec is 1048577 bytes, more than the limit of 1048576");
  free(huge);
}

/* Pipelines: cluster.stages, training.micro_batches, pipeline_schedule. */
static void test_pipeline_keys(void) {
  char err[512] = "";
  pd_job_spec spec;
  CHECK_EQ_INT(parse_base(&spec), 0);
  CHECK_EQ_INT(spec.cluster.stages, 1);
  CHECK_EQ_INT(spec.training.micro_batches, 1);
  CHECK_EQ_INT(spec.training.pipeline_schedule, PD_PIPELINE_GPIPE);
  static const char pipeline[] = "name: pipe\n"
                                 "model: {type: mlp, layers: [784, 128, 64, 10]}\n"
                                 "data: {train: {features: /a, labels: /b}}\n"
                                 "training:\n"
                                 "  epochs: 1\n"
                                 "  batch_size: 32\n"
                                 "  micro_batches: 4\n"
                                 "  pipeline_schedule: 1f1b\n"
                                 "  optimizer: {lr: 0.1}\n"
                                 "cluster: {servers: 2, workers: 2, stages: 3}\n";
  CHECK_EQ_INT(parse(pipeline, &spec, err, sizeof err), 0);
  CHECK_EQ_INT(spec.cluster.stages, 3);
  CHECK_EQ_INT(spec.training.micro_batches, 4);
  CHECK_EQ_INT(spec.training.pipeline_schedule, PD_PIPELINE_1F1B);
  static const struct error_case cases[] = {
      {13,
       "cluster: {servers: 2, workers: 2, stages: 3}",
       {"cluster.stages: 3 stages need at least one affine layer each; model.layers (3 widths) "
        "has 2 (line 13)"}},
      {13,
       "cluster: {servers: 2, workers: 2, stages: 0}",
       {"cluster.stages: must be between 1 and 15, got 0 (line 13)"}},
      {0,
       "name: p\nmodel: {type: softmax, layers: [784, 10]}\ndata: {train: {features: /a, labels: "
       "/b}}\n"
       "training: {epochs: 1, batch_size: 8, optimizer: {lr: 1}}\n"
       "cluster: {servers: 1, workers: 1, stages: 2}",
       {"cluster.stages: 2 stages split an mlp's layers; model.type softmax is not split (line "
        "5)"}},
      {0,
       "name: p\nmodel: {type: mlp, layers: [784, 64, 10], dropout: 0.5}\n"
       "data: {train: {features: /a, labels: /b}}\ntraining: {epochs: 1, batch_size: 8, optimizer: "
       "{lr: 1}}\n"
       "cluster: {servers: 1, workers: 1, stages: 2}",
       {"cluster.stages: pipeline stages do not take model.dropout yet"}},
      {0,
       "name: p\nmodel: {type: mlp, layers: [784, 64, 10]}\ndata: {train: {features: /a, labels: "
       "/b}}\n"
       "training: {epochs: 1, batch_size: 8, update: asp, optimizer: {lr: 1}}\n"
       "cluster: {servers: 1, workers: 1, stages: 2}",
       {"cluster.stages: pipeline stages need training.update bsp, got update asp"}},
      {11,
       "  micro_batches: 4",
       {"training.micro_batches: only used with cluster.stages > 1, got 4 with stages 1 (line "
        "11)"}},
      {0,
       "name: p\nmodel: {type: mlp, layers: [784, 64, 10]}\ndata: {train: {features: /a, labels: "
       "/b}}\n"
       "training:\n  epochs: 1\n  batch_size: 64\n  micro_batches: 65\n"
       "  optimizer: {lr: 1}\ncluster: {servers: 1, workers: 1, stages: 2}",
       {"training.micro_batches: must be <= training.batch_size (64): each micro-batch needs a "
        "row, got 65 (line 7)"}},
      {11,
       "  pipeline_schedule: pipedream",
       {"training.pipeline_schedule: unknown value 'pipedream' (line 11); expected one of: gpipe, "
        "1f1b"}},
  };
  run_error_cases(cases, PD_ARRAY_SIZE(cases));
}

int main(int argc, char **argv) {
  PD_RUN(test_example_mixed);
  PD_RUN(test_example_block);
  PD_RUN(test_example_flow);
  PD_RUN(test_parse_uses_len);
  PD_RUN(test_defaults);
  PD_RUN(test_limits_accepted);
  PD_RUN(test_base_is_valid);
  PD_RUN(test_unknown_keys);
  PD_RUN(test_document_bounds);
  PD_RUN(test_duplicate_keys);
  PD_RUN(test_wrong_types);
  PD_RUN(test_enums);
  PD_RUN(test_ranges);
  PD_RUN(test_required);
  PD_RUN(test_federated_defaults);
  PD_RUN(test_federated_errors);
  PD_RUN(test_name);
  PD_RUN(test_syntax_errors);
  PD_RUN(test_document_shape);
  PD_RUN(test_validate_built_spec);
  PD_RUN(test_validate_test_set);
  PD_RUN(test_names);
  PD_RUN(test_checkpoint_keys);
  PD_RUN(test_compression_keys);
  PD_RUN(test_pipeline_keys);
  PD_TEST_DONE();
}
