/* The decisions of a job's recovery; see recovery.h. */
#include "recovery.h"

int pd_recovery_possible(const pd_job_spec *spec) { return pd_job_spec_checkpoints(spec); }

uint64_t pd_recovery_cut(const uint64_t *answers, size_t n, uint64_t target, int *agreed) {
  *agreed = 0;
  if (n == 0)
    return 0;
  uint64_t cut = answers[0];
  for (size_t i = 1; i < n; i++)
    if (answers[i] < cut)
      cut = answers[i];
  int all = cut > 0 || target == 0; /* 0 from refusals: the shards are still to be reset */
  for (size_t i = 0; i < n; i++)
    all &= answers[i] == cut;
  *agreed = all;
  return cut;
}
