/* pando-selector: wires up configuration, logging, the RPC server, the
 * Selector service and the coordinator session, then serves until SIGTERM. */
#include <stddef.h>
#include <stdio.h>

#include "pando.pb-c.h"
#include "pando/config.h"
#include "pando/daemon.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/rpc.h"
#include "pando/session.h"
#include "pando/util.h"
#include "selector.h"

typedef struct selector_config {
  pd_daemon_settings daemon; /* listen, name, port files, metrics, plugin_dir, log_level */
  char advertise[256];
  char coordinator[256];
  double checkin_rate;
  int min_reconnect_ms, max_reconnect_ms, idle_reconnect_ms;
  int max_devices;
} selector_config;

#define S(field)                                                                                   \
  PD_CFG_STRING, offsetof(selector_config, field), sizeof(((selector_config *)0)->field), 0, 0
#define I(field, lo, hi) PD_CFG_INT, offsetof(selector_config, field), 0, lo, hi
static const pd_config_option options[] = {
    PD_DAEMON_SETTINGS(selector_config, daemon, "0.0.0.0:7080",
                       "address to serve gRPC on (port 0 picks a free one)", "selector",
                       "0.0.0.0:9080"),
    {"advertise", S(advertise), "", "address to register with the coordinator (default: host:port)",
     NULL},
    {"coordinator", S(coordinator), "", "coordinator address; empty runs without one", NULL},
    {"checkin_rate", PD_CFG_DOUBLE, offsetof(selector_config, checkin_rate), 0, 0.01, 1e6, "50",
     "pace steering: check-ins per second the selector aims at for a large population", NULL},
    {"min_reconnect_ms", I(min_reconnect_ms, 10, 3600000), "500",
     "pace steering: shortest reconnect window (small populations)", NULL},
    {"max_reconnect_ms", I(max_reconnect_ms, 10, 86400000), "60000",
     "pace steering: longest reconnect window", NULL},
    {"idle_reconnect_ms", I(idle_reconnect_ms, 10, 86400000), "10000",
     "pace steering: window while no job needs devices", NULL},
    {"max_devices", I(max_devices, 1, 100000000), "1000000",
     "devices the selector holds at most (each costs about 200 bytes)", NULL},
};

typedef struct daemon_state {
  pd_selector *selector;
  pd_session *session;
} daemon_state;

static void cron(void *user) {
  daemon_state *st = user;
  pd_selector_cron(st->selector);
  if (st->session)
    pd_session_tick(st->session);
}

int main(int argc, char **argv) {
  selector_config cfg = {0};
  char addr[300];
  int rc = pd_daemon_configure(options, PD_ARRAY_SIZE(options), &cfg, "pando-selector", argc, argv,
                               &cfg.daemon);
  if (rc >= 0)
    return rc;
  pd_daemon_signals_init();
  pd_rpc_init();

  pd_loop *loop = pd_loop_new();
  pd_rpc_server *srv = pd_rpc_server_new(loop);
  pd_selector_options opt = {{cfg.checkin_rate, cfg.min_reconnect_ms / 1000.0,
                              cfg.max_reconnect_ms / 1000.0, cfg.idle_reconnect_ms / 1000.0},
                             cfg.coordinator,
                             (size_t)cfg.max_devices,
                             1.0,
                             pd_now_ns()};
  daemon_state st = {pd_selector_new(&opt), NULL};
  pd_selector_register(st.selector, srv);
  if (pd_daemon_start(srv, &cfg.daemon, cfg.advertise, "Selector", addr, sizeof addr) != 0)
    return 1;
  if (cfg.coordinator[0])
    st.session = pd_session_new(loop, cfg.coordinator, PANDO__V1__ROLE__ROLE_SELECTOR, addr,
                                cfg.daemon.name, NULL, NULL);

  pd_daemon_serve(loop, 0.05, cron, &st, NULL);

  PD_INFO("stopping");
  pd_session_free(st.session);
  pd_rpc_server_free(srv);
  pd_selector_free(st.selector);
  pd_loop_free(loop);
  pd_metrics_stop();
  pd_rpc_shutdown();
  return 0;
}
