#include "tensor/cpu/real.h"
#include "tensor/cpu/attention_rows.h"

#include <stdlib.h>
#include <string.h>

/* Causal softmax attention, FlashAttention-2 style on the CPU. One (batch, head) pair is one task;
 * inside it, queries and keys go in tiles of TILE rows, and every tile product is a small
 * single-threaded GEMM. The forward keeps a running max and sum per query row (online softmax)
 * and saves the row's log-sum-exp; the backward recomputes each probability tile from it. No
 * T x T matrix exists at any time: the scratch is a few TILE x TILE tiles per thread. */

enum { TILE = 64 };

typedef struct {
  real *s, *p; /* [TILE, TILE]: scores, probabilities (dP / dS in the backward) */
  real *acc;   /* [TILE, D]: output accumulator of the forward */
  real *m, *l; /* [TILE]: running max and sum */
} scratch;

static scratch scratch_new(int64_t D) {
  scratch w;
  w.s = malloc(sizeof(real) * TILE * TILE);
  w.p = malloc(sizeof(real) * TILE * TILE);
  w.acc = malloc(sizeof(real) * (size_t)(TILE * D));
  w.m = malloc(sizeof(real) * TILE);
  w.l = malloc(sizeof(real) * TILE);
  if (!w.s || !w.p || !w.acc || !w.m || !w.l) hy_die("attention", "out of memory");
  return w;
}

static void scratch_free(scratch *w) {
  free(w->s);
  free(w->p);
  free(w->acc);
  free(w->m);
  free(w->l);
}

/* s = scale * Q_i K_j^T for the tile of nq query rows from qi and nk key rows from kj, with keys
 * after the query, and with a window those `window` or more before it, masked out. */
static void tile_scores(const real *qi, int64_t ldq, const real *kj, int64_t ldk, int64_t nq,
                        int64_t nk, int64_t D, real scale, int64_t window, int64_t i0, int64_t j0,
                        real *s) {
  K(cpu_gemm)(false, true, nq, nk, D, scale, qi, ldq, kj, ldk, 0.0, s, TILE);
  for (int64_t r = 0; r < nq; r++)
    for (int64_t c = 0; c < nk; c++) {
      int64_t t = i0 + r, u = j0 + c;
      if (u > t || (window > 0 && t - u >= window)) s[r * TILE + c] = -INFINITY;
    }
}

/* The first key tile any query of the tile at (global position) i0 can see. */
static int64_t first_key_tile(const hy_attn_dims *dm, int64_t i0) {
  if (dm->window <= 0 || i0 - dm->window + 1 <= 0) return 0;
  return (i0 - dm->window + 1) / TILE * TILE;
}

static void forward_head(const hy_attn_dims *dm, const real *q, const real *k, const real *v,
                         real *o, real *lse, int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->T, D = dm->D;
  real scale = (real)dm->scale;
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    const real *qi = at(q, dm->q_stride, b, i0, h);
    for (int64_t r = 0; r < nq; r++) {
      w->m[r] = -INFINITY;
      w->l[r] = 0;
    }
    memset(w->acc, 0, sizeof(real) * (size_t)(nq * D));
    int64_t gi0 = dm->q_offset + i0, end = gi0 + nq < dm->Tk ? gi0 + nq : dm->Tk;
    for (int64_t j0 = first_key_tile(dm, gi0); j0 < end; j0 += TILE) {
      int64_t nk = end - j0 < TILE ? end - j0 : TILE;
      tile_scores(qi, dm->q_stride[1], at(k, dm->k_stride, b, j0, h), dm->k_stride[1], nq, nk, D,
                  scale, dm->window, gi0, j0, w->s);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * TILE, *pr = w->p + r * TILE;
        real mx = w->m[r];
        for (int64_t c = 0; c < nk; c++) mx = sr[c] > mx ? sr[c] : mx;
        if (mx == -INFINITY) { /* nothing of this row in the tile or before it (a window) */
          for (int64_t c = 0; c < nk; c++) pr[c] = 0;
          continue;
        }
        real alpha = real_exp(w->m[r] - mx), sum = 0; /* exp(-inf) = 0 on the first tile */
        for (int64_t c = 0; c < nk; c++) {
          pr[c] = real_exp(sr[c] - mx);
          sum += pr[c];
        }
        w->m[r] = mx;
        w->l[r] = w->l[r] * alpha + sum;
        real *ar = w->acc + r * D;
        for (int64_t d = 0; d < D; d++) ar[d] *= alpha;
      }
      K(cpu_gemm)
      (false, false, nq, D, nk, 1.0, w->p, TILE, at(v, dm->v_stride, b, j0, h), dm->v_stride[1],
       1.0, w->acc, D);
    }
    for (int64_t r = 0; r < nq; r++) {
      real *orow = o + ((b * T + i0 + r) * dm->H + h) * D, inv = 1 / w->l[r];
      for (int64_t d = 0; d < D; d++) orow[d] = w->acc[r * D + d] * inv;
      lse[(b * dm->H + h) * T + i0 + r] = w->m[r] + log(w->l[r]);
    }
  }
}

void K(cpu_attention)(const hy_attn_dims *dm, const real *q, const real *k, const real *v, real *o,
                      real *lse) {
#pragma omp parallel
  {
    scratch w = scratch_new(dm->D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      forward_head(dm, q, k, v, o, lse, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
}

/* With P = exp(S - lse) and Di = dO_i . O_i: dV_j += P^T dO_i; dP = dO_i V_j^T;
 * dS = scale P * (dP - Di); dQ_i += dS K_j; dK_j += dS^T Q_i. The gradients are contiguous
 * ([B, T, H, D] for q, [B, Tk, H, D] for k and v), so each head's rows are H * D apart and the
 * GEMMs accumulate into them directly. */
static void backward_head(const hy_attn_dims *dm, const real *q, const real *k, const real *v,
                          const real *o, const real *lse, const real *go, real *gq, real *gk,
                          real *gv, int64_t b, int64_t h, scratch *w, real *di) {
  int64_t T = dm->T, D = dm->D, H = dm->H, ld = H * D;
  real scale = (real)dm->scale;
  const real *lse_h = lse + (b * H + h) * T;
  row_dots(go, o, b, h, T, H, D, D, di);
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    const real *qi = at(q, dm->q_stride, b, i0, h);
    const real *goi = go + ((b * T + i0) * H + h) * D;
    int64_t gi0 = dm->q_offset + i0, end = gi0 + nq < dm->Tk ? gi0 + nq : dm->Tk;
    for (int64_t j0 = first_key_tile(dm, gi0); j0 < end; j0 += TILE) {
      int64_t nk = end - j0 < TILE ? end - j0 : TILE;
      const real *kj = at(k, dm->k_stride, b, j0, h), *vj = at(v, dm->v_stride, b, j0, h);
      int64_t off_j = ((b * dm->Tk + j0) * H + h) * D;
      tile_scores(qi, dm->q_stride[1], kj, dm->k_stride[1], nq, nk, D, scale, dm->window, gi0, j0,
                  w->s);
      for (int64_t r = 0; r < nq; r++)
        for (int64_t c = 0; c < nk; c++)
          w->s[r * TILE + c] = real_exp(w->s[r * TILE + c] - lse_h[i0 + r]);
      if (gv) K(cpu_gemm)(true, false, nk, D, nq, 1.0, w->s, TILE, goi, ld, 1.0, gv + off_j, ld);
      K(cpu_gemm)(false, true, nq, nk, D, 1.0, goi, ld, vj, dm->v_stride[1], 0.0, w->p, TILE);
      for (int64_t r = 0; r < nq; r++)
        for (int64_t c = 0; c < nk; c++) {
          int64_t x = r * TILE + c;
          w->p[x] = scale * w->s[x] * (w->p[x] - di[i0 + r]);
        }
      if (gq) K(cpu_gemm)
      (false, false, nq, D, nk, 1.0, w->p, TILE, kj, dm->k_stride[1], 1.0,
       gq + ((b * T + i0) * H + h) * D, ld);
      if (gk) K(cpu_gemm)
      (true, false, nk, D, nq, 1.0, w->p, TILE, qi, dm->q_stride[1], 1.0, gk + off_j, ld);
    }
  }
}

void K(cpu_attention_backward)(const hy_attn_dims *dm, const real *q, const real *k, const real *v,
                               const real *o, const real *lse, const real *go, real *gq, real *gk,
                               real *gv) {
#pragma omp parallel
  {
    scratch w = scratch_new(dm->D);
    real *di = real_alloc("attention", (size_t)dm->T);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      backward_head(dm, q, k, v, o, lse, go, gq, gk, gv, bh / dm->H, bh % dm->H, &w, di);
    free(di);
    scratch_free(&w);
  }
}
