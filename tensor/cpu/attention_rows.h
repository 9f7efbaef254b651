/* Row addressing shared by the tiled attention kernels (softmax, sigmoid, softplus, SLA); include
 * after tensor/cpu/real.h. Private to tensor/cpu/. */
#ifndef HYLA_CPU_ATTENTION_ROWS_H
#define HYLA_CPU_ATTENTION_ROWS_H

#include <stdint.h>

/* Row t of head h in batch b of a [B, T, H, D] tensor with strides (in elements) over b, t, h. */
static inline const real *at(const real *x, const int64_t *stride, int64_t b, int64_t t,
                             int64_t h) {
  return x + b * stride[0] + t * stride[1] + h * stride[2];
}

/* The keys of a tile row that query row r sees: all nk, or fewer on the diagonal tile (query
 * tile from i0, key tile from j0, causal). */
static inline int64_t visible(int64_t i0, int64_t r, int64_t j0, int64_t nk) {
  int64_t n = i0 + r - j0 + 1;
  return n < nk ? n : nk;
}

#endif
