/* pando-ps: wires up configuration, logging, the RPC server, the
 * ParameterServer service and the coordinator session, then serves. */
#include <cblas.h>
#include <stddef.h>
#include <stdio.h>

#include "pando.pb-c.h"
#include "pando/config.h"
#include "pando/daemon.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/model.h"
#include "pando/rpc.h"
#include "pando/session.h"
#include "pando/util.h"
#include "ps.h"

typedef struct ps_config {
  pd_daemon_settings daemon; /* listen, name, port files, metrics, plugin_dir, log_level */
  char advertise[256];
  char coordinator[256];
  char data_dir[1024];
  int memory_limit;
  int trace_events;
} ps_config;

#define S(field) PD_CFG_STRING, offsetof(ps_config, field), sizeof(((ps_config *)0)->field), 0, 0
static const pd_config_option options[] = {
    PD_DAEMON_SETTINGS(ps_config, daemon, "0.0.0.0:7000",
                       "address to serve gRPC on (port 0 picks a free one)", "ps", "0.0.0.0:9000"),
    {"advertise", S(advertise), "", "address to register with the coordinator (default: host:port)",
     NULL},
    {"coordinator", S(coordinator), "", "coordinator address; empty runs without one", NULL},
    {"data_dir", S(data_dir), "", "folder of the shards' checkpoints (empty: no checkpoints)",
     NULL},
    {"memory_limit", PD_CFG_INT, offsetof(ps_config, memory_limit), 0, 0, 1 << 30, "0",
     "MiB the shards of all jobs may take (0: 3/4 of the machine's or the cgroup's memory)", NULL},
    {"trace_events", PD_CFG_INT, offsetof(ps_config, trace_events), 0, 0, 1 << 24, "65536",
     "pandoctl trace: the spans of calls each job's shard keeps (the oldest overwritten; about "
     "56 bytes each); 0 turns tracing off",
     NULL},
};

static void cron(void *user) {
  if (user)
    pd_session_tick(user);
}

int main(int argc, char **argv) {
  ps_config cfg = {0};
  char err[512], addr[300];
  int rc = pd_daemon_configure(options, PD_ARRAY_SIZE(options), &cfg, "pando-ps", argc, argv,
                               &cfg.daemon);
  if (rc >= 0)
    return rc;
  pd_model_allow_plugins(cfg.daemon.plugin_dir);
  /* The shards' BLAS calls are memory-bound vector operations a second
   * thread does not speed up, and idle OpenBLAS threads spin on the cores
   * gRPC needs: one thread is 3x cheaper per 64 MiB push. */
  openblas_set_num_threads(1);
  pd_daemon_signals_init();
  pd_rpc_init();

  pd_loop *loop = pd_loop_new();
  pd_rpc_server *srv = pd_rpc_server_new(loop);
  pd_ps *ps = pd_ps_new();
  if (pd_ps_set_data_dir(ps, cfg.data_dir, err, sizeof err) != 0) {
    PD_ERROR("%s", err);
    return 1;
  }
  pd_ps_set_memory_limit(ps, (uint64_t)cfg.memory_limit << 20);
  pd_ps_set_trace_events(ps, (uint32_t)cfg.trace_events);
  pd_ps_register(ps, srv);
  if (pd_daemon_start(srv, &cfg.daemon, cfg.advertise, "ParameterServer", addr, sizeof addr) != 0)
    return 1;
  pd_session *session = NULL;
  if (cfg.coordinator[0])
    session = pd_session_new(loop, cfg.coordinator, PANDO__V1__ROLE__ROLE_SERVER, addr,
                             cfg.daemon.name, NULL, NULL);
  if (session)
    pd_session_set_memory(session, pd_ps_memory_limit(ps));

  pd_daemon_serve(loop, 0.05, cron, session, NULL);

  PD_INFO("stopping");
  pd_session_free(session);
  pd_rpc_server_free(srv);
  pd_ps_free(ps);
  pd_loop_free(loop);
  pd_metrics_stop();
  pd_rpc_shutdown();
  return 0;
}
