/* The job spec: what a user submits (YAML, see README "Job spec"), parsed
 * with libyaml into a plain struct. Every error names the key path, the bad
 * value and the YAML line. */
#ifndef PANDO_SPEC_H
#define PANDO_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "pando/compression.h"

#define PD_MAX_LAYERS 16
#define PD_NAME_MAX 64
/* Bounds of a job spec document, checked by a streaming pass before the
 * document is built: its size, how deep collections nest, how many aliases
 * (*name) it has. A spec needs a few levels and no alias; deeper nesting only
 * costs the parser time (quadratically in libyaml). */
#define PD_SPEC_MAX_BYTES (1u << 20)
#define PD_SPEC_MAX_DEPTH 16
#define PD_SPEC_MAX_ALIASES 64
#define PD_PATH_MAX 1024

#define PD_PLUGIN_CONFIG_MAX 2048

enum pd_model_type {
  PD_MODEL_SOFTMAX = 1, /* softmax regression: layers [inputs, classes] */
  PD_MODEL_MLP,         /* layers [inputs, hidden..., classes] */
  PD_MODEL_LINREG,      /* linear regression, squared loss: layers [inputs, 1] */
  PD_MODEL_LOGREG,      /* binary logistic regression (dense or sparse input): [inputs, 1] */
  PD_MODEL_LENET,       /* LeNet-style CNN on input_shape: layers [inputs, classes] */
  PD_MODEL_PLUGIN,      /* a user's shared object (pando/plugin.h): layers [inputs, outputs] */
};
enum pd_activation { PD_ACT_RELU = 1, PD_ACT_TANH, PD_ACT_SIGMOID };
/* Update strategies (README "Update strategies"): bulk synchronous (with
 * optional backup workers), asynchronous, stale synchronous; or federated
 * rounds (README "Federated learning": devices train on their own data and
 * the servers average their models, McMahan et al., AISTATS 2017). */
enum pd_update { PD_UPDATE_BSP = 1, PD_UPDATE_ASP, PD_UPDATE_SSP, PD_UPDATE_FEDAVG };
/* How a federated round's average becomes the new model (server side):
 * fedavg and fedprox take it (fedprox adds the proximal term to the
 * devices' loss, Li et al., MLSys 2020); fedavgm, fedadam and fedyogi apply
 * a server optimizer to the pseudo-gradient theta_t - average (Reddi et al.,
 * ICLR 2021); scaffold corrects the devices' local steps with control
 * variates (Karimireddy et al., ICML 2020, Algorithm 1, option II). */
enum pd_aggregation {
  PD_AGG_FEDAVG = 1,
  PD_AGG_FEDAVGM,
  PD_AGG_FEDADAM,
  PD_AGG_FEDYOGI,
  PD_AGG_FEDPROX,
  PD_AGG_SCAFFOLD,
};
/* How often a worker talks to the servers (SystemDS paramserv's `freq`):
 * pull and push every batch, every training.nbatches batches (the "nfetch"
 * worker of Dean et al., NIPS 2012: SGD steps on a local copy in between),
 * or once per epoch. */
enum pd_frequency { PD_FREQ_BATCH = 1, PD_FREQ_EPOCH, PD_FREQ_NBATCHES };
/* What a server does with a pushed gradient holding NaN or infinity. */
enum pd_on_nonfinite {
  PD_NONFINITE_FAIL = 1, /* refuse the push (INVALID_ARGUMENT): the worker fails the job */
  PD_NONFINITE_SKIP,     /* count the push for its clock with a zero gradient */
};
enum pd_optimizer_type {
  PD_OPT_SGD = 1,
  PD_OPT_MOMENTUM,
  PD_OPT_ADAM,
  PD_OPT_NESTEROV,
  PD_OPT_ADAGRAD,
  PD_OPT_RMSPROP,
  /* Yogi (Zaheer et al., NeurIPS 2018), the server optimizer of fedyogi
   * only: not a training.optimizer.type. */
  PD_OPT_YOGI,
};
/* SystemDS paramserv's partitioning schemes. */
enum pd_partition {
  PD_PARTITION_DISJOINT_CONTIGUOUS = 1,
  PD_PARTITION_DISJOINT_ROUND_ROBIN,
  PD_PARTITION_DISJOINT_RANDOM,
  PD_PARTITION_OVERLAP_RESHUFFLE,
  /* Federated simulation (pando-worker --simulate): how a central data set
   * is split over simulated devices (common/src/data/partition.c). */
  PD_PARTITION_IID,       /* shuffled, equal sizes */
  PD_PARTITION_DIRICHLET, /* label mix of each device ~ Dir(alpha p) (Hsu et al., 2019) */
  PD_PARTITION_SHARDS,    /* sorted by label, shards_per_device shards each (McMahan et al.) */
};
enum pd_normalize { PD_NORMALIZE_NONE = 1, PD_NORMALIZE_STANDARD, PD_NORMALIZE_MINMAX };
enum pd_lr_schedule { PD_LR_CONSTANT = 1, PD_LR_STEP, PD_LR_EXPONENTIAL, PD_LR_COSINE };
enum pd_batch_schedule { PD_BATCH_CONSTANT = 1, PD_BATCH_INCREASE };
/* The order of a pipeline stage's forward and backward passes over the
 * micro-batches of a mini-batch (pando/pipeline.h). */
enum pd_pipeline_schedule { PD_PIPELINE_GPIPE = 1, PD_PIPELINE_1F1B };

typedef struct pd_model_spec {
  enum pd_model_type type;
  int nlayers;                       /* entries used in layers[]: 2 for softmax, >= 2 for mlp */
  int layers[PD_MAX_LAYERS];         /* widths: inputs first, classes last */
  enum pd_activation activation;     /* hidden layers of an mlp */
  uint64_t seed;                     /* initialisation seed */
  double dropout;                    /* mlp: rate of dropout after each hidden layer (0 = none) */
  int ninput_shape;                  /* entries used in input_shape[] */
  int input_shape[3];                /* lenet: [channels, height, width]; product = layers[0] */
  char path[PD_PATH_MAX];            /* plugin: the shared object */
  char config[PD_PLUGIN_CONFIG_MAX]; /* plugin: model.config as "key=value\n" lines */
  char init[PD_PATH_MAX]; /* model.init: a safetensors file to start from ("": the seed) */
} pd_model_spec;

typedef struct pd_data_files {
  char features[PD_PATH_MAX]; /* idx: IDX file (optionally .gz) of the inputs; csv, libsvm: the file
                               */
  char labels[PD_PATH_MAX];   /* idx: IDX file (optionally .gz) of the labels; else unused */
} pd_data_files;

/* data.format: synthetic: seeded sparse binary classification data. */
typedef struct pd_synthetic_spec {
  uint64_t rows;      /* training rows */
  uint64_t test_rows; /* test rows (0: no test set) */
  int features;       /* size of the feature space */
  int nnz;            /* non-zero features per row */
  uint64_t seed;
} pd_synthetic_spec;

typedef struct pd_optimizer_spec {
  enum pd_optimizer_type type;
  double lr;              /* learning rate (the schedule's starting value) */
  double weight_decay;    /* L2: the gradient gets weight_decay * x added */
  double decay_rate;      /* RMSprop: c = decay_rate*c + (1-decay_rate)*g^2 */
  double momentum;        /* mu of momentum and Nesterov: v = mu*v - lr*g; x = x + v */
  double beta1;           /* Adam: decay of the first moment */
  double beta2;           /* Adam: decay of the second moment */
  double epsilon;         /* Adam, AdaGrad, RMSprop: added to the root of the second moment */
  int no_bias_correction; /* Adam as FedAdam uses it (Reddi et al.): no 1/(1 - beta^t); not a YAML
                             key */
} pd_optimizer_spec;

typedef struct pd_job_spec {
  char name[PD_NAME_MAX]; /* DNS-1123-like: [a-z0-9-], starts with a letter */
  pd_model_spec model;
  struct {
    char format[16]; /* "idx", "csv", "libsvm" or "synthetic" */
    pd_data_files train;
    pd_data_files test; /* test.features empty: no evaluation */
    enum pd_partition partition;
    uint64_t seed;               /* disjoint_random, overlap_reshuffle and training.shuffle */
    enum pd_normalize normalize; /* of the features, with the training set's statistics */
    char label_column[64];       /* csv: the label column's header name or 0-based index */
    int header;                  /* csv: the first line names the columns */
    pd_synthetic_spec synthetic;
    double alpha;          /* dirichlet: concentration (small: few labels per device) */
    int shards_per_device; /* shards: label-sorted shards each device gets */
  } data;
  struct {
    int epochs;
    int batch_size;
    enum pd_update update;
    int staleness;               /* ssp: s, how many clocks a worker may run ahead of the slowest */
    int backup_workers;          /* bsp: b extra workers; each round takes the first N gradients */
    enum pd_frequency frequency; /* batches per pull/push: 1, nbatches or a whole epoch */
    int nbatches;                /* frequency nbatches: k, the batches between a pull and a push */
    int threads;                 /* Hogwild: compute threads sharing the worker's local copy */
    enum pd_on_nonfinite on_nonfinite; /* gradients with NaN or infinity */
    pd_optimizer_spec optimizer;
    int shuffle; /* reshuffle each worker's rows every epoch */
    /* cluster.stages > 1: each mini-batch is cut into micro_batches parts
     * (pando/pipeline.h), run through the stages in pipeline_schedule's order. */
    int micro_batches;
    enum pd_pipeline_schedule pipeline_schedule;
    struct {
      enum pd_lr_schedule type;
      int step_epochs; /* step: multiply by gamma every step_epochs epochs */
      double gamma;    /* step, exponential: the factor */
      double min_lr;   /* cosine: the floor */
    } lr_schedule;
    struct {
      enum pd_batch_schedule type;
      int step_epochs;    /* increase: multiply the batch size every step_epochs epochs */
      double factor;      /* by this factor (Smith et al., ICLR 2018) */
      int max_batch_size; /* up to this size */
    } batch_schedule;
    /* Gradient codecs per direction (README "Compression"): what a
     * worker's pushes and the answers to its pulls are encoded with. */
    struct {
      enum pd_codec push, pull;   /* PD_CODEC_NONE: float32 as is */
      int block;                  /* int8, onebit: values per block; 0: the method's default */
      double ratio;               /* topk, randomk: the fraction of the values sent */
      double threshold;           /* threshold: tau, the |v| a value must exceed */
      int error_feedback;         /* lossy pushes keep the residual and add it to the next */
      double momentum_correction; /* topk: DGC's momentum m (0: off) */
    } compression;
    /* training.update fedavg: the rounds (README "Federated learning"). */
    struct {
      int rounds;                   /* rounds to commit */
      double clients_per_round;     /* K >= 1 devices, or a fraction (0, 1) of the eligible ones */
      double over_selection;        /* select ceil(over_selection K) (Bonawitz et al.: 1.3) */
      int min_reports;              /* the round commits with the first min_reports reports; 0: K */
      double round_timeout_sec;     /* fewer reports by then: the round is abandoned */
      double selection_timeout_sec; /* fewer idle than it selects: wait this long */
      int max_attempts;             /* attempts of one round before the job fails */
      int local_epochs;             /* E: epochs over its own data each device runs per round */
      int local_batch_size;         /* B; 0: the whole local data set (FedSGD with E = 1) */
      enum pd_aggregation aggregation;
      double server_lr;         /* eta of fedavgm/fedadam/fedyogi, eta_g of scaffold (fedavg,
                                   fedprox: 1) */
      double server_momentum;   /* fedavgm's beta */
      double beta1, beta2, tau; /* fedadam/fedyogi (Reddi et al.: 0.9, 0.99, 1e-3) */
      double mu;                /* fedprox: (mu/2)||w - w_t||^2 in the local loss */
      int eval_every;           /* evaluate the global model every k committed rounds */
      int swa_from;             /* > 0: from this committed round on the servers serve (for
                                   evaluation and export) the running average of the global
                                   models (SWA); devices still train from the last one */
      uint64_t seed;            /* seeds the selection of each round */
      char require[256];        /* comma-separated device attributes, e.g. "charging,unmetered" */
    } federated;
  } training;
  struct {
    int servers;
    int workers;
    int stages; /* pipeline stages per replica (1: no pipeline); workers x stages nodes */
    double wait_timeout_sec; /* how long the coordinator waits for the nodes */
  } cluster;
  /* Consistent checkpoints of all the job's shards (README "Checkpoints"):
   * at most one of the every_* is set; all 0: no checkpoints. */
  struct {
    int every_epochs;     /* at the end of every N-th epoch */
    int every_clocks;     /* every N clocks (BSP: rounds) */
    double every_seconds; /* about every N seconds, at the next clock */
    int keep;             /* complete checkpoints kept on disk */
  } checkpoint;
  /* Read only by `pando-worker --simulate` (federated experiments); the
   * cluster ignores it. */
  struct {
    int devices;          /* simulated devices (the --simulate default) */
    double dropout_rate;  /* probability that a selected device drops out of its round */
    double slow_fraction; /* fraction of devices that are slow */
    double slowdown;      /* how much slower they train */
    uint64_t seed;        /* which devices are slow and which drop out */
  } simulation;
} pd_job_spec;

/* Whether the spec asks for checkpoints (one of checkpoint.every_*). */
int pd_job_spec_checkpoints(const pd_job_spec *spec);

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
/* The codecs of training.compression: for the pushes (*push) and for the
 * answers to pulls (*pull; no error feedback). */
void pd_job_spec_compression(const pd_job_spec *spec, pd_codec_params *push, pd_codec_params *pull);

const char *pd_update_name(enum pd_update update);
const char *pd_frequency_name(enum pd_frequency frequency);
const char *pd_model_type_name(enum pd_model_type type);
const char *pd_optimizer_name(enum pd_optimizer_type type);
const char *pd_partition_name(enum pd_partition partition);
const char *pd_aggregation_name(enum pd_aggregation aggregation);

/* Devices a federated round selects when `eligible` devices are online:
 * K = clients_per_round (or ceil(fraction x eligible), at least 1), times
 * over_selection, rounded up. */
uint32_t pd_spec_round_goal(const pd_job_spec *spec, uint32_t eligible);
uint32_t pd_spec_round_selected(const pd_job_spec *spec, uint32_t eligible);
/* The reports a round commits with: min_reports, or K when it is 0. */
uint32_t pd_spec_round_min_reports(const pd_job_spec *spec, uint32_t eligible);

#endif
