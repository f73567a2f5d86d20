/* pandoctl's commands: command-line parsing, help, the Coordinator and
 * Health RPCs, and `submit --wait`'s polling loop; see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "explain.h"
#include "export.h"
#include "grpc/health/v1/health.pb-c.h"
#include "json.h"
#include "output.h"
#include "pando.pb-c.h"
#include "pando/rpc.h"
#include "pando/security.h"
#include "pando/util.h"
#include "plot.h"
#include "stats.h"
#include "trace.h"

/* ---------------------------------------------------------------- commands and options */

typedef struct command_info {
  const char *name;
  enum pd_ctl_command command;
  const char *operand; /* what the one positional argument is, or NULL for none */
  const char *usage;   /* the text of `pandoctl COMMAND --help` */
} command_info;

static const command_info commands[] = {
    {"submit", PD_CTL_CMD_SUBMIT, "JOB.yaml",
     "usage: pandoctl submit JOB.yaml [--wait] [--token-out FILE]\n"
     "\n"
     "Sends the job spec JOB.yaml (\"-\" reads standard input) to the coordinator,\n"
     "which validates it, and prints the new job's id.\n"
     "\n"
     "options:\n"
     "  --wait    follow the job until it has SUCCEEDED, FAILED or was CANCELLED:\n"
     "            a progress line on standard error (rewritten in place on a\n"
     "            terminal, else a line per epoch and at most every 5 s), a line\n"
     "            per finished epoch, the final state and, on success, the last\n"
     "            line \"test accuracy: 0.XXXX\" (\"test rmse: X\" for a regression).\n"
     "            Ctrl-C stops waiting and leaves the\n"
     "            job running. An unreachable coordinator is retried for 30 s.\n"
     "  --token-out FILE  write the job's own token to FILE (mode 0600): with it\n"
     "            instead of the cluster token (--token-file FILE) status, cancel and\n"
     "            export work on this job only. A cluster without a token gives none.\n"
     "\n"
     "With --output json, prints the job status (with --wait: the final one);\n"
     "without --wait it includes the job's token as \"job_token\".\n"
     "\n"
     "exit status: 0 submitted (with --wait: the job SUCCEEDED), 1 RPC error or the\n"
     "job FAILED or was CANCELLED, 2 unreadable or invalid job spec, 130 Ctrl-C.\n"},
    {"status", PD_CTL_CMD_STATUS, "JOB",
     "usage: pandoctl status JOB\n"
     "\n"
     "Shows a job: state, message, progress, elapsed time, servers and workers,\n"
     "the shard map (address and key range of each shard) and the epoch history.\n"
     "\n"
     "It also asks each server of the shard map what its update strategy did\n"
     "(ParameterServer/GetStats) and shows the merged counts:\n"
     "  updates:   staleness: 0:1234 1:56 2:7, dropped 12, blocked 340, max clock gap 2\n"
     "staleness: applied gradients by staleness (the server's model version when\n"
     "applied minus the version the gradient was computed on; buckets 0, 1, 2, 4,\n"
     "8, 16, 32, >32, each counting values up to its bound); dropped: gradients that\n"
     "came too late for their round (backup workers); blocked: pulls that waited\n"
     "for slower workers (BSP, SSP); max clock gap: the most clocks a worker was\n"
     "ahead of the slowest when its pull was answered (SSP keeps it <= staleness).\n"
     "Counts are summed over the servers (a gradient counts once per shard).\n"
     "With --output json they are the \"stats\" object (null when no server answered).\n"
     "\n"
     "exit status: 0 shown, 1 RPC error or unknown job.\n"},
    {"list", PD_CTL_CMD_LIST, NULL,
     "usage: pandoctl list\n"
     "\n"
     "Lists the coordinator's jobs: JOB, NAME, STATE, EPOCH, LOSS, ACCURACY (test\n"
     "accuracy of the last finished epoch) and ELAPSED. With --output json, prints\n"
     "{\"jobs\": [...]}.\n"
     "\n"
     "exit status: 0 listed, 1 RPC error.\n"},
    {"cancel", PD_CTL_CMD_CANCEL, "JOB",
     "usage: pandoctl cancel JOB\n"
     "\n"
     "Cancels a job and prints the state it is in afterwards.\n"
     "\n"
     "exit status: 0 the coordinator accepted the request, 1 RPC error or unknown job.\n"},
    {"resume", PD_CTL_CMD_RESUME, "JOB",
     "usage: pandoctl resume JOB\n"
     "\n"
     "Resumes a FAILED or CANCELLED job that takes checkpoints (a checkpoint: key):\n"
     "it goes RECOVERING, is rolled back to its newest complete checkpoint once its\n"
     "servers and workers are there, and runs on from it. Prints its state.\n"
     "\n"
     "exit status: 0 the coordinator accepted the request, 1 RPC error, unknown job,\n"
     "or a job that cannot be resumed (the message says why).\n"},
    {"cluster", PD_CTL_CMD_CLUSTER, NULL,
     "usage: pandoctl cluster\n"
     "\n"
     "Lists the nodes registered with the coordinator: NODE, ROLE, NAME, ADDRESS,\n"
     "ALIVE, LAST SEEN (time since the last heartbeat) and JOB. With --output json,\n"
     "prints {\"nodes\": [...]}.\n"
     "\n"
     "exit status: 0 listed, 1 RPC error.\n"},
    {"health", PD_CTL_CMD_HEALTH, "ADDRESS",
     "usage: pandoctl health ADDRESS [--service NAME] [--timeout SEC]\n"
     "\n"
     "Calls grpc.health.v1.Health/Check on the Pando daemon at ADDRESS (host:port)\n"
     "and prints its status (SERVING, NOT_SERVING, ...). Suits container\n"
     "health checks.\n"
     "\n"
     "options:\n"
     "  --service NAME   ask about one service (e.g. pando.v1.Coordinator);\n"
     "                   default: the daemon as a whole\n"
     "  --timeout SEC    give up after SEC seconds (default: 10)\n"
     "\n"
     "exit status: 0 SERVING, 1 anything else (not serving, unknown service,\n"
     "unreachable).\n"},
    {"export", PD_CTL_CMD_EXPORT, "JOB",
     "usage: pandoctl export JOB [--checkpoint N] -o FILE.safetensors\n"
     "\n"
     "Pulls the job's model from its servers (a running job's current model, a\n"
     "SUCCEEDED job's final one), or with --checkpoint N reads it as it was at\n"
     "checkpoint N from the data_dirs of the servers that held its shards, and\n"
     "writes it to FILE in the safetensors format:\n"
     "an 8-byte little-endian header length, a JSON header giving each tensor's\n"
     "dtype (F32), shape and data_offsets, then the raw little-endian float32\n"
     "data. Tensors are named and shaped as the model's layout (layer0.weight\n"
     "[inputs, outputs], layer0.bias [outputs], ...), in key order.\n"
     "\n"
     "options:\n"
     "  -o, --out FILE   the file to write (after the command, -o is this option;\n"
     "                   the output format is then --output)\n"
     "  --checkpoint N   the parameters of checkpoint N (its id: the clock it was\n"
     "                   taken at, as `pandoctl stats` and the servers' logs show)\n"
     "                   instead of the live shards: exactly N, not the newest\n"
     "                   before it; works for a finished, failed or cancelled job\n"
     "                   whose checkpoints are still on disk (checkpoint.keep)\n"
     "\n"
     "exit status: 0 written, 1 unknown job, no shards (a FAILED or CANCELLED job's\n"
     "are dropped; --checkpoint reads them from disk), no checkpoint N on a server\n"
     "(the message names the ids it holds), RPC or write error, 2 usage error.\n"},
    {"explain", PD_CTL_CMD_EXPLAIN, "JOB.yaml",
     "usage: pandoctl explain JOB.yaml\n"
     "\n"
     "Shows what the job spec JOB.yaml would do, and runs nothing: its tensors with\n"
     "their shapes, key ranges and servers; each server's key range and memory\n"
     "(parameters, copy-on-write buffer, optimizer state, BSP round sum); rows per\n"
     "worker, steps and clocks (pull/push exchanges) per epoch; memory per worker;\n"
     "bytes on the wire per clock and per epoch; the consistency model in a line;\n"
     "and warnings (unbalanced servers, a partition smaller than a batch, fewer\n"
     "registered servers or workers than it needs, a shard larger than the\n"
     "servers' memory_limit). The training data's row count is read where pandoctl\n"
     "runs (IDX: the headers only); the registered nodes come from the coordinator\n"
     "(unreachable: the warnings about them are left out, said so).\n"
     "\n"
     "exit status: 0 explained, 2 unreadable or invalid job spec.\n"},
    {"plot", PD_CTL_CMD_PLOT, "JOB",
     "usage: pandoctl plot JOB [JOB...] -o FILE.svg|FILE.png\n"
     "\n"
     "Draws the learning curves of up to 10 jobs, overlaid for comparison, into\n"
     "an SVG or PNG picture (by FILE's extension): loss and test accuracy against\n"
     "the epoch and against the seconds since the job started, one colour per\n"
     "job, with a legend. A data-centre job's loss is its training loss of each\n"
     "epoch; a federated job's points are its evaluated rounds (test loss and\n"
     "accuracy). Works during a job (the epochs so far) and after it.\n"
     "\n"
     "options:\n"
     "  -o, --out FILE   the picture to write\n"
     "\n"
     "exit status: 0 written, 1 unknown job, nothing to draw yet, RPC or write\n"
     "error, 2 usage error.\n"},
    {"stats", PD_CTL_CMD_STATS, "JOB",
     "usage: pandoctl stats JOB\n"
     "\n"
     "Shows where a job's time went, during the job and after it: for each worker\n"
     "(from its last progress report, sent about every 0.5 s) its wall time since\n"
     "its training began and a table of phases (load, batch, pull, gradient,\n"
     "local_update, delay, push, eval, report) with COUNT, TOTAL s, MEAN ms and\n"
     "% WALL, sorted by time; for each server of the shard map (ParameterServer/\n"
     "GetStats) the same table of its phases on the job's shard (pull, pull_wait,\n"
     "broadcast, push, aggregate, optimizer, checkpoint). README \"pandoctl stats\"\n"
     "says what each phase measures. With --output json: {\"workers\": [...],\n"
     "\"servers\": [...]}, times in seconds (total_sec) and milliseconds (mean_ms).\n"
     "\n"
     "exit status: 0 shown, 1 RPC error or unknown job.\n"},
    {"trace", PD_CTL_CMD_TRACE, "JOB",
     "usage: pandoctl trace JOB -o FILE.json [--from-step A] [--to-step B]\n"
     "\n"
     "Writes a timeline of the job, during it or after it, in the Chrome trace\n"
     "event format (open it in Perfetto or chrome://tracing): one process per\n"
     "worker (its training loop's phases: load, batch, pull, gradient,\n"
     "local_update, delay, push, eval, report) and per server (lane \"shard\":\n"
     "aggregate, optimizer, checkpoint; lane \"calls of worker W\": its pull and\n"
     "push calls, which nest inside the worker's pull and push spans). Each span's\n"
     "args carry its worker, clock (step) and kind. The daemons keep the newest\n"
     "spans only (65536 per server and job, and per worker on the coordinator).\n"
     "\n"
     "options:\n"
     "  -o, --out FILE     the file to write\n"
     "  --from-step A      only spans of clocks (steps, counted over the epochs\n"
     "                     from 0) >= A\n"
     "  --to-step B        only spans of clocks <= B\n"
     "\n"
     "exit status: 0 written, 1 unknown job, RPC or write error, 2 usage error.\n"},
    {"help", PD_CTL_CMD_HELP, "COMMAND",
     "usage: pandoctl help [COMMAND]\n"
     "\n"
     "Shows the global help, or the help of COMMAND.\n"},
};

static const char global_usage[] =
    "usage: pandoctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Controls a Pando cluster through its coordinator.\n"
    "\n"
    "commands:\n"
    "  submit JOB.yaml [--wait]  submit a training job and print its id;\n"
    "                            --wait follows it to the end\n"
    "  status JOB                a job's state, progress, shard map and epoch history\n"
    "  list                      the jobs\n"
    "  cancel JOB                cancel a job\n"
    "  resume JOB                resume a FAILED or CANCELLED job from its checkpoint\n"
    "  cluster                   the registered servers and workers\n"
    "  health ADDRESS            check a Pando daemon's gRPC health service\n"
    "  export JOB -o FILE        write the job's model as a safetensors file\n"
    "  plot JOB... -o FILE.svg   draw the jobs' learning curves (SVG or PNG)\n"
    "  explain JOB.yaml          what a job would do: shards, memory, wire bytes\n"
    "  stats JOB                 where a job's time went, per worker and per server\n"
    "  trace JOB -o FILE.json    a timeline of the job (Chrome trace event format)\n"
    "  help [COMMAND]            this help, or a command's\n"
    "\n"
    "options (before or after the command):\n"
    "  --coordinator HOST:PORT   the coordinator (default: $PANDO_COORDINATOR,\n"
    "                            else " PD_CTL_DEFAULT_COORDINATOR ")\n"
    "  -o, --output text|json    output format (default: text); json prints one\n"
    "                            object with the proto's field names\n"
    "  --timeout SEC             deadline of each RPC in seconds (default: 10)\n"
    "  --ca FILE                 talk TLS, trusting the PEM CA certificate in FILE\n"
    "                            (default: $PANDO_CA)\n"
    "  --cert FILE, --key FILE   client certificate and key for mTLS clusters\n"
    "                            (default: $PANDO_CERT, $PANDO_KEY)\n"
    "  --token-file FILE         send the cluster token held in FILE (default:\n"
    "                            $PANDO_TOKEN_FILE; $PANDO_TOKEN holds the token itself)\n"
    "  -h, --help                show help; after a command, the command's help\n"
    "  --version                 print the version\n"
    "\n"
    "exit status: 0 success; 1 failure (RPC error, unknown job, job FAILED or\n"
    "CANCELLED, daemon not SERVING); 2 usage error, unreadable or invalid job spec;\n"
    "130 Ctrl-C while waiting.\n"
    "\n"
    "Run 'pandoctl COMMAND --help' for the options of a command.\n";

static const command_info *find_command_by_name(const char *name) {
  for (size_t i = 0; i < PD_ARRAY_SIZE(commands); i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static const command_info *find_command(enum pd_ctl_command command) {
  for (size_t i = 0; i < PD_ARRAY_SIZE(commands); i++)
    if (commands[i].command == command)
      return &commands[i];
  return NULL;
}

enum option_id {
  OPT_COORDINATOR,
  OPT_OUTPUT,
  OPT_TIMEOUT,
  OPT_HELP,
  OPT_VERSION,
  OPT_WAIT,
  OPT_SERVICE,
  OPT_OUT,
  OPT_CA,
  OPT_CERT,
  OPT_KEY,
  OPT_TOKEN_FILE,
  OPT_TOKEN_OUT,
  OPT_FROM_STEP,
  OPT_TO_STEP,
  OPT_CHECKPOINT
};

typedef struct option_info {
  const char *name; /* "--coordinator" */
  char short_name;  /* 'o' for -o, or 0 */
  enum option_id id;
  int takes_value;
  enum pd_ctl_command command; /* the command it belongs to; NONE: global */
} option_info;

static const option_info options[] = {
    {"--coordinator", 0, OPT_COORDINATOR, 1, PD_CTL_CMD_NONE},
    {"--output", 'o', OPT_OUTPUT, 1, PD_CTL_CMD_NONE},
    {"--timeout", 0, OPT_TIMEOUT, 1, PD_CTL_CMD_NONE},
    {"--help", 'h', OPT_HELP, 0, PD_CTL_CMD_NONE},
    {"--version", 0, OPT_VERSION, 0, PD_CTL_CMD_NONE},
    {"--wait", 0, OPT_WAIT, 0, PD_CTL_CMD_SUBMIT},
    {"--service", 0, OPT_SERVICE, 1, PD_CTL_CMD_HEALTH},
    {"--out", 'o', OPT_OUT, 1, PD_CTL_CMD_EXPORT},
    {"--out", 'o', OPT_OUT, 1, PD_CTL_CMD_PLOT},
    {"--out", 'o', OPT_OUT, 1, PD_CTL_CMD_TRACE},
    {"--from-step", 0, OPT_FROM_STEP, 1, PD_CTL_CMD_TRACE},
    {"--to-step", 0, OPT_TO_STEP, 1, PD_CTL_CMD_TRACE},
    {"--ca", 0, OPT_CA, 1, PD_CTL_CMD_NONE},
    {"--cert", 0, OPT_CERT, 1, PD_CTL_CMD_NONE},
    {"--key", 0, OPT_KEY, 1, PD_CTL_CMD_NONE},
    {"--token-file", 0, OPT_TOKEN_FILE, 1, PD_CTL_CMD_NONE},
    {"--token-out", 0, OPT_TOKEN_OUT, 1, PD_CTL_CMD_SUBMIT},
    {"--checkpoint", 0, OPT_CHECKPOINT, 1, PD_CTL_CMD_EXPORT},
};

/* Finds "--name" (possibly "--name=value": `len` bytes of it name the
 * option) or "-x"; a short name of `command`'s own option (export's -o)
 * wins over the global one. */
static const option_info *find_option(const char *arg, size_t len, enum pd_ctl_command command) {
  const option_info *found = NULL;
  for (size_t i = 0; i < PD_ARRAY_SIZE(options); i++) {
    const option_info *opt = &options[i];
    if (arg[1] == '-' ? strlen(opt->name) == len && strncmp(opt->name, arg, len) == 0
                      : len == 2 && opt->short_name && arg[1] == opt->short_name) {
      if (arg[1] != '-' && opt->command != PD_CTL_CMD_NONE && opt->command != command)
        continue; /* another command's short option */
      if (!found || opt->command == command)
        found = opt;
    }
  }
  return found;
}

static int apply_option(pd_ctl_args *args, const option_info *opt, const char *value, char *err,
                        size_t errlen) {
  char *end = NULL;
  switch (opt->id) {
  case OPT_COORDINATOR:
    if (!value[0])
      return pd_errf(err, errlen, -EINVAL, "empty value for --coordinator: expected HOST:PORT");
    if (pd_strlcpy(args->coordinator, value, sizeof args->coordinator) != 0)
      return pd_errf(err, errlen, -EINVAL, "value of --coordinator is too long");
    return 0;
  case OPT_OUTPUT:
    if (strcmp(value, "text") == 0)
      args->output = PD_CTL_OUTPUT_TEXT;
    else if (strcmp(value, "json") == 0)
      args->output = PD_CTL_OUTPUT_JSON;
    else
      return pd_errf(err, errlen, -EINVAL, "invalid value '%s' for --output: expected text or json",
                     value);
    return 0;
  case OPT_TIMEOUT:
    errno = 0;
    args->timeout_sec = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(args->timeout_sec) || args->timeout_sec <= 0)
      return pd_errf(err, errlen, -EINVAL, "invalid value '%s' for --timeout: expected seconds > 0",
                     value);
    return 0;
  case OPT_HELP:
    args->help = 1;
    return 0;
  case OPT_VERSION:
    args->version = 1;
    return 0;
  case OPT_WAIT:
    args->wait = 1;
    return 0;
  case OPT_SERVICE:
    args->service = value;
    return 0;
  case OPT_OUT:
    if (!value[0])
      return pd_errf(err, errlen, -EINVAL, "empty value for --out: expected a file name");
    args->out_path = value;
    return 0;
  case OPT_FROM_STEP:
  case OPT_TO_STEP: {
    errno = 0;
    long long step = strtoll(value, &end, 10);
    if (errno || end == value || *end || step < 0)
      return pd_errf(err, errlen, -EINVAL, "invalid value '%s' for %s: expected a step >= 0", value,
                     opt->name);
    *(opt->id == OPT_FROM_STEP ? &args->from_step : &args->to_step) = step;
    return 0;
  }
  case OPT_CHECKPOINT: {
    errno = 0;
    unsigned long long id = strtoull(value, &end, 10);
    if (errno || end == value || *end || id == 0 || value[0] == '-')
      return pd_errf(err, errlen, -EINVAL,
                     "invalid value '%s' for --checkpoint: expected a checkpoint id > 0 (the "
                     "clock it was taken at)",
                     value);
    args->checkpoint = id;
    return 0;
  }
  case OPT_TOKEN_OUT:
    if (!value[0])
      return pd_errf(err, errlen, -EINVAL, "empty value for --token-out: expected a file name");
    args->token_out = value;
    return 0;
  case OPT_CA:
  case OPT_CERT:
  case OPT_KEY:
  case OPT_TOKEN_FILE:
    if (!value[0])
      return pd_errf(err, errlen, -EINVAL, "empty value for %s: expected a file name", opt->name);
    *(opt->id == OPT_CA     ? &args->ca
      : opt->id == OPT_CERT ? &args->cert
      : opt->id == OPT_KEY  ? &args->key
                            : &args->token_file) = value;
    return 0;
  }
  return 0;
}

/* Parses one option at argv[*i]; may consume the next argument as its value. */
static int parse_option(int argc, char **argv, int *i, pd_ctl_args *args, char *err,
                        size_t errlen) {
  const char *arg = argv[*i];
  const char *value = NULL;
  size_t name_len = strlen(arg);
  if (arg[1] == '-') {
    const char *eq = strchr(arg, '=');
    if (eq) {
      name_len = (size_t)(eq - arg);
      value = eq + 1;
    }
  } else if (name_len > 2) { /* "-ojson" */
    name_len = 2;
    value = arg + 2;
  }
  const option_info *opt = find_option(arg, name_len, args->command);
  if (!opt)
    return pd_errf(err, errlen, -EINVAL, "unknown option '%.*s'", (int)name_len, arg);
  if (opt->command != PD_CTL_CMD_NONE && opt->command != args->command) {
    const char *owner = find_command(opt->command)->name;
    if (args->command == PD_CTL_CMD_NONE)
      return pd_errf(err, errlen, -EINVAL, "option '%s' belongs after the command '%s'", opt->name,
                     owner);
    return pd_errf(err, errlen, -EINVAL, "unknown option '%s' for '%s' (it is an option of '%s')",
                   opt->name, find_command(args->command)->name, owner);
  }
  if (opt->takes_value && !value) {
    if (*i + 1 >= argc)
      return pd_errf(err, errlen, -EINVAL, "option '%s' needs a value", opt->name);
    value = argv[++*i];
  }
  if (!opt->takes_value && value)
    return pd_errf(err, errlen, -EINVAL, "option '%s' takes no value", opt->name);
  return apply_option(args, opt, value, err, errlen);
}

int pd_ctl_parse(int argc, char **argv, pd_ctl_args *args, char *err, size_t errlen) {
  memset(args, 0, sizeof *args);
  args->output = PD_CTL_OUTPUT_TEXT;
  args->timeout_sec = 10;
  args->to_step = -1;
  args->service = "";
  args->poll_sec = 0.5;
  args->retry_sec = 30;
  args->report_sec = 5;
  const char *env = getenv("PANDO_COORDINATOR");
  if (pd_strlcpy(args->coordinator, env && env[0] ? env : PD_CTL_DEFAULT_COORDINATOR,
                 sizeof args->coordinator) != 0)
    return pd_errf(err, errlen, -EINVAL, "PANDO_COORDINATOR is too long");
  args->ca = getenv("PANDO_CA");
  args->cert = getenv("PANDO_CERT");
  args->key = getenv("PANDO_KEY");
  args->token_file = getenv("PANDO_TOKEN_FILE");
  args->token = getenv("PANDO_TOKEN");

  int operands_only = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!operands_only && strcmp(arg, "--") == 0) {
      operands_only = 1;
    } else if (!operands_only && arg[0] == '-' && arg[1] != '\0') {
      int rc = parse_option(argc, argv, &i, args, err, errlen);
      if (rc != 0)
        return rc;
    } else if (args->command == PD_CTL_CMD_NONE) {
      const command_info *cmd = find_command_by_name(arg);
      if (!cmd)
        return pd_errf(err, errlen, -EINVAL, "unknown command '%s'", arg);
      args->command = cmd->command;
    } else if (find_command(args->command)->operand && !args->operand) {
      args->operand = arg;
      args->jobs[args->njobs++] = arg;
    } else if (args->command == PD_CTL_CMD_PLOT && args->njobs < (int)PD_ARRAY_SIZE(args->jobs)) {
      args->jobs[args->njobs++] = arg;
    } else if (args->command == PD_CTL_CMD_PLOT) {
      return pd_errf(err, errlen, -EINVAL, "'plot' draws at most %d jobs, got more: '%s'",
                     (int)PD_ARRAY_SIZE(args->jobs), arg);
    } else {
      return pd_errf(err, errlen, -EINVAL, "unexpected argument '%s' for '%s'", arg,
                     find_command(args->command)->name);
    }
  }

  if (args->help || args->version)
    return 0;
  if (args->command == PD_CTL_CMD_HELP && args->operand && !find_command_by_name(args->operand))
    return pd_errf(err, errlen, -EINVAL, "unknown command '%s'", args->operand);
  const command_info *cmd = find_command(args->command);
  if (cmd && cmd->operand && !args->operand && args->command != PD_CTL_CMD_HELP)
    return pd_errf(err, errlen, -EINVAL, "'%s' needs %s", cmd->name, cmd->operand);
  if (args->command == PD_CTL_CMD_EXPORT && !args->out_path)
    return pd_errf(err, errlen, -EINVAL, "'export' needs -o FILE (the safetensors file to write)");
  if (args->command == PD_CTL_CMD_PLOT && !args->out_path)
    return pd_errf(err, errlen, -EINVAL, "'plot' needs -o FILE.svg or FILE.png");
  if (args->command == PD_CTL_CMD_TRACE && !args->out_path)
    return pd_errf(err, errlen, -EINVAL, "'trace' needs -o FILE.json");
  if (args->command == PD_CTL_CMD_TRACE && args->to_step >= 0 && args->to_step < args->from_step)
    return pd_errf(err, errlen, -EINVAL, "--to-step %lld is before --from-step %lld",
                   (long long)args->to_step, (long long)args->from_step);
  return 0;
}

void pd_ctl_usage(FILE *out, enum pd_ctl_command command) {
  const command_info *cmd = find_command(command);
  if (!cmd) {
    fputs(global_usage, out);
    return;
  }
  fputs(cmd->usage, out);
  if (command != PD_CTL_CMD_HELP)
    fputs("\nGlobal options (--coordinator, --output, --timeout): see pandoctl --help.\n", out);
}

void pd_ctl_print_version(FILE *out) { fprintf(out, "pandoctl %s\n", PD_CTL_VERSION); }

/* ---------------------------------------------------------------- RPC */

typedef struct ctl {
  const pd_ctl_args *args;
  FILE *out;
  FILE *errout;
  FILE *human;             /* where human-readable lines go: `out`, or `errout` under JSON */
  pd_rpc_channel *channel; /* to the coordinator, made on first use */
} ctl;

typedef struct rpc_error {
  grpc_status_code status;
  char details[600]; /* the status message alone */
} rpc_error;

/* A unary call. On failure fills `error` and returns non-zero. */
static int call(pd_rpc_channel *channel, const char *method, const ProtobufCMessage *request,
                const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
                double timeout_sec, rpc_error *error) {
  char err[1024], prefix[512];
  grpc_status_code status = GRPC_STATUS_OK;
  int rc = pd_rpc_unary(channel, method, request, response_desc, response, timeout_sec, &status,
                        err, sizeof err);
  if (rc == 0)
    return 0;
  /* pd_rpc_unary says "target method: STATUS: details"; keep the details. */
  const char *details = err;
  int n = snprintf(prefix, sizeof prefix, "%s %s: ", pd_rpc_channel_target(channel), method);
  if (n > 0 && strncmp(details, prefix, (size_t)n) == 0)
    details += n;
  if (status == GRPC_STATUS_OK) /* the call did not start, or the answer was undecodable */
    status = GRPC_STATUS_INTERNAL;
  n = snprintf(prefix, sizeof prefix, "%s: ", pd_rpc_status_name(status));
  if (n > 0 && strncmp(details, prefix, (size_t)n) == 0)
    details += n;
  error->status = status;
  pd_strlcpy(error->details, details, sizeof error->details);
  return -1;
}

static int coordinator_call(ctl *c, const char *method, const ProtobufCMessage *request,
                            const ProtobufCMessageDescriptor *response_desc,
                            ProtobufCMessage **response, rpc_error *error) {
  if (!c->channel)
    c->channel = pd_rpc_channel_new(c->args->coordinator, 1);
  return call(c->channel, method, request, response_desc, response, c->args->timeout_sec, error);
}

/* Reports a failed call to `peer` ("coordinator 127.0.0.1:7070"); returns
 * the exit code. */
static int report_rpc_error(ctl *c, const char *peer, const rpc_error *error) {
  fprintf(c->errout, "pandoctl: %s: %s%s%s\n", peer, pd_rpc_status_name(error->status),
          error->details[0] ? ": " : "", error->details);
  return PD_CTL_EXIT_FAILURE;
}

static int report_coordinator_error(ctl *c, const rpc_error *error) {
  char peer[300];
  snprintf(peer, sizeof peer, "coordinator %s", c->args->coordinator);
  return report_rpc_error(c, peer, error);
}

/* GetJob or CancelJob of `job`; NOT_FOUND becomes "job 'x' not found". */
static int job_call(ctl *c, const char *method, const char *job, Pando__V1__JobStatus **status) {
  Pando__V1__JobRequest request = PANDO__V1__JOB_REQUEST__INIT;
  rpc_error error;
  request.job = (char *)job;
  if (coordinator_call(c, method, &request.base, &pando__v1__job_status__descriptor,
                       (ProtobufCMessage **)status, &error) == 0)
    return 0;
  if (error.status == GRPC_STATUS_NOT_FOUND) {
    fprintf(c->errout, "pandoctl: job '%s' not found\n", job);
    return PD_CTL_EXIT_FAILURE;
  }
  return report_coordinator_error(c, &error);
}

static void print_job_json(ctl *c, const Pando__V1__JobStatus *status) {
  pd_ctl_json json;
  pd_ctl_json_init(&json, c->out);
  pd_ctl_json_job(&json, status);
  pd_ctl_json_close(&json);
}

/* ---------------------------------------------------------------- submit --wait */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

/* Sleeps `seconds` or until Ctrl-C. */
static void sleep_interruptible(double seconds) {
  double end = pd_now() + seconds;
  while (!interrupted) {
    double left = end - pd_now();
    if (left <= 0)
      break;
    left = PD_MIN(left, 0.05);
    struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
    nanosleep(&ts, NULL);
  }
}

static int unreachable(grpc_status_code status) {
  return status == GRPC_STATUS_UNAVAILABLE || status == GRPC_STATUS_DEADLINE_EXCEEDED;
}

typedef struct waiter {
  ctl *c;
  int tty;             /* errout is a terminal: one live line rewritten with \r */
  int live_shown;      /* the live line is on the screen */
  int columns;         /* terminal width */
  int last_state;      /* the state, epoch and pd_now() of the last progress */
  uint32_t last_epoch; /* line printed without a TTY */
  double last_report;
} waiter;

static void clear_live(waiter *w) {
  if (!w->live_shown)
    return;
  fputs("\r\033[K", w->c->errout);
  fflush(w->c->errout);
  w->live_shown = 0;
}

/* Prints a line that stays (epoch results, warnings) to `stream`. */
static void print_line(waiter *w, FILE *stream, const char *line) {
  clear_live(w);
  fprintf(stream, "%s\n", line);
  fflush(stream);
}

static void show_progress(waiter *w, const Pando__V1__JobStatus *status) {
  char line[512];
  if (status->state == PANDO__V1__JOB_STATE__JOB_STATE_RUNNING)
    pd_ctl_progress_line(status, line, sizeof line);
  else
    snprintf(line, sizeof line, "%s%s%s", pd_ctl_job_state_name(status->state),
             status->message[0] ? ": " : "", status->message);
  double now = pd_now();
  if (w->tty) {
    if (w->columns > 1 && strlen(line) >= (size_t)w->columns)
      line[w->columns - 1] = '\0'; /* a wrapped line cannot be rewritten with \r */
    fprintf(w->c->errout, "\r%s\033[K", line);
    fflush(w->c->errout);
    w->live_shown = 1;
  } else if ((int)status->state != w->last_state || status->epoch != w->last_epoch ||
             now - w->last_report >= w->c->args->report_sec) {
    fprintf(w->c->errout, "%s\n", line);
    fflush(w->c->errout);
    w->last_state = (int)status->state;
    w->last_epoch = status->epoch;
    w->last_report = now;
  }
}

static int finish_wait(ctl *c, waiter *w, const Pando__V1__JobStatus *status) {
  char line[1024];
  clear_live(w);
  if (c->args->output == PD_CTL_OUTPUT_JSON) {
    print_job_json(c, status);
  } else {
    pd_ctl_final_line(status, line, sizeof line);
    fprintf(c->out, "%s\n", line);
    if (status->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED && status->n_round_history > 0 &&
        pd_ctl_final_accuracy(status) >= 0) {
      fprintf(c->out, "test accuracy: %.4f\n", pd_ctl_final_accuracy(status));
    } else if (status->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED &&
               status->n_history > 0) {
      const Pando__V1__EpochRecord *last = status->history[status->n_history - 1];
      if (last->test_rmse > 0 && last->test_accuracy == 0) /* a regression */
        fprintf(c->out, "test rmse: %.4f\n", last->test_rmse);
      else
        fprintf(c->out, "test accuracy: %.4f\n", last->test_accuracy);
    }
  }
  fflush(c->out);
  return status->state == PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED ? PD_CTL_EXIT_OK
                                                                    : PD_CTL_EXIT_FAILURE;
}

/* Polls GetJob until the job ends, Ctrl-C, or the coordinator stays
 * unreachable for args->retry_sec. Returns the exit code. */
static int wait_job(ctl *c, const char *job) {
  const pd_ctl_args *args = c->args;
  waiter w = {.c = c, .last_state = -1, .last_epoch = UINT32_MAX, .last_report = -INFINITY};
  int fd = fileno(c->errout);
  w.tty = fd >= 0 && isatty(fd);
  struct winsize size;
  if (w.tty && ioctl(fd, TIOCGWINSZ, &size) == 0)
    w.columns = size.ws_col;

  struct sigaction action, previous;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  interrupted = 0;
  sigaction(SIGINT, &action, &previous);

  Pando__V1__JobStatus *status = NULL;
  size_t epochs_shown = 0, rounds_shown = 0;
  double last_contact = pd_now();
  int outage = 0, code = -1;
  char line[1024];
  while (code < 0) {
    Pando__V1__JobStatus *next = NULL;
    Pando__V1__JobRequest request = PANDO__V1__JOB_REQUEST__INIT;
    rpc_error error;
    request.job = (char *)job;
    if (coordinator_call(c, "/pando.v1.Coordinator/GetJob", &request.base,
                         &pando__v1__job_status__descriptor, (ProtobufCMessage **)&next,
                         &error) == 0) {
      if (status)
        protobuf_c_message_free_unpacked(&status->base, NULL);
      status = next;
      last_contact = pd_now();
      if (outage) {
        snprintf(line, sizeof line, "pandoctl: coordinator %s is reachable again",
                 args->coordinator);
        print_line(&w, c->errout, line);
        outage = 0;
      }
      for (; epochs_shown < status->n_history; epochs_shown++) {
        pd_ctl_epoch_line(status, epochs_shown, line, sizeof line);
        print_line(&w, c->human, line);
      }
      /* federated rounds: a line per attempt (the coordinator shows a round once it is evaluated)
       */
      for (; rounds_shown < status->n_round_history; rounds_shown++) {
        pd_ctl_round_line(status, rounds_shown, line, sizeof line);
        print_line(&w, c->human, line);
      }
      if (pd_ctl_job_state_final(status->state)) {
        code = finish_wait(c, &w, status);
        break;
      }
      show_progress(&w, status);
    } else if (error.status == GRPC_STATUS_NOT_FOUND) {
      clear_live(&w);
      fprintf(c->errout, "pandoctl: job '%s' not found\n", job);
      code = PD_CTL_EXIT_FAILURE;
      break;
    } else if (unreachable(error.status)) {
      /* A new channel connects on the next call instead of after gRPC's
       * reconnect backoff, which can grow beyond the retry window. */
      pd_rpc_channel_free(c->channel);
      c->channel = NULL;
      double down = pd_now() - last_contact;
      if (down >= args->retry_sec) {
        clear_live(&w);
        fprintf(c->errout,
                "pandoctl: coordinator %s: %s: %s (unreachable for %.0f s; gave up waiting, "
                "job %s may still be running)\n",
                args->coordinator, pd_rpc_status_name(error.status), error.details, down, job);
        code = PD_CTL_EXIT_FAILURE;
        break;
      }
      if (!outage) {
        snprintf(line, sizeof line,
                 "pandoctl: warning: coordinator %s: %s: %s; retrying for up to %.0f s",
                 args->coordinator, pd_rpc_status_name(error.status), error.details,
                 args->retry_sec);
        print_line(&w, c->errout, line);
        outage = 1;
      }
    } else {
      clear_live(&w);
      code = report_coordinator_error(c, &error);
      break;
    }
    sleep_interruptible(args->poll_sec);
    if (interrupted) {
      clear_live(&w);
      fprintf(c->errout, "pandoctl: stopped waiting; job %s keeps running (pandoctl status %s)\n",
              job, job);
      code = PD_CTL_EXIT_INTERRUPTED;
    }
  }

  sigaction(SIGINT, &previous, NULL);
  if (status)
    protobuf_c_message_free_unpacked(&status->base, NULL);
  return code;
}

/* ---------------------------------------------------------------- the commands */

/* Reads a whole file ("-": standard input) into a NUL-terminated string.
 * Returns 0 or -errno. */
static int read_file(const char *path, char **text) {
  int from_stdin = strcmp(path, "-") == 0;
  FILE *f = from_stdin ? stdin : fopen(path, "rb");
  if (!f)
    return -errno;
  size_t len = 0, cap = 4096;
  char *buf = pd_xmalloc(cap);
  int rc = 0;
  errno = 0;
  for (;;) {
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (len + 1 == cap) {
      cap *= 2;
      buf = pd_xrealloc(buf, cap);
    } else if (n == 0) {
      break;
    }
  }
  if (ferror(f))
    rc = errno ? -errno : -EIO;
  if (!from_stdin)
    fclose(f);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[len] = '\0';
  *text = buf;
  return 0;
}

/* Writes the job's token to --token-out's file, readable by its owner only.
 * Returns 0, or -1 after reporting why. */
static int write_token(ctl *c, const Pando__V1__JobStatus *status) {
  const char *path = c->args->token_out;
  if (!status->job_token[0]) {
    fprintf(c->errout,
            "pandoctl: warning: job %s has no token (the cluster has no token_file); %s not "
            "written\n",
            status->job, path);
    return 0;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  int ok = f && fprintf(f, "%s\n", status->job_token) > 0;
  if (f ? fclose(f) != 0 : (fd >= 0 && close(fd) != 0))
    ok = 0;
  if (!ok)
    fprintf(c->errout, "pandoctl: cannot write the token of job %s to %s: %s\n", status->job, path,
            strerror(errno));
  return ok ? 0 : -1;
}

static int cmd_submit(ctl *c) {
  const char *path = c->args->operand;
  char *spec = NULL;
  Pando__V1__JobStatus *status = NULL;
  rpc_error error;
  int code = PD_CTL_EXIT_OK;

  int rc = read_file(path, &spec);
  if (rc != 0) {
    fprintf(c->errout, "pandoctl: cannot read job spec %s: %s\n", path, strerror(-rc));
    return PD_CTL_EXIT_USAGE;
  }
  Pando__V1__SubmitJobRequest request = PANDO__V1__SUBMIT_JOB_REQUEST__INIT;
  request.spec_yaml = spec;
  if (coordinator_call(c, "/pando.v1.Coordinator/SubmitJob", &request.base,
                       &pando__v1__job_status__descriptor, (ProtobufCMessage **)&status,
                       &error) != 0) {
    if (error.status == GRPC_STATUS_INVALID_ARGUMENT) {
      fprintf(c->errout, "pandoctl: job spec %s: %s\n", path, error.details);
      code = PD_CTL_EXIT_USAGE;
    } else if (error.status == GRPC_STATUS_RESOURCE_EXHAUSTED) { /* admission control */
      fprintf(c->errout, "pandoctl: job spec %s: the cluster cannot hold it: %s\n", path,
              error.details);
      code = PD_CTL_EXIT_FAILURE;
    } else {
      code = report_coordinator_error(c, &error);
    }
    goto done;
  }
  if (c->args->token_out && write_token(c, status) != 0) {
    code = PD_CTL_EXIT_FAILURE;
    goto done;
  }
  if (c->args->output == PD_CTL_OUTPUT_TEXT) {
    fprintf(c->out, "%s\n", status->job);
    fflush(c->out);
  } else if (!c->args->wait) {
    print_job_json(c, status);
  }
  if (c->args->wait)
    code = wait_job(c, status->job);

done:
  if (status)
    protobuf_c_message_free_unpacked(&status->base, NULL);
  free(spec);
  return code;
}

/* Sends `request` to `method` of every server of the job's shard map:
 * returns an array of one answer per shard (free with free_answers), NULL
 * for a server that did not answer (the shard was dropped, the server is
 * gone) or has no address; *asked receives how many were asked. */
static ProtobufCMessage **ask_servers(ctl *c, const Pando__V1__JobStatus *status,
                                      const char *method, const ProtobufCMessage *request,
                                      const ProtobufCMessageDescriptor *answer, uint32_t *asked) {
  const Pando__V1__ShardMap *map = status->shard_map;
  size_t n = map ? map->n_shards : 0;
  ProtobufCMessage **responses = pd_xcalloc(n + 1, sizeof *responses);
  *asked = 0;
  for (size_t i = 0; i < n; i++) {
    if (!map->shards[i]->address[0])
      continue;
    (*asked)++;
    pd_rpc_channel *channel = pd_rpc_channel_new(map->shards[i]->address, 1);
    rpc_error error;
    if (call(channel, method, request, answer, &responses[i], PD_MIN(c->args->timeout_sec, 2.0),
             &error) != 0)
      responses[i] = NULL;
    pd_rpc_channel_free(channel);
  }
  return responses;
}

static void free_answers(const Pando__V1__JobStatus *status, void *answers) {
  ProtobufCMessage **responses = answers;
  for (size_t i = 0; status->shard_map && i < status->shard_map->n_shards; i++)
    if (responses[i])
      protobuf_c_message_free_unpacked(responses[i], NULL);
  free(responses);
}

/* Every server's statistics of the job (GetStats), as ask_servers. */
static Pando__V1__StatsResponse **fetch_stats(ctl *c, const Pando__V1__JobStatus *status,
                                              uint32_t *asked) {
  Pando__V1__StatsRequest request = PANDO__V1__STATS_REQUEST__INIT;
  request.job = status->job;
  return (Pando__V1__StatsResponse **)ask_servers(c, status, "/pando.v1.ParameterServer/GetStats",
                                                  &request.base,
                                                  &pando__v1__stats_response__descriptor, asked);
}

/* The servers' update-strategy counts, merged (pandoctl status). */
static void gather_stats(ctl *c, const Pando__V1__JobStatus *status, pd_ctl_stats *stats) {
  memset(stats, 0, sizeof *stats);
  Pando__V1__StatsResponse **responses = fetch_stats(c, status, &stats->asked);
  for (size_t i = 0; status->shard_map && i < status->shard_map->n_shards; i++)
    if (responses[i])
      pd_ctl_stats_merge(stats, responses[i]);
  free_answers(status, responses);
}

static int cmd_stats(ctl *c) {
  Pando__V1__JobStatus *status = NULL;
  int code = job_call(c, "/pando.v1.Coordinator/GetJob", c->args->operand, &status);
  if (code != 0)
    return code;
  uint32_t asked;
  Pando__V1__StatsResponse **responses = fetch_stats(c, status, &asked);
  pd_ctl_print_phase_stats(c->out, c->args->output == PD_CTL_OUTPUT_JSON, status, responses);
  free_answers(status, responses);
  protobuf_c_message_free_unpacked(&status->base, NULL);
  return PD_CTL_EXIT_OK;
}

static int cmd_status(ctl *c) {
  Pando__V1__JobStatus *status = NULL;
  int code = job_call(c, "/pando.v1.Coordinator/GetJob", c->args->operand, &status);
  if (code != 0)
    return code;
  pd_ctl_stats stats;
  gather_stats(c, status, &stats);
  if (c->args->output == PD_CTL_OUTPUT_JSON) {
    pd_ctl_json json;
    pd_ctl_json_init(&json, c->out);
    pd_ctl_json_job_stats(&json, status, &stats);
    pd_ctl_json_close(&json);
  } else {
    pd_ctl_print_job_stats(c->out, status, &stats);
  }
  protobuf_c_message_free_unpacked(&status->base, NULL);
  return PD_CTL_EXIT_OK;
}

/* A trace gathered page by page (GetTrace): `all` lists the spans of every
 * page, borrowed from `pages`. */
typedef struct trace_pages {
  Pando__V1__TraceResponse all;
  Pando__V1__TraceResponse **pages;
  size_t npages;
} trace_pages;

static void trace_pages_free(trace_pages *tp) {
  for (size_t i = 0; i < tp->npages; i++)
    protobuf_c_message_free_unpacked(&tp->pages[i]->base, NULL);
  free(tp->pages);
  free(tp->all.events);
  memset(tp, 0, sizeof *tp);
}

/* Calls `method` on `channel` for every page of the trace `request` asks for
 * (its cursor is overwritten), into *tp (free with trace_pages_free). On
 * failure fills `error`, frees the pages fetched and returns -1. */
static int fetch_trace(pd_rpc_channel *channel, const char *method,
                       Pando__V1__TraceRequest *request, double timeout_sec, trace_pages *tp,
                       rpc_error *error) {
  memset(tp, 0, sizeof *tp);
  pando__v1__trace_response__init(&tp->all);
  size_t cap = 0;
  request->cursor = 0;
  for (;;) {
    Pando__V1__TraceResponse *page = NULL;
    if (call(channel, method, &request->base, &pando__v1__trace_response__descriptor,
             (ProtobufCMessage **)&page, timeout_sec, error) != 0) {
      trace_pages_free(tp);
      return -1;
    }
    tp->pages = pd_xrealloc(tp->pages, (tp->npages + 1) * sizeof *tp->pages);
    tp->pages[tp->npages++] = page;
    if (tp->all.n_events + page->n_events > cap) {
      cap = PD_MAX(2 * cap, tp->all.n_events + page->n_events);
      tp->all.events = pd_xrealloc(tp->all.events, (cap + 1) * sizeof *tp->all.events);
    }
    if (page->n_events)
      memcpy(tp->all.events + tp->all.n_events, page->events,
             page->n_events * sizeof *page->events);
    tp->all.n_events += page->n_events;
    tp->all.dropped = page->dropped; /* the newest count */
    /* the last page (a daemon that answers a cursor with itself is not paging) */
    if (page->next_cursor == 0 || page->next_cursor == request->cursor)
      return 0;
    request->cursor = page->next_cursor;
  }
}

static int cmd_trace(ctl *c) {
  Pando__V1__JobStatus *status = NULL;
  int code = job_call(c, "/pando.v1.Coordinator/GetJob", c->args->operand, &status);
  if (code != 0)
    return code;
  Pando__V1__TraceRequest request = PANDO__V1__TRACE_REQUEST__INIT;
  request.job = status->job;
  request.from_clock = c->args->from_step;
  request.to_clock = c->args->to_step;
  const Pando__V1__ShardMap *map = status->shard_map;
  size_t nshards = map ? map->n_shards : 0;
  trace_pages workers, *shards = pd_xcalloc(nshards + 1, sizeof *shards);
  Pando__V1__TraceResponse **servers = pd_xcalloc(nshards + 1, sizeof *servers);
  rpc_error error;
  if (fetch_trace(c->channel, "/pando.v1.Coordinator/GetTrace", &request, c->args->timeout_sec,
                  &workers, &error) != 0) {
    code = report_coordinator_error(c, &error);
    goto done;
  }
  for (size_t i = 0; i < nshards; i++) {
    if (!map->shards[i]->address[0])
      continue;
    pd_rpc_channel *channel = pd_rpc_channel_new(map->shards[i]->address, 1);
    if (fetch_trace(channel, "/pando.v1.ParameterServer/GetTrace", &request,
                    PD_MIN(c->args->timeout_sec, 2.0), &shards[i], &error) == 0)
      servers[i] = &shards[i].all;
    else
      fprintf(c->errout,
              "pandoctl: warning: server %zu (%s) did not answer (%s: %s): its spans "
              "are left out\n",
              i, map->shards[i]->address, pd_rpc_status_name(error.status), error.details);
    pd_rpc_channel_free(channel);
  }
  if (pd_ctl_write_trace(c->args->out_path, status, &workers.all, servers, c->human, c->errout) !=
      0)
    code = PD_CTL_EXIT_FAILURE;
  trace_pages_free(&workers);
done:
  for (size_t i = 0; i < nshards; i++)
    trace_pages_free(&shards[i]);
  free(servers);
  free(shards);
  protobuf_c_message_free_unpacked(&status->base, NULL);
  return code;
}

/* cancel, resume: a call on one job that answers its status, printed. */
static int cmd_job_change(ctl *c, const char *method) {
  Pando__V1__JobStatus *status = NULL;
  int code = job_call(c, method, c->args->operand, &status);
  if (code != 0)
    return code;
  if (c->args->output == PD_CTL_OUTPUT_JSON)
    print_job_json(c, status);
  else
    fprintf(c->out, "job %s %s%s%s\n", status->job, pd_ctl_job_state_name(status->state),
            status->message[0] ? ": " : "", status->message);
  protobuf_c_message_free_unpacked(&status->base, NULL);
  return PD_CTL_EXIT_OK;
}

static int cmd_list(ctl *c) {
  Pando__V1__ListJobsRequest request = PANDO__V1__LIST_JOBS_REQUEST__INIT;
  Pando__V1__ListJobsResponse *jobs = NULL;
  rpc_error error;
  if (coordinator_call(c, "/pando.v1.Coordinator/ListJobs", &request.base,
                       &pando__v1__list_jobs_response__descriptor, (ProtobufCMessage **)&jobs,
                       &error) != 0)
    return report_coordinator_error(c, &error);
  if (c->args->output == PD_CTL_OUTPUT_JSON) {
    pd_ctl_json json;
    pd_ctl_json_init(&json, c->out);
    pd_ctl_json_jobs(&json, jobs);
    pd_ctl_json_close(&json);
  } else {
    pd_ctl_print_jobs(c->out, jobs);
  }
  protobuf_c_message_free_unpacked(&jobs->base, NULL);
  return PD_CTL_EXIT_OK;
}

static int cmd_cluster(ctl *c) {
  Pando__V1__ClusterRequest request = PANDO__V1__CLUSTER_REQUEST__INIT;
  Pando__V1__ClusterResponse *cluster = NULL;
  rpc_error error;
  if (coordinator_call(c, "/pando.v1.Coordinator/Cluster", &request.base,
                       &pando__v1__cluster_response__descriptor, (ProtobufCMessage **)&cluster,
                       &error) != 0)
    return report_coordinator_error(c, &error);
  if (c->args->output == PD_CTL_OUTPUT_JSON) {
    pd_ctl_json json;
    pd_ctl_json_init(&json, c->out);
    pd_ctl_json_cluster(&json, cluster);
    pd_ctl_json_close(&json);
  } else {
    pd_ctl_print_cluster(c->out, cluster);
  }
  protobuf_c_message_free_unpacked(&cluster->base, NULL);
  return PD_CTL_EXIT_OK;
}

static int cmd_explain(ctl *c) {
  char *yaml = NULL, err[1024], note[600];
  const char *path = c->args->operand;
  int rc = read_file(path, &yaml);
  if (rc != 0) {
    fprintf(c->errout, "pandoctl: cannot read job spec %s: %s\n", path, strerror(-rc));
    return PD_CTL_EXIT_USAGE;
  }
  pd_job_spec *spec = pd_xcalloc(1, sizeof *spec);
  pd_ctl_plan *plan = pd_xcalloc(1, sizeof *plan);
  int code = PD_CTL_EXIT_OK;
  if (pd_job_spec_parse(yaml, strlen(yaml), spec, err, sizeof err) != 0) {
    fprintf(c->errout, "pandoctl: job spec %s: %s\n", path, err);
    code = PD_CTL_EXIT_USAGE;
    goto done;
  }
  Pando__V1__ClusterRequest request = PANDO__V1__CLUSTER_REQUEST__INIT;
  Pando__V1__ClusterResponse *cluster = NULL;
  rpc_error error;
  if (coordinator_call(c, "/pando.v1.Coordinator/Cluster", &request.base,
                       &pando__v1__cluster_response__descriptor, (ProtobufCMessage **)&cluster,
                       &error) != 0) {
    fprintf(c->errout,
            "pandoctl: explain: coordinator %s: %s: %s (the registered nodes are left out)\n",
            c->args->coordinator, pd_rpc_status_name(error.status), error.details);
    cluster = NULL;
  }
  pd_ctl_explain_plan(spec, plan, note, sizeof note);
  if (c->args->output == PD_CTL_OUTPUT_JSON) {
    pd_ctl_json json;
    pd_ctl_json_init(&json, c->out);
    pd_ctl_explain_json(&json, spec, plan, note, cluster);
    pd_ctl_json_close(&json);
  } else {
    pd_ctl_explain_print(c->out, spec, plan, note, cluster);
  }
  if (cluster)
    protobuf_c_message_free_unpacked(&cluster->base, NULL);
done:
  free(plan);
  free(spec);
  free(yaml);
  return code;
}

static int cmd_export(ctl *c) {
  Pando__V1__JobStatus *status = NULL;
  int code = job_call(c, "/pando.v1.Coordinator/GetJob", c->args->operand, &status);
  if (code != 0)
    return code;
  int rc = pd_ctl_export(status, c->args->checkpoint, c->args->out_path, c->args->timeout_sec,
                         c->human, c->errout);
  protobuf_c_message_free_unpacked(&status->base, NULL);
  return rc == 0 ? PD_CTL_EXIT_OK : PD_CTL_EXIT_FAILURE;
}

static int cmd_plot(ctl *c) {
  Pando__V1__JobStatus *status[PD_ARRAY_SIZE(c->args->jobs)] = {0};
  int code = PD_CTL_EXIT_OK, n = c->args->njobs;
  for (int i = 0; i < n && code == PD_CTL_EXIT_OK; i++)
    code = job_call(c, "/pando.v1.Coordinator/GetJob", c->args->jobs[i], &status[i]);
  if (code == PD_CTL_EXIT_OK && pd_ctl_plot((const Pando__V1__JobStatus *const *)status, (size_t)n,
                                            c->args->out_path, c->human, c->errout) != 0)
    code = PD_CTL_EXIT_FAILURE;
  for (int i = 0; i < n; i++)
    if (status[i])
      protobuf_c_message_free_unpacked(&status[i]->base, NULL);
  return code;
}

static int cmd_health(ctl *c) {
  const char *address = c->args->operand;
  Grpc__Health__V1__HealthCheckRequest request = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *response = NULL;
  rpc_error error;
  request.service = (char *)c->args->service;
  pd_rpc_channel *channel = pd_rpc_channel_new(address, 0);
  int rc = call(channel, "/grpc.health.v1.Health/Check", &request.base,
                &grpc__health__v1__health_check_response__descriptor,
                (ProtobufCMessage **)&response, c->args->timeout_sec, &error);
  pd_rpc_channel_free(channel);
  if (rc != 0)
    return report_rpc_error(c, address, &error);
  const char *name = pd_rpc_enum_name(
      &grpc__health__v1__health_check_response__serving_status__descriptor, response->status);
  if (c->args->output == PD_CTL_OUTPUT_JSON) {
    pd_ctl_json json;
    pd_ctl_json_init(&json, c->out);
    pd_ctl_json_begin_object(&json);
    pd_ctl_json_field_string(&json, "address", address);
    pd_ctl_json_field_string(&json, "service", c->args->service);
    pd_ctl_json_field_string(&json, "status", name);
    pd_ctl_json_end_object(&json);
    pd_ctl_json_close(&json);
  } else {
    fprintf(c->out, "%s\n", name);
  }
  int serving =
      response->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  protobuf_c_message_free_unpacked(&response->base, NULL);
  return serving ? PD_CTL_EXIT_OK : PD_CTL_EXIT_FAILURE;
}

int pd_ctl_run(const pd_ctl_args *args, FILE *out, FILE *errout) {
  ctl c = {.args = args, .out = out, .errout = errout};
  c.human = args->output == PD_CTL_OUTPUT_JSON ? errout : out;
  int code = PD_CTL_EXIT_OK;
  if (args->version) {
    pd_ctl_print_version(out);
    return PD_CTL_EXIT_OK;
  }
  if (args->help) {
    pd_ctl_usage(out, args->command);
    return PD_CTL_EXIT_OK;
  }
  pd_security_settings security = {args->cert,       args->key,   args->ca,
                                   args->token_file, args->token, 0};
  char err[512];
  if (pd_security_configure(&security, err, sizeof err) != 0) {
    /* pd_security names the daemons' settings: say pandoctl's options instead */
    static const char *const names[][2] = {{"tls_cert: ", "--cert (PANDO_CERT): "},
                                           {"tls_key: ", "--key (PANDO_KEY): "},
                                           {"tls_ca: ", "--ca (PANDO_CA): "},
                                           {"token_file: ", "--token-file (PANDO_TOKEN_FILE): "}};
    const char *message = err, *name = "";
    for (size_t i = 0; i < PD_ARRAY_SIZE(names); i++)
      if (strncmp(err, names[i][0], strlen(names[i][0])) == 0) {
        name = names[i][1];
        message = err + strlen(names[i][0]);
      }
    fprintf(errout, "pandoctl: %s%s\n", name, message);
    return PD_CTL_EXIT_USAGE;
  }
  switch (args->command) {
  case PD_CTL_CMD_NONE:
    pd_ctl_usage(errout, PD_CTL_CMD_NONE);
    return PD_CTL_EXIT_USAGE;
  case PD_CTL_CMD_HELP:
    pd_ctl_usage(out,
                 args->operand ? find_command_by_name(args->operand)->command : PD_CTL_CMD_NONE);
    return PD_CTL_EXIT_OK;
  case PD_CTL_CMD_SUBMIT:
    code = cmd_submit(&c);
    break;
  case PD_CTL_CMD_STATUS:
    code = cmd_status(&c);
    break;
  case PD_CTL_CMD_LIST:
    code = cmd_list(&c);
    break;
  case PD_CTL_CMD_CANCEL:
    code = cmd_job_change(&c, "/pando.v1.Coordinator/CancelJob");
    break;
  case PD_CTL_CMD_RESUME:
    code = cmd_job_change(&c, "/pando.v1.Coordinator/ResumeJob");
    break;
  case PD_CTL_CMD_CLUSTER:
    code = cmd_cluster(&c);
    break;
  case PD_CTL_CMD_HEALTH:
    code = cmd_health(&c);
    break;
  case PD_CTL_CMD_STATS:
    code = cmd_stats(&c);
    break;
  case PD_CTL_CMD_TRACE:
    code = cmd_trace(&c);
    break;
  case PD_CTL_CMD_PLOT:
    code = cmd_plot(&c);
    break;
  case PD_CTL_CMD_EXPLAIN:
    code = cmd_explain(&c);
    break;
  case PD_CTL_CMD_EXPORT:
    code = cmd_export(&c);
    break;
  }
  pd_rpc_channel_free(c.channel);
  fflush(out);
  return code;
}

void pd_ctl_usage_error(FILE *errout, const pd_ctl_args *args, const char *message) {
  const command_info *cmd = find_command(args->command);
  fprintf(errout, "pandoctl: %s\n", message);
  if (cmd && cmd->command != PD_CTL_CMD_HELP)
    fprintf(errout, "see pandoctl %s --help\n", cmd->name);
  else
    fprintf(errout, "see pandoctl --help\n");
}

int pd_ctl_main(int argc, char **argv, FILE *out, FILE *errout) {
  pd_ctl_args args;
  char err[512];
  if (pd_ctl_parse(argc, argv, &args, err, sizeof err) != 0) {
    pd_ctl_usage_error(errout, &args, err);
    return PD_CTL_EXIT_USAGE;
  }
  return pd_ctl_run(&args, out, errout);
}
