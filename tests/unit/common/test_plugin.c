/* Unit tests of model plugins (pando/plugin.h): the example plugin
 * (examples/plugin/fm.c, a factorization machine) through pd_model, its
 * gradient against finite differences, and the errors for plugins that must
 * be refused. The shared objects are built by the Makefile into $BUILD
 * (default build/). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../../common/src/ml/plugin.h"
#include "../../test.h"
#include "pando/kernels.h"
#include "pando/model.h"
#include "pando/util.h"

static char example_path[PD_PATH_MAX];

/* $BUILD/REL, into `out`. */
static void build_path(const char *rel, char *out, size_t size) {
  const char *build = getenv("BUILD");
  snprintf(out, size, "%s/%s", build && *build ? build : "build", rel);
}

static pd_model_spec fm_spec(int inputs, const char *config) {
  pd_model_spec spec = {.type = PD_MODEL_PLUGIN, .nlayers = 2, .layers = {inputs, 1}, .seed = 3};
  pd_strlcpy(spec.path, example_path, sizeof spec.path);
  pd_strlcpy(spec.config, config, sizeof spec.config);
  return spec;
}

/* Deterministic uniform numbers in [-1, 1). */
static uint64_t rng_state;
static float rng_uniform(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static void test_layout(void) {
  pd_model_spec spec = fm_spec(20, "factors=3\nloss=logistic\n");
  char err[512] = "";
  pd_param_info t[8];
  uint64_t k = 0;
  int count = pd_model_layout(&spec, t, 8, &k, err, sizeof err);
  if (count < 0)
    fprintf(stderr, "  %s\n", err);
  CHECK_EQ_INT(count, 3);
  CHECK_EQ_INT(k, 1 + 20 + 20 * 3);
  CHECK(strcmp(t[0].name, "bias") == 0 && t[0].ndim == 1 && t[0].size == 1);
  CHECK(strcmp(t[1].name, "linear") == 0 && t[1].offset == 1 && t[1].size == 20);
  CHECK(strcmp(t[2].name, "factors") == 0 && t[2].ndim == 2);
  CHECK_EQ_INT(t[2].shape[0], 20);
  CHECK_EQ_INT(t[2].shape[1], 3);
  CHECK_EQ_INT(t[2].offset, 21);
  pd_model *model = pd_model_new(&spec, 4, err, sizeof err);
  CHECK(model != NULL);
  int n;
  const pd_param_info *same = pd_model_params(model, &n);
  CHECK_EQ_INT(n, 3);
  CHECK(memcmp(same, t, 3 * sizeof *t) == 0);
  CHECK_EQ_INT(pd_model_num_params(model), k);
  pd_model_free(model);
}

static void test_init_range_pieces(void) {
  pd_model_spec spec = fm_spec(300, "factors=4\ninit_std=0.1\n");
  char err[512];
  uint64_t k = 0;
  CHECK_EQ_INT(pd_model_layout(&spec, NULL, 0, &k, err, sizeof err), 0);
  float *whole = pd_xmalloc(k * sizeof(float)), *pieces = pd_xmalloc(k * sizeof(float));
  CHECK_EQ_INT(pd_model_init_range(&spec, 0, k, whole, err, sizeof err), 0);
  uint64_t cuts[] = {1, 2, 300, 301, 302, 777, k};
  memset(pieces, 0xff, k * sizeof(float));
  uint64_t begin = 0;
  for (size_t i = 0; i < PD_ARRAY_SIZE(cuts); i++) {
    CHECK_EQ_INT(pd_model_init_range(&spec, begin, cuts[i], pieces + begin, err, sizeof err), 0);
    begin = cuts[i];
  }
  CHECK(memcmp(whole, pieces, k * sizeof(float)) == 0);
  /* bias and linear weights 0, factors ~ N(0, 0.1^2) */
  double sum_sq = 0;
  for (uint64_t j = 0; j < 301; j++)
    CHECK(whole[j] == 0.0f);
  for (uint64_t j = 301; j < k; j++)
    sum_sq += (double)whole[j] * whole[j];
  CHECK_NEAR(sqrt(sum_sq / (double)(k - 301)), 0.1, 0.01);
  /* another seed, other values */
  spec.seed = 4;
  CHECK_EQ_INT(pd_model_init_range(&spec, 0, k, pieces, err, sizeof err), 0);
  CHECK(memcmp(whole, pieces, k * sizeof(float)) != 0);
  free(pieces);
  free(whole);
}

/* The plugin's gradient against central differences of its loss, on dense
 * rows and on CSR rows (whose row_ptr does not start at 0). */
static void check_gradient(const char *config, int sparse) {
  enum { ROWS = 6, INPUTS = 10 };
  pd_model_spec spec = fm_spec(INPUTS, config);
  char err[512];
  pd_model *model = pd_model_new(&spec, 8, err, sizeof err);
  CHECK(model != NULL);
  uint64_t k = pd_model_num_params(model);
  float *params = pd_xmalloc(k * sizeof(float)), *grad = pd_xmalloc(k * sizeof(float));
  float *scratch = pd_xmalloc(k * sizeof(float));
  CHECK_EQ_INT(pd_model_init_range(&spec, 0, k, params, err, sizeof err), 0);
  rng_state = 1;
  for (uint64_t j = 0; j < k; j++) /* away from the all-zero start */
    params[j] += 0.3f * rng_uniform();
  float x[ROWS * INPUTS] = {0}, values[40], targets[ROWS];
  uint64_t row_ptr[ROWS + 1];
  uint32_t cols[40];
  uint8_t labels[ROWS];
  uint64_t p = 2; /* a view: row_ptr[0] = 2 */
  for (int r = 0; r < ROWS; r++) {
    row_ptr[r] = p;
    for (int c = r % 3; c < INPUTS; c += 2 + r % 3) {
      cols[p] = (uint32_t)c;
      values[p] = rng_uniform();
      x[r * INPUTS + c] = values[p];
      p++;
    }
    labels[r] = (uint8_t)(r % 2);
    targets[r] = 2.0f * rng_uniform();
  }
  row_ptr[ROWS] = p;
  pd_dataset batch = {.rows = ROWS, .cols = INPUTS, .labels = labels, .targets = targets};
  if (sparse) {
    batch.row_ptr = row_ptr;
    batch.col_idx = cols;
    batch.values = values;
  } else {
    batch.features = x;
  }
  for (uint64_t j = 0; j < k; j++)
    grad[j] = NAN;
  float loss = pd_model_gradient(model, params, &batch, grad);
  CHECK(isfinite(loss) && loss > 0.0f);
  int nonzero = 0;
  for (uint64_t key = 0; key < k; key++) {
    CHECK(isfinite(grad[key]));
    float saved = params[key], eps = 1e-3f;
    params[key] = saved + eps;
    double plus = pd_model_gradient(model, params, &batch, scratch);
    params[key] = saved - eps;
    double minus = pd_model_gradient(model, params, &batch, scratch);
    params[key] = saved;
    double numeric = (plus - minus) / (2.0 * eps);
    double tol = 2e-4 + 1e-2 * fmax(fabs(numeric), fabs(grad[key]));
    if (fabs(numeric - grad[key]) > tol)
      fprintf(stderr, "  key %llu: analytic %.7g numeric %.7g\n", (unsigned long long)key,
              grad[key], numeric);
    CHECK_NEAR(grad[key], numeric, tol);
    nonzero += grad[key] != 0.0f;
  }
  CHECK(nonzero > (int)k / 2);
  /* 2 and 3 compute threads (one plugin instance each, a slice of the rows
   * each, their mean gradients weighed by the slices): the same gradient */
  for (int threads = 2; threads <= 3; threads++) {
    pd_kernels_set_threads(threads);
    pd_model *many = pd_model_new(&spec, 8, err, sizeof err);
    pd_kernels_set_threads(1);
    CHECK(many != NULL);
    float many_loss = pd_model_gradient(many, params, &batch, scratch);
    CHECK_NEAR(many_loss, loss, 1e-5 * (1.0 + fabs(loss)));
    int bad = 0;
    for (uint64_t key = 0; key < k; key++)
      bad += fabs(scratch[key] - grad[key]) > 1e-6 + 1e-4 * fabs(grad[key]);
    CHECK_EQ_INT(bad, 0);
    pd_eval e_one, e_many;
    pd_model_evaluate(model, params, &batch, &e_one);
    pd_model_evaluate(many, params, &batch, &e_many);
    CHECK_NEAR(e_many.loss, e_one.loss, 1e-6 * (1.0 + e_one.loss));
    CHECK(e_many.accuracy == e_one.accuracy);
    pd_model_free(many);
  }
  free(scratch);
  free(grad);
  free(params);
  pd_model_free(model);
}

static void test_gradient_logistic(void) {
  check_gradient("factors=3\n", 0);
  check_gradient("factors=3\n", 1);
}

static void test_gradient_squared(void) {
  check_gradient("factors=2\nloss=squared\n", 0);
  check_gradient("factors=2\nloss=squared\n", 1);
}

/* Training through pd_model: a sparse XOR-like target that a linear model
 * cannot fit but the factor interactions can. */
static void test_train_and_evaluate(void) {
  enum { N = 400, INPUTS = 4, BATCH = 20 };
  pd_model_spec spec = fm_spec(INPUTS, "factors=4\ninit_std=0.3\n");
  char err[512];
  pd_model *model = pd_model_new(&spec, BATCH, err, sizeof err);
  CHECK(model != NULL);
  uint64_t k = pd_model_num_params(model);
  float *params = pd_xmalloc(k * sizeof(float)), *grad = pd_xmalloc(k * sizeof(float));
  CHECK_EQ_INT(pd_model_init_range(&spec, 0, k, params, err, sizeof err), 0);
  /* row r has features a = r % 2 and 2 + b, b = (r / 2) % 2, each 1: label a xor b */
  static uint64_t row_ptr[N + 1];
  static uint32_t cols[2 * N];
  static float values[2 * N];
  static uint8_t labels[N];
  for (int r = 0; r < N; r++) {
    int a = r % 2, b = (r / 2) % 2;
    row_ptr[r] = 2 * (uint64_t)r;
    cols[2 * r] = (uint32_t)a;
    cols[2 * r + 1] = (uint32_t)(2 + b);
    values[2 * r] = values[2 * r + 1] = 1.0f;
    labels[r] = (uint8_t)(a ^ b);
  }
  row_ptr[N] = 2 * N;
  pd_dataset data = {.rows = N,
                     .cols = INPUTS,
                     .row_ptr = row_ptr,
                     .col_idx = cols,
                     .values = values,
                     .labels = labels};
  pd_eval before, after;
  pd_model_evaluate(model, params, &data, &before);
  for (int epoch = 0; epoch < 30; epoch++)
    for (uint64_t start = 0; start < N; start += BATCH) {
      pd_dataset view = data;
      view.rows = BATCH;
      view.row_ptr = row_ptr + start;
      view.labels = labels + start;
      pd_model_gradient(model, params, &view, grad);
      for (uint64_t j = 0; j < k; j++)
        params[j] -= 0.5f * grad[j];
    }
  pd_model_evaluate(model, params, &data, &after);
  CHECK(after.loss < before.loss * 0.5);
  CHECK(after.accuracy == 1.0);
  CHECK(after.rmse == 0.0);
  /* regression: RMSE against the targets, no accuracy */
  pd_model_free(model);
  pd_model_spec regress = fm_spec(INPUTS, "factors=4\nloss=squared\n");
  model = pd_model_new(&regress, BATCH, err, sizeof err);
  CHECK(model != NULL);
  CHECK_EQ_INT(pd_model_num_params(model), k);
  memset(params, 0, k * sizeof(float));
  params[0] = 0.5f; /* predicts 0.5 everywhere */
  static float targets[N];
  for (int r = 0; r < N; r++)
    targets[r] = (float)labels[r];
  data.labels = NULL;
  data.targets = targets;
  pd_model_evaluate(model, params, &data, &after);
  CHECK_NEAR(after.rmse, 0.5, 1e-7);
  CHECK_NEAR(after.loss, 0.125, 1e-7);
  CHECK(after.accuracy == 0.0);
  free(grad);
  free(params);
  pd_model_free(model);
}

/* Every way in: pd_model_new, pd_model_layout and pd_model_init_range give
 * the same message, which must contain each of `want`. */
static void check_refused(const pd_model_spec *spec, const char *want1, const char *want2) {
  char err[1024] = "", err2[1024] = "", err3[1024] = "";
  float out[4];
  uint64_t k = 99;
  CHECK(pd_model_new(spec, 4, err, sizeof err) == NULL);
  CHECK(pd_model_layout(spec, NULL, 0, &k, err2, sizeof err2) < 0);
  CHECK(pd_model_init_range(spec, 0, 1, out, err3, sizeof err3) < 0);
  CHECK(strcmp(err, err2) == 0 && strcmp(err, err3) == 0);
  CHECK_STR_CONTAINS(err, want1);
  CHECK_STR_CONTAINS(err, want2);
  printf("# refused: %s\n", err);
}

static void test_missing_file(void) {
  pd_model_spec spec = fm_spec(10, "");
  build_path("examples/no-such-plugin.so", spec.path, sizeof spec.path);
  check_refused(&spec, "model.path: cannot load plugin", "no-such-plugin.so");
  /* a bare name is a file in the working directory, not a library search */
  pd_strlcpy(spec.path, "libm.so.6", sizeof spec.path);
  check_refused(&spec, "model.path: cannot load plugin libm.so.6", "No such file");
}

static void test_wrong_abi(void) {
  pd_model_spec spec = fm_spec(10, "");
  build_path("tests/plugins/libbad_abi.so", spec.path, sizeof spec.path);
  check_refused(&spec, spec.path, "plugin ABI version 99, but this Pando loads version 1");
}

static void test_no_entry(void) {
  pd_model_spec spec = fm_spec(10, "");
  build_path("tests/plugins/libno_entry.so", spec.path, sizeof spec.path);
  check_refused(&spec, spec.path, "is not a Pando plugin: it does not export pando_plugin_entry()");
}

static void test_no_gradient(void) {
  pd_model_spec spec = fm_spec(10, "");
  build_path("tests/plugins/libno_gradient.so", spec.path, sizeof spec.path);
  check_refused(&spec, spec.path, "the plugin's table has no gradient function");
}

/* The plugin's own complaints about model.config and model.layers. */
static void test_bad_config(void) {
  pd_model_spec spec = fm_spec(10, "factors=3\ncolour=blue\n");
  check_refused(&spec, "model.config: plugin", "unknown key 'colour'");
  spec = fm_spec(10, "factors=0\n");
  check_refused(&spec, "factorization-machine",
                "factors: must be an integer from 1 to 1024, got '0'");
  spec = fm_spec(10, "");
  spec.layers[1] = 3;
  check_refused(&spec, "model.config", "has 1 output");
}

/* Daemons load plugins only from plugin_dir; by default none at all. */
static void test_plugin_dir_policy(void) {
  pd_model_spec spec = fm_spec(20, "factors=3\nloss=logistic\n");
  char err[512] = "", dir[PD_PATH_MAX];
  uint64_t k = 0;
  pd_model_allow_plugins("");
  CHECK(pd_model_layout(&spec, NULL, 0, &k, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "model.path: plugins are disabled on this daemon");
  build_path("examples", dir, sizeof dir);
  pd_model_allow_plugins(dir);
  CHECK_EQ_INT(pd_model_layout(&spec, NULL, 0, &k, err, sizeof err), 0);
  build_path("tests/plugins/libbad_abi.so", spec.path, sizeof spec.path);
  CHECK(pd_model_layout(&spec, NULL, 0, &k, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "is not in plugin_dir");
  pd_model_allow_plugins(NULL);
}

/* Copies file `from` to `to`; returns 0 or -1. */
static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  char buf[1 << 16];
  size_t n;
  int rc = in && out ? 0 : -1;
  while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
    rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
  if (in)
    fclose(in);
  if (out && fclose(out) != 0)
    rc = -1;
  return rc;
}

/* What the hook swaps in between the check and the load. */
static char swap_link_path[PD_PATH_MAX], swap_foreign[PD_PATH_MAX], swap_target[PD_PATH_MAX];

/* Points the checked symlink at foreign code (outside plugin_dir). */
static void swap_symlink(const char *path) {
  (void)path;
  if (unlink(swap_link_path) != 0 || symlink(swap_foreign, swap_link_path) != 0)
    abort();
}

/* Replaces the checked file itself by foreign code (rename over it). */
static void swap_file(const char *path) {
  (void)path;
  if (rename(swap_foreign, swap_target) != 0)
    abort();
}

/* The plugin that is loaded is the file that was checked: flipping a
 * symlink, or renaming another file over the checked one, between the check
 * and the load cannot make the daemon run foreign code. */
static void test_plugin_swap_after_check(void) {
  char dir[64] = "/tmp/pando-test-plugin-XXXXXX", bad[PD_PATH_MAX], err[512] = "";
  CHECK(mkdtemp(dir) != NULL);
  char good[PD_PATH_MAX + 16], link_path[PD_PATH_MAX + 16];
  snprintf(good, sizeof good, "%s/good.so", dir);
  snprintf(link_path, sizeof link_path, "%s/model.so", dir);
  CHECK_EQ_INT(copy_file(example_path, good), 0);
  CHECK_EQ_INT(symlink(good, link_path), 0);
  build_path("tests/plugins/libbad_abi.so", bad, sizeof bad);
  CHECK(realpath(bad, swap_foreign) != NULL); /* outside plugin_dir */
  pd_strlcpy(swap_link_path, link_path, sizeof swap_link_path);
  pd_model_allow_plugins(dir);
  pd_model_spec spec = fm_spec(20, "factors=3\nloss=logistic\n");
  pd_strlcpy(spec.path, link_path, sizeof spec.path);
  uint64_t k = 0;
  pd__plugin_set_checked_hook(swap_symlink);
  int rc = pd_model_layout(&spec, NULL, 0, &k, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  %s\n", err);
  CHECK_EQ_INT(rc, 0); /* the checked (good) plugin, not bad_abi */
  CHECK_EQ_INT(k, 1 + 20 + 20 * 3);
  /* the flipped link itself is refused */
  pd__plugin_set_checked_hook(NULL);
  CHECK(pd_model_layout(&spec, NULL, 0, &k, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "is not in plugin_dir");
  /* a file renamed over the checked one after the check */
  pd_strlcpy(swap_target, good, sizeof swap_target);
  snprintf(swap_foreign, sizeof swap_foreign, "%s/foreign.so", dir);
  CHECK_EQ_INT(copy_file(bad, swap_foreign), 0);
  pd_strlcpy(spec.path, good, sizeof spec.path);
  pd__plugin_set_checked_hook(swap_file);
  rc = pd_model_layout(&spec, NULL, 0, &k, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  %s\n", err);
  CHECK_EQ_INT(rc, 0);
  pd__plugin_set_checked_hook(NULL);
  /* a FIFO or a folder in plugin_dir is not a plugin (and does not block) */
  char fifo[PD_PATH_MAX + 16];
  snprintf(fifo, sizeof fifo, "%s/fifo.so", dir);
  CHECK_EQ_INT(mkfifo(fifo, 0600), 0);
  pd_strlcpy(spec.path, fifo, sizeof spec.path);
  CHECK(pd_model_layout(&spec, NULL, 0, &k, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "not a regular file");
  pd_model_allow_plugins(NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK_EQ_INT(system(cmd), 0);
}

int main(int argc, char **argv) {
  pd_model_allow_plugins(NULL); /* the cases below load from the build folder */
  build_path("examples/libpando_example_plugin.so", example_path, sizeof example_path);
  PD_RUN(test_plugin_dir_policy);
  PD_RUN(test_plugin_swap_after_check);
  PD_RUN(test_layout);
  PD_RUN(test_init_range_pieces);
  PD_RUN(test_gradient_logistic);
  PD_RUN(test_gradient_squared);
  PD_RUN(test_train_and_evaluate);
  PD_RUN(test_missing_file);
  PD_RUN(test_wrong_abi);
  PD_RUN(test_no_entry);
  PD_RUN(test_no_gradient);
  PD_RUN(test_bad_config);
  PD_TEST_DONE();
}
