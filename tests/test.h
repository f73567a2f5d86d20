/* Pando's minimal unit-test harness: each test binary lists its cases in
 * main() with PD_RUN(); a failed check prints file:line and fails the case.
 * `test_x -l` lists the cases, `test_x NAME` runs one of them. The binary
 * prints "N passed, N failed" and exits non-zero on any failure.
 *
 * Each case runs in a process of its own, as libuv's runner does: the
 * binary runs itself (/proc/self/exe NAME, with PD_TEST_CHILD=1 in the
 * environment) for every case and waits for it, so a case that crashes is
 * reported as that case's failure ("crashed: signal N") and the other cases
 * still run. main()'s set-up and clean-up run in every child. Set
 * PD_TEST_NOFORK=1 to run the cases in one process (under a debugger). */
#ifndef PANDO_TEST_H
#define PANDO_TEST_H

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int pd_test_failed_checks;
static int pd_test_passed, pd_test_failed;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                   \
      pd_test_failed_checks++;                                                                     \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
  do {                                                                                             \
    long long _a = (long long)(a), _b = (long long)(b);                                            \
    if (_a != _b) {                                                                                \
      fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, _a,  \
              _b);                                                                                 \
      pd_test_failed_checks++;                                                                     \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
  do {                                                                                             \
    double _a = (double)(a), _b = (double)(b);                                                     \
    if (!(fabs(_a - _b) <= (tol))) {                                                               \
      fprintf(stderr, "  %s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a,   \
              #b, (double)(tol), _a, _b);                                                          \
      pd_test_failed_checks++;                                                                     \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                            \
  do {                                                                                             \
    const char *_h = (hay), *_n = (needle);                                                        \
    if (!_h || !strstr(_h, _n)) {                                                                  \
      fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,             \
              _h ? _h : "(null)", _n);                                                             \
      pd_test_failed_checks++;                                                                     \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

static int pd_test_selected(int argc, char **argv, const char *name) {
  if (argc < 2)
    return 1;
  if (strcmp(argv[1], "-l") == 0) {
    printf("%s\n", name);
    return 0;
  }
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return 1;
  return 0;
}

/* Whether this process runs the cases itself: a child, or PD_TEST_NOFORK. */
static int pd_test_in_process(void) {
  return getenv("PD_TEST_CHILD") != NULL || getenv("PD_TEST_NOFORK") != NULL;
}

/* Runs case `name` in a child process; returns 1 when it passed. */
static int pd_test_run_child(const char *name) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 0;
  }
  if (pid == 0) {
    setenv("PD_TEST_CHILD", "1", 1);
    execl("/proc/self/exe", "/proc/self/exe", name, (char *)NULL);
    perror("exec /proc/self/exe");
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    ;
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "  %s crashed: signal %d (%s)\n", name, WTERMSIG(status),
            strsignal(WTERMSIG(status)));
    return 0;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#define PD_RUN(fn)                                                                                 \
  do {                                                                                             \
    if (!pd_test_selected(argc, argv, #fn))                                                        \
      break;                                                                                       \
    int _passed;                                                                                   \
    if (pd_test_in_process()) {                                                                    \
      int _before = pd_test_failed_checks;                                                         \
      fn();                                                                                        \
      _passed = pd_test_failed_checks == _before;                                                  \
    } else {                                                                                       \
      _passed = pd_test_run_child(#fn);                                                            \
    }                                                                                              \
    if (_passed)                                                                                   \
      pd_test_passed++;                                                                            \
    else                                                                                           \
      pd_test_failed++;                                                                            \
    if (!getenv("PD_TEST_CHILD"))                                                                  \
      printf("%s - %s\n", _passed ? "ok" : "FAIL", #fn);                                           \
    fflush(stdout);                                                                                \
  } while (0)

#define PD_TEST_DONE()                                                                             \
  do {                                                                                             \
    if (argc >= 2 && strcmp(argv[1], "-l") == 0)                                                   \
      return 0;                                                                                    \
    if (getenv("PD_TEST_CHILD"))                                                                   \
      return pd_test_failed ? 1 : 0;                                                               \
    printf("%d passed, %d failed\n", pd_test_passed, pd_test_failed);                              \
    return pd_test_failed ? 1 : 0;                                                                 \
  } while (0)

/* A new empty directory under $TMPDIR (or /tmp) named PREFIX-XXXXXX; free
 * the returned path with free() after pd_test_rmtree(). NULL on failure. */
static inline char *pd_test_tmpdir(const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  char *dir = (char *)malloc(1024);
  snprintf(dir, 1024, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
  if (!mkdtemp(dir)) {
    free(dir);
    return NULL;
  }
  return dir;
}

/* Removes directory `dir` and everything in it. */
static inline void pd_test_rmtree(const char *dir) {
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "  could not remove %s\n", dir);
}

#endif
