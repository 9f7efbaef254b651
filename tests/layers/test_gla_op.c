/* The chunked GLA op against the step-by-step recurrence: outputs and every gradient in f64. */
#include "layers/gla_reference.h"
#include "tests/support.h"

#include <math.h>

TestSuite(gla_op, .fini = hy_step_reset);

/* Log decays as GLA makes them, logsigmoid(x) / 16, spread so some are strong. */
static hy_tensor *log_decays(hy_shape s, uint64_t seed) {
  hy_tensor *x = t_randn(HY_F64, s, seed);
  hy_no_grad_begin();
  hy_tensor *g = hy_scale(hy_logsigmoid(hy_scale(x, 3.0)), 1.0 / 16.0);
  hy_no_grad_end();
  return g;
}

typedef struct {
  double out, grads;
} errors;

static errors chunked_vs_recurrent(int64_t B, int64_t T, int64_t H, int64_t dk, int64_t dv,
                                   int64_t chunk, bool decay) {
  hy_tensor *q = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, dk), 1));
  hy_tensor *k = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, dk), 2));
  hy_tensor *v = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, dv), 3));
  hy_tensor *g = decay ? t_param(log_decays(HY_SHAPE(B, T, H, dk), 4)) : NULL;
  hy_tensor *go = t_randn(HY_F64, HY_SHAPE(B, T, H, dv), 5);
  hy_tensor *in[4] = {q, k, v, g};
  int n = decay ? 4 : 3;
  hy_tensor *o1 = hy_gla(q, k, v, g, chunk);
  hy_backward_with(o1, go);
  hy_tensor *g1[4];
  for (int i = 0; i < n; i++) {
    g1[i] = in[i]->grad;
    in[i]->grad = NULL;
  }
  hy_tensor *o2 = hy_gla_recurrent(q, k, v, g);
  hy_backward_with(o2, go);
  errors e = {t_rel_norm_err(o1, o2), 0};
  for (int i = 0; i < n; i++) e.grads = fmax(e.grads, t_rel_norm_err(g1[i], in[i]->grad));
  return e;
}

Test(gla_op, chunked_equals_recurrence_in_f64) {
  struct {
    int64_t B, T, H, dk, dv, chunk;
  } cases[] = {
      {2, 100, 2, 8, 6, 16},     /* T not a multiple of the chunk */
      {1, 5, 3, 4, 4, 64},       /* T shorter than one chunk */
      {2, 64, 1, 16, 8, 64},     /* exactly one chunk */
      {1, 130, 2, 5, 7, 32},     /* odd head sizes */
      {1, 1, 1, 3, 2, 64},       /* one token */
      {1, 37, 4, 2, 3, 1},       /* chunks of one token */
      {1, 40, 2, 4, 3, 1 << 20}, /* a chunk far past T: the whole sequence, not a 2^20 scratch */
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (int decay = 0; decay < 2; decay++) {
      errors e = chunked_vs_recurrent(cases[c].B, cases[c].T, cases[c].H, cases[c].dk, cases[c].dv,
                                      cases[c].chunk, decay);
      cr_log_info("case %zu decay %d: output %.3g, gradients %.3g", c, decay, e.out, e.grads);
      cr_assert(e.out <= 1e-10 && e.grads <= 1e-10,
                "case %zu decay %d: output error %.3g, gradient error %.3g", c, decay, e.out,
                e.grads);
      hy_step_reset();
    }
}

/* A chunk past any sequence, as a recipe may ask for, is one chunk of the whole sequence. */
Test(gla_op, a_chunk_past_any_size_is_the_whole_sequence) {
  for (int decay = 0; decay < 2; decay++) {
    errors e = chunked_vs_recurrent(1, 5, 3, 4, 4, INT64_MAX, decay);
    cr_assert(e.out <= 1e-10 && e.grads <= 1e-10,
              "decay %d: output error %.3g, gradient error %.3g", decay, e.out, e.grads);
  }
}

/* A constant decay per head (lightning) against the recurrence fed the same decay as a g tensor. */
Test(gla_op, constant_head_decay_equals_recurrence) {
  double decay[3] = {0.0, -0.3, -2.5};
  for (int with_decay = 0; with_decay < 2; with_decay++) {
    int64_t B = 2, T = 45, H = 3, dk = 5, dv = 4;
    hy_tensor *q = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, dk), 41));
    hy_tensor *k = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, dk), 42));
    hy_tensor *v = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, dv), 43));
    hy_tensor *go = t_randn(HY_F64, HY_SHAPE(B, T, H, dv), 44);
    hy_tensor *g = hy_empty(HY_F64, HY_SHAPE(B, T, H, dk));
    for (int64_t i = 0; i < hy_numel(g); i++) hy_set(g, i, with_decay ? decay[i / dk % H] : 0.0);
    hy_tensor *o1 = hy_linear_attention(q, k, v, with_decay ? decay : NULL, 16);
    hy_backward_with(o1, go);
    hy_tensor *g1[3] = {q->grad, k->grad, v->grad};
    q->grad = k->grad = v->grad = NULL;
    hy_tensor *o2 = hy_gla_recurrent(q, k, v, g);
    hy_backward_with(o2, go);
    double err = t_rel_norm_err(o1, o2);
    hy_tensor *in[3] = {q, k, v};
    for (int i = 0; i < 3; i++) err = fmax(err, t_rel_norm_err(g1[i], in[i]->grad));
    cr_assert(err <= 1e-10, "decay %d: %.3g", with_decay, err);
    hy_step_reset();
  }
}

static hy_tensor *constant_decay_fn(hy_tensor **in, void *ctx) {
  return hy_linear_attention(in[0], in[1], in[2], ctx, 4);
}

Test(gla_op, constant_head_decay_gradchecks) {
  double decay[2] = {-0.1, -1.0};
  hy_tensor *in[3] = {
      t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 2, 3), 51)),
      t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 2, 3), 52)),
      t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 2, 5), 53)),
  };
  cr_assert(hy_gradcheck(constant_decay_fn, decay, 3, in, NULL), "worst %.3g",
            hy_gradcheck_last_error());
}

static hy_tensor *gla_fn(hy_tensor **in, void *ctx) {
  return hy_gla(in[0], in[1], in[2], in[3], *(int64_t *)ctx);
}

Test(gla_op, gradchecks) {
  int64_t chunk = 4;
  hy_tensor *in[4] = {
      t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 2, 3), 11)),
      t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 2, 3), 12)),
      t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 2, 5), 13)),
      t_param(log_decays(HY_SHAPE(2, 11, 2, 3), 14)),
  };
  cr_assert(hy_gradcheck(gla_fn, &chunk, 4, in, NULL), "worst %.3g", hy_gradcheck_last_error());
}

/* Strong decays (g down to -40 per step) stay finite: every exponent is a difference <= 0. */
Test(gla_op, strong_decay_stays_finite) {
  hy_tensor *q = t_randn(HY_F32, HY_SHAPE(1, 200, 1, 8), 21);
  hy_tensor *k = t_randn(HY_F32, HY_SHAPE(1, 200, 1, 8), 22);
  hy_tensor *v = t_randn(HY_F32, HY_SHAPE(1, 200, 1, 8), 23);
  hy_tensor *g = t_uniform(HY_F32, HY_SHAPE(1, 200, 1, 8), 24, -40.0, 0.0);
  hy_tensor *o = hy_gla(q, k, v, g, 64);
  for (int64_t i = 0; i < hy_numel(o); i++) cr_assert(isfinite(hy_get(o, i)));
}

/* f32 against f64: the kernel's f32 path (with its fast exp) stays within single precision. */
Test(gla_op, f32_matches_f64) {
  hy_tensor *q = t_randn(HY_F64, HY_SHAPE(2, 150, 2, 16), 31);
  hy_tensor *k = t_randn(HY_F64, HY_SHAPE(2, 150, 2, 16), 32);
  hy_tensor *v = t_randn(HY_F64, HY_SHAPE(2, 150, 2, 16), 33);
  hy_tensor *g = log_decays(HY_SHAPE(2, 150, 2, 16), 34);
  hy_tensor *o64 = hy_gla(q, k, v, g, 64);
  hy_tensor *o32 =
      hy_gla(t_cast(q, HY_F32), t_cast(k, HY_F32), t_cast(v, HY_F32), t_cast(g, HY_F32), 64);
  double err = t_rel_norm_err(o32, o64);
  cr_assert(err <= 1e-5, "f32 vs f64: %.3g", err);
}
