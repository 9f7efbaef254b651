/* Fused causal softmax attention on the GPU (tensor/cuda/attention.cu) against the CPU path,
 * forward and the gradients of q, k and v: head sizes the kernels specialize and others, partial
 * tiles, sliding windows, queries at an offset against more keys, q, k, v as strided slices of one
 * projection, and large logits. */
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static uint64_t seed = 1000; /* every input fresh */

/* Fresh q [B, T, H, D], k and v [B, Tk, H, D] in in[0..2], q and k requiring gradients iff
 * qk_grads, v iff any. */
static void inputs(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D, bool qk_grads,
                   bool v_grad, hy_tensor **in) {
  in[0] = t_randn(HY_F32, HY_SHAPE(B, T, H, D), seed++);
  in[1] = t_randn(HY_F32, HY_SHAPE(B, Tk, H, D), seed++);
  in[2] = t_randn(HY_F32, HY_SHAPE(B, Tk, H, D), seed++);
  in[0]->requires_grad = in[1]->requires_grad = qk_grads;
  in[2]->requires_grad = v_grad;
}

/* q [B, T, H, D] at q_offset against k, v [B, Tk, H, D]. With a single key (Tk = 1) the one query
 * has weight 1 on it: the gradients of q and k are zero up to rounding on both devices, so only
 * v's is compared. */
static void expect_attention(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D,
                             double scale_mult, int64_t window, int64_t q_offset,
                             const char *what) {
  t_attn_ctx c = {scale_mult / sqrt((double)D), window, q_offset, H, D};
  hy_tensor *in[3];
  inputs(B, T, Tk, H, D, Tk > 1, true, in);
  char name[160];
  snprintf(name, sizeof name, "%s: B %lld T %lld Tk %lld H %lld D %lld window %lld offset %lld",
           what, (long long)B, (long long)T, (long long)Tk, (long long)H, (long long)D,
           (long long)window, (long long)q_offset);
  t_expect_gpu_matches_cpu(t_attention, &c, 3, in, TOL, name);
}

static const int64_t TS[] = {1, 7, 64, 257}, DS[] = {16, 32, 64, 128};

Test(cuda_attention, causal_matches_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      expect_attention(2, TS[i], TS[i], 2 + (i + j) % 2, DS[j], 1, 0, 0, "causal");
}

Test(cuda_attention, sliding_window_matches_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      expect_attention(2, TS[i], TS[i], 3 - (i + j) % 2, DS[j], 1, 5, 0, "window 5");
  expect_attention(2, 200, 200, 2, 64, 1, 64, 0, "window of one tile");
  expect_attention(1, 130, 130, 3, 32, 1, 100, 0, "window across tiles");
}

/* A sequence-parallel rank's view: T queries at positions q_offset.. against Tk > T keys, some
 * past the last query (their gradients stay zero). */
Test(cuda_attention, queries_at_an_offset_match_cpu) {
  T_NEED_GPU();
  for (int j = 0; j < 4; j++) {
    expect_attention(2, 50, 150, 2, DS[j], 1, 0, 37, "offset");
    expect_attention(2, 64, 257, 3, DS[j], 1, 0, 64, "offset, whole tiles");
    expect_attention(2, 13, 257, 2, DS[j], 1, 5, 100, "offset, window 5");
    expect_attention(2, 1, 70, 3, DS[j], 1, 0, 69, "one query at the end");
  }
}

Test(cuda_attention, strided_projection_slices_match_cpu) {
  T_NEED_GPU();
  for (int i = 1; i < 4; i++)
    for (int j = 0; j < 4; j++)
      for (int64_t window = 0; window <= 5; window += 5)
        t_expect_attention_of_projection(TS[i], 2 + (i + j) % 2, DS[j], window, seed++, TOL,
                                         "q, k, v slices");
}

/* Head sizes between the specialized ones, and odd ones whose rows are not 16-byte aligned. */
Test(cuda_attention, other_head_sizes_match_cpu) {
  T_NEED_GPU();
  int64_t Ds[] = {3, 5, 24, 80, 200, 256};
  for (int j = 0; j < 6; j++) {
    expect_attention(2, 70, 70, 2, Ds[j], 1, 0, 0, "head size");
    t_expect_attention_of_projection(33, 3, Ds[j], 5, seed++, TOL, "head size, slices");
  }
}

/* Logits of size ~30 (scale * 30): the running max keeps exp in range. Rounding a logit s to f32
 * moves its weight by |s| ulps, so at this size each f32 path is up to 8e-6 from f64 in the
 * gradients (the CPU's, measured at D = 128; the GPU's likewise) and the two differ by about
 * 1e-5: the forward is compared at 1e-5, the gradients at 3e-5. */
Test(cuda_attention, large_logits_stay_finite_and_match_cpu) {
  T_NEED_GPU();
  for (int j = 0; j < 4; j++)
    for (int64_t window = 0; window <= 5; window += 5) {
      t_attn_ctx c = {30 / sqrt((double)DS[j]), window, 0, 3, DS[j]};
      hy_tensor *in[3];
      inputs(2, 257, 257, 3, DS[j], false, false, in);
      t_expect_gpu_matches_cpu(t_attention, &c, 3, in, TOL, "scale x 30, forward");
      inputs(2, 257, 257, 3, DS[j], true, true, in);
      t_expect_gpu_matches_cpu(t_attention, &c, 3, in, 3e-5, "scale x 30, gradients");
    }
}
