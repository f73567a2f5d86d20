/* What every Pando daemon does the same way: SIGINT/SIGTERM only set a flag
 * that the event loops poll, and the loop runs a periodic cron function
 * (redis serverCron). */
#ifndef PANDO_DAEMON_H
#define PANDO_DAEMON_H

#include <signal.h>
#include <stddef.h>

#include "pando/config.h"
#include "pando/log.h"
#include "pando/rpc.h"

/* The settings every daemon has. A daemon's config struct holds one, and its
 * option table starts with PD_DAEMON_SETTINGS() rows for it. */
typedef struct pd_daemon_settings {
  char listen[256];             /* gRPC address ("host:port"; port 0 picks one) */
  char name[64];                /* in logs, and in `pandoctl cluster` for nodes */
  char port_file[1024];         /* where the bound port is written ("": nowhere) */
  char metrics_listen[256];     /* the /metrics HTTP address ("": off) */
  char metrics_port_file[1024]; /* where the metrics port is written */
  char plugin_dir[1024];        /* the folder of trusted model plugins ("": none) */
  char log_level[16];           /* debug, info, warn or error */
  char tls_cert[1024];          /* PEM certificate of this node ("": no TLS on the server port) */
  char tls_key[1024];           /* PEM private key of tls_cert */
  char tls_ca[1024];            /* PEM CA that peers' certificates must chain to */
  char tls_client_auth[16];     /* none, or require: servers demand client certificates (mTLS) */
  char token_file[1024];        /* file holding the cluster token ("": no token) */
} pd_daemon_settings;

/* The values of tls_client_auth. */
extern const char *const pd_daemon_client_auth_names[];

#define PD__DAEMON_ROW(type, member, field)                                                        \
  PD_CFG_STRING, offsetof(type, member.field), sizeof(((type *)0)->member.field), 0, 0
#define PD__DAEMON_SECRET(type, member, field)                                                     \
  PD_CFG_SECRET, offsetof(type, member.field), sizeof(((type *)0)->member.field), 0, 0
/* The option rows of the pd_daemon_settings `member` of config struct
 * `type`, with this daemon's defaults for listen (and its help text), name
 * and metrics_listen. */
#define PD_DAEMON_SETTINGS(type, member, listen_default, listen_help, name_default,                \
                           metrics_default)                                                        \
  {"listen", PD__DAEMON_ROW(type, member, listen), listen_default, listen_help, NULL},             \
      {"name", PD__DAEMON_ROW(type, member, name), name_default,                                   \
       "name shown in logs (and by `pandoctl cluster` for servers and workers)", NULL},            \
      {"port_file", PD__DAEMON_ROW(type, member, port_file), "",                                   \
       "write the bound port to this file", NULL},                                                 \
      {"metrics_listen", PD__DAEMON_ROW(type, member, metrics_listen), metrics_default,            \
       "address of the Prometheus /metrics HTTP endpoint (empty: off; port 0 picks one)", NULL},   \
      {"metrics_port_file", PD__DAEMON_ROW(type, member, metrics_port_file), "",                   \
       "write the metrics port to this file", NULL},                                               \
      {"plugin_dir", PD__DAEMON_ROW(type, member, plugin_dir), "",                                 \
       "folder of trusted model plugins jobs may name (empty: plugins refused)", NULL},            \
      {"tls_cert", PD__DAEMON_ROW(type, member, tls_cert), "",                                     \
       "PEM certificate of this node: TLS on the gRPC port, client certificate to peers", NULL},   \
      {"tls_key", PD__DAEMON_ROW(type, member, tls_key), "",                                       \
       "PEM private key of tls_cert (unencrypted)", NULL},                                         \
      {"tls_ca", PD__DAEMON_ROW(type, member, tls_ca), "",                                         \
       "PEM CA certificate(s) peers must chain to; set: outgoing calls use TLS", NULL},            \
      {"tls_client_auth", PD__DAEMON_ROW(type, member, tls_client_auth), "none",                   \
       "none, or require: clients need a certificate signed by tls_ca (mTLS; roles from its CN)",  \
       pd_daemon_client_auth_names},                                                               \
      {"token_file", PD__DAEMON_SECRET(type, member, token_file), "",                              \
       "file holding the cluster token every call must carry (empty: no token)", NULL},            \
  {                                                                                                \
    "log_level", PD__DAEMON_ROW(type, member, log_level), "info", "debug, info, warn or error",    \
        pd_log_level_names                                                                         \
  }

/* The data-file settings of the daemons that read job data (coordinator,
 * worker); see pd_data_set_limits() in pando/fileio.h. */
typedef struct pd_data_settings {
  char roots[4096];          /* data_roots: comma-separated folders */
  double max_bytes;          /* data_max_bytes */
  double max_inflated_bytes; /* data_max_inflated_bytes */
  double max_gzip_ratio;     /* data_max_gzip_ratio */
} pd_data_settings;

/* The option rows of the pd_data_settings `member` of config struct `type`
 * (defaults as PD_DATA_*_DEFAULT in pando/fileio.h). */
#define PD_DATA_SETTINGS(type, member)                                                             \
  {"data_roots", PD__DAEMON_ROW(type, member, roots), "/usr/share/datasets,.",                     \
   "comma-separated folders job data files must be under, after resolving symlinks and .. "        \
   "(relative ones from the daemon's working folder; empty: anywhere)",                            \
   NULL},                                                                                          \
      {"data_max_bytes",                                                                           \
       PD_CFG_DOUBLE,                                                                              \
       offsetof(type, member.max_bytes),                                                           \
       0,                                                                                          \
       1,                                                                                          \
       1e15,                                                                                       \
       "4294967296",                                                                               \
       "largest data file read, in bytes (on disk)",                                               \
       NULL},                                                                                      \
      {"data_max_inflated_bytes",                                                                  \
       PD_CFG_DOUBLE,                                                                              \
       offsetof(type, member.max_inflated_bytes),                                                  \
       0,                                                                                          \
       1,                                                                                          \
       1e15,                                                                                       \
       "8589934592",                                                                               \
       "largest content of a gzipped data file, in bytes (inflating stops there)",                 \
       NULL},                                                                                      \
  {                                                                                                \
    "data_max_gzip_ratio", PD_CFG_DOUBLE, offsetof(type, member.max_gzip_ratio), 0, 1, 1e6, "200", \
        "largest inflated/compressed ratio of a gzipped data file past its first 64 MiB (a "       \
        "decompression bomb is refused early)",                                                    \
        NULL                                                                                       \
  }

/* Applies `settings` with pd_data_set_limits() (a missing root is logged as a
 * warning). Returns 0, or -1 after logging the error. */
int pd_daemon_data_limits(const pd_data_settings *settings);

/* Loads a daemon's configuration (pd_config_load: file, environment, flags),
 * refuses positional arguments, and sets up logging from the name and
 * log_level of `settings` (the daemon's, inside `config`, filled by the
 * load), and its transport security from the tls_* and token_file settings
 * (pd_security_configure: the files are read here, once; --check-config
 * reads and checks them too). Returns -1 when the daemon should go on, else
 * the exit code main() should return (0 after --help/--check-config, 2 on a
 * bad setting or an unreadable or invalid certificate, key or token file,
 * reported on stderr). */
int pd_daemon_configure(const pd_config_option *table, size_t n, void *config, const char *program,
                        int argc, char **argv, const pd_daemon_settings *settings);

/* Installs handlers that set the stop flag on SIGINT/SIGTERM (a second one
 * exits at once) and ignores SIGPIPE. */
void pd_daemon_signals_init(void);
/* Whether SIGINT/SIGTERM arrived (or pd_daemon_request_stop was called). */
int pd_daemon_stopping(void);
void pd_daemon_request_stop(void);

/* Runs `loop` until the stop flag is set or `*done` (may be NULL) becomes
 * non-zero, calling cron(user) every `period_sec`. */
void pd_daemon_serve(pd_loop *loop, double period_sec, void (*cron)(void *user), void *user,
                     volatile int *done);

/* Serves Prometheus metrics on `address` (empty: not at all) and writes the
 * bound port to `port_file` (when non-empty). Returns 0 or -1 after logging
 * the error. */
int pd_daemon_metrics(const char *address, const char *port_file);

/* Writes the bound port to `path` (when non-empty), so scripts and tests can
 * start a daemon on port 0 and find it. Returns 0 or -errno. */
int pd_daemon_write_port(const char *path, int port);

/* "host:port" to advertise for a daemon listening on `listen` at `port`:
 * `advertise` if non-empty, else the listen host (or this machine's host name
 * for 0.0.0.0 / [::]) with the bound port. */
void pd_daemon_advertise(const char *listen, const char *advertise, int port, char *out,
                         size_t outlen);

/* A daemon's start-up after its handlers are registered on `srv`: listens on
 * settings->listen, starts the server, serves metrics, writes the port file,
 * puts the address to advertise (as pd_daemon_advertise) into `addr` and logs
 * "serving SERVICE on ...". Returns 0, or -1 after logging what failed. */
int pd_daemon_start(pd_rpc_server *srv, const pd_daemon_settings *settings, const char *advertise,
                    const char *service, char *addr, size_t addrlen);

#endif
