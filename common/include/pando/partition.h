/* Partitions of a central labelled data set over simulated federated
 * devices (pando-worker --simulate), all seeded:
 *  - iid: the rows shuffled and cut into equal parts (sizes differ by <= 1);
 *  - dirichlet (Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data
 *    Distribution for Federated Visual Classification", 2019): every device
 *    gets the same number of rows (as iid) and draws its label mix
 *    q ~ Dir(alpha p), p the labels' share of the data set; rows are drawn
 *    without replacement, one per device in turn, each from the classes by
 *    the device's q among those that still have rows (a class that runs out
 *    is left out and q renormalised). Large alpha approaches iid; small
 *    alpha gives each device few labels;
 *  - shards (McMahan et al., AISTATS 2017, "pathological non-IID"): the rows
 *    sorted by label (stable), cut into devices x shards_per_device shards
 *    of equal size (the last rows % shards rows go to the first shards), and
 *    each device gets shards_per_device shards picked at random.
 * Every row goes to exactly one device. */
#ifndef PANDO_PARTITION_H
#define PANDO_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "pando/spec.h"

/* Device d holds the rows index[offset[d] .. offset[d + 1]) of the data set. */
typedef struct pd_device_partition {
  uint32_t devices; /* number of devices */
  uint64_t *offset; /* devices + 1 offsets into index */
  uint64_t *index;  /* offset[devices] row numbers, grouped by device */
} pd_device_partition;

/* Splits `rows` rows with `labels` (classes 0..255; may be NULL for iid)
 * over `devices` devices by `scheme` (iid, dirichlet or shards) with
 * dirichlet's `alpha`, shards' `shards_per_device` and `seed`, into `out`
 * (caller's storage; free with pd_device_partition_close). Returns 0, or
 * -PD_EINVAL_SPEC with a message in `err` when the split is impossible (more
 * devices than rows, more shards than rows, labels missing). */
int pd_device_partition_init(pd_device_partition *out, const uint8_t *labels, uint64_t rows,
                             uint32_t devices, enum pd_partition scheme, double alpha,
                             int shards_per_device, uint64_t seed, char *err, size_t errlen);
void pd_device_partition_close(pd_device_partition *p);

/* The rows of device d. */
static inline uint64_t pd_device_partition_rows(const pd_device_partition *p, uint32_t d) {
  return p->offset[d + 1] - p->offset[d];
}

/* A seeded sample of the gamma distribution Gamma(shape, 1) (Marsaglia and
 * Tsang 2000; shape < 1 by the boost U^(1/shape)), from the splitmix64
 * generator *state. Used for the Dirichlet draws; exposed for its test. */
double pd_gamma_sample(uint64_t *state, double shape);

#endif
