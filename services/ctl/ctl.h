/* pandoctl: the command-line client of the Coordinator. Parses the command
 * line, makes the RPCs, and prints the answers as text or JSON. Everything
 * but main() lives here so that tests can drive it with argv arrays. */
#ifndef PANDO_CTL_H
#define PANDO_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PD_CTL_VERSION "0.1.0"
#define PD_CTL_DEFAULT_COORDINATOR "127.0.0.1:7070"

/* Exit codes of pandoctl. */
enum pd_ctl_exit {
  PD_CTL_EXIT_OK = 0,
  PD_CTL_EXIT_FAILURE = 1,      /* RPC failed, unknown job, job FAILED/CANCELLED, not SERVING */
  PD_CTL_EXIT_USAGE = 2,        /* bad command line, unreadable or invalid job spec */
  PD_CTL_EXIT_INTERRUPTED = 130 /* Ctrl-C stopped `submit --wait`; the job keeps running */
};

enum pd_ctl_output { PD_CTL_OUTPUT_TEXT = 0, PD_CTL_OUTPUT_JSON };

enum pd_ctl_command {
  PD_CTL_CMD_NONE = 0,
  PD_CTL_CMD_SUBMIT,
  PD_CTL_CMD_STATUS,
  PD_CTL_CMD_LIST,
  PD_CTL_CMD_CANCEL,
  PD_CTL_CMD_RESUME,
  PD_CTL_CMD_CLUSTER,
  PD_CTL_CMD_HEALTH,
  PD_CTL_CMD_EXPORT,
  PD_CTL_CMD_PLOT,
  PD_CTL_CMD_EXPLAIN,
  PD_CTL_CMD_STATS,
  PD_CTL_CMD_TRACE,
  PD_CTL_CMD_HELP
};

/* A parsed command line. Strings point into argv or into this struct. */
typedef struct pd_ctl_args {
  char coordinator[256];       /* --coordinator, else $PANDO_COORDINATOR, else the default */
  enum pd_ctl_output output;   /* --output / -o */
  double timeout_sec;          /* --timeout: deadline of each RPC (default 10) */
  int help;                    /* --help: usage of `command`, or the global one */
  int version;                 /* --version */
  enum pd_ctl_command command; /* NONE when only global options were given */
  const char *operand;         /* JOB.yaml, JOB or ADDRESS; for `help`, the command */
  const char *jobs[10];        /* plot: JOB [JOB...] (jobs[0] is operand) */
  int njobs;
  int wait;               /* submit --wait */
  const char *service;    /* health --service (default "": the whole daemon) */
  const char *out_path;   /* export, plot and trace: -o / --out FILE */
  int64_t from_step;      /* trace --from-step (default 0) */
  int64_t to_step;        /* trace --to-step (default -1: the last) */
  uint64_t checkpoint;    /* export --checkpoint N (0: the live model) */
  const char *token_out;  /* submit --token-out FILE: where the job's token goes */
  double poll_sec;        /* --wait: interval between GetJob calls (0.5) */
  double retry_sec;       /* --wait: how long an unreachable coordinator is retried (30) */
  double report_sec;      /* --wait without a TTY: most frequent progress line (5) */
  const char *ca;         /* --ca, else $PANDO_CA: PEM CA of the daemons (TLS); NULL: none */
  const char *cert;       /* --cert, else $PANDO_CERT: client certificate (mTLS) */
  const char *key;        /* --key, else $PANDO_KEY: its private key */
  const char *token_file; /* --token-file, else $PANDO_TOKEN_FILE: the cluster token's file */
  const char *token;      /* $PANDO_TOKEN: the token itself (wins over a token file) */
} pd_ctl_args;

/* Parses argv (argv[0] is the program name) into `args`. Global options may
 * come before or after the command, command options after it. Returns 0, or
 * -EINVAL with a message naming the bad command, option or value in `err`. */
int pd_ctl_parse(int argc, char **argv, pd_ctl_args *args, char *err, size_t errlen);

/* Prints the usage of `command`, or the global usage for PD_CTL_CMD_NONE. */
void pd_ctl_usage(FILE *out, enum pd_ctl_command command);

/* Prints "pandoctl VERSION". */
void pd_ctl_print_version(FILE *out);

/* Reports a command-line error from pd_ctl_parse: "pandoctl: <message>" and
 * a hint to the global or the command's --help. */
void pd_ctl_usage_error(FILE *errout, const pd_ctl_args *args, const char *message);

/* Runs the parsed command: results on `out`, progress, warnings and errors
 * on `errout` (a live progress line only when `errout` is a terminal). The
 * TLS files and the token are read first (pd_security_configure); one that
 * cannot be read or is invalid is a usage error.
 * pd_rpc_init() must have been called. Returns an enum pd_ctl_exit code. */
int pd_ctl_run(const pd_ctl_args *args, FILE *out, FILE *errout);

/* The whole of pandoctl: parse, --help/--version, run. Usage errors are
 * reported on `errout` with a hint. pd_rpc_init() must have been called.
 * Returns the process exit code (enum pd_ctl_exit). */
int pd_ctl_main(int argc, char **argv, FILE *out, FILE *errout);

#endif
