#include "tensor/cpu/real.h"

#include <stdlib.h>
#include <string.h>

/* The Titans memory scan on the CPU (the recurrence and what is saved: tensor/titans_scan.c). One
 * (batch, head) pair is one task; every product below is one GEMM over a chunk's rows. Per chunk
 * of n rows K, V [n, D], theta [n] at weights W (depth 1: W [D, D]; depth 2: W1 [D, F], W2
 * [F, D]), the explicit gradient is
 *
 *   depth 1: E = K W - V,  G = 2 theta E,  U = K^T G
 *   depth 2: H = K W1, A = silu(H), E = A W2 - V, G = 2 theta E, P = G W2^T, Z = P s1(H),
 *            U1 = K^T Z, U2 = A^T G
 *
 * with s1 = silu' and s2 = silu'' elementwise (s = sigmoid(h)):
 *
 *   silu'(h)  = s (1 + h (1 - s))
 *   silu''(h) = s (1 - s) (1 + h (1 - s)) + s ((1 - s) - h s (1 - s)) = s (1 - s) (2 + h (1 - 2 s))
 *
 * Its VJP for a cotangent C of U (C1, C2 of U1, U2), every input of U differentiated, W too:
 *
 *   depth 1: dG = K C,  dK = G C^T + dE W^T,  dtheta_t = 2 <dG_t, E_t>,  dE = 2 theta dG,
 *            dW = K^T dE,  dV = -dE
 *   depth 2: dZ = K C1,  dK = Z C1^T + dH W1^T,
 *            dP = dZ s1(H),  dH = dZ P s2(H) + dA s1(H),
 *            dG = dP W2 + A C2,  dA = G C2^T + dE W2^T,
 *            dtheta_t = 2 <dG_t, E_t>,  dE = 2 theta dG,  dV = -dE,
 *            dW2 = dP^T G + A^T dE,  dW1 = K^T dH
 *
 * The elementwise steps are written as the composed ops round them (G = (E theta) 2, the same
 * sigmoid), so that the forward gives the composed form's bits. */

/* The weights of one head: depth 1 uses w1 only. */
typedef struct {
  const real *w1, *w2;
} weights;

typedef struct {
  real *h, *a, *s1, *p, *z, *dz, *dh, *da; /* [C, F] */
  real *e, *g, *dg;                        /* [C, D] */
  real *u, *gw, *gs;                       /* [P]: U or its cotangent; dL/dW, dL/dS */
} scratch;

static real *get(size_t n) { return real_alloc("titans_scan", n); }

static scratch scratch_new(const hy_titans_dims *dm, bool backward) {
  size_t CF = (size_t)(dm->C * dm->F), CD = (size_t)(dm->C * dm->D), P = (size_t)dm->P;
  scratch w = {0};
  real **cf[] = {&w.h, &w.a, &w.s1, &w.p, &w.z, &w.dz, &w.dh, &w.da};
  for (int i = 0; i < (backward ? 8 : 5); i++) *cf[i] = get(CF);
  w.e = get(CD);
  w.g = get(CD);
  w.u = get(P);
  if (backward) {
    w.dg = get(CD);
    w.gw = get(P);
    w.gs = get(P);
  }
  return w;
}

static void scratch_free(scratch *w) {
  real *all[] = {w->h,  w->a, w->s1, w->p,  w->z, w->dz, w->dh,
                 w->da, w->e, w->g,  w->dg, w->u, w->gw, w->gs};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* As tensor/cpu/unary.c computes it, so that silu and its derivative round the same way. */
static inline real sigmoid(real x) {
  real e = real_exp(-fabs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* a = silu(h), s1 = silu'(h) over n values (s1 may be NULL). */
static void silu_and_slope(int64_t n, const real *h, real *a, real *s1) {
  for (int64_t i = 0; i < n; i++) {
    real s = sigmoid(h[i]);
    a[i] = h[i] * s;
    if (s1) s1[i] = s * (h[i] * (1 - s) + 1);
  }
}

static weights state_weights(const hy_titans_dims *dm, const real *state) {
  return (weights){state, dm->depth == 2 ? state + dm->D * dm->F : NULL};
}

/* The rows of group j, those reading the weights after j updates: [j C - 1, j C + C - 1) within
 * [0, T). */
static void group_rows(const hy_titans_dims *dm, int64_t j, int64_t *r0, int64_t *r1) {
  int64_t lo = j * dm->C - 1, hi = j * dm->C + dm->C - 1;
  *r0 = lo > 0 ? lo : 0;
  *r1 = hi < dm->T ? hi : dm->T;
}

/* y = M(W; q) for n rows. */
static void retrieve(const hy_titans_dims *dm, weights W, const real *q, int64_t n, real *y,
                     scratch *w) {
  int64_t D = dm->D, F = dm->F;
  if (n <= 0) return;
  if (dm->depth == 1) {
    K(cpu_gemm)(false, false, n, D, D, 1.0, q, D, W.w1, D, 0.0, y, D);
    return;
  }
  K(cpu_gemm)(false, false, n, F, D, 1.0, q, D, W.w1, F, 0.0, w->h, F);
  silu_and_slope(n * F, w->h, w->a, NULL);
  K(cpu_gemm)(false, false, n, D, F, 1.0, w->a, F, W.w2, D, 0.0, y, D);
}

/* The explicit gradient of n rows at W: E, G (and H, A, s1, P, Z at depth 2) into the scratch,
 * U into u unless it is NULL. */
static void chunk_grad(const hy_titans_dims *dm, weights W, const real *k, const real *v,
                       const real *th, int64_t n, scratch *w, real *u) {
  int64_t D = dm->D, F = dm->F;
  if (dm->depth == 2) {
    K(cpu_gemm)(false, false, n, F, D, 1.0, k, D, W.w1, F, 0.0, w->h, F);
    silu_and_slope(n * F, w->h, w->a, w->s1);
  }
  const real *in = dm->depth == 1 ? k : w->a, *w_out = dm->depth == 1 ? W.w1 : W.w2;
  int64_t width = dm->depth == 1 ? D : F;
  K(cpu_gemm)(false, false, n, D, width, 1.0, in, width, w_out, D, 0.0, w->e, D);
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = 0; i < D; i++) {
      real e = w->e[t * D + i] - v[t * D + i];
      w->e[t * D + i] = e;
      w->g[t * D + i] = e * th[t] * 2;
    }
  if (dm->depth == 1) {
    if (u) K(cpu_gemm)(true, false, D, D, n, 1.0, k, D, w->g, D, 0.0, u, D);
    return;
  }
  K(cpu_gemm)(false, true, n, F, D, 1.0, w->g, D, W.w2, D, 0.0, w->p, F);
  for (int64_t i = 0; i < n * F; i++) w->z[i] = w->p[i] * w->s1[i];
  if (!u) return;
  K(cpu_gemm)(true, false, D, F, n, 1.0, k, D, w->z, F, 0.0, u, F);
  K(cpu_gemm)(true, false, F, D, n, 1.0, w->a, F, w->g, D, 0.0, u + D * F, D);
}

/* S' = eta S - U (S NULL: S' = -U), W' = keep W + S'. */
static void update(const hy_titans_dims *dm, weights W, const real *s, const real *u, real eta,
                   real keep, real *w_next, real *s_next) {
  for (int64_t i = 0; i < dm->P; i++) s_next[i] = s ? s[i] * eta - u[i] : -u[i];
  int64_t part = dm->D * dm->F;
  for (int l = 0; l < dm->depth; l++) {
    const real *src = l ? W.w2 : W.w1;
    real *dst = w_next + l * part, *sn = s_next + l * part;
    for (int64_t i = 0; i < part; i++) dst[i] = src[i] * keep + sn[i];
  }
}

static weights head_m0(const hy_titans_dims *dm, const real *w1, const real *w2, int64_t h) {
  int64_t part = dm->D * dm->F;
  return (weights){w1 + h * part, w2 ? w2 + h * part : NULL};
}

/* The state a sequence starts from: its own (init [2 P]: weights, then momentum) or M_0 of head h
 * with no momentum (*s0 NULL). */
static weights start_of(const hy_titans_dims *dm, const real *w1, const real *w2, const real *init,
                        int64_t bh, const real **s0) {
  if (!init) {
    *s0 = NULL;
    return head_m0(dm, w1, w2, bh % dm->H);
  }
  *s0 = init + bh * 2 * dm->P + dm->P;
  return state_weights(dm, init + bh * 2 * dm->P);
}

/* final [2 P] = the weights W and the momentum s (NULL: zero). */
static void store_state(const hy_titans_dims *dm, weights W, const real *s, real *final) {
  int64_t part = dm->D * dm->F;
  for (int l = 0; l < dm->depth; l++)
    memcpy(final + l * part, l ? W.w2 : W.w1, sizeof(real) * (size_t)part);
  if (s)
    memcpy(final + dm->P, s, sizeof(real) * (size_t)dm->P);
  else
    memset(final + dm->P, 0, sizeof(real) * (size_t)dm->P);
}

static void forward_head(const hy_titans_dims *dm, const real *q, const real *k, const real *v,
                         const real *th, const real *eta, const real *keep, weights W,
                         const real *s, real *y, real *states, real *momenta, real *final,
                         scratch *w) {
  int64_t D = dm->D, C = dm->C, r0, r1;
  group_rows(dm, 0, &r0, &r1);
  retrieve(dm, W, q + r0 * D, r1 - r0, y + r0 * D, w);
  for (int64_t j = 0; j < dm->N; j++) {
    int64_t t0 = j * C;
    chunk_grad(dm, W, k + t0 * D, v + t0 * D, th + t0, C, w, w->u);
    real *wn = states + (j % dm->slots) * dm->P, *sn = momenta + (j % dm->slots) * dm->P;
    update(dm, W, s, w->u, eta[j], keep[j], wn, sn);
    W = state_weights(dm, wn);
    s = sn;
    group_rows(dm, j + 1, &r0, &r1);
    retrieve(dm, W, q + r0 * D, r1 - r0, y + r0 * D, w);
  }
  if (final) store_state(dm, W, s, final);
}

void K(cpu_titans_scan)(const hy_titans_dims *dm, const real *q, const real *k, const real *v,
                        const real *theta, const real *eta, const real *keep, const real *w1,
                        const real *w2, const real *init, real *y, real *states, real *momenta,
                        real *final) {
  int64_t TD = dm->T * dm->D, NP = dm->slots * dm->P;
#pragma omp parallel
  {
    scratch w = scratch_new(dm, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++) {
      const real *s0;
      weights W = start_of(dm, w1, w2, init, bh, &s0);
      forward_head(dm, q + bh * TD, k + bh * TD, v + bh * TD, theta + bh * dm->T,
                   eta ? eta + bh * dm->N : NULL, keep ? keep + bh * dm->N : NULL, W, s0,
                   y + bh * TD, states + bh * NP, momenta + bh * NP,
                   final ? final + bh * 2 * dm->P : NULL, &w);
    }
    scratch_free(&w);
  }
}

/* ---- backward ---- */

/* The gradients of one head's inputs (any may be NULL: not wanted). */
typedef struct {
  real *q, *k, *v, *th, *eta, *keep;
} head_grads;

/* The rows [r0, r1) read W: gq += dM/dq, gw += dM/dW for their output gradient gy. */
static void retrieve_backward(const hy_titans_dims *dm, weights W, const real *q, const real *gy,
                              int64_t r0, int64_t r1, real *gq, scratch *w) {
  int64_t D = dm->D, F = dm->F, n = r1 - r0;
  if (n <= 0) return;
  q += r0 * D;
  gy += r0 * D;
  if (dm->depth == 1) {
    if (gq) K(cpu_gemm)(false, true, n, D, D, 1.0, gy, D, W.w1, D, 1.0, gq + r0 * D, D);
    K(cpu_gemm)(true, false, D, D, n, 1.0, q, D, gy, D, 1.0, w->gw, D);
    return;
  }
  K(cpu_gemm)(false, false, n, F, D, 1.0, q, D, W.w1, F, 0.0, w->h, F);
  silu_and_slope(n * F, w->h, w->a, w->s1);
  K(cpu_gemm)(true, false, F, D, n, 1.0, w->a, F, gy, D, 1.0, w->gw + D * F, D);
  K(cpu_gemm)(false, true, n, F, D, 1.0, gy, D, W.w2, D, 0.0, w->dh, F);
  for (int64_t i = 0; i < n * F; i++) w->dh[i] *= w->s1[i];
  K(cpu_gemm)(true, false, D, F, n, 1.0, q, D, w->dh, F, 1.0, w->gw, F);
  if (gq) K(cpu_gemm)(false, true, n, D, F, 1.0, w->dh, F, W.w1, F, 1.0, gq + r0 * D, D);
}

/* From dG of n rows: dtheta_t += 2 <dG_t, E_t>, then dG becomes dE = 2 theta dG, and gv -= dE. */
static void loss_backward(const hy_titans_dims *dm, const real *th, int64_t n, scratch *w,
                          real *gth, real *gv) {
  int64_t D = dm->D;
  for (int64_t t = 0; t < n; t++) {
    real *dg = w->dg + t * D, acc = 0;
    const real *e = w->e + t * D;
    for (int64_t i = 0; i < D; i++) acc += dg[i] * e[i];
    if (gth) gth[t] += 2 * acc;
    for (int64_t i = 0; i < D; i++) dg[i] *= 2 * th[t];
    if (gv)
      for (int64_t i = 0; i < D; i++) gv[t * D + i] -= dg[i];
  }
}

/* The VJP of U (taken at W over n rows k, v, th; intermediates in the scratch) for the cotangent
 * w->u: gw += dU/dW, and the rows' gk, gv, gth. */
static void chunk_grad_backward(const hy_titans_dims *dm, weights W, const real *k, const real *th,
                                int64_t n, scratch *w, real *gk, real *gv, real *gth) {
  int64_t D = dm->D, F = dm->F;
  const real *c1 = w->u, *c2 = w->u + D * F;
  if (dm->depth == 1) {
    K(cpu_gemm)(false, false, n, D, D, 1.0, k, D, c1, D, 0.0, w->dg, D);
    if (gk) K(cpu_gemm)(false, true, n, D, D, 1.0, w->g, D, c1, D, 1.0, gk, D);
    loss_backward(dm, th, n, w, gth, gv);
    if (gk) K(cpu_gemm)(false, true, n, D, D, 1.0, w->dg, D, W.w1, D, 1.0, gk, D);
    K(cpu_gemm)(true, false, D, D, n, 1.0, k, D, w->dg, D, 1.0, w->gw, D);
    return;
  }
  real *gw1 = w->gw, *gw2 = w->gw + D * F;
  K(cpu_gemm)(false, false, n, F, D, 1.0, k, D, c1, F, 0.0, w->dz, F);
  if (gk) K(cpu_gemm)(false, true, n, D, F, 1.0, w->z, F, c1, F, 1.0, gk, D);
  for (int64_t i = 0; i < n * F; i++) { /* dH (first part) = dZ P s2(H), then dZ becomes dP */
    real h = w->h[i], s = sigmoid(h);
    w->dh[i] = w->dz[i] * w->p[i] * (s * (1 - s) * (2 + h * (1 - 2 * s)));
    w->dz[i] *= w->s1[i];
  }
  K(cpu_gemm)(false, false, n, D, F, 1.0, w->dz, F, W.w2, D, 0.0, w->dg, D);
  K(cpu_gemm)(true, false, F, D, n, 1.0, w->dz, F, w->g, D, 1.0, gw2, D);
  K(cpu_gemm)(false, true, n, F, D, 1.0, w->g, D, c2, D, 0.0, w->da, F);
  K(cpu_gemm)(false, false, n, D, F, 1.0, w->a, F, c2, D, 1.0, w->dg, D);
  loss_backward(dm, th, n, w, gth, gv);
  K(cpu_gemm)(false, true, n, F, D, 1.0, w->dg, D, W.w2, D, 1.0, w->da, F);
  K(cpu_gemm)(true, false, F, D, n, 1.0, w->a, F, w->dg, D, 1.0, gw2, D);
  for (int64_t i = 0; i < n * F; i++) w->dh[i] += w->da[i] * w->s1[i];
  if (gk) K(cpu_gemm)(false, true, n, D, F, 1.0, w->dh, F, W.w1, F, 1.0, gk, D);
  K(cpu_gemm)(true, false, D, F, n, 1.0, k, D, w->dh, F, 1.0, gw1, F);
}

/* <a, W> over the memory's layers. */
static real dot_weights(const hy_titans_dims *dm, const real *a, weights W) {
  int64_t part = dm->D * dm->F;
  real acc = 0;
  for (int l = 0; l < dm->depth; l++) {
    const real *b = l ? W.w2 : W.w1, *al = a + l * part;
    for (int64_t i = 0; i < part; i++) acc += al[i] * b[i];
  }
  return acc;
}

static real dot(int64_t n, const real *a, const real *b) {
  real acc = 0;
  for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];
  return acc;
}

/* Chunk j's update, backward: gw holds dL/dW^{j+1} and gs dL/dS^{j+1} from later chunks; on
 * return they hold dL/dW^j and dL/dS^j. */
static void update_backward(const hy_titans_dims *dm, weights W, const real *s, real eta, real keep,
                            real *geta, real *gkeep, scratch *w) {
  int64_t P = dm->P;
  for (int64_t i = 0; i < P; i++) w->gs[i] += w->gw[i]; /* S^{j+1} also feeds W^{j+1} */
  if (gkeep) *gkeep += dot_weights(dm, w->gw, W);
  if (geta && s) *geta += dot(P, w->gs, s);
  for (int64_t i = 0; i < P; i++) {
    w->u[i] = -w->gs[i]; /* dL/dU_j */
    w->gs[i] *= eta;
    w->gw[i] *= keep;
  }
}

/* One sequence and head from its starting weights W0 and momentum s0 (NULL: zero). gfinal (or
 * NULL) is the gradient of the state handed on, [2 P]; the starting state's gradient goes to gm0
 * (the weights', written: M_0's before the sum over the batch) or is added to ginit ([2 P]). */
static void backward_head(const hy_titans_dims *dm, const real *q, const real *k, const real *v,
                          const real *th, const real *eta, const real *keep, weights W0,
                          const real *s0, const real *states, const real *momenta, const real *gy,
                          const real *gfinal, head_grads g, real *gm0, real *ginit, scratch *w) {
  int64_t D = dm->D, C = dm->C, P = dm->P, r0, r1;
  size_t bytes = sizeof(real) * (size_t)P;
  if (gfinal) {
    memcpy(w->gw, gfinal, bytes);
    memcpy(w->gs, gfinal + P, bytes);
  } else {
    memset(w->gw, 0, bytes);
    memset(w->gs, 0, bytes);
  }
  for (int64_t j = dm->N - 1; j >= 0; j--) {
    int64_t t0 = j * C;
    weights Wn = state_weights(dm, states + j * P);
    weights Wp = j ? state_weights(dm, states + (j - 1) * P) : W0;
    group_rows(dm, j + 1, &r0, &r1);
    retrieve_backward(dm, Wn, q, gy, r0, r1, g.q, w);
    update_backward(dm, Wp, j ? momenta + (j - 1) * P : s0, eta[j], keep[j],
                    g.eta ? g.eta + j : NULL, g.keep ? g.keep + j : NULL, w);
    chunk_grad(dm, Wp, k + t0 * D, v + t0 * D, th + t0, C, w, NULL);
    chunk_grad_backward(dm, Wp, k + t0 * D, th + t0, C, w, g.k ? g.k + t0 * D : NULL,
                        g.v ? g.v + t0 * D : NULL, g.th ? g.th + t0 : NULL);
  }
  group_rows(dm, 0, &r0, &r1);
  retrieve_backward(dm, W0, q, gy, r0, r1, g.q, w);
  if (gm0) memcpy(gm0, w->gw, bytes);
  if (ginit)
    for (int64_t i = 0; i < P; i++) {
      ginit[i] += w->gw[i];
      ginit[P + i] += w->gs[i];
    }
}

static real *offset(real *p, int64_t by) { return p ? p + by : NULL; }

/* gw1, gw2 += the per-sequence gradients of M_0 summed over the batch, in batch order. */
static void reduce_m0(const hy_titans_dims *dm, const real *per_seq, real *gw1, real *gw2) {
  int64_t part = dm->D * dm->F, P = dm->P, H = dm->H;
#pragma omp parallel for if (H * P > PAR_MIN) schedule(static)
  for (int64_t i = 0; i < H * P; i++) {
    int64_t h = i / P, e = i % P;
    real *dst = e < part ? offset(gw1, h * part + e) : offset(gw2, h * part + e - part);
    if (!dst) continue;
    real acc = 0;
    for (int64_t b = 0; b < dm->B; b++) acc += per_seq[(b * H + h) * P + e];
    *dst += acc;
  }
}

void K(cpu_titans_scan_backward)(const hy_titans_dims *dm, const real *q, const real *k,
                                 const real *v, const real *theta, const real *eta,
                                 const real *keep, const real *w1, const real *w2, const real *init,
                                 const real *states, const real *momenta, const real *gy,
                                 const real *gfinal, real *gq, real *gk, real *gv, real *gtheta,
                                 real *geta, real *gkeep, real *gw1, real *gw2, real *ginit,
                                 real *work) {
  int64_t TD = dm->T * dm->D, NP = dm->N * dm->P, T = dm->T, N = dm->N, P2 = 2 * dm->P;
  bool want_m0 = !init && (gw1 || gw2);
  real *per_seq = want_m0 ? work : NULL;
#pragma omp parallel
  {
    scratch w = scratch_new(dm, true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++) {
      head_grads g = {offset(gq, bh * TD),    offset(gk, bh * TD),  offset(gv, bh * TD),
                      offset(gtheta, bh * T), offset(geta, bh * N), offset(gkeep, bh * N)};
      const real *s0;
      weights W0 = start_of(dm, w1, w2, init, bh, &s0);
      backward_head(dm, q + bh * TD, k + bh * TD, v + bh * TD, theta + bh * T,
                    eta ? eta + bh * N : NULL, keep ? keep + bh * N : NULL, W0, s0,
                    states + bh * NP, momenta + bh * NP, gy + bh * TD,
                    gfinal ? gfinal + bh * P2 : NULL, g, per_seq ? per_seq + bh * dm->P : NULL,
                    offset(ginit, bh * P2), &w);
    }
    scratch_free(&w);
  }
  if (want_m0) reduce_m0(dm, per_seq, gw1, gw2);
}
