/* Unit tests of the selector's decisions (services/selector/selection.c)
 * and its population (services/selector/population.c). */
#include <stdint.h>
#include <stdio.h>

#include "../../../services/selector/population.h"
#include "../../../services/selector/selection.h"
#include "../../test.h"
#include "pando/util.h"

#define NDEV 100

static char names[NDEV][16];
static const char *ids[NDEV];

static void make_ids(void) {
  for (int i = 0; i < NDEV; i++) {
    snprintf(names[i], sizeof names[i], "dev-%d", i);
    ids[i] = names[i];
  }
}

static void test_same_seed_same_devices(void) {
  make_ids();
  size_t a[13], b[13], c[13], d[13];
  CHECK_EQ_INT(pd_selection_choose(ids, NDEV, 42, 7, 13, a), 13);
  CHECK_EQ_INT(pd_selection_choose(ids, NDEV, 42, 7, 13, b), 13);
  CHECK(memcmp(a, b, sizeof a) == 0);
  /* the order of the candidates does not matter: reversed, the same ids */
  const char *rev[NDEV];
  for (int i = 0; i < NDEV; i++)
    rev[i] = ids[NDEV - 1 - i];
  CHECK_EQ_INT(pd_selection_choose(rev, NDEV, 42, 7, 13, c), 13);
  for (int i = 0; i < 13; i++)
    CHECK(strcmp(rev[c[i]], ids[a[i]]) == 0);
  /* another round, another set */
  CHECK_EQ_INT(pd_selection_choose(ids, NDEV, 42, 8, 13, d), 13);
  CHECK(memcmp(a, d, sizeof a) != 0);
  /* distinct devices */
  for (int i = 0; i < 13; i++)
    for (int j = 0; j < i; j++)
      CHECK(a[i] != a[j]);
  /* fewer candidates than asked: all of them */
  CHECK_EQ_INT(pd_selection_choose(ids, 5, 42, 7, 13, d), 5);
  CHECK_EQ_INT(pd_selection_choose(ids, 0, 42, 7, 13, d), 0);
}

/* Over R rounds of 10 of 100 devices each device is expected R/10 times.
 * Pearson's statistic over the 100 counts has 99 degrees of freedom (mean
 * 99, sd sqrt(198) = 14.1 for independent counts; drawing without
 * replacement within a round makes it slightly smaller); the bound
 * 99 + 5 sd = 169.4 is exceeded by chance with probability < 1e-5. A
 * selection that favoured some devices, e.g. the 10 lowest ids, gives
 * ~ 90 R / 10. */
static void test_selection_fair_chi_square(void) {
  make_ids();
  const int rounds = 3000;
  int count[NDEV] = {0};
  size_t out[10];
  for (int r = 0; r < rounds; r++) {
    CHECK_EQ_INT(pd_selection_choose(ids, NDEV, 1234, (uint64_t)r, 10, out), 10);
    for (int i = 0; i < 10; i++)
      count[out[i]]++;
  }
  double expected = rounds * 10.0 / NDEV, chi2 = 0;
  for (int i = 0; i < NDEV; i++)
    chi2 += (count[i] - expected) * (count[i] - expected) / expected;
  fprintf(stderr, "  chi-square %.1f (99 degrees of freedom, bound 169.4)\n", chi2);
  CHECK(chi2 < 99 + 5 * sqrt(2 * 99.0));
  for (int i = 0; i < NDEV; i++)
    CHECK(count[i] > 0);
}

static void test_eligibility(void) {
  CHECK(pd_selection_eligible("", "", "fed", "")); /* serves any job */
  CHECK(pd_selection_eligible("a,fed,b", "", "fed", ""));
  CHECK(!pd_selection_eligible("a,fedx", "", "fed", ""));
  CHECK(!pd_selection_eligible("a,fe", "", "fed", ""));
  CHECK(pd_selection_eligible("a", "", "", "")); /* no job named: anyone */
  CHECK(pd_selection_eligible("", "charging,unmetered", "fed", "unmetered,charging"));
  CHECK(!pd_selection_eligible("", "charging", "fed", "charging,unmetered"));
  CHECK(!pd_selection_eligible("", "", "fed", "charging"));
  CHECK(pd_selection_eligible("", "charging", "fed", "charging"));
}

static const pd_pace_options pace = {50, 0.5, 60, 10};

static void test_pace_window(void) {
  CHECK_NEAR(pd_pace_window(&pace, 1000, 0), 10, 0); /* idle: nothing to do */
  CHECK_NEAR(pd_pace_window(&pace, 12, 13), 0.5, 0); /* small population: all at hand */
  CHECK_NEAR(pd_pace_window(&pace, 13, 13), 0.5, 0);
  CHECK_NEAR(pd_pace_window(&pace, 20, 13), 0.5, 0);    /* 20 / 50 below the minimum */
  CHECK_NEAR(pd_pace_window(&pace, 100, 13), 2, 1e-12); /* 100 / 50 */
  CHECK_NEAR(pd_pace_window(&pace, 1000, 13), 20, 1e-12);
  CHECK_NEAR(pd_pace_window(&pace, 1000000, 13), 60, 0); /* the maximum */
}

/* The check-in rate online / window stays at checkin_rate while the
 * population grows, instead of growing with it. */
static void test_pace_rate_bounded(void) {
  const size_t populations[] = {100, 1000, 3000, 10000, 100000};
  for (size_t i = 0; i < PD_ARRAY_SIZE(populations); i++) {
    double w = pd_pace_window(&pace, populations[i], 13);
    double rate = populations[i] / w;
    double bound = PD_MAX(pace.checkin_rate, populations[i] / pace.max_window_sec);
    CHECK(rate <= bound + 1e-9);
  }
  CHECK_NEAR(1000 / pd_pace_window(&pace, 1000, 13), 50, 1e-9);
  CHECK_NEAR(3000 / pd_pace_window(&pace, 3000, 13), 50, 1e-9);
  /* beyond checkin_rate x max_window the maximum window holds the rate */
  CHECK_NEAR(10000 / pd_pace_window(&pace, 10000, 13), 10000 / 60.0, 1e-9);
}

static void test_pace_jitter(void) {
  uint64_t state = 9;
  double sum = 0, lo = 1e9, hi = 0;
  for (int i = 0; i < 100000; i++) {
    double w = pd_pace_jitter(20, &state);
    sum += w;
    lo = PD_MIN(lo, w);
    hi = PD_MAX(hi, w);
  }
  CHECK(lo >= 15 && hi < 25);
  CHECK(lo < 15.1 && hi > 24.9); /* spread over the whole interval */
  CHECK_NEAR(sum / 100000, 20, 0.05);
}

static int releases;
static void count_release(pd_task *t) {
  (void)t;
  releases++;
}

static void test_population_upsert_find_expire(void) {
  pd_population *p = pd_population_new();
  char id[32];
  int created;
  for (int i = 0; i < 10000; i++) {
    snprintf(id, sizeof id, "device-%05d", i);
    pd_device *d = pd_population_upsert(p, id, &created);
    CHECK(created);
    d->num_samples = (uint64_t)i;
    d->expires = i % 2 ? 100.0 : 10.0; /* odd devices live longer */
    if (i == 4)
      d->task = (pd_task *)p; /* any non-NULL marker: released on expiry */
  }
  CHECK_EQ_INT(pd_population_size(p), 10000);
  pd_device *again = pd_population_upsert(p, "device-00042", &created);
  CHECK(!created);
  CHECK_EQ_INT(again->num_samples, 42);
  CHECK(pd_population_find(p, "device-10000") == NULL);
  releases = 0;
  CHECK_EQ_INT(pd_population_expire(p, 50.0, count_release), 5000);
  CHECK_EQ_INT(releases, 1);
  CHECK_EQ_INT(pd_population_size(p), 5000);
  CHECK(pd_population_find(p, "device-00042") == NULL);
  pd_device *odd = pd_population_find(p, "device-00043");
  CHECK(odd != NULL);
  CHECK_EQ_INT(odd->num_samples, 43);
  for (size_t i = 0; i < pd_population_size(p); i++)
    CHECK(pd_population_at(p, i)->num_samples % 2 == 1);
  pd_device_set(&odd->jobs, "fed,other");
  CHECK(strcmp(odd->jobs, "fed,other") == 0);
  pd_population_free(p, NULL);
}

int main(int argc, char **argv) {
  PD_RUN(test_same_seed_same_devices);
  PD_RUN(test_selection_fair_chi_square);
  PD_RUN(test_eligibility);
  PD_RUN(test_pace_window);
  PD_RUN(test_pace_rate_bounded);
  PD_RUN(test_pace_jitter);
  PD_RUN(test_population_upsert_find_expire);
  PD_TEST_DONE();
}
