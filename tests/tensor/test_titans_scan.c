/* hy_titans_scan, the Titans memory's fused chunk recurrence: output and the gradient of every
 * input (q, k, v, theta, eta, keep, M_0) against the composed form from generic ops
 * (hy_titans_memory_scan_composed), in f64 and f32, for memory depth 1 and 2, chunks of 1 and 2
 * tokens, a chunk that does not divide T, T shorter than one chunk (no update), several heads and
 * B > 1; the forward without a tape (two saved states instead of all); finite-difference gradient
 * checks in f64 at depth 1 and 2; bad shapes. */
#include "layers/titans_memory.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>

TestSuite(titans_scan, .fini = hy_step_reset);

typedef struct {
  int64_t B, H, T, D, F, chunk;
  int depth;
} sizes;

enum { N_IN = 8 }; /* q, k, v, theta, eta, keep, w1, w2 */
static const char *const NAMES[N_IN] = {"q", "k", "v", "theta", "eta", "keep", "w1", "w2"};

/* Inputs as the layer makes them, roughly: |q|, |k| near 1, theta, eta, keep inside (0, 1), M_0 of
 * xavier scale. Absent ones (w2 at depth 1, the gates when T < chunk) are NULL. */
static void make_inputs(hy_dtype dt, sizes s, uint64_t seed, hy_tensor **in) {
  int64_t N = s.T / s.chunk, F = s.depth == 2 ? s.F : s.D;
  double a = sqrt(3.0 / (double)s.D), wb = sqrt(6.0 / (double)(s.D + F));
  hy_shape rows = HY_SHAPE(s.B, s.H, s.T, s.D), gate = HY_SHAPE(s.B, s.H, N, 1);
  in[0] = t_uniform(dt, rows, seed, -a, a);
  in[1] = t_uniform(dt, rows, seed + 1, -a, a);
  in[2] = t_randn(dt, rows, seed + 2);
  in[3] = t_uniform(dt, HY_SHAPE(s.B, s.H, s.T, 1), seed + 3, 0.05, 0.6);
  in[4] = N ? t_uniform(dt, gate, seed + 4, 0.2, 0.95) : NULL;
  in[5] = N ? t_uniform(dt, gate, seed + 5, 0.6, 0.99) : NULL;
  in[6] = t_uniform(dt, HY_SHAPE(s.H, s.D, F), seed + 6, -wb, wb);
  in[7] = s.depth == 2 ? t_uniform(dt, HY_SHAPE(s.H, F, s.D), seed + 7, -wb, wb) : NULL;
  for (int i = 0; i < N_IN; i++)
    if (in[i]) t_param(in[i]);
}

static hy_titans_memory memory_of(sizes s, hy_tensor *const *in) {
  return (hy_titans_memory){.heads = s.H,
                            .dim = s.D,
                            .hidden = s.depth == 2 ? s.F : s.D,
                            .depth = s.depth,
                            .chunk = s.chunk,
                            .m0 = {in[6], in[7]}};
}

static hy_tensor *run(bool composed, sizes s, hy_tensor *const *in) {
  if (!composed)
    return hy_titans_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], s.chunk);
  hy_titans_memory m = memory_of(s, in);
  return hy_titans_memory_scan_composed(&m, in[0], in[1], in[2], in[3], in[4], in[5]);
}

static const sizes CASES[] = {
    {2, 3, 9, 4, 6, 1, 1},  {2, 3, 9, 4, 6, 1, 2},  /* chunks of one token */
    {2, 2, 10, 4, 6, 2, 1}, {2, 2, 10, 4, 6, 2, 2}, /* chunks of two */
    {2, 2, 11, 5, 7, 4, 1}, {2, 2, 11, 5, 7, 4, 2}, /* 4 does not divide 11 */
    {3, 2, 5, 4, 6, 8, 1},  {3, 2, 5, 4, 6, 8, 2},  /* T < chunk: no update */
    {1, 1, 12, 3, 8, 3, 2}, {2, 1, 8, 4, 6, 8, 2},  /* one head; T one chunk exactly */
};

/* A gradient that is absent or all zero. */
static void expect_zero(const hy_tensor *g, const char *what) {
  for (int64_t i = 0; g && i < hy_numel(g); i++)
    cr_assert(hy_get(g, i) == 0, "%s: %g where nothing reaches the output", what, hy_get(g, i));
}

/* The fused op and the composed form, output and gradients, for every case; returns the worst
 * relative errors of the outputs and of the gradients. */
static void compare_all(hy_dtype dt, double tol_y, double tol_g, double *worst) {
  worst[0] = worst[1] = 0;
  for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
    sizes s = CASES[c];
    hy_tensor *in[N_IN], *y[2], *g[2][N_IN];
    make_inputs(dt, s, 100 + 10 * (uint64_t)c, in);
    hy_tensor *gy = t_randn(dt, HY_SHAPE(s.B, s.H, s.T, s.D), 7 + (uint64_t)c);
    for (int composed = 0; composed < 2; composed++) {
      for (int i = 0; i < N_IN; i++)
        if (in[i]) in[i]->grad = NULL;
      y[composed] = run(composed, s, in);
      hy_backward_with(y[composed], gy);
      for (int i = 0; i < N_IN; i++) g[composed][i] = in[i] ? in[i]->grad : NULL;
    }
    char what[96];
    snprintf(what, sizeof what, "B %lld H %lld T %lld chunk %lld depth %d: y", (long long)s.B,
             (long long)s.H, (long long)s.T, (long long)s.chunk, s.depth);
    t_expect_close(y[0], y[1], tol_y, what);
    worst[0] = fmax(worst[0], t_max_rel_err(y[0], y[1]));
    for (int i = 0; i < N_IN; i++) {
      if (!in[i]) continue;
      snprintf(what, sizeof what, "B %lld H %lld T %lld chunk %lld depth %d: d%s", (long long)s.B,
               (long long)s.H, (long long)s.T, (long long)s.chunk, s.depth, NAMES[i]);
      if (!g[0][i] || !g[1][i]) { /* not reached (k, v, theta when T < chunk): zero */
        expect_zero(g[0][i], what);
        expect_zero(g[1][i], what);
        continue;
      }
      t_expect_close(g[0][i], g[1][i], tol_g, what);
      worst[1] = fmax(worst[1], t_max_rel_err(g[0][i], g[1][i]));
    }
    hy_step_reset();
  }
}

Test(titans_scan, matches_composed_f64) {
  double worst[2];
  compare_all(HY_F64, 1e-12, 1e-12, worst);
  cr_log_info("fused vs composed f64: y %.3g, gradients %.3g", worst[0], worst[1]);
}

Test(titans_scan, matches_composed_f32) {
  double worst[2];
  compare_all(HY_F32, 1e-6, 5e-6, worst);
  cr_log_info("fused vs composed f32: y %.3g, gradients %.3g", worst[0], worst[1]);
}

/* A chunk past any size, as a recipe may ask for, never completes, as one of T + 1 tokens does
 * not: the same output and gradients. */
Test(titans_scan, a_chunk_past_any_size_updates_nothing) {
  sizes s[2] = {{1, 2, 5, 4, 6, INT64_MAX, 2}, {1, 2, 5, 4, 6, 6, 2}};
  hy_tensor *in[N_IN], *y[2], *g[2][N_IN];
  make_inputs(HY_F64, s[0], 70, in);
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(1, 2, 5, 4), 71);
  for (int c = 0; c < 2; c++) {
    for (int i = 0; i < N_IN; i++)
      if (in[i]) in[i]->grad = NULL;
    y[c] = run(false, s[c], in);
    hy_backward_with(y[c], gy);
    for (int i = 0; i < N_IN; i++) g[c][i] = in[i] ? in[i]->grad : NULL;
  }
  cr_assert_eq(t_max_rel_err(y[0], y[1]), 0);
  for (int i = 0; i < N_IN; i++)
    if (g[0][i]) cr_assert_eq(t_max_rel_err(g[0][i], g[1][i]), 0, "d%s", NAMES[i]);
}

/* Without a tape the op keeps two states instead of all: the same output. */
Test(titans_scan, no_grad_forward_matches) {
  for (int depth = 1; depth <= 2; depth++) {
    sizes s = {2, 2, 11, 4, 6, 2, depth}; /* 5 updates */
    hy_tensor *in[N_IN];
    make_inputs(HY_F64, s, 60, in);
    hy_tensor *y = run(false, s, in);
    hy_no_grad_begin();
    hy_tensor *y_inference = run(false, s, in);
    hy_no_grad_end();
    t_expect_same_bits(y_inference, y, depth == 1 ? "depth 1" : "depth 2");
    hy_step_reset();
  }
}

/* ---- finite differences ---- */

static hy_tensor *scan_fn(hy_tensor **in, void *ctx) {
  const sizes *s = ctx;
  return hy_titans_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], s->chunk);
}

Test(titans_scan, gradcheck) {
  const sizes cases[] = {{2, 2, 7, 3, 4, 2, 1}, {2, 2, 7, 3, 4, 2, 2}, {1, 2, 7, 3, 5, 3, 2}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    sizes s = cases[c];
    hy_tensor *in[N_IN];
    make_inputs(HY_F64, s, 40 + 10 * (uint64_t)c, in);
    /* hy_gradcheck takes no NULL input: w2 only at depth 2 */
    int n = s.depth == 2 ? N_IN : N_IN - 1;
    hy_gradcheck_opts opts = {.max_per_tensor = 64};
    bool ok = hy_gradcheck(scan_fn, &s, n, in, &opts);
    cr_assert(ok, "depth %d chunk %lld: worst %.3g", s.depth, (long long)s.chunk,
              hy_gradcheck_last_error());
    cr_log_info("gradcheck depth %d chunk %lld: worst %.3g", s.depth, (long long)s.chunk,
                hy_gradcheck_last_error());
    hy_step_reset();
  }
}

/* ---- bad arguments ---- */

static void bad_gate_shape(void) {
  sizes s = {1, 2, 6, 3, 4, 2, 2};
  hy_tensor *in[N_IN];
  make_inputs(HY_F64, s, 1, in);
  hy_titans_scan(in[0], in[1], in[2], in[3], in[3], in[5], in[6], in[7], s.chunk);
}

static void bad_chunk(void) {
  sizes s = {1, 2, 6, 3, 4, 2, 1};
  hy_tensor *in[N_IN];
  make_inputs(HY_F64, s, 1, in);
  hy_titans_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], NULL, 0);
}

Test(titans_scan, bad_arguments) {
  t_expect_abort(bad_gate_shape, 2, (const char *[]){"titans_scan", "eta and keep"});
  t_expect_abort(bad_chunk, 2, (const char *[]){"titans_scan", "chunk size 0"});
}
