/* The coordinator's node registry: the servers and workers that registered,
 * when each was last heard from, the job and rank of each worker, and
 * failure detection (a node silent for the node timeout is dead). Times are
 * passed in (pd_now() in the daemon) so that the decisions can be tested. */
#ifndef PANDO_COORD_REGISTRY_H
#define PANDO_COORD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"
#include "pando/security.h"

/* Longest job id, with its NUL. */
#define PD_JOB_ID_MAX 96

typedef struct pd_node {
  uint64_t id;             /* 1, 2, ... in the order of registration */
  Pando__V1__Role role;    /* SERVER or WORKER */
  char address[256];       /* servers: where their ParameterServer listens */
  char name[64];           /* shown in logs and `pandoctl cluster` */
  char math[160];          /* RegisterRequest.math: its math libraries and ISA ("" if unsaid) */
  uint64_t memory_bytes;   /* servers: RegisterRequest.memory_bytes (0: unsaid, no limit) */
  double last_seen;        /* when it was last heard from */
  int alive;               /* 0 once it missed heartbeats for the node timeout */
  int unreachable;         /* its health service refused a probe (pd_registry_unreachable) */
  double dead_since;       /* when it was declared dead (alive 0) */
  char job[PD_JOB_ID_MAX]; /* worker: the job it runs; "" when idle */
  uint32_t rank;           /* worker: its rank in that job */
  uint64_t generation;     /* changes whenever its assignment changes */
  /* RegisterResponse.node_secret (hex, "" until set): later calls naming
   * the node's id must carry it. In memory only; never logged. */
  char secret[2 * PD_SECURITY_JOB_TOKEN_BYTES + 1];
} pd_node;

typedef struct pd_registry pd_registry;

pd_registry *pd_registry_new(void);
void pd_registry_free(pd_registry *reg);

/* The most nodes (alive or dead) the registry holds: room for the largest
 * job (1024 servers, 4096 + 4095 workers is more than any cluster has) is not
 * the point; a bound on what unauthenticated RegisterNode calls can cost is. */
#define PD_REGISTRY_MAX 8192

/* Registers a node seen at `now`, alive and idle, into *out (borrowed: valid
 * until the next pd_registry_add or pd_registry_forget). An empty `name`
 * becomes the address. Returns 0; -PD_EDUP when an alive node already has
 * that name, with that node in *out (a node cannot take the name of one
 * that is alive: it registers once the old one is declared dead, which a
 * failed probe of the old one's health makes quick: probe.h); -PD_ETOOBIG when PD_REGISTRY_MAX
 * nodes are registered even after forgetting the dead ones. Messages in `err`. */
int pd_registry_add(pd_registry *reg, Pando__V1__Role role, const char *address, const char *name,
                    double now, pd_node **out, char *err, size_t errlen);
/* The id the next node gets; setting it (from the coordinator's store at
 * its start) makes ids continue from there, never reissued. */
uint64_t pd_registry_next_id(const pd_registry *reg);
void pd_registry_set_next_id(pd_registry *reg, uint64_t next_id);

/* Forgets the nodes dead for at least `after` seconds at `now` (their ids
 * are never reused; pd_registry_find returns NULL for them). Returns how
 * many. */
size_t pd_registry_forget(pd_registry *reg, double now, double after);
/* The node of `id`, or NULL. */
pd_node *pd_registry_find(pd_registry *reg, uint64_t id);
/* The nodes in the order they registered: index 0 .. pd_registry_count() - 1. */
size_t pd_registry_count(const pd_registry *reg);
pd_node *pd_registry_at(pd_registry *reg, size_t i);

/* A heartbeat from `id` at `now`: returns the node, or NULL if it is unknown
 * or was already declared dead (a dead node must register again). */
pd_node *pd_registry_heard(pd_registry *reg, uint64_t id, double now);
/* Failure detection: the first alive node not heard from for `timeout`
 * seconds at `now`, now marked dead; NULL when there is none. Call it until
 * it returns NULL. */
pd_node *pd_registry_next_dead(pd_registry *reg, double now, double timeout);
/* Node `id` could not be reached at its address (probe.h): the next
 * pd_registry_next_dead declares it dead without waiting for the timeout,
 * unless a heartbeat comes first (then it is alive after all). */
void pd_registry_unreachable(pd_registry *reg, uint64_t id);

/* Whether `n` is an alive worker without a job. */
int pd_node_idle_worker(const pd_node *n);
/* Alive nodes of `role`; with `idle_only`, only the idle workers. */
size_t pd_registry_alive(const pd_registry *reg, Pando__V1__Role role, int idle_only);

/* Tells the workers of `job` that their assignment changed; with `release`
 * they are also idle again. */
void pd_registry_reassign(pd_registry *reg, const char *job, int release);

#endif
