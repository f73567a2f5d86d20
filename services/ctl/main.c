/* pandoctl: parses the command line, starts the RPC layer, runs the command
 * and exits with its code. The commands live in ctl.c. */
#include <stdio.h>

#include "ctl.h"
#include "pando/rpc.h"

int main(int argc, char **argv) {
  pd_ctl_args args;
  char err[512];
  if (pd_ctl_parse(argc, argv, &args, err, sizeof err) != 0) {
    pd_ctl_usage_error(stderr, &args, err);
    return PD_CTL_EXIT_USAGE;
  }
  pd_rpc_init();
  int code = pd_ctl_run(&args, stdout, stderr);
  pd_rpc_shutdown();
  return code;
}
