/* The job spec: what a user submits (YAML, see README "Job spec"), parsed
 * with libyaml into a plain struct. Every error names the key path, the bad
 * value and the YAML line. */
#ifndef PANDO_SPEC_H
#define PANDO_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define PD_MAX_LAYERS 16
#define PD_NAME_MAX 64
#define PD_PATH_MAX 1024

enum pd_model_type { PD_MODEL_SOFTMAX = 1, PD_MODEL_MLP };
enum pd_activation { PD_ACT_RELU = 1, PD_ACT_TANH, PD_ACT_SIGMOID };
enum pd_update { PD_UPDATE_BSP = 1, PD_UPDATE_ASP };
enum pd_optimizer_type { PD_OPT_SGD = 1, PD_OPT_MOMENTUM, PD_OPT_ADAM };
enum pd_partition { PD_PARTITION_DISJOINT_CONTIGUOUS = 1 };

typedef struct pd_model_spec {
  enum pd_model_type type;
  int nlayers;               /* entries used in layers[]: 2 for softmax, >= 2 for mlp */
  int layers[PD_MAX_LAYERS]; /* widths: inputs first, classes last */
  enum pd_activation activation; /* hidden layers of an mlp */
  uint64_t seed;             /* initialisation seed */
} pd_model_spec;

typedef struct pd_data_files {
  char features[PD_PATH_MAX]; /* IDX file (optionally .gz) of the inputs */
  char labels[PD_PATH_MAX];   /* IDX file (optionally .gz) of the labels */
} pd_data_files;

typedef struct pd_optimizer_spec {
  enum pd_optimizer_type type;
  double lr;       /* learning rate */
  double momentum; /* mu of SGD with momentum: v = mu*v - lr*g; x = x + v */
  double beta1;    /* Adam: decay of the first moment */
  double beta2;    /* Adam: decay of the second moment */
  double epsilon;  /* Adam: added to sqrt(v) */
} pd_optimizer_spec;

typedef struct pd_job_spec {
  char name[PD_NAME_MAX]; /* DNS-1123-like: [a-z0-9-], starts with a letter */
  pd_model_spec model;
  struct {
    char format[16];       /* "idx" */
    pd_data_files train;
    pd_data_files test;    /* test.features empty: no evaluation */
    enum pd_partition partition;
  } data;
  struct {
    int epochs;
    int batch_size;
    enum pd_update update;
    pd_optimizer_spec optimizer;
  } training;
  struct {
    int servers;
    int workers;
    double wait_timeout_sec; /* how long the coordinator waits for the nodes */
  } cluster;
} pd_job_spec;

/* Parses and validates a YAML job spec held in `text` (`len` bytes) into
 * `spec`. Unknown keys, wrong types and out-of-range values are errors.
 * Returns 0, or -PD_EINVAL_SPEC with a message in `err` that names the key
 * path, the value and the line, e.g.
 * "training.batch_size: must be between 1 and 65536, got 0 (line 9)". */
int pd_job_spec_parse(const char *text, size_t len, pd_job_spec *spec, char *err, size_t errlen);

/* Checks the semantic rules of an already-filled spec (also run by
 * pd_job_spec_parse). Returns 0 or -PD_EINVAL_SPEC with a message naming the
 * key path and value. */
int pd_job_spec_validate(const pd_job_spec *spec, char *err, size_t errlen);

/* Names used in YAML and in status output for the enums above. */
const char *pd_update_name(enum pd_update update);
const char *pd_model_type_name(enum pd_model_type type);
const char *pd_optimizer_name(enum pd_optimizer_type type);

#endif
