#include "tensor/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

static int env_int(const char *name) {
  const char *s = getenv(name);
  return s ? atoi(s) : 0;
}

void hy_threads_set(int n) {
  if (n <= 0) n = env_int("HYLA_THREADS");
  if (n <= 0) n = env_int("OMP_NUM_THREADS");
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(1); /* hyla splits products over its own threads (tensor/cpu/gemm.c) */
}

int hy_threads_get(void) { return omp_get_max_threads(); }
