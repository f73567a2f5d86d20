/* The coordinator's dashboard; see dashboard.h. */
#include "dashboard.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pando/metrics.h"
#include "pando/util.h"
#include "rounds.h"

typedef struct out {
  char *buf;
  size_t len, cap;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 256);
    o->buf = pd_xrealloc(o->buf, o->cap);
  }
}

/* A JSON string: quotes, backslashes and every control character escaped
 * (job names and messages come from users). */
static void put_string(out *o, const char *s) {
  put(o, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\')
      put(o, "\\%c", *c);
    else if (*c < 0x20 || *c == 0x7f)
      put(o, "\\u%04x", *c);
    else if (*c == '<') /* never "</script>" or markup, whatever the consumer */
      put(o, "\\u003c");
    else
      put(o, "%c", *c);
  }
  put(o, "\"");
}

/* A number, or null for NaN and infinities (not JSON). */
static void put_number(out *o, double v) {
  if (isfinite(v))
    put(o, "%.6g", v);
  else
    put(o, "null");
}

static const char *role_name(Pando__V1__Role role) {
  switch (role) {
  case PANDO__V1__ROLE__ROLE_SERVER:
    return "server";
  case PANDO__V1__ROLE__ROLE_WORKER:
    return "worker";
  case PANDO__V1__ROLE__ROLE_SELECTOR:
    return "selector";
  default:
    return "unknown";
  }
}

char *pd_dashboard_state_json(pd_jobs *jobs, pd_registry *reg, double now, size_t *len) {
  out o = {pd_xmalloc(4096), 0, 4096};
  o.buf[0] = '\0';
  put(&o, "{\"jobs\":[");
  for (size_t k = 0; k < pd_jobs_count(jobs); k++) {
    const pd_job *j = pd_jobs_at(jobs, k);
    uint32_t epoch = UINT32_MAX;
    uint64_t step = 0;
    double loss = 0, sps = 0;
    for (uint32_t w = 0; w < j->nworkers; w++) {
      const pd_job_worker *p = &j->workers[w];
      if (p->epoch < epoch || (p->epoch == epoch && p->step < step))
        epoch = p->epoch, step = p->step;
      loss += p->loss / j->nworkers;
      sps += p->done ? 0 : p->samples_per_sec;
    }
    put(&o, "%s{\"id\":", k ? "," : "");
    put_string(&o, j->id);
    put(&o, ",\"name\":");
    put_string(&o, j->spec.name);
    put(&o, ",\"state\":");
    put_string(&o, pd_job_state_name(j->state));
    put(&o, ",\"message\":");
    put_string(&o, j->message);
    put(&o, ",\"federated\":%s,\"epochs\":%d,\"steps_per_epoch\":%u,\"epoch\":%u,\"step\":%llu",
        pd_job_federated(j) ? "true" : "false", j->spec.training.epochs, j->steps_per_epoch,
        epoch == UINT32_MAX ? 0 : epoch, (unsigned long long)step);
    put(&o, ",\"loss\":");
    put_number(&o, j->nworkers ? loss : NAN);
    put(&o, ",\"samples_per_sec\":");
    put_number(&o, sps);
    put(&o, ",\"elapsed\":");
    put_number(&o, j->started > 0 ? (pd_job_state_final(j->state) ? j->finished : now) - j->started
                                  : 0);
    put(&o, ",\"servers\":%u,\"workers\":%u,\"accuracy\":", j->nservers, j->nworkers);
    put_number(&o, j->rounds     ? pd_rounds_last_accuracy(j->rounds)
                   : j->nhistory ? j->history[j->nhistory - 1].test_accuracy
                                 : NAN);
    put(&o, ",\"history\":[");
    for (size_t h = 0; h < j->nhistory; h++) {
      const Pando__V1__EpochRecord *e = &j->history[h];
      put(&o, "%s{\"epoch\":%u,\"loss\":", h ? "," : "", e->epoch);
      put_number(&o, e->train_loss);
      put(&o, ",\"accuracy\":");
      put_number(&o, e->test_accuracy);
      put(&o, ",\"seconds\":");
      put_number(&o, e->seconds);
      put(&o, "}");
    }
    put(&o, "]}");
  }
  put(&o, "],\"nodes\":[");
  for (size_t i = 0; i < pd_registry_count(reg); i++) {
    const pd_node *n = pd_registry_at(reg, i);
    put(&o, "%s{\"id\":%llu,\"role\":\"%s\",\"name\":", i ? "," : "", (unsigned long long)n->id,
        role_name(n->role));
    put_string(&o, n->name);
    put(&o, ",\"address\":");
    put_string(&o, n->address);
    put(&o, ",\"alive\":%s,\"last_seen\":", n->alive ? "true" : "false");
    put_number(&o, now - n->last_seen);
    put(&o, ",\"job\":");
    put_string(&o, n->job);
    put(&o, "}");
  }
  put(&o, "]}");
  *len = o.len;
  return o.buf;
}

void pd_dashboard_publish_state(pd_jobs *jobs, pd_registry *reg, double now) {
  size_t len;
  char *json = pd_dashboard_state_json(jobs, reg, now, &len);
  pd_metrics_publish("/dashboard/state", "application/json", json, len);
  free(json);
}

/* The page: it polls /dashboard/state every second and redraws. Each job
 * row has an SVG of its loss as the coordinator reported it at each poll
 * (data-points: how many), and of its test accuracy per epoch. */
static const char page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pando</title>\n"
    "<style>\n"
    "body{font:14px sans-serif;margin:24px;color:#222;background:#fafafa}\n"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px}\n"
    "table{border-collapse:collapse;background:#fff}\n"
    "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}\n"
    ".SUCCEEDED{color:#2ca02c}.FAILED{color:#d62728}.RUNNING{color:#1f77b4}"
    ".CANCELLED{color:#7f7f7f}.dead{color:#d62728}\n"
    "svg{background:#fff;border:1px solid #ccc}\n"
    "</style></head><body>\n"
    "<h1>Pando <span id=\"updated\"></span></h1>\n"
    "<h2>Jobs</h2>\n"
    "<table id=\"jobs\"><thead><tr><th>job</th><th>state</th><th>progress</th><th>loss</th>"
    "<th>test accuracy</th><th>loss while training</th><th>accuracy per epoch</th></tr></thead>"
    "<tbody></tbody></table>\n"
    "<h2>Nodes</h2>\n"
    "<table id=\"nodes\"><thead><tr><th>node</th><th>role</th><th>name</th><th>address</th>"
    "<th>health</th><th>job</th></tr></thead><tbody></tbody></table>\n"
    "<script>\n"
    "'use strict';\n"
    "const live = {};\n"
    "function el(tag, attrs, text) {\n"
    "  const e = document.createElementNS(tag === 'svg' || tag === 'polyline' ?\n"
    "    'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);\n"
    "  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);\n"
    "  if (text !== undefined) e.textContent = text;\n"
    "  return e;\n"
    "}\n"
    "function curve(cls, job, pts, color) {\n"
    "  const w = 220, h = 60, svg = el('svg', {width: w, height: h, class: cls,\n"
    "    'data-job': job, 'data-points': pts.length});\n"
    "  if (pts.length === 0) return svg;\n"
    "  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);\n"
    "  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = "
    "Math.max(...ys);\n"
    "  const sx = x => 4 + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (w - 8);\n"
    "  const sy = y => h - 4 - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * (h - 8);\n"
    "  svg.appendChild(el('polyline', {fill: 'none', stroke: color, 'stroke-width': 2,\n"
    "    points: pts.map(p => sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1)).join(' ')}));\n"
    "  return svg;\n"
    "}\n"
    "function fmt(v, d) { return v === null || v === undefined ? '-' : v.toFixed(d); }\n"
    "function render(s) {\n"
    "  const tb = document.querySelector('#jobs tbody');\n"
    "  tb.replaceChildren();\n"
    "  for (const j of s.jobs) {\n"
    "    const pts = live[j.id] = live[j.id] || [];\n"
    "    if (j.state === 'RUNNING' && j.loss !== null) pts.push([j.elapsed, j.loss]);\n"
    "    const tr = el('tr', {id: 'job-' + j.id, 'data-state': j.state});\n"
    "    tr.appendChild(el('td', {}, j.id));\n"
    "    tr.appendChild(el('td', {class: j.state}, j.state));\n"
    "    tr.appendChild(el('td', {}, j.federated ? j.message :\n"
    "      'epoch ' + j.epoch + '/' + j.epochs + ', step ' + j.step + '/' + j.steps_per_epoch));\n"
    "    tr.appendChild(el('td', {}, fmt(j.loss, 4)));\n"
    "    tr.appendChild(el('td', {}, fmt(j.accuracy, 4)));\n"
    "    const a = el('td'); a.appendChild(curve('live', j.id, pts, '#1f77b4'));\n"
    "    tr.appendChild(a);\n"
    "    const b = el('td'); b.appendChild(curve('epochs', j.id,\n"
    "      j.history.filter(e => e.accuracy !== null).map(e => [e.epoch, e.accuracy]), "
    "'#ff7f0e'));\n"
    "    tr.appendChild(b);\n"
    "    tb.appendChild(tr);\n"
    "  }\n"
    "  const nb = document.querySelector('#nodes tbody');\n"
    "  nb.replaceChildren();\n"
    "  for (const n of s.nodes) {\n"
    "    const tr = el('tr', {'data-role': n.role});\n"
    "    for (const v of [n.id, n.role, n.name, n.address]) tr.appendChild(el('td', {}, v));\n"
    "    tr.appendChild(el('td', {class: n.alive ? 'alive' : 'dead'}, n.alive ?\n"
    "      'alive, seen ' + n.last_seen.toFixed(1) + ' s ago' : 'dead'));\n"
    "    tr.appendChild(el('td', {}, n.job || '-'));\n"
    "    nb.appendChild(tr);\n"
    "  }\n"
    "  document.getElementById('updated').textContent =\n"
    "    '(' + s.jobs.length + ' jobs, ' + s.nodes.length + ' nodes)';\n"
    "}\n"
    "async function poll() {\n"
    "  try {\n"
    "    const r = await fetch('/dashboard/state', {cache: 'no-store'});\n"
    "    if (r.ok) render(await r.json());\n"
    "  } catch (e) {\n"
    "    document.getElementById('updated').textContent = '(coordinator unreachable)';\n"
    "  }\n"
    "  setTimeout(poll, 1000);\n"
    "}\n"
    "poll();\n"
    "</script></body></html>\n";

void pd_dashboard_publish_page(void) {
  pd_metrics_publish("/dashboard", "text/html; charset=utf-8", page, sizeof page - 1);
}
