#include "tensor/cpu/real.h"

#include <stdlib.h>
#include <string.h>

/* RAT on the CPU (the math: tensor/rat.c). One (batch, head) pair is one task. The task first
 * runs the gated recurrence over the whole sequence into two [T, D] buffers (the running value
 * and key states), and lays out the keys the rows see: the P earlier chunks' final states
 * (hy_rat_after), then the slice's own chunk-final states, keys rotated by their chunk, values
 * copied. It then goes over the queries in tiles of TILE rows as tensor/cpu/attention.c does: the
 * own-state key starts each row's online softmax (running max and sum), the chunk keys follow in
 * tiles, each tile product one small GEMM, and the row's log-sum-exp is saved. The backward
 * recomputes the states (O(T D), cheaper than keeping them), walks the same tiles from the saved
 * log-sum-exp, hands the chunk keys' gradients back to the earlier chunks and to the states, then
 * scans the recurrence in reverse. hy_rat_chunk_ends runs the same recurrence. */

enum { TILE = 64 };

typedef struct {
  real *xs, *ks; /* [T, D]: running value and key states (keys unrotated) */
  real *kc, *vc; /* [P + n_keys, D]: the chunk keys (rotated by their chunk) and values */
  real *qr, *dq; /* [TILE, D]: a tile of rotated queries; its gradient (backward) */
  real *acc;     /* [TILE, D]: output accumulator (forward) */
  real *s, *p;   /* [TILE, TILE]: scores or probabilities, dP or dS */
  real *m, *l;   /* [TILE]: running max and sum (forward); go . o (backward) */
  real *gx, *gk; /* [T, D]: gradients of the states (backward) */
  real *gkc;     /* [P + n_keys, D]: gradients of the rotated chunk keys (backward) */
  real *gvc;     /* [P + n_keys, D]: gradients of the chunk values (backward) */
} scratch;

static real *get(size_t n) { return real_alloc("rat", n); }

static scratch scratch_new(const hy_rat_dims *dm, bool backward) {
  size_t TD = (size_t)(dm->T * dm->D), KD = (size_t)((dm->P + dm->n_keys) * dm->D),
         tD = TILE * dm->D;
  scratch w = {0};
  w.xs = get(TD);
  w.ks = get(TD);
  w.kc = get(KD);
  w.vc = get(KD);
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
    w.gvc = get(KD);
  }
  return w;
}

static void scratch_free(scratch *w) {
  real *all[] = {w->xs, w->ks, w->kc, w->vc, w->qr, w->acc, w->s,  w->p,
                 w->m,  w->l,  w->dq, w->gx, w->gk, w->gkc, w->gvc};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* The chunks of the RoPE tables: the earlier ones and the slice's. */
static int64_t table_chunks(const hy_rat_dims *dm) { return dm->P + (dm->T + dm->L - 1) / dm->L; }

/* cos and sin of chunk c's angles c theta^(-2i/D), i < D/2: [table_chunks, D/2] each, the angles
 * in double as in tensor/cpu/rope.c. */
static void rope_tables(const hy_rat_dims *dm, real *cs, real *sn) {
  int64_t half = dm->D / 2, n_chunks = table_chunks(dm);
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

/* The recurrence of head h in batch b over x: s_t = f_t s_{t-1} + (1 - f_t) x_t, from 0 at each
 * chunk's first token, into s [T, D]. */
static void scan(const hy_rat_dims *dm, const real *x, const real *f, int64_t b, int64_t h,
                 real *s) {
  int64_t T = dm->T, D = dm->D, ld = dm->H * D;
  for (int64_t t = 0; t < T; t++) {
    int64_t off = (b * T + t) * ld + h * D;
    const real *xt = x + off, *ft = f + off;
    real *st = s + t * D;
    if (t % dm->L == 0)
      for (int64_t d = 0; d < D; d++) st[d] = (1 - ft[d]) * xt[d];
    else
      for (int64_t d = 0; d < D; d++) st[d] = ft[d] * st[d - D] + (1 - ft[d]) * xt[d];
  }
}

/* The states of the head, and its chunk keys and values: for p < P the earlier chunks'
 * kc_p = R(p) kp_p and vc_p = vp_p, then for the slice's chunks c kc_{P+c} = R(P + c) ks_e and
 * vc_{P+c} = xs_e at their last tokens e = (c + 1) L - 1. */
static void prepare(const hy_rat_dims *dm, const real *cs, const real *sn, const real *u,
                    const real *k, const real *f, const real *kp, const real *vp, int64_t b,
                    int64_t h, scratch *w) {
  int64_t D = dm->D, half = D / 2, P = dm->P;
  size_t row = sizeof(real) * (size_t)D;
  scan(dm, u, f, b, h, w->xs);
  scan(dm, k, f, b, h, w->ks);
  for (int64_t p = 0; p < P; p++) {
    int64_t off = ((b * P + p) * dm->H + h) * D;
    rotate(D, cs + p * half, sn + p * half, kp + off, w->kc + p * D);
    memcpy(w->vc + p * D, vp + off, row);
  }
  for (int64_t c = 0; c < dm->n_keys; c++) {
    int64_t j = P + c, e = (c + 1) * dm->L - 1;
    rotate(D, cs + j * half, sn + j * half, w->ks + e * D, w->kc + j * D);
    memcpy(w->vc + j * D, w->xs + e * D, row);
  }
}

/* Rotated queries of the tile of nq rows at i0: qr_r = R(P + floor(t / L)) q_t. */
static void rotate_queries(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                           int64_t b, int64_t h, int64_t i0, int64_t nq, real *qr) {
  int64_t D = dm->D, half = D / 2, ld = dm->H * D;
  for (int64_t r = 0; r < nq; r++) {
    int64_t t = i0 + r, c = dm->P + t / dm->L;
    rotate(D, cs + c * half, sn + c * half, q + (b * dm->T + t) * ld + h * D, qr + r * D);
  }
}

/* The chunk keys row t sees: the P earlier chunks' and its slice's chunks before its own. */
static int64_t keys_of_row(const hy_rat_dims *dm, int64_t t) { return dm->P + t / dm->L; }

/* s = scale Qr Kc^T for the tile's rows against keys j0 .. j0 + nk - 1, with each key j masked
 * out for the rows whose own chunk it is not strictly before (j >= P + floor(t / L)). */
static void tile_scores(const hy_rat_dims *dm, const scratch *w, int64_t i0, int64_t nq, int64_t j0,
                        int64_t nk, real *s) {
  K(cpu_gemm)
  (false, true, nq, nk, dm->D, dm->scale, w->qr, dm->D, w->kc + j0 * dm->D, dm->D, 0.0, s, TILE);
  for (int64_t r = 0; r < nq; r++) {
    int64_t visible = keys_of_row(dm, i0 + r) - j0; /* keys of the tile the row sees */
    for (int64_t c = visible < 0 ? 0 : visible; c < nk; c++) s[r * TILE + c] = -INFINITY;
  }
}

/* The number of chunk keys that some row of the tile [i0, i0 + nq) sees. */
static int64_t keys_seen(const hy_rat_dims *dm, int64_t i0, int64_t nq) {
  return keys_of_row(dm, i0 + nq - 1);
}

static void forward_head(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                         const real *u, const real *k, const real *f, const real *kp,
                         const real *vp, real *o, real *lse, int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->T, D = dm->D, H = dm->H, ld = H * D;
  real scale = (real)dm->scale;
  prepare(dm, cs, sn, u, k, f, kp, vp, b, h, w);
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
        real alpha = real_exp(w->m[r] - mx), sum = 0;
        for (int64_t c = 0; c < nk; c++) {
          pr[c] = real_exp(sr[c] - mx);
          sum += pr[c];
        }
        w->l[r] = w->l[r] * alpha + sum;
        w->m[r] = mx;
        real *ar = w->acc + r * D;
        for (int64_t d = 0; d < D; d++) ar[d] *= alpha;
      }
      K(cpu_gemm)(false, false, nq, D, nk, 1.0, w->p, TILE, w->vc + j0 * D, D, 1.0, w->acc, D);
    }
    for (int64_t r = 0; r < nq; r++) {
      real *orow = o + (b * T + i0 + r) * ld + h * D, inv = 1 / w->l[r];
      for (int64_t d = 0; d < D; d++) orow[d] = w->acc[r * D + d] * inv;
      lse_h[i0 + r] = w->m[r] + log(w->l[r]);
    }
  }
}

void K(cpu_rat)(const hy_rat_dims *dm, const real *q, const real *u, const real *k, const real *f,
                const real *kp, const real *vp, real *o, real *lse) {
  int64_t half = dm->D / 2, n_chunks = table_chunks(dm);
  real *cs = get((size_t)(n_chunks * half)), *sn = get((size_t)(n_chunks * half));
  rope_tables(dm, cs, sn);
#pragma omp parallel
  {
    scratch w = scratch_new(dm, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      forward_head(dm, cs, sn, q, u, k, f, kp, vp, o, lse, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
  free(cs);
  free(sn);
}

/* The attention part's backward for one tile of queries. With p the probabilities (recomputed
 * from the saved log-sum-exp) and di_t = go_t . o_t, every key j of row t (own state or chunk
 * key) gets dS_tj = p_tj (go_t . v_j - di_t): dQr_t += scale dS K, dKc += scale dS^T Qr,
 * dVc += P^T go. The own key's share goes to the unrotated q, ks and xs directly. */
static void backward_tile(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                          const real *o, const real *lse_h, const real *go, real *gq, int64_t b,
                          int64_t h, int64_t i0, int64_t nq, scratch *w) {
  int64_t T = dm->T, D = dm->D, half = D / 2, ld = dm->H * D;
  real scale = (real)dm->scale;
  real *di = w->m;
  const real *goi = go + (b * T + i0) * ld + h * D;
  rotate_queries(dm, cs, sn, q, b, h, i0, nq, w->qr);
  memset(w->dq, 0, sizeof(real) * (size_t)(nq * D));
  for (int64_t r = 0; r < nq; r++) {
    int64_t t = i0 + r, off = (b * T + t) * ld + h * D;
    const real *gor = go + off, *qt = q + off, *kst = w->ks + t * D, *xst = w->xs + t * D;
    di[r] = dot(D, gor, o + off);
    real p = real_exp(scale * dot(D, qt, kst) - lse_h[t]);
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
    const real *vj = w->vc + j0 * D;
    tile_scores(dm, w, i0, nq, j0, nk, w->s);
    for (int64_t r = 0; r < nq; r++)
      for (int64_t c = 0; c < nk; c++)
        w->s[r * TILE + c] = real_exp(w->s[r * TILE + c] - lse_h[i0 + r]);
    K(cpu_gemm)(true, false, nk, D, nq, 1.0, w->s, TILE, goi, ld, 1.0, w->gvc + j0 * D, D);
    K(cpu_gemm)(false, true, nq, nk, D, 1.0, goi, ld, vj, D, 0.0, w->p, TILE);
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
      int64_t c = keys_of_row(dm, i0 + r);
      unrotate_add(D, cs + c * half, sn + c * half, w->dq + r * D,
                   gq + (b * T + i0 + r) * ld + h * D);
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

static void add(int64_t n, const real *x, real *y) {
  for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* The chunk keys' gradients back where the keys came from: the earlier chunks' kp, vp (turned
 * back by R(p)^T), and the slice's final states at their last tokens. */
static void keys_backward(const hy_rat_dims *dm, const real *cs, const real *sn, int64_t b,
                          int64_t h, scratch *w, real *gkp, real *gvp) {
  int64_t D = dm->D, half = D / 2, P = dm->P;
  for (int64_t p = 0; p < P; p++) {
    int64_t off = ((b * P + p) * dm->H + h) * D;
    if (gkp) unrotate_add(D, cs + p * half, sn + p * half, w->gkc + p * D, gkp + off);
    if (gvp) add(D, w->gvc + p * D, gvp + off);
  }
  for (int64_t c = 0; c < dm->n_keys; c++) {
    int64_t j = P + c, e = (c + 1) * dm->L - 1;
    unrotate_add(D, cs + j * half, sn + j * half, w->gkc + j * D, w->gk + e * D);
    add(D, w->gvc + j * D, w->gx + e * D);
  }
}

static void backward_head(const hy_rat_dims *dm, const real *cs, const real *sn, const real *q,
                          const real *u, const real *k, const real *f, const real *kp,
                          const real *vp, const real *o, const real *lse, const real *go, real *gq,
                          real *gu, real *gk, real *gf, real *gkp, real *gvp, int64_t b, int64_t h,
                          scratch *w) {
  int64_t T = dm->T, D = dm->D;
  size_t keys = sizeof(real) * (size_t)((dm->P + dm->n_keys) * D);
  prepare(dm, cs, sn, u, k, f, kp, vp, b, h, w);
  memset(w->gx, 0, sizeof(real) * (size_t)(T * D));
  memset(w->gk, 0, sizeof(real) * (size_t)(T * D));
  memset(w->gkc, 0, keys);
  memset(w->gvc, 0, keys);
  const real *lse_h = lse + (b * dm->H + h) * T;
  for (int64_t i0 = 0; i0 < T; i0 += TILE)
    backward_tile(dm, cs, sn, q, o, lse_h, go, gq, b, h, i0, T - i0 < TILE ? T - i0 : TILE, w);
  keys_backward(dm, cs, sn, b, h, w, gkp, gvp);
  recur_backward(dm, u, k, f, b, h, w, gu, gk, gf);
}

void K(cpu_rat_backward)(const hy_rat_dims *dm, const real *q, const real *u, const real *k,
                         const real *f, const real *kp, const real *vp, const real *o,
                         const real *lse, const real *go, real *gq, real *gu, real *gk, real *gf,
                         real *gkp, real *gvp) {
  int64_t half = dm->D / 2, n_chunks = table_chunks(dm);
  real *cs = get((size_t)(n_chunks * half)), *sn = get((size_t)(n_chunks * half));
  rope_tables(dm, cs, sn);
#pragma omp parallel
  {
    scratch w = scratch_new(dm, true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      backward_head(dm, cs, sn, q, u, k, f, kp, vp, o, lse, go, gq, gu, gk, gf, gkp, gvp,
                    bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
  free(cs);
  free(sn);
}

/* ---- hy_rat_chunk_ends: the scan's state at each chunk's last token ---- */

void K(cpu_rat_ends)(const hy_rat_dims *dm, const real *x, const real *f, real *y) {
  int64_t T = dm->T, D = dm->D, H = dm->H, L = dm->L, n = T / L;
#pragma omp parallel
  {
    real *s = get((size_t)(T * D));
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * H; bh++) {
      int64_t b = bh / H, h = bh % H;
      scan(dm, x, f, b, h, s);
      for (int64_t c = 0; c < n; c++)
        memcpy(y + ((b * n + c) * H + h) * D, s + ((c + 1) * L - 1) * D, sizeof(real) * (size_t)D);
    }
    free(s);
  }
}

/* In reverse inside each chunk from g = gy at its last token: dx_t = (1 - f_t) g,
 * df_t = g (s_{t-1} - x_t) (s before the chunk 0), then g <- f_t g for the token before. */
void K(cpu_rat_ends_backward)(const hy_rat_dims *dm, const real *x, const real *f, const real *gy,
                              real *gx, real *gf) {
  int64_t T = dm->T, D = dm->D, H = dm->H, L = dm->L, n = T / L, ld = H * D;
#pragma omp parallel
  {
    real *s = get((size_t)(T * D)), *g = get((size_t)D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * H; bh++) {
      int64_t b = bh / H, h = bh % H;
      scan(dm, x, f, b, h, s);
      for (int64_t c = 0; c < n; c++) {
        memcpy(g, gy + ((b * n + c) * H + h) * D, sizeof(real) * (size_t)D);
        for (int64_t t = (c + 1) * L - 1; t >= c * L; t--) {
          int64_t off = (b * T + t) * ld + h * D;
          const real *xt = x + off, *ft = f + off;
          if (gx)
            for (int64_t d = 0; d < D; d++) gx[off + d] += (1 - ft[d]) * g[d];
          if (gf && t == c * L)
            for (int64_t d = 0; d < D; d++) gf[off + d] -= g[d] * xt[d];
          else if (gf)
            for (int64_t d = 0; d < D; d++) gf[off + d] += g[d] * (s[(t - 1) * D + d] - xt[d]);
          for (int64_t d = 0; d < D; d++) g[d] *= ft[d];
        }
      }
    }
    free(s);
    free(g);
  }
}
