/* pandoctl plot: the learning curves of one or more jobs as a picture, and
 * Drawn with cairo (Debian
 * libcairo2-dev), which writes both SVG and PNG from one drawing. */
#ifndef PANDO_CTL_PLOT_H
#define PANDO_CTL_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "pando.pb-c.h"

#define PD_CTL_PLOT_MAX_JOBS 10

/* Draws the `n` jobs' curves (1..PD_CTL_PLOT_MAX_JOBS) into `path`, an SVG
 * or PNG file by its extension: four panels, loss and test accuracy against
 * the epoch (the round, for federated jobs) and against the seconds since
 * the job started, one colour per job with a legend. A data-centre job's
 * loss is its training loss of each epoch, a federated job's the test loss
 * of each evaluated round. A line on `out` says what was written. Returns 0,
 * or -1 after a message on `errout` (a bad extension, no history at all, a
 * write error). */
int pd_ctl_plot(const Pando__V1__JobStatus *const *jobs, size_t n, const char *path, FILE *out,
                FILE *errout);

#endif
