/* Unit tests of pandoctl: argument parsing, duration/ETA/progress
 * formatting, the JSON writer and tables, and every command end to end
 * against a fake Coordinator served by the RPC layer on loopback. */
#include "../../../services/ctl/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../../../services/ctl/json.h"
#include "../../../services/ctl/output.h"
#include "../../../services/ctl/table.h"
#include "../../test.h"
#include "pando.pb-c.h"
#include "pando/error.h"
#include "pando/rpc.h"
#include "pando/util.h"

/* ---------------------------------------------------------------- helpers */

/* Text written to a memory stream; the buffer is freed by the next capture. */
typedef struct capture {
  FILE *stream;
  char *text;
  size_t len;
} capture;

static void capture_open(capture *cap) {
  free(cap->text);
  cap->text = NULL;
  cap->len = 0;
  cap->stream = open_memstream(&cap->text, &cap->len);
}

static const char *capture_close(capture *cap) {
  fclose(cap->stream);
  cap->stream = NULL;
  return cap->text;
}

static capture out_cap, err_cap;

/* Whether `text` ends with `suffix`. */
static int ends_with(const char *text, const char *suffix) {
  size_t n = strlen(text), m = strlen(suffix);
  return n >= m && strcmp(text + n - m, suffix) == 0;
}

/* A strict JSON syntax check (RFC 8259), enough to prove our output parses. */
static const char *json_value(const char *p);

static const char *json_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
    p++;
  return p;
}

static const char *json_string(const char *p) {
  if (*p++ != '"')
    return NULL;
  while (*p != '"') {
    if ((unsigned char)*p < 0x20)
      return NULL;
    if (*p == '\\') {
      p++;
      if (*p == 'u') {
        for (int i = 1; i <= 4; i++)
          if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
            return NULL;
        p += 4;
      } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
        return NULL;
      }
    }
    p++;
  }
  return p + 1;
}

static const char *json_number(const char *p) {
  const char *start = p;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9')
      p++;
  else
    return NULL;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9'))
      return NULL;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return NULL;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  return p > start ? p : NULL;
}

static const char *json_container(const char *p, char close, int object) {
  p = json_ws(p + 1);
  if (*p == close)
    return p + 1;
  for (;;) {
    if (object) {
      if (!(p = json_string(json_ws(p))))
        return NULL;
      p = json_ws(p);
      if (*p++ != ':')
        return NULL;
    }
    if (!(p = json_value(p)))
      return NULL;
    p = json_ws(p);
    if (*p == close)
      return p + 1;
    if (*p++ != ',')
      return NULL;
  }
}

static const char *json_value(const char *p) {
  p = json_ws(p);
  switch (*p) {
  case '{':
    return json_container(p, '}', 1);
  case '[':
    return json_container(p, ']', 0);
  case '"':
    return json_string(p);
  case 't':
    return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
  case 'f':
    return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
  case 'n':
    return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
  default:
    return json_number(p);
  }
}

/* Whether `text` is exactly one JSON object (and whitespace). */
static int json_is_one_object(const char *text) {
  const char *p = json_ws(text);
  if (*p != '{')
    return 0;
  p = json_value(p);
  return p && *json_ws(p) == '\0';
}

/* ---------------------------------------------------------------- the fake coordinator */

typedef struct fake_job {
  char id[32];
  int calls; /* GetJob calls so far */
} fake_job;

static struct fake {
  pd_loop *loop;
  pd_rpc_server *srv;
  pthread_t thread;
  atomic_int stop;
  char address[64];
  pthread_mutex_t mu;
  fake_job jobs[32];
  int njobs;
  int submits;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *const fake_services[] = {"pando.v1.Coordinator", NULL};

/* Counts a GetJob call of `id`; returns the number of calls so far. */
static int fake_count_call(const char *id) {
  pthread_mutex_lock(&fake.mu);
  int i = 0;
  while (i < fake.njobs && strcmp(fake.jobs[i].id, id) != 0)
    i++;
  if (i == fake.njobs && fake.njobs < (int)PD_ARRAY_SIZE(fake.jobs)) {
    pd_strlcpy(fake.jobs[i].id, id, sizeof fake.jobs[i].id);
    fake.jobs[i].calls = 0;
    fake.njobs++;
  }
  int calls = i < fake.njobs ? ++fake.jobs[i].calls : 1;
  pthread_mutex_unlock(&fake.mu);
  return calls;
}

static void fake_reset(void) {
  pthread_mutex_lock(&fake.mu);
  fake.njobs = 0;
  fake.submits = 0;
  pthread_mutex_unlock(&fake.mu);
}

/* A JobStatus and the messages it points to. */
typedef struct status_storage {
  Pando__V1__JobStatus status;
  Pando__V1__EpochRecord records[3];
  Pando__V1__EpochRecord *record_ptrs[3];
  Pando__V1__ShardMap map;
  Pando__V1__Shard shards[2];
  Pando__V1__Shard *shard_ptrs[2];
} status_storage;

static const double test_accuracies[3] = {0.8421, 0.8610, 0.8765};

/* A job of 3 epochs of 469 steps on 2 servers and 4 workers, `finished`
 * epochs in its history. */
static Pando__V1__JobStatus *make_status(status_storage *s, const char *job,
                                         Pando__V1__JobState state, uint32_t epoch, uint64_t step,
                                         int finished) {
  s->status = (Pando__V1__JobStatus)PANDO__V1__JOB_STATUS__INIT;
  s->status.job = (char *)job;
  s->status.name = "fashion-mlp";
  s->status.state = state;
  s->status.epoch = epoch;
  s->status.epochs = 3;
  s->status.step = step;
  s->status.steps_per_epoch = 469;
  s->status.loss = 0.9 - 0.1 * epoch;
  s->status.samples_per_sec = 12345;
  s->status.elapsed_sec = 10.0 * epoch;
  s->status.servers = 2;
  s->status.workers = 4;
  for (int i = 0; i < finished; i++) {
    s->records[i] = (Pando__V1__EpochRecord)PANDO__V1__EPOCH_RECORD__INIT;
    s->records[i].epoch = (uint32_t)i + 1;
    s->records[i].train_loss = 0.6 - 0.05 * i;
    s->records[i].test_accuracy = test_accuracies[i];
    s->records[i].test_loss = 0.44 - 0.02 * i;
    s->records[i].seconds = 12.3 * (i + 1);
    s->record_ptrs[i] = &s->records[i];
  }
  s->status.n_history = (size_t)finished;
  s->status.history = finished ? s->record_ptrs : NULL;
  s->map = (Pando__V1__ShardMap)PANDO__V1__SHARD_MAP__INIT;
  s->map.version = 1;
  s->map.keys = 101770;
  for (int i = 0; i < 2; i++) {
    s->shards[i] = (Pando__V1__Shard)PANDO__V1__SHARD__INIT;
    s->shards[i].begin = i == 0 ? 0 : 50885;
    s->shards[i].end = i == 0 ? 50885 : 101770;
    s->shards[i].address = i == 0 ? "127.0.0.1:7001" : "127.0.0.1:7002";
    s->shard_ptrs[i] = &s->shards[i];
  }
  s->map.n_shards = 2;
  s->map.shards = s->shard_ptrs;
  s->status.shard_map = &s->map;
  return &s->status;
}

/* The life of a job that succeeds: on the Nth GetJob call. */
static Pando__V1__JobStatus *succeeding_job(status_storage *s, const char *job, int call) {
  switch (call) {
  case 1:
    return make_status(s, job, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 1, 100, 0);
  case 2:
    return make_status(s, job, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 2, 50, 1);
  case 3:
    return make_status(s, job, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 3, 400, 2);
  default:
    return make_status(s, job, PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED, 3, 469, 3);
  }
}

static void fake_submit(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)ctx;
  const Pando__V1__SubmitJobRequest *req = (const Pando__V1__SubmitJobRequest *)msg;
  if (strstr(req->spec_yaml, "bad")) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                     "model.layers: expected a list of at least 2 positive integers, got [784]");
  } else {
    char id[32];
    const char *named = strstr(req->spec_yaml, "id: ");
    pthread_mutex_lock(&fake.mu);
    int n = ++fake.submits;
    pthread_mutex_unlock(&fake.mu);
    if (named)
      sscanf(named + 4, "%31s", id);
    else
      snprintf(id, sizeof id, "job-%d", n);
    status_storage s;
    pd_rpc_call_reply_msg(
        call, &make_status(&s, id, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 0, 0, 0)->base);
  }
}

static void fake_get_job(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)ctx;
  const Pando__V1__JobRequest *req = (const Pando__V1__JobRequest *)msg;
  const char *id = req->job;
  int n = fake_count_call(id);
  status_storage s;
  Pando__V1__JobStatus *status = NULL;
  if (strcmp(id, "missing") == 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", id);
  } else if (strcmp(id, "down") == 0 || (strcmp(id, "flaky") == 0 && n <= 2)) {
    pd_rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "the coordinator is restarting");
  } else if (strcmp(id, "flaky") == 0) {
    status = succeeding_job(&s, id, n - 2);
  } else if (strcmp(id, "done") == 0) {
    status = succeeding_job(&s, id, 4);
  } else if (strcmp(id, "fail") == 0) {
    status = n < 2 ? make_status(&s, id, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 1, 10, 0)
                   : make_status(&s, id, PANDO__V1__JOB_STATE__JOB_STATE_FAILED, 1, 17, 0);
    status->message = "worker 1: loss is NaN at step 17";
  } else if (strcmp(id, "forever") == 0) {
    status = make_status(&s, id, PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 1, (uint64_t)n, 0);
    if (n >= 3)
      kill(getpid(), SIGINT); /* the user presses Ctrl-C */
  } else if (strcmp(id, "pending") == 0 && n <= 2) {
    status = make_status(&s, id, PANDO__V1__JOB_STATE__JOB_STATE_PENDING, 0, 0, 0);
    status->message = "waiting for 4 workers (1 registered)";
  } else {
    status = succeeding_job(&s, id, strcmp(id, "pending") == 0 ? n - 2 : n);
  }
  if (status)
    pd_rpc_call_reply_msg(call, &status->base);
}

static void fake_cancel_job(pd_rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  (void)ctx;
  const Pando__V1__JobRequest *req = (const Pando__V1__JobRequest *)msg;
  if (strcmp(req->job, "missing") == 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "job '%s' not found", req->job);
  } else {
    status_storage s;
    Pando__V1__JobStatus *status =
        make_status(&s, req->job, PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED, 2, 10, 1);
    status->message = "cancelled by pandoctl";
    pd_rpc_call_reply_msg(call, &status->base);
  }
}

static void fake_list_jobs(pd_rpc_call *call, void *ctx) {
  (void)ctx;
  status_storage a, b;
  Pando__V1__JobStatus *jobs[2] = {
      make_status(&a, "job-a", PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 1, 100, 0),
      make_status(&b, "job-b", PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED, 3, 469, 3)};
  b.status.name = "mlp \"fashion\" \xc3\xbc\n";
  Pando__V1__ListJobsResponse resp = PANDO__V1__LIST_JOBS_RESPONSE__INIT;
  resp.n_jobs = 2;
  resp.jobs = jobs;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void fake_cluster(pd_rpc_call *call, void *ctx) {
  (void)ctx;
  Pando__V1__NodeStatus nodes[3];
  Pando__V1__NodeStatus *ptrs[3];
  for (int i = 0; i < 3; i++) {
    nodes[i] = (Pando__V1__NodeStatus)PANDO__V1__NODE_STATUS__INIT;
    nodes[i].node_id = (uint64_t)i + 1;
    ptrs[i] = &nodes[i];
  }
  nodes[0].role = PANDO__V1__ROLE__ROLE_SERVER;
  nodes[0].name = "ps-0";
  nodes[0].address = "10.0.0.1:7000";
  nodes[0].alive = 1;
  nodes[0].last_seen_sec = 0.4;
  nodes[0].job = "job-b";
  nodes[0].math = "oneDNN 2.6.3 (avx2), OpenBLAS 0.3.21 (Zen)";
  nodes[1].role = PANDO__V1__ROLE__ROLE_WORKER;
  nodes[1].name = "worker-0";
  nodes[1].address = "10.0.0.2:7100";
  nodes[1].alive = 1;
  nodes[1].last_seen_sec = 1.25;
  nodes[1].job = "job-b";
  nodes[1].math = "oneDNN 2.6.3 (avx512_core_amx), OpenBLAS 0.3.21 (Prescott)";
  nodes[2].role = PANDO__V1__ROLE__ROLE_WORKER;
  nodes[2].name = "worker-1";
  nodes[2].address = "10.0.0.3:7100";
  nodes[2].last_seen_sec = 42;
  Pando__V1__ClusterResponse resp = PANDO__V1__CLUSTER_RESPONSE__INIT;
  resp.n_nodes = 3;
  resp.nodes = ptrs;
  pd_rpc_call_reply_msg(call, &resp.base);
}

static void *fake_thread(void *arg) {
  (void)arg;
  while (!atomic_load(&fake.stop))
    pd_loop_run_once(fake.loop, 0.05);
  return NULL;
}

static void fake_run(void) {
  atomic_store(&fake.stop, 0);
  PD_ASSERT(pthread_create(&fake.thread, NULL, fake_thread, NULL) == 0);
}

static void fake_pause(void) {
  atomic_store(&fake.stop, 1);
  pthread_join(fake.thread, NULL);
}

static int fake_start(void) {
  char err[256];
  fake.loop = pd_loop_new();
  fake.srv = pd_rpc_server_new(fake.loop);
  pd_rpc_server_add_unary(fake.srv, "/pando.v1.Coordinator/SubmitJob",
                          &pando__v1__submit_job_request__descriptor, fake_submit, NULL);
  pd_rpc_server_add_unary(fake.srv, "/pando.v1.Coordinator/GetJob",
                          &pando__v1__job_request__descriptor, fake_get_job, NULL);
  pd_rpc_server_add_unary(fake.srv, "/pando.v1.Coordinator/CancelJob",
                          &pando__v1__job_request__descriptor, fake_cancel_job, NULL);
  pd_rpc_server_add_method(fake.srv, "/pando.v1.Coordinator/ListJobs", fake_list_jobs, NULL);
  pd_rpc_server_add_method(fake.srv, "/pando.v1.Coordinator/Cluster", fake_cluster, NULL);
  pd_rpc_health_register(fake.srv, fake_services);
  int port = pd_rpc_server_listen(fake.srv, "127.0.0.1:0", err, sizeof err);
  if (port <= 0) {
    fprintf(stderr, "fake coordinator: %s\n", err);
    return -1;
  }
  snprintf(fake.address, sizeof fake.address, "127.0.0.1:%d", port);
  pd_rpc_server_start(fake.srv);
  fake_run();
  return 0;
}

static void fake_stop(void) {
  fake_pause();
  pd_rpc_server_free(fake.srv);
  pd_loop_free(fake.loop);
}

/* ---------------------------------------------------------------- running pandoctl */

enum { NORMAL = 0, FAST = 1, PATIENT = 2 };

/* Runs pandoctl against the fake with the NULL-terminated arguments. FAST
 * shortens the --wait intervals (poll 20 ms, retry 0.5 s) through
 * pd_ctl_parse + pd_ctl_run; PATIENT polls as fast but retries for 600 s,
 * for cases whose outcome must not depend on how fast the calls are (the
 * fake answers by call count); NORMAL goes through pd_ctl_main as is. stdout
 * and stderr land in out_cap/err_cap. */
static int run(int speed, ...) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = "pandoctl";
  argv[argc++] = "--coordinator";
  argv[argc++] = fake.address;
  va_list ap;
  va_start(ap, speed);
  for (char *arg; (arg = va_arg(ap, char *)) != NULL && argc < 31;)
    argv[argc++] = arg;
  va_end(ap);
  argv[argc] = NULL;
  capture_open(&out_cap);
  capture_open(&err_cap);
  int code;
  if (speed == FAST || speed == PATIENT) {
    pd_ctl_args args;
    char err[256];
    code = pd_ctl_parse(argc, argv, &args, err, sizeof err);
    PD_ASSERT(code == 0);
    args.poll_sec = 0.02;
    args.retry_sec = speed == PATIENT ? 600 : 0.5;
    code = pd_ctl_run(&args, out_cap.stream, err_cap.stream);
  } else {
    code = pd_ctl_main(argc, argv, out_cap.stream, err_cap.stream);
  }
  capture_close(&out_cap);
  capture_close(&err_cap);
  return code;
}

static char spec_path[64];

/* Writes a job spec to a temporary file named in spec_path. */
static void write_spec(const char *text) {
  if (spec_path[0])
    unlink(spec_path);
  snprintf(spec_path, sizeof spec_path, "/tmp/pandoctl-test-XXXXXX");
  int fd = mkstemp(spec_path);
  PD_ASSERT(fd >= 0);
  PD_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
}

/* ---------------------------------------------------------------- parsing */

static int parse(pd_ctl_args *args, char *err, size_t errlen, ...) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = "pandoctl";
  va_list ap;
  va_start(ap, errlen);
  for (char *arg; (arg = va_arg(ap, char *)) != NULL && argc < 31;)
    argv[argc++] = arg;
  va_end(ap);
  argv[argc] = NULL;
  err[0] = '\0';
  return pd_ctl_parse(argc, argv, args, err, errlen);
}

static void test_parse_defaults(void) {
  pd_ctl_args args;
  char err[256];
  unsetenv("PANDO_COORDINATOR");
  CHECK_EQ_INT(parse(&args, err, sizeof err, "list", NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_LIST);
  CHECK(strcmp(args.coordinator, "127.0.0.1:7070") == 0);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_TEXT);
  CHECK_NEAR(args.timeout_sec, 10, 0);
  CHECK_NEAR(args.poll_sec, 0.5, 0);
  CHECK_NEAR(args.retry_sec, 30, 0);
  CHECK_NEAR(args.report_sec, 5, 0);
  CHECK(args.operand == NULL);
  CHECK(strcmp(args.service, "") == 0);
  CHECK_EQ_INT(args.wait, 0);
  CHECK_EQ_INT(args.help, 0);

  CHECK_EQ_INT(parse(&args, err, sizeof err, NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_NONE);
}

static void test_parse_options(void) {
  pd_ctl_args args;
  char err[256];
  setenv("PANDO_COORDINATOR", "coord.example:9000", 1);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "status", "job-1", NULL), 0);
  CHECK(strcmp(args.coordinator, "coord.example:9000") == 0);
  CHECK(strcmp(args.operand, "job-1") == 0);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "--coordinator", "h:1", "status", "j", NULL), 0);
  CHECK(strcmp(args.coordinator, "h:1") == 0);
  unsetenv("PANDO_COORDINATOR");

  /* Global options after the command, every spelling of a value. */
  CHECK_EQ_INT(parse(&args, err, sizeof err, "submit", "x.yaml", "--wait", "-o", "json",
                     "--timeout=2.5", "--coordinator=h:2", NULL),
               0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_SUBMIT);
  CHECK(strcmp(args.operand, "x.yaml") == 0);
  CHECK_EQ_INT(args.wait, 1);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_JSON);
  CHECK_NEAR(args.timeout_sec, 2.5, 0);
  CHECK(strcmp(args.coordinator, "h:2") == 0);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "-ojson", "list", NULL), 0);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_JSON);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "--output=json", "-o", "text", "list", NULL), 0);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_TEXT);

  CHECK_EQ_INT(parse(&args, err, sizeof err, "health", "10.0.0.1:7000", "--service",
                     "pando.v1.ParameterServer", "--timeout", "1", NULL),
               0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_HEALTH);
  CHECK(strcmp(args.operand, "10.0.0.1:7000") == 0);
  CHECK(strcmp(args.service, "pando.v1.ParameterServer") == 0);
  CHECK_NEAR(args.timeout_sec, 1, 0);

  /* "--" makes the rest operands; "-" is an operand (standard input). */
  CHECK_EQ_INT(parse(&args, err, sizeof err, "status", "--", "--odd-id", NULL), 0);
  CHECK(strcmp(args.operand, "--odd-id") == 0);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "submit", "-", NULL), 0);
  CHECK(strcmp(args.operand, "-") == 0);
}

/* export: after the command -o is the file; before it, and as --output,
 * the output format. The file is required; --checkpoint takes an id > 0. */
static void test_parse_export(void) {
  pd_ctl_args args;
  char err[256];
  CHECK_EQ_INT(parse(&args, err, sizeof err, "-o", "json", "export", "job-3", "-o", "m.st", NULL),
               0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_EXPORT);
  CHECK(strcmp(args.operand, "job-3") == 0);
  CHECK(strcmp(args.out_path, "m.st") == 0);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_JSON);
  CHECK_EQ_INT(
      parse(&args, err, sizeof err, "export", "job-3", "--out=a.st", "--output", "json", NULL), 0);
  CHECK(strcmp(args.out_path, "a.st") == 0);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_JSON);
  CHECK_EQ_INT(args.checkpoint, 0); /* the live model */
  CHECK_EQ_INT(
      parse(&args, err, sizeof err, "export", "job-3", "--checkpoint", "48", "-o", "c.st", NULL),
      0);
  CHECK_EQ_INT(args.checkpoint, 48);
  CHECK_EQ_INT(
      parse(&args, err, sizeof err, "export", "job-3", "--checkpoint", "0", "-o", "c.st", NULL),
      -EINVAL);
  CHECK_STR_CONTAINS(err, "invalid value '0' for --checkpoint: expected a checkpoint id > 0");
  CHECK_EQ_INT(
      parse(&args, err, sizeof err, "export", "job-3", "--checkpoint", "-2", "-o", "c.st", NULL),
      -EINVAL);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "status", "j", "--checkpoint", "4", NULL), -EINVAL);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "export", "job-3", NULL), -EINVAL);
  CHECK_STR_CONTAINS(err, "'export' needs -o FILE");
  CHECK_EQ_INT(parse(&args, err, sizeof err, "status", "j", "--out", "x", NULL), -EINVAL);
  CHECK_STR_CONTAINS(err, "it is an option of 'export'");
  /* other commands keep -o as the output format */
  CHECK_EQ_INT(parse(&args, err, sizeof err, "status", "j", "-o", "json", NULL), 0);
  CHECK_EQ_INT(args.output, PD_CTL_OUTPUT_JSON);
}

static void test_parse_plot(void) {
  pd_ctl_args args;
  char err[256];
  CHECK_EQ_INT(parse(&args, err, sizeof err, "plot", "a-1", "b-2", "c-3", "-o", "x.svg", NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_PLOT);
  CHECK_EQ_INT(args.njobs, 3);
  CHECK(strcmp(args.jobs[0], "a-1") == 0 && strcmp(args.jobs[2], "c-3") == 0);
  CHECK(strcmp(args.operand, "a-1") == 0);
  CHECK(strcmp(args.out_path, "x.svg") == 0);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "plot", "a-1", NULL), -EINVAL);
  CHECK_STR_CONTAINS(err, "'plot' needs -o FILE.svg or FILE.png");
  CHECK_EQ_INT(parse(&args, err, sizeof err, "plot", "-o", "x.png", NULL), -EINVAL);
  CHECK_STR_CONTAINS(err, "'plot' needs JOB");
  CHECK_EQ_INT(parse(&args, err, sizeof err, "plot", "1", "2", "3", "4", "5", "6", "7", "8", "9",
                     "10", "11", "-o", "x.svg", NULL),
               -EINVAL);
  CHECK_STR_CONTAINS(err, "'plot' draws at most 10 jobs, got more: '11'");
}

/* trace: -o FILE, and a window of steps that must be in order. */
static void test_parse_trace(void) {
  pd_ctl_args args;
  char err[256];
  CHECK_EQ_INT(parse(&args, err, sizeof err, "trace", "a-1", "-o", "t.json", NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_TRACE);
  CHECK(strcmp(args.out_path, "t.json") == 0);
  CHECK_EQ_INT(args.from_step, 0);
  CHECK_EQ_INT(args.to_step, -1);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "trace", "a-1", "-o", "t.json", "--from-step", "5",
                     "--to-step=9", NULL),
               0);
  CHECK_EQ_INT(args.from_step, 5);
  CHECK_EQ_INT(args.to_step, 9);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "trace", "a-1", NULL), -EINVAL);
  CHECK_STR_CONTAINS(err, "'trace' needs -o FILE.json");
  CHECK_EQ_INT(
      parse(&args, err, sizeof err, "trace", "a-1", "-o", "t.json", "--from-step", "x", NULL),
      -EINVAL);
  CHECK_STR_CONTAINS(err, "invalid value 'x' for --from-step");
  CHECK_EQ_INT(parse(&args, err, sizeof err, "trace", "a-1", "-o", "t.json", "--from-step", "9",
                     "--to-step", "5", NULL),
               -EINVAL);
  CHECK_STR_CONTAINS(err, "--to-step 5 is before --from-step 9");
  CHECK_EQ_INT(parse(&args, err, sizeof err, "stats", "a-1", NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_STATS);
}

/* One block a value, lowest to highest over the values shown. */
static void test_sparkline(void) {
  char s[128];
  double v[] = {4, 3, 2, 1, 1, 0};
  CHECK(strcmp(pd_ctl_sparkline(v, 6, 10, s, sizeof s), "\u2588\u2586\u2585\u2583\u2583\u2581") ==
        0);
  CHECK(strcmp(pd_ctl_sparkline(v, 6, 2, s, sizeof s), "\u2588\u2581") == 0); /* the last 2 */
  double flat[] = {0.5, 0.5, NAN};
  CHECK(strcmp(pd_ctl_sparkline(flat, 3, 10, s, sizeof s), "\u2584\u2584 ") == 0);
  CHECK(strcmp(pd_ctl_sparkline(v, 6, 10, s, 7), "\u2588\u2586") == 0); /* cut to fit */
  CHECK(strcmp(pd_ctl_sparkline(v, 0, 10, s, sizeof s), "") == 0);
}

static void test_parse_help_version(void) {
  pd_ctl_args args;
  char err[256];
  CHECK_EQ_INT(parse(&args, err, sizeof err, "--help", NULL), 0);
  CHECK_EQ_INT(args.help, 1);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_NONE);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "status", "--help", NULL), 0); /* no JOB needed */
  CHECK_EQ_INT(args.help, 1);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_STATUS);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "submit", "-h", NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_SUBMIT);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "help", "cluster", NULL), 0);
  CHECK_EQ_INT(args.command, PD_CTL_CMD_HELP);
  CHECK(strcmp(args.operand, "cluster") == 0);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "help", NULL), 0);
  CHECK_EQ_INT(parse(&args, err, sizeof err, "--version", NULL), 0);
  CHECK_EQ_INT(args.version, 1);
}

static void test_parse_errors(void) {
  pd_ctl_args args;
  char err[256];
  CHECK(parse(&args, err, sizeof err, "frobnicate", NULL) < 0);
  CHECK(strcmp(err, "unknown command 'frobnicate'") == 0);
  CHECK(parse(&args, err, sizeof err, "list", "--verbose", NULL) < 0);
  CHECK(strcmp(err, "unknown option '--verbose'") == 0);
  CHECK(parse(&args, err, sizeof err, "-x", "list", NULL) < 0);
  CHECK(strcmp(err, "unknown option '-x'") == 0);
  CHECK(parse(&args, err, sizeof err, "--bogus=1", "list", NULL) < 0);
  CHECK(strcmp(err, "unknown option '--bogus'") == 0);
  CHECK(parse(&args, err, sizeof err, "list", "--coordinator", NULL) < 0);
  CHECK(strcmp(err, "option '--coordinator' needs a value") == 0);
  CHECK(parse(&args, err, sizeof err, "list", "--coordinator=", NULL) < 0);
  CHECK_STR_CONTAINS(err, "--coordinator");
  CHECK(parse(&args, err, sizeof err, "-o", "yaml", "list", NULL) < 0);
  CHECK(strcmp(err, "invalid value 'yaml' for --output: expected text or json") == 0);
  const char *bad_timeouts[] = {"0", "-1", "abc", "5s", "", "inf", "nan"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(bad_timeouts); i++) {
    CHECK(parse(&args, err, sizeof err, "--timeout", bad_timeouts[i], "list", NULL) < 0);
    CHECK_STR_CONTAINS(err, "for --timeout: expected seconds > 0");
  }
  CHECK(parse(&args, err, sizeof err, "status", NULL) < 0);
  CHECK(strcmp(err, "'status' needs JOB") == 0);
  CHECK(parse(&args, err, sizeof err, "submit", NULL) < 0);
  CHECK(strcmp(err, "'submit' needs JOB.yaml") == 0);
  CHECK(parse(&args, err, sizeof err, "health", NULL) < 0);
  CHECK(strcmp(err, "'health' needs ADDRESS") == 0);
  CHECK(parse(&args, err, sizeof err, "status", "a", "b", NULL) < 0);
  CHECK(strcmp(err, "unexpected argument 'b' for 'status'") == 0);
  CHECK(parse(&args, err, sizeof err, "list", "x", NULL) < 0);
  CHECK(strcmp(err, "unexpected argument 'x' for 'list'") == 0);
  CHECK(parse(&args, err, sizeof err, "--wait", "submit", "x.yaml", NULL) < 0);
  CHECK(strcmp(err, "option '--wait' belongs after the command 'submit'") == 0);
  CHECK(parse(&args, err, sizeof err, "status", "j", "--wait", NULL) < 0);
  CHECK(strcmp(err, "unknown option '--wait' for 'status' (it is an option of 'submit')") == 0);
  CHECK(parse(&args, err, sizeof err, "submit", "x.yaml", "--service", "s", NULL) < 0);
  CHECK_STR_CONTAINS(err, "unknown option '--service' for 'submit'");
  CHECK(parse(&args, err, sizeof err, "submit", "x.yaml", "--wait=yes", NULL) < 0);
  CHECK(strcmp(err, "option '--wait' takes no value") == 0);
  CHECK(parse(&args, err, sizeof err, "help", "frobnicate", NULL) < 0);
  CHECK(strcmp(err, "unknown command 'frobnicate'") == 0);
}

/* Usage errors through pd_ctl_main: message, hint, exit 2, nothing on stdout. */
static void test_usage_errors(void) {
  CHECK_EQ_INT(run(NORMAL, "frobnicate", NULL), PD_CTL_EXIT_USAGE);
  CHECK(strcmp(err_cap.text, "pandoctl: unknown command 'frobnicate'\nsee pandoctl --help\n") == 0);
  CHECK_EQ_INT(out_cap.len, 0);
  CHECK_EQ_INT(run(NORMAL, "status", "j", "--frob", NULL), PD_CTL_EXIT_USAGE);
  CHECK(strcmp(err_cap.text, "pandoctl: unknown option '--frob'\nsee pandoctl status --help\n") ==
        0);
  CHECK_EQ_INT(run(NORMAL, NULL), PD_CTL_EXIT_USAGE); /* no command: usage on stderr */
  CHECK_STR_CONTAINS(err_cap.text, "usage: pandoctl");
  CHECK_EQ_INT(out_cap.len, 0);
}

static void test_help_texts(void) {
  CHECK_EQ_INT(run(NORMAL, "--help", NULL), 0);
  const char *names[] = {"submit", "status", "list", "cancel", "resume", "cluster", "health"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(names); i++)
    CHECK_STR_CONTAINS(out_cap.text, names[i]);
  const char *options[] = {"--coordinator", "PANDO_COORDINATOR", "--output", "-o,", "--timeout",
                           "--help",        "--version",         "--wait"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(options); i++)
    CHECK_STR_CONTAINS(out_cap.text, options[i]);
  CHECK_STR_CONTAINS(out_cap.text, "exit status");
  for (size_t i = 0; i < PD_ARRAY_SIZE(names); i++) {
    char usage[64];
    snprintf(usage, sizeof usage, "usage: pandoctl %s", names[i]);
    CHECK_EQ_INT(run(NORMAL, names[i], "--help", NULL), 0);
    CHECK_STR_CONTAINS(out_cap.text, usage);
    CHECK_STR_CONTAINS(out_cap.text, "exit status");
    CHECK_EQ_INT(run(NORMAL, "help", names[i], NULL), 0);
    CHECK_STR_CONTAINS(out_cap.text, usage);
  }
  CHECK_EQ_INT(run(NORMAL, "health", "--help", NULL), 0);
  CHECK_STR_CONTAINS(out_cap.text, "--service NAME");
  CHECK_EQ_INT(run(NORMAL, "--version", NULL), 0);
  CHECK(strcmp(out_cap.text, "pandoctl " PD_CTL_VERSION "\n") == 0);
}

/* ---------------------------------------------------------------- formatting */

static void test_format_duration(void) {
  char buf[32];
  struct {
    double seconds;
    const char *text;
  } cases[] = {{0, "0:00"},         {0.4, "0:00"},     {42, "0:42"},        {59.6, "1:00"},
               {61.4, "1:01"},      {3599.4, "59:59"}, {3599.6, "1:00:00"}, {3725, "1:02:05"},
               {36000, "10:00:00"}, {-1, "-"},         {NAN, "-"},          {INFINITY, "-"}};
  for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
    pd_ctl_format_duration(cases[i].seconds, buf, sizeof buf);
    CHECK(strcmp(buf, cases[i].text) == 0);
  }
  pd_ctl_format_duration(3725, buf, 4); /* truncated, still terminated */
  CHECK(strcmp(buf, "1:0") == 0);
}

static void test_eta(void) {
  status_storage s;
  Pando__V1__JobStatus *st =
      make_status(&s, "j", PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 2, 50, 1);
  st->steps_per_epoch = 100;
  st->elapsed_sec = 30; /* 150 of 300 steps in 30 s: 30 s to go */
  CHECK_NEAR(pd_ctl_eta_sec(st), 30, 1e-9);
  st->epoch = 1;
  st->step = 30; /* 30 of 300 in 30 s: 270 s */
  CHECK_NEAR(pd_ctl_eta_sec(st), 270, 1e-9);
  st->step = 500; /* a step count above steps_per_epoch counts as the whole epoch */
  CHECK_NEAR(pd_ctl_eta_sec(st), 60, 1e-9);
  st->epoch = 3;
  st->step = 100;
  CHECK_NEAR(pd_ctl_eta_sec(st), 0, 0);
  st->epoch = 0;
  st->step = 0;
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0); /* nothing done */
  st->epoch = 1;
  st->step = 0;
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0);
  st->step = 2; /* 2 of 300 steps, under 1 %: too early for an estimate */
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0);
  st->step = 10;
  st->elapsed_sec = 0;
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0);
  st->elapsed_sec = 30;
  st->steps_per_epoch = 0;
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0);
  st->steps_per_epoch = 100;
  st->epochs = 0;
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0);
  st->epochs = 3;
  st->state = PANDO__V1__JOB_STATE__JOB_STATE_PENDING;
  CHECK_NEAR(pd_ctl_eta_sec(st), -1, 0);
}

static void test_progress_line(void) {
  status_storage s;
  char line[256];
  Pando__V1__JobStatus *st =
      make_status(&s, "j", PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 2, 120, 1);
  st->loss = 0.43119;
  st->samples_per_sec = 12345.4;
  st->elapsed_sec = 30.24; /* 589 of 1407 steps: 42 s to go */
  pd_ctl_progress_line(st, line, sizeof line);
  CHECK(strcmp(line, "epoch 2/3  step 120/469  loss 0.4312  12345 samples/s  ETA 0:42") == 0);
  st->elapsed_sec = 0;
  pd_ctl_progress_line(st, line, sizeof line);
  CHECK(strcmp(line, "epoch 2/3  step 120/469  loss 0.4312  12345 samples/s  ETA -") == 0);
  st->epochs = 0;
  st->steps_per_epoch = 0;
  pd_ctl_progress_line(st, line, sizeof line);
  CHECK(strcmp(line, "epoch 2  step 120  loss 0.4312  12345 samples/s  ETA -") == 0);
  st->state = PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED; /* no ETA once it is over */
  pd_ctl_progress_line(st, line, sizeof line);
  CHECK(strcmp(line, "epoch 2  step 120  loss 0.4312  12345 samples/s") == 0);
  st->epoch = 0;
  st->step = 0;
  pd_ctl_progress_line(st, line, sizeof line);
  CHECK(strcmp(line, "waiting for the first progress report") == 0);
  st->epoch = 2;
  st->step = 120;
  pd_ctl_progress_line(st, line, 12); /* truncated, still terminated */
  CHECK(strcmp(line, "epoch 2  st") == 0);
}

static void test_epoch_and_final_lines(void) {
  status_storage s;
  char line[256];
  Pando__V1__JobStatus *st =
      make_status(&s, "job-7", PANDO__V1__JOB_STATE__JOB_STATE_SUCCEEDED, 3, 469, 3);
  pd_ctl_epoch_line(st, 0, line, sizeof line);
  CHECK(strcmp(line, "epoch 1: train loss 0.6000, test accuracy 0.8421, test loss 0.4400 "
                     "(12.3 s)") == 0);
  s.records[1].seconds = 30.1; /* its own duration, not the time since the start */
  pd_ctl_epoch_line(st, 1, line, sizeof line);
  CHECK(strcmp(line, "epoch 2: train loss 0.5500, test accuracy 0.8610, test loss 0.4200 "
                     "(17.8 s)") == 0);
  /* a regression reports its RMSE instead of an accuracy */
  s.records[1].test_accuracy = 0;
  s.records[1].test_rmse = 1.25;
  pd_ctl_epoch_line(st, 1, line, sizeof line);
  CHECK(strcmp(line, "epoch 2: train loss 0.5500, test rmse 1.2500, test loss 0.4200 "
                     "(17.8 s)") == 0);
  st->elapsed_sec = 37;
  pd_ctl_final_line(st, line, sizeof line);
  CHECK(strcmp(line, "job job-7 SUCCEEDED in 0:37") == 0);
  st->state = PANDO__V1__JOB_STATE__JOB_STATE_FAILED;
  st->message = "worker 1: loss is NaN";
  pd_ctl_final_line(st, line, sizeof line);
  CHECK(strcmp(line, "job job-7 FAILED after 0:37: worker 1: loss is NaN") == 0);
  CHECK(strcmp(pd_ctl_job_state_name(PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED), "CANCELLED") == 0);
  CHECK(strcmp(pd_ctl_job_state_name(99), "UNKNOWN") == 0);
  CHECK(strcmp(pd_ctl_role_name(PANDO__V1__ROLE__ROLE_WORKER), "WORKER") == 0);
  CHECK(pd_ctl_job_state_final(PANDO__V1__JOB_STATE__JOB_STATE_CANCELLED));
  CHECK(!pd_ctl_job_state_final(PANDO__V1__JOB_STATE__JOB_STATE_PENDING));
}

/* A federated job: one line per round attempt, the coordinator's message as
 * progress, and the final accuracy of its last evaluated round. */
static void test_round_lines(void) {
  Pando__V1__JobStatus st = PANDO__V1__JOB_STATUS__INIT;
  Pando__V1__RoundRecord r[2], *ptrs[2] = {&r[0], &r[1]};
  r[0] = (Pando__V1__RoundRecord)PANDO__V1__ROUND_RECORD__INIT;
  r[0].round = 3;
  r[0].attempt = 1;
  r[0].selected = 13;
  r[0].reported = 4;
  r[0].dropped = 9;
  r[0].abandoned = 1;
  r[0].seconds = 60;
  r[1] = (Pando__V1__RoundRecord)PANDO__V1__ROUND_RECORD__INIT;
  r[1].round = 3;
  r[1].attempt = 2;
  r[1].selected = 13;
  r[1].reported = 10;
  r[1].dropped = 2;
  r[1].late = 1;
  r[1].seconds = 1.25;
  r[1].has_eval = 1;
  r[1].test_accuracy = 0.8123;
  r[1].test_loss = 0.5;
  st.rounds = 30;
  st.rounds_done = 3;
  st.n_round_history = 2;
  st.round_history = ptrs;
  st.message = "round 4/30: selecting 13 devices";
  char line[256];
  pd_ctl_round_line(&st, 0, line, sizeof line);
  CHECK(strcmp(line, "round 3/30 attempt 1 abandoned: 13 selected, 4 reported, 9 dropped, 0 "
                     "late, 60.0 s") == 0);
  pd_ctl_round_line(&st, 1, line, sizeof line);
  CHECK(strcmp(line, "round 3/30: 13 selected, 10 reported, 2 dropped, 1 late, 1.2 s, test "
                     "accuracy 0.8123, test loss 0.5000") == 0);
  pd_ctl_progress_line(&st, line, sizeof line);
  CHECK(strcmp(line, "round 4/30: selecting 13 devices") == 0);
  CHECK_NEAR(pd_ctl_final_accuracy(&st), 0.8123, 1e-12);
  st.n_round_history = 1; /* only the abandoned attempt: no accuracy */
  CHECK_NEAR(pd_ctl_final_accuracy(&st), -1, 0);
  CHECK(strcmp(pd_ctl_role_name(PANDO__V1__ROLE__ROLE_SELECTOR), "SELECTOR") == 0);
}

/* ---------------------------------------------------------------- JSON */

static const char *quoted(const char *text) {
  capture_open(&out_cap);
  pd_ctl_json_quote(out_cap.stream, text);
  return capture_close(&out_cap);
}

static void test_json_quote(void) {
  CHECK(strcmp(quoted(""), "\"\"") == 0);
  CHECK(strcmp(quoted("plain text"), "\"plain text\"") == 0);
  CHECK(strcmp(quoted("say \"hi\" \\ bye"), "\"say \\\"hi\\\" \\\\ bye\"") == 0);
  CHECK(strcmp(quoted("a\nb\tc\rd\be\ff"), "\"a\\nb\\tc\\rd\\be\\ff\"") == 0);
  CHECK(strcmp(quoted("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"") == 0);
  CHECK(strcmp(quoted("/ stays"), "\"/ stays\"") == 0);
  /* Valid UTF-8 passes: ü (2 bytes), € (3), 😀 (4). */
  CHECK(strcmp(quoted("\xc3\xbc \xe2\x82\xac \xf0\x9f\x98\x80"),
               "\"\xc3\xbc \xe2\x82\xac \xf0\x9f\x98\x80\"") == 0);
  /* Invalid UTF-8: a stray byte, a cut sequence, an overlong form, a
   * surrogate, a code point above U+10FFFF. */
  CHECK(strcmp(quoted("a\377b"), "\"a\\ufffdb\"") == 0);
  CHECK(strcmp(quoted("\xe2\x82"), "\"\\ufffd\\ufffd\"") == 0);
  CHECK(strcmp(quoted("\xc0\xaf"), "\"\\ufffd\\ufffd\"") == 0);
  CHECK(strcmp(quoted("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"") == 0);
  CHECK(strcmp(quoted("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"") == 0);
  CHECK(strcmp(quoted("\x80"), "\"\\ufffd\"") == 0);
  CHECK(json_is_one_object("{\"k\": \"\\ufffd\"}"));
}

static void test_json_writer(void) {
  pd_ctl_json json;
  capture_open(&out_cap);
  pd_ctl_json_init(&json, out_cap.stream);
  pd_ctl_json_begin_object(&json);
  pd_ctl_json_field_string(&json, "name", "x\"y");
  pd_ctl_json_field_double(&json, "loss", 0.1);
  pd_ctl_json_field_double(&json, "third", 1.0 / 3);
  pd_ctl_json_field_double(&json, "big", 1e300);
  pd_ctl_json_field_double(&json, "nan", NAN);
  pd_ctl_json_field_double(&json, "whole", 42);
  pd_ctl_json_field_uint(&json, "max", UINT64_MAX);
  pd_ctl_json_field_bool(&json, "yes", 1);
  pd_ctl_json_key(&json, "none");
  pd_ctl_json_string(&json, NULL);
  pd_ctl_json_key(&json, "empty_list");
  pd_ctl_json_begin_array(&json);
  pd_ctl_json_end_array(&json);
  pd_ctl_json_key(&json, "empty_object");
  pd_ctl_json_begin_object(&json);
  pd_ctl_json_end_object(&json);
  pd_ctl_json_key(&json, "list");
  pd_ctl_json_begin_array(&json);
  pd_ctl_json_uint(&json, 1);
  pd_ctl_json_begin_object(&json);
  pd_ctl_json_field_bool(&json, "no", 0);
  pd_ctl_json_end_object(&json);
  pd_ctl_json_null(&json);
  pd_ctl_json_end_array(&json);
  pd_ctl_json_end_object(&json);
  pd_ctl_json_close(&json);
  capture_close(&out_cap);
  const char *expected = "{\n"
                         "  \"name\": \"x\\\"y\",\n"
                         "  \"loss\": 0.1,\n"
                         "  \"third\": 0.33333333333333331,\n"
                         "  \"big\": 1e+300,\n"
                         "  \"nan\": null,\n"
                         "  \"whole\": 42,\n"
                         "  \"max\": 18446744073709551615,\n"
                         "  \"yes\": true,\n"
                         "  \"none\": null,\n"
                         "  \"empty_list\": [],\n"
                         "  \"empty_object\": {},\n"
                         "  \"list\": [\n"
                         "    1,\n"
                         "    {\n"
                         "      \"no\": false\n"
                         "    },\n"
                         "    null\n"
                         "  ]\n"
                         "}\n";
  if (strcmp(out_cap.text, expected) != 0)
    fprintf(stderr, "got:\n%s", out_cap.text);
  CHECK(strcmp(out_cap.text, expected) == 0);
  CHECK(json_is_one_object(out_cap.text));
  /* The checker itself rejects broken documents. */
  CHECK(!json_is_one_object("{\"a\": 1,}"));
  CHECK(!json_is_one_object("{\"a\" 1}"));
  CHECK(!json_is_one_object("{\"a\": \"x\n\"}"));
  CHECK(!json_is_one_object("{} {}"));
  CHECK(!json_is_one_object("{\"a\": 01}"));
}

static void test_json_job(void) {
  status_storage s;
  Pando__V1__JobStatus *st =
      make_status(&s, "job-1", PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 2, 120, 1);
  st->name = "tab\there \"quoted\"";
  pd_ctl_json json;
  capture_open(&out_cap);
  pd_ctl_json_init(&json, out_cap.stream);
  pd_ctl_json_job(&json, st);
  pd_ctl_json_close(&json);
  const char *text = capture_close(&out_cap);
  CHECK(json_is_one_object(text));
  const char *expected[] = {"\"job\": \"job-1\"",     "\"name\": \"tab\\there \\\"quoted\\\"\"",
                            "\"state\": \"RUNNING\"", "\"message\": \"\"",
                            "\"epoch\": 2",           "\"epochs\": 3",
                            "\"step\": 120",          "\"steps_per_epoch\": 469",
                            "\"loss\": 0.7",          "\"samples_per_sec\": 12345",
                            "\"elapsed_sec\": 20",    "\"history\": [",
                            "\"train_loss\": 0.6",    "\"test_accuracy\": 0.8421",
                            "\"test_loss\": 0.44",    "\"seconds\": 12.3",
                            "\"servers\": 2",         "\"workers\": 4",
                            "\"shard_map\": {",       "\"version\": 1",
                            "\"keys\": 101770",       "\"begin\": 50885",
                            "\"end\": 101770",        "\"address\": \"127.0.0.1:7002\""};
  for (size_t i = 0; i < PD_ARRAY_SIZE(expected); i++)
    CHECK_STR_CONTAINS(text, expected[i]);

  /* No shard map yet: null. */
  st->shard_map = NULL;
  st->n_history = 0;
  capture_open(&out_cap);
  pd_ctl_json_init(&json, out_cap.stream);
  pd_ctl_json_job(&json, st);
  pd_ctl_json_close(&json);
  text = capture_close(&out_cap);
  CHECK(json_is_one_object(text));
  CHECK_STR_CONTAINS(text, "\"shard_map\": null");
  CHECK_STR_CONTAINS(text, "\"history\": []");
}

/* ---------------------------------------------------------------- tables and text */

static void test_table(void) {
  static const char *const headers[] = {"JOB", "STATE", "NAME"};
  pd_ctl_table *table = pd_ctl_table_new(headers, 3);
  CHECK_EQ_INT(pd_ctl_table_rows(table), 0);
  pd_ctl_table_cell(table, "%s", "job-1");
  pd_ctl_table_cell(table, "%s", "RUNNING");
  pd_ctl_table_cell(table, "%s", "short");
  pd_ctl_table_cell(table, "job-%d", 12);
  pd_ctl_table_cell(table, "%s", "\xc3\xbc"); /* one character, two bytes */
  pd_ctl_table_cell(table, "%s", "x");
  pd_ctl_table_cell(table, "%s", "j"); /* an incomplete row */
  CHECK_EQ_INT(pd_ctl_table_rows(table), 3);
  capture_open(&out_cap);
  pd_ctl_table_print(table, out_cap.stream, "> ");
  capture_close(&out_cap);
  pd_ctl_table_free(table);
  const char *expected = "> JOB     STATE    NAME\n"
                         "> job-1   RUNNING  short\n"
                         "> job-12  \xc3\xbc        x\n"
                         "> j\n";
  if (strcmp(out_cap.text, expected) != 0)
    fprintf(stderr, "got:\n%s", out_cap.text);
  CHECK(strcmp(out_cap.text, expected) == 0);
}

static void test_print_job_text(void) {
  status_storage s;
  Pando__V1__JobStatus *st =
      make_status(&s, "job-1", PANDO__V1__JOB_STATE__JOB_STATE_RUNNING, 3, 400, 2);
  st->message = "1 worker lagging";
  capture_open(&out_cap);
  pd_ctl_print_job(out_cap.stream, st);
  const char *text = capture_close(&out_cap);
  const char *expected[] = {
      "job:       job-1\n",
      "name:      fashion-mlp\n",
      "state:     RUNNING\n",
      "message:   1 worker lagging\n",
      "progress:  epoch 3/3  step 400/469  loss 0.6000  12345 samples/s  ETA 0:02\n",
      "elapsed:   0:30\n",
      "nodes:     2 servers, 4 workers\n",
      "shard map: version 1, 101770 keys\n",
      "  SHARD  KEYS             ADDRESS\n",
      "  0      [0, 50885)       127.0.0.1:7001\n",
      "  1      [50885, 101770)  127.0.0.1:7002\n",
      "history:\n",
      "  EPOCH  TRAIN LOSS  TEST ACCURACY  TEST LOSS  EPOCH TIME  ELAPSED\n",
      "  1      0.6000      0.8421         0.4400     12.3 s      0:12\n",
      "  2      0.5500      0.8610         0.4200     12.3 s      0:25\n"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(expected); i++)
    CHECK_STR_CONTAINS(text, expected[i]);
  CHECK(!strstr(text, " \n")); /* no trailing blanks */

  st->message = "";
  st->shard_map = NULL;
  st->n_history = 0;
  capture_open(&out_cap);
  pd_ctl_print_job(out_cap.stream, st);
  text = capture_close(&out_cap);
  CHECK(!strstr(text, "message:"));
  CHECK_STR_CONTAINS(text, "shard map: none\n");
  CHECK_STR_CONTAINS(text, "history:   none yet\n");
}

/* ---------------------------------------------------------------- end to end */

static void test_submit_wait(void) {
  fake_reset();
  write_spec("name: fashion-mlp\nepochs: 3\n");
  CHECK_EQ_INT(run(NORMAL, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_OK);
  const char *out = out_cap.text;
  CHECK(strncmp(out, "job-1\n", 6) == 0);
  CHECK_STR_CONTAINS(out, "epoch 1: train loss 0.6000, test accuracy 0.8421, test loss 0.4400 "
                          "(12.3 s)\n");
  CHECK_STR_CONTAINS(out, "epoch 2: train loss 0.5500, test accuracy 0.8610");
  CHECK_STR_CONTAINS(out, "epoch 3: train loss 0.5000, test accuracy 0.8765");
  CHECK_STR_CONTAINS(out, "job job-1 SUCCEEDED in 0:30\n");
  CHECK(ends_with(out, "\ntest accuracy: 0.8765\n"));
  /* Not a terminal: plain progress lines on stderr, no carriage returns. */
  CHECK_STR_CONTAINS(err_cap.text, "epoch 1/3  step 100/469  loss 0.8000  12345 samples/s  ETA");
  CHECK_STR_CONTAINS(err_cap.text, "epoch 2/3  step 50/469");
  CHECK(!strchr(err_cap.text, '\r'));
}

static void test_submit_wait_json(void) {
  fake_reset();
  write_spec("id: json-job\n");
  CHECK_EQ_INT(run(FAST, "submit", spec_path, "--wait", "-o", "json", NULL), PD_CTL_EXIT_OK);
  CHECK(json_is_one_object(out_cap.text)); /* only the final status */
  CHECK_STR_CONTAINS(out_cap.text, "\"job\": \"json-job\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"state\": \"SUCCEEDED\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"test_accuracy\": 0.8765");
  CHECK_STR_CONTAINS(err_cap.text, "epoch 1: train loss"); /* human lines go to stderr */
}

static void test_submit_wait_pending(void) {
  fake_reset();
  write_spec("id: pending\n");
  CHECK_EQ_INT(run(FAST, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_OK);
  CHECK_STR_CONTAINS(err_cap.text, "PENDING: waiting for 4 workers (1 registered)\n");
  CHECK(ends_with(out_cap.text, "\ntest accuracy: 0.8765\n"));
}

static void test_submit_wait_failed(void) {
  fake_reset();
  write_spec("id: fail\n");
  CHECK_EQ_INT(run(FAST, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_FAILURE);
  CHECK_STR_CONTAINS(out_cap.text,
                     "job fail FAILED after 0:10: worker 1: loss is NaN at step 17\n");
  CHECK(!strstr(out_cap.text, "test accuracy:"));
}

static void test_submit_wait_retries(void) {
  fake_reset();
  write_spec("id: flaky\n"); /* 2 calls fail, then it answers: however slow they are */
  CHECK_EQ_INT(run(PATIENT, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_OK);
  CHECK_STR_CONTAINS(err_cap.text, "pandoctl: warning: coordinator ");
  CHECK_STR_CONTAINS(err_cap.text, "UNAVAILABLE: the coordinator is restarting; retrying for up");
  CHECK_STR_CONTAINS(err_cap.text, "is reachable again");
  CHECK(ends_with(out_cap.text, "\ntest accuracy: 0.8765\n"));

  fake_reset();
  write_spec("id: down\n"); /* never answers: gives up after 0.5 s, however many calls */
  CHECK_EQ_INT(run(FAST, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_FAILURE);
  CHECK_STR_CONTAINS(err_cap.text, "UNAVAILABLE: the coordinator is restarting (unreachable for");
  CHECK_STR_CONTAINS(err_cap.text, "gave up waiting, job down may still be running");
}

static void test_submit_wait_interrupted(void) {
  fake_reset();
  write_spec("id: forever\n");
  CHECK_EQ_INT(run(FAST, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_INTERRUPTED);
  CHECK_STR_CONTAINS(err_cap.text, "pandoctl: stopped waiting; job forever keeps running");
  /* The handler is gone again: SIGINT is back to its default action. */
  struct sigaction current;
  sigaction(SIGINT, NULL, &current);
  CHECK(current.sa_handler == SIG_DFL);
}

/* The live line on a terminal: a pseudo-terminal stands in for stderr. */
static void test_submit_wait_tty(void) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  CHECK(master >= 0);
  CHECK(grantpt(master) == 0 && unlockpt(master) == 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  CHECK(slave >= 0);
  FILE *tty = fdopen(slave, "w");
  fake_reset();
  write_spec("name: tty\n");
  char *argv[] = {"pandoctl", "--coordinator", fake.address, "submit", spec_path, "--wait", NULL};
  pd_ctl_args args;
  char err[256];
  CHECK_EQ_INT(pd_ctl_parse(6, argv, &args, err, sizeof err), 0);
  args.poll_sec = 0.02;
  capture_open(&out_cap);
  int code = pd_ctl_run(&args, out_cap.stream, tty);
  capture_close(&out_cap);
  fclose(tty);
  char screen[8192];
  size_t len = 0;
  /* The kernel hands the slave's output to the master asynchronously: read
   * until nothing more arrives for 200 ms. */
  struct pollfd ready = {.fd = master, .events = POLLIN};
  for (ssize_t n; len < sizeof screen - 1 && poll(&ready, 1, 200) == 1 &&
                  (n = read(master, screen + len, sizeof screen - 1 - len)) > 0;)
    len += (size_t)n;
  screen[len] = '\0';
  close(master);
  CHECK_EQ_INT(code, 0);
  CHECK_STR_CONTAINS(screen, "\repoch 1/3  step 100/469  loss 0.8000  12345 samples/s  ETA");
  CHECK_STR_CONTAINS(screen, "\033[K");
  CHECK(ends_with(screen, "\r\033[K")); /* the live line is cleared at the end */
  CHECK(ends_with(out_cap.text, "\ntest accuracy: 0.8765\n"));
}

static void test_submit(void) {
  fake_reset();
  write_spec("name: quick\n");
  CHECK_EQ_INT(run(NORMAL, "submit", spec_path, NULL), 0);
  CHECK(strcmp(out_cap.text, "job-1\n") == 0);
  CHECK_EQ_INT(run(NORMAL, "-o", "json", "submit", spec_path, NULL), 0);
  CHECK(json_is_one_object(out_cap.text));
  CHECK_STR_CONTAINS(out_cap.text, "\"job\": \"job-2\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"state\": \"RUNNING\"");
}

static void test_submit_bad_spec(void) {
  char expected[256];
  write_spec("model:\n  layers: [784]  # bad\n");
  CHECK_EQ_INT(run(NORMAL, "submit", spec_path, "--wait", NULL), PD_CTL_EXIT_USAGE);
  snprintf(expected, sizeof expected,
           "pandoctl: job spec %s: model.layers: expected a list of at least 2 positive "
           "integers, got [784]\n",
           spec_path);
  CHECK(strcmp(err_cap.text, expected) == 0);
  CHECK_EQ_INT(out_cap.len, 0);

  CHECK_EQ_INT(run(NORMAL, "submit", "/nonexistent/x.yaml", NULL), PD_CTL_EXIT_USAGE);
  CHECK(strcmp(err_cap.text,
               "pandoctl: cannot read job spec /nonexistent/x.yaml: No such file or directory\n") ==
        0);
  CHECK_EQ_INT(run(NORMAL, "submit", "/tmp", NULL), PD_CTL_EXIT_USAGE);
  CHECK_STR_CONTAINS(err_cap.text, "pandoctl: cannot read job spec /tmp: Is a directory");
}

static void test_status(void) {
  CHECK_EQ_INT(run(NORMAL, "status", "done", NULL), 0);
  CHECK_STR_CONTAINS(out_cap.text, "job:       done\n");
  CHECK_STR_CONTAINS(out_cap.text, "state:     SUCCEEDED\n");
  CHECK_STR_CONTAINS(out_cap.text, "  1      [50885, 101770)  127.0.0.1:7002\n");
  CHECK_STR_CONTAINS(out_cap.text, "  3      0.5000      0.8765         0.4000     12.3 s");

  CHECK_EQ_INT(run(NORMAL, "status", "done", "--output", "json", NULL), 0);
  CHECK(json_is_one_object(out_cap.text));
  CHECK_STR_CONTAINS(out_cap.text, "\"state\": \"SUCCEEDED\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"test_accuracy\": 0.8765");

  CHECK_EQ_INT(run(NORMAL, "status", "missing", NULL), PD_CTL_EXIT_FAILURE);
  CHECK(strcmp(err_cap.text, "pandoctl: job 'missing' not found\n") == 0);
  CHECK_EQ_INT(out_cap.len, 0);
  CHECK_EQ_INT(run(NORMAL, "-o", "json", "status", "missing", NULL), PD_CTL_EXIT_FAILURE);
  CHECK_EQ_INT(out_cap.len, 0);
}

static void test_cancel(void) {
  CHECK_EQ_INT(run(NORMAL, "cancel", "job-3", NULL), 0);
  CHECK(strcmp(out_cap.text, "job job-3 CANCELLED: cancelled by pandoctl\n") == 0);
  CHECK_EQ_INT(run(NORMAL, "cancel", "job-3", "-o", "json", NULL), 0);
  CHECK(json_is_one_object(out_cap.text));
  CHECK_STR_CONTAINS(out_cap.text, "\"state\": \"CANCELLED\"");
  CHECK_EQ_INT(run(NORMAL, "cancel", "missing", NULL), PD_CTL_EXIT_FAILURE);
  CHECK(strcmp(err_cap.text, "pandoctl: job 'missing' not found\n") == 0);
}

static void test_list(void) {
  CHECK_EQ_INT(run(NORMAL, "list", NULL), 0);
  const char *expected[] = {"JOB    NAME", "STATE      EPOCH  LOSS    ACCURACY  ELAPSED\n",
                            "job-a  fashion-mlp", "RUNNING    1/3    0.8000  -         0:10\n",
                            "SUCCEEDED  3/3    0.6000  0.8765    0:30\n"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(expected); i++)
    CHECK_STR_CONTAINS(out_cap.text, expected[i]);

  CHECK_EQ_INT(run(NORMAL, "list", "-o", "json", NULL), 0);
  CHECK(json_is_one_object(out_cap.text));
  CHECK(strncmp(out_cap.text, "{\n  \"jobs\": [\n", 14) == 0);
  CHECK_STR_CONTAINS(out_cap.text, "\"job\": \"job-a\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"name\": \"mlp \\\"fashion\\\" \xc3\xbc\\n\"");
}

static void test_cluster(void) {
  CHECK_EQ_INT(run(NORMAL, "cluster", NULL), 0);
  /* math: one column per node; "-" for a node that did not say (an older one) */
  const char *expected[] = {
      "NODE  ROLE    NAME      ADDRESS        ALIVE  LAST SEEN  JOB    MATH\n",
      "1     SERVER  ps-0      10.0.0.1:7000  yes    0.4s ago   job-b  oneDNN 2.6.3 (avx2), "
      "OpenBLAS 0.3.21 (Zen)\n",
      "2     WORKER  worker-0  10.0.0.2:7100  yes    1.2s ago   job-b  oneDNN 2.6.3 "
      "(avx512_core_amx), OpenBLAS 0.3.21 (Prescott)\n",
      "3     WORKER  worker-1  10.0.0.3:7100  no     42.0s ago  -      -\n"};
  for (size_t i = 0; i < PD_ARRAY_SIZE(expected); i++)
    CHECK_STR_CONTAINS(out_cap.text, expected[i]);

  CHECK_EQ_INT(run(NORMAL, "cluster", "-o", "json", NULL), 0);
  CHECK(json_is_one_object(out_cap.text));
  CHECK_STR_CONTAINS(out_cap.text, "\"nodes\": [");
  CHECK_STR_CONTAINS(out_cap.text, "\"node_id\": 3");
  CHECK_STR_CONTAINS(out_cap.text, "\"role\": \"WORKER\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"alive\": false");
  CHECK_STR_CONTAINS(out_cap.text, "\"last_seen_sec\": 1.25");
  CHECK_STR_CONTAINS(out_cap.text, "\"math\": \"oneDNN 2.6.3 (avx2), OpenBLAS 0.3.21 (Zen)\"");
}

static void test_health(void) {
  CHECK_EQ_INT(run(NORMAL, "health", fake.address, NULL), 0);
  CHECK(strcmp(out_cap.text, "SERVING\n") == 0);
  CHECK_EQ_INT(run(NORMAL, "health", fake.address, "--service", "pando.v1.Coordinator", "--timeout",
                   "2", NULL),
               0);
  CHECK_EQ_INT(run(NORMAL, "health", fake.address, "-o", "json", NULL), 0);
  CHECK(json_is_one_object(out_cap.text));
  CHECK_STR_CONTAINS(out_cap.text, "\"status\": \"SERVING\"");
  CHECK_STR_CONTAINS(out_cap.text, "\"address\": \"127.0.0.1:");

  CHECK_EQ_INT(run(NORMAL, "health", fake.address, "--service", "nope", NULL), PD_CTL_EXIT_FAILURE);
  CHECK_STR_CONTAINS(err_cap.text, ": NOT_FOUND: unknown service 'nope'");

  fake_pause();
  pd_rpc_health_set_serving(fake.srv, 0);
  fake_run();
  int code = run(NORMAL, "health", fake.address, NULL);
  fake_pause();
  pd_rpc_health_set_serving(fake.srv, 1);
  fake_run();
  CHECK_EQ_INT(code, PD_CTL_EXIT_FAILURE);
  CHECK(strcmp(out_cap.text, "NOT_SERVING\n") == 0);
}

static void test_unreachable(void) {
  char *argv[] = {"pandoctl", "--coordinator", "127.0.0.1:1", "--timeout", "5", "list", NULL};
  capture_open(&out_cap);
  capture_open(&err_cap);
  int code = pd_ctl_main(6, argv, out_cap.stream, err_cap.stream);
  capture_close(&out_cap);
  capture_close(&err_cap);
  CHECK_EQ_INT(code, PD_CTL_EXIT_FAILURE);
  CHECK_STR_CONTAINS(err_cap.text, "pandoctl: coordinator 127.0.0.1:1: UNAVAILABLE: ");
  CHECK_EQ_INT(run(NORMAL, "health", "127.0.0.1:1", "--timeout", "5", NULL), PD_CTL_EXIT_FAILURE);
  CHECK_STR_CONTAINS(err_cap.text, "pandoctl: 127.0.0.1:1: UNAVAILABLE: ");
}

int main(int argc, char **argv) {
  pd_rpc_init();
  if (fake_start() != 0)
    return 1;
  PD_RUN(test_parse_defaults);
  PD_RUN(test_parse_options);
  PD_RUN(test_parse_help_version);
  PD_RUN(test_parse_errors);
  PD_RUN(test_parse_export);
  PD_RUN(test_parse_plot);
  PD_RUN(test_parse_trace);
  PD_RUN(test_sparkline);
  PD_RUN(test_usage_errors);
  PD_RUN(test_help_texts);
  PD_RUN(test_format_duration);
  PD_RUN(test_eta);
  PD_RUN(test_progress_line);
  PD_RUN(test_epoch_and_final_lines);
  PD_RUN(test_round_lines);
  PD_RUN(test_json_quote);
  PD_RUN(test_json_writer);
  PD_RUN(test_json_job);
  PD_RUN(test_table);
  PD_RUN(test_print_job_text);
  PD_RUN(test_submit);
  PD_RUN(test_submit_bad_spec);
  PD_RUN(test_submit_wait);
  PD_RUN(test_submit_wait_json);
  PD_RUN(test_submit_wait_pending);
  PD_RUN(test_submit_wait_failed);
  PD_RUN(test_submit_wait_retries);
  PD_RUN(test_submit_wait_interrupted);
  PD_RUN(test_submit_wait_tty);
  PD_RUN(test_status);
  PD_RUN(test_cancel);
  PD_RUN(test_list);
  PD_RUN(test_cluster);
  PD_RUN(test_health);
  PD_RUN(test_unreachable);
  fake_stop();
  if (spec_path[0])
    unlink(spec_path);
  free(out_cap.text);
  free(err_cap.text);
  pd_rpc_shutdown();
  PD_TEST_DONE();
}
