/* The node registry and failure detection; see registry.h. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "pando/error.h"
#include "pando/util.h"

struct pd_registry {
  pd_node *nodes;
  size_t nnodes, cap;
  uint64_t next_id;
};

pd_registry *pd_registry_new(void) {
  pd_registry *reg = pd_xcalloc(1, sizeof *reg);
  reg->next_id = 1;
  return reg;
}

void pd_registry_free(pd_registry *reg) {
  if (!reg)
    return;
  free(reg->nodes);
  free(reg);
}

uint64_t pd_registry_next_id(const pd_registry *reg) { return reg->next_id; }

void pd_registry_set_next_id(pd_registry *reg, uint64_t next_id) { reg->next_id = next_id; }

size_t pd_registry_forget(pd_registry *reg, double now, double after) {
  size_t kept = 0, forgotten = 0;
  for (size_t i = 0; i < reg->nnodes; i++) {
    pd_node *n = &reg->nodes[i];
    if (!n->alive && now - n->dead_since >= after)
      forgotten++;
    else
      reg->nodes[kept++] = *n;
  }
  reg->nnodes = kept;
  return forgotten;
}

int pd_registry_add(pd_registry *reg, Pando__V1__Role role, const char *address, const char *name,
                    double now, pd_node **out, char *err, size_t errlen) {
  char full[sizeof reg->nodes->name];
  pd_strlcpy(full, name[0] ? name : address, sizeof full);
  *out = NULL;
  for (size_t i = 0; i < reg->nnodes; i++) {
    pd_node *n = &reg->nodes[i];
    if (n->alive && strcmp(n->name, full) == 0 && (*out = n))
      return pd_errf(err, errlen, -PD_EDUP,
                     "name: a node named '%s' is registered and alive (node %llu, heard from "
                     "%.1f s ago); a node of that name registers once it is declared dead",
                     full, (unsigned long long)n->id, now - n->last_seen);
  }
  if (reg->nnodes == PD_REGISTRY_MAX && pd_registry_forget(reg, now, 0) == 0)
    return pd_errf(err, errlen, -PD_ETOOBIG, "the coordinator holds %d nodes, its limit",
                   PD_REGISTRY_MAX);
  if (reg->nnodes == reg->cap) {
    reg->cap = reg->cap ? reg->cap * 2 : 16;
    reg->nodes = pd_xrealloc(reg->nodes, reg->cap * sizeof *reg->nodes);
  }
  pd_node *n = &reg->nodes[reg->nnodes++];
  memset(n, 0, sizeof *n);
  n->id = reg->next_id++;
  n->role = role;
  pd_strlcpy(n->address, address, sizeof n->address);
  pd_strlcpy(n->name, full, sizeof n->name);
  n->last_seen = now;
  n->alive = 1;
  *out = n;
  return 0;
}

pd_node *pd_registry_find(pd_registry *reg, uint64_t id) {
  for (size_t i = 0; i < reg->nnodes; i++)
    if (reg->nodes[i].id == id)
      return &reg->nodes[i];
  return NULL;
}

size_t pd_registry_count(const pd_registry *reg) { return reg->nnodes; }

pd_node *pd_registry_at(pd_registry *reg, size_t i) { return &reg->nodes[i]; }

pd_node *pd_registry_heard(pd_registry *reg, uint64_t id, double now) {
  pd_node *n = pd_registry_find(reg, id);
  if (!n || !n->alive)
    return NULL;
  n->last_seen = now;
  n->unreachable = 0; /* it answers after all */
  return n;
}

pd_node *pd_registry_next_dead(pd_registry *reg, double now, double timeout) {
  for (size_t i = 0; i < reg->nnodes; i++) {
    pd_node *n = &reg->nodes[i];
    if (n->alive && (n->unreachable || now - n->last_seen >= timeout)) {
      n->alive = 0;
      n->dead_since = now;
      return n;
    }
  }
  return NULL;
}

void pd_registry_unreachable(pd_registry *reg, uint64_t id) {
  pd_node *n = pd_registry_find(reg, id);
  if (n && n->alive)
    n->unreachable = 1;
}

int pd_node_idle_worker(const pd_node *n) {
  return n->role == PANDO__V1__ROLE__ROLE_WORKER && n->alive && n->job[0] == '\0';
}

size_t pd_registry_alive(const pd_registry *reg, Pando__V1__Role role, int idle_only) {
  size_t k = 0;
  for (size_t i = 0; i < reg->nnodes; i++) {
    const pd_node *n = &reg->nodes[i];
    if (n->role == role && n->alive && (!idle_only || pd_node_idle_worker(n)))
      k++;
  }
  return k;
}

void pd_registry_reassign(pd_registry *reg, const char *job, int release) {
  for (size_t i = 0; i < reg->nnodes; i++) {
    pd_node *n = &reg->nodes[i];
    if (n->role == PANDO__V1__ROLE__ROLE_WORKER && strcmp(n->job, job) == 0) {
      if (release)
        n->job[0] = '\0';
      n->generation++;
    }
  }
}
