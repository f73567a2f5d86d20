/* pandoctl plot and the status sparkline; see plot.h. cairo draws once and
 * writes SVG or PNG, with real text and anti-aliasing: what a hand-written
 * SVG writer (tools/strategies_plot.py's approach) cannot give for PNG. */
#include "plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pando/util.h"

enum { WIDTH = 1200, HEIGHT = 860 };

/* One job's curve points. */
typedef struct series {
  const char *label; /* the job id */
  size_t n;
  double *index, *seconds, *loss, *accuracy;
  int federated;
} series;

/* The Tableau 10 palette: distinct for the colour-blind as well. */
static const double palette[PD_CTL_PLOT_MAX_JOBS][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

static void series_of(const Pando__V1__JobStatus *st, series *s) {
  memset(s, 0, sizeof *s);
  s->label = st->job;
  size_t cap = st->n_history + st->n_round_history + 1;
  s->index = pd_xcalloc(cap, sizeof *s->index);
  s->seconds = pd_xcalloc(cap, sizeof *s->seconds);
  s->loss = pd_xcalloc(cap, sizeof *s->loss);
  s->accuracy = pd_xcalloc(cap, sizeof *s->accuracy);
  for (size_t i = 0; i < st->n_history; i++) {
    const Pando__V1__EpochRecord *e = st->history[i];
    s->index[s->n] = e->epoch;
    s->seconds[s->n] = e->seconds;
    s->loss[s->n] = e->train_loss;
    s->accuracy[s->n] = e->test_accuracy;
    s->n++;
  }
  for (size_t i = 0; i < st->n_round_history; i++) {
    const Pando__V1__RoundRecord *r = st->round_history[i];
    if (r->abandoned || !r->has_eval)
      continue;
    s->federated = 1;
    s->index[s->n] = r->round;
    s->seconds[s->n] = r->finished_sec;
    s->loss[s->n] = r->test_loss;
    s->accuracy[s->n] = r->test_accuracy;
    s->n++;
  }
}

static void series_close(series *s) {
  free(s->index);
  free(s->seconds);
  free(s->loss);
  free(s->accuracy);
}

/* A step of 1, 2 or 5 x 10^k giving about `ticks` intervals over `range`. */
static double nice_step(double range, int ticks) {
  double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

typedef struct panel {
  double x, y, w, h;     /* the plotting area on the page */
  double x0, x1, y0, y1; /* the data range shown */
  const char *title, *xlabel;
  int integer_x; /* epochs and rounds: ticks at whole numbers */
} panel;

static double px(const panel *p, double x) { return p->x + (x - p->x0) / (p->x1 - p->x0) * p->w; }
static double py(const panel *p, double y) {
  return p->y + p->h - (y - p->y0) / (p->y1 - p->y0) * p->h;
}

enum axis { BY_INDEX, BY_SECONDS, LOSS, ACCURACY };

static const double *values(const series *s, enum axis a) {
  return a == BY_INDEX     ? s->index
         : a == BY_SECONDS ? s->seconds
         : a == LOSS       ? s->loss
                           : s->accuracy;
}

/* The range of `xa` against `ya` over every series, the y range padded. */
static void fit(panel *p, const series *all, size_t n, enum axis xa, enum axis ya) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (size_t k = 0; k < n; k++) {
    const double *xs = values(&all[k], xa), *ys = values(&all[k], ya);
    for (size_t i = 0; i < all[k].n; i++) {
      if (!isfinite(xs[i]) || !isfinite(ys[i]))
        continue;
      x0 = fmin(x0, xs[i]), x1 = fmax(x1, xs[i]);
      y0 = fmin(y0, ys[i]), y1 = fmax(y1, ys[i]);
    }
  }
  if (!isfinite(x0)) /* nothing to show */
    x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12)
    x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-12)
    y0 -= 0.5 * fmax(fabs(y0), 1e-3), y1 += 0.5 * fmax(fabs(y1), 1e-3);
  if (xa == BY_SECONDS)
    x0 = fmin(x0, 0); /* time from the job's start */
  p->integer_x = xa == BY_INDEX;
  double xpad = 0.03 * (x1 - x0), ypad = 0.06 * (y1 - y0);
  p->x0 = x0 - xpad, p->x1 = x1 + xpad, p->y0 = y0 - ypad, p->y1 = y1 + ypad;
}

static void text(cairo_t *cr, double x, double y, double size, double align, const char *s) {
  cairo_text_extents_t ext;
  cairo_set_font_size(cr, size);
  cairo_text_extents(cr, s, &ext);
  cairo_move_to(cr, x - align * ext.x_advance, y);
  cairo_show_text(cr, s);
}

static void draw_axes(cairo_t *cr, const panel *p) {
  char label[32];
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_rectangle(cr, p->x, p->y, p->w, p->h);
  cairo_fill(cr);
  cairo_set_line_width(cr, 1);
  double step = nice_step(p->y1 - p->y0, 5);
  for (double v = ceil(p->y0 / step) * step; v <= p->y1 + 1e-9 * step; v += step) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, p->x, py(p, v));
    cairo_line_to(cr, p->x + p->w, py(p, v));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    snprintf(label, sizeof label, "%.4g", fabs(v) < 1e-9 * step ? 0.0 : v);
    text(cr, p->x - 6, py(p, v) + 4, 11, 1, label);
  }
  step = nice_step(p->x1 - p->x0, 6);
  if (p->integer_x)
    step = fmax(step, 1);
  for (double v = ceil(p->x0 / step) * step; v <= p->x1 + 1e-9 * step; v += step) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, px(p, v), p->y);
    cairo_line_to(cr, px(p, v), p->y + p->h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    snprintf(label, sizeof label, "%.4g", fabs(v) < 1e-9 * step ? 0.0 : v);
    text(cr, px(p, v), p->y + p->h + 16, 11, 0.5, label);
  }
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_rectangle(cr, p->x, p->y, p->w, p->h);
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  text(cr, p->x + p->w / 2, p->y - 10, 14, 0.5, p->title);
  text(cr, p->x + p->w / 2, p->y + p->h + 36, 12, 0.5, p->xlabel);
}

/* One curve of series `s` (xs against ys) in colour `rgb`: a line through
 * the points, a dot at each. */
static void draw_curve(cairo_t *cr, const panel *p, const double *xs, const double *ys, size_t n,
                       const double *rgb) {
  cairo_save(cr);
  cairo_rectangle(cr, p->x, p->y, p->w, p->h);
  cairo_clip(cr);
  cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
  cairo_set_line_width(cr, 2);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  int started = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(xs[i]) || !isfinite(ys[i]))
      continue;
    if (started)
      cairo_line_to(cr, px(p, xs[i]), py(p, ys[i]));
    else
      cairo_move_to(cr, px(p, xs[i]), py(p, ys[i]));
    started = 1;
  }
  cairo_stroke(cr);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(xs[i]) || !isfinite(ys[i]))
      continue;
    cairo_new_sub_path(cr);
    cairo_arc(cr, px(p, xs[i]), py(p, ys[i]), 3, 0, 2 * M_PI);
  }
  cairo_fill(cr);
  cairo_restore(cr);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int pd_ctl_plot(const Pando__V1__JobStatus *const *jobs, size_t n, const char *path, FILE *out,
                FILE *errout) {
  int svg = ends_with(path, ".svg"), png = ends_with(path, ".png");
  if (!svg && !png) {
    fprintf(errout, "pandoctl: plot: %s: the file name must end in .svg or .png\n", path);
    return -1;
  }
  if (n == 0 || n > PD_CTL_PLOT_MAX_JOBS) {
    fprintf(errout, "pandoctl: plot: 1 to %d jobs, got %zu\n", PD_CTL_PLOT_MAX_JOBS, n);
    return -1;
  }
  series all[PD_CTL_PLOT_MAX_JOBS];
  size_t points = 0, federated = 0;
  for (size_t k = 0; k < n; k++) {
    series_of(jobs[k], &all[k]);
    points += all[k].n;
    federated += all[k].federated;
  }
  int rc = -1;
  if (points == 0) {
    fprintf(errout,
            "pandoctl: plot: no finished epoch or evaluated round yet in %s%s: nothing to draw\n",
            jobs[0]->job, n > 1 ? " or the other jobs" : "");
    goto done;
  }
  cairo_surface_t *surface = svg ? cairo_svg_surface_create(path, WIDTH, HEIGHT)
                                 : cairo_image_surface_create(CAIRO_FORMAT_RGB24, WIDTH, HEIGHT);
  cairo_t *cr = cairo_create(surface);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb(cr, 0.97, 0.97, 0.97);
  cairo_paint(cr);

  const char *by_index = federated == n ? "round" : federated ? "epoch (round)" : "epoch";
  const char *loss_title = federated == n ? "test loss"
                           : federated    ? "loss (training; test for rounds)"
                                          : "training loss";
  panel panels[4] = {
      {80, 110, 480, 300, 0, 0, 0, 0, loss_title, by_index, 0},
      {680, 110, 480, 300, 0, 0, 0, 0, loss_title, "seconds since the job started", 0},
      {80, 500, 480, 300, 0, 0, 0, 0, "test accuracy", by_index, 0},
      {680, 500, 480, 300, 0, 0, 0, 0, "test accuracy", "seconds since the job started", 0},
  };
  static const enum axis xs[4] = {BY_INDEX, BY_SECONDS, BY_INDEX, BY_SECONDS};
  static const enum axis ys[4] = {LOSS, LOSS, ACCURACY, ACCURACY};
  for (int i = 0; i < 4; i++) {
    fit(&panels[i], all, n, xs[i], ys[i]);
    draw_axes(cr, &panels[i]);
    for (size_t k = 0; k < n; k++)
      draw_curve(cr, &panels[i], values(&all[k], xs[i]), values(&all[k], ys[i]), all[k].n,
                 palette[k]);
  }
  /* the title and, under it, the legend: a swatch and the job id each */
  cairo_set_source_rgb(cr, 0, 0, 0);
  text(cr, WIDTH / 2.0, 32, 18, 0.5, "Pando: learning curves");
  double x = 80;
  for (size_t k = 0; k < n; k++) {
    cairo_set_source_rgb(cr, palette[k][0], palette[k][1], palette[k][2]);
    cairo_rectangle(cr, x, 56, 14, 14);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    char label[160];
    snprintf(label, sizeof label, "%s (%zu %s)", all[k].label, all[k].n,
             all[k].federated ? "rounds" : "epochs");
    cairo_text_extents_t ext;
    cairo_set_font_size(cr, 13);
    cairo_text_extents(cr, label, &ext);
    text(cr, x + 20, 68, 13, 0, label);
    x += 20 + ext.x_advance + 24;
  }
  cairo_destroy(cr);
  cairo_surface_flush(surface);
  cairo_status_t status = cairo_surface_status(surface);
  if (status == CAIRO_STATUS_SUCCESS && png)
    status = cairo_surface_write_to_png(surface, path);
  cairo_surface_finish(surface);
  if (status == CAIRO_STATUS_SUCCESS)
    status = cairo_surface_status(surface);
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) {
    fprintf(errout, "pandoctl: plot: writing %s failed: %s\n", path,
            cairo_status_to_string(status));
    goto done;
  }
  fprintf(out, "wrote %s: %zu jobs, %zu epochs and rounds in all\n", path, n, points);
  rc = 0;
done:
  for (size_t k = 0; k < n; k++)
    series_close(&all[k]);
  /* give back cairo's and fontconfig's caches: pandoctl draws once, and
   * a leak checker should see nothing left */
  cairo_debug_reset_static_data();
  FcFini();
  return rc;
}
