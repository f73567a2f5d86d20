/* Shared by the coordinator's unit tests: registering nodes that must be
 * accepted. */
#ifndef PANDO_TEST_COORD_NODES_H
#define PANDO_TEST_COORD_NODES_H

#include <stdio.h>
#include <stdlib.h>

#include "../../../services/coordinator/registry.h"

/* pd_registry_add that must succeed. */
static pd_node *add_node(pd_registry *reg, Pando__V1__Role role, const char *address,
                         const char *name, double now) {
  pd_node *n = NULL;
  char err[256];
  if (pd_registry_add(reg, role, address, name, now, &n, err, sizeof err) != 0) {
    fprintf(stderr, "  pd_registry_add: %s\n", err);
    abort();
  }
  return n;
}

#endif
