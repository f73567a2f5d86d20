/* What every Pando daemon does the same way: SIGINT/SIGTERM only set a flag
 * that the event loops poll, and the loop runs a periodic cron function
 * (redis serverCron). */
#ifndef PANDO_DAEMON_H
#define PANDO_DAEMON_H

#include <signal.h>

#include "pando/config.h"
#include "pando/rpc.h"

/* Loads a daemon's configuration (pd_config_load: file, environment, flags),
 * refuses positional arguments, and sets up logging from the `name` and
 * `log_level` strings of the loaded config (NULL: leave as is). Returns -1
 * when the daemon should go on, else the exit code main() should return
 * (0 after --help/--check-config, 2 on a bad setting, reported on stderr). */
int pd_daemon_configure(const pd_config_option *table, size_t n, void *config, const char *program,
                        int argc, char **argv, const char *name, const char *log_level);

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

#endif
