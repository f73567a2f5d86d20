/* pando-worker: wires up configuration, logging and compute threads, then
 * runs the worker daemon (services/worker/worker.c). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "pando/config.h"
#include "pando/daemon.h"
#include "pando/kernels.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/rpc.h"
#include "pando/util.h"
#include "train.h"
#include "worker.h"

typedef struct worker_config {
  pd_daemon_settings daemon;   /* listen, name, port files, metrics, plugin_dir, log_level */
  pd_data_settings data_files; /* data_roots and the limits of job data files */
  char coordinator[256];
  char advertise[256];
  int threads;
  double slowdown;
  int batch_delay_ms;
  int trace_events;
  double peer_timeout;
  char standalone[1024];
  char role[16];
  char selector[1024];
  char data[1024];
  int simulate;
  char device_id[64];
  int device_threads;
  double dropout_rate;
  double slow_fraction;
  char jobs[512];
  char attributes[512];
} worker_config;

static const char *const worker_roles[] = {"worker", "device", NULL};

#define S(field)                                                                                   \
  PD_CFG_STRING, offsetof(worker_config, field), sizeof(((worker_config *)0)->field), 0, 0
static const pd_config_option options[] = {
    PD_DAEMON_SETTINGS(worker_config, daemon, "0.0.0.0:0",
                       "address of the health service (port 0 picks a free one)", "worker",
                       "0.0.0.0:9100"),
    PD_DATA_SETTINGS(worker_config, data_files),
    {"coordinator", S(coordinator), "127.0.0.1:7070", "coordinator address", NULL},
    {"advertise", S(advertise), "", "address to register with the coordinator (default: host:port)",
     NULL},
    {"threads", PD_CFG_INT, offsetof(worker_config, threads), 0, 1, PD_KERNELS_MAX_THREADS, "1",
     "compute threads of the gradient: each computes a slice of every batch (the math libraries "
     "run single-threaded in each)",
     NULL},
    {"slowdown", PD_CFG_DOUBLE, offsetof(worker_config, slowdown), 0, 1, 1000, "1",
     "testing aid: make this worker a straggler: each batch takes slowdown x as long (sleeping "
     "(slowdown - 1) x its compute time, batch_delay_ms included)",
     NULL},
    {"batch_delay_ms", PD_CFG_INT, offsetof(worker_config, batch_delay_ms), 0, 0, 3600000, "0",
     "testing aid: sleep this many milliseconds after each batch (simulated compute time)", NULL},
    {"trace_events", PD_CFG_INT, offsetof(worker_config, trace_events), 0, 0, 1 << 20, "8192",
     "pandoctl trace: the spans of the worker loop kept until they are reported (512 a "
     "progress report, every 0.5 s or as soon as 512 wait; about 56 bytes each; the oldest "
     "overwritten and counted when the ring is full); 0 turns tracing off",
     NULL},
    {"peer_timeout", PD_CFG_DOUBLE, offsetof(worker_config, peer_timeout), 0, 0.1, 86400, "60",
     "pipelines: seconds a Peer send may take, and a stage waits for its neighbour's tensor, "
     "before the job fails (or recovers) with an error naming the peer",
     NULL},
    {"standalone", S(standalone), "",
     "train this job spec in this process, without servers or coordinator, and exit", NULL},
    {"role", S(role), "worker",
     "worker (data-centre jobs from the coordinator) or device (federated: checks in with "
     "--selector, trains on its own --data)",
     worker_roles},
    {"selector", S(selector), "127.0.0.1:7080",
     "device: comma-separated selector addresses (simulated devices spread over them)", NULL},
    {"data", S(data), "",
     "device: a job spec file whose data section is the device's own data (and, with "
     "--simulate, the central data set to partition by data.partition)",
     NULL},
    {"simulate", PD_CFG_INT, offsetof(worker_config, simulate), 0, 0, 1000000, "0",
     "device: run this many simulated devices in this process, each with its own partition", NULL},
    {"device_id", S(device_id), "device",
     "device: the device's id (simulated: the prefix of <id>-<i>)", NULL},
    {"device_threads", PD_CFG_INT, offsetof(worker_config, device_threads), 0, 1, 256, "2",
     "device: rounds trained at once (simulated devices share them)", NULL},
    {"dropout_rate", PD_CFG_DOUBLE, offsetof(worker_config, dropout_rate), 0, -1, 1, "-1",
     "device: testing aid: probability that a selected device drops out of its round (-1: the "
     "data spec's simulation.dropout_rate)",
     NULL},
    {"slow_fraction", PD_CFG_DOUBLE, offsetof(worker_config, slow_fraction), 0, -1, 1, "-1",
     "device: testing aid: fraction of slow devices (-1: simulation.slow_fraction)", NULL},
    {"jobs", S(jobs), "", "device: comma-separated job names it serves (empty: any)", NULL},
    {"attributes", S(attributes), "",
     "device: comma-separated attributes for eligibility, e.g. charging,unmetered", NULL},
};

int main(int argc, char **argv) {
  worker_config cfg = {0};
  int rc = pd_daemon_configure(options, PD_ARRAY_SIZE(options), &cfg, "pando-worker", argc, argv,
                               &cfg.daemon);
  if (rc >= 0)
    return rc;
  pd_model_allow_plugins(cfg.daemon.plugin_dir);
  if (pd_daemon_data_limits(&cfg.data_files) != 0)
    return 2;
  pd_kernels_set_threads(cfg.threads);
  pd_daemon_signals_init();
  if (cfg.standalone[0])
    return pd_train_standalone(cfg.standalone);
  pd_rpc_init();
  if (strcmp(cfg.role, "device") == 0) {
    if (!cfg.data[0]) {
      fprintf(stderr, "pando-worker: data: --role device needs --data (a spec with its data)\n");
      return 2;
    }
    pd_device_options dev = {cfg.selector,      cfg.data,           cfg.simulate,
                             cfg.device_id,     cfg.device_threads, cfg.dropout_rate,
                             cfg.slow_fraction, cfg.jobs,           cfg.attributes};
    if (pd_daemon_metrics(cfg.daemon.metrics_listen, cfg.daemon.metrics_port_file) != 0)
      return 1;
    rc = pd_device_main(&dev);
    pd_metrics_stop();
    pd_rpc_shutdown();
    return rc;
  }
  pd_worker_options opt = {cfg.coordinator,
                           cfg.daemon.listen,
                           cfg.advertise,
                           cfg.daemon.name,
                           cfg.daemon.port_file,
                           cfg.slowdown,
                           cfg.batch_delay_ms / 1000.0,
                           (uint32_t)cfg.trace_events,
                           cfg.peer_timeout,
                           NULL};
  if (pd_daemon_metrics(cfg.daemon.metrics_listen, cfg.daemon.metrics_port_file) != 0)
    return 1;
  rc = pd_worker_main(&opt);
  pd_metrics_stop();
  pd_rpc_shutdown();
  return rc;
}
