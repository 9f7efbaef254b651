/* The Titans memory scan on the GPU (tensor/cuda/titans_scan.cu) against the CPU path, forward
 * and the gradient of every input (q, k, v, theta, eta, keep, M_0): memory depth 1 and 2, one
 * chunk, many chunks, chunks of one token, a chunk that does not divide T, T shorter than one
 * chunk (no update and no gates), head widths that are not powers of two, one and several heads
 * and sequences (M_0's gradient summed over the batch), inputs that need no gradient (NULL
 * gradients for the kernels), the forward without a tape (two saved states), the size of the
 * training recipes, the same bits from run to run, the scan from a state of each sequence's own
 * that hands on its last (hy_titans_scan_state). The layers, MAL, MAG and MAC, are
 * tests/cuda/test_cuda_mixers.c's, with every other kind. */
#include "layers/titans.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static uint64_t seed = 7000; /* every input fresh */

enum { N_IN = 8 }; /* q, k, v, theta, eta, keep, w1, w2 */

typedef struct {
  int64_t B, H, T, D, F, chunk;
  int depth;
} scan_size;

static hy_tensor *scan(hy_tensor **in, void *ctx) {
  int64_t chunk = *(const int64_t *)ctx;
  return hy_titans_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], chunk);
}

/* Inputs as the layer makes them, roughly: |q|, |k| near 1, theta up to the layer's default rate
 * 1 / D (larger rates make the depth 2 memory diverge over many chunks, and f32 with it), eta and
 * keep inside (0, 1), M_0 of xavier scale. Absent ones (w2 at depth 1, the gates when T < chunk)
 * are NULL. grads: which of the eight need a gradient. */
static void expect_with(scan_size s, const bool grads[N_IN], const char *what) {
  int64_t N = s.T / s.chunk, F = s.depth == 2 ? s.F : s.D;
  double a = sqrt(3.0 / (double)s.D), wb = sqrt(6.0 / (double)(s.D + F));
  hy_shape rows = HY_SHAPE(s.B, s.H, s.T, s.D), gate = HY_SHAPE(s.B, s.H, N, 1);
  hy_tensor *in[N_IN] = {
      t_uniform(HY_F32, rows, seed, -a, a),
      t_uniform(HY_F32, rows, seed + 1, -a, a),
      t_randn(HY_F32, rows, seed + 2),
      t_uniform(HY_F32, HY_SHAPE(s.B, s.H, s.T, 1), seed + 3, 0.1 / (double)s.D, 1.0 / (double)s.D),
      N ? t_uniform(HY_F32, gate, seed + 4, 0.2, 0.95) : NULL,
      N ? t_uniform(HY_F32, gate, seed + 5, 0.6, 0.99) : NULL,
      t_uniform(HY_F32, HY_SHAPE(s.H, s.D, F), seed + 6, -wb, wb),
      s.depth == 2 ? t_uniform(HY_F32, HY_SHAPE(s.H, F, s.D), seed + 7, -wb, wb) : NULL,
  };
  seed += N_IN;
  for (int i = 0; i < N_IN; i++) {
    if (!in[i]) continue;
    in[i] = t_param(in[i]);
    in[i]->requires_grad = grads[i];
  }
  char name[200];
  snprintf(name, sizeof name, "%s: B %lld H %lld T %lld D %lld F %lld chunk %lld depth %d", what,
           (long long)s.B, (long long)s.H, (long long)s.T, (long long)s.D, (long long)F,
           (long long)s.chunk, s.depth);
  t_expect_gpu_matches_cpu(scan, &s.chunk, N_IN, in, TOL, name);
}

static const bool ALL[N_IN] = {true, true, true, true, true, true, true, true};

static void expect(scan_size s, const char *what) { expect_with(s, ALL, what); }

/* Each shape at depth 1 (linear memory, P = D D) and 2 (MLP memory, P = 2 D F). */
static void expect_both_depths(scan_size s, const char *what) {
  for (int depth = 1; depth <= 2; depth++) {
    s.depth = depth;
    expect(s, what);
  }
}

Test(cuda_titans_scan, chunkings_match_cpu) {
  T_NEED_GPU();
  static const scan_size sizes[] = {
      {2, 3, 9, 4, 6, 1, 0},     /* chunks of one token: an update per token */
      {2, 2, 16, 8, 12, 16, 0},  /* one chunk exactly T */
      {2, 2, 23, 8, 12, 16, 0},  /* one chunk and a short rest */
      {3, 2, 20, 8, 12, 32, 0},  /* T shorter than a chunk: no update, no gates */
      {1, 1, 1, 4, 6, 1, 0},     /* one token */
      {3, 2, 37, 12, 20, 4, 0},  /* 4 does not divide 37; D, F not powers of two */
      {2, 2, 128, 12, 20, 2, 0}, /* many chunks: 64 updates */
      {1, 3, 50, 5, 7, 3, 0},    /* one sequence, odd sizes */
      {4, 1, 40, 6, 10, 5, 0},   /* one head, M_0's gradient over four sequences */
  };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
    expect_both_depths(sizes[i], "chunking");
}

/* Heads wider than the block's 256 threads in every buffer (P of 1600 to 32768), a hidden layer
 * narrower than the head, and the mixers' settings of the recipes: d = 64 in 4 memory heads of
 * 16 (F 64) and in one head of 64 (F 256), chunks of 16. */
Test(cuda_titans_scan, head_sizes_match_cpu) {
  T_NEED_GPU();
  expect_both_depths((scan_size){2, 2, 48, 40, 100, 8, 0}, "wide head");
  expect((scan_size){2, 2, 33, 24, 8, 4, 2}, "hidden narrower than the head");
  expect_both_depths((scan_size){4, 4, 64, 16, 64, 16, 0}, "recipe size, 4 heads");
}

Test(cuda_titans_scan, training_size_matches_cpu) {
  T_NEED_GPU();
  expect_both_depths((scan_size){2, 1, 256, 64, 256, 16, 0}, "training size");
}

/* Inputs without a gradient: the kernels get NULL for theirs (no M_0 gradient: no sum over the
 * batch); nothing needs one: the forward without a tape keeps two states, not all. */
Test(cuda_titans_scan, partial_gradients_match_cpu) {
  T_NEED_GPU();
  static const bool SETS[][N_IN] = {
      {true, false, false, false, false, false, false, false}, /* q only */
      {false, false, false, false, false, false, true, true},  /* M_0 only */
      {false, false, false, false, true, true, false, false},  /* the gates only */
      {false, true, true, true, false, false, false, false},   /* k, v, theta */
      {true, true, true, true, true, true, false, false},      /* all but M_0 */
      {false, false, false, false, false, false, true, false}, /* w1 only */
      {false, false, false, false, false, false, false, true}, /* w2 only */
      {false, false, false, false, true, false, false, false}, /* eta only */
  };
  for (size_t i = 0; i < sizeof SETS / sizeof *SETS; i++)
    for (int depth = 1; depth <= 2; depth++)
      expect_with((scan_size){2, 2, 23, 8, 12, 4, depth}, SETS[i], "some gradients");
  static const bool NONE[N_IN] = {false};
  for (int depth = 1; depth <= 2; depth++) {
    expect_with((scan_size){2, 2, 23, 8, 12, 4, depth}, NONE, "no tape");
    expect_with((scan_size){2, 2, 23, 8, 12, 16, depth}, NONE, "no tape, one update");
  }
}

/* Every sum in a fixed order, no atomics: two runs give the same bits, forward and gradients
 * (M_0's summed over the batch included). */
Test(cuda_titans_scan, runs_repeat_bit_for_bit) {
  T_NEED_GPU();
  for (int depth = 1; depth <= 2; depth++) {
    scan_size s = {3, 2, 40, 16, 24, 4, depth};
    int64_t N = s.T / s.chunk, F = depth == 2 ? s.F : s.D;
    hy_shape rows = HY_SHAPE(s.B, s.H, s.T, s.D), gate = HY_SHAPE(s.B, s.H, N, 1);
    hy_tensor *cpu[N_IN] = {
        t_uniform(HY_F32, rows, seed, -0.4, 0.4),
        t_uniform(HY_F32, rows, seed + 1, -0.4, 0.4),
        t_randn(HY_F32, rows, seed + 2),
        t_uniform(HY_F32, HY_SHAPE(s.B, s.H, s.T, 1), seed + 3, 0.005, 0.05),
        t_uniform(HY_F32, gate, seed + 4, 0.2, 0.95),
        t_uniform(HY_F32, gate, seed + 5, 0.6, 0.99),
        t_uniform(HY_F32, HY_SHAPE(s.H, s.D, F), seed + 6, -0.3, 0.3),
        depth == 2 ? t_uniform(HY_F32, HY_SHAPE(s.H, F, s.D), seed + 7, -0.3, 0.3) : NULL,
    };
    seed += N_IN;
    hy_tensor *gy = t_to_gpu(t_randn(HY_F32, rows, seed++)), *out[2][N_IN + 1];
    for (int run = 0; run < 2; run++) {
      hy_tensor *in[N_IN];
      for (int i = 0; i < N_IN; i++) in[i] = cpu[i] ? t_to_gpu(t_param(cpu[i])) : NULL;
      t_poison();
      hy_tensor *y = scan(in, &s.chunk);
      hy_backward_with(y, gy);
      out[run][0] = hy_to(y, HY_CPU);
      for (int i = 0; i < N_IN; i++) out[run][i + 1] = in[i] ? hy_to(in[i]->grad, HY_CPU) : NULL;
    }
    for (int i = 0; i <= N_IN; i++) {
      if (!out[0][i]) continue;
      char what[64];
      snprintf(what, sizeof what, "depth %d: %s", depth, i ? "a gradient" : "forward");
      t_expect_same_bits(out[1][i], out[0][i], what);
    }
  }
}

/* ---- a state handed in and on (hy_titans_scan_state) ---- */

/* y and the state handed on, flattened into one output, from the starting state in[N_IN]. */
static hy_tensor *scan_from_state(hy_tensor **in, void *ctx) {
  int64_t chunk = *(const int64_t *)ctx;
  hy_tensor *last;
  hy_tensor *y = hy_titans_scan_state(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7],
                                      in[N_IN], chunk, &last);
  hy_tensor *flat[2] = {hy_reshape(y, HY_SHAPE(-1)), hy_reshape(last, HY_SHAPE(-1))};
  return hy_concat(2, flat, 0);
}

/* The scan from each sequence's own weights and momentum, handing on its last state, as a
 * sequence-parallel rank runs it: forward, the state handed on and the gradients of every input
 * and of the starting state against the CPU. Several updates, one, none (T shorter than the
 * chunk: the state passes through), both depths. */
Test(cuda_titans_scan, from_a_state_matches_cpu) {
  T_NEED_GPU();
  static const scan_size sizes[] = {
      {2, 2, 24, 8, 12, 4, 0},  /* 6 updates */
      {3, 1, 16, 6, 10, 16, 0}, /* one update exactly */
      {2, 2, 5, 8, 12, 8, 0},   /* no update */
  };
  for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++)
    for (int depth = 1; depth <= 2; depth++) {
      scan_size s = sizes[c];
      int64_t N = s.T / s.chunk, F = depth == 2 ? s.F : s.D,
              P = depth == 2 ? 2 * s.D * F : s.D * s.D;
      double a = sqrt(3.0 / (double)s.D), wb = sqrt(6.0 / (double)(s.D + F));
      hy_shape rows = HY_SHAPE(s.B, s.H, s.T, s.D), gate = HY_SHAPE(s.B, s.H, N, 1);
      hy_tensor *in[N_IN + 1] = {
          t_uniform(HY_F32, rows, seed, -a, a),
          t_uniform(HY_F32, rows, seed + 1, -a, a),
          t_randn(HY_F32, rows, seed + 2),
          t_uniform(HY_F32, HY_SHAPE(s.B, s.H, s.T, 1), seed + 3, 0.1 / (double)s.D,
                    1.0 / (double)s.D),
          N ? t_uniform(HY_F32, gate, seed + 4, 0.2, 0.95) : NULL,
          N ? t_uniform(HY_F32, gate, seed + 5, 0.6, 0.99) : NULL,
          t_uniform(HY_F32, HY_SHAPE(s.H, s.D, F), seed + 6, -wb, wb),
          depth == 2 ? t_uniform(HY_F32, HY_SHAPE(s.H, F, s.D), seed + 7, -wb, wb) : NULL,
          t_uniform(HY_F32, HY_SHAPE(s.B, s.H, 2, P), seed + 8, -wb, wb),
      };
      seed += N_IN + 1;
      for (int i = 0; i <= N_IN; i++)
        if (in[i]) in[i] = t_param(in[i]);
      char name[160];
      snprintf(name, sizeof name, "from a state: B %lld H %lld T %lld D %lld chunk %lld depth %d",
               (long long)s.B, (long long)s.H, (long long)s.T, (long long)s.D, (long long)s.chunk,
               depth);
      t_expect_gpu_matches_cpu(scan_from_state, &s.chunk, N_IN + 1, in, TOL, name);
    }
}
