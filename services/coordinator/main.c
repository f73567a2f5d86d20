/* pando-coordinator: wires up configuration, logging, the RPC server and
 * the Coordinator service, then serves until SIGTERM. */
#include <stddef.h>
#include <stdio.h>

#include "coordinator.h"
#include "pando/config.h"
#include "pando/daemon.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/rpc.h"
#include "pando/util.h"

typedef struct coord_config {
  pd_daemon_settings daemon; /* listen, name, port files, metrics, plugin_dir, log_level */
  pd_data_settings data;     /* data_roots and the limits of job data files */
  int heartbeat_ms;
  double node_timeout;
  int keep_models, keep_jobs;
  int dashboard;
  char data_dir[1024];
} coord_config;

#define S(field)                                                                                   \
  PD_CFG_STRING, offsetof(coord_config, field), sizeof(((coord_config *)0)->field), 0, 0
static const pd_config_option options[] = {
    PD_DAEMON_SETTINGS(coord_config, daemon, "0.0.0.0:7070",
                       "address to serve gRPC on (port 0 picks a free one)", "coordinator",
                       "0.0.0.0:9070"),
    PD_DATA_SETTINGS(coord_config, data),
    {"heartbeat_ms", PD_CFG_INT, offsetof(coord_config, heartbeat_ms), 0, 10, 60000, "200",
     "how often servers and workers send heartbeats", NULL},
    {"node_timeout", PD_CFG_DOUBLE, offsetof(coord_config, node_timeout), 0, 0.1, 3600, "10",
     "seconds without a heartbeat after which a node is dead and its job fails (or recovers)",
     NULL},
    {"keep_models", PD_CFG_INT, offsetof(coord_config, keep_models), 0, 0, 1000000, "16",
     "succeeded jobs whose model stays on the servers (pandoctl export, evaluation); older "
     "ones' shards are dropped",
     NULL},
    {"keep_jobs", PD_CFG_INT, offsetof(coord_config, keep_jobs), 0, 1, 1000000, "1000",
     "finished jobs the coordinator remembers (status, history)", NULL},
    {"data_dir", S(data_dir), "",
     "folder of the coordinator's state (coordinator.db, SQLite): jobs, their history and the "
     "id counters survive a restart; empty: in memory only",
     NULL},
    {"dashboard", PD_CFG_BOOL, offsetof(coord_config, dashboard), 0, 0, 1, "false",
     "serve a read-only web dashboard of the jobs and nodes at /dashboard on the metrics port",
     NULL},
};

static void cron(void *user) { pd_coord_cron(user); }

int main(int argc, char **argv) {
  coord_config cfg = {0};
  char addr[300];
  int rc = pd_daemon_configure(options, PD_ARRAY_SIZE(options), &cfg, "pando-coordinator", argc,
                               argv, &cfg.daemon);
  if (rc >= 0)
    return rc;
  pd_model_allow_plugins(cfg.daemon.plugin_dir);
  if (pd_daemon_data_limits(&cfg.data) != 0)
    return 2;
  pd_daemon_signals_init();
  pd_rpc_init();

  pd_loop *loop = pd_loop_new();
  pd_rpc_server *srv = pd_rpc_server_new(loop);
  pd_coord_options opt = {cfg.heartbeat_ms / 1000.0, cfg.node_timeout, (uint32_t)cfg.keep_models,
                          (uint32_t)cfg.keep_jobs,   cfg.dashboard,    cfg.data_dir};
  char err[1400] = "";
  pd_coord *coord = pd_coord_new(loop, &opt, err, sizeof err);
  if (!coord) {
    PD_ERROR("%s", err);
    return 1;
  }
  pd_coord_register(coord, srv);
  if (pd_daemon_start(srv, &cfg.daemon, "", "Coordinator", addr, sizeof addr) != 0)
    return 1;

  pd_daemon_serve(loop, 0.05, cron, coord, NULL);

  PD_INFO("stopping");
  pd_rpc_server_free(srv);
  pd_coord_free(coord);
  pd_loop_free(loop);
  pd_metrics_stop();
  pd_rpc_shutdown();
  return 0;
}
