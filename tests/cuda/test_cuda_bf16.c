/* Mixed precision on the GPU (hy_set_precision(HY_PRECISION_BF16)): matmuls round their
 * inputs to bf16 on the tensor cores and sum in f32. Forward and every gradient against the
 * CPU's exact f32 within 1e-2 relative norm error (the bf16 bound), and visibly not f32:
 * the error is above 1e-4, where the f32 path lands near 1e-7. Softmax attention likewise on its
 * tensor-core kernels (head sizes 64 and 128), and at f32 accuracy where it falls back. */
#include "tensor/ops.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double BF16_TOL = 1e-2;

static void bf16_on(void) { hy_set_precision(HY_PRECISION_BF16); }

static void bf16_off(void) { hy_set_precision(HY_PRECISION_F32); }

TestSuite(cuda_bf16, .init = bf16_on, .fini = bf16_off);

static hy_tensor *matmul(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(in[0], in[1]);
}

static hy_tensor *matmul_transposed(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(hy_transpose(in[0], -1, -2), hy_transpose(in[1], -1, -2));
}

/* A column slice: rows whose stride is longer than their length. */
static hy_tensor *matmul_of_slice(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(hy_slice(in[0], 1, 3, 35), in[1]);
}

Test(cuda_bf16, matmul_within_bf16_of_cpu) {
  T_NEED_GPU();
  struct {
    hy_shape a, b;
  } cases[] = {
      {HY_SHAPE(37, 53), HY_SHAPE(53, 29)},
      {HY_SHAPE(4, 33, 64), HY_SHAPE(64, 96)},
      {HY_SHAPE(2, 3, 17, 40), HY_SHAPE(2, 3, 40, 9)},
      {HY_SHAPE(256, 512), HY_SHAPE(512, 384)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hy_tensor *in[2] = {t_param(t_randn(HY_F32, cases[i].a, 10 + i)),
                        t_param(t_randn(HY_F32, cases[i].b, 20 + i))};
    t_expect_gpu_matches_cpu(matmul, NULL, 2, in, BF16_TOL, "bf16 matmul");
  }
  hy_tensor *in[2] = {t_param(t_randn(HY_F32, HY_SHAPE(5, 40, 17), 30)),
                      t_param(t_randn(HY_F32, HY_SHAPE(5, 9, 40), 31))};
  t_expect_gpu_matches_cpu(matmul_transposed, NULL, 2, in, BF16_TOL,
                           "bf16 matmul of transposed views");
  hy_tensor *sl[2] = {t_param(t_randn(HY_F32, HY_SHAPE(21, 40), 32)),
                      t_param(t_randn(HY_F32, HY_SHAPE(32, 19), 33))};
  t_expect_gpu_matches_cpu(matmul_of_slice, NULL, 2, sl, BF16_TOL, "bf16 matmul of a slice");
}

Test(cuda_bf16, rounds_to_bf16_and_back_to_f32) {
  T_NEED_GPU();
  hy_tensor *a = t_randn(HY_F32, HY_SHAPE(64, 128), 40),
            *b = t_randn(HY_F32, HY_SHAPE(128, 48), 41);
  hy_tensor *ref = hy_matmul(a, b);
  hy_tensor *bf16 = hy_to(hy_matmul(hy_to(a, HY_CUDA), hy_to(b, HY_CUDA)), HY_CPU);
  double err = t_rel_norm_err(bf16, ref);
  cr_expect(err > 1e-4 && err <= BF16_TOL, "bf16 matmul error %.3g: expected bf16 rounding", err);
  bf16_off();
  hy_tensor *f32 = hy_to(hy_matmul(hy_to(a, HY_CUDA), hy_to(b, HY_CUDA)), HY_CPU);
  double err32 = t_rel_norm_err(f32, ref);
  cr_expect(err32 <= 1e-6, "after switching back to f32 the error is %.3g", err32);
  cr_log_info("64x128x48 matmul, relative norm error against the CPU: bf16 %.3g, f32 %.3g", err,
              err32);
}

/* Softmax attention in bf16 mode: head sizes 64 and 128 run on the tensor-core kernels
 * (tensor/cuda/attention_bf16.cu), every other head size on the f32 kernels. */

static uint64_t attn_seed = 5000; /* every input fresh */

/* q [B, T, H, D] at q_offset against fresh k, v [B, Tk, H, D], forward and the three gradients
 * within tol of the CPU's f32. With one key the gradients of q and k are zero up to rounding on
 * both devices, so only v's is compared. Returns the forward's relative norm error. */
static double expect_attention(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D,
                               int64_t window, int64_t q_offset, double tol) {
  t_attn_ctx c = {1 / sqrt((double)D), window, q_offset, H, D};
  hy_tensor *in[3] = {t_randn(HY_F32, HY_SHAPE(B, T, H, D), attn_seed++),
                      t_randn(HY_F32, HY_SHAPE(B, Tk, H, D), attn_seed++),
                      t_randn(HY_F32, HY_SHAPE(B, Tk, H, D), attn_seed++)};
  char name[160];
  snprintf(name, sizeof name,
           "bf16 attention: B %lld T %lld Tk %lld H %lld D %lld window %lld "
           "offset %lld",
           (long long)B, (long long)T, (long long)Tk, (long long)H, (long long)D, (long long)window,
           (long long)q_offset);
  t_poison();
  hy_tensor *gin[3] = {t_to_gpu(in[0]), t_to_gpu(in[1]), t_to_gpu(in[2])};
  double err = t_rel_norm_err(hy_to(t_attention(gin, &c), HY_CPU), t_attention(in, &c));
  in[0]->requires_grad = in[1]->requires_grad = Tk > 1;
  in[2]->requires_grad = true;
  t_expect_gpu_matches_cpu(t_attention, &c, 3, in, tol, name);
  return err;
}

/* The forward of a tensor-core case is visibly bf16: above 1e-4 from the CPU's f32. */
static void expect_bf16_attention(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D,
                                  int64_t window, int64_t q_offset) {
  double err = expect_attention(B, T, Tk, H, D, window, q_offset, BF16_TOL);
  cr_expect(err > 1e-4, "B %lld T %lld Tk %lld D %lld: forward error %.3g, expected bf16 rounding",
            (long long)B, (long long)T, (long long)Tk, (long long)D, err);
}

static const int64_t ATTN_TS[] = {1, 7, 64, 130, 257}, ATTN_DS[] = {64, 128};

Test(cuda_bf16, attention_causal_within_bf16_of_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 2; j++)
      expect_bf16_attention(2, ATTN_TS[i], ATTN_TS[i], 2 + (i + j) % 2, ATTN_DS[j], 0, 0);
}

Test(cuda_bf16, attention_window_within_bf16_of_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 2; j++)
      expect_bf16_attention(2, ATTN_TS[i], ATTN_TS[i], 3 - (i + j) % 2, ATTN_DS[j], 5, 0);
  for (int j = 0; j < 2; j++) {
    expect_bf16_attention(2, 200, 200, 2, ATTN_DS[j], 64, 0);  /* a window of one tile */
    expect_bf16_attention(1, 300, 300, 3, ATTN_DS[j], 100, 0); /* across tiles */
    expect_bf16_attention(2, 192, 192, 2, ATTN_DS[j], 65, 0);  /* just over a tile of 64 keys */
  }
}

/* A sequence-parallel rank's view: T queries at q_offset against Tk > T keys. */
Test(cuda_bf16, attention_at_an_offset_within_bf16_of_cpu) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) {
    expect_bf16_attention(2, 50, 150, 2, ATTN_DS[j], 0, 37);
    expect_bf16_attention(2, 64, 257, 3, ATTN_DS[j], 0, 64);
    expect_bf16_attention(2, 13, 257, 2, ATTN_DS[j], 5, 100);
    expect_bf16_attention(2, 1, 70, 3, ATTN_DS[j], 0, 69);
    expect_bf16_attention(2, 130, 300, 2, ATTN_DS[j], 40, 170);
  }
}

Test(cuda_bf16, attention_of_projection_slices_within_bf16_of_cpu) {
  T_NEED_GPU();
  for (int i = 1; i < 5; i++)
    for (int j = 0; j < 2; j++)
      for (int64_t window = 0; window <= 5; window += 5)
        t_expect_attention_of_projection(ATTN_TS[i], 2 + (i + j) % 2, ATTN_DS[j], window,
                                         attn_seed++, BF16_TOL, "bf16 attention of slices");
}

Test(cuda_bf16, attention_long_sequence_within_bf16_of_cpu) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) expect_bf16_attention(2, 1024, 1024, 2, ATTN_DS[j], 0, 0);
}

/* Head sizes the tensor-core kernels do not take stay on the f32 kernels: f32 accuracy. */
Test(cuda_bf16, attention_other_head_sizes_stay_f32) {
  T_NEED_GPU();
  double err = expect_attention(2, 130, 130, 3, 32, 0, 0, 1e-5);
  cr_expect(err <= 1e-5, "D 32 in bf16 mode: forward error %.3g, expected f32", err);
  expect_attention(2, 70, 100, 2, 80, 5, 30, 1e-5);
}
