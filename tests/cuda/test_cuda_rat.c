/* RAT on the GPU (tensor/cuda/rat.cu) against the CPU path, forward and the gradients of q, u, k
 * and f: T a multiple of the chunk and not, chunks of one token (softmax attention), one chunk or
 * longer (the gated RNN), T shorter than a chunk, one token, head sizes from 2 to 512 (odd halves,
 * more than one channel group, shared memory past 48 KiB), several heads and batches, a long
 * sequence with many key tiles, gates near 0 and near 1, inputs that need no gradient; after
 * earlier chunks (hy_rat_after: their keys and values, and their gradients) and the
 * chunks' final states (hy_rat_chunk_ends), which sequence parallelism uses. The layer is
 * tests/cuda/test_cuda_mixers.c's, with every other kind. */
#include "layers/rat.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5; /* f32, relative norm error */
static const double THETA = 10000.0;

static uint64_t seed = 9000; /* every input fresh */

static hy_tensor *rat(hy_tensor **in, void *ctx) {
  int64_t chunk = *(const int64_t *)ctx;
  return hy_rat(in[0], in[1], in[2], in[3], chunk, 1.0 / sqrt((double)in[0]->shape[3]), THETA);
}

typedef enum { GATES_SPREAD, GATES_NEAR_0, GATES_NEAR_1 } gates;

typedef struct {
  int64_t B, T, H, D, chunk;
} rat_size;

/* f = sigmoid(2 n + 1) over (0, 1), or sigmoid(0.5 n -+ 6): about 0.0025 or 0.9975. */
static hy_tensor *gate(hy_shape s, gates g) {
  hy_tensor *n = t_randn(HY_F32, s, seed++);
  hy_no_grad_begin();
  hy_tensor *x = g == GATES_SPREAD   ? hy_add_scalar(hy_scale(n, 2.0), 1.0)
                 : g == GATES_NEAR_0 ? hy_add_scalar(hy_scale(n, 0.5), -6.0)
                                     : hy_add_scalar(hy_scale(n, 0.5), 6.0);
  hy_tensor *f = hy_sigmoid(x);
  hy_no_grad_end();
  return f;
}

/* hy_rat on fresh q, u, k ~ N(0, 1) and gates; grads: which of q, u, k, f need a gradient. */
static void expect_with(rat_size z, gates g, const bool grads[4], const char *what) {
  hy_shape s = HY_SHAPE(z.B, z.T, z.H, z.D);
  hy_tensor *in[4] = {t_randn(HY_F32, s, seed++), t_randn(HY_F32, s, seed++),
                      t_randn(HY_F32, s, seed++), gate(s, g)};
  for (int i = 0; i < 4; i++) {
    in[i] = t_param(in[i]);
    in[i]->requires_grad = grads[i];
  }
  static const char *names[] = {"spread", "near 0", "near 1"};
  char name[200];
  snprintf(name, sizeof name, "%s: B %lld T %lld H %lld D %lld chunk %lld, gates %s", what,
           (long long)z.B, (long long)z.T, (long long)z.H, (long long)z.D, (long long)z.chunk,
           names[g]);
  t_expect_gpu_matches_cpu(rat, &z.chunk, 4, in, TOL, name);
}

static const bool ALL[4] = {true, true, true, true};

static void expect(rat_size z, gates g, const char *what) { expect_with(z, g, ALL, what); }

Test(cuda_rat, chunkings_match_cpu) {
  T_NEED_GPU();
  rat_size sizes[] = {
      {2, 64, 2, 16, 16}, /* whole chunks */
      {2, 37, 3, 8, 4},   /* T not a multiple of the chunk */
      {1, 150, 2, 8, 1},  /* chunks of one token: causal softmax attention, 149 keys */
      {2, 40, 2, 16, 64}, /* one chunk longer than T: the gated RNN */
      {1, 16, 2, 16, 16}, /* one chunk exactly T */
      {1, 5, 2, 6, 16},   /* T shorter than a chunk */
      {2, 1, 2, 16, 4},   /* one token */
      {3, 1, 1, 2, 1},    /* one token, chunks of one */
      {1, 211, 1, 6, 3},  /* 70 keys: three key tiles, query tiles across chunks */
      {2, 33, 2, 8, 32},  /* one key, seen by the last row only */
  };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) expect(sizes[i], GATES_SPREAD, "rat");
}

/* Head sizes: the lanes' channel pairs (1, 2, 4, 8 per lane, partly filled), the keys kernel's
 * channel groups of 128 (two groups at 160, four at 512) and shared memory past 48 KiB (the
 * backward's kernels from D = 128, the forward's from 160; the keys kernel's 16-row steps at
 * 512). */
Test(cuda_rat, head_sizes_match_cpu) {
  T_NEED_GPU();
  static const int64_t DS[] = {2, 4, 16, 64, 70, 128, 160, 200, 256, 512};
  for (size_t i = 0; i < sizeof DS / sizeof *DS; i++) {
    int64_t D = DS[i];
    expect((rat_size){2, 70, 2, D, 8}, GATES_SPREAD, "head size");
    expect((rat_size){1, 45, 3, D, 1}, GATES_SPREAD, "head size, chunks of one");
  }
}

/* The paper's chunk of 16 at T = 512: 31 keys, 32 query tiles; and a chunk of 2 with 255 keys,
 * eight key tiles. */
Test(cuda_rat, long_sequences_match_cpu) {
  T_NEED_GPU();
  expect((rat_size){2, 512, 2, 64, 16}, GATES_SPREAD, "long");
  expect((rat_size){1, 512, 4, 128, 16}, GATES_SPREAD, "long");
  expect((rat_size){1, 511, 2, 32, 2}, GATES_SPREAD, "long, chunks of two");
  expect((rat_size){2, 300, 2, 16, 64}, GATES_SPREAD, "long, chunks of 64");
}

/* Gates near 0 (each state is nearly its own token) and near 1 (states keep nearly all of the
 * chunk, and (1 - f) scales every input down). */
Test(cuda_rat, extreme_gates_match_cpu) {
  T_NEED_GPU();
  rat_size sizes[] = {{2, 100, 2, 16, 16}, {1, 64, 2, 64, 1}, {2, 37, 3, 8, 64}, {1, 90, 2, 32, 7}};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    expect(sizes[i], GATES_NEAR_0, "extreme gates");
    expect(sizes[i], GATES_NEAR_1, "extreme gates");
  }
}

/* Inputs without a gradient: the kernels get NULL for them (no dq: the rows kernel skips the
 * chunk keys; only dq: no keys kernel and no reverse scan). */
Test(cuda_rat, partial_gradients_match_cpu) {
  T_NEED_GPU();
  static const bool SETS[][4] = {
      {false, true, true, true},   {true, false, false, false}, {true, true, true, false},
      {false, false, false, true}, {false, true, false, false},
  };
  for (size_t i = 0; i < sizeof SETS / sizeof *SETS; i++) {
    expect_with((rat_size){2, 70, 2, 16, 8}, GATES_SPREAD, SETS[i], "some gradients");
    expect_with((rat_size){1, 50, 2, 64, 1}, GATES_SPREAD, SETS[i], "some gradients");
  }
}

/* ---- sequence parallelism: after P earlier chunks, and the chunks' final states ---- */

typedef struct {
  int64_t B, T, H, D, chunk, P;
} after_size;

static hy_tensor *rat_after(hy_tensor **in, void *ctx) {
  int64_t chunk = *(const int64_t *)ctx;
  return hy_rat_after(in[0], in[1], in[2], in[3], in[4], in[5], chunk,
                      1.0 / sqrt((double)in[0]->shape[3]), THETA);
}

/* hy_rat_after on fresh q, u, k, gates and earlier kp, vp ~ N(0, 1); grads: which of the six need
 * a gradient. */
static void expect_after(after_size z, const bool grads[6]) {
  hy_shape s = HY_SHAPE(z.B, z.T, z.H, z.D), e = HY_SHAPE(z.B, z.P, z.H, z.D);
  hy_tensor *in[6] = {t_randn(HY_F32, s, seed++), t_randn(HY_F32, s, seed++),
                      t_randn(HY_F32, s, seed++), gate(s, GATES_SPREAD),
                      t_randn(HY_F32, e, seed++), t_randn(HY_F32, e, seed++)};
  for (int i = 0; i < 6; i++) {
    in[i] = t_param(in[i]);
    in[i]->requires_grad = grads[i];
  }
  char name[200];
  snprintf(name, sizeof name, "rat after: B %lld T %lld H %lld D %lld chunk %lld P %lld",
           (long long)z.B, (long long)z.T, (long long)z.H, (long long)z.D, (long long)z.chunk,
           (long long)z.P);
  t_expect_gpu_matches_cpu(rat_after, &z.chunk, 6, in, TOL, name);
}

Test(cuda_rat, after_earlier_chunks_matches_cpu) {
  T_NEED_GPU();
  static const bool ALL6[6] = {true, true, true, true, true, true};
  after_size sizes[] = {
      {2, 64, 2, 16, 16, 3},  /* whole chunks after three */
      {2, 37, 3, 8, 4, 5},    /* a short last chunk */
      {1, 16, 2, 16, 16, 40}, /* one chunk: only the earlier keys, two key tiles */
      {1, 150, 2, 8, 1, 50},  /* key tiles across the earlier and the slice's chunks */
      {2, 70, 2, 128, 8, 9},  /* a wide head */
  };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) expect_after(sizes[i], ALL6);
  /* only the earlier chunks' gradients; only the slice's */
  expect_after((after_size){2, 40, 2, 16, 8, 6}, (bool[6]){false, false, false, false, true, true});
  expect_after((after_size){2, 40, 2, 16, 8, 6}, (bool[6]){true, true, true, true, false, false});
}

static hy_tensor *chunk_ends(hy_tensor **in, void *ctx) {
  return hy_rat_chunk_ends(in[0], in[1], *(const int64_t *)ctx);
}

Test(cuda_rat, chunk_ends_match_cpu) {
  T_NEED_GPU();
  rat_size sizes[] = {{2, 64, 2, 16, 16}, {1, 45, 3, 8, 1}, {2, 60, 2, 70, 12}};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    rat_size z = sizes[i];
    hy_shape s = HY_SHAPE(z.B, z.T, z.H, z.D);
    hy_tensor *in[2] = {t_param(t_randn(HY_F32, s, seed++)), t_param(gate(s, GATES_SPREAD))};
    char name[160];
    snprintf(name, sizeof name, "rat chunk ends: B %lld T %lld H %lld D %lld chunk %lld",
             (long long)z.B, (long long)z.T, (long long)z.H, (long long)z.D, (long long)z.chunk);
    t_expect_gpu_matches_cpu(chunk_ends, &z.chunk, 2, in, TOL, name);
  }
}
