/* Unit tests of the daemon configuration loader (common/src/base/config.c). */
#include "pando/config.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../test.h"
#include "pando/error.h"
#include "pando/util.h"

struct test_config {
  char listen[32];
  int heartbeat_ms;
  double timeout_sec;
  int verbose;
  bool trace;
  int64_t max_bytes;
  char data_dir[64];
};

#define AT(member) offsetof(struct test_config, member)
#define SIZE(member) sizeof(((struct test_config *)0)->member)

static const pd_config_option options[] = {
    {"listen", PD_CFG_STRING, AT(listen), SIZE(listen), 0, 0, "127.0.0.1:7000",
     "address to listen on", NULL},
    {"heartbeat_ms", PD_CFG_INT, AT(heartbeat_ms), 0, 10, 60000, "1000", "heartbeat interval",
     NULL},
    {"timeout_sec", PD_CFG_DOUBLE, AT(timeout_sec), 0, 0.1, 3600, "5.5", "RPC deadline", NULL},
    {"verbose", PD_CFG_BOOL, AT(verbose), 0, 0, 0, "false", "log more", NULL},
    {"trace", PD_CFG_BOOL, AT(trace), SIZE(trace), 0, 0, "no", "trace RPCs", NULL},
    {"max_bytes", PD_CFG_INT, AT(max_bytes), SIZE(max_bytes), 0, 0, "4294967296", "largest message",
     NULL},
    {"data_dir", PD_CFG_STRING, AT(data_dir), SIZE(data_dir), 0, 0, NULL, "where data lives", NULL},
};

static const char *const env_vars[] = {"PANDO_CONFIG",      "PANDO_LISTEN",  "PANDO_HEARTBEAT_MS",
                                       "PANDO_TIMEOUT_SEC", "PANDO_VERBOSE", "PANDO_TRACE",
                                       "PANDO_MAX_BYTES",   "PANDO_DATA_DIR"};

static void clear_env(void) {
  for (size_t i = 0; i < PD_ARRAY_SIZE(env_vars); i++)
    unsetenv(env_vars[i]);
}

/* Runs pd_config_load on a NULL-terminated list of arguments (after argv[0]). */
struct run {
  struct test_config config;
  char *rest[16];
  int nrest;
  char err[512];
  int rc;
};

static void load(struct run *r, const char *const *args) {
  char *argv[16] = {"pando-test"};
  int argc = 1;
  for (; args && args[argc - 1]; argc++)
    argv[argc] = (char *)args[argc - 1];
  memset(r, 0xab, sizeof *r); /* whatever the caller had is overwritten */
  r->err[0] = '\0';
  r->rc = pd_config_load(options, PD_ARRAY_SIZE(options), &r->config, "pando-test", argc, argv,
                         r->rest, &r->nrest, r->err, sizeof r->err);
}

/* Writes `text` to a new file under /tmp; `path` gets its name. */
static void write_temp(const char *text, char *path, size_t size) {
  snprintf(path, size, "/tmp/pando-test-config-XXXXXX");
  int fd = mkstemp(path);
  PD_ASSERT(fd >= 0);
  PD_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
}

/* Captures what the code between begin and end writes to stdout. */
struct capture {
  int fd, saved;
  char text[8192];
};

static void capture_begin(struct capture *c) {
  char path[] = "/tmp/pando-test-stdout-XXXXXX";
  fflush(stdout);
  c->fd = mkstemp(path);
  PD_ASSERT(c->fd >= 0);
  unlink(path);
  c->saved = dup(STDOUT_FILENO);
  dup2(c->fd, STDOUT_FILENO);
}

static void capture_end(struct capture *c) {
  fflush(stdout);
  dup2(c->saved, STDOUT_FILENO);
  close(c->saved);
  ssize_t n = pread(c->fd, c->text, sizeof c->text - 1, 0);
  c->text[n > 0 ? n : 0] = '\0';
  close(c->fd);
}

static void test_defaults(void) {
  struct run r;
  clear_env();
  load(&r, NULL);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(strcmp(r.config.listen, "127.0.0.1:7000") == 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 1000);
  CHECK(r.config.timeout_sec == 5.5);
  CHECK_EQ_INT(r.config.verbose, 0);
  CHECK(r.config.trace == false);
  CHECK(r.config.max_bytes == 4294967296LL);
  CHECK(r.config.data_dir[0] == '\0');
  CHECK_EQ_INT(r.nrest, 0);
}

static void test_precedence(void) {
  struct run r;
  char path[64];
  clear_env();
  write_temp("# settings\nheartbeat_ms: 200\ntimeout_sec: 2\nlisten: '0.0.0.0:9000'\n", path,
             sizeof path);
  const char *file_only[] = {"--config", path, NULL};
  load(&r, file_only);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 200);
  CHECK(r.config.timeout_sec == 2.0);
  CHECK(strcmp(r.config.listen, "0.0.0.0:9000") == 0);

  setenv("PANDO_HEARTBEAT_MS", "300", 1);
  setenv("PANDO_LISTEN", "", 1); /* empty: unset */
  load(&r, file_only);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 300);
  CHECK(strcmp(r.config.listen, "0.0.0.0:9000") == 0);

  const char *with_flag[] = {"--config", path, "--heartbeat-ms", "400", NULL};
  load(&r, with_flag);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 400);
  CHECK(r.config.timeout_sec == 2.0);

  /* The file can also come from PANDO_CONFIG. */
  setenv("PANDO_CONFIG", path, 1);
  unsetenv("PANDO_HEARTBEAT_MS");
  load(&r, NULL);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 200);
  clear_env();
  unlink(path);
}

static void test_flag_forms(void) {
  struct run r;
  clear_env();
  const char *args[] = {"job.yaml",      "--heartbeat_ms=250",
                        "--timeout-sec", "0.25",
                        "--verbose",     "--trace",
                        "yes",           "-",
                        "--max-bytes",   "-1",
                        "--data_dir=",   "--",
                        "--not-a-flag",  NULL};
  load(&r, args);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 250);
  CHECK(r.config.timeout_sec == 0.25);
  CHECK_EQ_INT(r.config.verbose, 1);
  CHECK(r.config.trace == true);
  CHECK(r.config.max_bytes == -1);
  CHECK(r.config.data_dir[0] == '\0');
  CHECK_EQ_INT(r.nrest, 3);
  CHECK(strcmp(r.rest[0], "job.yaml") == 0);
  CHECK(strcmp(r.rest[1], "-") == 0);
  CHECK(strcmp(r.rest[2], "--not-a-flag") == 0);

  /* A bool flag takes the next argument only when it is a bool word. */
  const char *bools[] = {"--verbose", "false", "--trace=1", "--verbose", "file", NULL};
  load(&r, bools);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.verbose, 1);
  CHECK(r.config.trace == true);
  CHECK_EQ_INT(r.nrest, 1);
  CHECK(strcmp(r.rest[0], "file") == 0);

  const char *off[] = {"--verbose=NO", "--trace", "0", NULL};
  load(&r, off);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.verbose, 0);
  CHECK(r.config.trace == false);
}

static void test_bad_flag_values(void) {
  struct run r;
  clear_env();
  const char *low[] = {"--heartbeat-ms", "5", NULL};
  load(&r, low);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err,
                     "heartbeat_ms: must be between 10 and 60000, got 5 (flag --heartbeat-ms)");

  const char *word[] = {"--heartbeat_ms=often", NULL};
  load(&r, word);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "heartbeat_ms: expected an integer, got 'often' (flag --heartbeat_ms)");

  const char *boolean[] = {"--verbose=maybe", NULL};
  load(&r, boolean);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err,
                     "verbose: expected true/false/yes/no/1/0, got 'maybe' (flag --verbose)");

  const char *number[] = {"--timeout-sec", "9000", NULL};
  load(&r, number);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err,
                     "timeout_sec: must be between 0.1 and 3600, got 9000 (flag --timeout-sec)");

  const char *text[] = {"--listen", "a-very-long-address-that-does-not-fit:7000", NULL};
  load(&r, text);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "listen: longer than 31 characters (flag --listen)");
}

static void test_bad_env_values(void) {
  struct run r;
  clear_env();
  setenv("PANDO_HEARTBEAT_MS", "abc", 1);
  load(&r, NULL);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err,
                     "heartbeat_ms: expected an integer, got 'abc' (env PANDO_HEARTBEAT_MS)");
  setenv("PANDO_HEARTBEAT_MS", "70000", 1);
  load(&r, NULL);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(
      r.err, "heartbeat_ms: must be between 10 and 60000, got 70000 (env PANDO_HEARTBEAT_MS)");
  clear_env();
  setenv("PANDO_TIMEOUT_SEC", "nan", 1);
  load(&r, NULL);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err,
                     "timeout_sec: must be a finite number, got nan (env PANDO_TIMEOUT_SEC)");
  /* A flag does not hide a bad environment variable. */
  const char *flag[] = {"--timeout-sec", "1", NULL};
  load(&r, flag);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "(env PANDO_TIMEOUT_SEC)");
  clear_env();
}

static void test_bad_file(void) {
  static const struct {
    const char *text;
    const char *expect; /* "%s" stands for the file's path */
  } cases[] = {
      {"heartbeat_ms: 5\n", "heartbeat_ms: must be between 10 and 60000, got 5 (file %s:1)"},
      {"listen: x\n\nverbose: perhaps\n",
       "verbose: expected true/false/yes/no/1/0, got 'perhaps' (file %s:3)"},
      {"heartbeat: 100\n", "heartbeat: unknown key (file %s:1); see --help"},
      {"trace: yes\ntrace: no\n", "trace: duplicated key (file %s:2); first set at line 1"},
      {"listen: {host: a}\n", "listen: expected a single value, got a mapping (file %s:1)"},
      {"listen: [a]\n", "listen: expected a single value, got a list (file %s:1)"},
      {"- a\n- b\n", "config file %s:1: expected a mapping of key: value"},
      {"listen: a\n  verbose: yes\n", "config file %s:2: YAML syntax error: "},
  };
  clear_env();
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    struct run r;
    char path[64], expect[256];
    write_temp(cases[i].text, path, sizeof path);
    const char *args[] = {"--config", path, NULL};
    load(&r, args);
    unlink(path);
    snprintf(expect, sizeof expect, cases[i].expect, path);
    if (r.rc >= 0 || !strstr(r.err, expect))
      fprintf(stderr, "  case %zu: rc %d, error \"%s\", expected \"%s\"\n", i, r.rc, r.err, expect);
    CHECK(r.rc < 0);
    CHECK_STR_CONTAINS(r.err, expect);
  }
}

static void test_empty_file(void) {
  struct run r;
  char path[64];
  clear_env();
  write_temp("# nothing set here\n", path, sizeof path);
  const char *args[] = {"--config=", NULL};
  char flag[96];
  snprintf(flag, sizeof flag, "--config=%s", path);
  args[0] = flag;
  load(&r, args);
  unlink(path);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.config.heartbeat_ms, 1000);
}

static void test_missing_file(void) {
  struct run r;
  clear_env();
  const char *args[] = {"--config", "/nonexistent/pando.yaml", NULL};
  load(&r, args);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(
      r.err, "config file /nonexistent/pando.yaml: No such file or directory (flag --config)");
  setenv("PANDO_CONFIG", "/nonexistent/env.yaml", 1);
  load(&r, NULL);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(
      r.err, "config file /nonexistent/env.yaml: No such file or directory (env PANDO_CONFIG)");
  clear_env();
}

static void test_bad_flags(void) {
  struct run r;
  clear_env();
  const char *unknown[] = {"--heartbeat", "5", NULL};
  load(&r, unknown);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "unknown flag '--heartbeat'; see --help");
  const char *unknown_eq[] = {"--nope=3", NULL};
  load(&r, unknown_eq);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "unknown flag '--nope'; see --help");
  const char *single_dash[] = {"-v", NULL};
  load(&r, single_dash);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "unknown flag '-v'");
  const char *missing[] = {"--heartbeat-ms", NULL};
  load(&r, missing);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "heartbeat_ms: missing value (flag --heartbeat-ms)");
  const char *missing_config[] = {"--config", NULL};
  load(&r, missing_config);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err, "config: missing value (flag --config)");
}

static void test_help(void) {
  struct run r;
  struct capture c;
  clear_env();
  const char *args[] = {"--help", NULL};
  capture_begin(&c);
  load(&r, args);
  capture_end(&c);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR_CONTAINS(c.text, "usage: pando-test");
  CHECK_STR_CONTAINS(c.text, "--heartbeat-ms INT");
  CHECK_STR_CONTAINS(c.text, "heartbeat interval");
  CHECK_STR_CONTAINS(c.text,
                     "key heartbeat_ms, env PANDO_HEARTBEAT_MS, default 1000, range 10..60000");
  CHECK_STR_CONTAINS(c.text, "--timeout-sec NUMBER");
  CHECK_STR_CONTAINS(c.text, "--verbose BOOL");
  CHECK_STR_CONTAINS(c.text, "--listen STRING");
  CHECK_STR_CONTAINS(c.text, "default 127.0.0.1:7000");
  CHECK_STR_CONTAINS(c.text, "env PANDO_DATA_DIR, default \"\"");
  CHECK_STR_CONTAINS(c.text, "--check-config");

  /* -h works too, and wins over a bad flag. */
  const char *short_help[] = {"--bogus", "-h", NULL};
  capture_begin(&c);
  load(&r, short_help);
  capture_end(&c);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR_CONTAINS(c.text, "PANDO_TRACE");
}

static void test_check_config(void) {
  struct run r;
  struct capture c;
  char path[64], line[160];
  clear_env();
  write_temp("listen: 10.0.0.1:7000\ntimeout_sec: 2\n", path, sizeof path);
  setenv("PANDO_VERBOSE", "yes", 1);
  const char *args[] = {"--config", path, "--check-config", "--heartbeat-ms=400", NULL};
  capture_begin(&c);
  load(&r, args);
  capture_end(&c);
  unlink(path);
  clear_env();
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR_CONTAINS(c.text, "heartbeat_ms = 400  (flag --heartbeat-ms)\n");
  snprintf(line, sizeof line, "listen = 10.0.0.1:7000  (file %s:1)\n", path);
  CHECK_STR_CONTAINS(c.text, line);
  snprintf(line, sizeof line, "timeout_sec = 2  (file %s:2)\n", path);
  CHECK_STR_CONTAINS(c.text, line);
  CHECK_STR_CONTAINS(c.text, "verbose = true  (env PANDO_VERBOSE)\n");
  CHECK_STR_CONTAINS(c.text, "trace = false  (default)\n");
  CHECK_STR_CONTAINS(c.text, "max_bytes = 4294967296  (default)\n");
  CHECK_STR_CONTAINS(c.text, "data_dir = \"\"  (default)\n");

  /* It validates: a bad value is an error, not a listing. */
  const char *bad[] = {"--check-config", "--heartbeat-ms=1", NULL};
  capture_begin(&c);
  load(&r, bad);
  capture_end(&c);
  CHECK(r.rc < 0);
  CHECK_STR_CONTAINS(r.err,
                     "heartbeat_ms: must be between 10 and 60000, got 1 (flag --heartbeat-ms)");
  CHECK(c.text[0] == '\0');
}

/* A string option with a list of choices takes only those, and says which. */
static void test_choices(void) {
  static const char *const levels[] = {"debug", "info", NULL};
  static const pd_config_option table[] = {
      {"level", PD_CFG_STRING, AT(listen), SIZE(listen), 0, 0, "info", "log level", levels},
  };
  struct test_config config;
  char *ok_argv[] = {"pando-test", "--level", "debug", NULL}, *rest[4], err[256];
  int nrest;
  clear_env();
  CHECK_EQ_INT(pd_config_load(table, 1, &config, "t", 3, ok_argv, rest, &nrest, err, sizeof err),
               0);
  CHECK(strcmp(config.listen, "debug") == 0);
  char *bad_argv[] = {"pando-test", "--level=loud", NULL};
  CHECK(pd_config_load(table, 1, &config, "t", 2, bad_argv, rest, &nrest, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err,
                     "level: unknown value 'loud'; expected one of: debug, info (flag --level)");
}

/* A PD_CFG_SECRET option is a string whose value --check-config hides. */
static void test_secret_shown_as_set(void) {
  static const pd_config_option table[] = {
      {"token_file", PD_CFG_SECRET, AT(data_dir), SIZE(data_dir), 0, 0, NULL, "secret file", NULL},
      {"listen", PD_CFG_SECRET, AT(listen), SIZE(listen), 0, 0, NULL, "unset secret", NULL},
  };
  struct test_config config;
  struct capture c;
  char *argv[] = {"pando-test", "--token-file", "/run/secret-path", "--check-config", NULL};
  char *rest[4], err[256];
  int nrest;
  clear_env();
  capture_begin(&c);
  int rc = pd_config_load(table, 2, &config, "t", 4, argv, rest, &nrest, err, sizeof err);
  capture_end(&c);
  CHECK_EQ_INT(rc, 1);
  CHECK(strcmp(config.data_dir, "/run/secret-path") == 0);
  CHECK_STR_CONTAINS(c.text, "token_file = (set)  (flag --token-file)\n");
  CHECK_STR_CONTAINS(c.text, "listen = \"\"  (default)\n");
  CHECK(strstr(c.text, "secret-path") == NULL);
}

/* A default that does not parse is a programmer error: the loader aborts. */
static void test_bad_default_aborts(void) {
  static const pd_config_option broken[] = {
      {"heartbeat_ms", PD_CFG_INT, AT(heartbeat_ms), 0, 10, 60000, "fast", "heartbeat interval",
       NULL},
  };
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct test_config config;
    char *argv[] = {"pando-test", NULL}, *rest[1], err[128];
    int nrest;
    FILE *quiet = freopen("/dev/null", "w", stderr);
    (void)quiet;
    pd_config_load(broken, 1, &config, "pando-test", 1, argv, rest, &nrest, err, sizeof err);
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

int main(int argc, char **argv) {
  PD_RUN(test_defaults);
  PD_RUN(test_precedence);
  PD_RUN(test_flag_forms);
  PD_RUN(test_bad_flag_values);
  PD_RUN(test_bad_env_values);
  PD_RUN(test_bad_file);
  PD_RUN(test_empty_file);
  PD_RUN(test_missing_file);
  PD_RUN(test_bad_flags);
  PD_RUN(test_help);
  PD_RUN(test_check_config);
  PD_RUN(test_secret_shown_as_set);
  PD_RUN(test_choices);
  PD_RUN(test_bad_default_aborts);
  PD_TEST_DONE();
}
