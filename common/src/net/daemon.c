/* What every daemon does the same way: configuration and logging set-up,
 * signal handlers that set a stop flag, the serve loop with its cron, the
 * metrics endpoint, port files and the advertised address; see daemon.h. */
#include "pando/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pando/fileio.h"
#include "pando/kernels.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/rpc.h"
#include "pando/security.h"
#include "pando/util.h"

static volatile sig_atomic_t stop_flag;

const char *const pd_daemon_client_auth_names[] = {"none", "require", NULL};

/* Any thread may take the signal (OpenBLAS starts its threads before main,
 * with signals unblocked), so the handler only sets the flag that the event
 * loops poll; a second signal exits at once. */
static void on_signal(int sig) {
  (void)sig;
  if (stop_flag)
    _exit(1);
  stop_flag = 1;
}

void pd_daemon_signals_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* Whether the command line asks for --check-config (before any "--"). */
static int wants_check_config(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "--check-config") == 0 || strcmp(argv[i], "--check_config") == 0)
      return 1;
  return 0;
}

/* Reads the TLS files and the token of `settings` (pd_security_configure).
 * Returns 0, or 2 after reporting the error on stderr. */
static int configure_security(const char *program, const pd_daemon_settings *settings) {
  char err[512];
  pd_security_settings security = {settings->tls_cert,
                                   settings->tls_key,
                                   settings->tls_ca,
                                   settings->token_file,
                                   NULL,
                                   strcmp(settings->tls_client_auth, "require") == 0};
  if (pd_security_configure(&security, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", program, err);
    return 2;
  }
  return 0;
}

int pd_daemon_configure(const pd_config_option *table, size_t n, void *config, const char *program,
                        int argc, char **argv, const pd_daemon_settings *settings) {
  char err[512];
  char **rest = pd_xcalloc((size_t)argc + 1, sizeof *rest);
  int nrest = 0;
  int rc = pd_config_load(table, n, config, program, argc, argv, rest, &nrest, err, sizeof err);
  if (rc == 0 && nrest > 0) {
    snprintf(err, sizeof err, "unexpected argument '%s'; see --help", rest[0]);
    rc = -1;
  }
  free(rest);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", program, err);
    return 2;
  }
  if (rc > 0) /* --help, or --check-config (which also checks the TLS and token files) */
    return wants_check_config(argc, argv) ? configure_security(program, settings) : 0;
  if (configure_security(program, settings) != 0)
    return 2;
  pd_log_set_name(settings->name);
  pd_log_level = pd_log_parse_level(settings->log_level);
  PD_INFO("math: %s", pd_kernels_describe());
  return -1;
}

int pd_daemon_data_limits(const pd_data_settings *settings) {
  char err[2048];
  pd_data_limits limits = {settings->roots, (uint64_t)settings->max_bytes,
                           (uint64_t)settings->max_inflated_bytes, settings->max_gzip_ratio};
  if (pd_data_set_limits(&limits, err, sizeof err) != 0) {
    PD_ERROR("%s", err);
    return -1;
  }
  if (err[0])
    PD_WARN("%s", err);
  PD_INFO("data files: under %s; at most %.0f bytes, gzip at most %.0f bytes inflated",
          settings->roots[0] ? settings->roots : "any folder", settings->max_bytes,
          settings->max_inflated_bytes);
  return 0;
}

int pd_daemon_stopping(void) { return stop_flag != 0; }
void pd_daemon_request_stop(void) { stop_flag = 1; }

void pd_daemon_serve(pd_loop *loop, double period_sec, void (*cron)(void *user), void *user,
                     volatile int *done) {
  double next = pd_now();
  while (!stop_flag && !(done && *done)) {
    double now = pd_now();
    if (now >= next) {
      if (cron)
        cron(user);
      pd_rpc_trim();
      next = now + period_sec;
    }
    pd_loop_run_once(loop, PD_MAX(next - pd_now(), 0.0));
  }
  if (stop_flag)
    PD_INFO("stop requested, shutting down");
}

int pd_daemon_metrics(const char *address, const char *port_file) {
  char err[256];
  if (!address || !*address)
    return 0;
  /* which math runs, as an info metric (value 1, the facts in labels) */
  char labels[256];
  snprintf(labels, sizeof labels, "library=\"%s\",isa=\"%s\",blas=\"%s\",blas_core=\"%s\"",
           pd_kernels_library(), pd_kernels_isa(), pd_kernels_blas(), pd_kernels_blas_core());
  pd_metric_set(pd_metric_gauge("pando_math_info",
                                "which libraries compute the models' math, with the instruction "
                                "set oneDNN generates code for and OpenBLAS's kernels",
                                labels),
                1);
  int port = pd_metrics_serve(address, err, sizeof err);
  if (port < 0) {
    PD_ERROR("metrics_listen: %s", err);
    return -1;
  }
  if (pd_daemon_write_port(port_file, port) != 0)
    PD_WARN("cannot write metrics port file %s", port_file);
  PD_INFO("serving Prometheus metrics on http://%s/metrics (port %d)", address, port);
  return 0;
}

int pd_daemon_write_port(const char *path, int port) {
  if (!path || !*path)
    return 0;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -errno;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    return -errno;
  return 0;
}

void pd_daemon_advertise(const char *listen, const char *advertise, int port, char *out,
                         size_t outlen) {
  if (advertise && *advertise) {
    pd_strlcpy(out, advertise, outlen);
    return;
  }
  char host[256];
  pd_strlcpy(host, listen, sizeof host);
  char *colon = strrchr(host, ':');
  if (colon)
    *colon = '\0';
  if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0 || host[0] == '\0') {
    if (gethostname(host, sizeof host) != 0)
      pd_strlcpy(host, "localhost", sizeof host);
  }
  snprintf(out, outlen, "%s:%d", host, port);
}

int pd_daemon_start(pd_rpc_server *srv, const pd_daemon_settings *settings, const char *advertise,
                    const char *service, char *addr, size_t addrlen) {
  char err[256];
  int port = pd_rpc_server_listen(srv, settings->listen, err, sizeof err);
  if (port < 0) {
    PD_ERROR("%s", err);
    return -1;
  }
  pd_rpc_server_start(srv);
  if (pd_daemon_metrics(settings->metrics_listen, settings->metrics_port_file) != 0)
    return -1;
  pd_daemon_advertise(settings->listen, advertise, port, addr, addrlen);
  if (pd_daemon_write_port(settings->port_file, port) != 0)
    PD_WARN("cannot write port file %s", settings->port_file);
  PD_INFO("serving %s on %s (advertised as %s)", service, settings->listen, addr);
  return 0;
}
