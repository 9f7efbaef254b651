#include "layers/conv.h"
#include "layers/model.h"
#include "tensor/ops.h"

#include <stdio.h>
#include <stdlib.h>

static void *conv_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                         hy_rng *rng) {
  (void)layer;
  int64_t d = cfg->d_model, K = cfg->conv.kernel;
  if (K < 1) hy_die("conv", "kernel %lld (at least 1)", (long long)K);
  hy_conv_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("conv", "out of memory");
  l->kernel = K;
  char path[HY_PARAM_NAME_MAX];
  /* W writes the residual stream, as the other mixers' output projections do: their std. */
  snprintf(path, sizeof path, "%s/proj", prefix);
  hy_linear_init(&l->proj, ps, path, d, d, false, cfg->dtype, rng, hy_model_out_std(cfg));
  snprintf(path, sizeof path, "%s/conv", prefix);
  l->taps = hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(K, d), true);
  hy_fill_normal(l->taps, rng, 0.0, cfg->init_std);
  /* b = 1: z starts near 1, so the layer starts as the projection x W and the taps' gradient,
   * (x W) x_{t-i}, is not scaled down by a near-zero gate (with b = 0, W's and w's gradients
   * would each carry the other's small init). */
  l->bias = hy_params_add(ps, path, "bias", cfg->dtype, HY_SHAPE(d), false);
  hy_fill(l->bias, 1.0);
  return l;
}

/* Row i of w as a [1, d] view, which broadcasts over [B, T, d]. */
static hy_tensor *tap(const hy_conv_layer *l, int64_t i) { return hy_slice(l->taps, 0, i, i + 1); }

/* z of x [B, T, d]: x padded once in front with the P = min(K, T) - 1 zeros the taps reach (taps
 * further back than the sequence see only zeros and are skipped), each shift a view of it, and the
 * terms added one at a time: two [B, T, d] tensors a tap. */
static hy_tensor *gate(const hy_conv_layer *l, hy_tensor *x) {
  int64_t T = x->shape[1], P = (l->kernel < T ? l->kernel : T) - 1;
  hy_tensor *z = hy_add(hy_mul(x, tap(l, 0)), l->bias);
  if (P == 0) return z;
  hy_tensor *padded = hy_concat(2, (hy_tensor *[]){hy_zeros_like(hy_slice(x, 1, 0, P)), x}, 1);
  for (int64_t i = 1; i <= P; i++)
    z = hy_add(z, hy_mul(hy_slice(padded, 1, P - i, P - i + T), tap(l, i)));
  return z;
}

hy_tensor *hy_conv_layer_forward(const hy_conv_layer *l, hy_tensor *x) {
  return hy_mul(hy_linear_forward(&l->proj, x), gate(l, x));
}

static hy_tensor *conv_forward(void *self, hy_tensor *x) { return hy_conv_layer_forward(self, x); }

/* ---- decoding: the state is the last K - 1 inputs [B, K - 1, d], zeros before the start ---- */

static void *conv_decode_new(void *self, int64_t batch, int64_t max_len) {
  (void)max_len;
  hy_conv_layer *l = self;
  if (l->kernel == 1) return NULL; /* no token but the current one */
  return hy_zeros_persistent(l->taps->dtype, HY_SHAPE(batch, l->kernel - 1, l->taps->shape[1]));
}

static hy_tensor *conv_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  (void)pos;
  hy_conv_layer *l = self;
  hy_tensor *past = state, *z;
  if (!past) {
    z = gate(l, x);
  } else {
    /* the last K inputs are a sequence of K whose last position is this token's: the forward's
     * gate over them, its last row (K rows of work for one: K is small) */
    int64_t K = l->kernel;
    hy_tensor *window = hy_concat(2, (hy_tensor *[]){past, hy_cast(x, past->dtype)}, 1);
    z = hy_slice(gate(l, window), 1, K - 1, K);
    hy_copy_into(past, hy_slice(window, 1, 1, K));
    z = hy_cast(z, x->dtype);
  }
  return hy_mul(hy_linear_forward(&l->proj, x), z);
}

static void conv_decode_free(void *state) { hy_free(state); }

static void conv_destroy(void *self) { free(self); }

const hy_mixer_kind hy_mixer_conv = {
    "conv",          conv_create,      conv_forward,     conv_destroy,
    conv_decode_new, conv_decode_step, conv_decode_free, false};
