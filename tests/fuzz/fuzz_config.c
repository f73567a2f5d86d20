/* The daemon configuration parser (pd_config_load) on a --config file, with
 * a table that has every option type. */
#include <stddef.h>
#include <string.h>

#include "fuzz.h"
#include "pando/config.h"

typedef struct fuzz_config {
  char name[64];
  char level[16];
  int heartbeat_ms;
  double ratio;
  int flag;
} fuzz_config;

static const char *const levels[] = {"debug", "info", NULL};
static const pd_config_option table[] = {
    {"name", PD_CFG_STRING, offsetof(fuzz_config, name), 64, 0, 0, "x", "a string", NULL},
    {"level", PD_CFG_STRING, offsetof(fuzz_config, level), 16, 0, 0, "info", "a choice", levels},
    {"heartbeat_ms", PD_CFG_INT, offsetof(fuzz_config, heartbeat_ms), 0, 10, 60000, "200", "an int",
     NULL},
    {"ratio", PD_CFG_DOUBLE, offsetof(fuzz_config, ratio), 0, 0, 1, "0.5", "a double", NULL},
    {"flag", PD_CFG_BOOL, offsetof(fuzz_config, flag), 0, 0, 0, "false", "a bool", NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64], err[512] = "";
  int fd = fuzz_file(data, size, path, sizeof path);
  char *argv[] = {"fuzz", "--config", path, NULL};
  char *rest[4];
  int nrest = 0;
  fuzz_config cfg;
  memset(&cfg, 0, sizeof cfg);
  int rc = pd_config_load(table, sizeof table / sizeof table[0], &cfg, "fuzz", 3, argv, rest,
                          &nrest, err, sizeof err);
  if (rc < 0 && err[0] == '\0')
    abort();
  if (rc == 0 && (cfg.heartbeat_ms < 10 || cfg.heartbeat_ms > 60000 ||
                  memchr(cfg.name, '\0', sizeof cfg.name) == NULL))
    abort();
  close(fd);
  return 0;
}
