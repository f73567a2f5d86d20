/* Liveness probes: when a node registers under the name of a node that is
 * still alive in the registry (a restarted server or worker whose old self
 * has not missed heartbeats for node_timeout yet), the coordinator asks the
 * old node's health service (grpc.health.v1.Health/Check, 1 s deadline).
 * If nothing listens there any more (UNAVAILABLE), the old node is marked
 * unreachable and the next failure detection declares it dead at once, so
 * the newcomer's next registration is accepted and a job's recovery need not
 * wait for node_timeout. A node that answers, or only times out (stopped,
 * overloaded), stays alive until its heartbeats say otherwise: a probe never
 * takes the name of a node that is there. One probe per node at a time. */
#ifndef PANDO_COORD_PROBE_H
#define PANDO_COORD_PROBE_H

#include "pando/rpc.h"
#include "registry.h"

typedef struct pd_probes pd_probes;

pd_probes *pd_probes_new(pd_loop *loop, pd_registry *reg);
/* Waits for the probes in flight, then frees everything. */
void pd_probes_free(pd_probes *p);
/* Probes `old` (alive, with an address) unless a probe of it is in flight. */
void pd_probes_check(pd_probes *p, const pd_node *old);
/* Frees the channels of finished probes (call from the cron). */
void pd_probes_reap(pd_probes *p);

#endif
