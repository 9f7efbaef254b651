/* Chunked GLA, lightning and plain linear attention on bf16 tensors (the bf16 twins of
 * tensor/cuda/gla.cu: bf16 loads and stores, f32 states and sums) against the CPU in f64 on the
 * same bf16-rounded inputs (t_expect_bf16_matches_f64), forward and the gradient of every input:
 * chunks that divide T and chunks that do not, one-token chunks, T shorter than a chunk, odd head
 * sizes, heads wider than a 64-column tile, and gates as the layer makes them, near 0 (a state
 * kept almost whole) and strong. Tolerance 1e-2 relative norm error: the output and each gradient
 * are rounded to bf16 once (about 2e-3); everything before the rounding computes in f32 as the
 * f32 kernels do (within 1e-5 of the CPU, 3e-4 for the gate gradient under strong decays:
 * tests/cuda/test_cuda_gla.c). Two runs give the same bits (no atomics). Also one tensor as q, k
 * and v, whose gradient the kernels first write and then add to, in bf16 and in f32 (against the
 * CPU's f32 within 1e-5, as tests/cuda/test_cuda_gla.c). */
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-2;

static void init(void) { t_seed = 9000; } /* the inputs its tolerances were measured on */
TestSuite(cuda_mixers_bf16, .init = init);

typedef struct {
  int64_t B, T, H, dk, dv, chunk;
} mix_size;

static void describe(char *buf, size_t n, const char *what, mix_size z) {
  snprintf(buf, n, "%s: B %lld T %lld H %lld dk %lld dv %lld chunk %lld", what, (long long)z.B,
           (long long)z.T, (long long)z.H, (long long)z.dk, (long long)z.dv, (long long)z.chunk);
}

typedef enum {
  LAYER,     /* logsigmoid(x), x ~ N(0, 1), as the layer makes them before its 1 / tau */
  NEAR_ZERO, /* -1e-3 |x|: a state keeps almost all of itself over a chunk */
  STRONG,    /* N(-5, 0.5^2): e^-5 kept per token, a chunk's decays down to -320 */
  VANISHING, /* N(-60, 1): nothing survives a token (exp underflows in f32) */
} gate_kind;

static const char *const GATE_NAMES[] = {"layer gates", "gates near 0", "strong gates",
                                         "vanishing gates"};

static hy_tensor *gates(hy_shape s, gate_kind kind) {
  hy_tensor *x = t_randn_next(HY_F32, s);
  hy_no_grad_begin();
  hy_tensor *g = kind == LAYER       ? hy_logsigmoid(x)
                 : kind == NEAR_ZERO ? hy_scale(hy_relu(x), -1e-3)
                 : kind == STRONG    ? hy_add_scalar(hy_scale(x, 0.5), -5)
                                     : hy_add_scalar(x, -60);
  hy_no_grad_end();
  return t_param(g);
}

/* The GPU op on bf16 copies of `in` (all of them bf16), back-propagated from gy (bf16 on the
 * GPU); out and every gradient copied to the host. */
static void run_bf16(t_gpu_op op, void *ctx, int n, hy_tensor **in, hy_tensor *gy,
                     hy_tensor **out) {
  hy_tensor *g[4];
  for (int i = 0; i < n; i++) {
    g[i] = in[i] ? t_to_gpu(t_cast(in[i], HY_BF16)) : NULL;
    if (g[i]) g[i]->requires_grad = in[i]->requires_grad;
  }
  t_poison();
  hy_tensor *o = op(g, ctx);
  hy_backward_with(o, gy);
  out[0] = t_to_cpu(o);
  for (int i = 0; i < n; i++)
    out[1 + i] = g[i] && g[i]->requires_grad ? t_to_cpu(g[i]->grad) : NULL;
}

/* Against f64 within TOL, then two more runs equal to the bit. */
static void expect_mixer(t_gpu_op op, void *ctx, int n, hy_tensor **in, const char *what) {
  t_expect_bf16_matches_f64(op, ctx, n, in, (1u << n) - 1, HY_BF16, TOL, what);
  hy_no_grad_begin();
  hy_tensor *like = op(in, ctx); /* on the CPU, for the output's shape */
  hy_no_grad_end();
  hy_tensor *gy = t_to_gpu(t_cast(t_randn_next(HY_F32, hy_shape_of(like)), HY_BF16));
  hy_tensor *a[5], *b[5];
  run_bf16(op, ctx, n, in, gy, a);
  run_bf16(op, ctx, n, in, gy, b);
  char name[240];
  for (int i = 0; i <= n; i++) {
    if (!a[i]) continue;
    snprintf(name, sizeof name, "%s: two runs, %s %d", what, i ? "gradient of input" : "output",
             i - 1);
    t_expect_same_bits(a[i], b[i], name);
  }
}

/* hy_gla on fresh bf16 q, k, v, g. With one token the gate's gradient is exactly zero (the state
 * before it is zero), and with vanishing gates it is the sum of terms that cancel exactly (no
 * state survives a token: the true gradient is below 1e-26), so in both cases only the other
 * gradients are compared. */
static void expect_gla(mix_size z, gate_kind kind) {
  t_gla_ctx c = {z.chunk, NULL};
  hy_tensor *in[4] = {t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), 1 / sqrt((double)z.dk)),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), 1),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dv), 1),
                      gates(HY_SHAPE(z.B, z.T, z.H, z.dk), kind)};
  in[3]->requires_grad = z.T > 1 && kind != VANISHING;
  char name[200];
  describe(name, sizeof name, GATE_NAMES[kind], z);
  expect_mixer(t_gla, &c, 4, in, name);
}

/* hy_linear_attention: a constant decay per head (lightning) or none (plain linear attention,
 * whose outputs grow with T: q and k scaled by dk^-1/2). */
static void expect_linear(mix_size z, const double *log_decay, const char *what) {
  t_gla_ctx c = {z.chunk, log_decay};
  double qk = log_decay ? 1 : 1 / sqrt((double)z.dk);
  hy_tensor *in[3] = {t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), qk),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), qk),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dv), 1)};
  char name[200];
  describe(name, sizeof name, what, z);
  expect_mixer(t_linear_attention, &c, 3, in, name);
}

/* Chunks that divide T (64 / 16, 256 / 64), that do not (200 / 64, 97 / 33, 150 / 100), one-token
 * chunks, T = 1 and T shorter than a chunk, odd head sizes (rows not aligned for 4-wide loads),
 * dk != dv, heads wider than a 64-column tile, the layer's default sizes. */
static const mix_size SIZES[] = {
    {2, 64, 2, 32, 64, 16},    {2, 200, 2, 32, 32, 64}, {1, 150, 3, 5, 7, 100},
    {2, 37, 2, 6, 3, 1},       {1, 1, 2, 8, 8, 64},     {1, 40, 2, 16, 16, 64},
    {1, 130, 1, 70, 66, 33},   {1, 97, 3, 130, 3, 33},  {1, 97, 2, 3, 130, 33},
    {2, 256, 2, 128, 256, 64},
};
enum { N_SIZES = sizeof SIZES / sizeof *SIZES };

Test(cuda_mixers_bf16, gla_with_layer_gates) {
  T_NEED_GPU();
  for (int i = 0; i < N_SIZES; i++) expect_gla(SIZES[i], LAYER);
}

Test(cuda_mixers_bf16, gla_with_gates_near_zero_strong_and_vanishing) {
  T_NEED_GPU();
  static const mix_size sizes[] = {{2, 200, 2, 32, 32, 64},
                                   {1, 150, 3, 5, 7, 100},
                                   {2, 37, 2, 6, 3, 1},
                                   {1, 130, 1, 70, 66, 33}};
  for (int k = NEAR_ZERO; k <= VANISHING; k++)
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) expect_gla(sizes[i], (gate_kind)k);
}

Test(cuda_mixers_bf16, lightning) {
  T_NEED_GPU();
  static const double log_decay[3] = {-0.05, -1, -8};
  for (int i = 0; i < N_SIZES; i++) expect_linear(SIZES[i], log_decay, "lightning");
}

Test(cuda_mixers_bf16, plain_linear_attention) {
  T_NEED_GPU();
  for (int i = 0; i < N_SIZES; i++) expect_linear(SIZES[i], NULL, "linear");
}

/* One tensor as q, k and v (dk = dv): the kernels write v's gradient first (fresh: written over),
 * then add q's and k's to it; with a gate, q's and k's are summed in f32 and added after. */
static hy_tensor *gla_of_one(hy_tensor **in, void *ctx) {
  return hy_gla(in[0], in[0], in[0], in[1], ((t_gla_ctx *)ctx)->chunk);
}

static hy_tensor *linear_of_one(hy_tensor **in, void *ctx) {
  t_gla_ctx *c = ctx;
  return hy_linear_attention(in[0], in[0], in[0], c->log_decay, c->chunk);
}

Test(cuda_mixers_bf16, one_tensor_as_q_k_v) {
  T_NEED_GPU();
  static const double log_decay[2] = {-0.1, -1};
  t_gla_ctx c = {33, NULL}, cl = {33, log_decay};
  hy_tensor *gin[2] = {t_randn_leaf(HY_SHAPE(2, 97, 2, 24), 0.3),
                       gates(HY_SHAPE(2, 97, 2, 24), LAYER)};
  expect_mixer(gla_of_one, &c, 2, gin, "gla of one tensor as q, k, v");
  t_expect_gpu_matches_cpu(gla_of_one, &c, 2, gin, 1e-5, "f32 gla of one tensor as q, k, v");
  hy_tensor *lin = t_randn_leaf(HY_SHAPE(2, 97, 2, 24), 0.3);
  expect_mixer(linear_of_one, &cl, 1, &lin, "lightning of one tensor as q, k, v");
  t_expect_gpu_matches_cpu(linear_of_one, &cl, 1, &lin, 1e-5,
                           "f32 lightning of one tensor as q, k, v");
}
