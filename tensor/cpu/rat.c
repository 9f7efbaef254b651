#include "tensor/cpu/real.h"

#include <stdlib.h>
#include <string.h>

/* RAT on the CPU (the math: tensor/rat.c). One (batch, head) pair is one task. The task first
 * runs the gated recurrence over the whole sequence into two [T, D] buffers (the running value
 * and key states), rotates the chunk-final keys into a third, then goes over the queries in tiles
 * of TILE rows as tensor/cpu/attention.c does: the own-state key starts each row's online softmax
 * (running max and sum), the chunk-final keys follow in tiles, each tile product one small GEMM,
 * and the row's log-sum-exp is saved. The backward recomputes the states (O(T D), cheaper than
 * keeping them), walks the same tiles from the saved log-sum-exp, then scans the recurrence in
 * reverse. The chunk-final values are rows (c + 1) L - 1 of the value states, read in place with
 * a leading dimension of L D. */

enum { TILE = 64 };

typedef struct {
  real *xs, *ks; /* [T, D]: running value and key states (keys unrotated) */
  real *kc;      /* [n_keys, D]: the chunk-final keys, rotated by their chunk */
  real *qr, *dq; /* [TILE, D]: a tile of rotated queries; its gradient (backward) */
  real *acc;     /* [TILE, D]: output accumulator (forward) */
  real *s, *p;   /* [TILE, TILE]: scores or probabilities, dP or dS */
  real *m, *l;   /* [TILE]: running max and sum (forward); go . o (backward) */
  real *gx, *gk; /* [T, D]: gradients of the states (backward) */
  real *gkc;     /* [n_keys, D]: gradients of the rotated chunk-final keys (backward) */
} scratch;

static real *get(size_t n) {
  real *p = malloc(sizeof(real) * (n ? n : 1));
  if (!p) hy_die("rat", "out of memory");
  return p;
}

static scratch scratch_new(const hy_rat_dims *dm, bool backward) {
  size_t TD = (size_t)(dm->T * dm->D), KD = (size_t)(dm->n_keys * dm->D), tD = TILE * dm->D;
  scratch w = {0};
  w.xs = get(TD);
  w.ks = get(TD);
  w.kc = get(KD);
  w.qr = get(tD);
  w.acc = get(tD);
  w.s = get(TILE * TILE);
  w.p = get(TILE * TILE);
  w.m = get(TILE);
  w.l = get(TILE);
  if (backward) {
    w.dq = get(tD);
    w.gx = get(TD);
    w.gk = get(TD);
    w.gkc = get(KD);
  }
  return w;
}

static void scratch_free(scratch *w) {
  real *all[] = {w->xs, w->ks, w->kc, w->qr, w->acc, w->s,  w->p,
                 w->m,  w->l,  w->dq, w->gx, w->gk,  w->gkc};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* cos and sin of chunk c's angles c theta^(-2i/D), i < D/2: [n_chunks, D/2] each, the angles in
 * double as in tensor/cpu/rope.c. */
static void rope_tables(const hy_rat_dims *dm, real *cs, real *sn) {
  int64_t half = dm->D / 2, n_chunks = (dm->T + dm->L - 1) / dm->L;
  for (int64_t c = 0; c < n_chunks; c++)
    for (int64_t i = 0; i < half; i++) {
      double angle = (double)c * pow(dm->theta, -2.0 * (double)i / (double)dm->D);
      cs[c * half + i] = (real)cos(angle);
      sn[c * half + i] = (real)sin(angle);
    }
}

/* y = R x (rotate-half by the angles of cs, sn). */
static void rotate(int64_t D, const real *cs, const real *sn, const real *x, real *y) {
  int64_t half = D / 2;
  for (int64_t i = 0; i < half; i++) {
    real x1 = x[i], x2 = x[i + half];
    y[i] = x1 * cs[i] - x2 * sn[i];
    y[i + half] = x2 * cs[i] + x1 * sn[i];
  }
}

/* x += R^T y */
static void unrotate_add(int64_t D, const real *cs, const real *sn, const real *y, real *x) {
  int64_t half = D / 2;
  for (int64_t i = 0; i < half; i++) {
    real y1 = y[i], y2 = y[i + half];
    x[i] += y1 * cs[i] + y2 * sn[i];
    x[i + half] += y2 * cs[i] - y1 * sn[i];
  }
}

static real dot(int64_t n, const real *a, const real *b) {
  real s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* The recurrence of head h in batch b: xs_t = f_t xs_{t-1} + (1 - f_t) u_t, likewise ks from k,
 * both starting from 0 at each chunk's first token. */
static void recur(const hy_rat_dims *dm, const real *u, const real *k, const real *f, int64_t b,
                  int64_t h, real *xs, real *ks) {
  int64_t T = dm->T, D = dm->D, ld = dm->H * D;
  for (int64_t t = 0; t < T; t++) {
    int64_t off = (b * T + t) * ld + h * D;
    const real *ut = u + off, *kt = k + off, *ft = f + off;
    real *xt = xs + t * D, *kst = ks + t * D;
    if (t % dm->L == 0) {
      for (int64_t d = 0; d < D; d++) {
        xt[d] = (1 - ft[d]) * ut[d];
        kst[d] = (1 - ft[d]) * kt[d];
      }
    } else {
      const real *xp = xt - D, *kp = kst - D;
      for (int64_t d = 0; d < D; d++) {
        xt[d] = ft[d] * xp[d] + (1 - ft[d]) * ut[d];
        kst[d] = ft[d] * kp[d] + (1 - ft[d]) * kt[d];
      }
    }
  }
}

/* The states of the head and its rotated chunk-final keys kc_c = R(c) ks_{(c+1) L - 1}. */
static void prepare(const hy_rat_dims *dm, const real *cs, const real *sn, const real *u,
                    const real *k, const real *f, int64_t b, int64_t h, scratch *w) {
  int64_t D = dm->D, half = D / 2;
  recur(dm, u, k, f, b, h, w->xs, w->ks);
  for (int64_t c = 0; c < dm->n_keys; c++)
    rotate(D, cs + c * half, sn + c * half, w->ks + ((c + 1) * dm->L - 1) * D, w->kc + c * D);
}

/* Rotated queries of the tile of nq rows at i0: qr_r = R(floor(t / L)) q_t. */
static void rotate_queries(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                           int64_t b, int64_t h, int64_t i0, int64_t nq, real *qr) {
  int64_t D = dm->D, half = D / 2, ld = dm->H * D;
  for (int64_t r = 0; r < nq; r++) {
    int64_t t = i0 + r, c = t / dm->L;
    rotate(D, cs + c * half, sn + c * half, q + (b * dm->T + t) * ld + h * D, qr + r * D);
  }
}

/* s = scale Qr Kc^T for the tile's rows against keys j0 .. j0 + nk - 1, with each key c masked
 * out for the rows whose own chunk it is not strictly before (c >= floor(t / L)). */
static void tile_scores(const hy_rat_dims *dm, const scratch *w, int64_t i0, int64_t nq, int64_t j0,
                        int64_t nk, real *s) {
  K(cpu_gemm)
  (false, true, nq, nk, dm->D, dm->scale, w->qr, dm->D, w->kc + j0 * dm->D, dm->D, 0.0, s, TILE);
  for (int64_t r = 0; r < nq; r++) {
    int64_t visible = (i0 + r) / dm->L - j0; /* keys of the tile the row sees */
    for (int64_t c = visible < 0 ? 0 : visible; c < nk; c++) s[r * TILE + c] = -INFINITY;
  }
}

/* The number of chunk-final keys that some row of the tile [i0, i0 + nq) sees. */
static int64_t keys_seen(const hy_rat_dims *dm, int64_t i0, int64_t nq) {
  return (i0 + nq - 1) / dm->L;
}

static void forward_head(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                         const real *u, const real *k, const real *f, real *o, real *lse, int64_t b,
                         int64_t h, scratch *w) {
  int64_t T = dm->T, D = dm->D, H = dm->H, L = dm->L, ld = H * D;
  real scale = (real)dm->scale;
  prepare(dm, cs, sn, u, k, f, b, h, w);
  real *lse_h = lse + (b * H + h) * T;
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    rotate_queries(dm, cs, sn, q, b, h, i0, nq, w->qr);
    /* The own running state is every row's first key: q_t . ks_t needs no rotation, as both
     * would turn by the same angle. */
    for (int64_t r = 0; r < nq; r++) {
      int64_t t = i0 + r;
      w->m[r] = scale * dot(D, q + (b * T + t) * ld + h * D, w->ks + t * D);
      w->l[r] = 1;
      memcpy(w->acc + r * D, w->xs + t * D, sizeof(real) * (size_t)D);
    }
    int64_t nkeys = keys_seen(dm, i0, nq);
    for (int64_t j0 = 0; j0 < nkeys; j0 += TILE) {
      int64_t nk = nkeys - j0 < TILE ? nkeys - j0 : TILE;
      tile_scores(dm, w, i0, nq, j0, nk, w->s);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * TILE, *pr = w->p + r * TILE;
        real mx = w->m[r];
        for (int64_t c = 0; c < nk; c++) mx = sr[c] > mx ? sr[c] : mx;
        real alpha = hy_exp(w->m[r] - mx), sum = 0;
        for (int64_t c = 0; c < nk; c++) {
          pr[c] = hy_exp(sr[c] - mx);
          sum += pr[c];
        }
        w->l[r] = w->l[r] * alpha + sum;
        w->m[r] = mx;
        real *ar = w->acc + r * D;
        for (int64_t d = 0; d < D; d++) ar[d] *= alpha;
      }
      const real *vj = w->xs + ((j0 + 1) * L - 1) * D; /* value c at row (c + 1) L - 1 */
      K(cpu_gemm)(false, false, nq, D, nk, 1.0, w->p, TILE, vj, L * D, 1.0, w->acc, D);
    }
    for (int64_t r = 0; r < nq; r++) {
      real *orow = o + (b * T + i0 + r) * ld + h * D, inv = 1 / w->l[r];
      for (int64_t d = 0; d < D; d++) orow[d] = w->acc[r * D + d] * inv;
      lse_h[i0 + r] = w->m[r] + log(w->l[r]);
    }
  }
}

void K(cpu_rat)(const hy_rat_dims *dm, const real *q, const real *u, const real *k, const real *f,
                real *o, real *lse) {
  int64_t half = dm->D / 2, n_chunks = (dm->T + dm->L - 1) / dm->L;
  real *cs = get((size_t)(n_chunks * half)), *sn = get((size_t)(n_chunks * half));
  rope_tables(dm, cs, sn);
#pragma omp parallel
  {
    scratch w = scratch_new(dm, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      forward_head(dm, cs, sn, q, u, k, f, o, lse, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
  free(cs);
  free(sn);
}

/* The attention part's backward for one tile of queries. With p the probabilities (recomputed
 * from the saved log-sum-exp) and di_t = go_t . o_t, every key j of row t (own state or chunk
 * final) gets dS_tj = p_tj (go_t . v_j - di_t): dQr_t += scale dS K, dKc += scale dS^T Qr,
 * dV += P^T go. The own key's share goes to the unrotated q, ks and xs directly. */
static void backward_tile(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                          const real *o, const real *lse_h, const real *go, real *gq, int64_t b,
                          int64_t h, int64_t i0, int64_t nq, scratch *w) {
  int64_t T = dm->T, D = dm->D, L = dm->L, half = D / 2, ld = dm->H * D;
  real scale = (real)dm->scale;
  real *di = w->m;
  const real *goi = go + (b * T + i0) * ld + h * D;
  rotate_queries(dm, cs, sn, q, b, h, i0, nq, w->qr);
  memset(w->dq, 0, sizeof(real) * (size_t)(nq * D));
  for (int64_t r = 0; r < nq; r++) {
    int64_t t = i0 + r, off = (b * T + t) * ld + h * D;
    const real *gor = go + off, *qt = q + off, *kst = w->ks + t * D, *xst = w->xs + t * D;
    di[r] = dot(D, gor, o + off);
    real p = hy_exp(scale * dot(D, qt, kst) - lse_h[t]);
    real ds = scale * p * (dot(D, gor, xst) - di[r]);
    real *gkt = w->gk + t * D, *gxt = w->gx + t * D;
    for (int64_t d = 0; d < D; d++) {
      gkt[d] += ds * qt[d];
      gxt[d] += p * gor[d];
    }
    if (gq)
      for (int64_t d = 0; d < D; d++) gq[off + d] += ds * kst[d];
  }
  int64_t nkeys = keys_seen(dm, i0, nq);
  for (int64_t j0 = 0; j0 < nkeys; j0 += TILE) {
    int64_t nk = nkeys - j0 < TILE ? nkeys - j0 : TILE;
    const real *vj = w->xs + ((j0 + 1) * L - 1) * D;
    tile_scores(dm, w, i0, nq, j0, nk, w->s);
    for (int64_t r = 0; r < nq; r++)
      for (int64_t c = 0; c < nk; c++)
        w->s[r * TILE + c] = hy_exp(w->s[r * TILE + c] - lse_h[i0 + r]);
    K(cpu_gemm)
    (true, false, nk, D, nq, 1.0, w->s, TILE, goi, ld, 1.0, w->gx + ((j0 + 1) * L - 1) * D, L * D);
    K(cpu_gemm)(false, true, nq, nk, D, 1.0, goi, ld, vj, L * D, 0.0, w->p, TILE);
    for (int64_t r = 0; r < nq; r++)
      for (int64_t c = 0; c < nk; c++) {
        int64_t x = r * TILE + c;
        w->p[x] = scale * w->s[x] * (w->p[x] - di[r]);
      }
    K(cpu_gemm)(false, false, nq, D, nk, 1.0, w->p, TILE, w->kc + j0 * D, D, 1.0, w->dq, D);
    K(cpu_gemm)(true, false, nk, D, nq, 1.0, w->p, TILE, w->qr, D, 1.0, w->gkc + j0 * D, D);
  }
  if (gq)
    for (int64_t r = 0; r < nq; r++) {
      int64_t t = i0 + r, c = t / L;
      unrotate_add(D, cs + c * half, sn + c * half, w->dq + r * D, gq + (b * T + t) * ld + h * D);
    }
}

/* The recurrence's backward, in reverse inside each chunk: the states' gradients gather what
 * the next step passes back (gx_t += f_{t+1} gx_{t+1} within a chunk), then du_t = (1 - f_t)
 * gx_t, dk_t = (1 - f_t) gk_t and df_t = gx_t (xs_{t-1} - u_t) + gk_t (ks_{t-1} - k_t), with the
 * states before a chunk's first token 0. */
static void recur_backward(const hy_rat_dims *dm, const real *u, const real *k, const real *f,
                           int64_t b, int64_t h, scratch *w, real *gu, real *gk, real *gf) {
  int64_t T = dm->T, D = dm->D, ld = dm->H * D;
  for (int64_t t = T - 1; t >= 0; t--) {
    int64_t off = (b * T + t) * ld + h * D;
    real *gxt = w->gx + t * D, *gkt = w->gk + t * D;
    if (t + 1 < T && (t + 1) % dm->L != 0) {
      const real *fn = f + off + ld, *gxn = gxt + D, *gkn = gkt + D;
      for (int64_t d = 0; d < D; d++) {
        gxt[d] += fn[d] * gxn[d];
        gkt[d] += fn[d] * gkn[d];
      }
    }
    const real *ft = f + off, *ut = u + off, *kt = k + off;
    if (gu)
      for (int64_t d = 0; d < D; d++) gu[off + d] += (1 - ft[d]) * gxt[d];
    if (gk)
      for (int64_t d = 0; d < D; d++) gk[off + d] += (1 - ft[d]) * gkt[d];
    if (gf) {
      if (t % dm->L == 0)
        for (int64_t d = 0; d < D; d++) gf[off + d] -= gxt[d] * ut[d] + gkt[d] * kt[d];
      else {
        const real *xp = w->xs + (t - 1) * D, *kp = w->ks + (t - 1) * D;
        for (int64_t d = 0; d < D; d++)
          gf[off + d] += gxt[d] * (xp[d] - ut[d]) + gkt[d] * (kp[d] - kt[d]);
      }
    }
  }
}

static void backward_head(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                          const real *u, const real *k, const real *f, const real *o,
                          const real *lse, const real *go, real *gq, real *gu, real *gk, real *gf,
                          int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->T, D = dm->D, half = D / 2;
  prepare(dm, cs, sn, u, k, f, b, h, w);
  memset(w->gx, 0, sizeof(real) * (size_t)(T * D));
  memset(w->gk, 0, sizeof(real) * (size_t)(T * D));
  memset(w->gkc, 0, sizeof(real) * (size_t)(dm->n_keys * D));
  const real *lse_h = lse + (b * dm->H + h) * T;
  for (int64_t i0 = 0; i0 < T; i0 += TILE)
    backward_tile(dm, cs, sn, q, o, lse_h, go, gq, b, h, i0, T - i0 < TILE ? T - i0 : TILE, w);
  for (int64_t c = 0; c < dm->n_keys; c++)
    unrotate_add(D, cs + c * half, sn + c * half, w->gkc + c * D,
                 w->gk + ((c + 1) * dm->L - 1) * D);
  recur_backward(dm, u, k, f, b, h, w, gu, gk, gf);
}

void K(cpu_rat_backward)(const hy_rat_dims *dm, const real *q, const real *u, const real *k,
                         const real *f, const real *o, const real *lse, const real *go, real *gq,
                         real *gu, real *gk, real *gf) {
  int64_t half = dm->D / 2, n_chunks = (dm->T + dm->L - 1) / dm->L;
  real *cs = get((size_t)(n_chunks * half)), *sn = get((size_t)(n_chunks * half));
  rope_tables(dm, cs, sn);
#pragma omp parallel
  {
    scratch w = scratch_new(dm, true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      backward_head(dm, cs, sn, q, u, k, f, o, lse, go, gq, gu, gk, gf, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
  free(cs);
  free(sn);
}
