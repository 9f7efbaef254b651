#include "tensor/cpu/real.h"
#include "tensor/cpu/attention_rows.h"

#include <stdlib.h>

/* Causal sigmoid attention (FlashSigmoid) on the tiling of tensor/cpu/attention.c: one (batch,
 * head) pair per task, queries and keys in tiles of TILE rows, each tile product one small
 * single-threaded GEMM. o_t = sum_{s <= t} sigmoid(scale q_t . k_s + bias) v_s has no
 * normalization over s, so the forward needs no row statistics and the backward recomputes the
 * scores. dims->Tk = T, q_offset = 0 and window = 0 here. */

enum { TILE = 64 };

typedef struct {
  real *s, *p; /* [TILE, TILE]: scores then weights; dP then dS in the backward */
} scratch;

static scratch scratch_new(void) {
  scratch w = {malloc(sizeof(real) * TILE * TILE), malloc(sizeof(real) * TILE * TILE)};
  if (!w.s || !w.p) hy_die("sigmoid_attention", "out of memory");
  return w;
}

static void scratch_free(scratch *w) {
  free(w->s);
  free(w->p);
}

/* e = exp(-|x|) once gives both sigmoid(x) and sigmoid'(x) = e / (1 + e)^2 without overflow. */
static inline real sigmoid(real x) {
  real e = real_exp(-fabs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

static void forward_head(const hy_attn_dims *dm, real bias, const real *q, const real *k,
                         const real *v, real *o, int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->T, D = dm->D, ld = dm->H * D;
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    const real *qi = at(q, dm->q_stride, b, i0, h);
    real *oi = o + ((b * T + i0) * dm->H + h) * D;
    for (int64_t j0 = 0; j0 < i0 + nq; j0 += TILE) {
      int64_t nk = i0 + nq - j0 < TILE ? i0 + nq - j0 : TILE;
      const real *kj = at(k, dm->k_stride, b, j0, h);
      K(cpu_gemm)
      (false, true, nq, nk, D, dm->scale, qi, dm->q_stride[1], kj, dm->k_stride[1], 0.0, w->s,
       TILE);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * TILE;
        int64_t n = visible(i0, r, j0, nk);
        for (int64_t c = 0; c < n; c++) sr[c] = sigmoid(sr[c] + bias);
        for (int64_t c = n; c < nk; c++) sr[c] = 0;
      }
      K(cpu_gemm)
      (false, false, nq, D, nk, 1.0, w->s, TILE, at(v, dm->v_stride, b, j0, h), dm->v_stride[1],
       j0 == 0 ? 0.0 : 1.0, oi, ld);
    }
  }
}

void K(cpu_sigmoid_attention)(const hy_attn_dims *dm, double bias, const real *q, const real *k,
                              const real *v, real *o) {
#pragma omp parallel
  {
    scratch w = scratch_new();
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      forward_head(dm, (real)bias, q, k, v, o, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
}

/* With P = sigmoid(S): dV_j += P^T dO_i; dP = dO_i V_j^T; dS = scale dP P (1 - P);
 * dQ_i += dS K_j; dK_j += dS^T Q_i. The gradients are contiguous [B, T, H, D]: each head's rows
 * are H * D apart and the GEMMs accumulate into them directly. */
static void backward_head(const hy_attn_dims *dm, real bias, const real *q, const real *k,
                          const real *v, const real *go, real *gq, real *gk, real *gv, int64_t b,
                          int64_t h, scratch *w) {
  int64_t T = dm->T, D = dm->D, ld = dm->H * D;
  real scale = (real)dm->scale;
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    const real *qi = at(q, dm->q_stride, b, i0, h);
    int64_t off_i = ((b * T + i0) * dm->H + h) * D;
    for (int64_t j0 = 0; j0 < i0 + nq; j0 += TILE) {
      int64_t nk = i0 + nq - j0 < TILE ? i0 + nq - j0 : TILE;
      const real *kj = at(k, dm->k_stride, b, j0, h), *vj = at(v, dm->v_stride, b, j0, h);
      int64_t off_j = ((b * T + j0) * dm->H + h) * D;
      K(cpu_gemm)
      (false, true, nq, nk, D, scale, qi, dm->q_stride[1], kj, dm->k_stride[1], 0.0, w->s, TILE);
      K(cpu_gemm)
      (false, true, nq, nk, D, 1.0, go + off_i, ld, vj, dm->v_stride[1], 0.0, w->p, TILE);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * TILE, *pr = w->p + r * TILE;
        int64_t n = visible(i0, r, j0, nk);
        for (int64_t c = 0; c < n; c++) {
          real x = sr[c] + bias, e = real_exp(-fabs(x)), inv = 1 / (1 + e);
          sr[c] = x >= 0 ? inv : e * inv;
          pr[c] *= scale * e * inv * inv;
        }
        for (int64_t c = n; c < nk; c++) sr[c] = pr[c] = 0;
      }
      tile_grads(nq, nk, D, TILE, w->s, w->p, go + off_i, qi, dm->q_stride[1], kj, dm->k_stride[1],
                 ld, gq ? gq + off_i : NULL, gk ? gk + off_j : NULL, gv ? gv + off_j : NULL);
    }
  }
}

void K(cpu_sigmoid_attention_backward)(const hy_attn_dims *dm, double bias, const real *q,
                                       const real *k, const real *v, const real *go, real *gq,
                                       real *gk, real *gv) {
#pragma omp parallel
  {
    scratch w = scratch_new();
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      backward_head(dm, (real)bias, q, k, v, go, gq, gk, gv, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
}
