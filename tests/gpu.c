#include "tests/gpu.h"
#include "tensor/arena.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void t_need_gpu(void) {
  if (hy_cuda_available()) return;
  const char *why = hy_cuda_built() ? "no CUDA GPU visible to this process"
                                    : "hyla built without CUDA (-DHYLA_CUDA=ON)";
  if (getenv("HYLA_REQUIRE_GPU")) cr_assert_fail("HYLA_REQUIRE_GPU is set, but %s", why);
  cr_skip_test("%s", why);
}

hy_tensor *t_randn_leaf(hy_shape shape, double scale) {
  hy_tensor *x = t_randn_next(HY_F32, shape);
  if (scale != 1) {
    hy_no_grad_begin();
    x = hy_scale(x, scale);
    hy_no_grad_end();
  }
  return t_param(x);
}

hy_tensor *t_uniform_leaf(hy_shape shape, double lo, double hi) {
  return t_param(t_uniform_next(HY_F32, shape, lo, hi));
}

static hy_tensor *leaf_on(const hy_tensor *t, hy_device device) {
  hy_tensor *c = hy_empty_on(device, t->dtype, hy_shape_of(t));
  hy_copy_into(c, hy_is_contiguous(t) ? t : hy_contiguous((hy_tensor *)t));
  c->requires_grad = t->requires_grad;
  return c;
}

hy_tensor *t_to_gpu(const hy_tensor *t) { return leaf_on(t, HY_CUDA); }
hy_tensor *t_to_cpu(const hy_tensor *t) { return leaf_on(t, HY_CPU); }

void t_poison(void) {
  hy_arena_mark mark = hy_arena_get_mark();
  if (hy_cuda_available()) hy_arena_alloc_on(HY_CUDA, (size_t)256 << 20);
  hy_arena_rewind(mark);
  hy_arena_poison_free();
}

void t_expect_gpu_close(const hy_tensor *gpu, const hy_tensor *cpu, double tol, const char *what) {
  cr_assert(gpu != NULL && cpu != NULL, "%s: missing tensor", what);
  cr_assert(hy_same_shape(gpu, cpu), "%s: shape %s, expected %s", what, hy_describe(gpu),
            hy_describe(cpu));
  hy_tensor *g = t_to_cpu(gpu);
  for (int64_t i = 0; i < hy_numel(g); i++) {
    double v = hy_get(g, i);
    cr_assert(isfinite(v), "%s: element %lld is %g (unwritten or overflowed)", what, (long long)i,
              v);
  }
  double err = t_rel_norm_err(g, cpu);
  cr_assert(err <= tol, "%s: relative norm error %.3g > %.3g", what, err, tol);
}

static void matches(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs, double tol,
                    const char *what, bool f64) {
  hy_tensor *gpu_inputs[16];
  cr_assert(n <= 16, "%s: too many inputs", what);
  for (int i = 0; i < n; i++) {
    /* inputs used by an earlier comparison start again without a gradient */
    if (cpu_inputs[i] && !cpu_inputs[i]->persistent) cpu_inputs[i]->grad = NULL;
    gpu_inputs[i] = cpu_inputs[i] ? t_to_gpu(cpu_inputs[i]) : NULL;
    if (f64 && cpu_inputs[i] && cpu_inputs[i]->dtype == HY_F32) {
      bool grad = cpu_inputs[i]->requires_grad;
      cpu_inputs[i] = t_cast(cpu_inputs[i], HY_F64);
      cpu_inputs[i]->requires_grad = grad;
    }
  }
  t_poison();
  hy_tensor *ref = op(cpu_inputs, ctx);
  t_poison();
  hy_tensor *out = op(gpu_inputs, ctx);
  char name[160];
  snprintf(name, sizeof name, "%s: forward", what);
  t_expect_gpu_close(out, ref, tol, name);
  if (!ref->requires_grad) return;
  hy_tensor *gy = t_randn(HY_F32, hy_shape_of(ref), 977);
  hy_backward_with(out, t_to_gpu(gy));
  hy_backward_with(ref, f64 ? t_cast(gy, HY_F64) : gy);
  for (int i = 0; i < n; i++) {
    if (!cpu_inputs[i] || !cpu_inputs[i]->requires_grad) continue;
    snprintf(name, sizeof name, "%s: gradient of input %d", what, i);
    if (!cpu_inputs[i]->grad && !gpu_inputs[i]->grad) continue; /* the output ignores it */
    t_expect_gpu_close(gpu_inputs[i]->grad, cpu_inputs[i]->grad, tol, name);
  }
}

void t_expect_gpu_matches_cpu(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs, double tol,
                              const char *what) {
  matches(op, ctx, n, cpu_inputs, tol, what, false);
}

void t_expect_gpu_matches_f64(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs, double tol,
                              const char *what) {
  matches(op, ctx, n, cpu_inputs, tol, what, true);
}

const t_binary_fn T_BINARY[4] = {hy_add, hy_sub, hy_mul, hy_div};
const char *const T_BINARY_NAME[4] = {"add", "sub", "mul", "div"};

hy_tensor *t_binary(hy_tensor **in, void *ctx) { return (*(t_binary_fn *)ctx)(in[0], in[1]); }

hy_tensor *t_reduce(hy_tensor **in, void *ctx) {
  const t_reduce_case *c = ctx;
  return c->fn(in[0], c->axis, c->keepdim);
}

hy_tensor *t_square(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_mul(in[0], in[0]);
}

hy_tensor *t_sum_all(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_sum_all(in[0]);
}

hy_tensor *t_softmax(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_softmax(in[0]);
}

hy_tensor *t_logsumexp(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_logsumexp(in[0]);
}

hy_tensor *t_matmul(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(in[0], in[1]);
}

hy_tensor *t_matmul_transposed(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(hy_transpose(in[0], -1, -2), hy_transpose(in[1], -1, -2));
}

hy_tensor *t_gla(hy_tensor **in, void *ctx) {
  return hy_gla(in[0], in[1], in[2], in[3], ((t_gla_ctx *)ctx)->chunk);
}

hy_tensor *t_linear_attention(hy_tensor **in, void *ctx) {
  t_gla_ctx *c = ctx;
  return hy_linear_attention(in[0], in[1], in[2], c->log_decay, c->chunk);
}

hy_tensor *t_attention(hy_tensor **in, void *ctx) {
  t_attn_ctx *c = ctx;
  return hy_attention_offset(in[0], in[1], in[2], c->scale, c->window, c->q_offset);
}

hy_tensor *t_attention_of_projection(hy_tensor **in, void *ctx) {
  t_attn_ctx *c = ctx;
  hy_tensor *q, *k, *v;
  t_qkv_views(in[0], c->H, c->D, &q, &k, &v);
  return hy_attention_window(q, k, v, c->scale, c->window);
}

void t_expect_attention_of_projection(int64_t T, int64_t H, int64_t D, int64_t window,
                                      uint64_t seed, double tol, const char *what) {
  t_attn_ctx c = {1 / sqrt((double)D), window, 0, H, D};
  hy_tensor *qkv = t_param(t_randn(HY_F32, HY_SHAPE(2, T, 3 * H * D), seed));
  char name[160];
  snprintf(name, sizeof name, "%s: T %lld H %lld D %lld window %lld", what, (long long)T,
           (long long)H, (long long)D, (long long)window);
  t_expect_gpu_matches_cpu(t_attention_of_projection, &c, 1, &qkv, tol, name);
}

/* A CPU leaf holding x's values rounded to bf16, in f64 (the reference's input), and its bf16
 * twin on the GPU. */
static void bf16_pair(const hy_tensor *x, hy_tensor **cpu_f64, hy_tensor **gpu_bf16) {
  hy_set_device(HY_CPU);
  hy_tensor *rounded = t_cast(x, HY_BF16);
  *cpu_f64 = t_cast(rounded, HY_F64);
  (*cpu_f64)->requires_grad = x->requires_grad;
  *gpu_bf16 = t_to_gpu(rounded);
  (*gpu_bf16)->requires_grad = x->requires_grad;
}

void t_expect_bf16_matches_f64(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs,
                               unsigned bf16_mask, hy_dtype out_dtype, double tol,
                               const char *what) {
  hy_tensor *gpu_inputs[16], *ref_inputs[16];
  cr_assert(n <= 16, "%s: too many inputs", what);
  for (int i = 0; i < n; i++) {
    hy_tensor *x = cpu_inputs[i];
    if (!x) {
      gpu_inputs[i] = ref_inputs[i] = NULL;
    } else if (bf16_mask >> i & 1u) {
      bf16_pair(x, &ref_inputs[i], &gpu_inputs[i]);
    } else {
      gpu_inputs[i] = t_to_gpu(x);
      ref_inputs[i] = x->dtype == HY_F32 ? t_cast(x, HY_F64) : x;
      ref_inputs[i]->requires_grad = x->requires_grad;
    }
  }
  t_poison();
  hy_tensor *ref = op(ref_inputs, ctx);
  t_poison();
  hy_tensor *out = op(gpu_inputs, ctx);
  cr_assert(out->dtype == out_dtype, "%s: output %s, expected %s", what, hy_describe(out),
            hy_dtype_name(out_dtype));
  char name[160];
  snprintf(name, sizeof name, "%s: forward", what);
  t_expect_gpu_close(out, ref, tol, name);
  if (!ref->requires_grad) return;
  hy_tensor *gy = t_cast(t_cast(t_randn(HY_F32, hy_shape_of(ref), 977), HY_BF16), HY_F64);
  hy_backward_with(out, t_to_gpu(t_cast(gy, out->dtype)));
  hy_backward_with(ref, gy);
  for (int i = 0; i < n; i++) {
    if (!ref_inputs[i] || !ref_inputs[i]->requires_grad) continue;
    snprintf(name, sizeof name, "%s: gradient of input %d", what, i);
    if (!ref_inputs[i]->grad && !gpu_inputs[i]->grad) continue; /* the output ignores it */
    cr_assert(gpu_inputs[i]->grad && gpu_inputs[i]->grad->dtype == gpu_inputs[i]->dtype,
              "%s: missing, or not of the input's dtype", name);
    t_expect_gpu_close(gpu_inputs[i]->grad, ref_inputs[i]->grad, tol, name);
  }
}
