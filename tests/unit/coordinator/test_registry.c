/* Unit tests of the coordinator's node registry (services/coordinator/
 * registry.c): ids, names, heartbeats and failure detection at given
 * times, counts of alive and idle nodes, reassignment. */
#include "../../../services/coordinator/registry.h"

#include <string.h>

#include "../../test.h"
#include "nodes.h"
#include "pando/error.h"

static void test_ids_and_names(void) {
  pd_registry *reg = pd_registry_new();
  pd_node *a = add_node(reg, PANDO__V1__ROLE__ROLE_SERVER, "10.0.0.1:7000", "ps-a", 5.0);
  CHECK_EQ_INT(a->id, 1);
  CHECK(strcmp(a->name, "ps-a") == 0);
  CHECK_EQ_INT(a->alive, 1);
  CHECK(a->last_seen == 5.0);
  pd_node *b = add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "10.0.0.2:7001", "", 6.0);
  CHECK_EQ_INT(b->id, 2);
  CHECK(strcmp(b->name, "10.0.0.2:7001") == 0); /* no name: the address */
  CHECK(b->job[0] == '\0');
  CHECK_EQ_INT(pd_registry_count(reg), 2);
  CHECK(pd_registry_find(reg, 2) == pd_registry_at(reg, 1));
  CHECK(pd_registry_find(reg, 3) == NULL);
  CHECK(pd_registry_find(reg, 0) == NULL);
  pd_registry_free(reg);
}

/* A node silent for the timeout is dead, once; heartbeats keep a node
 * alive and are refused from a dead one. */
static void test_failure_detection(void) {
  pd_registry *reg = pd_registry_new();
  add_node(reg, PANDO__V1__ROLE__ROLE_SERVER, "s1:1", "s1", 0.0);
  add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "w1:1", "w1", 0.0);
  add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "w2:1", "w2", 0.0);
  CHECK(pd_registry_heard(reg, 1, 8.0) != NULL);
  CHECK(pd_registry_heard(reg, 3, 9.5) != NULL);
  CHECK(pd_registry_next_dead(reg, 9.9, 10.0) == NULL); /* nobody silent for 10 s yet */
  pd_node *dead = pd_registry_next_dead(reg, 10.0, 10.0);
  CHECK(dead != NULL);
  CHECK_EQ_INT(dead->id, 2); /* w1, last seen at 0 */
  CHECK_EQ_INT(dead->alive, 0);
  CHECK(pd_registry_next_dead(reg, 10.0, 10.0) == NULL); /* declared once */
  CHECK(pd_registry_heard(reg, 2, 10.5) == NULL);        /* must register again */
  CHECK(pd_registry_heard(reg, 42, 10.5) == NULL);       /* unknown */
  CHECK(pd_registry_find(reg, 2)->last_seen == 0.0);
  /* at 19.5: s1 (seen at 8) is silent for 11.5 s, w2 (9.5) for exactly 10 */
  dead = pd_registry_next_dead(reg, 19.5, 10.0);
  CHECK(dead != NULL);
  CHECK_EQ_INT(dead->id, 1);
  dead = pd_registry_next_dead(reg, 19.5, 10.0);
  CHECK(dead != NULL);
  CHECK_EQ_INT(dead->id, 3);
  CHECK(pd_registry_next_dead(reg, 100.0, 10.0) == NULL);
  pd_registry_free(reg);
}

static void test_alive_idle_and_reassign(void) {
  pd_registry *reg = pd_registry_new();
  add_node(reg, PANDO__V1__ROLE__ROLE_SERVER, "s1:1", "s1", 0.0);
  add_node(reg, PANDO__V1__ROLE__ROLE_SERVER, "s2:1", "s2", 0.0);
  pd_node *w1 = add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "w1:1", "w1", 0.0);
  add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "w2:1", "w2", 0.0);
  add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "w3:1", "w3", 0.0);
  CHECK_EQ_INT(pd_registry_alive(reg, PANDO__V1__ROLE__ROLE_SERVER, 0), 2);
  CHECK_EQ_INT(pd_registry_alive(reg, PANDO__V1__ROLE__ROLE_WORKER, 1), 3);
  strcpy(w1->job, "job-1");
  w1 = NULL;
  strcpy(pd_registry_find(reg, 4)->job, "job-1");
  strcpy(pd_registry_find(reg, 5)->job, "job-2");
  CHECK_EQ_INT(pd_registry_alive(reg, PANDO__V1__ROLE__ROLE_WORKER, 1), 0);
  CHECK_EQ_INT(pd_registry_alive(reg, PANDO__V1__ROLE__ROLE_WORKER, 0), 3);
  CHECK(!pd_node_idle_worker(pd_registry_find(reg, 1))); /* a server is never an idle worker */
  pd_registry_reassign(reg, "job-1", 0);                 /* new assignment, same job */
  CHECK_EQ_INT(pd_registry_find(reg, 3)->generation, 1);
  CHECK(strcmp(pd_registry_find(reg, 3)->job, "job-1") == 0);
  CHECK_EQ_INT(pd_registry_find(reg, 5)->generation, 0);
  pd_registry_reassign(reg, "job-1", 1); /* released */
  CHECK_EQ_INT(pd_registry_find(reg, 3)->generation, 2);
  CHECK_EQ_INT(pd_registry_find(reg, 4)->generation, 2);
  CHECK(pd_node_idle_worker(pd_registry_find(reg, 3)));
  CHECK_EQ_INT(pd_registry_alive(reg, PANDO__V1__ROLE__ROLE_WORKER, 1), 2);
  pd_registry_next_dead(reg, 100.0, 1.0);
  CHECK_EQ_INT(pd_registry_alive(reg, PANDO__V1__ROLE__ROLE_SERVER, 0), 1); /* s1 died first */
  pd_registry_free(reg);
}

/* A name that is alive cannot be registered again (ALREADY_EXISTS at the
 * RPC); once that node is declared dead it can. */
static void test_name_taken_while_alive(void) {
  pd_registry *reg = pd_registry_new();
  char err[256] = "";
  pd_node *n = NULL;
  add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "10.0.0.2:7001", "w0", 0.0);
  CHECK_EQ_INT(pd_registry_add(reg, PANDO__V1__ROLE__ROLE_WORKER, "10.6.6.6:1", "w0", 1.0, &n, err,
                               sizeof err),
               -PD_EDUP);
  CHECK(n != NULL && n->id == 1 && n->alive); /* the alive node of that name, for probe.h */
  CHECK_STR_CONTAINS(err, "a node named 'w0' is registered and alive (node 1");
  /* another role may not take it either, and an unnamed node is named by
   * its address */
  CHECK_EQ_INT(
      pd_registry_add(reg, PANDO__V1__ROLE__ROLE_SERVER, "x:1", "w0", 1.0, &n, err, sizeof err),
      -PD_EDUP);
  CHECK_EQ_INT(pd_registry_add(reg, PANDO__V1__ROLE__ROLE_SERVER, "x:1", "10.0.0.2:7001", 1.0, &n,
                               err, sizeof err),
               0);
  CHECK_EQ_INT(pd_registry_add(reg, PANDO__V1__ROLE__ROLE_SERVER, "10.0.0.2:7001", "", 1.0, &n, err,
                               sizeof err),
               -PD_EDUP);
  CHECK_EQ_INT(pd_registry_count(reg), 2);
  CHECK(pd_registry_next_dead(reg, 10.0, 10.0) != NULL); /* w0 */
  CHECK_EQ_INT(pd_registry_add(reg, PANDO__V1__ROLE__ROLE_WORKER, "10.0.0.2:7002", "w0", 10.5, &n,
                               err, sizeof err),
               0);
  CHECK(n != NULL && n->id == 3 && n->alive);
  pd_registry_free(reg);
}

/* A node found gone (probe.h) is declared dead by the next failure
 * detection without waiting for the timeout, unless it heartbeats first;
 * then its name is free. */
static void test_unreachable(void) {
  pd_registry *reg = pd_registry_new();
  char err[256] = "";
  pd_node *n = NULL;
  add_node(reg, PANDO__V1__ROLE__ROLE_SERVER, "10.0.0.1:7000", "ps0", 0.0);
  add_node(reg, PANDO__V1__ROLE__ROLE_SERVER, "10.0.0.1:7001", "ps1", 0.0);
  pd_registry_unreachable(reg, 2);
  CHECK(pd_registry_heard(reg, 2, 0.5) != NULL); /* it answered after all */
  CHECK(pd_registry_next_dead(reg, 1.0, 10.0) == NULL);
  pd_registry_unreachable(reg, 1);
  pd_registry_unreachable(reg, 99); /* unknown: nothing */
  n = pd_registry_next_dead(reg, 1.0, 10.0);
  CHECK(n != NULL && n->id == 1 && !n->alive);
  CHECK(pd_registry_next_dead(reg, 1.0, 10.0) == NULL); /* ps1 stays alive */
  CHECK_EQ_INT(pd_registry_add(reg, PANDO__V1__ROLE__ROLE_SERVER, "10.0.0.1:7100", "ps0", 1.0, &n,
                               err, sizeof err),
               0);
  CHECK(n != NULL && n->id == 3);
  pd_registry_free(reg);
}

/* Dead nodes are forgotten after a while; the registry is bounded, and when
 * full it makes room by forgetting the dead at once. */
static void test_forget_and_bound(void) {
  pd_registry *reg = pd_registry_new();
  char err[256] = "", name[32];
  pd_node *n = NULL;
  for (int i = 0; i < PD_REGISTRY_MAX; i++) {
    snprintf(name, sizeof name, "fake-%d", i);
    add_node(reg, PANDO__V1__ROLE__ROLE_WORKER, "f:1", name, i < 100 ? 0.0 : 50.0);
  }
  CHECK_EQ_INT(
      pd_registry_add(reg, PANDO__V1__ROLE__ROLE_WORKER, "w:1", "w", 51.0, &n, err, sizeof err),
      -PD_ETOOBIG);
  CHECK_STR_CONTAINS(err, "holds 8192 nodes, its limit");
  size_t dead = 0;
  while (pd_registry_next_dead(reg, 55.0, 10.0))
    dead++;
  CHECK_EQ_INT(dead, 100);
  CHECK_EQ_INT(pd_registry_forget(reg, 56.0, 60.0), 0); /* not dead for 60 s yet */
  CHECK_EQ_INT(pd_registry_count(reg), PD_REGISTRY_MAX);
  /* full: the dead are forgotten to make room */
  CHECK_EQ_INT(
      pd_registry_add(reg, PANDO__V1__ROLE__ROLE_WORKER, "w:1", "w", 56.0, &n, err, sizeof err), 0);
  CHECK_EQ_INT(pd_registry_count(reg), PD_REGISTRY_MAX - 100 + 1);
  CHECK(pd_registry_find(reg, 1) == NULL);
  CHECK(pd_registry_find(reg, 101) != NULL);
  CHECK_EQ_INT(n->id, PD_REGISTRY_MAX + 1); /* ids are never reused */
  /* the rest die at 60 and are forgotten 60 s later, the new node stays */
  while (pd_registry_next_dead(reg, 60.0, 10.0))
    ;
  CHECK_EQ_INT(pd_registry_forget(reg, 119.0, 60.0), 0);
  CHECK_EQ_INT(pd_registry_forget(reg, 120.0, 60.0), PD_REGISTRY_MAX - 100);
  CHECK_EQ_INT(pd_registry_count(reg), 1);
  CHECK(pd_registry_at(reg, 0)->alive && strcmp(pd_registry_at(reg, 0)->name, "w") == 0);
  pd_registry_free(reg);
}

int main(int argc, char **argv) {
  PD_RUN(test_ids_and_names);
  PD_RUN(test_failure_detection);
  PD_RUN(test_alive_idle_and_reassign);
  PD_RUN(test_name_taken_while_alive);
  PD_RUN(test_unreachable);
  PD_RUN(test_forget_and_bound);
  PD_TEST_DONE();
}
