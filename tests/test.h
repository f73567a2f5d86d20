/* Pando's minimal unit-test harness: each test binary lists its cases in
 * main() with PD_RUN(); a failed check prints file:line and fails the case.
 * `test_x -l` lists the cases, `test_x NAME` runs one of them. The binary
 * prints "N passed, N failed" and exits non-zero on any failure. */
#ifndef PANDO_TEST_H
#define PANDO_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pd_test_failed_checks;
static int pd_test_passed, pd_test_failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,       \
              #cond);                                                          \
      pd_test_failed_checks++;                                                 \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long _a = (long long)(a), _b = (long long)(b);                        \
    if (_a != _b) {                                                            \
      fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,    \
              __LINE__, #a, #b, _a, _b);                                       \
      pd_test_failed_checks++;                                                 \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                  \
  do {                                                                         \
    double _a = (double)(a), _b = (double)(b);                                 \
    if (!(fabs(_a - _b) <= (tol))) {                                           \
      fprintf(stderr, "  %s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n",       \
              __FILE__, __LINE__, #a, #b, (double)(tol), _a, _b);              \
      pd_test_failed_checks++;                                                 \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                        \
  do {                                                                         \
    const char *_h = (hay), *_n = (needle);                                    \
    if (!_h || !strstr(_h, _n)) {                                              \
      fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,   \
              __LINE__, _h ? _h : "(null)", _n);                               \
      pd_test_failed_checks++;                                                 \
      return;                                                                  \
    }                                                                          \
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

#define PD_RUN(fn)                                                             \
  do {                                                                         \
    if (!pd_test_selected(argc, argv, #fn))                                    \
      break;                                                                   \
    int _before = pd_test_failed_checks;                                       \
    fn();                                                                      \
    if (pd_test_failed_checks == _before) {                                    \
      pd_test_passed++;                                                        \
      printf("ok - %s\n", #fn);                                                \
    } else {                                                                   \
      pd_test_failed++;                                                        \
      printf("FAIL - %s\n", #fn);                                              \
    }                                                                          \
    fflush(stdout);                                                            \
  } while (0)

#define PD_TEST_DONE()                                                         \
  do {                                                                         \
    if (argc >= 2 && strcmp(argv[1], "-l") == 0)                               \
      return 0;                                                                \
    printf("%d passed, %d failed\n", pd_test_passed, pd_test_failed);          \
    return pd_test_failed ? 1 : 0;                                             \
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
