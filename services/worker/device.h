/* pando-worker's device role: federated devices that hold their own data,
 * check in with a selector (pace steering: within the window each answer
 * gives) and, when selected, pull theta_t from every shard, train locally
 * (training.federated.local_epochs x local_batch_size with the job's
 * training.optimizer, plus FedProx's proximal term), push theta_k - theta_t
 * weighted by their n_k to every shard and report to the coordinator.
 * `--simulate N` runs N such devices in one process, each with its own
 * partition of a central data set (data.partition iid, dirichlet, shards),
 * its own speed (simulation.slow_fraction) and dropout behaviour
 * (simulation.dropout_rate: a selected device drops out of its round). */
#ifndef PANDO_WORKER_DEVICE_H
#define PANDO_WORKER_DEVICE_H

#include <stdint.h>

typedef struct pd_device_options {
  const char *selectors;  /* comma-separated selector addresses; each device uses one */
  const char *data;       /* a job spec file: its `data` section (and `simulation`) */
  int simulate;           /* N simulated devices; 0: one device with all the data */
  const char *device_id;  /* the device's id; simulated: the prefix of "<prefix>-<i>" */
  int threads;            /* devices training at once */
  double dropout_rate;    /* < 0: simulation.dropout_rate of the data spec */
  double slow_fraction;   /* < 0: simulation.slow_fraction */
  const char *jobs;       /* comma-separated job names served; "" any */
  const char *attributes; /* comma-separated attributes, e.g. "charging,unmetered" */
} pd_device_options;

/* Runs the devices until SIGTERM/SIGINT. Returns the exit code (2 for a bad
 * data spec, named on stderr). */
int pd_device_main(const pd_device_options *options);

/* Whether device `device_id` drops out of round `round` under `rate`: a
 * seeded coin, so a run is reproducible. */
int pd_device_drops(uint64_t seed, const char *device_id, uint64_t round, double rate);

#endif
