/* Fused causal sigmoid and softplus attention on the GPU (tensor/cuda/sigmoid_attention.cu,
 * softplus_attention.cu) against the CPU path, forward and the gradients of q, k and v: head
 * sizes the kernels specialize and others, T across partial tiles, several heads, q, k, v as
 * strided slices of one projection and as transposed views, large logits, sigmoid's bias -log(T)
 * and 0, every softplus option (length scaling, at a position offset, powers 1, 3 and 0.5, logits
 * in softplus's exponential tail). The layers are tests/cuda/test_cuda_mixers.c's. */
#include "layers/sigmoid_attention.h"
#include "layers/softplus_attention.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static uint64_t seed = 7000; /* every input fresh */

/* One configuration of either op. bias NaN: -log(T), the paper's choice. */
typedef struct {
  bool softplus;
  double scale, bias;            /* sigmoid */
  int64_t train_len, pos_offset; /* softplus */
  double power;
  int64_t H, D; /* of a packed projection */
} variant;

static hy_tensor *run(const variant *c, hy_tensor *q, hy_tensor *k, hy_tensor *v) {
  if (c->softplus)
    return hy_softplus_attention(q, k, v, c->scale, c->train_len, c->power, c->pos_offset);
  double bias = isnan(c->bias) ? -log((double)q->shape[1]) : c->bias;
  return hy_sigmoid_attention(q, k, v, c->scale, bias);
}

static hy_tensor *separate(hy_tensor **in, void *ctx) { return run(ctx, in[0], in[1], in[2]); }

/* q, k, v as the layers could pass them: slices of one [B, T, 3 H D] projection. */
static hy_tensor *of_projection(hy_tensor **in, void *ctx) {
  variant *c = ctx;
  hy_tensor *qkv = hy_reshape(in[0], HY_SHAPE(in[0]->shape[0], in[0]->shape[1], 3 * c->H, c->D));
  hy_tensor *parts[3];
  hy_split(qkv, 2, 3, (int64_t[]){c->H, c->H, c->H}, parts);
  return run(c, parts[0], parts[1], parts[2]);
}

/* q, k, v [B, H, T, D] seen as [B, T, H, D]: rows D apart, heads T D apart. */
static hy_tensor *transposed(hy_tensor **in, void *ctx) {
  return run(ctx, hy_transpose(in[0], 1, 2), hy_transpose(in[1], 1, 2), hy_transpose(in[2], 1, 2));
}

/* One tensor as q, k and v: the three gradients add up in one buffer. */
static hy_tensor *one_tensor(hy_tensor **in, void *ctx) { return run(ctx, in[0], in[0], in[0]); }

typedef enum { SEPARATE, PROJECTION, TRANSPOSED, ONE_TENSOR } layout;

static const char *describe(const variant *c, layout l, int64_t B, int64_t T, int64_t H, int64_t D,
                            const char *what) {
  static char buf[240];
  static const char *layouts[] = {"separate", "projection slices", "transposed", "one tensor"};
  int n = snprintf(buf, sizeof buf, "%s, %s: B %lld T %lld H %lld D %lld scale %.3g", what,
                   layouts[l], (long long)B, (long long)T, (long long)H, (long long)D, c->scale);
  if (c->softplus)
    snprintf(buf + n, sizeof buf - (size_t)n, " softplus train_len %lld pos_offset %lld power %g",
             (long long)c->train_len, (long long)c->pos_offset, c->power);
  else
    snprintf(buf + n, sizeof buf - (size_t)n, " sigmoid bias %g",
             isnan(c->bias) ? -log((double)T) : c->bias);
  return buf;
}

/* Fresh inputs in `l`'s layout for q, k, v [B, T, H, D], the CPU path against the GPU. c->scale
 * is scale_mult / sqrt(D). With one key (T = 1) softplus's single weight is 1, so the gradients of
 * q and k are zero up to rounding on both devices: only v's is compared there. */
static void expect_on(variant c, layout l, int64_t B, int64_t T, int64_t H, int64_t D,
                      double scale_mult, const char *what) {
  c.scale = scale_mult / sqrt((double)D);
  c.H = H;
  c.D = D;
  bool qk_grads = !(c.softplus && T == 1);
  hy_tensor *in[3];
  int n = 3;
  t_gpu_op op = separate;
  if (l == PROJECTION || l == ONE_TENSOR) {
    hy_shape s = l == PROJECTION ? HY_SHAPE(B, T, 3 * H * D) : HY_SHAPE(B, T, H, D);
    in[0] = t_param(t_randn(HY_F32, s, seed++));
    n = 1;
    op = l == PROJECTION ? of_projection : one_tensor;
  } else {
    hy_shape s = l == SEPARATE ? HY_SHAPE(B, T, H, D) : HY_SHAPE(B, H, T, D);
    for (int i = 0; i < 3; i++) in[i] = t_param(t_randn(HY_F32, s, seed++));
    in[0]->requires_grad = in[1]->requires_grad = qk_grads;
    if (l == TRANSPOSED) op = transposed;
  }
  const char *name = describe(&c, l, B, T, H, D, what);
  t_expect_gpu_matches_cpu(op, &c, n, in, TOL, name);
}

static void expect(variant c, layout l, int64_t B, int64_t T, int64_t H, int64_t D,
                   const char *what) {
  expect_on(c, l, B, T, H, D, 1, what);
}

static const int64_t TS[] = {1, 7, 64, 257}, DS[] = {16, 32, 64, 128};

/* Head sizes between the specialized ones, odd ones whose rows are not 16-byte aligned, and the
 * widest. */
static const int64_t ODD_DS[] = {3, 5, 24, 80, 200, 256};

/* ---- sigmoid ---- */

static const double BIASES[] = {NAN, 0};

Test(cuda_sigmoid_attention, matches_cpu) {
  T_NEED_GPU();
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        expect((variant){.bias = BIASES[b]}, SEPARATE, 2, TS[i], 2 + (i + j) % 2, DS[j], "sigmoid");
}

Test(cuda_sigmoid_attention, strided_and_shared_inputs_match_cpu) {
  T_NEED_GPU();
  for (int i = 1; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      variant c = {.bias = BIASES[(i + j) % 2]};
      expect(c, PROJECTION, 2, TS[i], 2 + (i + j) % 2, DS[j], "sigmoid");
      expect(c, TRANSPOSED, 2, TS[i], 3 - (i + j) % 2, DS[j], "sigmoid");
      expect(c, ONE_TENSOR, 2, TS[i], 2, DS[j], "sigmoid");
    }
}

Test(cuda_sigmoid_attention, other_head_sizes_match_cpu) {
  T_NEED_GPU();
  for (int j = 0; j < 6; j++) {
    expect((variant){.bias = NAN}, SEPARATE, 2, 70, 2, ODD_DS[j], "sigmoid, head size");
    expect((variant){.bias = 0}, PROJECTION, 2, 33, 3, ODD_DS[j], "sigmoid, head size");
  }
}

/* Logits of size ~30 (scale * 30): most weights saturate at 0 or 1 and their gradients at
 * e^-|x|; nothing overflows. */
Test(cuda_sigmoid_attention, large_logits_match_cpu) {
  T_NEED_GPU();
  for (int b = 0; b < 2; b++)
    for (int j = 0; j < 4; j++)
      expect_on((variant){.bias = BIASES[b]}, SEPARATE, 2, 257, 3, DS[j], 30,
                "sigmoid, scale x 30");
}

/* ---- softplus ---- */

/* c_t = 1 (train_len 0) and length scaling relative to 16 from position 0 and from position 50,
 * with p = 1 (LSSA) and p = 3 (LSSAR); train_len 1 (c_t = 1) at an offset with a flattening
 * p = 0.5; and the layer's default training length. */
static const variant SOFTPLUSES[] = {
    {.softplus = true, .train_len = 0, .pos_offset = 0, .power = 1},
    {.softplus = true, .train_len = 0, .pos_offset = 0, .power = 3},
    {.softplus = true, .train_len = 16, .pos_offset = 0, .power = 1},
    {.softplus = true, .train_len = 16, .pos_offset = 0, .power = 3},
    {.softplus = true, .train_len = 16, .pos_offset = 50, .power = 1},
    {.softplus = true, .train_len = 16, .pos_offset = 50, .power = 3},
    {.softplus = true, .train_len = 1, .pos_offset = 7, .power = 0.5},
    {.softplus = true, .train_len = 256, .pos_offset = 0, .power = 1.7},
};
enum { N_SOFTPLUSES = sizeof SOFTPLUSES / sizeof *SOFTPLUSES };

Test(cuda_softplus_attention, matches_cpu) {
  T_NEED_GPU();
  for (int o = 0; o < N_SOFTPLUSES; o++)
    for (int i = 0; i < 4; i++)
      expect(SOFTPLUSES[o], SEPARATE, 2, TS[i], 2 + (i + o) % 2, DS[(i + o) % 4], "softplus");
  for (int j = 0; j < 4; j++)
    expect(SOFTPLUSES[5], SEPARATE, 3, 130, 2, DS[j], "softplus, every head size");
}

Test(cuda_softplus_attention, strided_and_shared_inputs_match_cpu) {
  T_NEED_GPU();
  for (int o = 0; o < N_SOFTPLUSES; o += 3)
    for (int i = 1; i < 4; i++)
      for (int j = 0; j < 4; j += 3) {
        expect(SOFTPLUSES[o], PROJECTION, 2, TS[i], 2 + (i + j) % 2, DS[(i + j) % 4], "softplus");
        expect(SOFTPLUSES[o], TRANSPOSED, 2, TS[i], 3 - (i + j) % 2, DS[(i + j) % 4], "softplus");
        expect(SOFTPLUSES[o], ONE_TENSOR, 2, TS[i], 2, DS[(i + j) % 4], "softplus");
      }
}

Test(cuda_softplus_attention, other_head_sizes_match_cpu) {
  T_NEED_GPU();
  for (int j = 0; j < 6; j++) {
    expect(SOFTPLUSES[3], SEPARATE, 2, 70, 2, ODD_DS[j], "softplus, head size");
    expect(SOFTPLUSES[6], PROJECTION, 2, 33, 3, ODD_DS[j], "softplus, head size");
  }
}

/* Logits of size ~30 (scale * 30; up to ~60 with c_t): softplus(x)^p is x^p for the large ones
 * and e^(p x) for the negative ones, whose weights are then below f32's resolution of the row's
 * largest; a logit's rounding moves its weight by p ulps only. */
Test(cuda_softplus_attention, large_logits_match_cpu) {
  T_NEED_GPU();
  for (int o = 0; o < N_SOFTPLUSES; o++)
    expect_on(SOFTPLUSES[o], SEPARATE, 2, 257, 3, DS[o % 4], 30, "softplus, scale x 30");
}

/* Logits in softplus's exponential tail: q = 0.3 N(0, 1) + a e_0 and k = 0.3 N(0, 1) - a e_0 for
 * the keys before S0, + a e_0 after, so that x = scale q . k is -a^2 scale = -25 (+- 1.2) before
 * S0 and +25 after. The queries before S0 see only logits below the kernels' LOW = -20, where the
 * weights are e^(p (x - m_t)) from the row's maximum (a softmax of p x); the later ones leave the
 * tail at a later key tile and rescale what they summed in it. S0 = 70 is past the first key tile
 * (64 keys on both devices at D = 16).
 *
 * A logit x ~ -25 carries p |x| ulps of rounding into its weight: the CPU's f32 path is 3.6e-6
 * (forward) and 5.4e-6 (gradients) from its f64 path here at p = 3 (measured), and the GPU's f32
 * path, rounding as finely, about as far. So that the two f32 errors do not add up against 1e-5,
 * the GPU is compared with the f64 CPU path. */
Test(cuda_softplus_attention, exponential_tail_matches_cpu) {
  T_NEED_GPU();
  const int64_t B = 2, T = 150, H = 2, D = 16, S0 = 70;
  const double a = 10;
  for (int o = 0; o < 2; o++) {
    variant c = SOFTPLUSES[o];
    c.scale = 1 / sqrt((double)D);
    hy_tensor *in[3];
    for (int i = 0; i < 3; i++) in[i] = t_randn(HY_F32, HY_SHAPE(B, T, H, D), seed++);
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
          for (int64_t e = 0; e < D; e++) {
            int64_t at = ((b * T + t) * H + h) * D + e;
            double shift = e == 0 ? a : 0;
            hy_set(in[0], at, 0.3 * hy_get(in[0], at) + shift);
            hy_set(in[1], at, 0.3 * hy_get(in[1], at) + (t < S0 ? -shift : shift));
          }
    for (int i = 0; i < 3; i++) t_param(in[i]);
    char name[200];
    snprintf(name, sizeof name, "softplus, exponential tail, power %g", c.power);
    t_expect_gpu_matches_f64(separate, &c, 3, in, TOL, name);
  }
}
