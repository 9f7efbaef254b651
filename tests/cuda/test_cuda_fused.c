/* The fused memory-bound kernels of a block on the GPU, in bf16 storage and in f32: RMSNorm,
 * add_rmsnorm (the residual add and the norm after it) in every mix of dtypes and outputs used,
 * RoPE and SwiGLU on packed tensors and on strided views of one projection. bf16 runs against the
 * CPU in f64 on the same bf16-rounded values, so that only the kernel's own rounding counts: one
 * bf16 store rounds each value by at most 2^-8 of it, about 1.7e-3 relative norm error for random
 * data, so BF16_TOL = 3e-3 for one store. f32 runs against the CPU in f64 within 1e-5. Row lengths
 * cover every walk of the kernels: a warp a row (d <= 128), a block a row in 16-byte steps (d a
 * multiple of 8, aligned) or one element a step (d = 129), and rows too long for the weight
 * gradient's sums in shared memory. Last, a 2-layer model's loss in mixed precision against its f32
 * loss. */
#include "layers/model.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5;
static const double BF16_TOL = 3e-3;
/* Test ops that chain bf16 stores (a norm feeding a SwiGLU, a gradient added to in bf16): each
 * store rounds again, where the reference rounds none of the intermediate values. */
static const double BF16_CHAIN_TOL = 1e-2;

static void init(void) { t_seed = 7001; } /* the inputs its tolerances were measured on */
TestSuite(cuda_fused, .init = init);

/* The row lengths every test walks: the model's width, a per-head norm, an odd length, wide. */
static const int64_t WIDTHS[] = {768, 64, 129, 4096};

/* ---- strided bf16 views ---- */

/* Views of one projection: (in, ctx) -> the op's inputs. */
typedef void (*t_views)(hy_tensor *proj, void *ctx, hy_tensor **views);

/* op on bf16 views of a projection (proj, f32, rounded to bf16) against op on the same views of
 * its f64 copy. The views are made leaves that require gradients themselves, so that each gets
 * its own packed gradient: what the kernels write, without a view's backward in between. */
static void expect_views_bf16(t_gpu_op op, void *ctx, hy_tensor *proj, t_views views, int n,
                              hy_dtype out_dtype, double tol, const char *what) {
  hy_tensor *rounded = t_cast(proj, HY_BF16);
  hy_tensor *ref_proj = t_cast(rounded, HY_F64), *gpu_proj = t_to_gpu(rounded);
  hy_tensor *ref_in[4], *gpu_in[4];
  views(ref_proj, ctx, ref_in);
  views(gpu_proj, ctx, gpu_in);
  for (int i = 0; i < n; i++) ref_in[i]->requires_grad = gpu_in[i]->requires_grad = true;
  t_poison();
  hy_tensor *ref = op(ref_in, ctx);
  t_poison();
  hy_tensor *out = op(gpu_in, ctx);
  cr_assert(out->dtype == out_dtype, "%s: output %s", what, hy_describe(out));
  char name[200];
  snprintf(name, sizeof name, "%s: forward", what);
  t_expect_gpu_close(out, ref, tol, name);
  hy_tensor *gy = t_cast(t_cast(t_randn_next(HY_F32, hy_shape_of(ref)), HY_BF16), HY_F64);
  hy_backward_with(out, t_to_gpu(t_cast(gy, out->dtype)));
  hy_backward_with(ref, gy);
  for (int i = 0; i < n; i++) {
    if (!ref_in[i]->grad) continue; /* a view the op does not read */
    snprintf(name, sizeof name, "%s: gradient of view %d", what, i);
    cr_assert(gpu_in[i]->grad && gpu_in[i]->grad->dtype == HY_BF16, "%s: missing or not bf16",
              name);
    t_expect_gpu_close(gpu_in[i]->grad, ref_in[i]->grad, tol, name);
  }
}

/* ---- rmsnorm ---- */

static hy_tensor *rmsnorm(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_rmsnorm(in[0], in[1], 1e-6);
}

/* x twice: the second norm's backward adds into the gradient the first one wrote. */
static hy_tensor *rmsnorm_twice(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_swiglu(hy_rmsnorm(in[0], in[1], 1e-6), hy_rmsnorm(in[0], NULL, 1e-6));
}

Test(cuda_fused, rmsnorm_bf16) {
  T_NEED_GPU();
  for (int k = 0; k < 4; k++) {
    int64_t d = WIDTHS[k];
    char what[96];
    hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(3, 37, d))),
                        t_param(t_gain(HY_F32, d))};
    snprintf(what, sizeof what, "rmsnorm bf16 d = %lld", (long long)d);
    t_expect_bf16_matches_f64(rmsnorm, NULL, 2, in, 1u, HY_BF16, BF16_TOL, what);
    hy_tensor *no_w[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(37, d))), NULL};
    snprintf(what, sizeof what, "rmsnorm bf16 d = %lld, no weight", (long long)d);
    t_expect_bf16_matches_f64(rmsnorm, NULL, 2, no_w, 1u, HY_BF16, BF16_TOL, what);
    hy_tensor *w_only[2] = {t_randn_next(HY_F32, HY_SHAPE(5, 7, d)), t_param(t_gain(HY_F32, d))};
    snprintf(what, sizeof what, "rmsnorm bf16 d = %lld, weight gradient only", (long long)d);
    t_expect_bf16_matches_f64(rmsnorm, NULL, 2, w_only, 1u, HY_BF16, BF16_TOL, what);
    hy_tensor *twice[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(2, 19, d))),
                           t_param(t_gain(HY_F32, d))};
    snprintf(what, sizeof what, "rmsnorm bf16 d = %lld, x used twice", (long long)d);
    t_expect_bf16_matches_f64(rmsnorm_twice, NULL, 2, twice, 1u, HY_BF16, BF16_CHAIN_TOL, what);
  }
  /* Many rows: many chunks of rows for the weight gradient, the last one short. */
  const hy_shape many[] = {HY_SHAPE(5001, 64), HY_SHAPE(2049, 768), HY_SHAPE(3001, 129)};
  for (int i = 0; i < 3; i++) {
    hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, many[i])),
                        t_param(t_gain(HY_F32, many[i].d[1]))};
    t_expect_bf16_matches_f64(rmsnorm, NULL, 2, in, 1u, HY_BF16, BF16_TOL,
                              "rmsnorm bf16, many rows");
  }
}

/* The new walks in f32, against f64: 16-byte steps, and rows whose weight-gradient sums do not
 * fit in shared memory (in 16-byte steps and one element a step). */
Test(cuda_fused, rmsnorm_f32_walks) {
  T_NEED_GPU();
  const hy_shape shapes[] = {HY_SHAPE(3, 37, 768), HY_SHAPE(2, 9, 4096), HY_SHAPE(5, 16384),
                             HY_SHAPE(7, 12289), HY_SHAPE(1001, 96)};
  for (int i = 0; i < 5; i++) {
    int64_t d = shapes[i].d[shapes[i].ndim - 1];
    char what[96];
    snprintf(what, sizeof what, "rmsnorm f32 d = %lld", (long long)d);
    hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, shapes[i])), t_param(t_gain(HY_F32, d))};
    t_expect_gpu_matches_f64(rmsnorm, NULL, 2, in, TOL, what);
    hy_tensor *twice[2] = {t_param(t_randn_next(HY_F32, shapes[i])), t_param(t_gain(HY_F32, d))};
    snprintf(what, sizeof what, "rmsnorm f32 d = %lld, x used twice", (long long)d);
    t_expect_gpu_matches_f64(rmsnorm_twice, NULL, 2, twice, TOL, what);
  }
  hy_tensor *wide[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(4, 16384))),
                        t_param(t_gain(HY_F32, 16384))};
  t_expect_bf16_matches_f64(rmsnorm, NULL, 2, wide, 1u, HY_BF16, BF16_TOL,
                            "rmsnorm bf16 d = 16384");
}

/* ---- add_rmsnorm ---- */

enum { USE_BOTH, USE_NORM, USE_SUM };

typedef struct {
  hy_dtype h_dtype; /* on the GPU; the reference keeps x's */
  int use;
  bool no_y;
} add_ctx;

static hy_tensor *add_rmsnorm(hy_tensor **in, void *ctx) {
  const add_ctx *c = ctx;
  hy_tensor *x = in[0], *s;
  hy_dtype dt = x->device == HY_CUDA ? c->h_dtype : x->dtype;
  hy_tensor *h = hy_add_rmsnorm(x, c->no_y ? NULL : in[1], in[2], 1e-6, dt, &s);
  if (c->use == USE_NORM) return h;
  if (c->use == USE_SUM) return s;
  return hy_add(hy_cast(h, s->dtype), s);
}

static const char *const USES[] = {"both outputs", "the norm", "the sum"};

static void expect_add_rmsnorm(hy_shape shape, bool y_bf16, bool no_y, hy_dtype h_dtype, int use,
                               bool x_grad) {
  int64_t d = shape.d[shape.ndim - 1];
  add_ctx c = {h_dtype, use, no_y};
  hy_tensor *x = t_randn_next(HY_F32, shape),
            *in[3] = {x_grad ? t_param(x) : x, t_param(t_randn_next(HY_F32, shape)),
                      t_param(t_gain(HY_F32, d))};
  char what[160];
  snprintf(what, sizeof what, "add_rmsnorm d = %lld, y %s, h %s, using %s%s", (long long)d,
           no_y     ? "none"
           : y_bf16 ? "bf16"
                    : "f32",
           hy_dtype_name(h_dtype), USES[use], x_grad ? "" : ", x without gradient");
  if (!y_bf16 && h_dtype == HY_F32) {
    t_expect_gpu_matches_f64(add_rmsnorm, &c, 3, in, TOL, what);
    return;
  }
  hy_dtype out = use == USE_NORM ? h_dtype : HY_F32;
  t_expect_bf16_matches_f64(add_rmsnorm, &c, 3, in, y_bf16 ? 2u : 0u, out, BF16_TOL, what);
}

Test(cuda_fused, add_rmsnorm_every_mix) {
  T_NEED_GPU();
  for (int k = 0; k < 4; k++) {
    hy_shape s = HY_SHAPE(3, 37, WIDTHS[k]);
    for (int use = USE_BOTH; use <= USE_SUM; use++)
      for (int yb = 0; yb < 2; yb++)
        for (int hb = 0; hb < 2; hb++)
          expect_add_rmsnorm(s, yb, false, hb ? HY_BF16 : HY_F32, use, true);
    /* Without y the sum is x itself: only the norm is the op's own output. */
    expect_add_rmsnorm(s, false, true, HY_BF16, USE_NORM, true);
    expect_add_rmsnorm(s, false, true, HY_F32, USE_NORM, true);
    expect_add_rmsnorm(s, true, false, HY_BF16, USE_BOTH, false);
  }
  expect_add_rmsnorm(HY_SHAPE(4099, 64), true, false, HY_BF16, USE_BOTH, true);
  expect_add_rmsnorm(HY_SHAPE(2051, 768), true, false, HY_BF16, USE_BOTH, true);
  expect_add_rmsnorm(HY_SHAPE(3, 16384), true, false, HY_BF16, USE_BOTH, true);
  expect_add_rmsnorm(HY_SHAPE(3, 16384), false, false, HY_F32, USE_BOTH, true);
}

/* y = x: one gradient buffer written by x's part and then added to by y's. */
static hy_tensor *add_rmsnorm_self(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *s, *h = hy_add_rmsnorm(in[0], in[0], in[1], 1e-6, in[0]->dtype, &s);
  return hy_add(h, s);
}

Test(cuda_fused, add_rmsnorm_of_x_and_x) {
  T_NEED_GPU();
  for (int k = 0; k < 4; k++) {
    hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(2, 19, WIDTHS[k]))),
                        t_param(t_gain(HY_F32, WIDTHS[k]))};
    t_expect_gpu_matches_f64(add_rmsnorm_self, NULL, 2, in, TOL, "add_rmsnorm(x, x)");
  }
}

/* ---- rope ---- */

typedef struct {
  int64_t offset, H, D;
} rope_ctx;

static hy_tensor *rope(hy_tensor **in, void *ctx) {
  return hy_rope(in[0], ((rope_ctx *)ctx)->offset, 10000.0);
}

/* q and k of one [B, T, 3 H D] projection. */
static void qk_views(hy_tensor *proj, void *ctx, hy_tensor **views) {
  const rope_ctx *c = ctx;
  hy_tensor *parts[3];
  hy_tensor *heads = hy_reshape(proj, HY_SHAPE(proj->shape[0], proj->shape[1], 3 * c->H, c->D));
  hy_split(heads, 2, 3, (int64_t[]){c->H, c->H, c->H}, parts);
  views[0] = parts[0], views[1] = parts[1];
}

static hy_tensor *rope_q(hy_tensor **in, void *ctx) { return rope(in, ctx); }
static hy_tensor *rope_k(hy_tensor **in, void *ctx) { return rope(in + 1, ctx); }

/* The f32 form: the views made inside, their gradients through the projection. */
static hy_tensor *rope_qk_f32(hy_tensor **in, void *ctx) {
  hy_tensor *v[2];
  qk_views(in[0], ctx, v);
  return hy_add(rope(v, ctx), rope(v + 1, ctx));
}

Test(cuda_fused, rope_bf16_packed_and_strided) {
  T_NEED_GPU();
  const int64_t dims[] = {64, 128, 6}, offsets[] = {0, 17};
  for (int o = 0; o < 2; o++)
    for (int k = 0; k < 3; k++) {
      rope_ctx c = {offsets[o], 3, dims[k]};
      char what[128];
      hy_tensor *x = t_param(t_randn_next(HY_F32, HY_SHAPE(2, 13, 3, dims[k])));
      snprintf(what, sizeof what, "rope bf16 D = %lld, offset %lld", (long long)dims[k],
               (long long)offsets[o]);
      t_expect_bf16_matches_f64(rope, &c, 1, &x, 1u, HY_BF16, BF16_TOL, what);
      hy_tensor *proj = t_randn_next(HY_F32, HY_SHAPE(2, 13, 3 * 3 * dims[k]));
      snprintf(what, sizeof what, "rope bf16 of q, D = %lld, offset %lld", (long long)dims[k],
               (long long)offsets[o]);
      expect_views_bf16(rope_q, &c, proj, qk_views, 1, HY_BF16, BF16_TOL, what);
      snprintf(what, sizeof what, "rope bf16 of k, D = %lld, offset %lld", (long long)dims[k],
               (long long)offsets[o]);
      expect_views_bf16(rope_k, &c, proj, qk_views, 2, HY_BF16, BF16_TOL, what);
      hy_tensor *p32 = t_param(t_randn_next(HY_F32, HY_SHAPE(2, 13, 3 * 3 * dims[k])));
      snprintf(what, sizeof what, "rope f32 of q and k, D = %lld, offset %lld", (long long)dims[k],
               (long long)offsets[o]);
      t_expect_gpu_matches_f64(rope_qk_f32, &c, 1, &p32, TOL, what);
    }
  rope_ctx c = {5, 2, 64}; /* long sequences: angles up to ~1000 radians */
  hy_tensor *x = t_param(t_randn_next(HY_F32, HY_SHAPE(1, 1000, 2, 64)));
  t_expect_bf16_matches_f64(rope, &c, 1, &x, 1u, HY_BF16, BF16_TOL, "rope bf16, 1000 positions");
}

/* ---- swiglu ---- */

static hy_tensor *swiglu(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_swiglu(in[0], in[1]);
}

static hy_tensor *swiglu_self(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_swiglu(in[0], in[0]);
}

/* The gate and up halves of one [.., 2 h] projection. */
static void halves(hy_tensor *proj, void *ctx, hy_tensor **views) {
  (void)ctx;
  int64_t h = proj->shape[proj->ndim - 1] / 2;
  views[0] = hy_slice(proj, -1, 0, h), views[1] = hy_slice(proj, -1, h, 2 * h);
}

static hy_tensor *swiglu_halves_f32(hy_tensor **in, void *ctx) {
  hy_tensor *v[2];
  halves(in[0], ctx, v);
  return hy_swiglu(v[0], v[1]);
}

Test(cuda_fused, swiglu_packed_and_strided) {
  T_NEED_GPU();
  /* 2048: 16-byte steps; 37: one element a step; 36: halves 72 bytes apart, not 16-aligned */
  const int64_t widths[] = {2048, 37, 36, 64};
  for (int k = 0; k < 4; k++) {
    int64_t h = widths[k];
    char what[96];
    hy_tensor *in[2] = {t_param(hy_scale(t_randn_next(HY_F32, HY_SHAPE(3, 41, h)), 3.0)),
                        t_param(t_randn_next(HY_F32, HY_SHAPE(3, 41, h)))};
    snprintf(what, sizeof what, "swiglu bf16 h = %lld", (long long)h);
    t_expect_bf16_matches_f64(swiglu, NULL, 2, in, 3u, HY_BF16, BF16_TOL, what);
    snprintf(what, sizeof what, "swiglu f32 h = %lld", (long long)h);
    t_expect_gpu_matches_f64(swiglu, NULL, 2, in, TOL, what);
    hy_tensor *self = t_param(t_randn_next(HY_F32, HY_SHAPE(5, h)));
    snprintf(what, sizeof what, "swiglu bf16 of g and g, h = %lld", (long long)h);
    t_expect_bf16_matches_f64(swiglu_self, NULL, 1, &self, 1u, HY_BF16, BF16_CHAIN_TOL, what);
    hy_tensor *proj = hy_scale(t_randn_next(HY_F32, HY_SHAPE(3, 41, 2 * h)), 2.0);
    snprintf(what, sizeof what, "swiglu bf16 of one projection's halves, h = %lld", (long long)h);
    expect_views_bf16(swiglu, NULL, proj, halves, 2, HY_BF16, BF16_TOL, what);
    hy_tensor *p32 = t_param(hy_scale(t_randn_next(HY_F32, HY_SHAPE(3, 41, 2 * h)), 2.0));
    snprintf(what, sizeof what, "swiglu f32 of one projection's halves, h = %lld", (long long)h);
    t_expect_gpu_matches_f64(swiglu_halves_f32, NULL, 1, &p32, TOL, what);
  }
}

/* ---- a model in mixed precision ---- */

/* A 2-layer softmax-attention model (head size 64) on the GPU: its loss with bf16 activations
 * within 1e-2 of its f32 loss, and a backward pass that gives every parameter a finite gradient
 * near the f32 one. */
Test(cuda_fused, model_loss_bf16_near_f32) {
  T_NEED_GPU();
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 256;
  cfg.d_model = 128;
  cfg.n_heads = 2;
  cfg.n_layers = 2;
  cfg.tied_embeddings = false;
  hy_model *m = hy_model_new(&cfg, 11);
  hy_params_to(&m->params, HY_CUDA);
  enum { B = 4, T = 64 };
  hy_tensor *ids = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T + 1));
  hy_rng rng = hy_rng_new(12);
  for (int64_t i = 0; i < B * (T + 1); i++)
    ((int32_t *)ids->data)[i] = (int32_t)(hy_rng_u64(&rng) % 256);
  hy_tensor *tok = hy_to(hy_contiguous(hy_slice(ids, 1, 0, T)), HY_CUDA);
  hy_tensor *tgt = hy_to(hy_contiguous(hy_slice(ids, 1, 1, T + 1)), HY_CUDA);
  double loss[2];
  hy_tensor *grads[2][64];
  cr_assert(m->params.n <= 64);
  for (int p = 0; p < 2; p++) {
    hy_set_precision(p ? HY_PRECISION_BF16 : HY_PRECISION_F32);
    hy_params_zero_grad(&m->params);
    hy_tensor *l = hy_model_loss(m, tok, tgt, -1);
    loss[p] = hy_item(l);
    hy_backward(l);
    for (int i = 0; i < m->params.n; i++) grads[p][i] = t_to_cpu(m->params.items[i].t->grad);
  }
  hy_set_precision(HY_PRECISION_F32);
  double rel = fabs(loss[1] - loss[0]) / loss[0];
  cr_log_info("2-layer model: loss f32 %.6f, bf16 %.6f, relative difference %.3g", loss[0], loss[1],
              rel);
  cr_assert(isfinite(loss[1]) && rel <= 1e-2, "bf16 loss %.6f, f32 %.6f", loss[1], loss[0]);
  /* Each gradient passes through the bf16 activations and activation gradients of both blocks,
   * several roundings of up to 2^-8 deep, and some are sums that cancel: a sanity bound that a
   * wrong kernel (an O(1) error) cannot meet, not a precision claim. */
  double worst = 0;
  for (int i = 0; i < m->params.n; i++) {
    char what[160];
    snprintf(what, sizeof what, "gradient of %s in bf16 against f32", m->params.items[i].name);
    t_expect_gpu_close(grads[1][i], grads[0][i], 1e-1, what);
    double e = t_rel_norm_err(grads[1][i], grads[0][i]);
    worst = e > worst ? e : worst;
  }
  cr_log_info("2-layer model: largest relative gradient difference bf16 against f32 %.3g", worst);
  hy_model_free(m);
}
