#include "tensor/cpu/real.h"

#include <string.h>

/* The op has checked the indices against V (tensor/embedding.c). */
void K(cpu_embedding)(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx, const real *w,
                      real *y) {
  (void)V;
#pragma omp parallel for if (n_idx * d > PAR_MIN) schedule(static)
  for (int64_t i = 0; i < n_idx; i++)
    memcpy(y + i * d, w + (int64_t)idx[i] * d, (size_t)d * sizeof *y);
}

/* Scatter-add rows; serial so that repeated indices always sum in the same order. */
void K(cpu_embedding_backward)(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,
                               const real *gy, real *gw) {
  (void)V;
  for (int64_t i = 0; i < n_idx; i++) {
    real *row = gw + (int64_t)idx[i] * d;
    const real *g = gy + i * d;
    for (int64_t j = 0; j < d; j++) row[j] += g[j];
  }
}
