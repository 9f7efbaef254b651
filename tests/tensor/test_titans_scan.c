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

/* ---- a state handed in and on (hy_titans_scan_state) ---- */

/* t [B, H, T, n] rows [lo, hi) (gates: chunks), as a view: gradients flow to t. */
static hy_tensor *rows_of(hy_tensor *t, int64_t lo, int64_t hi) {
  return t ? hy_slice(t, 2, lo, hi) : NULL;
}

/* The scan over T split at `cut` (a multiple of the chunk): the second part starts from the state
 * the first hands on, as a sequence-parallel rank does. Outputs, the state handed on at the end
 * and every input's gradient against one scan over all of T. */
static void expect_split_matches(sizes s, int64_t cut, uint64_t seed) {
  hy_tensor *in[N_IN], *y[2], *last[2], *g[2][N_IN];
  make_inputs(HY_F64, s, seed, in);
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(s.B, s.H, s.T, s.D), seed + 20);
  int64_t P = s.depth == 2 ? 2 * s.D * s.F : s.D * s.D, c = s.chunk, N = s.T / c;
  hy_tensor *glast = t_randn(HY_F64, HY_SHAPE(s.B, s.H, 2, P), seed + 21);
  for (int split = 0; split < 2; split++) {
    for (int i = 0; i < N_IN; i++)
      if (in[i]) in[i]->grad = NULL;
    if (!split) {
      y[0] = hy_titans_scan_state(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], NULL, c,
                                  &last[0]);
    } else {
      hy_tensor *a = NULL, *b = NULL, *mid = NULL;
      int64_t parts[3] = {0, cut, s.T};
      hy_tensor *init = NULL;
      for (int p = 0; p < 2; p++) {
        int64_t lo = parts[p], hi = parts[p + 1];
        hy_tensor *out = hy_titans_scan_state(
            rows_of(in[0], lo, hi), rows_of(in[1], lo, hi), rows_of(in[2], lo, hi),
            rows_of(in[3], lo, hi), rows_of(in[4], lo / c, hi / c), rows_of(in[5], lo / c, hi / c),
            in[6], in[7], init, c, &mid);
        if (p == 0)
          a = out, init = mid;
        else
          b = out;
      }
      y[1] = hy_concat(2, (hy_tensor *[]){a, b}, 2);
      last[1] = mid;
    }
    /* one loss of both outputs, so that the state's gradient flows as well */
    hy_tensor *loss =
        hy_add(hy_sum_all(hy_mul(y[split], gy)), hy_sum_all(hy_mul(last[split], glast)));
    hy_backward(loss);
    for (int i = 0; i < N_IN; i++) g[split][i] = in[i] ? in[i]->grad : NULL;
  }
  char what[96];
  snprintf(what, sizeof what, "T %lld cut %lld chunk %lld depth %d (%lld updates)", (long long)s.T,
           (long long)cut, (long long)c, s.depth, (long long)N);
  t_expect_close(y[1], y[0], 1e-12, what);
  t_expect_close(last[1], last[0], 1e-12, what);
  for (int i = 0; i < N_IN; i++) {
    if (!in[i]) continue;
    char name[128];
    snprintf(name, sizeof name, "%s: d%s", what, NAMES[i]);
    t_expect_close(g[1][i], g[0][i], 1e-12, name);
  }
  hy_step_reset();
}

Test(titans_scan, continues_from_a_handed_on_state) {
  for (int depth = 1; depth <= 2; depth++) {
    expect_split_matches((sizes){2, 2, 12, 4, 6, 2, depth}, 6, 300); /* 3 updates each */
    expect_split_matches((sizes){2, 2, 12, 4, 6, 2, depth}, 2, 310); /* one update, then five */
    expect_split_matches((sizes){1, 3, 13, 3, 5, 4, depth}, 8, 320); /* a short rest at the end */
    expect_split_matches((sizes){2, 1, 10, 4, 6, 1, depth}, 5, 330); /* an update per token */
    expect_split_matches((sizes){2, 2, 11, 4, 6, 8, depth}, 8, 340); /* a part with no update */
  }
}

/* The state handed on without a tape (two saved slots) is the one with a tape. */
Test(titans_scan, handed_on_state_without_a_tape) {
  for (int depth = 1; depth <= 2; depth++) {
    sizes s = {2, 2, 11, 4, 6, 2, depth};
    hy_tensor *in[N_IN], *last[2];
    make_inputs(HY_F64, s, 350, in);
    for (int tape = 0; tape < 2; tape++) {
      if (!tape) hy_no_grad_begin();
      hy_titans_scan_state(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], NULL, s.chunk,
                           &last[tape]);
      if (!tape) hy_no_grad_end();
    }
    t_expect_same_bits(last[0], last[1], depth == 1 ? "depth 1" : "depth 2");
    hy_step_reset();
  }
}

/* Finite differences through a starting state and the state handed on: y and the last state
 * flattened into one output. The inputs as make_inputs makes them (w2 only at depth 2), then the
 * starting state; every case makes an update (the gates are there). */
static hy_tensor *scan_state_fn(hy_tensor **in, void *ctx) {
  const sizes *s = ctx;
  int depth2 = s->depth == 2;
  hy_tensor *init = in[depth2 ? 8 : 7], *last;
  hy_tensor *y = hy_titans_scan_state(in[0], in[1], in[2], in[3], in[4], in[5], in[6],
                                      depth2 ? in[7] : NULL, init, s->chunk, &last);
  hy_tensor *flat[2] = {hy_reshape(y, HY_SHAPE(-1)), hy_reshape(last, HY_SHAPE(-1))};
  return hy_concat(2, flat, 0);
}

Test(titans_scan, gradcheck_with_a_state) {
  const sizes cases[] = {{2, 2, 6, 3, 4, 2, 1}, {2, 2, 7, 3, 4, 2, 2}, {1, 2, 5, 3, 4, 4, 2}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    sizes s = cases[c];
    hy_tensor *in[N_IN + 1];
    make_inputs(HY_F64, s, 360 + 10 * (uint64_t)c, in);
    int64_t P = s.depth == 2 ? 2 * s.D * s.F : s.D * s.D;
    hy_tensor *init = t_param(t_uniform(HY_F64, HY_SHAPE(s.B, s.H, 2, P), 369, -0.4, 0.4));
    int n = 0; /* hy_gradcheck takes no NULL input: w2 only at depth 2 */
    hy_tensor *checked[N_IN + 1];
    for (int i = 0; i < N_IN; i++)
      if (in[i]) checked[n++] = in[i];
    checked[n++] = init;
    hy_gradcheck_opts opts = {.max_per_tensor = 64};
    bool ok = hy_gradcheck(scan_state_fn, &s, n, checked, &opts);
    cr_assert(ok, "depth %d chunk %lld: worst %.3g", s.depth, (long long)s.chunk,
              hy_gradcheck_last_error());
    cr_log_info("gradcheck with a state, depth %d: worst %.3g", s.depth, hy_gradcheck_last_error());
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

static void bad_init_shape(void) {
  sizes s = {1, 2, 6, 3, 4, 2, 1};
  hy_tensor *in[N_IN];
  make_inputs(HY_F64, s, 1, in);
  hy_tensor *init = t_randn(HY_F64, HY_SHAPE(1, 2, 2, 8), 2); /* P is 9 */
  hy_titans_scan_state(in[0], in[1], in[2], in[3], in[4], in[5], in[6], NULL, init, s.chunk, NULL);
}

Test(titans_scan, bad_arguments) {
  t_expect_abort(bad_gate_shape, 2, (const char *[]){"titans_scan", "eta and keep"});
  t_expect_abort(bad_init_shape, 2, (const char *[]){"titans_scan", "init", "[1, 2, 2, 9]"});
  t_expect_abort(bad_chunk, 2, (const char *[]){"titans_scan", "chunk size 0"});
}
