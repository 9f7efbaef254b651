#include "tensor/cpu/real.h"

#include <stdlib.h>
#include <string.h>

/* Chunked gated linear attention, one (batch, head) pair per task. Per head, with q, k [T, dk],
 * v [T, dv] and log decays g [T, dk] (all zero when there is no decay):
 *
 *   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = q_t S_t,   S_0 = 0.
 *
 * Inside a chunk, with b_t the cumulative sum of g from the chunk's start to t, B = b at its end
 * and S the state before it:
 *
 *   o_t = (q_t * exp(b_t)) S + sum_{s <= t} (sum_i q_ti k_si exp(b_ti - b_si)) v_s
 *   S  <- diag(exp(B)) S + sum_s (k_s * exp(B - b_s))^T v_s
 *
 * Every exponent is a difference b_t - b_s with s <= t, or b itself, so with g <= 0 no factor
 * exceeds 1 and nothing overflows however strong the decay. The products with the state are
 * GEMMs; the intra-chunk pairs are computed directly, exponent by exponent, so that they stay
 * exact. The backward walks the chunks in reverse with dS, the gradient of the state at the end
 * of the current chunk:
 *
 *   dq_t = exp(b_t) * (dO_t S^T) + sum_{s <= t} (dO_t . v_s) k_s * exp(b_t - b_s)
 *   dk_s = exp(B - b_s) * (v_s dS^T) + sum_{t >= s} (dO_t . v_s) q_t * exp(b_t - b_s)
 *   dv_s = (k_s * exp(B - b_s)) dS + sum_{t >= s} A_ts dO_t
 *   dS  <- diag(exp(B)) dS + (Q * exp(b))^T dO
 *
 * and the gradient of g is the reverse cumulative sum of q * dq - k * dk (tensor/gla.c).
 *
 * Without g, every channel of head h decays by the same constant exp(gamma_h) (lightning; plain
 * linear attention has gamma = 0). Then exp(b_t - b_s) = exp(gamma_h (t - s)) does not depend on
 * the channel, and the pair sums become GEMMs: A = (Q K^T) * D with D_ts = exp(gamma (t - s)), and
 * in the backward (dP * D) K and (dP * D)^T Q. */

typedef struct {
  real *b;   /* [C, dk] cumulative log decay inside the chunk */
  real *qe;  /* [C, dk] q * exp(b) */
  real *kd;  /* [C, dk] k * exp(B - b) */
  real *a;   /* [C, C] intra-chunk scores A_ts (s <= t) */
  real *dp;  /* [C, C] dO_t . v_s */
  real *tmp; /* [C, max(dk, dv)] */
  real *s;   /* [dk, dv] state (forward) or its gradient (backward) */
} scratch;

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) hy_die("gla", "out of memory");
  return p;
}

static scratch scratch_new(int64_t C, int64_t dk, int64_t dv) {
  int64_t wide = dk > dv ? dk : dv;
  wide = wide > C ? wide : C; /* tmp also holds a C x C decay mask */
  scratch w = {
      xmalloc(sizeof(real) * (size_t)(C * dk)),  xmalloc(sizeof(real) * (size_t)(C * dk)),
      xmalloc(sizeof(real) * (size_t)(C * dk)),  xmalloc(sizeof(real) * (size_t)(C * C)),
      xmalloc(sizeof(real) * (size_t)(C * C)),   xmalloc(sizeof(real) * (size_t)(C * wide)),
      xmalloc(sizeof(real) * (size_t)(dk * dv)),
  };
  return w;
}

static void scratch_free(scratch *w) {
  free(w->b);
  free(w->qe);
  free(w->kd);
  free(w->a);
  free(w->dp);
  free(w->tmp);
  free(w->s);
}

/* exp(gamma (t - s)) below and on the diagonal, 0 above: the decay mask of a constant decay. */
static void decay_mask(real *m, int64_t n, int64_t ld, real gamma) {
  for (int64_t t = 0; t < n; t++)
    for (int64_t s = 0; s < n; s++) m[t * ld + s] = s <= t ? real_exp(gamma * (real)(t - s)) : 0;
}

/* The per-head constant log decay, when there is no g. */
static real head_gamma(const hy_gla_dims *dm, int64_t h) {
  return dm->head_decay ? (real)dm->head_decay[h] : 0;
}

/* The chunk [t0, t0 + n) of one head: rows of q, k (dk wide) and g are ld apart. Fills b, qe, kd
 * and the intra-chunk scores A. */
static void chunk_prepare(const hy_gla_dims *dm, const real *q, const real *k, const real *g,
                          real gamma, int64_t n, scratch *w) {
  int64_t dk = dm->dk, ld = dm->H * dk, C = dm->C;
  for (int64_t t = 0; t < n; t++) {
    real *bt = w->b + t * dk;
    for (int64_t i = 0; i < dk; i++) {
      real prev = t ? w->b[(t - 1) * dk + i] : 0;
      bt[i] = prev + (g ? g[t * ld + i] : gamma);
    }
  }
  const real *bl = w->b + (n - 1) * dk;
  for (int64_t t = 0; t < n; t++) {
    const real *qt = q + t * ld, *kt = k + t * ld, *bt = w->b + t * dk;
    for (int64_t i = 0; i < dk; i++) {
      w->qe[t * dk + i] = qt[i] * real_exp(bt[i]);
      w->kd[t * dk + i] = kt[i] * real_exp(bl[i] - bt[i]);
    }
  }
  if (!g) { /* A = (Q K^T) * D */
    K(cpu_gemm)(false, true, n, n, dk, 1.0, q, ld, k, ld, 0.0, w->a, C);
    decay_mask(w->dp, n, C, gamma);
    for (int64_t t = 0; t < n; t++)
      for (int64_t s = 0; s < n; s++) w->a[t * C + s] *= w->dp[t * C + s];
    return;
  }
  for (int64_t t = 0; t < n; t++) {
    const real *qt = q + t * ld, *bt = w->b + t * dk;
    for (int64_t s = 0; s <= t; s++) {
      const real *ks = k + s * ld, *bs = w->b + s * dk;
      real acc = 0;
      for (int64_t i = 0; i < dk; i++) acc += qt[i] * ks[i] * real_exp(bt[i] - bs[i]);
      w->a[t * C + s] = acc;
    }
  }
}

static void forward_head(const hy_gla_dims *dm, const real *q, const real *k, const real *v,
                         const real *g, real *o, real *states, int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->T, C = dm->C, dk = dm->dk, dv = dm->dv, ldv = dm->H * dv;
  memset(w->s, 0, sizeof(real) * (size_t)(dk * dv));
  for (int64_t c = 0, t0 = 0; t0 < T; c++, t0 += C) {
    int64_t n = T - t0 < C ? T - t0 : C;
    int64_t ok = ((b * T + t0) * dm->H + h) * dk, ov = ((b * T + t0) * dm->H + h) * dv;
    chunk_prepare(dm, q + ok, k + ok, g ? g + ok : NULL, head_gamma(dm, h), n, w);
    memcpy(states + c * dk * dv, w->s, sizeof(real) * (size_t)(dk * dv));
    /* o = (q * exp(b)) S + A V; A is lower triangular, so its zeros above cost nothing wrong. */
    for (int64_t t = 0; t < n; t++)
      for (int64_t s = t + 1; s < n; s++) w->a[t * C + s] = 0;
    K(cpu_gemm)(false, false, n, dv, dk, 1.0, w->qe, dk, w->s, dv, 0.0, o + ov, ldv);
    K(cpu_gemm)(false, false, n, dv, n, 1.0, w->a, C, v + ov, ldv, 1.0, o + ov, ldv);
    /* S <- diag(exp(B)) S + (k * exp(B - b))^T v */
    const real *bl = w->b + (n - 1) * dk;
    for (int64_t i = 0; i < dk; i++) {
      real decay = real_exp(bl[i]);
      for (int64_t j = 0; j < dv; j++) w->s[i * dv + j] *= decay;
    }
    K(cpu_gemm)(true, false, dk, dv, n, 1.0, w->kd, dk, v + ov, ldv, 1.0, w->s, dv);
  }
}

void K(cpu_gla)(const hy_gla_dims *dm, const real *q, const real *k, const real *v, const real *g,
                real *o, real *states) {
  int64_t per_head = dm->n_chunks * dm->dk * dm->dv;
#pragma omp parallel
  {
    scratch w = scratch_new(dm->C, dm->dk, dm->dv);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      forward_head(dm, q, k, v, g, o, states + bh * per_head, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
}

static void backward_head(const hy_gla_dims *dm, const real *q, const real *k, const real *v,
                          const real *g, const real *states, const real *go, real *gq, real *gk,
                          real *gv, int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->T, C = dm->C, dk = dm->dk, dv = dm->dv;
  int64_t ldk = dm->H * dk, ldv = dm->H * dv;
  memset(w->s, 0, sizeof(real) * (size_t)(dk * dv)); /* dS: nothing comes after the last chunk */
  for (int64_t c = dm->n_chunks - 1; c >= 0; c--) {
    int64_t t0 = c * C, n = T - t0 < C ? T - t0 : C;
    int64_t ok = ((b * T + t0) * dm->H + h) * dk, ov = ((b * T + t0) * dm->H + h) * dv;
    const real *qc = q + ok, *kc = k + ok, *vc = v + ov, *goc = go + ov;
    const real *sprev = states + c * dk * dv;
    real gamma = head_gamma(dm, h);
    chunk_prepare(dm, qc, kc, g ? g + ok : NULL, gamma, n, w);
    const real *bl = w->b + (n - 1) * dk;
    /* dP = dO V^T inside the chunk */
    K(cpu_gemm)(false, true, n, n, dv, 1.0, goc, ldv, vc, ldv, 0.0, w->dp, C);
    /* dq = exp(b) * (dO S^T) + pairs;  dk = exp(B - b) * (V dS^T) + pairs */
    K(cpu_gemm)(false, true, n, dk, dv, 1.0, goc, ldv, sprev, dv, 0.0, w->tmp, dk);
    for (int64_t t = 0; t < n; t++)
      for (int64_t i = 0; i < dk; i++)
        gq[ok + t * ldk + i] += w->tmp[t * dk + i] * real_exp(w->b[t * dk + i]);
    K(cpu_gemm)(false, true, n, dk, dv, 1.0, vc, ldv, w->s, dv, 0.0, w->tmp, dk);
    for (int64_t t = 0; t < n; t++)
      for (int64_t i = 0; i < dk; i++)
        gk[ok + t * ldk + i] += w->tmp[t * dk + i] * real_exp(bl[i] - w->b[t * dk + i]);
    if (!g) { /* W = dP * D; dq += W K, dk += W^T Q */
      decay_mask(w->tmp, n, C, gamma);
      for (int64_t t = 0; t < n; t++)
        for (int64_t s = 0; s < n; s++) w->dp[t * C + s] *= w->tmp[t * C + s];
      K(cpu_gemm)(false, false, n, dk, n, 1.0, w->dp, C, kc, ldk, 1.0, gq + ok, ldk);
      K(cpu_gemm)(true, false, n, dk, n, 1.0, w->dp, C, qc, ldk, 1.0, gk + ok, ldk);
    }
    for (int64_t t = 0; g && t < n; t++) {
      const real *qt = qc + t * ldk, *bt = w->b + t * dk;
      real *gqt = gq + ok + t * ldk;
      for (int64_t s = 0; s <= t; s++) {
        const real *ks = kc + s * ldk, *bs = w->b + s * dk;
        real *gks = gk + ok + s * ldk, p = w->dp[t * C + s];
        for (int64_t i = 0; i < dk; i++) {
          real e = p * real_exp(bt[i] - bs[i]);
          gqt[i] += e * ks[i];
          gks[i] += e * qt[i];
        }
      }
    }
    /* dv = (k * exp(B - b)) dS + A^T dO */
    for (int64_t t = 0; t < n; t++)
      for (int64_t s = t + 1; s < n; s++) w->a[t * C + s] = 0;
    K(cpu_gemm)(false, false, n, dv, dk, 1.0, w->kd, dk, w->s, dv, 1.0, gv + ov, ldv);
    K(cpu_gemm)(true, false, n, dv, n, 1.0, w->a, C, goc, ldv, 1.0, gv + ov, ldv);
    /* dS <- diag(exp(B)) dS + (q * exp(b))^T dO, for the chunk before */
    for (int64_t i = 0; i < dk; i++) {
      real decay = real_exp(bl[i]);
      for (int64_t j = 0; j < dv; j++) w->s[i * dv + j] *= decay;
    }
    K(cpu_gemm)(true, false, dk, dv, n, 1.0, w->qe, dk, goc, ldv, 1.0, w->s, dv);
  }
}

void K(cpu_gla_backward)(const hy_gla_dims *dm, const real *q, const real *k, const real *v,
                         const real *g, const real *states, const real *go, real *gq, real *gk,
                         real *gv) {
  int64_t per_head = dm->n_chunks * dm->dk * dm->dv;
#pragma omp parallel
  {
    scratch w = scratch_new(dm->C, dm->dk, dm->dv);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      backward_head(dm, q, k, v, g, states + bh * per_head, go, gq, gk, gv, bh / dm->H, bh % dm->H,
                    &w);
    scratch_free(&w);
  }
}

/* gg_t += sum_{t' >= t} (q_t' * dq_t' - k_t' * dk_t'), per batch, over all heads' channels at once
 * (the running sums of one batch row are H * dk wide). */
void K(cpu_gla_gate_grad)(const hy_gla_dims *dm, const real *q, const real *k, const real *dq,
                          const real *dk, real *gg) {
  int64_t T = dm->T, width = dm->H * dm->dk;
#pragma omp parallel for if (dm->B * T * width > PAR_MIN) schedule(static)
  for (int64_t b = 0; b < dm->B; b++) {
    real *run = xmalloc(sizeof(real) * (size_t)width);
    memset(run, 0, sizeof(real) * (size_t)width);
    for (int64_t t = T - 1; t >= 0; t--) {
      int64_t at = (b * T + t) * width;
      for (int64_t i = 0; i < width; i++) {
        run[i] += q[at + i] * dq[at + i] - k[at + i] * dk[at + i];
        gg[at + i] += run[i];
      }
    }
    free(run);
  }
}
