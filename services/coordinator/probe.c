/* Health probes of nodes whose name a newcomer registers under; see probe.h. */
#include "probe.h"

#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "pando/log.h"
#include "pando/util.h"

#define PROBE_TIMEOUT_SEC 1.0
#define PROBES_MAX 64 /* in flight at once: a flood of registrations costs no more */

typedef struct probe {
  pd_probes *owner;
  uint64_t node_id;
  char address[256];
  pd_rpc_channel *channel;
  int done;
  grpc_slice request;
} probe;

struct pd_probes {
  pd_loop *loop;
  pd_registry *reg;
  probe *probes[PROBES_MAX];
  int n;
};

pd_probes *pd_probes_new(pd_loop *loop, pd_registry *reg) {
  pd_probes *p = pd_xcalloc(1, sizeof *p);
  p->loop = loop;
  p->reg = reg;
  return p;
}

static void probe_free(probe *pr) {
  pd_rpc_channel_free(pr->channel);
  grpc_slice_unref(pr->request);
  free(pr);
}

void pd_probes_reap(pd_probes *p) {
  for (int i = 0; i < p->n;)
    if (p->probes[i]->done) {
      probe_free(p->probes[i]);
      p->probes[i] = p->probes[--p->n];
    } else {
      i++;
    }
}

void pd_probes_free(pd_probes *p) {
  if (!p)
    return;
  for (int i = 0; i < p->n; i++)
    while (!p->probes[i]->done)
      pd_loop_run_once(p->loop, 1.0);
  pd_probes_reap(p);
  free(p);
}

static void probe_done(const pd_rpc_result *r, void *user) {
  probe *pr = user;
  pr->done = 1;
  if (r->status != GRPC_STATUS_UNAVAILABLE)
    return; /* it answered (or is only slow): alive until its heartbeats stop */
  pd_node *n = pd_registry_find(pr->owner->reg, pr->node_id);
  if (!n || !n->alive)
    return;
  PD_WARN("node %llu (%s at %s) does not answer at its address (%s) while a node of its name "
          "registers: declaring it dead now",
          (unsigned long long)n->id, n->name, n->address, r->details);
  pd_registry_unreachable(pr->owner->reg, pr->node_id);
}

void pd_probes_check(pd_probes *p, const pd_node *old) {
  if (!old->alive || old->address[0] == '\0' || p->n == PROBES_MAX)
    return;
  for (int i = 0; i < p->n; i++)
    if (p->probes[i]->node_id == old->id && !p->probes[i]->done)
      return;
  probe *pr = pd_xcalloc(1, sizeof *pr);
  pr->owner = p;
  pr->node_id = old->id;
  pd_strlcpy(pr->address, old->address, sizeof pr->address);
  pr->channel = pd_rpc_channel_new(pr->address, 1);
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = "";
  pr->request = pd_rpc_pack(&req.base);
  if (pd_rpc_start(pr->channel, p->loop, "/grpc.health.v1.Health/Check", &pr->request, 1,
                   PROBE_TIMEOUT_SEC, probe_done, pr) != 0) {
    probe_free(pr);
    return;
  }
  p->probes[p->n++] = pr;
}
