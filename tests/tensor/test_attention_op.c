/* hy_attention, fused causal softmax attention: forward and backward against a naive causal
 * softmax attention written as plain loops in double (scores, softmax, weighted sum, and the
 * textbook gradients), in f32 and f64, for odd sizes and T across several 64-row tiles; strided
 * q, k, v (slices of one projection); large scores; gradcheck; bad shapes; determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

static double at4(const hy_tensor *t, int64_t b, int64_t i, int64_t h, int64_t d) {
  return t_at(t, (int64_t[]){b, i, h, d});
}

/* Causal probabilities of one (b, h): P[t * T + j] for j <= t, 0 above the diagonal. */
static double *probabilities(const hy_tensor *q, const hy_tensor *k, double scale, int64_t b,
                             int64_t h) {
  int64_t T = q->shape[1], D = q->shape[3];
  double *P = calloc((size_t)(T * T), sizeof *P);
  for (int64_t t = 0; t < T; t++) {
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j <= t; j++) {
      double s = 0;
      for (int64_t d = 0; d < D; d++) s += at4(q, b, t, h, d) * at4(k, b, j, h, d);
      P[t * T + j] = scale * s;
      m = fmax(m, scale * s);
    }
    for (int64_t j = 0; j <= t; j++) sum += P[t * T + j] = exp(P[t * T + j] - m);
    for (int64_t j = 0; j <= t; j++) P[t * T + j] /= sum;
  }
  return P;
}

static hy_tensor *ref_attention(const hy_tensor *q, const hy_tensor *k, const hy_tensor *v,
                                double scale) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
  hy_tensor *o = hy_zeros(HY_F64, hy_shape_of(q));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      double *P = probabilities(q, k, scale, b, h);
      for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) {
          double s = 0;
          for (int64_t j = 0; j <= t; j++) s += P[t * T + j] * at4(v, b, j, h, d);
          hy_set(o, ((b * T + t) * H + h) * D + d, s);
        }
      free(P);
    }
  return o;
}

/* The gradients of o = softmax(scale q k^T, causal) v for the output gradient go:
 * dv_j = sum_t P_tj go_t; dP_tj = go_t . v_j; dS_tj = P_tj (dP_tj - sum_j' P_tj' dP_tj');
 * dq_t = scale sum_j dS_tj k_j; dk_j = scale sum_t dS_tj q_t. */
static void ref_attention_grads(const hy_tensor *q, const hy_tensor *k, const hy_tensor *v,
                                const hy_tensor *go, double scale, hy_tensor *gq, hy_tensor *gk,
                                hy_tensor *gv) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
  double *dS = malloc(sizeof(double) * (size_t)(T * T));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      double *P = probabilities(q, k, scale, b, h);
      for (int64_t t = 0; t < T; t++) {
        double rowdot = 0;
        for (int64_t j = 0; j <= t; j++) {
          double dp = 0;
          for (int64_t d = 0; d < D; d++) dp += at4(go, b, t, h, d) * at4(v, b, j, h, d);
          dS[t * T + j] = dp;
          rowdot += P[t * T + j] * dp;
        }
        for (int64_t j = 0; j <= t; j++) dS[t * T + j] = P[t * T + j] * (dS[t * T + j] - rowdot);
      }
      for (int64_t i = 0; i < T; i++)
        for (int64_t d = 0; d < D; d++) {
          double sq = 0, sk = 0, sv = 0;
          for (int64_t j = 0; j <= i; j++) sq += dS[i * T + j] * at4(k, b, j, h, d);
          for (int64_t t = i; t < T; t++) {
            sk += dS[t * T + i] * at4(q, b, t, h, d);
            sv += P[t * T + i] * at4(go, b, t, h, d);
          }
          int64_t f = ((b * T + i) * H + h) * D + d;
          hy_set(gq, f, scale * sq);
          hy_set(gk, f, scale * sk);
          hy_set(gv, f, sv);
        }
      free(P);
    }
  free(dS);
}

/* f64: the same sums in another order (tiles, online rescaling), a few ulp. f32: dot products of
 * D <= 16 terms, real_exp within 3 ulp, and running sums of <= 130 positive weights. */
static void expect_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale, double tol32,
                             const char *what) {
  char name[200];
  snprintf(name, sizeof name, "attention %s: %s, scale %g", what, hy_describe(q), scale);
  hy_tensor *o = hy_attention(q, k, v, scale);
  cr_assert(hy_is_contiguous(o), "%s: output not contiguous", name);
  t_expect_close(o, ref_attention(q, k, v, scale), t_tol(q->dtype, 1e-12, tol32), name);
}

/* {B, T, H, D}: odd sizes, one row, exactly one tile, one tile plus one, several tiles. */
static const int64_t SIZES[][4] = {{1, 1, 1, 1},  {2, 7, 3, 4},  {1, 13, 2, 5},  {2, 33, 1, 8},
                                   {1, 64, 1, 3}, {1, 65, 2, 3}, {1, 130, 2, 4}, {2, 70, 3, 16}};
enum { N_SIZES = sizeof SIZES / sizeof *SIZES };

Test(attention, forward_against_naive) {
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < N_SIZES; i++) {
      const int64_t *s = SIZES[i];
      hy_shape sh = HY_SHAPE(s[0], s[1], s[2], s[3]);
      hy_tensor *q = t_randn_next(DTYPES[d], sh), *k = t_randn_next(DTYPES[d], sh),
                *v = t_randn_next(DTYPES[d], sh);
      expect_attention(q, k, v, 1 / sqrt((double)s[3]), 1e-5, "1/sqrt(D)");
      expect_attention(q, k, v, 0.7, 1e-5, "0.7");
    }
}

Test(attention, strided_and_transposed_inputs) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *q, *k, *v;
    t_qkv_views(t_randn_next(dt, HY_SHAPE(2, 7, 3 * 3 * 4)), 3, 4, &q, &k, &v);
    cr_assert(!hy_is_contiguous(q) && q->stride[1] == 36 && q->stride[2] == 4);
    expect_attention(q, k, v, 0.5, 1e-5, "qkv slices");
    t_qkv_views(t_randn_next(dt, HY_SHAPE(1, 70, 3 * 2 * 5)), 2, 5, &q, &k, &v);
    expect_attention(q, k, v, 0.5, 1e-5, "qkv slices, two tiles");
    /* [B, H, T, D] seen as [B, T, H, D]; and a v whose last axis is strided (copied first). */
    hy_tensor *qt = hy_transpose(t_randn_next(dt, HY_SHAPE(2, 3, 9, 4)), 1, 2);
    hy_tensor *vt = hy_transpose(t_randn_next(dt, HY_SHAPE(2, 9, 4, 3)), 2, 3);
    cr_assert(vt->stride[3] != 1);
    expect_attention(qt, t_randn_next(dt, HY_SHAPE(2, 9, 3, 4)), vt, 0.5, 1e-5, "transposed");
  }
}

/* Scores in the hundreds (f64: up to ~+-2000): an online softmax without the running max would
 * overflow. f32 rounds each score to ~|s| 2^-24 absolute, which softmax turns into a relative
 * error of the weights: with |s| <= ~300 that is 2e-5, so 1e-4 for f32 here. */
Test(attention, large_scores_are_stable) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_shape sh = HY_SHAPE(2, 70, 2, 4);
    double big = dt == HY_F64 ? 20 : 8;
    hy_tensor *q = hy_scale(t_randn_next(dt, sh), big), *k = hy_scale(t_randn_next(dt, sh), big);
    hy_tensor *v = t_randn_next(dt, sh);
    expect_attention(q, k, v, 1.0, 1e-4, "large scores");
    hy_tensor *o = hy_attention(q, k, v, 1.0);
    for (int64_t i = 0; i < hy_numel(o); i++) cr_assert(isfinite(hy_get(o, i)));
  }
}

/* The first output row attends to itself only: o_0 = v_0, whatever the scores. */
Test(attention, first_row_is_first_value) {
  hy_tensor *q = t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4)),
            *v = t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4));
  hy_tensor *o = hy_attention(q, t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4)), v, 0.5);
  for (int64_t b = 0; b < 2; b++)
    for (int64_t h = 0; h < 3; h++)
      for (int64_t d = 0; d < 4; d++)
        cr_assert(fabs(at4(o, b, 0, h, d) - at4(v, b, 0, h, d)) <=
                  1e-15 * fabs(at4(v, b, 0, h, d)));
}

Test(attention, backward_against_naive) {
  static const int64_t sizes[][4] = {{2, 7, 3, 4}, {1, 1, 1, 1}, {1, 130, 2, 4}, {2, 70, 3, 5}};
  for (int dd = 0; dd < 2; dd++)
    for (int i = 0; i < 4; i++) {
      hy_dtype dt = DTYPES[dd];
      const int64_t *s = sizes[i];
      hy_shape sh = HY_SHAPE(s[0], s[1], s[2], s[3]);
      hy_tensor *q = t_param(t_randn_next(dt, sh)), *k = t_param(t_randn_next(dt, sh)),
                *v = t_param(t_randn_next(dt, sh));
      double scale = 1 / sqrt((double)s[3]);
      hy_tensor *o = hy_attention(q, k, v, scale), *go = t_randn_next(dt, sh);
      hy_backward_with(o, go);
      hy_tensor *gq = hy_empty(HY_F64, sh), *gk = hy_empty(HY_F64, sh), *gv = hy_empty(HY_F64, sh);
      ref_attention_grads(q, k, v, go, scale, gq, gk, gv);
      char name[96];
      snprintf(name, sizeof name, "attention backward %s", hy_describe(q));
      /* f32: dk and dv sum up to 130 terms of either sign, ~sqrt(n) ulp of the terms. */
      t_expect_close(q->grad, gq, t_tol(dt, 1e-12, 1e-5), name);
      t_expect_close(k->grad, gk, t_tol(dt, 1e-12, 1e-5), name);
      t_expect_close(v->grad, gv, t_tol(dt, 1e-12, 1e-5), name);
    }
}

/* ---- gradcheck ---- */

typedef struct {
  double scale;
  int64_t H, D;
} attn_ctx;

static hy_tensor *attn_gc(hy_tensor **in, void *ctx) {
  const attn_ctx *c = ctx;
  return hy_attention(in[0], in[1], in[2], c->scale);
}

static hy_tensor *attn_qkv_gc(hy_tensor **in, void *ctx) {
  const attn_ctx *c = ctx;
  hy_tensor *q, *k, *v;
  t_qkv_views(in[0], c->H, c->D, &q, &k, &v);
  return hy_attention(q, k, v, c->scale);
}

#define P(...) t_param(t_randn_next(HY_F64, HY_SHAPE(__VA_ARGS__)))

Test(attention, gradcheck) {
  attn_ctx c = {0.5, 0, 0};
  t_expect_gradcheck(attn_gc, &c, 3, (hy_tensor *[]){P(2, 7, 3, 4), P(2, 7, 3, 4), P(2, 7, 3, 4)},
                     "attention B=2 T=7 H=3 D=4");
  t_expect_gradcheck(attn_gc, &c, 3, (hy_tensor *[]){P(1, 5, 2, 3), P(1, 5, 2, 3), P(1, 5, 2, 3)},
                     "attention D=3");
  /* Across a tile boundary (T = 67 > 64). */
  t_expect_gradcheck(attn_gc, &c, 3,
                     (hy_tensor *[]){P(1, 67, 1, 2), P(1, 67, 1, 2), P(1, 67, 1, 2)},
                     "attention T=67");
  /* Some inputs without a gradient. */
  hy_tensor *q = P(2, 5, 3, 4), *k = t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4)), *v = P(2, 5, 3, 4);
  t_expect_gradcheck(attn_gc, &c, 3, (hy_tensor *[]){q, k, v}, "attention q, v only");
  hy_tensor *qc = t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4)),
            *vc = t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4));
  t_expect_gradcheck(attn_gc, &c, 3, (hy_tensor *[]){qc, P(2, 5, 3, 4), vc}, "attention k only");
  /* One tensor as q, k and v: the three gradients add up in one buffer. */
  hy_tensor *x = P(2, 6, 3, 4);
  t_expect_gradcheck(attn_gc, &c, 3, (hy_tensor *[]){x, x, x}, "attention q = k = v");
}

Test(attention, gradcheck_strided_qkv) {
  attn_ctx c = {1 / sqrt(4.0), 3, 4};
  hy_tensor *qkv = P(2, 7, 3 * 3 * 4);
  t_expect_gradcheck(attn_qkv_gc, &c, 1, &qkv, "attention from one qkv projection");
  attn_ctx c2 = {0.8, 2, 3};
  hy_tensor *qkv2 = P(1, 9, 3 * 2 * 3);
  t_expect_gradcheck(attn_qkv_gc, &c2, 1, &qkv2, "attention from qkv, H=2 D=3");
}

Test(attention, deterministic) {
  hy_shape sh = HY_SHAPE(2, 70, 3, 8);
  hy_tensor *q = t_param(t_randn_next(HY_F32, sh)), *k = t_param(t_randn_next(HY_F32, sh));
  hy_tensor *v = t_param(t_randn_next(HY_F32, sh)), *go = t_randn_next(HY_F32, sh);
  hy_tensor *o1 = hy_attention(q, k, v, 0.35), *o2 = hy_attention(q, k, v, 0.35);
  t_expect_same_bits(o1, o2, "attention forward");
  hy_backward_with(o1, go);
  hy_tensor *g1[] = {q->grad, k->grad, v->grad};
  q->grad = k->grad = v->grad = NULL;
  hy_backward_with(o2, go);
  t_expect_same_bits(q->grad, g1[0], "attention dq");
  t_expect_same_bits(k->grad, g1[1], "attention dk");
  t_expect_same_bits(v->grad, g1[2], "attention dv");
}

static void attn_mismatch(void) {
  hy_attention(hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)), hy_zeros(HY_F32, HY_SHAPE(1, 5, 2, 3)),
               hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)), 1.0);
}
static void attn_3d(void) {
  hy_tensor *x = hy_zeros(HY_F64, HY_SHAPE(4, 2, 3));
  hy_attention(x, x, x, 1.0);
}
static void attn_dtypes(void) {
  hy_attention(hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)), hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)),
               hy_zeros(HY_F64, HY_SHAPE(1, 4, 2, 3)), 1.0);
}

Test(attention, bad_shapes_abort) {
  t_expect_abort(attn_mismatch, 3, (const char *[]){"attention", "[1, 4, 2, 3]", "[1, 5, 2, 3]"});
  t_expect_abort(attn_3d, 2, (const char *[]){"attention", "[4, 2, 3]"});
  t_expect_abort(attn_dtypes, 3, (const char *[]){"attention", "f32", "f64"});
}

/* A slice of queries at an offset against the keys up to its end (a sequence-parallel rank's
 * view) gives the full attention's rows and gradients there; the rows after the slice get no
 * gradient, the keys after its end none at all. */
Test(attention, queries_at_an_offset_equal_the_full_rows) {
  int64_t B = 2, T = 150, H = 2, D = 8;
  int64_t offsets[] = {0, 37, 64, 100}, lens[] = {50, 13, 64, 50};
  for (int c = 0; c < 4; c++) {
    int64_t o = offsets[c], n = lens[c];
    hy_tensor *q = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, D), 1));
    hy_tensor *k = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, D), 2));
    hy_tensor *v = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, D), 3));
    hy_tensor *go = hy_zeros(HY_F64, HY_SHAPE(B, T, H, D));
    hy_tensor *gslice = t_randn(HY_F64, HY_SHAPE(B, n, H, D), 4);
    hy_copy_into(hy_slice(go, 1, o, o + n), gslice);
    hy_tensor *full = hy_attention(q, k, v, 0.3);
    hy_backward_with(full, go);
    hy_tensor *g_full[3] = {q->grad, k->grad, v->grad};
    q->grad = k->grad = v->grad = NULL;
    hy_tensor *qs = hy_slice(q, 1, o, o + n);
    hy_tensor *ks = hy_slice(k, 1, 0, o + n), *vs = hy_slice(v, 1, 0, o + n);
    hy_tensor *part = hy_attention_offset(qs, ks, vs, 0.3, 0, o);
    hy_backward_with(part, gslice);
    t_expect_close(part, hy_contiguous(hy_slice(full, 1, o, o + n)), 1e-12, "rows");
    t_expect_close(q->grad, g_full[0], 1e-12, "dq");
    t_expect_close(k->grad, g_full[1], 1e-12, "dk");
    t_expect_close(v->grad, g_full[2], 1e-12, "dv");
    hy_step_reset();
  }
}
