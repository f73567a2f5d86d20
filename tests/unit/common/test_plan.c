/* Unit tests of the planning functions: key ranges of the servers, the
 * partitioning schemes (coverage and disjointness checked exactly), the
 * per-epoch shuffle, and the batches every worker runs over its partition in
 * an epoch. */
#include "pando/plan.h"

#include <stdint.h>
#include <string.h>

#include "../../test.h"
#include "pando/dataset.h"

/* Contiguous ranges covering [0, keys) in order, sizes within one key of
 * each other, larger ones first. Returns 0 when all holds. */
static int check_shards(uint64_t keys, uint32_t servers) {
  uint64_t *begin = malloc(servers * sizeof *begin), *end = malloc(servers * sizeof *end);
  int bad = 0;
  pd_plan_shards(keys, servers, begin, end);
  uint64_t min = UINT64_MAX, max = 0;
  for (uint32_t i = 0; i < servers; i++) {
    uint64_t size = end[i] - begin[i];
    if (begin[i] != (i == 0 ? 0 : end[i - 1]) || end[i] <= begin[i])
      bad = 1;
    if (i > 0 && size > end[i - 1] - begin[i - 1])
      bad = 1; /* sizes never grow */
    min = size < min ? size : min;
    max = size > max ? size : max;
  }
  if (end[servers - 1] != keys || max - min > 1 || min != keys / servers)
    bad = 1;
  if (bad)
    fprintf(stderr, "  pd_plan_shards(%llu, %u) is wrong\n", (unsigned long long)keys, servers);
  free(begin);
  free(end);
  return bad;
}

static void test_shards(void) {
  for (uint64_t keys = 1; keys <= 200; keys++)
    for (uint32_t servers = 1; servers <= keys && servers <= 40; servers++)
      CHECK_EQ_INT(check_shards(keys, servers), 0);
  /* M == K: one key each. */
  for (uint32_t k = 1; k <= 300; k++)
    CHECK_EQ_INT(check_shards(k, k), 0);
  /* Large key spaces. */
  const uint64_t big[] = {7850, 203530, 1ull << 32, (1ull << 32) + 7, 1ull << 40, UINT64_MAX / 3};
  const uint32_t servers[] = {1, 2, 3, 7, 64, 1000, 1024};
  for (int k = 0; k < 6; k++)
    for (int s = 0; s < 7; s++)
      CHECK_EQ_INT(check_shards(big[k], servers[s]), 0);

  uint64_t begin[3], end[3];
  pd_plan_shards(10, 3, begin, end);
  CHECK(begin[0] == 0 && end[0] == 4 && begin[1] == 4 && end[1] == 7 && begin[2] == 7 &&
        end[2] == 10);
}

static void test_steps_per_epoch(void) {
  /* ceil(smallest partition / batch_size) */
  CHECK_EQ_INT(pd_plan_partition_steps(60000, 1, PD_PARTITION_DISJOINT_CONTIGUOUS, 64), 938);
  CHECK_EQ_INT(pd_plan_partition_steps(60000, 4, PD_PARTITION_DISJOINT_CONTIGUOUS, 64),
               235); /* 15000 / 64 */
  CHECK_EQ_INT(pd_plan_partition_steps(60000, 7, PD_PARTITION_DISJOINT_CONTIGUOUS, 64),
               134); /* 8571 / 64 */
  CHECK_EQ_INT(pd_plan_partition_steps(10, 3, PD_PARTITION_DISJOINT_CONTIGUOUS, 3),
               1); /* 3, 3, 4 rows */
  CHECK_EQ_INT(pd_plan_partition_steps(10, 3, PD_PARTITION_DISJOINT_CONTIGUOUS, 2), 2);
  CHECK_EQ_INT(pd_plan_partition_steps(5, 5, PD_PARTITION_DISJOINT_CONTIGUOUS, 100), 1);
  CHECK_EQ_INT(pd_plan_partition_steps(128, 1, PD_PARTITION_DISJOINT_CONTIGUOUS, 64), 2);
  CHECK_EQ_INT(pd_plan_partition_steps(129, 1, PD_PARTITION_DISJOINT_CONTIGUOUS, 64), 3);
  CHECK_EQ_INT(pd_plan_partition_steps(1, 1, PD_PARTITION_DISJOINT_CONTIGUOUS, 1), 1);
  CHECK_EQ_INT(pd_plan_partition_steps(1ull << 40, 1024, PD_PARTITION_DISJOINT_CONTIGUOUS, 65536),
               16384);
}

/* For every worker of a (rows, workers, batch_size) job: the batches of an
 * epoch are contiguous, cover the worker's partition exactly once in order,
 * every batch but the last has batch_size rows, and the last one has between
 * 1 and batch_size + 1 rows (partitions differ by at most one row). All
 * workers run the same number of steps. Returns 0 when all holds. */
static int check_epoch(uint64_t rows, uint32_t workers, uint32_t batch_size) {
  uint32_t steps =
      pd_plan_partition_steps(rows, workers, PD_PARTITION_DISJOINT_CONTIGUOUS, batch_size);
  if (steps == 0)
    return 1;
  for (uint32_t rank = 0; rank < workers; rank++) {
    uint64_t part_begin, part_end;
    pd_partition_contiguous(rows, workers, rank, &part_begin, &part_end);
    uint64_t part = part_end - part_begin, at = 0;
    for (uint32_t step = 0; step < steps; step++) {
      uint64_t begin, end;
      pd_plan_batch(part, steps, batch_size, step, &begin, &end);
      uint64_t size = end - begin;
      int last = step + 1 == steps;
      if (begin != at || end <= begin || end > part)
        return 1;
      if (!last && size != batch_size)
        return 1;
      if (last && (size > (uint64_t)batch_size + 1 || size >= (uint64_t)batch_size + workers))
        return 1;
      at = end;
    }
    if (at != part)
      return 1; /* rows left over */
  }
  return 0;
}

static void test_batches_cover_partitions(void) {
  for (uint64_t rows = 1; rows <= 120; rows++)
    for (uint32_t workers = 1; workers <= rows && workers <= 12; workers++)
      for (uint32_t batch = 1; batch <= 25; batch++) {
        int bad = check_epoch(rows, workers, batch);
        if (bad)
          fprintf(stderr, "  rows %llu, workers %u, batch %u\n", (unsigned long long)rows, workers,
                  batch);
        CHECK_EQ_INT(bad, 0);
      }
  /* Realistic sizes: Fashion-MNIST and friends. */
  const uint64_t rows[] = {60000, 10000, 50000, 1281167};
  const uint32_t workers[] = {1, 2, 3, 4, 7, 16, 64, 100};
  const uint32_t batches[] = {1, 32, 64, 100, 128, 1000, 65536};
  for (int r = 0; r < 4; r++)
    for (int w = 0; w < 8; w++)
      for (int b = 0; b < 7; b++)
        CHECK_EQ_INT(check_epoch(rows[r], workers[w], batches[b]), 0);
}

/* Partitions themselves: disjoint, in rank order, covering every row, the
 * first rows % workers one row larger. */
static void test_partitions(void) {
  for (uint64_t rows = 1; rows <= 100; rows++)
    for (uint32_t workers = 1; workers <= rows; workers++) {
      uint64_t at = 0;
      for (uint32_t rank = 0; rank < workers; rank++) {
        uint64_t begin, end;
        pd_partition_contiguous(rows, workers, rank, &begin, &end);
        CHECK_EQ_INT(begin, at);
        CHECK_EQ_INT(end - begin, rows / workers + (rank < rows % workers ? 1 : 0));
        at = end;
      }
      CHECK_EQ_INT(at, rows);
    }
}

static void test_batch_examples(void) {
  uint64_t begin, end;
  /* 10 rows in batches of 4: 3 steps, the last takes 2. */
  pd_plan_batch(10, 3, 4, 0, &begin, &end);
  CHECK(begin == 0 && end == 4);
  pd_plan_batch(10, 3, 4, 2, &begin, &end);
  CHECK(begin == 8 && end == 10);
  /* 9 rows where other workers have 8 (batch 4, 2 steps): the last batch
   * takes the extra row. */
  pd_plan_batch(9, 2, 4, 1, &begin, &end);
  CHECK(begin == 4 && end == 9);
  /* One step: everything. */
  pd_plan_batch(7, 1, 100, 0, &begin, &end);
  CHECK(begin == 0 && end == 7);
}

static const enum pd_partition schemes[] = {
    PD_PARTITION_DISJOINT_CONTIGUOUS, PD_PARTITION_DISJOINT_ROUND_ROBIN,
    PD_PARTITION_DISJOINT_RANDOM, PD_PARTITION_OVERLAP_RESHUFFLE};

/* Every worker's index list of one (rows, workers, scheme, seed), in one
 * array: worker w's list is at index + start[w], size[w] long. */
typedef struct plan {
  uint64_t *index, *start, *size, total;
} plan;

static plan make_plan(uint64_t rows, uint32_t workers, enum pd_partition scheme, uint64_t seed) {
  plan p;
  p.start = malloc(workers * sizeof *p.start);
  p.size = malloc(workers * sizeof *p.size);
  p.total = 0;
  for (uint32_t w = 0; w < workers; w++) {
    p.size[w] = pd_plan_partition_size(rows, workers, w, scheme);
    p.start[w] = p.total;
    p.total += p.size[w];
  }
  p.index = malloc((p.total ? p.total : 1) * sizeof *p.index);
  for (uint32_t w = 0; w < workers; w++)
    pd_plan_partition(rows, workers, w, scheme, seed, p.index + p.start[w]);
  return p;
}

static void free_plan(plan *p) {
  free(p->index);
  free(p->start);
  free(p->size);
}

/* Disjoint schemes: every row exactly once over all workers, sizes within one
 * of each other (the first rows % workers one larger). Overlap: every row
 * exactly once within each worker. Returns 0 when all holds. */
static int check_coverage(uint64_t rows, uint32_t workers, enum pd_partition scheme,
                          uint64_t seed) {
  plan p = make_plan(rows, workers, scheme, seed);
  int *seen = calloc(rows ? rows : 1, sizeof *seen), bad = 0;
  int overlap = scheme == PD_PARTITION_OVERLAP_RESHUFFLE;
  for (uint32_t w = 0; w < workers && !bad; w++) {
    uint64_t want = overlap ? rows : rows / workers + (w < rows % workers);
    if (p.size[w] != want)
      bad = 1;
    if (overlap)
      memset(seen, 0, (rows ? rows : 1) * sizeof *seen);
    for (uint64_t i = 0; i < p.size[w] && !bad; i++) {
      uint64_t row = p.index[p.start[w] + i];
      if (row >= rows || seen[row]++)
        bad = 1;
    }
    if (overlap)
      for (uint64_t r = 0; r < rows; r++)
        bad |= seen[r] != 1;
  }
  if (!overlap)
    for (uint64_t r = 0; r < rows; r++)
      bad |= seen[r] != 1;
  if (bad)
    fprintf(stderr, "  %s: rows %llu, workers %u, seed %llu: bad coverage\n",
            pd_partition_name(scheme), (unsigned long long)rows, workers, (unsigned long long)seed);
  free(seen);
  free_plan(&p);
  return bad;
}

static void test_partition_coverage(void) {
  for (size_t s = 0; s < 4; s++) {
    for (uint64_t rows = 0; rows <= 70; rows++)
      for (uint32_t workers = 1; workers <= 9; workers++)
        CHECK_EQ_INT(check_coverage(rows, workers, schemes[s], rows * 31 + workers), 0);
    CHECK_EQ_INT(check_coverage(60000, 7, schemes[s], 42), 0);
    CHECK_EQ_INT(check_coverage(100003, 16, schemes[s], 1), 0);
    CHECK_EQ_INT(check_coverage(1000, 1000, schemes[s], 5), 0);
  }
}

static void test_partition_exact(void) {
  uint64_t index[10];
  /* Contiguous: pd_partition_contiguous's rows, in order. */
  pd_plan_partition(10, 3, 1, PD_PARTITION_DISJOINT_CONTIGUOUS, 99, index);
  CHECK(index[0] == 4 && index[1] == 5 && index[2] == 6);
  /* Round robin: row i goes to worker i % workers. */
  pd_plan_partition(10, 3, 0, PD_PARTITION_DISJOINT_ROUND_ROBIN, 99, index);
  CHECK(index[0] == 0 && index[1] == 3 && index[2] == 6 && index[3] == 9);
  pd_plan_partition(10, 3, 2, PD_PARTITION_DISJOINT_ROUND_ROBIN, 99, index);
  CHECK(index[0] == 2 && index[1] == 5 && index[2] == 8);
  CHECK_EQ_INT(pd_plan_partition_size(10, 3, 0, PD_PARTITION_DISJOINT_ROUND_ROBIN), 4);
  CHECK_EQ_INT(pd_plan_partition_size(10, 3, 2, PD_PARTITION_DISJOINT_ROUND_ROBIN), 3);
  CHECK_EQ_INT(pd_plan_partition_size(10, 3, 2, PD_PARTITION_OVERLAP_RESHUFFLE), 10);
  /* Random: contiguous parts of one permutation, the same for every worker. */
  uint64_t perm[10];
  pd_plan_partition(10, 1, 0, PD_PARTITION_DISJOINT_RANDOM, 7, perm);
  pd_plan_partition(10, 3, 1, PD_PARTITION_DISJOINT_RANDOM, 7, index);
  CHECK(memcmp(index, perm + 4, 3 * sizeof *index) == 0);
  pd_plan_partition(10, 3, 2, PD_PARTITION_DISJOINT_RANDOM, 7, index);
  CHECK(memcmp(index, perm + 7, 3 * sizeof *index) == 0);
}

/* The same arguments give the same lists; another seed (or rank, for
 * overlap) another order. */
static void test_partition_seeds(void) {
  const uint64_t rows = 1000;
  for (size_t s = 0; s < 4; s++) {
    plan a = make_plan(rows, 4, schemes[s], 1), b = make_plan(rows, 4, schemes[s], 1);
    plan c = make_plan(rows, 4, schemes[s], 2);
    CHECK(memcmp(a.index, b.index, a.total * sizeof *a.index) == 0);
    int seeded =
        schemes[s] == PD_PARTITION_DISJOINT_RANDOM || schemes[s] == PD_PARTITION_OVERLAP_RESHUFFLE;
    int same = memcmp(a.index, c.index, a.total * sizeof *a.index) == 0;
    CHECK(same == !seeded);
    if (schemes[s] == PD_PARTITION_OVERLAP_RESHUFFLE) {
      CHECK(memcmp(a.index, a.index + rows, rows * sizeof *a.index) != 0); /* ranks differ */
      int ordered = 1;
      for (uint64_t i = 0; i < rows; i++)
        ordered &= a.index[i] == i;
      CHECK(!ordered);
    }
    if (schemes[s] == PD_PARTITION_DISJOINT_RANDOM) {
      int ordered = 1; /* not the contiguous split */
      for (uint64_t i = 0; i < rows / 4; i++)
        ordered &= a.index[i] == i;
      CHECK(!ordered);
    }
    free_plan(&a);
    free_plan(&b);
    free_plan(&c);
  }
}

static void test_shuffle(void) {
  enum { N = 500 };
  uint64_t base[N], a[N], b[N];
  for (uint64_t i = 0; i < N; i++)
    base[i] = i * 3 + 1;
  memcpy(a, base, sizeof a);
  memcpy(b, base, sizeof b);
  pd_plan_shuffle(a, N, 9, 2, 5);
  pd_plan_shuffle(b, N, 9, 2, 5);
  CHECK(memcmp(a, b, sizeof a) == 0); /* deterministic */
  CHECK(memcmp(a, base, sizeof a) != 0);
  int seen[3 * N + 1] = {0}; /* a permutation of the same entries */
  for (int i = 0; i < N; i++)
    CHECK(a[i] % 3 == 1 && seen[a[i]]++ == 0);
  /* Another epoch, rank or seed: another order. */
  const uint64_t args[][3] = {{9, 2, 6}, {9, 3, 5}, {10, 2, 5}};
  for (int k = 0; k < 3; k++) {
    memcpy(b, base, sizeof b);
    pd_plan_shuffle(b, N, args[k][0], (uint32_t)args[k][1], (uint32_t)args[k][2]);
    CHECK(memcmp(a, b, sizeof a) != 0);
  }
  pd_plan_shuffle(a, 0, 1, 1, 1); /* nothing to do */
  pd_plan_shuffle(a, 1, 1, 1, 1);
}

static void test_partition_steps(void) {
  /* ceil(smallest partition / batch_size) */
  CHECK_EQ_INT(pd_plan_partition_steps(10, 3, PD_PARTITION_DISJOINT_ROUND_ROBIN, 2), 2);
  CHECK_EQ_INT(pd_plan_partition_steps(10, 3, PD_PARTITION_DISJOINT_RANDOM, 3), 1);
  CHECK_EQ_INT(pd_plan_partition_steps(10, 3, PD_PARTITION_OVERLAP_RESHUFFLE, 3), 4);
  CHECK_EQ_INT(pd_plan_partition_steps(60000, 4, PD_PARTITION_OVERLAP_RESHUFFLE, 64), 938);
  CHECK_EQ_INT(pd_plan_partition_steps(60000, 7, PD_PARTITION_DISJOINT_CONTIGUOUS, 64), 134);
  /* Every scheme: batches over each worker's list cover it exactly once, and
   * no batch holds more than batch_size + 1 rows. */
  for (size_t s = 0; s < 4; s++)
    for (uint64_t rows = 1; rows <= 60; rows++)
      for (uint32_t workers = 1; workers <= rows && workers <= 7; workers++)
        for (uint32_t batch = 1; batch <= 13; batch++) {
          uint32_t steps = pd_plan_partition_steps(rows, workers, schemes[s], batch);
          CHECK(steps >= 1);
          for (uint32_t w = 0; w < workers; w++) {
            uint64_t size = pd_plan_partition_size(rows, workers, w, schemes[s]), at = 0;
            for (uint32_t step = 0; step < steps; step++) {
              uint64_t b, e;
              pd_plan_batch(size, steps, batch, step, &b, &e);
              CHECK(b == at && e > b && e - b <= (uint64_t)batch + 1);
              at = e;
            }
            CHECK_EQ_INT(at, size);
          }
        }
}

int main(int argc, char **argv) {
  PD_RUN(test_shards);
  PD_RUN(test_steps_per_epoch);
  PD_RUN(test_partitions);
  PD_RUN(test_batches_cover_partitions);
  PD_RUN(test_batch_examples);
  PD_RUN(test_partition_coverage);
  PD_RUN(test_partition_exact);
  PD_RUN(test_partition_seeds);
  PD_RUN(test_shuffle);
  PD_RUN(test_partition_steps);
  PD_TEST_DONE();
}
