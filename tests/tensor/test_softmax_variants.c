/* The fused softmax-family attention variants against their naive forms built from plain ops
 * (layers/softmax_variants_reference.h):
 *   hy_sigmoid_attention   o_t = sum_{s <= t} sigmoid(scale q_t . k_s + bias) v_s
 *   hy_softplus_attention  w_ts = softplus(c_t scale q_t . k_s)^p, o_t = sum_s w_ts v_s / sum w_ts
 * Forward and the three input gradients in f64 (the tape through the naive form is the reference)
 * for T across one and several 64-row tiles, odd D, several B and H; f32 against f64; strided
 * q, k, v; gradcheck; the softplus weights of one row computed by hand; large logits; bad
 * arguments. */
#include "layers/softmax_variants_reference.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

/* One configuration of either op. */
typedef struct {
  bool softplus;
  double scale, bias;         /* sigmoid */
  int64_t train_len, pos_off; /* softplus */
  double power;
} variant;

static hy_tensor *run_fused(const variant *c, hy_tensor *q, hy_tensor *k, hy_tensor *v) {
  return c->softplus ? hy_softplus_attention(q, k, v, c->scale, c->train_len, c->power, c->pos_off)
                     : hy_sigmoid_attention(q, k, v, c->scale, c->bias);
}

static hy_tensor *run_naive(const variant *c, hy_tensor *q, hy_tensor *k, hy_tensor *v) {
  return c->softplus
             ? hy_softplus_attention_naive(q, k, v, c->scale, c->train_len, c->power, c->pos_off)
             : hy_sigmoid_attention_naive(q, k, v, c->scale, c->bias);
}

static const char *describe(const variant *c, const hy_tensor *q) {
  static char buf[200];
  const char *shape = q ? hy_describe(q) : "";
  if (c->softplus)
    snprintf(buf, sizeof buf, "softplus %s scale %g train_len %lld power %g pos_offset %lld", shape,
             c->scale, (long long)c->train_len, c->power, (long long)c->pos_off);
  else
    snprintf(buf, sizeof buf, "sigmoid %s scale %g bias %g", shape, c->scale, c->bias);
  return buf;
}

/* Output and the gradients of q, k, v for the output gradient go. */
typedef struct {
  hy_tensor *o, *g[3];
} result;

static result forward_backward(const variant *c, bool naive, hy_tensor *q, hy_tensor *k,
                               hy_tensor *v, hy_tensor *go) {
  hy_tensor *in[3] = {q, k, v};
  for (int i = 0; i < 3; i++) in[i]->grad = NULL;
  result r;
  r.o = naive ? run_naive(c, q, k, v) : run_fused(c, q, k, v);
  hy_backward_with(r.o, go);
  for (int i = 0; i < 3; i++) r.g[i] = in[i]->grad;
  return r;
}

/* The worst of the four max-abs relative errors (t_max_rel_err) of a against ref. */
static double worst_error(const result *a, const result *ref, const char *what, double tol) {
  static const char *names[] = {"output", "dq", "dk", "dv"};
  const hy_tensor *x[] = {a->o, a->g[0], a->g[1], a->g[2]};
  const hy_tensor *y[] = {ref->o, ref->g[0], ref->g[1], ref->g[2]};
  double worst = 0;
  for (int i = 0; i < 4; i++) {
    cr_assert(hy_same_shape(x[i], y[i]), "%s %s: shape %s, expected %s", what, names[i],
              hy_describe(x[i]), hy_describe(y[i]));
    double e = t_max_rel_err(x[i], y[i]), ref_max = 0;
    for (int64_t j = 0; j < hy_numel(y[i]); j++) ref_max = fmax(ref_max, fabs(hy_get(y[i], j)));
    if (ref_max <= 1e-15) { /* T = 1: dq = dk = 0 but for rounding (of inputs ~1) in both */
      e = 0;
      for (int64_t j = 0; j < hy_numel(x[i]); j++) e = fmax(e, fabs(hy_get(x[i], j)));
      cr_assert(e <= 1e-15, "%s %s: %.3g where the gradient is 0", what, names[i], e);
      continue;
    }
    cr_assert(e <= tol, "%s %s: max relative error %.3g > %.3g", what, names[i], e, tol);
    worst = fmax(worst, e);
  }
  return worst;
}

/* {B, T, H, D}: one row; T not a multiple of 64 around one and two tiles; exactly one tile;
 * odd D. */
static const int64_t SIZES[][4] = {{1, 1, 1, 1},   {2, 37, 3, 5}, {1, 100, 2, 7},
                                   {2, 130, 2, 4}, {1, 64, 1, 3}, {3, 65, 2, 8}};
enum { N_SIZES = sizeof SIZES / sizeof *SIZES };

/* f64: the fused op sums the same products in another order (tiles) and, for softplus, scales
 * the weights by the row's running maximum; measured <= 2e-15. */
static const double TOL_F64 = 1e-13;

/* Fused against naive in f64, forward and gradients, on every size; returns the worst error. */
static double check_against_naive(const variant *c) {
  double worst = 0;
  for (int i = 0; i < N_SIZES; i++) {
    const int64_t *s = SIZES[i];
    hy_shape sh = HY_SHAPE(s[0], s[1], s[2], s[3]);
    hy_tensor *q = t_param(t_randn_next(HY_F64, sh)), *k = t_param(t_randn_next(HY_F64, sh));
    hy_tensor *v = t_param(t_randn_next(HY_F64, sh)), *go = t_randn_next(HY_F64, sh);
    variant cv = *c;
    if (cv.scale == 0) cv.scale = 1 / sqrt((double)s[3]);
    if (isnan(cv.bias)) cv.bias = -log((double)s[1]);
    result f = forward_backward(&cv, false, q, k, v, go);
    result n = forward_backward(&cv, true, q, k, v, go);
    cr_assert(hy_is_contiguous(f.o), "%s: output not contiguous", describe(&cv, q));
    worst = fmax(worst, worst_error(&f, &n, describe(&cv, q), TOL_F64));
    hy_step_reset();
  }
  return worst;
}

/* f32 against f64 of the same fused op on the same values. f32 rounds each score to ~2^-24
 * relative and sums up to 130 weighted terms per output, gradient or key; measured <= ~1e-6. */
static const double TOL_F32 = 1e-5;

static double check_f32_against_f64(const variant *c) {
  double worst = 0;
  for (int i = 0; i < N_SIZES; i++) {
    const int64_t *s = SIZES[i];
    hy_shape sh = HY_SHAPE(s[0], s[1], s[2], s[3]);
    hy_tensor *in64[4], *in32[4];
    for (int j = 0; j < 4; j++) {
      in64[j] = t_randn_next(HY_F64, sh);
      in32[j] = t_cast(in64[j], HY_F32);
      if (j < 3) t_param(in64[j]), t_param(in32[j]);
    }
    variant cv = *c;
    if (cv.scale == 0) cv.scale = 1 / sqrt((double)s[3]);
    if (isnan(cv.bias)) cv.bias = -log((double)s[1]);
    result r64 = forward_backward(&cv, false, in64[0], in64[1], in64[2], in64[3]);
    result r32 = forward_backward(&cv, false, in32[0], in32[1], in32[2], in32[3]);
    cr_assert(r32.o->dtype == HY_F32 && r32.g[0]->dtype == HY_F32);
    worst = fmax(worst, worst_error(&r32, &r64, describe(&cv, in32[0]), TOL_F32));
    hy_step_reset();
  }
  return worst;
}

/* scale 0: 1 / sqrt(D); bias NaN: -log(T) (the paper's choice). */
static const variant SIGMOIDS[] = {
    {.scale = 0, .bias = NAN}, {.scale = 0, .bias = 0}, {.scale = 0.7, .bias = -2.5}};
enum { N_SIGMOIDS = sizeof SIGMOIDS / sizeof *SIGMOIDS };

/* power 1 (LSSA) and 3 (LSSAR), and a flattening 0.5; c_t = 1 (train_len 0) and length scaling
 * relative to 16 from position 0 and from position 50. */
static const variant SOFTPLUSES[] = {
    {.softplus = true, .train_len = 0, .pos_off = 0, .power = 1},
    {.softplus = true, .train_len = 0, .pos_off = 0, .power = 3},
    {.softplus = true, .train_len = 16, .pos_off = 0, .power = 1},
    {.softplus = true, .train_len = 16, .pos_off = 0, .power = 3},
    {.softplus = true, .train_len = 16, .pos_off = 50, .power = 1},
    {.softplus = true, .train_len = 16, .pos_off = 50, .power = 3},
    {.softplus = true, .train_len = 1, .pos_off = 7, .power = 0.5, .scale = 0.8},
};
enum { N_SOFTPLUSES = sizeof SOFTPLUSES / sizeof *SOFTPLUSES };

Test(sigmoid_attention, forward_and_grads_against_naive) {
  double worst = 0;
  for (int i = 0; i < N_SIGMOIDS; i++) worst = fmax(worst, check_against_naive(&SIGMOIDS[i]));
  cr_log_info("sigmoid attention, fused vs naive (f64): worst max-rel error %.3g", worst);
}

Test(sigmoid_attention, f32_against_f64) {
  double worst = 0;
  for (int i = 0; i < N_SIGMOIDS; i++) worst = fmax(worst, check_f32_against_f64(&SIGMOIDS[i]));
  cr_log_info("sigmoid attention, f32 vs f64: worst max-rel error %.3g", worst);
}

Test(softplus_attention, forward_and_grads_against_naive) {
  double worst = 0;
  for (int i = 0; i < N_SOFTPLUSES; i++) worst = fmax(worst, check_against_naive(&SOFTPLUSES[i]));
  cr_log_info("softplus attention, fused vs naive (f64): worst max-rel error %.3g", worst);
}

Test(softplus_attention, f32_against_f64) {
  double worst = 0;
  for (int i = 0; i < N_SOFTPLUSES; i++) worst = fmax(worst, check_f32_against_f64(&SOFTPLUSES[i]));
  cr_log_info("softplus attention, f32 vs f64: worst max-rel error %.3g", worst);
}

/* ---- strided inputs ---- */

/* The gradient of one qkv projection through the views, fused against naive; and q, k, v seen
 * through a [B, H, T, D] -> [B, T, H, D] transpose and with a strided last axis (copied). */
static void check_strided(const variant *c) {
  int64_t B = 2, T = 70, H = 2, D = 5;
  hy_tensor *qkv = t_param(t_randn_next(HY_F64, HY_SHAPE(B, T, 3 * H * D)));
  hy_tensor *go = t_randn_next(HY_F64, HY_SHAPE(B, T, H, D));
  hy_tensor *q, *k, *v, *o[2], *g[2];
  for (int naive = 0; naive < 2; naive++) {
    qkv->grad = NULL;
    t_qkv_views(qkv, H, D, &q, &k, &v);
    cr_assert(!hy_is_contiguous(q) && q->stride[1] == 3 * H * D);
    o[naive] = naive ? run_naive(c, q, k, v) : run_fused(c, q, k, v);
    hy_backward_with(o[naive], go);
    g[naive] = qkv->grad;
  }
  t_expect_close(o[0], o[1], TOL_F64, describe(c, q));
  t_expect_close(g[0], g[1], TOL_F64, describe(c, q));
  hy_tensor *qt = hy_transpose(t_randn_next(HY_F64, HY_SHAPE(B, H, T, D)), 1, 2);
  hy_tensor *vt = hy_transpose(t_randn_next(HY_F64, HY_SHAPE(B, T, D, H)), 2, 3);
  hy_tensor *kk = t_randn_next(HY_F64, HY_SHAPE(B, T, H, D));
  cr_assert(vt->stride[3] != 1);
  t_expect_close(run_fused(c, qt, kk, vt), run_naive(c, qt, kk, vt), TOL_F64, "transposed");
}

Test(sigmoid_attention, strided_inputs) {
  check_strided(&(variant){.scale = 0.5, .bias = -log(70.0)});
}

Test(softplus_attention, strided_inputs) {
  check_strided(&(variant){.softplus = true, .scale = 0.5, .train_len = 16, .power = 3});
}

/* ---- the softplus weights of a row, by hand ---- */

/* With D = T and v_s the unit vector e_s, o_t[s] is the normalized weight of key s in row t:
 * softplus(c_t scale q_t . k_s)^p / sum_{s' <= t} softplus(c_t scale q_t . k_s')^p for s <= t,
 * 0 after, with c_t = log(t + pos_offset + 1) / log(train_len). */
Test(softplus_attention, row_weights_by_hand) {
  int64_t T = 11, H = 2, train_len = 16;
  double scale = 0.6;
  hy_tensor *q = t_randn_next(HY_F64, HY_SHAPE(1, T, H, T)),
            *k = t_randn_next(HY_F64, HY_SHAPE(1, T, H, T));
  hy_tensor *v = hy_zeros(HY_F64, HY_SHAPE(1, T, H, T));
  for (int64_t s = 0; s < T; s++)
    for (int64_t h = 0; h < H; h++) hy_set(v, (s * H + h) * T + s, 1);
  const double powers[] = {1, 3};
  const int64_t offsets[] = {0, 50};
  double worst = 0;
  for (int pi = 0; pi < 2; pi++)
    for (int oi = 0; oi < 2; oi++) {
      double p = powers[pi];
      int64_t off = offsets[oi];
      hy_tensor *o = hy_softplus_attention(q, k, v, scale, train_len, p, off);
      for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
          double c = log((double)(t + off + 1)) / log((double)train_len), w[64], z = 0;
          for (int64_t s = 0; s <= t; s++) {
            double dot = 0;
            for (int64_t d = 0; d < T; d++)
              dot += t_at(q, (int64_t[]){0, t, h, d}) * t_at(k, (int64_t[]){0, s, h, d});
            w[s] = pow(log1p(exp(c * scale * dot)), p);
            z += w[s];
          }
          for (int64_t s = 0; s < T; s++) {
            double want = s <= t ? w[s] / z : 0, got = t_at(o, (int64_t[]){0, t, h, s});
            cr_assert(fabs(got - want) <= 1e-14,
                      "p %g offset %lld row %lld key %lld: %.17g != %.17g", p, (long long)off,
                      (long long)t, (long long)s, got, want);
            worst = fmax(worst, fabs(got - want));
          }
        }
    }
  cr_log_info("softplus attention row weights by hand: worst abs error %.3g", worst);
}

/* ---- large logits ---- */

/* |scale q . k| around 50 (and up to ~200): sigmoid saturates, softplus^3 spans e^-150 .. 1e6.
 * Every output and gradient stays finite in f32 and f64. f64 matches the naive form to 1e-12: a
 * weight e^(p x) turns the rounding of a logit x into p |x| ulp (measured <= 2e-14). f32 matches
 * f64 to 1e-5: logits of ~50 are rounded to ~3e-6 absolute (measured <= 2e-6). */
static void check_large_logits(const variant *c) {
  hy_shape sh = HY_SHAPE(2, 70, 2, 4);
  hy_tensor *in64[4], *in32[4];
  for (int j = 0; j < 4; j++) {
    in64[j] = t_randn_next(HY_F64, sh);
    if (j < 2) in64[j] = hy_scale(in64[j], 5); /* q . k ~ 25 sqrt(D) = 50 */
    in32[j] = t_cast(in64[j], HY_F32);
    if (j < 3) t_param(in64[j]), t_param(in32[j]);
  }
  result r64 = forward_backward(c, false, in64[0], in64[1], in64[2], in64[3]);
  result r32 = forward_backward(c, false, in32[0], in32[1], in32[2], in32[3]);
  const hy_tensor *all[] = {r64.o, r64.g[0], r64.g[1], r64.g[2],
                            r32.o, r32.g[0], r32.g[1], r32.g[2]};
  for (int i = 0; i < 8; i++)
    for (int64_t j = 0; j < hy_numel(all[i]); j++)
      cr_assert(isfinite(hy_get(all[i], j)), "%s: tensor %d element %lld not finite",
                describe(c, in32[0]), i, (long long)j);
  result n64 = forward_backward(c, true, in64[0], in64[1], in64[2], in64[3]);
  double e64 = worst_error(&r64, &n64, describe(c, in64[0]), 1e-12);
  double e32 = worst_error(&r32, &r64, describe(c, in32[0]), 1e-5);
  cr_log_info("large logits, %s: f64 vs naive %.3g, f32 vs f64 %.3g", describe(c, in32[0]), e64,
              e32);
}

Test(sigmoid_attention, large_logits_stay_finite) {
  check_large_logits(&(variant){.scale = 1, .bias = -log(70.0)});
}

Test(softplus_attention, large_logits_stay_finite) {
  check_large_logits(&(variant){.softplus = true, .scale = 1, .train_len = 0, .power = 1});
  check_large_logits(&(variant){.softplus = true, .scale = 1, .train_len = 0, .power = 3});
  /* c_t = log(51 .. 120) / log(16) = 1.4 .. 1.7: scale 0.6 keeps |x| ~ 50. */
  check_large_logits(
      &(variant){.softplus = true, .scale = 0.6, .train_len = 16, .pos_off = 50, .power = 3});
}

/* Every logit deep in softplus's tail (x in about -200 .. -40, where softplus(x)^3 underflows
 * even in f64 below -236 and softplus(x) itself in f32 below -87): softplus(x)^p = e^(p x) to
 * within e^x / 2 relative, so the op is softmax attention with scale p scale there, forward and
 * gradients, which the fused op reproduces from its running maximum. f64 to 1e-12; f32 rounds
 * logits of ~150 to ~1e-5 absolute, times p = 3 in the weights: 1e-4. */
Test(softplus_attention, deep_tail_is_softmax_attention) {
  const hy_dtype dts[] = {HY_F64, HY_F32};
  double worst[2] = {0, 0};
  for (int di = 0; di < 2; di++)
    for (int pi = 0; pi < 2; pi++) {
      double p = pi ? 3 : 1, scale = 0.9;
      hy_shape sh = HY_SHAPE(2, 100, 2, 4);
      hy_tensor *q = t_randn_next(HY_F64, sh), *k = t_randn_next(HY_F64, sh);
      for (int64_t i = 0; i < hy_numel(q); i += 4) { /* q . k = -144 + O(17) */
        hy_set(q, i, hy_get(q, i) + 12);
        hy_set(k, i, hy_get(k, i) - 12);
      }
      hy_tensor *in[4] = {t_cast(q, dts[di]), t_cast(k, dts[di]), t_randn_next(dts[di], sh),
                          t_randn_next(dts[di], sh)};
      for (int j = 0; j < 3; j++) t_param(in[j]);
      variant c = {.softplus = true, .scale = scale, .train_len = 0, .power = p};
      result f = forward_backward(&c, false, in[0], in[1], in[2], in[3]);
      result a;
      for (int j = 0; j < 3; j++) in[j]->grad = NULL;
      a.o = hy_attention(in[0], in[1], in[2], p * scale);
      hy_backward_with(a.o, in[3]);
      for (int j = 0; j < 3; j++) a.g[j] = in[j]->grad;
      worst[di] = fmax(worst[di], worst_error(&f, &a, describe(&c, in[0]), di ? 1e-4 : 1e-12));
    }
  cr_log_info("softplus deep tail vs softmax attention: f64 %.3g, f32 %.3g", worst[0], worst[1]);
}

/* ---- gradcheck ---- */

static hy_tensor *fused_gc(hy_tensor **in, void *ctx) {
  return run_fused(ctx, in[0], in[1], in[2]);
}

#define P(...) t_param(t_randn_next(HY_F64, HY_SHAPE(__VA_ARGS__)))

static void gradcheck_variant(const variant *c) {
  t_expect_gradcheck(fused_gc, (void *)c, 3,
                     (hy_tensor *[]){P(2, 7, 3, 4), P(2, 7, 3, 4), P(2, 7, 3, 4)},
                     describe(c, NULL));
  t_expect_gradcheck(fused_gc, (void *)c, 3,
                     (hy_tensor *[]){P(1, 5, 2, 3), P(1, 5, 2, 3), P(1, 5, 2, 3)}, "D = 3");
  /* Across a tile boundary (T = 67 > 64). */
  t_expect_gradcheck(fused_gc, (void *)c, 3,
                     (hy_tensor *[]){P(1, 67, 1, 2), P(1, 67, 1, 2), P(1, 67, 1, 2)}, "T = 67");
  /* Some inputs without a gradient. */
  hy_tensor *k = t_randn_next(HY_F64, HY_SHAPE(2, 5, 3, 4));
  t_expect_gradcheck(fused_gc, (void *)c, 3, (hy_tensor *[]){P(2, 5, 3, 4), k, P(2, 5, 3, 4)},
                     "q, v only");
  /* One tensor as q, k and v: the three gradients add up in one buffer. */
  hy_tensor *x = P(2, 6, 3, 4);
  t_expect_gradcheck(fused_gc, (void *)c, 3, (hy_tensor *[]){x, x, x}, "q = k = v");
}

Test(sigmoid_attention, gradcheck) {
  gradcheck_variant(&(variant){.scale = 0.5, .bias = 0});
  gradcheck_variant(&(variant){.scale = 0.8, .bias = -log(7.0)});
}

Test(softplus_attention, gradcheck) {
  gradcheck_variant(&(variant){.softplus = true, .scale = 0.5, .train_len = 0, .power = 1});
  gradcheck_variant(&(variant){.softplus = true, .scale = 0.5, .train_len = 16, .power = 3});
  gradcheck_variant(
      &(variant){.softplus = true, .scale = 0.8, .train_len = 16, .pos_off = 50, .power = 3});
  gradcheck_variant(&(variant){.softplus = true, .scale = 0.7, .train_len = 0, .power = 0.5});
}

/* ---- determinism and bad arguments ---- */

Test(softmax_variants, deterministic) {
  const variant cs[] = {{.scale = 0.35, .bias = -3},
                        {.softplus = true, .scale = 0.35, .train_len = 16, .power = 3}};
  hy_shape sh = HY_SHAPE(2, 70, 3, 8);
  for (int i = 0; i < 2; i++) {
    hy_tensor *q = t_param(t_randn_next(HY_F32, sh)), *k = t_param(t_randn_next(HY_F32, sh));
    hy_tensor *v = t_param(t_randn_next(HY_F32, sh)), *go = t_randn_next(HY_F32, sh);
    result a = forward_backward(&cs[i], false, q, k, v, go);
    result b = forward_backward(&cs[i], false, q, k, v, go);
    t_expect_same_bits(a.o, b.o, "forward");
    for (int j = 0; j < 3; j++) t_expect_same_bits(a.g[j], b.g[j], "gradient");
  }
}

static void sigmoid_mismatch(void) {
  hy_sigmoid_attention(hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)),
                       hy_zeros(HY_F32, HY_SHAPE(1, 5, 2, 3)),
                       hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)), 1.0, 0.0);
}
static void sigmoid_dtypes(void) {
  hy_sigmoid_attention(hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)),
                       hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 3)),
                       hy_zeros(HY_F64, HY_SHAPE(1, 4, 2, 3)), 1.0, 0.0);
}
static void softplus_3d(void) {
  hy_tensor *x = hy_zeros(HY_F64, HY_SHAPE(4, 2, 3));
  hy_softplus_attention(x, x, x, 1.0, 0, 1.0, 0);
}
static void softplus_power(void) {
  hy_tensor *x = hy_zeros(HY_F64, HY_SHAPE(1, 4, 2, 3));
  hy_softplus_attention(x, x, x, 1.0, 16, 0.0, 0);
}
static void softplus_offset(void) {
  hy_tensor *x = hy_zeros(HY_F64, HY_SHAPE(1, 4, 2, 3));
  hy_softplus_attention(x, x, x, 1.0, 16, 1.0, -1);
}

Test(softmax_variants, bad_arguments_abort) {
  t_expect_abort(sigmoid_mismatch, 3,
                 (const char *[]){"sigmoid_attention", "[1, 4, 2, 3]", "[1, 5, 2, 3]"});
  t_expect_abort(sigmoid_dtypes, 3, (const char *[]){"sigmoid_attention", "f32", "f64"});
  t_expect_abort(softplus_3d, 2, (const char *[]){"softplus_attention", "[4, 2, 3]"});
  t_expect_abort(softplus_power, 2, (const char *[]){"softplus_attention", "power 0"});
  t_expect_abort(softplus_offset, 2, (const char *[]){"softplus_attention", "pos_offset -1"});
}
