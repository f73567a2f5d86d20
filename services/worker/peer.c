/* The Peer mailbox and links of a pipeline stage; see peer.h. */
#include "peer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pando/daemon.h"
#include "pando/error.h"
#include "pando/log.h"
#include "pando/metrics.h"
#include "pando/util.h"

#define PEER_SEND_METHOD "/pando.v1.Peer/Send"

/* One tensor waiting to be taken. */
typedef struct letter {
  int64_t clock;
  uint32_t micro;
  int direction;
  uint64_t rows;
  double loss_sum;
  float *data;
} letter;

struct pd_peer_box {
  pthread_mutex_t lock;
  pthread_cond_t arrived;
  int open;
  pd_peer_expect expect; /* expect.job points to job[] */
  char job[128];
  char token[256];
  letter *letters; /* [cap] */
  size_t count, cap;
};

/* The Peer counters, by direction and side. */
static pd_metric *peer_metric(int bytes, int direction, int sent) {
  char labels[64];
  snprintf(labels, sizeof labels, "direction=\"%s\",side=\"%s\"",
           direction == PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD ? "forward" : "backward",
           sent ? "sent" : "received");
  return bytes ? pd_metric_counter("pando_peer_bytes_total",
                                   "Bytes of pipeline tensors (Peer/Send payloads)", labels)
               : pd_metric_counter("pando_peer_calls_total", "Peer/Send calls that succeeded",
                                   labels);
}

static void count_call(int direction, int sent, size_t bytes) {
  pd_metric_add(peer_metric(0, direction, sent), 1);
  pd_metric_add(peer_metric(1, direction, sent), (double)bytes);
}

pd_peer_box *pd_peer_box_new(void) {
  pd_peer_box *box = pd_xcalloc(1, sizeof *box);
  pthread_mutex_init(&box->lock, NULL);
  pthread_cond_init(&box->arrived, NULL);
  return box;
}

/* Drops the letters for which `keep` is false (all when clock < 0). */
static void drop_older(pd_peer_box *box, int64_t clock) {
  size_t kept = 0;
  for (size_t i = 0; i < box->count; i++) {
    if (clock >= 0 && box->letters[i].clock >= clock)
      box->letters[kept++] = box->letters[i];
    else
      free(box->letters[i].data);
  }
  box->count = kept;
}

void pd_peer_box_free(pd_peer_box *box) {
  if (!box)
    return;
  drop_older(box, -1);
  free(box->letters);
  pthread_cond_destroy(&box->arrived);
  pthread_mutex_destroy(&box->lock);
  free(box);
}

void pd_peer_box_open(pd_peer_box *box, const pd_peer_expect *expect, const char *job_token) {
  pthread_mutex_lock(&box->lock);
  drop_older(box, -1);
  box->expect = *expect;
  pd_strlcpy(box->job, expect->job, sizeof box->job);
  box->expect.job = box->job;
  pd_strlcpy(box->token, job_token ? job_token : "", sizeof box->token);
  /* two clocks of m micro-batches, both directions */
  box->cap = 4 * (size_t)expect->micro_batches;
  box->letters = pd_xrealloc(box->letters, box->cap * sizeof *box->letters);
  box->open = 1;
  pthread_mutex_unlock(&box->lock);
}

void pd_peer_box_set_clock(pd_peer_box *box, int64_t clock, uint64_t rows, uint64_t next_rows) {
  pthread_mutex_lock(&box->lock);
  box->expect.clock = clock;
  box->expect.batch_rows[0] = rows;
  box->expect.batch_rows[1] = next_rows;
  drop_older(box, clock);
  pthread_mutex_unlock(&box->lock);
}

void pd_peer_box_close(pd_peer_box *box) {
  pthread_mutex_lock(&box->lock);
  box->open = 0;
  drop_older(box, -1);
  memset(box->token, 0, sizeof box->token);
  pthread_mutex_unlock(&box->lock);
}

/* The letter of (clock, micro, direction), or NULL. */
static letter *find(pd_peer_box *box, int64_t clock, uint32_t micro, int direction) {
  for (size_t i = 0; i < box->count; i++) {
    letter *l = &box->letters[i];
    if (l->clock == clock && l->micro == micro && l->direction == direction)
      return l;
  }
  return NULL;
}

int pd_peer_box_take(pd_peer_box *box, int64_t clock, uint32_t micro,
                     Pando__V1__PeerDirection direction, float *dst, size_t cap, uint64_t *rows,
                     double *loss_sum, double timeout_sec) {
  double deadline = pd_now() + timeout_sec;
  int rc = 0;
  pthread_mutex_lock(&box->lock);
  letter *l;
  while (!(l = find(box, clock, micro, (int)direction))) {
    if (pd_daemon_stopping()) {
      rc = -PD_ESHUTDOWN;
      break;
    }
    double now = pd_now();
    if (now >= deadline) {
      rc = -PD_ETIMEOUT;
      break;
    }
    double wake = PD_MIN(deadline, now + 0.1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double at = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + (wake - now);
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&box->arrived, &box->lock, &ts);
  }
  if (l) {
    size_t floats = PD_MIN(
        cap, (size_t)l->rows * (l->direction == PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD
                                    ? box->expect.in_width
                                    : box->expect.out_width));
    memcpy(dst, l->data, floats * sizeof(float));
    *rows = l->rows;
    *loss_sum = l->loss_sum;
    free(l->data);
    *l = box->letters[--box->count];
  }
  pthread_mutex_unlock(&box->lock);
  return rc;
}

/* /pando.v1.Peer/Send: decoded with the payload deferred, checked against
 * the open stage, then copied into the box. */
static void handle_send(pd_rpc_call *call, void *ctx) {
  pd_peer_box *box = ctx;
  Pando__V1__PeerTensor *msg = NULL;
  pd_wire_tensor t;
  char err[512];
  if (pd_peer_decode(pd_rpc_call_payload(call), &msg, &t, err, sizeof err) != 0) {
    pd_rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "PeerTensor: %s", err);
    return;
  }
  pthread_mutex_lock(&box->lock);
  grpc_status_code code = GRPC_STATUS_OK;
  uint64_t rows = 0;
  if (!box->open || (strcmp(msg->job, box->job) == 0 && msg->attempt > box->expect.attempt)) {
    code = GRPC_STATUS_UNAVAILABLE; /* it may be loading its data: the sender retries */
    snprintf(err, sizeof err,
             PD_PEER_NOT_READY " this worker runs no pipeline stage of job "
                               "'%.96s' attempt %u yet",
             msg->job, msg->attempt);
  } else if (!pd_rpc_call_authorize_job(call, box->job, box->token)) {
    pthread_mutex_unlock(&box->lock);
    pando__v1__peer_tensor__free_unpacked(msg, NULL);
    return; /* answered */
  } else {
    code = pd_peer_check(msg, &t, &box->expect, &rows, err, sizeof err);
  }
  if (code == GRPC_STATUS_OK && find(box, msg->clock, msg->micro, (int)msg->direction)) {
    code = GRPC_STATUS_INVALID_ARGUMENT;
    snprintf(err, sizeof err, "micro: micro-batch %u of clock %lld %s was sent twice", msg->micro,
             (long long)msg->clock,
             msg->direction == PANDO__V1__PEER_DIRECTION__PEER_DIRECTION_FORWARD ? "forward"
                                                                                 : "backward");
  }
  if (code == GRPC_STATUS_OK && box->count == box->cap) {
    code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(err, sizeof err, "%zu tensors wait already (2 x micro_batches)", box->cap);
  }
  if (code == GRPC_STATUS_OK) {
    letter *l = &box->letters[box->count];
    l->data = pd_xmalloc(PD_MAX(t.data_len, (size_t)1));
    if (pd_wire_tensor_copy(pd_rpc_call_payload(call), &t, l->data) != 0) {
      free(l->data);
      code = GRPC_STATUS_INVALID_ARGUMENT;
      snprintf(err, sizeof err, "tensor.data: malformed");
    } else {
      l->clock = msg->clock;
      l->micro = msg->micro;
      l->direction = (int)msg->direction;
      l->rows = rows;
      l->loss_sum = msg->loss_sum;
      box->count++;
      pthread_cond_broadcast(&box->arrived);
    }
  }
  pthread_mutex_unlock(&box->lock);
  if (code == GRPC_STATUS_OK) {
    count_call((int)msg->direction, 0, t.data_len);
    Pando__V1__PeerAck ack = PANDO__V1__PEER_ACK__INIT;
    pd_rpc_call_reply_msg(call, &ack.base);
  } else {
    pd_rpc_call_fail(call, code, "%s", err);
  }
  pando__v1__peer_tensor__free_unpacked(msg, NULL);
}

void pd_peer_box_serve(pd_peer_box *box, pd_rpc_server *srv) {
  pd_rpc_server_add_method(srv, PEER_SEND_METHOD, handle_send, box);
  pd_rpc_server_job_scoped(srv, PEER_SEND_METHOD);
}

/* ---------------------------------------------------------------- links */

struct pd_peer_link {
  pd_rpc_channel *channel;
  pd_loop *loop;
};

pd_peer_link *pd_peer_link_new(const char *address, const char *job_token) {
  pd_peer_link *link = pd_xcalloc(1, sizeof *link);
  link->channel = pd_rpc_channel_new(address, 1);
  pd_rpc_channel_set_token(link->channel, job_token);
  link->loop = pd_loop_new();
  return link;
}

void pd_peer_link_free(pd_peer_link *link) {
  if (!link)
    return;
  pd_rpc_channel_free(link->channel);
  pd_loop_free(link->loop);
  free(link);
}

/* What a finished Send leaves for the waiting thread. */
typedef struct send_wait {
  int done;
  grpc_status_code status;
  char details[400];
} send_wait;

static void send_done(const pd_rpc_result *r, void *user) {
  send_wait *w = user;
  w->status = r->status;
  pd_strlcpy(w->details, r->details, sizeof w->details);
  w->done = 1;
}

int pd_peer_link_send(pd_peer_link *link, const Pando__V1__PeerTensor *msg, const float *data,
                      uint64_t rows, uint32_t width, double timeout_sec, grpc_status_code *status,
                      char *err, size_t errlen) {
  size_t bytes = (size_t)rows * width * sizeof(float);
  grpc_slice slices[2] = {pd_peer_header(msg, rows, width), pd_wire_borrow(data, bytes)};
  send_wait w = {0};
  double deadline = pd_now() + timeout_sec;
  for (;;) {
    w = (send_wait){0};
    int rc = pd_rpc_start(link->channel, link->loop, PEER_SEND_METHOD, slices, 2,
                          PD_MAX(deadline - pd_now(), 0.001), send_done, &w);
    if (rc == 0)
      while (!w.done)
        pd_loop_run_once(link->loop, -1);
    else
      w = (send_wait){1, GRPC_STATUS_INTERNAL, "cannot start call"};
    /* a neighbour that has not begun the stage yet (still loading its
     * data): again, until the deadline */
    if (w.status != GRPC_STATUS_UNAVAILABLE ||
        strncmp(w.details, PD_PEER_NOT_READY, strlen(PD_PEER_NOT_READY)) != 0 ||
        pd_now() + 0.02 >= deadline || pd_daemon_stopping())
      break;
    usleep(20000);
  }
  grpc_slice_unref(slices[0]);
  grpc_slice_unref(slices[1]);
  if (status)
    *status = w.status;
  if (w.status == GRPC_STATUS_OK) {
    count_call((int)msg->direction, 1, bytes);
    return 0;
  }
  return pd_errf(err, errlen, -PD_ERPC, "%s Peer/Send: %s: %s",
                 pd_rpc_channel_target(link->channel), pd_rpc_status_name(w.status), w.details);
}
