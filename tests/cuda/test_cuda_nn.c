/* The network ops on the GPU against the CPU path: embedding (repeated indices), cross entropy
 * (ignored targets, vocabularies up to 32000), rmsnorm (with and without a weight) and rope
 * (position offsets), forward and backward, on fresh random inputs. */
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static void init(void) { t_seed = 9001; } /* the inputs its tolerances were measured on */
TestSuite(cuda_nn, .init = init);

/* ---- embedding ---- */

static hy_tensor *embedding(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_embedding(in[0], in[1]);
}

Test(cuda_nn, embedding_with_repeated_indices) {
  T_NEED_GPU();
  struct {
    int64_t V, d, used; /* indices drawn from [0, used): the fewer, the more repeats */
    hy_shape ids;
  } cases[] = {
      {11, 7, 5, HY_SHAPE(4, 9)},         /* rows 0-4 hit ~7 times each, rows 5-10 never */
      {1, 1, 1, HY_SHAPE(3)},             /* V = d = 1: one row hit three times */
      {50, 300, 10, HY_SHAPE(3, 41)},     /* d not a multiple of the block */
      {1000, 64, 1000, HY_SHAPE(8, 128)}, /* few repeats */
      {32, 1024, 4, HY_SHAPE(2, 2, 33)},  /* long rows, each hit ~33 times */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(cases[i].V, cases[i].d))),
                        t_random_ints(cases[i].ids, cases[i].used, 0, 0.0)};
    char what[96];
    snprintf(what, sizeof what, "embedding V = %lld, d = %lld", (long long)cases[i].V,
             (long long)cases[i].d);
    t_expect_gpu_matches_cpu(embedding, NULL, 2, in, TOL, what);
  }
  /* Fixed repeats, as the CPU suite. */
  const int32_t rep[] = {3, 3, 0, 10, 3, 0, 7, 7, 10, 1};
  hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, HY_SHAPE(11, 7))), t_ints(HY_SHAPE(2, 5), rep)};
  t_expect_gpu_matches_cpu(embedding, NULL, 2, in, TOL, "embedding, fixed repeats");
}

/* Indices outside [0, V) are not read back on the GPU: their rows come out NaN (the loss shows
 * it) instead of reading outside the weight, the other rows are right, and the backward leaves
 * the weight's gradient untouched by them. */
Test(cuda_nn, embedding_index_out_of_range_gives_nan_rows) {
  T_NEED_GPU();
  const int32_t ids[] = {2, 7, -1, 1 << 30, 0};
  hy_tensor *w = t_randn(HY_F32, HY_SHAPE(7, 5), 60);
  hy_tensor *wg = t_to_gpu(w);
  wg->requires_grad = true;
  hy_tensor *y = hy_embedding(wg, t_to_gpu(t_ints(HY_SHAPE(5), ids)));
  hy_backward_with(y, t_to_gpu(t_randn(HY_F32, HY_SHAPE(5, 5), 61)));
  hy_tensor *yc = t_to_cpu(y), *gc = t_to_cpu(wg->grad);
  for (int64_t j = 0; j < 5; j++) {
    cr_expect(hy_get(yc, 0 * 5 + j) == hy_get(w, 2 * 5 + j) &&
              hy_get(yc, 4 * 5 + j) == hy_get(w, j));
    cr_expect(isnan(hy_get(yc, 1 * 5 + j)) && isnan(hy_get(yc, 2 * 5 + j)) &&
                  isnan(hy_get(yc, 3 * 5 + j)),
              "column %lld: the rows of 7, -1 and 2^30 are not NaN", (long long)j);
  }
  for (int64_t i = 0; i < hy_numel(gc); i++) {
    int64_t row = i / 5;
    if (row != 2 && row != 0)
      cr_expect(hy_get(gc, i) == 0, "row %lld got a gradient", (long long)row);
  }
}

/* ---- cross entropy ---- */

enum { IGNORE = -100 };

static hy_tensor *cross_entropy(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_cross_entropy(in[0], in[1], IGNORE);
}

/* The GPU loss against the CPU's in f64 (the same f32 logits, exactly converted): 1e-6. */
static void expect_loss_value(hy_tensor *logits, hy_tensor *targets, const char *what) {
  hy_tensor *gpu = hy_cross_entropy(t_to_gpu(logits), t_to_gpu(targets), IGNORE);
  cr_assert_eq(gpu->device, HY_CUDA, "%s: loss on %s", what, hy_device_name(gpu->device));
  double got = hy_item(gpu),
         want = hy_item(hy_cross_entropy(t_cast(logits, HY_F64), targets, IGNORE));
  double err = fabs(got - want) / fmax(fabs(want), 1e-300);
  cr_assert(err <= 1e-6, "%s: loss %.9g, f64 CPU %.9g: relative error %.3g > 1e-6", what, got, want,
            err);
}

Test(cuda_nn, cross_entropy_with_ignored_targets) {
  T_NEED_GPU();
  struct {
    int64_t V;
    hy_shape logits, targets;
    double scale; /* logits uniform in [-scale, scale] */
  } cases[] = {
      {7, HY_SHAPE(3, 37, 7), HY_SHAPE(3, 37), 4.0},
      {256, HY_SHAPE(111, 256), HY_SHAPE(111), 8.0},
      {32000, HY_SHAPE(2, 19, 32000), HY_SHAPE(2, 19), 10.0},
      {256, HY_SHAPE(64, 256), HY_SHAPE(64), 50.0}, /* large logits: e^(x - max) underflows */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    double a = cases[i].scale;
    hy_tensor *logits = t_param(t_uniform_next(HY_F32, cases[i].logits, -a, a));
    hy_tensor *targets = t_random_ints(cases[i].targets, cases[i].V, IGNORE, 0.25);
    hy_tensor *in[2] = {logits, targets};
    char what[96];
    snprintf(what, sizeof what, "cross entropy V = %lld", (long long)cases[i].V);
    t_expect_gpu_matches_cpu(cross_entropy, NULL, 2, in, TOL, what);
    expect_loss_value(logits, targets, what);
  }
}

Test(cuda_nn, cross_entropy_all_ignored) {
  T_NEED_GPU();
  const int64_t vocab[] = {7, 256, 32000};
  for (int i = 0; i < 3; i++) {
    hy_shape ls = HY_SHAPE(5, vocab[i]);
    hy_tensor *targets = t_random_ints(HY_SHAPE(5), vocab[i], IGNORE, 1.0);
    /* No gradient to compare: the inputs need none. */
    hy_tensor *in[2] = {t_randn_next(HY_F32, ls), targets};
    t_expect_gpu_matches_cpu(cross_entropy, NULL, 2, in, TOL, "cross entropy, all ignored");
    hy_tensor *logits = t_to_gpu(t_param(t_randn_next(HY_F32, ls)));
    hy_tensor *loss = hy_cross_entropy(logits, t_to_gpu(targets), IGNORE);
    cr_assert_eq(hy_item(loss), 0.0, "all ignored: loss %g", hy_item(loss));
    hy_backward(loss);
    /* The GPU does not read the count back: it writes a zero gradient. */
    hy_tensor *g = logits->grad ? t_to_cpu(logits->grad) : NULL;
    for (int64_t j = 0; g && j < hy_numel(g); j++)
      cr_assert(hy_get(g, j) == 0.0, "all ignored: gradient [%lld] is %g", (long long)j,
                hy_get(g, j));
  }
}

/* ---- rmsnorm ---- */

typedef struct {
  double eps;
} norm_ctx;

static hy_tensor *rmsnorm(hy_tensor **in, void *ctx) {
  return hy_rmsnorm(in[0], in[1], ((norm_ctx *)ctx)->eps);
}

Test(cuda_nn, rmsnorm_with_and_without_weight) {
  T_NEED_GPU();
  struct {
    hy_shape x;
    double eps;
  } cases[] = {
      /* d = 1: y = x / sqrt(x^2 + eps) and gx = rstd gy eps / (x^2 + eps), which f32 computes as
       * 1 - xh^2: a small eps would leave both devices' gradients mostly rounding error. */
      {HY_SHAPE(3, 37, 1), 1.0},
      {HY_SHAPE(2, 45, 64), 1e-6}, /* two chunks of rows for the weight gradient */
      {HY_SHAPE(111, 1000), 1e-6}, /* d not a multiple of the block */
      {HY_SHAPE(5000, 64), 1e-6},  /* many chunks, the last one short */
      {HY_SHAPE(7, 3, 128), 1e-6}, /* the longest rows a warp takes alone */
      {HY_SHAPE(9, 129), 1e-6},    /* the shortest a block takes */
      {HY_SHAPE(1, 1000), 1e-6},   /* one row */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    norm_ctx c = {cases[i].eps};
    int64_t d = cases[i].x.d[cases[i].x.ndim - 1];
    char what[96];
    hy_tensor *in[2] = {t_param(t_randn_next(HY_F32, cases[i].x)),
                        t_param(t_randn_next(HY_F32, HY_SHAPE(d)))};
    snprintf(what, sizeof what, "rmsnorm d = %lld, weight", (long long)d);
    t_expect_gpu_matches_cpu(rmsnorm, &c, 2, in, TOL, what);
    hy_tensor *x[2] = {t_param(t_randn_next(HY_F32, cases[i].x)), NULL};
    snprintf(what, sizeof what, "rmsnorm d = %lld, no weight", (long long)d);
    t_expect_gpu_matches_cpu(rmsnorm, &c, 2, x, TOL, what);
  }
  /* The weight's gradient alone (x needs none). */
  norm_ctx c = {1e-6};
  hy_tensor *in[2] = {t_randn_next(HY_F32, HY_SHAPE(300, 64)),
                      t_param(t_randn_next(HY_F32, HY_SHAPE(64)))};
  t_expect_gpu_matches_cpu(rmsnorm, &c, 2, in, TOL, "rmsnorm, weight gradient only");
}

/* More rows than 1024 chunks of 64, where the chunks grow. The weight gradient sums 70001 rows:
 * the CPU's f32 sum in row order is only good to ~eps sqrt(rows) (~1e-5), so the reference here
 * is the CPU in f64. */
Test(cuda_nn, rmsnorm_many_rows_against_f64) {
  T_NEED_GPU();
  hy_shape s = HY_SHAPE(70001, 8);
  hy_tensor *x = t_randn_next(HY_F32, s), *w = t_randn_next(HY_F32, HY_SHAPE(8)),
            *gy = t_randn_next(HY_F32, s);
  hy_tensor *x64 = t_param(t_cast(x, HY_F64)), *w64 = t_param(t_cast(w, HY_F64));
  hy_tensor *y64 = hy_rmsnorm(x64, w64, 1e-6);
  hy_backward_with(y64, t_cast(gy, HY_F64));
  hy_tensor *xg = t_param(t_to_gpu(x)), *wg = t_param(t_to_gpu(w));
  t_poison();
  hy_tensor *yg = hy_rmsnorm(xg, wg, 1e-6);
  hy_backward_with(yg, t_to_gpu(gy));
  t_expect_gpu_close(yg, y64, TOL, "rmsnorm 70001 rows: forward");
  t_expect_gpu_close(xg->grad, x64->grad, TOL, "rmsnorm 70001 rows: gradient of x");
  t_expect_gpu_close(wg->grad, w64->grad, TOL, "rmsnorm 70001 rows: gradient of the weight");
}

/* ---- rope ---- */

typedef struct {
  int64_t offset;
} rope_ctx;

static hy_tensor *rope(hy_tensor **in, void *ctx) {
  return hy_rope(in[0], ((rope_ctx *)ctx)->offset, 10000.0);
}

Test(cuda_nn, rope_with_offsets) {
  T_NEED_GPU();
  const int64_t dims[] = {2, 32, 128}, offsets[] = {0, 17};
  for (int o = 0; o < 2; o++)
    for (int k = 0; k < 3; k++) {
      rope_ctx c = {offsets[o]};
      hy_tensor *x = t_param(t_randn_next(HY_F32, HY_SHAPE(2, 13, 3, dims[k])));
      char what[96];
      snprintf(what, sizeof what, "rope D = %lld, offset %lld", (long long)dims[k],
               (long long)offsets[o]);
      t_expect_gpu_matches_cpu(rope, &c, 1, &x, TOL, what);
    }
  /* Long sequences: angles up to ~1000 radians. */
  rope_ctx c = {17};
  hy_tensor *x = t_param(t_randn_next(HY_F32, HY_SHAPE(1, 1000, 2, 64)));
  t_expect_gpu_matches_cpu(rope, &c, 1, &x, TOL, "rope, 1000 positions");
}
