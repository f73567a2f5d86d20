/* The worker's side of the Peer service (proto/pando.proto "Peer"): a
 * mailbox that the Send handler fills, on the daemon's loop thread, with the
 * activations and gradients the neighbouring stages send, and from which the
 * training thread takes them; and links that send to a neighbour. */
#ifndef PANDO_WORKER_PEER_H
#define PANDO_WORKER_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "pando/peer.h"
#include "pando/rpc.h"

typedef struct pd_peer_box pd_peer_box;

/* A mailbox that takes nothing until pd_peer_box_open. */
pd_peer_box *pd_peer_box_new(void);
/* Frees the box and what it holds; the server it serves must be gone. */
void pd_peer_box_free(pd_peer_box *box);
/* Registers /pando.v1.Peer/Send on `srv` (before pd_rpc_server_start),
 * job-scoped: the handler authorizes the job token of the open pipeline. */
void pd_peer_box_serve(pd_peer_box *box, pd_rpc_server *srv);

/* The training thread begins a pipeline stage: from now on the box takes
 * messages `expect` allows (copied, with the job and `job_token`), for
 * clocks expect->clock and + 1. */
void pd_peer_box_open(pd_peer_box *box, const pd_peer_expect *expect, const char *job_token);
/* Moves the box on to `clock` with the rows of its mini-batch and of the
 * next one (0: unknown); what it holds of older clocks is dropped. */
void pd_peer_box_set_clock(pd_peer_box *box, int64_t clock, uint64_t rows, uint64_t next_rows);
/* The stage is over: the box refuses messages again and drops what it holds. */
void pd_peer_box_close(pd_peer_box *box);

/* Waits up to `timeout_sec` for the tensor of (clock, micro, direction),
 * copies it to dst (room for `cap` floats) and *rows, *loss_sum. Returns 0,
 * -PD_ETIMEOUT, or -PD_ESHUTDOWN when the daemon stops. */
int pd_peer_box_take(pd_peer_box *box, int64_t clock, uint32_t micro,
                     Pando__V1__PeerDirection direction, float *dst, size_t cap, uint64_t *rows,
                     double *loss_sum, double timeout_sec);

/* A link to one neighbour: a channel with the job's token, and a private
 * loop on which the training thread waits for its calls. */
typedef struct pd_peer_link pd_peer_link;
pd_peer_link *pd_peer_link_new(const char *address, const char *job_token);
void pd_peer_link_free(pd_peer_link *link);
/* Sends `msg` (its tensor unset) with data[rows x width] as its tensor and
 * waits up to `timeout_sec` for the peer to take it. Returns 0, or -PD_ERPC
 * with "TARGET Peer/Send: STATUS: details" in `err` (*status, may be NULL,
 * gets the gRPC status). */
int pd_peer_link_send(pd_peer_link *link, const Pando__V1__PeerTensor *msg, const float *data,
                      uint64_t rows, uint32_t width, double timeout_sec, grpc_status_code *status,
                      char *err, size_t errlen);

#endif
