/* databench: measures the dataset readers. It writes a CSV file (dense, 32
 * features) and a libsvm file (sparse, 40 non-zeros per row over 1M
 * features) of about --mb MB each into --dir, plus a gzipped copy of the
 * CSV, loads each through pd_dataset_load() --iters times (the file is in
 * the page cache: this is the parser's speed, including the io_uring read),
 * generates synthetic data (1M features, 100 non-zeros per row), prints the
 * best MB/s (1e6 bytes of file per second) and non-zeros per second, and
 * removes its files.
 *
 *   databench [--dir DIR] [--mb N] [--iters N]
 *
 * Each figure is printed as a human-readable line and as a line starting
 * with "BENCH" of key=value pairs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pando/dataset.h"
#include "pando/spec.h"
#include "pando/util.h"

static uint64_t next_random(uint64_t *state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return *state >> 11;
}

/* Writes rows of text until about `bytes`; returns the bytes written or 0. */
static size_t write_csv(const char *path, size_t bytes, int gzip) {
  FILE *f = gzip ? NULL : fopen(path, "w");
  gzFile gz = gzip ? gzopen(path, "wb1") : NULL;
  if (!f && !gz)
    return 0;
  char line[1024];
  size_t total = 0;
  uint64_t state = 1;
  int n = snprintf(line, sizeof line, "label");
  for (int c = 0; c < 32; c++)
    n += snprintf(line + n, sizeof line - (size_t)n, ",f%d", c);
  line[n++] = '\n';
  while (total < bytes) {
    if (gzip)
      gzwrite(gz, line, (unsigned)n);
    else
      fwrite(line, 1, (size_t)n, f);
    total += (size_t)n;
    n = snprintf(line, sizeof line, "%d", (int)(next_random(&state) % 10));
    for (int c = 0; c < 32; c++) {
      double x = (double)(next_random(&state) % 2000000) / 1000.0 - 1000.0;
      n += snprintf(line + n, sizeof line - (size_t)n, c % 4 ? ",%.3f" : ",%.6g", x);
    }
    line[n++] = '\n';
  }
  if (gzip)
    return gzclose(gz) == Z_OK ? total : 0;
  return fclose(f) == 0 ? total : 0;
}

static size_t write_libsvm(const char *path, size_t bytes) {
  FILE *f = fopen(path, "w");
  if (!f)
    return 0;
  char line[2048];
  size_t total = 0;
  uint64_t state = 2;
  while (total < bytes) {
    int n = snprintf(line, sizeof line, "%s", next_random(&state) % 2 ? "+1" : "-1");
    uint32_t index = 0;
    for (int k = 0; k < 40; k++) {
      index += 1 + (uint32_t)(next_random(&state) % 50000);
      double x = (double)(next_random(&state) % 100000) / 1000.0;
      n += snprintf(line + n, sizeof line - (size_t)n, " %u:%.4g", index, x);
    }
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, f);
    total += (size_t)n;
  }
  return fclose(f) == 0 ? total : 0;
}

/* The best time of `iters` loads of `spec`'s training split. */
static double best_load(const pd_job_spec *spec, int iters, uint64_t *nnz) {
  double best = 1e30;
  for (int i = 0; i < iters; i++) {
    pd_dataset ds;
    char err[1024];
    double t0 = pd_now();
    if (pd_dataset_load(spec, 0, &ds, err, sizeof err) != 0) {
      fprintf(stderr, "databench: %s\n", err);
      exit(1);
    }
    double t = pd_now() - t0;
    best = t < best ? t : best;
    *nnz = ds.row_ptr ? ds.row_ptr[ds.rows] : ds.rows * ds.cols;
    pd_dataset_close(&ds);
  }
  return best;
}

static void report(const char *name, size_t bytes, double seconds, uint64_t values) {
  printf("%-10s %7.1f MB in %6.3f s: %7.1f MB/s, %6.1f M values/s\n", name, (double)bytes / 1e6,
         seconds, (double)bytes / 1e6 / seconds, (double)values / 1e6 / seconds);
  printf("BENCH reader=%s bytes=%zu seconds=%.4f mb_per_s=%.1f values_per_s=%.0f\n", name, bytes,
         seconds, (double)bytes / 1e6 / seconds, (double)values / seconds);
}

int main(int argc, char **argv) {
  const char *dir = "/tmp";
  size_t mb = 200;
  int iters = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--dir") == 0)
      dir = argv[i + 1];
    else if (strcmp(argv[i], "--mb") == 0)
      mb = (size_t)atol(argv[i + 1]);
    else if (strcmp(argv[i], "--iters") == 0)
      iters = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: databench [--dir DIR] [--mb N] [--iters N]\n");
      return 2;
    }
  }
  char csv[1024], csv_gz[1024], svm[1024];
  snprintf(csv, sizeof csv, "%s/databench-%d.csv", dir, (int)getpid());
  snprintf(csv_gz, sizeof csv_gz, "%s/databench-%d.csv.gz", dir, (int)getpid());
  snprintf(svm, sizeof svm, "%s/databench-%d.svm", dir, (int)getpid());
  size_t csv_bytes = write_csv(csv, mb * 1000000, 0);
  size_t gz_bytes = write_csv(csv_gz, mb * 1000000 / 4, 1);
  size_t svm_bytes = write_libsvm(svm, mb * 1000000);
  if (!csv_bytes || !gz_bytes || !svm_bytes) {
    fprintf(stderr, "databench: cannot write the files in %s\n", dir);
    return 1;
  }

  pd_job_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.data.normalize = PD_NORMALIZE_NONE;
  spec.data.header = 1;
  snprintf(spec.data.label_column, sizeof spec.data.label_column, "label");
  snprintf(spec.data.format, sizeof spec.data.format, "csv");
  snprintf(spec.data.train.features, sizeof spec.data.train.features, "%s", csv);
  uint64_t values = 0;
  double t = best_load(&spec, iters, &values);
  report("csv", csv_bytes, t, values);
  snprintf(spec.data.train.features, sizeof spec.data.train.features, "%s", csv_gz);
  t = best_load(&spec, iters, &values);
  report("csv.gz", gz_bytes, t, values); /* MB of inflated text */
  snprintf(spec.data.format, sizeof spec.data.format, "libsvm");
  snprintf(spec.data.train.features, sizeof spec.data.train.features, "%s", svm);
  t = best_load(&spec, iters, &values);
  report("libsvm", svm_bytes, t, values);
  unlink(csv);
  unlink(csv_gz);
  unlink(svm);

  pd_synthetic_spec synthetic = {.rows = 200000, .features = 1000000, .nnz = 100, .seed = 1};
  double best = 1e30;
  for (int i = 0; i < iters; i++) {
    pd_dataset ds;
    double t0 = pd_now();
    pd_dataset_synthetic(&synthetic, 0, 0, synthetic.rows, &ds);
    double took = pd_now() - t0;
    best = took < best ? took : best;
    pd_dataset_close(&ds);
  }
  uint64_t nnz = synthetic.rows * (uint64_t)synthetic.nnz;
  printf("synthetic  %llu rows x %d non-zeros in %6.3f s: %6.1f M non-zeros/s\n",
         (unsigned long long)synthetic.rows, synthetic.nnz, best, (double)nnz / 1e6 / best);
  printf("BENCH reader=synthetic nnz=%llu seconds=%.4f nnz_per_s=%.0f\n", (unsigned long long)nnz,
         best, (double)nnz / best);
  return 0;
}
