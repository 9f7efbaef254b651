/* Chunked gated linear attention on the GPU (tensor/cuda/gla.cu) against the CPU path, forward and
 * the gradients of q, k, v and the gates: GLA with gates as the layer makes them and with strongly
 * decaying ones, lightning attention (a constant decay per head) and plain linear attention; T
 * shorter than a chunk, equal to it and not a multiple of it, chunks of one token, dk != dv, odd
 * head sizes, chunks longer than a tile and heads wider than one. */
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static void init(void) { t_seed = 3000; } /* the inputs its tolerances were measured on */
TestSuite(cuda_gla, .init = init);

/* Log decays: logsigmoid(x), x ~ N(0, 1), as the layer makes them (before its 1 / tau), or strong
 * ones, N(-5, 0.5^2): a state keeps e^-5 of itself per token. */
static hy_tensor *gates(hy_shape s, bool strong) {
  hy_tensor *x = t_randn_next(HY_F32, s);
  hy_no_grad_begin();
  hy_tensor *g = strong ? hy_add_scalar(hy_scale(x, 0.5), -5) : hy_logsigmoid(x);
  hy_no_grad_end();
  return t_param(g);
}

typedef struct {
  int64_t B, T, H, dk, dv, chunk;
} gla_size;

static void describe(char *buf, size_t n, const char *what, gla_size z) {
  snprintf(buf, n, "%s: B %lld T %lld H %lld dk %lld dv %lld chunk %lld", what, (long long)z.B,
           (long long)z.T, (long long)z.H, (long long)z.dk, (long long)z.dv, (long long)z.chunk);
}

/* hy_gla on fresh q, k, v [B, T, H, dk | dv] and gates. With one token the gate's gradient is
 * exactly zero (the state before the first token is zero), so it is compared from T = 2 on. */
static void expect_gla(gla_size z, bool strong, bool gate_grad, const char *what) {
  t_gla_ctx c = {z.chunk, NULL};
  hy_tensor *in[4] = {t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), 1),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), 1),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dv), 1),
                      gates(HY_SHAPE(z.B, z.T, z.H, z.dk), strong)};
  in[3]->requires_grad = gate_grad && z.T > 1;
  char name[200];
  describe(name, sizeof name, what, z);
  t_expect_gpu_matches_cpu(t_gla, &c, 4, in, TOL, name);
}

static const int64_t TS[] = {1, 5, 64, 200}, CHUNKS[] = {1, 16, 64};

Test(cuda_gla, gla_matches_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      for (int64_t dv = 32; dv <= 64; dv += 32)
        expect_gla((gla_size){2, TS[i], 2, 32, dv, CHUNKS[j]}, false, true, "gla");
}

/* Gates near -5: every pair more than a few tokens apart has decayed below f32's resolution, and
 * a chunk's cumulative decays reach -320. Outputs and the gradients of q, k and v are compared
 * with the CPU at 1e-5. The gate's gradient is not: it is the reverse cumulative sum of
 * q * dq - k * dk, and with strong decays the two products nearly cancel (the diagonal pair gives
 * (dO_t . v_t) q_t * k_t to both), so their f32 rounding, 1e-7 of |q * dq|, is about 1e-4 of the
 * difference. The CPU's own f32 gate gradient is up to 1.1e-4 from its f64 result at these sizes
 * (measured), and the GPU's, computed from its own dq and dk, as far: both are compared with the
 * f64 CPU path at 3e-4. */
Test(cuda_gla, strongly_decaying_gates_match_cpu) {
  T_NEED_GPU();
  for (int i = 1; i < 4; i++)
    for (int j = 0; j < 3; j++)
      for (int64_t dv = 32; dv <= 64; dv += 32)
        expect_gla((gla_size){2, TS[i], 2, 32, dv, CHUNKS[j]}, true, false, "strong gates");
  for (int i = 1; i < 4; i++)
    for (int j = 0; j < 3; j++) {
      gla_size z = {2, TS[i], 2, 32, 64, CHUNKS[j]};
      t_gla_ctx c = {z.chunk, NULL};
      hy_tensor *in[4] = {t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), 1),
                          t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), 1),
                          t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dv), 1),
                          gates(HY_SHAPE(z.B, z.T, z.H, z.dk), true)};
      char name[200];
      describe(name, sizeof name, "strong gates, gate gradient against f64", z);
      t_expect_gpu_matches_f64(t_gla, &c, 4, in, 3e-4, name);
    }
}

/* hy_linear_attention: a constant decay per head (lightning) or none (plain linear attention,
 * whose outputs grow with T: q and k are scaled by dk^-1/2 so that they stay moderate). */
static void expect_linear(gla_size z, const double *log_decay, const char *what) {
  t_gla_ctx c = {z.chunk, log_decay};
  double qk = log_decay ? 1 : 1 / sqrt((double)z.dk);
  hy_tensor *in[3] = {t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), qk),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dk), qk),
                      t_randn_leaf(HY_SHAPE(z.B, z.T, z.H, z.dv), 1)};
  char name[200];
  describe(name, sizeof name, what, z);
  t_expect_gpu_matches_cpu(t_linear_attention, &c, 3, in, TOL, name);
}

Test(cuda_gla, lightning_matches_cpu) {
  T_NEED_GPU();
  static const double log_decay[2] = {-0.1, -1};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      for (int64_t dv = 32; dv <= 64; dv += 32)
        expect_linear((gla_size){2, TS[i], 2, 32, dv, CHUNKS[j]}, log_decay, "lightning");
}

Test(cuda_gla, plain_linear_attention_matches_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      for (int64_t dv = 32; dv <= 64; dv += 32)
        expect_linear((gla_size){2, TS[i], 2, 32, dv, CHUNKS[j]}, NULL, "linear");
}

/* Sizes the kernels' tiles do not divide: odd head sizes (rows not 16-byte aligned), chunks of
 * more than one 64-token tile, heads wider than one 64-column tile, and the layer's default head
 * sizes at a chunk of 64. */
Test(cuda_gla, odd_sizes_and_long_chunks_match_cpu) {
  T_NEED_GPU();
  static const double log_decay[3] = {-0.05, -0.5, 0};
  gla_size sizes[] = {
      {1, 150, 3, 5, 7, 100},    {1, 130, 1, 70, 66, 130}, {2, 37, 2, 6, 3, 1},
      {1, 97, 2, 3, 130, 33},    {1, 97, 3, 130, 3, 33},   {1, 300, 1, 8, 8, 128},
      {2, 256, 2, 128, 256, 64},
  };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    expect_gla(sizes[i], false, true, "gla, odd sizes");
    expect_linear(sizes[i], log_decay, "lightning, odd sizes");
    expect_linear(sizes[i], NULL, "linear, odd sizes");
  }
}
