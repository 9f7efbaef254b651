#include "tensor/cpu/real.h"

#include <stdlib.h>
#include <string.h>

/* Causal softmax attention, one (batch, head) pair per task, one query row at a time: the scores
 * of a row live in a scratch row of length T, never in a T x T matrix. K and V are transposed
 * once per head so that every inner loop runs over contiguous memory and vectorizes. The
 * forward saves the log-sum-exp of each row; the backward recomputes the probabilities from it. */

typedef struct {
  real *kt, *vt;     /* [D, T]: K and V of this head, transposed */
  real *s, *p, *dp;  /* [T]: one row's scores, probabilities, and dP */
  real *gk, *gv;     /* [T, D]: this head's dK, dV (backward only) */
} scratch;

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) hy_die("attention", "out of memory");
  return p;
}

static scratch scratch_new(int64_t T, int64_t D, bool backward) {
  scratch w = {0};
  w.kt = xcalloc((size_t)(T * D), sizeof(real));
  w.vt = xcalloc((size_t)(T * D), sizeof(real));
  w.s = xcalloc((size_t)T, sizeof(real));
  w.p = xcalloc((size_t)T, sizeof(real));
  w.dp = xcalloc((size_t)T, sizeof(real));
  if (backward) {
    w.gk = xcalloc((size_t)(T * D), sizeof(real));
    w.gv = xcalloc((size_t)(T * D), sizeof(real));
  }
  return w;
}

static void scratch_free(scratch *w) {
  free(w->kt);
  free(w->vt);
  free(w->s);
  free(w->p);
  free(w->dp);
  free(w->gk);
  free(w->gv);
}

static const real *row(const real *base, const int64_t *stride, int64_t b, int64_t t, int64_t h) {
  return base + b * stride[0] + t * stride[1] + h * stride[2];
}

/* Transpose one head's rows of x [.., T, .., D] into xt [D, T]. */
static void transpose_head(const real *x, const int64_t *stride, int64_t b, int64_t h, int64_t T,
                           int64_t D, real *xt) {
  for (int64_t t = 0; t < T; t++) {
    const real *r = row(x, stride, b, t, h);
    for (int64_t d = 0; d < D; d++) xt[d * T + t] = r[d];
  }
}

/* s[j] = scale * q . k_j for j <= i. */
static void scores(const real *q, const real *kt, int64_t T, int64_t D, int64_t i, real scale,
                   real *s) {
  int64_t n = i + 1;
  for (int64_t j = 0; j < n; j++) s[j] = 0;
  for (int64_t d = 0; d < D; d++) {
    real qd = q[d] * scale;
    const real *kd = kt + d * T;
    for (int64_t j = 0; j < n; j++) s[j] += qd * kd[j];
  }
}

void K(cpu_attention)(const hy_attn_dims *dm, const real *q, const real *k, const real *v,
                      real *o, real *lse) {
  int64_t B = dm->B, T = dm->T, H = dm->H, D = dm->D;
  real scale = (real)dm->scale;
#pragma omp parallel
  {
    scratch w = scratch_new(T, D, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
      int64_t b = bh / H, h = bh % H;
      transpose_head(k, dm->k_stride, b, h, T, D, w.kt);
      for (int64_t i = 0; i < T; i++) {
        scores(row(q, dm->q_stride, b, i, h), w.kt, T, D, i, scale, w.s);
        real m = w.s[0];
        for (int64_t j = 1; j <= i; j++) m = w.s[j] > m ? w.s[j] : m;
        real l = 0;
        for (int64_t j = 0; j <= i; j++) {
          w.p[j] = exp(w.s[j] - m);
          l += w.p[j];
        }
        real *oi = o + ((b * T + i) * H + h) * D;
        for (int64_t d = 0; d < D; d++) oi[d] = 0;
        for (int64_t j = 0; j <= i; j++) {
          const real *vj = row(v, dm->v_stride, b, j, h);
          real pj = w.p[j];
          for (int64_t d = 0; d < D; d++) oi[d] += pj * vj[d];
        }
        real inv = 1 / l;
        for (int64_t d = 0; d < D; d++) oi[d] *= inv;
        lse[(b * H + h) * T + i] = m + log(l);
      }
    }
    scratch_free(&w);
  }
}

/* With P = exp(S - lse), Di = dO_i . O_i: dV += P^T dO, dS = P * (dO V^T - Di),
 * dQ += scale dS K, dK += scale dS^T Q. Gradients are contiguous [B, T, H, D]. */
void K(cpu_attention_backward)(const hy_attn_dims *dm, const real *q, const real *k,
                               const real *v, const real *o, const real *lse, const real *go,
                               real *gq, real *gk, real *gv) {
  int64_t B = dm->B, T = dm->T, H = dm->H, D = dm->D;
  real scale = (real)dm->scale;
#pragma omp parallel
  {
    scratch w = scratch_new(T, D, true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
      int64_t b = bh / H, h = bh % H;
      transpose_head(k, dm->k_stride, b, h, T, D, w.kt);
      transpose_head(v, dm->v_stride, b, h, T, D, w.vt);
      memset(w.gk, 0, (size_t)(T * D) * sizeof(real));
      memset(w.gv, 0, (size_t)(T * D) * sizeof(real));
      for (int64_t i = 0; i < T; i++) {
        const real *qi = row(q, dm->q_stride, b, i, h);
        int64_t at = ((b * T + i) * H + h) * D;
        const real *goi = go + at, *oi = o + at;
        real *gqi = gq ? gq + at : NULL;
        real li = lse[(b * H + h) * T + i], di = 0;
        for (int64_t d = 0; d < D; d++) di += goi[d] * oi[d];
        scores(qi, w.kt, T, D, i, scale, w.s);
        for (int64_t j = 0; j <= i; j++) w.p[j] = exp(w.s[j] - li);
        for (int64_t j = 0; j <= i; j++) w.dp[j] = 0;
        for (int64_t d = 0; d < D; d++) {
          real g = goi[d];
          const real *vd = w.vt + d * T;
          for (int64_t j = 0; j <= i; j++) w.dp[j] += g * vd[j];
        }
        for (int64_t j = 0; j <= i; j++) {
          real pj = w.p[j], dsj = pj * (w.dp[j] - di) * scale;
          real *gkj = w.gk + j * D, *gvj = w.gv + j * D;
          for (int64_t d = 0; d < D; d++) {
            gvj[d] += pj * goi[d];
            gkj[d] += dsj * qi[d];
          }
          if (gqi) {
            const real *kj = row(k, dm->k_stride, b, j, h);
            for (int64_t d = 0; d < D; d++) gqi[d] += dsj * kj[d];
          }
        }
      }
      for (int64_t t = 0; t < T; t++) {
        int64_t at = ((b * T + t) * H + h) * D;
        if (gk)
          for (int64_t d = 0; d < D; d++) gk[at + d] += w.gk[t * D + d];
        if (gv)
          for (int64_t d = 0; d < D; d++) gv[at + d] += w.gv[t * D + d];
      }
    }
    scratch_free(&w);
  }
}
