/* The short causal convolution (mixer "conv", layers/conv.h): its forward against a plain loop in
 * f64, a finite-difference gradient check of the input and every parameter, kernels of 1 and
 * longer than the sequence, decoding against the forward (the layer alone and in a model), and a
 * conv/attention hybrid that learns. */
#include "layers/conv.h"
#include "layers/model.h"
#include "tests/support.h"

#include <stdio.h>

TestSuite(conv, .fini = t_params_fini);

enum { D = 6 };

/* A conv layer of kernel K on d = D in f64, its bias drawn normal(0.5, 0.3) rather than ones so
 * that a dropped bias or a wrong tap shows in every output. */
static hy_conv_layer *make(int64_t K, uint64_t seed) {
  hy_model_config cfg = hy_model_config_default();
  cfg.dtype = HY_F64;
  cfg.d_model = D;
  cfg.init_std = 0.4;
  cfg.conv.kernel = K;
  hy_rng rng = hy_rng_new(seed);
  hy_conv_layer *l = hy_mixer_conv.create(&t_params, "mixer", &cfg, 0, &rng);
  hy_fill_normal(l->bias, &rng, 0.5, 0.3);
  return l;
}

/* y[b, t, o] = sum_c x[b, t, c] W[o, c] * (b_o + sum_{i <= t, i < K} w[i, o] x[b, t - i, o]). */
static hy_tensor *loop_reference(const hy_conv_layer *l, const hy_tensor *x) {
  int64_t B = x->shape[0], T = x->shape[1];
  hy_tensor *y = hy_empty(HY_F64, HY_SHAPE(B, T, D));
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t o = 0; o < D; o++) {
        double proj = 0, z = hy_get(l->bias, o);
        for (int64_t c = 0; c < D; c++)
          proj += hy_get(x, (b * T + t) * D + c) * hy_get(l->proj.weight, o * D + c);
        for (int64_t i = 0; i < l->kernel && i <= t; i++)
          z += hy_get(l->taps, i * D + o) * hy_get(x, (b * T + t - i) * D + o);
        hy_set(y, (b * T + t) * D + o, proj * z);
      }
  return y;
}

static void destroy(hy_conv_layer *l) {
  hy_mixer_conv.destroy(l);
  hy_params_free(&t_params);
  hy_step_reset();
}

/* Kernels of 1 (no shift), 3 (the default), the sequence's length and past it (T = 5). */
static const int64_t KERNELS[] = {1, 3, 5, 8};
enum { N_KERNELS = sizeof KERNELS / sizeof *KERNELS, T_SHORT = 5 };

/* Tolerance 1e-13: the same sums in another order, in f64. */
Test(conv, forward_matches_a_plain_loop) {
  for (int k = 0; k < N_KERNELS; k++) {
    hy_conv_layer *l = make(KERNELS[k], 1);
    hy_tensor *x = t_randn(HY_F64, HY_SHAPE(2, T_SHORT, D), 2);
    char what[64];
    snprintf(what, sizeof what, "conv kernel %lld", (long long)KERNELS[k]);
    t_expect_close(hy_mixer_conv.forward(l, x), loop_reference(l, x), 1e-13, what);
    destroy(l);
  }
}

static hy_tensor *layer_fn(hy_tensor **in, void *ctx) { return hy_mixer_conv.forward(ctx, in[0]); }

/* hy_gradcheck's defaults: rtol 1e-6 against central differences, every element of x, W, w, b
 * (at most 48 of each). */
Test(conv, input_and_every_parameter_gradcheck) {
  for (int k = 0; k < N_KERNELS; k++) {
    hy_conv_layer *l = make(KERNELS[k], 3);
    hy_tensor *inputs[] = {t_param(t_randn(HY_F64, HY_SHAPE(2, T_SHORT, D), 4)), l->proj.weight,
                           l->taps, l->bias};
    char what[64];
    snprintf(what, sizeof what, "conv kernel %lld", (long long)KERNELS[k]);
    t_expect_gradcheck(layer_fn, l, 4, inputs, what);
    destroy(l);
  }
}

/* Taps further back than the sequence see only zeros: a kernel of 8 on 5 tokens gives what a
 * kernel of 5 with the same first taps gives, and its last 3 taps get a zero gradient. */
Test(conv, taps_past_the_sequence_start_do_nothing) {
  hy_conv_layer *long_kernel = make(8, 5);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, T_SHORT, D), 6));
  hy_tensor *y = hy_mixer_conv.forward(long_kernel, x);
  hy_backward_with(y, t_randn(HY_F64, HY_SHAPE(2, T_SHORT, D), 7));
  hy_tensor *g = long_kernel->taps->grad;
  for (int64_t i = 0; i < 8 * D; i++)
    if (i >= T_SHORT * D)
      cr_expect_eq(hy_get(g, i), 0.0, "tap %lld channel %lld", (long long)(i / D),
                   (long long)(i % D));
    else if (i / D == T_SHORT - 1 && i % D == 0)
      cr_expect_neq(hy_get(g, i), 0.0, "the furthest tap that reaches the sequence learns");
  hy_conv_layer short_kernel = *long_kernel;
  short_kernel.taps = hy_slice(long_kernel->taps, 0, 0, T_SHORT);
  short_kernel.kernel = T_SHORT;
  hy_no_grad_begin();
  t_expect_close(hy_mixer_conv.forward(&short_kernel, x), y, 1e-15, "kernel 8 against 5");
  hy_no_grad_end();
  destroy(long_kernel);
}

/* Decoding token by token (the last K - 1 inputs carried) equals the forward's row: 1e-12. */
Test(conv, decoding_matches_the_forward) {
  for (int k = 0; k < N_KERNELS; k++) {
    hy_conv_layer *l = make(KERNELS[k], 8);
    hy_tensor *x = t_randn(HY_F64, HY_SHAPE(2, 7, D), 9);
    char what[64];
    snprintf(what, sizeof what, "conv kernel %lld", (long long)KERNELS[k]);
    t_expect_decoding_matches(&hy_mixer_conv, l, x, 1e-12, what);
    destroy(l);
  }
}

static hy_model_config hybrid(void) {
  hy_model_config cfg = hy_model_config_default();
  cfg.dtype = HY_F64;
  cfg.vocab = 11;
  cfg.d_model = 12;
  cfg.n_heads = 3;
  cfg.mlp_hidden = 16;
  cfg.init_std = 0.3;
  cfg.n_layers = 4;
  const char *pattern[] = {"conv", "attn", "conv", "attn"};
  for (int l = 0; l < 4; l++) snprintf(cfg.layers[l], HY_KIND_NAME_MAX, "%s", pattern[l]);
  return cfg;
}

/* "conv,attn x 2": the decoder's logits equal the full forward's within 1e-10. */
Test(conv, hybrid_decoding_matches_forward) {
  hy_model_config cfg = hybrid();
  hy_model *m = hy_model_new(&cfg, 5);
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, 9));
  hy_rng rng = hy_rng_new(6);
  hy_fill_int(tokens, &rng, 0, 11);
  double worst = t_decoding_error(m, tokens);
  cr_assert(worst <= 1e-10, "decoding vs forward: %.3g", worst);
  hy_model_free(m);
}

/* The whole hybrid's loss: every parameter passes hy_gradcheck (rtol 1e-6). */
Test(conv, hybrid_model_gradchecks_every_parameter) {
  hy_model_config cfg = hybrid();
  cfg.n_layers = 2;
  hy_model *m = hy_model_new(&cfg, 7);
  hy_rng rng = hy_rng_new(12);
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, 7)), *targets = hy_empty(HY_I32, HY_SHAPE(2, 7));
  hy_fill_int(tokens, &rng, 0, 11);
  hy_fill_int(targets, &rng, 0, 11);
  cr_assert(t_model_gradcheck(m, tokens, targets), "worst %.3g", hy_gradcheck_last_error());
  hy_model_free(m);
}

/* A [conv, attn] model (f32, d = 32) memorizes one batch: from about log(64) to below 0.05
 * within 200 steps. */
Test(conv, hybrid_model_learns_one_batch) { t_expect_hybrid_overfits("conv", 200); }
