/* Shared by the benchmarks: a clock, the median of repeated runs, and what hardware this is. */
#ifndef HYLA_BENCH_H
#define HYLA_BENCH_H

#include "tensor/blas_kernels.h"
#include "tensor/device.h"
#include "tensor/rng.h"
#include "tensor/threads.h"
#include "util/clock.h"
#include "util/parse_number.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Threads from the benchmark's argument `text` (NULL or 0: HYLA_THREADS, OMP_NUM_THREADS or the
 * cores); a bad count ends the program with exit status 2. */
static inline void bench_set_threads(const char *program, const char *text) {
  int64_t n = 0;
  hy_error err;
  if ((text && hy_parse_int(text, 0, HY_THREADS_MAX, &n, &err)) ||
      hy_threads_choose((int)n, &err)) {
    fprintf(stderr, "%s: threads: %s\n", program, err.msg);
    exit(2);
  }
}

static int bench_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds of fn(ctx) over at least `min_reps` runs and about `budget` seconds, after one
 * warm-up run. */
static inline double bench_median(void (*fn)(void *), void *ctx, int min_reps, double budget) {
  enum { MAX_REPS = 1000 };
  double times[MAX_REPS];
  fn(ctx);
  int n = 0;
  double start = hy_clock_s();
  while (n < MAX_REPS && (n < min_reps || hy_clock_s() - start < budget)) {
    double t0 = hy_clock_s();
    fn(ctx);
    times[n++] = hy_clock_s() - t0;
  }
  qsort(times, (size_t)n, sizeof *times, bench_cmp);
  return times[n / 2];
}

/* GPU work is asynchronous: median seconds of fn(ctx) over `reps` runs after `warmup` ones, the
 * GPU synchronized around each. */
static inline double bench_gpu_median(void (*fn)(void *), void *ctx, int warmup, int reps) {
  enum { MAX_REPS = 1000 };
  double times[MAX_REPS];
  if (reps > MAX_REPS) reps = MAX_REPS;
  for (int i = 0; i < warmup; i++) fn(ctx);
  for (int i = 0; i < reps; i++) {
#ifdef HYLA_CUDA
    hy_cuda_synchronize();
#endif
    double t0 = hy_clock_s();
    fn(ctx);
#ifdef HYLA_CUDA
    hy_cuda_synchronize();
#endif
    times[i] = hy_clock_s() - t0;
  }
  qsort(times, (size_t)reps, sizeof *times, bench_cmp);
  return times[reps / 2];
}

/* A persistent f32 tensor on the GPU of N(0, std) values, drawn on the host from rng. */
static inline hy_tensor *bench_gpu_normal(hy_shape shape, hy_rng *rng, double std, bool grad) {
  hy_tensor *c = hy_empty_persistent_on(HY_CPU, HY_F32, shape);
  hy_fill_normal(c, rng, 0, std);
  hy_tensor *g = hy_empty_persistent_on(HY_CUDA, HY_F32, shape);
  hy_copy_into(g, c);
  hy_free(c);
  g->requires_grad = grad;
  return g;
}

/* The GPU this process uses, or "none". */
static inline const char *bench_gpu_description(void) {
#ifdef HYLA_CUDA
  if (hy_cuda_available()) return hy_cuda_device_description();
#endif
  return "none";
}

/* The CPU, its cores, hyla's threads and the kernel set OpenBLAS chose (OPENBLAS_CORETYPE). */
static inline void bench_print_hardware(void) {
  char model[256] = "unknown CPU", line[512];
  int cores = 0;
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
        snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
        model[strcspn(model, "\n")] = 0;
      }
      if (!strncmp(line, "processor", 9)) cores++;
    }
    fclose(f);
  }
  printf("hardware: %s (%d logical cores), hyla threads %d, OpenBLAS %s kernels\n", model, cores,
         hy_threads_get(), openblas_get_corename());
}

#endif
