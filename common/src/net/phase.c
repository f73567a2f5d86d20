/* Phase counters and their PhaseStat messages; see phase.h. */
#include "pando/phase.h"

#include "pando/util.h"

uint64_t pd_phase_end(pd_phase_stat *phase, uint64_t start_ns) {
  uint64_t now = pd_now_ns();
  phase->count++;
  phase->ns += now - start_ns;
  return now;
}

size_t pd_phase_fill(const pd_phase_stat *stats, const char *const *names, size_t n,
                     Pando__V1__PhaseStat *out, Pando__V1__PhaseStat **ptrs) {
  size_t filled = 0;
  for (size_t i = 0; i < n; i++) {
    if (stats[i].count == 0)
      continue;
    Pando__V1__PhaseStat *p = &out[filled];
    pando__v1__phase_stat__init(p);
    p->phase = (char *)names[i];
    p->count = stats[i].count;
    p->total_ns = stats[i].ns;
    ptrs[filled++] = p;
  }
  return filled;
}
