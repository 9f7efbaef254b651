/* The CUDA backend's core: device memory, copies between devices, strided copies, views and
 * matrix products against the CPU path. */
#include "tests/gpu.h"

#include <criterion/criterion.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static void set_cuda(void) { hy_set_device(HY_CUDA); }

Test(cuda_core, gpu_request_without_gpu_says_why) {
  if (hy_cuda_available()) cr_skip_test("a GPU is present");
  const char *needle = hy_cuda_built() ? "no CUDA GPU" : "built without CUDA";
  t_expect_abort(set_cuda, 1, &needle);
}

Test(cuda_core, round_trip_keeps_every_bit) {
  T_NEED_GPU();
  hy_tensor *x = t_randn(HY_F32, HY_SHAPE(3, 5, 7), 1);
  hy_tensor *g = hy_to(x, HY_CUDA);
  cr_assert_eq(g->device, HY_CUDA);
  t_expect_same_bits(hy_to(g, HY_CPU), x, "cpu -> gpu -> cpu");
  hy_tensor *idx = t_ints(HY_SHAPE(4), (int32_t[]){3, -1, 7, 0});
  t_expect_same_bits(hy_to(hy_to(idx, HY_CUDA), HY_CPU), idx, "i32 round trip");
}

Test(cuda_core, element_access_and_fill) {
  T_NEED_GPU();
  hy_tensor *g = hy_empty_on(HY_CUDA, HY_F32, HY_SHAPE(4, 6));
  hy_fill(g, 2.5);
  hy_set(g, 7, -1.0);
  cr_assert_eq(hy_get(g, 7), -1.0);
  cr_assert_eq(hy_get(g, 23), 2.5);
  hy_tensor *z = hy_zeros_like(g);
  cr_assert_eq(z->device, HY_CUDA);
  cr_assert_eq(hy_get(z, 5), 0.0);
}

static hy_tensor *transpose_contiguous(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_contiguous(hy_transpose(in[0], 0, 2));
}

static hy_tensor *slice_concat(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *parts[3] = {hy_slice(in[0], 1, 2, 5), in[1], hy_slice(in[0], 1, 0, 1)};
  return hy_concat(3, parts, 1);
}

static hy_tensor *reshaped_view(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_reshape(hy_transpose(in[0], 1, 2), HY_SHAPE(-1, 6));
}

Test(cuda_core, copies_and_views_match_cpu) {
  T_NEED_GPU();
  hy_tensor *x = t_param(t_randn(HY_F32, HY_SHAPE(3, 5, 7, 2), 2));
  t_expect_gpu_matches_cpu(transpose_contiguous, NULL, 1, &x, TOL, "transpose + contiguous");
  hy_tensor *in[2] = {t_param(t_randn(HY_F32, HY_SHAPE(4, 6, 3), 3)),
                      t_param(t_randn(HY_F32, HY_SHAPE(4, 2, 3), 4))};
  t_expect_gpu_matches_cpu(slice_concat, NULL, 2, in, TOL, "slice + concat");
  hy_tensor *y = t_param(t_randn(HY_F32, HY_SHAPE(2, 3, 4), 5));
  t_expect_gpu_matches_cpu(reshaped_view, NULL, 1, &y, TOL, "reshape of a transposed view");
}

Test(cuda_core, matmul_matches_cpu) {
  T_NEED_GPU();
  struct {
    hy_shape a, b;
  } cases[] = {
      {HY_SHAPE(37, 53), HY_SHAPE(53, 29)},            /* 2-d, odd sizes */
      {HY_SHAPE(4, 33, 64), HY_SHAPE(64, 96)},         /* batch folds into rows */
      {HY_SHAPE(2, 3, 17, 40), HY_SHAPE(2, 3, 40, 9)}, /* batched */
      {HY_SHAPE(256, 512), HY_SHAPE(512, 384)},        /* large enough for cuBLAS' own tiling */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hy_tensor *in[2] = {t_param(t_randn(HY_F32, cases[i].a, 10 + i)),
                        t_param(t_randn(HY_F32, cases[i].b, 20 + i))};
    t_expect_gpu_matches_cpu(t_matmul, NULL, 2, in, TOL, "matmul");
  }
  hy_tensor *in[2] = {t_param(t_randn(HY_F32, HY_SHAPE(5, 40, 17), 30)),
                      t_param(t_randn(HY_F32, HY_SHAPE(5, 9, 40), 31))};
  t_expect_gpu_matches_cpu(t_matmul_transposed, NULL, 2, in, TOL, "matmul of transposed views");
}

static hy_tensor *to_gpu_and_back(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_to(hy_matmul(hy_to(in[0], HY_CUDA), hy_to(in[1], HY_CUDA)), HY_CPU);
}

Test(cuda_core, gradient_flows_back_across_devices) {
  T_NEED_GPU();
  hy_tensor *a = t_param(t_randn(HY_F32, HY_SHAPE(6, 8), 40));
  hy_tensor *b = t_param(t_randn(HY_F32, HY_SHAPE(8, 5), 41));
  hy_tensor *ref = hy_matmul(a, b);
  hy_tensor *gy = t_randn(HY_F32, HY_SHAPE(6, 5), 42);
  hy_backward_with(ref, gy);
  hy_tensor *ga = hy_copy(a->grad), *gb = hy_copy(b->grad);
  a->grad = b->grad = NULL;
  hy_tensor *out = to_gpu_and_back((hy_tensor *[]){a, b}, NULL);
  cr_assert_eq(out->device, HY_CPU);
  hy_backward_with(out, gy);
  t_expect_gpu_close(out, ref, TOL, "product through the GPU");
  t_expect_gpu_close(a->grad, ga, TOL, "gradient of a, back on the CPU");
  t_expect_gpu_close(b->grad, gb, TOL, "gradient of b, back on the CPU");
}
