/* Mixed precision on the GPU (hy_set_matmul_precision(HY_MATMUL_BF16)): matmuls round their
 * inputs to bf16 on the tensor cores and sum in f32. Forward and every gradient against the
 * CPU's exact f32 within 1e-2 relative norm error (the bf16 bound), and visibly not f32:
 * the error is above 1e-4, where the f32 path lands near 1e-7. */
#include "tensor/ops.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>

static const double BF16_TOL = 1e-2;

static void bf16_on(void) { hy_set_matmul_precision(HY_MATMUL_BF16); }

static void bf16_off(void) { hy_set_matmul_precision(HY_MATMUL_F32); }

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
