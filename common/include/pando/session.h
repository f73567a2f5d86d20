/* A node's session with the coordinator, run asynchronously on a pd_loop:
 * RegisterNode until it succeeds, then Heartbeat every heartbeat_ms; when the
 * coordinator forgets the node (restart), it registers again. */
#ifndef PANDO_SESSION_H
#define PANDO_SESSION_H

#include <stdint.h>

#include "pando/rpc.h"

typedef struct pd_session pd_session;

/* Called on the loop thread when the coordinator's assignment generation for
 * this node changes (something new for GetAssignment). */
typedef void (*pd_session_changed)(pd_session *session, uint64_t generation, void *user);

/* `role` is a pando.v1.Role value. Strings are copied. */
pd_session *pd_session_new(pd_loop *loop, const char *coordinator, int role, const char *address,
                           const char *name, pd_session_changed changed, void *user);
/* Waits for the call in flight (driving the loop) and frees the session. */
void pd_session_free(pd_session *session);
/* A server's capacity, sent with its registration (RegisterRequest.memory_bytes). */
void pd_session_set_memory(pd_session *session, uint64_t bytes);
/* Sends a registration or heartbeat when one is due. Call it from cron. */
void pd_session_tick(pd_session *session);
/* The node id, or 0 while not registered. */
uint64_t pd_session_node_id(const pd_session *session);
/* The node's secret (RegisterResponse.node_secret), "" while not registered:
 * every later call naming the node id must carry it. Borrowed, changed by
 * pd_session_tick; never log it. */
const char *pd_session_node_secret(const pd_session *session);
/* The channel to the coordinator (for other calls of the node). */
pd_rpc_channel *pd_session_channel(pd_session *session);

#endif
