/* Row addressing shared by the tiled attention kernels (softmax, sigmoid, softplus, SLA); include
 * after tensor/cpu/real.h. Private to tensor/cpu/. */
#ifndef HYLA_CPU_ATTENTION_ROWS_H
#define HYLA_CPU_ATTENTION_ROWS_H

#include <stddef.h>
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

/* di[t] = go_t . o_t over the first D channels of head h's rows in batch b, for t < T: the
 * softmax backward's row term. go and o are [B, T, H, width] (width D, or SLA's 2 D: its two
 * branches side by side). */
static inline void row_dots(const real *go, const real *o, int64_t b, int64_t h, int64_t T,
                            int64_t H, int64_t width, int64_t D, real *di) {
  for (int64_t t = 0; t < T; t++) {
    const real *gor = go + ((b * T + t) * H + h) * width, *orow = o + ((b * T + t) * H + h) * width;
    real s = 0;
    for (int64_t d = 0; d < D; d++) s += gor[d] * orow[d];
    di[t] = s;
  }
}

/* The backward's last step on a tile of nq queries (rows qi) and nk keys (rows kj) of one head,
 * given the tile's weights s (for gv) and score gradients p, both TILE apart: gv += s^T go,
 * gq += p k, gk += p^T q. Gradient rows are ld apart; NULL gradients are skipped. */
static inline void tile_grads(int64_t nq, int64_t nk, int64_t D, int64_t tile, const real *s,
                              const real *p, const real *go, const real *qi, int64_t q_ld,
                              const real *kj, int64_t k_ld, int64_t ld, real *gq, real *gk,
                              real *gv) {
  if (gv) K(cpu_gemm)(true, false, nk, D, nq, 1.0, s, tile, go, ld, 1.0, gv, ld);
  if (gq) K(cpu_gemm)(false, false, nq, D, nk, 1.0, p, tile, kj, k_ld, 1.0, gq, ld);
  if (gk) K(cpu_gemm)(true, false, nk, D, nq, 1.0, p, tile, qi, q_ld, 1.0, gk, ld);
}

#endif
