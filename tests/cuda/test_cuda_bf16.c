/* bf16 tensors on the GPU: matmuls (cuBLASLt, bf16 operands, f32 sums, one rounding of the
 * output), the dense layer's product with an f32 parameter weight (a bf16 output and an f32
 * weight gradient), and softmax attention on its tensor-core kernels (head sizes 64 and 128,
 * tensor/cuda/attention_bf16.cu) or, for other head sizes, in f32 and cast back. Each against the
 * CPU in f64 on the same bf16-rounded inputs (t_expect_bf16_matches_f64), forward and every
 * gradient, within 1e-2 relative norm error: storing the output (or a gradient) in bf16 rounds
 * each element by up to 2^-9, a relative norm error of about 2e-3, and the tensor-core attention
 * also rounds P and dS to bf16 before their products. */
#include "tensor/ops.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double BF16_TOL = 1e-2;

/* A column slice: rows whose stride is longer than their length. */
static hy_tensor *matmul_of_slice(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(hy_slice(in[0], 1, 3, 35), in[1]);
}

static void expect_matmul(t_gpu_op op, hy_shape a, hy_shape b, uint64_t seed, const char *what) {
  hy_tensor *in[2] = {t_param(t_randn(HY_F32, a, seed)), t_param(t_randn(HY_F32, b, seed + 1))};
  t_expect_bf16_matches_f64(op, NULL, 2, in, 3u, HY_BF16, BF16_TOL, what);
}

Test(cuda_bf16, matmul_within_bf16_of_f64) {
  T_NEED_GPU();
  struct {
    hy_shape a, b;
  } cases[] = {
      {HY_SHAPE(37, 53), HY_SHAPE(53, 29)},
      {HY_SHAPE(4, 33, 64), HY_SHAPE(64, 96)},
      {HY_SHAPE(2, 3, 17, 40), HY_SHAPE(2, 3, 40, 9)},
      {HY_SHAPE(256, 512), HY_SHAPE(512, 384)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    expect_matmul(t_matmul, cases[i].a, cases[i].b, 10 + 2 * i, "bf16 matmul");
  expect_matmul(t_matmul_transposed, HY_SHAPE(5, 40, 17), HY_SHAPE(5, 9, 40), 30,
                "bf16 matmul of transposed views");
  expect_matmul(matmul_of_slice, HY_SHAPE(21, 40), HY_SHAPE(32, 19), 32, "bf16 matmul of a slice");
}

/* The product of two bf16 tensors is a bf16 tensor: visibly rounded (above 1e-4 from the exact
 * product of the same rounded inputs, where an f32 result would be near 1e-7). */
Test(cuda_bf16, matmul_output_is_rounded_to_bf16) {
  T_NEED_GPU();
  hy_tensor *a = t_cast(t_cast(t_randn(HY_F32, HY_SHAPE(64, 128), 40), HY_BF16), HY_F32),
            *b = t_cast(t_cast(t_randn(HY_F32, HY_SHAPE(128, 48), 41), HY_BF16), HY_F32);
  hy_tensor *ref = hy_matmul(t_cast(a, HY_F64), t_cast(b, HY_F64));
  hy_tensor *out = hy_matmul(t_to_gpu(t_cast(a, HY_BF16)), t_to_gpu(t_cast(b, HY_BF16)));
  cr_assert(out->dtype == HY_BF16, "bf16 matmul gave %s", hy_describe(out));
  double err = t_rel_norm_err(t_to_cpu(out), ref);
  cr_expect(err > 1e-4 && err <= BF16_TOL, "bf16 matmul error %.3g: expected bf16 rounding", err);
  cr_log_info("64x128x48 bf16 matmul, relative norm error against f64: %.3g", err);
}

/* hy_dense with a bf16 x and an f32 parameter weight on the GPU (mixed precision): the product
 * reads the weight's bf16 copy, y is bf16, x's gradient bf16 and the weight's gradient f32, summed
 * in f32 from the bf16 operands (exact products of bf16 values): held to 1e-4. */
Test(cuda_bf16, dense_of_bf16_x_and_f32_weight) {
  T_NEED_GPU();
  hy_tensor *x = t_cast(t_cast(t_randn(HY_F32, HY_SHAPE(4, 33, 96), 50), HY_BF16), HY_F32),
            *w = t_randn(HY_F32, HY_SHAPE(80, 96), 51);
  hy_tensor *xr = t_param(t_cast(x, HY_F64)), *wr = t_param(t_cast(w, HY_F64));
  hy_tensor *ref = hy_dense(xr, wr, NULL);
  t_poison();
  hy_tensor *xg = t_param(t_to_gpu(t_cast(x, HY_BF16)));
  hy_tensor *wg = hy_empty_persistent_on(HY_CUDA, HY_F32, hy_shape_of(w));
  hy_copy_into(wg, w);
  wg->requires_grad = true;
  hy_tensor *y = hy_dense(xg, wg, NULL);
  cr_assert(y->dtype == HY_BF16, "dense of a bf16 x gave %s", hy_describe(y));
  t_expect_gpu_close(y, ref, BF16_TOL, "bf16 dense: forward");
  hy_tensor *gy = t_cast(t_cast(t_randn(HY_F32, hy_shape_of(ref), 52), HY_BF16), HY_F64);
  hy_backward_with(y, t_to_gpu(t_cast(gy, HY_BF16)));
  hy_backward_with(ref, gy);
  cr_assert(xg->grad->dtype == HY_BF16 && wg->grad->dtype == HY_F32,
            "gradients %s (x) and %s (weight): expected bf16 and f32", hy_describe(xg->grad),
            hy_describe(wg->grad));
  t_expect_gpu_close(xg->grad, xr->grad, BF16_TOL, "bf16 dense: gradient of x");
  t_expect_gpu_close(wg->grad, wr->grad, 1e-4, "bf16 dense: gradient of the f32 weight");
  hy_free(wg);
}

/* ---- softmax attention on bf16 tensors ---- */

static uint64_t attn_seed = 5000; /* every input fresh */

static void attn_name(char *buf, size_t n, const char *what, int64_t B, int64_t T, int64_t Tk,
                      int64_t H, int64_t D, int64_t window, int64_t q_offset) {
  snprintf(buf, n, "%s: B %lld T %lld Tk %lld H %lld D %lld window %lld offset %lld", what,
           (long long)B, (long long)T, (long long)Tk, (long long)H, (long long)D, (long long)window,
           (long long)q_offset);
}

/* q [B, T, H, D] at q_offset against fresh k, v [B, Tk, H, D], all bf16: forward and the three
 * gradients against f64. With one key the gradients of q and k are zero up to rounding on both
 * devices, so only v's is compared. */
static void expect_attention(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D, int64_t window,
                             int64_t q_offset) {
  t_attn_ctx c = {1 / sqrt((double)D), window, q_offset, H, D};
  hy_tensor *in[3] = {t_randn(HY_F32, HY_SHAPE(B, T, H, D), attn_seed),
                      t_randn(HY_F32, HY_SHAPE(B, Tk, H, D), attn_seed + 1),
                      t_randn(HY_F32, HY_SHAPE(B, Tk, H, D), attn_seed + 2)};
  attn_seed += 3;
  in[0]->requires_grad = in[1]->requires_grad = Tk > 1;
  in[2]->requires_grad = true;
  char name[200];
  attn_name(name, sizeof name, "bf16 attention", B, T, Tk, H, D, window, q_offset);
  t_expect_bf16_matches_f64(t_attention, &c, 3, in, 7u, HY_BF16, BF16_TOL, name);
}

static const int64_t ATTN_TS[] = {1, 7, 64, 130, 257}, ATTN_DS[] = {64, 128};

Test(cuda_bf16, attention_causal) {
  T_NEED_GPU();
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 2; j++)
      expect_attention(2, ATTN_TS[i], ATTN_TS[i], 2 + (i + j) % 2, ATTN_DS[j], 0, 0);
}

Test(cuda_bf16, attention_window) {
  T_NEED_GPU();
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 2; j++)
      expect_attention(2, ATTN_TS[i], ATTN_TS[i], 3 - (i + j) % 2, ATTN_DS[j], 5, 0);
  for (int j = 0; j < 2; j++) {
    expect_attention(2, 200, 200, 2, ATTN_DS[j], 64, 0);  /* a window of one tile */
    expect_attention(1, 300, 300, 3, ATTN_DS[j], 100, 0); /* across tiles */
    expect_attention(2, 192, 192, 2, ATTN_DS[j], 65, 0);  /* just over a tile of 64 keys */
  }
}

/* A sequence-parallel rank's view: T queries at q_offset against Tk > T keys, some of which no
 * query sees (their gradients are zero: written, not left unset). */
Test(cuda_bf16, attention_at_an_offset) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) {
    expect_attention(2, 50, 150, 2, ATTN_DS[j], 0, 37);
    expect_attention(2, 64, 257, 3, ATTN_DS[j], 0, 64);
    expect_attention(2, 13, 257, 2, ATTN_DS[j], 5, 100);
    expect_attention(2, 1, 70, 3, ATTN_DS[j], 0, 69);
    expect_attention(2, 130, 300, 2, ATTN_DS[j], 40, 170);
  }
}

Test(cuda_bf16, attention_long_sequence) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) expect_attention(2, 1024, 1024, 2, ATTN_DS[j], 0, 0);
}

/* Head sizes the tensor-core kernels do not take compute in f32 and come back in bf16. */
Test(cuda_bf16, attention_other_head_sizes) {
  T_NEED_GPU();
  expect_attention(2, 130, 130, 3, 32, 0, 0);
  expect_attention(2, 70, 100, 2, 80, 5, 30);
  expect_attention(1, 33, 33, 2, 5, 0, 0);
}

/* q, k, v sliced from one bf16 [B, T, 3 H D] projection, as the layers pass them: the kernels
 * read the strided views in place (rows 3 H D apart). */
Test(cuda_bf16, attention_of_projection_slices) {
  T_NEED_GPU();
  for (int i = 1; i < 5; i++)
    for (int j = 0; j < 2; j++)
      for (int64_t window = 0; window <= 5; window += 5) {
        int64_t T = ATTN_TS[i], H = 2 + (i + j) % 2, D = ATTN_DS[j];
        t_attn_ctx c = {1 / sqrt((double)D), window, 0, H, D};
        hy_tensor *qkv = t_param(t_randn(HY_F32, HY_SHAPE(2, T, 3 * H * D), attn_seed++));
        char name[200];
        attn_name(name, sizeof name, "bf16 attention of projection slices", 2, T, T, H, D, window,
                  0);
        t_expect_bf16_matches_f64(t_attention_of_projection, &c, 1, &qkv, 1u, HY_BF16, BF16_TOL,
                                  name);
      }
}

/* q, k, v sliced from [B, T, H, D + 4] tensors at channel 4: rows 8 bytes past a 16-byte boundary
 * and D + 4 apart, which the kernels' 16-byte copies cannot read in place (the op copies them). */
static hy_tensor *attention_of_padded_heads(hy_tensor **in, void *ctx) {
  t_attn_ctx *c = ctx;
  hy_tensor *x[3];
  for (int i = 0; i < 3; i++) x[i] = hy_slice(in[i], 3, 4, 4 + c->D);
  return hy_attention_window(x[0], x[1], x[2], c->scale, c->window);
}

Test(cuda_bf16, attention_of_unaligned_views) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) {
    int64_t D = ATTN_DS[j];
    t_attn_ctx c = {1 / sqrt((double)D), 5, 0, 2, D};
    hy_tensor *in[3];
    for (int i = 0; i < 3; i++)
      in[i] = t_param(t_randn(HY_F32, HY_SHAPE(2, 130, 2, D + 4), attn_seed++));
    t_expect_bf16_matches_f64(attention_of_padded_heads, &c, 3, in, 7u, HY_BF16, BF16_TOL,
                              "bf16 attention of unaligned views");
  }
}

/* One tensor as q, k and v: one gradient buffer that the dK dV kernel writes first (k's, fresh:
 * written over) and adds to (v's), and the dQ kernel adds to after. */
static hy_tensor *self_attention(hy_tensor **in, void *ctx) {
  t_attn_ctx *c = ctx;
  return hy_attention_window(in[0], in[0], in[0], c->scale, c->window);
}

/* q shared by two attentions: the later one's backward writes q's gradient, the earlier one's
 * adds to it. */
static hy_tensor *shared_query(hy_tensor **in, void *ctx) {
  t_attn_ctx *c = ctx;
  hy_tensor *o[2] = {hy_attention_window(in[0], in[1], in[2], c->scale, c->window),
                     hy_attention_window(in[0], in[3], in[4], c->scale, c->window)};
  return hy_concat(2, o, 3);
}

Test(cuda_bf16, attention_gradients_written_and_added) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) {
    int64_t D = ATTN_DS[j];
    t_attn_ctx c = {1 / sqrt((double)D), 0, 0, 2, D};
    hy_tensor *x = t_param(t_randn(HY_F32, HY_SHAPE(2, 100, 2, D), attn_seed++));
    t_expect_bf16_matches_f64(self_attention, &c, 1, &x, 1u, HY_BF16, BF16_TOL,
                              "bf16 attention of one tensor as q, k, v");
    hy_tensor *in[5];
    for (int i = 0; i < 5; i++)
      in[i] = t_param(t_randn(HY_F32, HY_SHAPE(2, 100, 2, D), attn_seed++));
    t_expect_bf16_matches_f64(shared_query, &c, 5, in, 31u, HY_BF16, BF16_TOL,
                              "bf16 attention, q shared by two");
  }
}

/* No atomics: two runs give the same bits, forward and every gradient. */
Test(cuda_bf16, attention_runs_are_bitwise_equal) {
  T_NEED_GPU();
  for (int j = 0; j < 2; j++) {
    int64_t D = ATTN_DS[j];
    hy_tensor *x[3], *gy = t_to_gpu(t_cast(t_randn(HY_F32, HY_SHAPE(2, 257, 3, D), 77), HY_BF16));
    for (int i = 0; i < 3; i++)
      x[i] = t_to_gpu(t_cast(t_randn(HY_F32, HY_SHAPE(2, 257, 3, D), attn_seed++), HY_BF16));
    hy_tensor *out[2], *grad[2][3];
    for (int run = 0; run < 2; run++) {
      t_poison();
      hy_tensor *in[3];
      for (int i = 0; i < 3; i++) {
        in[i] = t_to_gpu(x[i]);
        in[i]->requires_grad = true;
      }
      hy_tensor *o = hy_attention_window(in[0], in[1], in[2], 1 / sqrt((double)D), 70);
      hy_backward_with(o, gy);
      out[run] = t_to_cpu(o);
      for (int i = 0; i < 3; i++) grad[run][i] = t_to_cpu(in[i]->grad);
    }
    t_expect_same_bits(out[0], out[1], "bf16 attention forward, two runs");
    for (int i = 0; i < 3; i++) t_expect_same_bits(grad[0][i], grad[1][i], "bf16 attention grad");
  }
}
