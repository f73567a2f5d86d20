/* Unit tests of the ps-server consistency clock: BSP rounds (coverage by
 * chunks, waiting pulls, refused early pushes, duplicates and overlaps), ASP
 * versions (whole gradients, duplicates, invalid arguments), SSP (bounded
 * clock gap, blocked pulls, staleness; s = 0 is BSP) and BSP with backup
 * workers (first N gradients, dropped ones). */
#include "../../../services/ps-server/clock.h"

#include <stdint.h>
#include <string.h>

#include "../../test.h"

/* Pushes chunks [bounds[i], bounds[i + 1]) in the order given by `order`,
 * expecting `expect` for each. Returns the index of the first chunk whose
 * verdict differs, or -1. */
static int push_chunks(pd_clock *clock, uint32_t worker, int64_t worker_clock,
                       const uint64_t *bounds, const int *order, int nchunks,
                       enum pd_push_verdict expect) {
  char err[256] = "";
  for (int i = 0; i < nchunks; i++) {
    int c = order[i];
    if (pd_clock_on_push(clock, worker, worker_clock, -1, bounds[c], bounds[c + 1], err,
                         sizeof err) != expect)
      return i;
  }
  return -1;
}

/* A round completes only once every worker covered every key, whatever the
 * chunking and order; then version moves to the next round. */
static void test_bsp_round_needs_every_key_of_every_worker(void) {
  enum { KEYS = 100, WORKERS = 3 };
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, WORKERS, KEYS);
  const uint64_t bounds[] = {0, 7, 8, 40, 41, 99, 100};
  const int forward[] = {0, 1, 2, 3, 4, 5};
  const int shuffled[] = {3, 5, 0, 4, 1, 2};
  const int backward[] = {5, 4, 3, 2, 1, 0};
  const int *orders[WORKERS] = {forward, shuffled, backward};
  char err[256] = "";

  CHECK_EQ_INT(pd_clock_version(clock), 0);
  for (int round = 0; round < 4; round++) {
    /* Workers 0 and 1 send everything; worker 2 all but its last chunk. */
    for (uint32_t w = 0; w < WORKERS; w++) {
      const int *order = orders[(w + (uint32_t)round) % WORKERS];
      int n = w == WORKERS - 1 ? 5 : 6;
      CHECK_EQ_INT(push_chunks(clock, w, round, bounds, order, n, PD_PUSH_ACCUMULATE), -1);
      CHECK(!pd_clock_round_complete(clock));
    }
    CHECK_EQ_INT(pd_clock_version(clock), (uint64_t)round);
    /* The missing chunk completes the round. */
    const int *order = orders[(WORKERS - 1 + (uint32_t)round) % WORKERS];
    CHECK_EQ_INT(pd_clock_on_push(clock, WORKERS - 1, round, -1, bounds[order[5]],
                                  bounds[order[5] + 1], err, sizeof err),
                 PD_PUSH_ACCUMULATE);
    CHECK(pd_clock_round_complete(clock));
    CHECK_EQ_INT(pd_clock_version(clock), (uint64_t)round); /* until advanced */
    pd_clock_advance(clock);
    CHECK(!pd_clock_round_complete(clock));
    CHECK_EQ_INT(pd_clock_version(clock), (uint64_t)round + 1);
  }
  pd_clock_free(clock);
}

/* Single-key shards and whole-shard pushes are rounds too. */
static void test_bsp_single_key_and_whole_shard(void) {
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, 1, 1);
  for (int64_t round = 0; round < 3; round++) {
    CHECK_EQ_INT(pd_clock_on_push(clock, 0, round, -1, 0, 1, err, sizeof err), PD_PUSH_ACCUMULATE);
    CHECK(pd_clock_round_complete(clock));
    pd_clock_advance(clock);
  }
  CHECK_EQ_INT(pd_clock_version(clock), 3);
  pd_clock_free(clock);

  clock = pd_clock_new(PD_UPDATE_BSP, 2, 10);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(!pd_clock_round_complete(clock));
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(pd_clock_round_complete(clock));
  pd_clock_free(clock);
}

/* A pull at clock c is answered once c rounds are complete (version >= c),
 * waits while version == c - 1, and is refused beyond that. */
static void test_bsp_pull_waits_for_round(void) {
  enum { KEYS = 10, WORKERS = 2 };
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, WORKERS, KEYS);

  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 0, err, sizeof err), 1);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, 1, err, sizeof err), 0);

  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, 2, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "worker 1 pulled clock 2");
  CHECK_STR_CONTAINS(err, "shard is at clock 0");

  for (int64_t round = 0; round < 3; round++) {
    CHECK_EQ_INT(pd_clock_on_push(clock, 0, round, -1, 0, KEYS, err, sizeof err),
                 PD_PUSH_ACCUMULATE);
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, round + 1, err, sizeof err), 0);
    CHECK_EQ_INT(pd_clock_on_push(clock, 1, round, -1, 0, 5, err, sizeof err), PD_PUSH_ACCUMULATE);
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, round + 1, err, sizeof err), 0);
    CHECK_EQ_INT(pd_clock_on_push(clock, 1, round, -1, 5, KEYS, err, sizeof err),
                 PD_PUSH_ACCUMULATE);
    CHECK(pd_clock_round_complete(clock));
    /* Complete but not applied yet: still waiting. */
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, round + 1, err, sizeof err), 0);
    pd_clock_advance(clock);
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, round + 1, err, sizeof err), 1);
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, round + 1, err, sizeof err), 1);
    /* Older clocks are answered with the newer parameters. */
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, 0, err, sizeof err), 1);
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, round + 2, err, sizeof err), 0);
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, round + 3, err, sizeof err), -1);
  }
  CHECK_EQ_INT(pd_clock_version(clock), 3);
  pd_clock_free(clock);
}

/* Under BSP a worker may not push clock c + 1 before round c is applied, and
 * pushes of rounds already applied are duplicates. */
static void test_bsp_push_ahead_refused_old_duplicate(void) {
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, 2, 10);

  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "worker 0 pushed clock 1");
  CHECK_STR_CONTAINS(err, "shard is at clock 0");

  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  /* Worker 0 is done with round 0 but the round is not: clock 1 is early. */
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "pushed clock 1");
  CHECK(!pd_clock_round_complete(clock));
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(pd_clock_round_complete(clock));
  /* Complete but not advanced: still refused. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  pd_clock_advance(clock);

  /* Round 0 was applied: its retries are duplicates, whatever the range. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 3, 4, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_version(clock), 1);
  CHECK(!pd_clock_round_complete(clock));

  /* Round 1 works normally after the duplicates. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 1, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(pd_clock_round_complete(clock));
  pd_clock_advance(clock);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 1, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_version(clock), 2);
  pd_clock_free(clock);
}

/* Within a round: the same chunk twice is a duplicate (it does not count
 * twice), an overlapping different chunk is rejected naming both ranges. */
static void test_bsp_duplicate_and_overlap(void) {
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, 2, 20);

  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);

  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 5, 15, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "[5, 15)");
  CHECK_STR_CONTAINS(err, "[0, 10)");

  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 9, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "[9, 10)");
  CHECK_STR_CONTAINS(err, "[0, 10)");

  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 20, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "[0, 20)");
  CHECK_STR_CONTAINS(err, "[0, 10)");

  /* Adjacent is fine; neither the duplicates nor the rejects counted. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 10, 19, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 20, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(!pd_clock_round_complete(clock));
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 18, 20, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "[18, 20)");
  CHECK_STR_CONTAINS(err, "[10, 19)");
  CHECK(!pd_clock_round_complete(clock));
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 19, 20, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(pd_clock_round_complete(clock));
  /* After the round is whole, its chunks are still duplicates. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 19, 20, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 20, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK(pd_clock_round_complete(clock));
  pd_clock_advance(clock);
  CHECK_EQ_INT(pd_clock_version(clock), 1);

  /* Overlaps are per worker and per round: a new round starts empty. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, -1, 5, 15, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 1, -1, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  pd_clock_free(clock);
}

/* Many small chunks (more than the initial interval capacity) in a
 * pseudo-random order complete exactly when the last one arrives. */
static void test_bsp_many_chunks(void) {
  enum { KEYS = 1000, WORKERS = 4 };
  char err[256] = "";
  uint64_t bounds[KEYS + 1];
  int order[KEYS];
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, WORKERS, KEYS);
  uint64_t rng = 12345;
  for (int round = 0; round < 3; round++) {
    /* Random chunk boundaries: 1..17 keys each. */
    int n = 0;
    bounds[0] = 0;
    while (bounds[n] < KEYS) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      uint64_t len = 1 + (rng >> 33) % 17;
      bounds[n + 1] = bounds[n] + len < KEYS ? bounds[n] + len : KEYS;
      n++;
    }
    for (uint32_t w = 0; w < WORKERS; w++) {
      for (int i = 0; i < n; i++)
        order[i] = i;
      for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((rng >> 33) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
      CHECK_EQ_INT(push_chunks(clock, w, round, bounds, order, n - 1, PD_PUSH_ACCUMULATE), -1);
      CHECK(!pd_clock_round_complete(clock));
      /* Every chunk again: duplicates. */
      CHECK_EQ_INT(push_chunks(clock, w, round, bounds, order, n - 1, PD_PUSH_DUPLICATE), -1);
      CHECK_EQ_INT(pd_clock_on_push(clock, w, round, -1, bounds[order[n - 1]],
                                    bounds[order[n - 1] + 1], err, sizeof err),
                   PD_PUSH_ACCUMULATE);
      CHECK_EQ_INT(pd_clock_round_complete(clock), w == WORKERS - 1);
    }
    pd_clock_advance(clock);
    CHECK_EQ_INT(pd_clock_version(clock), (uint64_t)round + 1);
  }
  pd_clock_free(clock);
}

static void test_bsp_invalid_arguments(void) {
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_BSP, 2, 10);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, -1, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "clock must be >= 0, got -1");
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, -3, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "clock must be >= 0, got -3");
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 2, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "worker 2 is out of range");
  CHECK_STR_CONTAINS(err, "2 workers");
  /* Errors with no buffer are still errors. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, -1, -1, 0, 10, NULL, 0), PD_PUSH_REJECT);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 7, 0, NULL, 0), -1);
  CHECK_EQ_INT(pd_clock_version(clock), 0);
  pd_clock_free(clock);
}

/* ASP: every accepted push applies at once; the version counts, per worker
 * and clock, the chunk sets that cover the shard. */
static void test_asp_apply_and_version(void) {
  enum { KEYS = 30, WORKERS = 3 };
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_ASP, WORKERS, KEYS);
  CHECK_EQ_INT(pd_clock_version(clock), 0);

  /* Worker 0 at clock 0 in three chunks, out of order. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 20, 30, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 0);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 0);
  /* Another worker in between, whole shard at once. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 5, -1, 0, 30, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 1);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 10, 20, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 2);

  /* Workers run ahead freely: no rounds, no refusal. */
  for (int64_t c = 1; c <= 5; c++) {
    CHECK_EQ_INT(pd_clock_on_push(clock, 0, c, -1, 0, 15, err, sizeof err), PD_PUSH_APPLY);
    CHECK_EQ_INT(pd_clock_on_push(clock, 0, c, -1, 15, 30, err, sizeof err), PD_PUSH_APPLY);
  }
  CHECK_EQ_INT(pd_clock_version(clock), 7);
  CHECK(!pd_clock_round_complete(clock));

  /* A partial gradient abandoned for a newer clock is applied but never
   * counts as whole. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 29, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 1, -1, 29, 30, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 7);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 1, -1, 0, 29, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 8);

  /* Pulls never wait, whatever the clock. */
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, 0, err, sizeof err), 1);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, 1000, err, sizeof err), 1);
  pd_clock_free(clock);
}

static void test_asp_duplicates(void) {
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_ASP, 2, 10);

  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 3, -1, 0, 5, err, sizeof err), PD_PUSH_APPLY);
  /* A retry of the same chunk. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 3, -1, 0, 5, err, sizeof err), PD_PUSH_DUPLICATE);
  /* An overlapping different chunk of the same clock. */
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 3, -1, 4, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "[4, 10)");
  CHECK_STR_CONTAINS(err, "[0, 5)");
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 3, -1, 5, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 1);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 3, -1, 5, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_version(clock), 1);

  /* Worker 0 moves on; its older clocks are duplicates, any range. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 4, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 2);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 3, -1, 0, 5, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 2, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, -1, 2, 3, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 4, -1, 0, 10, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_version(clock), 2);

  /* Worker 1's clocks are its own: clock 0 is new for it. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 3);
  pd_clock_free(clock);
}

static void test_asp_invalid_arguments(void) {
  char err[256] = "";
  pd_clock *clock = pd_clock_new(PD_UPDATE_ASP, 2, 10);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, -1, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "clock must be >= 0, got -1");
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, INT64_MIN, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_EQ_INT(pd_clock_version(clock), 0);
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 1, -1, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "clock must be >= 0, got -1");
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 2, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "worker 2 is out of range: the job has 2 workers");
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, UINT32_MAX, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "out of range");
  /* A rejected push leaves the worker's state alone. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(clock), 1);
  pd_clock_free(clock);
}

static pd_clock *ssp_clock(uint32_t workers, uint32_t staleness, uint64_t keys) {
  pd_clock_options o = {PD_UPDATE_SSP, workers, 0, staleness, keys};
  return pd_clock_new_with(&o);
}

/* SSP: pushes apply at once; a pull at clock c waits while the slowest
 * worker's clock (whole gradients pushed) is below c - s; the clock gap of
 * answered pulls never exceeds s; parked pulls count as blocked. */
static void test_ssp_pull_bounded_by_slowest(void) {
  enum { KEYS = 10 };
  char err[256] = "";
  pd_clock *clock = ssp_clock(2, 2, KEYS);
  CHECK(!pd_clock_has_rounds(clock));
  /* Worker 0 runs ahead: clocks 0, 1 are fine (slowest 0 >= c - 2). */
  for (int64_t c = 0; c < 3; c++) {
    CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, c, err, sizeof err), 1);
    pd_clock_on_pull(clock, c, 1);
    CHECK_EQ_INT(pd_clock_on_push(clock, 0, c, c, 0, 4, err, sizeof err), PD_PUSH_APPLY);
    CHECK_EQ_INT(pd_clock_on_push(clock, 0, c, c, 4, KEYS, err, sizeof err), PD_PUSH_APPLY);
    CHECK_EQ_INT(pd_clock_last_staleness(clock), 0);
  }
  CHECK_EQ_INT(pd_clock_version(clock), 3);
  CHECK_EQ_INT(pd_clock_slowest(clock), 0);
  /* Clock 3 is 3 ahead of worker 1 (clock 0): wait. */
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 3, err, sizeof err), 0);
  pd_clock_on_pull(clock, 3, 0);
  CHECK_EQ_INT(pd_clock_stats_get(clock)->blocked, 1);
  /* Worker 0 may not pull beyond its own pushes. */
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 4, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "worker 0 pulled clock 4 but has pushed 3 whole gradients");
  /* Worker 1's first gradient, computed on version 0, applied at version 3:
   * staleness 3; half a gradient does not move its clock. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, 0, 0, 5, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_last_staleness(clock), -1);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 3, err, sizeof err), 0);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, 0, 5, KEYS, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_last_staleness(clock), 3);
  CHECK_EQ_INT(pd_clock_slowest(clock), 1);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 3, err, sizeof err), 1);
  pd_clock_on_pull(clock, 3, 1);
  const pd_clock_stats *st = pd_clock_stats_get(clock);
  CHECK_EQ_INT(st->max_gap, 2);
  CHECK_EQ_INT(st->staleness[0], 3); /* bucket <= 0 */
  CHECK_EQ_INT(st->staleness[3], 1); /* bucket <= 4 */
  CHECK_EQ_INT(st->staleness_sum, 3);
  CHECK_EQ_INT(st->dropped, 0);
  /* Retries of older clocks are duplicates, as under ASP. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, 1, 0, 4, err, sizeof err), PD_PUSH_DUPLICATE);
  pd_clock_free(clock);
}

/* SSP with staleness 0 runs the BSP state machine. */
static void test_ssp_zero_is_bsp(void) {
  char err[256] = "";
  pd_clock *clock = ssp_clock(2, 0, 10);
  CHECK(pd_clock_has_rounds(clock));
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, 0, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 1, err, sizeof err), 0);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, 0, 0, 10, err, sizeof err), PD_PUSH_ACCUMULATE);
  CHECK(pd_clock_round_complete(clock));
  pd_clock_advance(clock);
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 0, 1, err, sizeof err), 1);
  CHECK_EQ_INT(pd_clock_stats_get(clock)->staleness[0], 2);
  pd_clock_free(clock);

  /* From a spec: ssp with staleness 0 becomes bsp; bsp keeps its backups. */
  pd_job_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.training.update = PD_UPDATE_SSP;
  pd_clock_options o = pd_clock_options_of(&spec, 3, 10);
  CHECK_EQ_INT(o.update, PD_UPDATE_BSP);
  spec.training.staleness = 4;
  o = pd_clock_options_of(&spec, 3, 10);
  CHECK_EQ_INT(o.update, PD_UPDATE_SSP);
  CHECK_EQ_INT(o.staleness, 4);
  spec.training.update = PD_UPDATE_BSP;
  spec.training.staleness = 0;
  spec.training.backup_workers = 1;
  o = pd_clock_options_of(&spec, 3, 10);
  CHECK_EQ_INT(o.backup_workers, 1);
}

/* BSP with a backup worker: 3 workers, rounds of 2. Chunks are buffered per
 * worker; the first 2 whole gradients of the round are accepted, the third is
 * dropped; a late worker's pushes for an applied round are dropped and
 * counted once per gradient; it may then push at the current round. */
static void test_backup_first_n_gradients(void) {
  enum { KEYS = 10 };
  char err[256] = "";
  pd_clock_options o = {PD_UPDATE_BSP, 3, 1, 0, KEYS};
  pd_clock *clock = pd_clock_new_with(&o);
  CHECK(pd_clock_has_rounds(clock));
  CHECK_EQ_INT(pd_clock_round_size(clock), 2);

  /* Round 0: worker 2 starts first but finishes last. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 0, 0, 0, 5, err, sizeof err), PD_PUSH_BUFFER);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, 0, 0, 5, err, sizeof err), PD_PUSH_BUFFER);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, 0, 0, 5, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, 0, 5, KEYS, err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK(!pd_clock_round_complete(clock));
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 0, 0, 0, KEYS, err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK(pd_clock_round_complete(clock));
  /* Complete, not advanced yet: the third whole gradient is dropped. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 0, 0, 5, KEYS, err, sizeof err), PD_PUSH_DROP);
  CHECK_EQ_INT(pd_clock_stats_get(clock)->dropped, 1);
  pd_clock_advance(clock);
  CHECK_EQ_INT(pd_clock_version(clock), 1);
  /* Retries of accepted or dropped gradients are duplicates. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 0, 0, 0, 5, err, sizeof err), PD_PUSH_DUPLICATE);
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 0, 0, 5, KEYS, err, sizeof err), PD_PUSH_DUPLICATE);

  /* Round 1: workers 0 and 1 are first; worker 2 starts clock 1 late. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 1, 1, 0, KEYS, err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 1, 1, 0, KEYS, err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  pd_clock_advance(clock);
  /* Pushes for round 1, now applied: dropped, one gradient counted. */
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 1, 1, 0, 3, err, sizeof err), PD_PUSH_DROP);
  CHECK_EQ_INT(pd_clock_stats_get(clock)->dropped, 1);
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 1, 1, 3, KEYS, err, sizeof err), PD_PUSH_DROP);
  CHECK_EQ_INT(pd_clock_stats_get(clock)->dropped, 2);
  /* The straggler pulls (answered at once) and skips to round 2; pushing
   * ahead of the shard is refused. */
  CHECK_EQ_INT(pd_clock_pull_ready(clock, 2, 2, err, sizeof err), 1);
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 3, 2, 0, KEYS, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "worker 2 pushed clock 3");
  CHECK_EQ_INT(pd_clock_on_push(clock, 2, 2, 2, 0, KEYS, err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK_EQ_INT(pd_clock_on_push(clock, 1, 2, 2, 0, KEYS, err, sizeof err), PD_PUSH_BUFFER_ACCEPT);
  CHECK(pd_clock_round_complete(clock));
  CHECK_EQ_INT(pd_clock_on_push(clock, 0, 2, 2, 0, KEYS, err, sizeof err), PD_PUSH_DROP);
  pd_clock_advance(clock);
  const pd_clock_stats *st = pd_clock_stats_get(clock);
  CHECK_EQ_INT(st->dropped, 3);
  CHECK_EQ_INT(st->staleness[0], 6); /* every accepted gradient was fresh */
  pd_clock_free(clock);
}

/* Issue 14: far-future clocks (10^15, INT64_MAX) are refused and change
 * nothing: the worker's correct pushes afterwards are applied, not taken for
 * retries. ASP: beyond 2^40; SSP: beyond the whole gradients pushed. */
static void test_far_future_clocks_refused(void) {
  char err[256] = "";
  const int64_t bad[] = {1000000000000000ll, INT64_MAX, PD_CLOCK_MAX + 1};
  pd_clock *asp = pd_clock_new(PD_UPDATE_ASP, 2, 10);
  for (int i = 0; i < 3; i++) {
    err[0] = '\0';
    CHECK_EQ_INT(pd_clock_on_push(asp, 0, bad[i], -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
    CHECK_STR_CONTAINS(err, "beyond the largest clock");
    CHECK_EQ_INT(pd_clock_pull_ready(asp, 0, bad[i], err, sizeof err), -1);
  }
  CHECK_EQ_INT(pd_clock_on_push(asp, 0, 0, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_on_push(asp, 0, 1, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_on_push(asp, 0, PD_CLOCK_MAX, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(asp), 3);
  pd_clock_free(asp);

  pd_clock *ssp = ssp_clock(2, 2, 10);
  for (int i = 0; i < 3; i++) {
    err[0] = '\0';
    CHECK_EQ_INT(pd_clock_on_push(ssp, 1, bad[i], -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  }
  err[0] = '\0';
  CHECK_EQ_INT(pd_clock_on_push(ssp, 1, 1, -1, 0, 10, err, sizeof err), PD_PUSH_REJECT);
  CHECK_STR_CONTAINS(err, "worker 1 pushed clock 1 but has pushed 0 whole gradients");
  CHECK_EQ_INT(pd_clock_version(ssp), 0);
  CHECK_EQ_INT(pd_clock_slowest(ssp), 0);
  /* the honest sequence goes on as if nothing had happened */
  CHECK_EQ_INT(pd_clock_on_push(ssp, 1, 0, -1, 0, 4, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_on_push(ssp, 1, 0, -1, 4, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_on_push(ssp, 1, 1, -1, 0, 10, err, sizeof err), PD_PUSH_APPLY);
  CHECK_EQ_INT(pd_clock_version(ssp), 2);
  CHECK_EQ_INT(pd_clock_pull_ready(ssp, 1, 2, err, sizeof err), 1);
  pd_clock_free(ssp);
}

int main(int argc, char **argv) {
  PD_RUN(test_bsp_round_needs_every_key_of_every_worker);
  PD_RUN(test_bsp_single_key_and_whole_shard);
  PD_RUN(test_bsp_pull_waits_for_round);
  PD_RUN(test_bsp_push_ahead_refused_old_duplicate);
  PD_RUN(test_bsp_duplicate_and_overlap);
  PD_RUN(test_bsp_many_chunks);
  PD_RUN(test_bsp_invalid_arguments);
  PD_RUN(test_asp_apply_and_version);
  PD_RUN(test_asp_duplicates);
  PD_RUN(test_asp_invalid_arguments);
  PD_RUN(test_ssp_pull_bounded_by_slowest);
  PD_RUN(test_ssp_zero_is_bsp);
  PD_RUN(test_backup_first_n_gradients);
  PD_RUN(test_far_future_clocks_refused);
  PD_TEST_DONE();
}
