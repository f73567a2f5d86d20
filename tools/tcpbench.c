/* tcpbench: the raw TCP loopback baseline that Pando's pull/push figures are
 * compared against. A receiver process and a sender process (fork) move
 * --bytes over one TCP connection on 127.0.0.1 with --io-bytes writes and
 * reads, --reps times; each repetition is timed from the first write until
 * the receiver acknowledges the last byte. GB/s means 1e9 bytes per second.
 *
 *   tcpbench [--bytes N] [--io-bytes N] [--reps N]
 *
 * Prints one human-readable line and one machine-readable line:
 *   BENCH tcp bytes=... reps=... median_gbps=... best_gbps=... */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pando/util.h"

typedef struct options {
  size_t bytes;    /* moved per repetition */
  size_t io_bytes; /* size of each write() and read() */
  int reps;        /* timed repetitions (one untimed warm-up comes first) */
} options;

static void die(const char *what) {
  fprintf(stderr, "tcpbench: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr, "usage: tcpbench [--bytes N] [--io-bytes N] [--reps N]\n");
  exit(2);
}

static int parse_options(int argc, char **argv, options *opt) {
  opt->bytes = 64u << 20;
  opt->io_bytes = 1u << 20;
  opt->reps = 10;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      usage();
    long long v = atoll(argv[i + 1]);
    if (v <= 0)
      usage();
    if (strcmp(argv[i], "--bytes") == 0)
      opt->bytes = (size_t)v;
    else if (strcmp(argv[i], "--io-bytes") == 0)
      opt->io_bytes = (size_t)v;
    else if (strcmp(argv[i], "--reps") == 0)
      opt->reps = (int)v;
    else
      usage();
    i++;
  }
  return 0;
}

static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      die("write");
    p += k;
    n -= (size_t)k;
  }
}

static void read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      die("read");
    p += k;
    n -= (size_t)k;
  }
}

/* The receiver: reads `bytes` per repetition into one buffer and answers a
 * one-byte acknowledgement after each. */
static void receive(int fd, const options *opt) {
  char *buf = pd_xmalloc(opt->io_bytes);
  memset(buf, 0, opt->io_bytes);
  for (int r = 0; r <= opt->reps; r++) {
    size_t left = opt->bytes;
    while (left > 0) {
      ssize_t k = read(fd, buf, PD_MIN(left, opt->io_bytes));
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        die("read");
      left -= (size_t)k;
    }
    write_all(fd, "k", 1);
  }
  free(buf);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  options opt;
  parse_options(argc, argv, &opt);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0)
    die("socket");
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof addr;
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0)
    die("bind/listen");

  pid_t child = fork();
  if (child < 0)
    die("fork");
  if (child == 0) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
      die("accept");
    receive(fd, &opt);
    close(fd);
    _exit(0);
  }
  close(lfd);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  char *buf = pd_xmalloc(opt.io_bytes);
  memset(buf, 0x5a, opt.io_bytes);
  double *gbps = pd_xcalloc((size_t)opt.reps, sizeof *gbps);
  for (int r = 0; r <= opt.reps; r++) { /* r == 0 is the warm-up */
    double t0 = pd_now();
    for (size_t left = opt.bytes; left > 0;) {
      size_t n = PD_MIN(left, opt.io_bytes);
      write_all(fd, buf, n);
      left -= n;
    }
    char ack;
    read_all(fd, &ack, 1);
    double sec = pd_now() - t0;
    if (r > 0)
      gbps[r - 1] = (double)opt.bytes / sec / 1e9;
  }
  close(fd);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "tcpbench: receiver failed\n");
    return 1;
  }

  qsort(gbps, (size_t)opt.reps, sizeof *gbps, cmp_double);
  double median =
      opt.reps % 2 ? gbps[opt.reps / 2] : (gbps[opt.reps / 2 - 1] + gbps[opt.reps / 2]) / 2;
  double best = gbps[opt.reps - 1];
  printf("raw TCP loopback, one connection, %zu-byte writes/reads: %zu bytes x %d: "
         "median %.2f GB/s, best %.2f GB/s (GB = 1e9 bytes)\n",
         opt.io_bytes, opt.bytes, opt.reps, median, best);
  printf("BENCH tcp bytes=%zu io_bytes=%zu reps=%d median_gbps=%.3f best_gbps=%.3f\n", opt.bytes,
         opt.io_bytes, opt.reps, median, best);
  free(gbps);
  free(buf);
  return 0;
}
