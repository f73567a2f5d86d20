/* The coordinator's read-only web dashboard (the `dashboard` setting): a
 * page of plain HTML, JavaScript and SVG compiled into the binary (no
 * network fetches), served at /dashboard on the metrics port, which polls a
 * JSON snapshot of the jobs and nodes at /dashboard/state. The snapshot is
 * made on the coordinator's loop and published (pd_metrics_publish), so the
 * HTTP thread never touches the coordinator's state. */
#ifndef PANDO_COORD_DASHBOARD_H
#define PANDO_COORD_DASHBOARD_H

#include <stddef.h>

#include "jobs.h"
#include "registry.h"

/* Publishes the page (once, at start-up). */
void pd_dashboard_publish_page(void);
/* Publishes a snapshot of `jobs` and the nodes of `reg` at `now`. */
void pd_dashboard_publish_state(pd_jobs *jobs, pd_registry *reg, double now);
/* The snapshot as JSON (malloc'd, caller frees; *len its length). */
char *pd_dashboard_state_json(pd_jobs *jobs, pd_registry *reg, double now, size_t *len);

#endif
