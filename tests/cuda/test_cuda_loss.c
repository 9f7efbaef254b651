/* The language model's loss on the GPU: hy_cross_entropy on bf16 logits against the CPU in f64
 * and on f32 logits against the CPU in f32; the fused hy_dense_cross_entropy in mixed precision
 * (bf16 h, an f32 weight parameter read through its bf16 copy) against f64 and in f32 against the
 * CPU; the loss's gradient read on the device (0.5 halves every gradient to the bit, 3 triples
 * them); the forward and backward captured in a CUDA graph (a copy to the host or a wait would
 * break the capture) and replayed; a target outside the vocabulary makes the loss NaN on the GPU
 * and stops hy_model_loss on the host; the model's loss on the GPU against the CPU. */
#include "layers/model.h"
#include "tests/gpu.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { IGNORE = -100 };
static const double TOL = 1e-5; /* f32 against the CPU's f32, relative norm error */
/* bf16 against f64 on the same bf16-rounded inputs. The plain cross entropy rounds once, when it
 * stores the logits' gradient in bf16: 2^-9 of each element at most, about 1e-3 in norm. */
static const double BF16_STORE_TOL = 4e-3;
/* The fused op rounds the logits to bf16 before the softmax (2^-9 of each logit: for logits of
 * size 3, p moves by up to 0.6%), reads the weight's bf16 copy, and stores the logits' gradient
 * in bf16 before its two GEMMs: about 3e-3 in norm, held to 1e-2. Its loss, a mean of row
 * losses whose errors have either sign, is held to 2e-3. */
static const double FUSED_GRAD_TOL = 1e-2, FUSED_LOSS_TOL = 2e-3;

static void init(void) { t_seed = 4242; } /* the inputs its tolerances were measured on */
TestSuite(cuda_loss, .init = init);

/* A persistent f32 parameter on the GPU holding cpu's values (the mixed-precision weight). */
static hy_tensor *gpu_param(const hy_tensor *cpu) {
  hy_tensor *p = hy_empty_persistent_on(HY_CUDA, HY_F32, hy_shape_of(cpu));
  hy_copy_into(p, cpu);
  p->requires_grad = true;
  return p;
}

/* ---- hy_cross_entropy ---- */

static hy_tensor *cross_entropy(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_cross_entropy(in[0], in[1], IGNORE);
}

/* Two losses on the same logits: the second's backward writes their gradient, the first's adds
 * into it. */
static hy_tensor *two_cross_entropies(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_add(hy_cross_entropy(in[0], in[1], IGNORE), hy_cross_entropy(in[0], in[2], IGNORE));
}

/* Vocabularies that put rows at every offset from a 16-byte boundary (odd V), long rows, and
 * logits large enough that e^(x - max) underflows. */
static const struct {
  hy_shape logits;
  double scale; /* logits uniform in [-scale, scale] */
} CE_CASES[] = {
    {HY_SHAPE(3, 37, 7), 4.0},   {HY_SHAPE(111, 256), 8.0}, {HY_SHAPE(2, 19, 32000), 10.0},
    {HY_SHAPE(13, 1001), 6.0},   {HY_SHAPE(64, 256), 50.0}, {HY_SHAPE(5, 9), 3.0},
    {HY_SHAPE(2, 3, 4099), 5.0},
};

static hy_shape leading(hy_shape s) {
  s.ndim--;
  return s;
}

/* The loss itself is computed in f32 from the bf16 values (log-sum-exp in f32, the row losses
 * summed in double): within 1e-5 of f64 on the same values. */
static void expect_bf16_loss_value(hy_tensor *logits, hy_tensor *targets, const char *what) {
  hy_tensor *rounded = t_cast(logits, HY_BF16);
  double got = hy_item(hy_cross_entropy(t_to_gpu(rounded), t_to_gpu(targets), IGNORE));
  double want = hy_item(hy_cross_entropy(t_cast(rounded, HY_F64), targets, IGNORE));
  double err = fabs(got - want) / fmax(fabs(want), 1e-300);
  cr_assert(err <= TOL, "%s: loss %.9g, f64 %.9g: relative error %.3g > %.3g", what, got, want, err,
            TOL);
}

Test(cuda_loss, cross_entropy_bf16_logits_against_f64) {
  T_NEED_GPU();
  for (size_t i = 0; i < sizeof CE_CASES / sizeof *CE_CASES; i++) {
    hy_shape ls = CE_CASES[i].logits;
    int64_t V = ls.d[ls.ndim - 1];
    double a = CE_CASES[i].scale;
    hy_tensor *in[3] = {t_param(t_uniform_next(HY_F32, ls, -a, a)),
                        t_random_ints(leading(ls), V, IGNORE, 0.25),
                        t_random_ints(leading(ls), V, IGNORE, 0.1)};
    char what[96];
    snprintf(what, sizeof what, "bf16 cross entropy V = %lld, scale %g", (long long)V, a);
    t_expect_bf16_matches_f64(cross_entropy, NULL, 2, in, 1u, HY_F32, BF16_STORE_TOL, what);
    expect_bf16_loss_value(in[0], in[1], what);
    snprintf(what, sizeof what, "bf16 cross entropy twice V = %lld", (long long)V);
    t_expect_bf16_matches_f64(two_cross_entropies, NULL, 3, in, 1u, HY_F32, BF16_STORE_TOL, what);
  }
}

Test(cuda_loss, cross_entropy_f32_against_cpu) {
  T_NEED_GPU();
  for (size_t i = 0; i < sizeof CE_CASES / sizeof *CE_CASES; i++) {
    hy_shape ls = CE_CASES[i].logits;
    int64_t V = ls.d[ls.ndim - 1];
    double a = CE_CASES[i].scale;
    hy_tensor *in[3] = {t_param(t_uniform_next(HY_F32, ls, -a, a)),
                        t_random_ints(leading(ls), V, IGNORE, 0.25),
                        t_random_ints(leading(ls), V, IGNORE, 0.0)};
    char what[96];
    snprintf(what, sizeof what, "f32 cross entropy V = %lld", (long long)V);
    t_expect_gpu_matches_cpu(cross_entropy, NULL, 2, in, TOL, what);
    snprintf(what, sizeof what, "f32 cross entropy twice V = %lld", (long long)V);
    t_expect_gpu_matches_cpu(two_cross_entropies, NULL, 3, in, TOL, what);
  }
}

/* ---- hy_dense_cross_entropy ---- */

typedef struct {
  int64_t chunk;
} dce_ctx;

static hy_tensor *dense_ce(hy_tensor **in, void *ctx) {
  hy_dense_cross_entropy_chunk(((dce_ctx *)ctx)->chunk);
  hy_tensor *loss = hy_dense_cross_entropy(in[0], in[1], in[2], IGNORE);
  hy_dense_cross_entropy_chunk(0);
  return loss;
}

static const struct {
  int64_t B, T, d, V, chunk;
} DCE_CASES[] = {
    {2, 37, 64, 1000, 0},   /* one chunk */
    {2, 37, 64, 1000, 16},  /* chunks of 16 rows, the last one 10 */
    {2, 19, 768, 32000, 0}, /* the LM head's size */
    {1, 45, 48, 1001, 7},   /* odd V: rows at every offset from a 16-byte boundary */
    {3, 5, 8, 3, 4},        /* a vocabulary smaller than one vector */
};

/* h [B, T, d] normal, W [V, d] normal / sqrt(d): logits of about unit size, times 2. */
static void dce_inputs(int i, hy_tensor **h, hy_tensor **w, hy_tensor **targets) {
  int64_t B = DCE_CASES[i].B, T = DCE_CASES[i].T, d = DCE_CASES[i].d, V = DCE_CASES[i].V;
  *h = t_randn_next(HY_F32, HY_SHAPE(B, T, d));
  *w = hy_scale(t_randn_next(HY_F32, HY_SHAPE(V, d)), 2 / sqrt((double)d));
  *targets = t_random_ints(HY_SHAPE(B, T), V, IGNORE, 0.2);
}

/* The mixed-precision fused loss (bf16 h, an f32 parameter W) on the GPU against the two-op path
 * in f64 on the same bf16-rounded h, with a loss gradient of 0.7. */
Test(cuda_loss, dense_cross_entropy_bf16_against_f64) {
  T_NEED_GPU();
  for (int i = 0; i < (int)(sizeof DCE_CASES / sizeof *DCE_CASES); i++) {
    hy_tensor *h, *w, *t;
    dce_inputs(i, &h, &w, &t);
    hy_tensor *hr = t_cast(h, HY_BF16);
    hy_tensor *h64 = t_param(t_cast(hr, HY_F64)), *w64 = t_param(t_cast(w, HY_F64));
    hy_tensor *ref = hy_cross_entropy(hy_dense(h64, w64, NULL), t, IGNORE);
    hy_backward_with(ref, hy_full(HY_F64, HY_SHAPE(1), 0.7));

    hy_tensor *hg = t_to_gpu(hr), *wg = gpu_param(w), *tg = t_to_gpu(t);
    hg->requires_grad = true;
    t_poison();
    dce_ctx c = {DCE_CASES[i].chunk};
    hy_tensor *loss = dense_ce((hy_tensor *[]){hg, wg, tg}, &c);
    hy_backward_with(loss, t_to_gpu(hy_full(HY_F32, HY_SHAPE(1), 0.7)));
    char what[160];
    snprintf(what, sizeof what, "fused bf16 B %lld T %lld d %lld V %lld chunk %lld",
             (long long)DCE_CASES[i].B, (long long)DCE_CASES[i].T, (long long)DCE_CASES[i].d,
             (long long)DCE_CASES[i].V, (long long)DCE_CASES[i].chunk);
    cr_assert(loss->dtype == HY_F32 && loss->device == HY_CUDA, "%s: loss %s", what,
              hy_describe(loss));
    cr_assert(hg->grad && hg->grad->dtype == HY_BF16, "%s: gradient of h not bf16", what);
    cr_assert(wg->grad && wg->grad->dtype == HY_F32, "%s: gradient of W not f32", what);
    char name[200];
    snprintf(name, sizeof name, "%s: loss", what);
    t_expect_gpu_close(loss, ref, FUSED_LOSS_TOL, name);
    snprintf(name, sizeof name, "%s: gradient of h", what);
    t_expect_gpu_close(hg->grad, h64->grad, FUSED_GRAD_TOL, name);
    snprintf(name, sizeof name, "%s: gradient of W", what);
    t_expect_gpu_close(wg->grad, w64->grad, FUSED_GRAD_TOL, name);
    hy_free(wg);
    hy_step_reset();
  }
}

/* In f32 on the GPU (exact f32 GEMMs) the fused op matches the CPU in f64 within 1e-5, forward and
 * backward (random loss gradient); 3e-5 at V = 32000, where each element of gh is a sum of 32000
 * products that cuBLAS accumulates one by one in f32 (rounding errors of about sqrt(V) 2^-24,
 * 1e-5, relative to the running sum). */
Test(cuda_loss, dense_cross_entropy_f32_against_cpu) {
  T_NEED_GPU();
  for (int i = 0; i < (int)(sizeof DCE_CASES / sizeof *DCE_CASES); i++) {
    hy_tensor *h, *w, *t;
    dce_inputs(i, &h, &w, &t);
    hy_tensor *in[3] = {t_param(h), t_param(w), t};
    dce_ctx c = {DCE_CASES[i].chunk};
    char what[96];
    snprintf(what, sizeof what, "fused f32 case %d", i);
    t_expect_gpu_matches_f64(dense_ce, &c, 3, in, DCE_CASES[i].V > 4096 ? 3e-5 : TOL, what);
  }
}

/* ---- the loss's gradient, read on the device ---- */

enum { PLAIN_BF16, PLAIN_F32, FUSED_BF16, FUSED_F32, N_KINDS };
static const char *const KIND_NAME[] = {"cross entropy bf16", "cross entropy f32",
                                        "fused bf16 (f32 parameter)", "fused f32"};

/* The gradients (on the host, in f64) of kind's inputs for a loss gradient of g: logits, or h
 * and W. */
static void gradients_for(int kind, double g, hy_tensor *x, hy_tensor *w, hy_tensor *t,
                          hy_tensor **out) {
  hy_tensor *tg = t_to_gpu(t), *loss, *xg, *wg = NULL;
  bool bf16 = kind == PLAIN_BF16 || kind == FUSED_BF16;
  xg = t_to_gpu(bf16 ? t_cast(x, HY_BF16) : x);
  xg->requires_grad = true;
  if (kind == PLAIN_BF16 || kind == PLAIN_F32) {
    loss = hy_cross_entropy(xg, tg, IGNORE);
  } else {
    wg = kind == FUSED_BF16 ? gpu_param(w) : t_to_gpu(w);
    wg->requires_grad = true;
    hy_dense_cross_entropy_chunk(8);
    loss = hy_dense_cross_entropy(xg, wg, tg, IGNORE);
    hy_dense_cross_entropy_chunk(0);
  }
  hy_backward_with(loss, t_to_gpu(hy_full(HY_F32, HY_SHAPE(1), g)));
  out[0] = t_cast(t_to_cpu(xg->grad), HY_F64);
  out[1] = wg ? t_cast(t_to_cpu(wg->grad), HY_F64) : NULL;
  if (wg && wg->persistent) hy_free(wg);
}

Test(cuda_loss, loss_gradient_scales_every_gradient) {
  T_NEED_GPU();
  for (int kind = 0; kind < N_KINDS; kind++) {
    bool fused = kind >= FUSED_BF16, bf16 = kind == PLAIN_BF16 || kind == FUSED_BF16;
    hy_tensor *x = fused ? t_randn_next(HY_F32, HY_SHAPE(21, 32))
                         : t_uniform_next(HY_F32, HY_SHAPE(21, 301), -4, 4);
    hy_tensor *w = hy_scale(t_randn_next(HY_F32, HY_SHAPE(301, 32)), 0.3);
    hy_tensor *t = t_random_ints(HY_SHAPE(21), 301, IGNORE, 0.2);
    hy_tensor *one[2], *half[2], *three[2];
    gradients_for(kind, 1.0, x, w, t, one);
    gradients_for(kind, 0.5, x, w, t, half);
    gradients_for(kind, 3.0, x, w, t, three);
    for (int k = 0; k < 2; k++) {
      if (!one[k]) continue;
      const char *which = k == 0 ? (fused ? "h" : "logits") : "W";
      bool stored_bf16 = bf16 && k == 0;
      /* 0.5 scales exactly, to the bit (bf16 and f32 alike). 3 x a stored bf16 value against the
       * value stored at 3 x: two roundings, 2^-8 of the largest, and the f32 products' own
       * rounding (measured on an H100: 4.7e-3; a wrong scale is off by O(1)). */
      double tol = stored_bf16 ? 3 * 0x1p-9 : 1e-6;
      for (int64_t i = 0; i < hy_numel(one[k]); i++) {
        double g1 = hy_get(one[k], i);
        cr_assert(hy_get(half[k], i) == 0.5 * g1,
                  "%s: gradient of %s [%lld]: %.9g at 0.5, %.9g at 1", KIND_NAME[kind], which,
                  (long long)i, hy_get(half[k], i), g1);
      }
      hy_tensor *want = hy_scale(one[k], 3.0);
      double err = t_max_rel_err(three[k], want);
      cr_assert(err <= tol, "%s: gradient of %s at 3: max relative error %.3g to 3x at 1 > %.3g",
                KIND_NAME[kind], which, err, tol);
      double largest = 0;
      for (int64_t i = 0; i < hy_numel(one[k]); i++)
        largest = fmax(largest, fabs(hy_get(one[k], i)));
      cr_assert(largest > 0, "%s: gradient of %s is zero", KIND_NAME[kind], which);
    }
  }
}

/* ---- no host copy, no wait: the step is captured in a CUDA graph ---- */

#ifdef HYLA_CUDA
/* Runs kind's forward and backward inside a stream capture of hyla's stream (global mode: any
 * synchronous copy or wait fails the capture, and the op that made it stops), replays the graph,
 * and returns its loss; the gradients it wrote are in *x and *w's gradients. */
static double captured_step(int kind, hy_tensor *x, hy_tensor *w, hy_tensor *tg) {
  cudaStream_t s = hy_cuda_stream();
  cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  hy_tensor *loss = kind == PLAIN_BF16 ? hy_cross_entropy(x, tg, IGNORE)
                                       : hy_dense_cross_entropy(x, w, tg, IGNORE);
  hy_backward(loss);
  cudaGraph_t graph = NULL;
  cudaError_t status = cudaStreamEndCapture(s, &graph);
  cr_assert_eq(status, cudaSuccess, "%s: the capture failed: %s", KIND_NAME[kind],
               cudaGetErrorString(status));
  cudaGraphExec_t exec = NULL;
  cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cr_assert_eq(cudaGraphLaunch(exec, s), cudaSuccess);
  cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return hy_item(loss);
}

/* A persistent copy of t (on the host), for use past a step reset. */
static hy_tensor *kept(const hy_tensor *t) {
  hy_tensor *k = hy_empty_persistent_on(HY_CPU, t->dtype, hy_shape_of(t));
  hy_copy_into(k, t);
  return k;
}
#endif

Test(cuda_loss, forward_and_backward_capture_in_a_cuda_graph) {
  T_NEED_GPU();
#ifdef HYLA_CUDA
  const int kinds[] = {PLAIN_BF16, FUSED_BF16};
  for (int k = 0; k < 2; k++) {
    int kind = kinds[k];
    bool fused = kind == FUSED_BF16;
    int64_t rows = 4 * 33, V = fused ? 5003 : 32000, d = 64;
    /* The host inputs outlive the step reset between the two runs: kept out of the arena, which
     * the reset hands to the next allocations. */
    hy_tensor *x = kept(fused ? t_randn_next(HY_F32, HY_SHAPE(rows, d))
                              : t_uniform_next(HY_F32, HY_SHAPE(rows, V), -8, 8));
    hy_tensor *w = hy_scale(t_randn_next(HY_F32, HY_SHAPE(V, d)), 0.25);
    hy_tensor *t = kept(t_random_ints(HY_SHAPE(rows), V, IGNORE, 0.1));
    hy_tensor *wg = fused ? gpu_param(w) : NULL;
    hy_dense_cross_entropy_chunk(fused ? 50 : 0);
    /* A step outside the capture: it sizes the arena, makes the GEMM plans and the gradients of
     * the parameter, which the captured step adds into. */
    hy_tensor *xg = t_to_gpu(t_cast(x, HY_BF16));
    xg->requires_grad = true;
    hy_tensor *tg = t_to_gpu(t);
    hy_tensor *loss =
        fused ? hy_dense_cross_entropy(xg, wg, tg, IGNORE) : hy_cross_entropy(xg, tg, IGNORE);
    hy_backward(loss);
    double want = hy_item(loss);
    /* the direct step's gradients, kept on the host past the reset */
    hy_tensor *gx = hy_empty_persistent_on(HY_CPU, xg->grad->dtype, hy_shape_of(xg->grad));
    hy_copy_into(gx, xg->grad);
    hy_tensor *gw = fused ? hy_empty_persistent_on(HY_CPU, HY_F32, hy_shape_of(wg)) : NULL;
    if (fused) hy_copy_into(gw, wg->grad);
    hy_step_reset();
    if (fused) hy_fill(wg->grad, 0.0);
    xg = t_to_gpu(t_cast(x, HY_BF16)); /* the host-to-device copies, before the capture */
    xg->requires_grad = true;
    tg = t_to_gpu(t);
    double got = captured_step(kind, xg, wg, tg);
    hy_dense_cross_entropy_chunk(0);
    cr_assert(fabs(got - want) <= 1e-6 * fabs(want), "%s: replayed loss %.9g, direct %.9g",
              KIND_NAME[kind], got, want);
    t_expect_gpu_close(xg->grad, gx, 1e-6, "replayed gradient of the input");
    hy_free(gx);
    if (fused) {
      t_expect_gpu_close(wg->grad, gw, 1e-6, "replayed gradient of W");
      hy_free(gw);
      hy_free(wg);
    }
    hy_free(x);
    hy_free(t);
    hy_step_reset();
  }
#endif
}

/* ---- bad targets ---- */

/* On the GPU the targets are not read back: one outside [0, V) makes the loss NaN (and no read
 * outside the row happens). */
Test(cuda_loss, bad_gpu_target_makes_the_loss_nan) {
  T_NEED_GPU();
  const int32_t ids[] = {2, 13, 0, IGNORE, 1 << 30, -7};
  const int bad_at[] = {1, 4, 5};
  for (int b = 0; b < 3; b++) {
    int bad = bad_at[b];
    int32_t one[6] = {2, 5, 0, IGNORE, 3, 1};
    one[bad] = ids[bad];
    hy_tensor *tg = t_to_gpu(t_ints(HY_SHAPE(6), one));
    hy_tensor *logits = t_to_gpu(t_cast(t_randn_next(HY_F32, HY_SHAPE(6, 13)), HY_BF16));
    cr_assert(isnan(hy_item(hy_cross_entropy(logits, tg, IGNORE))), "target %d: loss not NaN",
              one[bad]);
    hy_tensor *h = t_to_gpu(t_randn_next(HY_F32, HY_SHAPE(6, 8)));
    hy_tensor *w = t_to_gpu(t_randn_next(HY_F32, HY_SHAPE(13, 8)));
    cr_assert(isnan(hy_item(hy_dense_cross_entropy(h, w, tg, IGNORE))),
              "target %d: fused loss not NaN", one[bad]);
  }
}

static hy_model *gpu_model;
static hy_tensor *bad_tokens, *bad_targets;

static void model_loss_with_bad_target(void) {
  hy_model_loss(gpu_model, bad_tokens, bad_targets, IGNORE);
}

static hy_model_config small_model(bool tied) {
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 37;
  cfg.d_model = 16;
  cfg.n_heads = 2;
  cfg.n_layers = 2;
  cfg.tied_embeddings = tied;
  return cfg;
}

/* hy_model_loss checks host targets before it moves them to the GPU: a bad one stops it with
 * the position, before any GPU work (this runs in a forked child, where the GPU is not usable). */
Test(cuda_loss, model_loss_checks_targets_on_the_host) {
  T_NEED_GPU();
  hy_model_config cfg = small_model(false);
  gpu_model = hy_model_new(&cfg, 5);
  hy_params_to(&gpu_model->params, HY_CUDA);
  bad_tokens = t_random_ints(HY_SHAPE(2, 5), 37, IGNORE, 0.0);
  bad_targets = t_ints(HY_SHAPE(2, 5), (int32_t[]){1, 2, 3, 4, 5, 6, 7, 37, 8, IGNORE});
  t_expect_abort(model_loss_with_bad_target, 3,
                 (const char *[]){"target 37", "position 7", "[0, 37)"});
  hy_model_free(gpu_model);
}

/* ---- the model's loss on the GPU ---- */

/* An f32 model (tied and untied) on the GPU against the same model on the CPU: the loss within
 * 1e-5 and every parameter's gradient within 1e-4 (each went through a chain of some twenty ops,
 * each within about 1e-6 of the CPU), the head and loss fused on both. */
Test(cuda_loss, model_loss_against_cpu) {
  T_NEED_GPU();
  for (int tied = 0; tied < 2; tied++) {
    hy_model_config cfg = small_model(tied);
    hy_model *m[2] = {hy_model_new(&cfg, 9), hy_model_new(&cfg, 9)};
    hy_params_to(&m[1]->params, HY_CUDA);
    hy_tensor *x = t_random_ints(HY_SHAPE(3, 11), 37, IGNORE, 0.0);
    hy_tensor *y = t_random_ints(HY_SHAPE(3, 11), 37, IGNORE, 0.15);
    double loss[2];
    for (int k = 0; k < 2; k++) {
      hy_set_device(k ? HY_CUDA : HY_CPU);
      hy_tensor *l = hy_model_loss(m[k], x, y, IGNORE);
      loss[k] = hy_item(l);
      hy_backward(l);
      hy_set_device(HY_CPU);
    }
    cr_assert(fabs(loss[1] - loss[0]) <= TOL * fabs(loss[0]), "tied %d: loss %.9g, CPU %.9g", tied,
              loss[1], loss[0]);
    for (int i = 0; i < m[0]->params.n; i++) {
      char what[160];
      snprintf(what, sizeof what, "tied %d: gradient of %s", tied, m[0]->params.items[i].name);
      t_expect_gpu_close(m[1]->params.items[i].t->grad, m[0]->params.items[i].t->grad, 1e-4, what);
    }
    hy_model_free(m[0]);
    hy_model_free(m[1]);
    hy_step_reset();
  }
}
