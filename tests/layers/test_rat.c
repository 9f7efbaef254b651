/* RAT: the fused op (hy_rat) against its plain form (outputs and every gradient, f64), its two
 * limits (chunk 1: softmax attention over the recurred keys and values; one chunk: a gated RNN),
 * f32 against f64; the sequence-parallel pieces (hy_rat_after after earlier chunks,
 * hy_rat_chunk_ends) against their plain forms, gradchecked, and a sequence cut in two equal to the
 * whole; and the layer: gradcheck of every parameter, fused against plain, and token-by-token
 * decoding against the full forward. */
#include "autograd/tape.h"
#include "layers/model.h"
#include "layers/rat.h"
#include "layers/rat_reference.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(rat, .fini = t_params_fini);

enum { N_IN = 4 }; /* q, u, k, f */
static const char *const NAMES[N_IN] = {"q", "u", "k", "f"};

/* Inputs of the op: q, u, k normal; f = sigmoid(2 n + 1), spread over (0, 1) with some gates
 * near 1 (long memory) and some near 0. */
static void inputs(hy_dtype dt, int64_t B, int64_t T, int64_t H, int64_t D, uint64_t seed,
                   hy_tensor **in) {
  hy_shape s = HY_SHAPE(B, T, H, D);
  for (int i = 0; i < 3; i++) in[i] = t_randn(HY_F64, s, seed + (uint64_t)i);
  hy_tensor *n = t_randn(HY_F64, s, seed + 3);
  hy_no_grad_begin();
  in[3] = hy_sigmoid(hy_add_scalar(hy_scale(n, 2.0), 1.0));
  hy_no_grad_end();
  for (int i = 0; i < N_IN; i++) in[i] = t_param(dt == HY_F64 ? in[i] : t_cast(in[i], dt));
}

typedef hy_tensor *(*rat_fn)(hy_tensor *, hy_tensor *, hy_tensor *, hy_tensor *, int64_t, double,
                             double);

/* out and the gradients of q, u, k, f for the output gradient go. */
static hy_tensor *run(rat_fn fn, hy_tensor **in, hy_tensor *go, int64_t chunk, double theta,
                      hy_tensor **grads) {
  for (int i = 0; i < N_IN; i++) in[i]->grad = NULL;
  double scale = 1.0 / sqrt((double)in[0]->shape[3]);
  hy_tensor *o = fn(in[0], in[1], in[2], in[3], chunk, scale, theta);
  hy_backward_with(o, go);
  for (int i = 0; i < N_IN; i++) grads[i] = in[i]->grad;
  return o;
}

Test(rat, fused_equals_reference_in_f64) {
  struct {
    int64_t B, T, H, D, chunk;
  } cases[] = {
      {2, 37, 3, 8, 4},   /* T not a multiple of the chunk */
      {1, 5, 2, 6, 16},   /* T shorter than one chunk: only the own state */
      {2, 48, 2, 4, 16},  /* whole chunks */
      {1, 150, 2, 8, 1},  /* chunks of one token: keys over several tiles */
      {1, 211, 1, 6, 3},  /* 70 chunk-final keys: two key tiles, query tiles across chunks */
      {1, 1, 1, 2, 4},    /* one token */
      {1, 130, 2, 10, 64} /* a chunk as long as a tile */
  };
  double worst_out = 0, worst_grad = 0;
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    hy_tensor *in[N_IN], *g1[N_IN], *g2[N_IN];
    inputs(HY_F64, cases[c].B, cases[c].T, cases[c].H, cases[c].D, 10 * c + 1, in);
    hy_tensor *go = t_randn(HY_F64, hy_shape_of(in[0]), 10 * c + 7);
    double theta = c % 2 ? 10000.0 : 7.0; /* a small base turns even the early chunks a lot */
    hy_tensor *o1 = run(hy_rat, in, go, cases[c].chunk, theta, g1);
    hy_tensor *o2 = run(hy_rat_reference, in, go, cases[c].chunk, theta, g2);
    double e = t_max_rel_err(o1, o2);
    cr_log_info("case %zu: output %.3g", c, e);
    cr_assert(e <= 1e-10, "case %zu: output error %.3g", c, e);
    worst_out = fmax(worst_out, e);
    for (int i = 0; i < N_IN; i++) {
      e = t_max_rel_err(g1[i], g2[i]);
      cr_log_info("case %zu: d%s %.3g", c, NAMES[i], e);
      cr_assert(e <= 1e-10, "case %zu: d%s error %.3g", c, NAMES[i], e);
      worst_grad = fmax(worst_grad, e);
    }
    hy_step_reset();
  }
  cr_log_info("fused vs reference (f64): output %.3g, gradients %.3g", worst_out, worst_grad);
}

/* Strided views (heads of one projection) give the same as contiguous copies. */
Test(rat, strided_inputs) {
  int64_t B = 2, T = 21, H = 2, D = 4;
  hy_tensor *all = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, 4 * D), 3));
  hy_tensor *parts[4];
  hy_split(all, 3, 4, (int64_t[]){D, D, D, D}, parts);
  parts[3] = hy_sigmoid(parts[3]);
  hy_tensor *o1 = hy_rat(parts[0], parts[1], parts[2], parts[3], 5, 0.5, 100.0);
  hy_tensor *o2 = hy_rat(hy_copy(parts[0]), hy_copy(parts[1]), hy_copy(parts[2]), hy_copy(parts[3]),
                         5, 0.5, 100.0);
  t_expect_same_bits(o1, o2, "strided vs contiguous");
}

/* Chunk 1: the recurrence is h_t = (1 - f_t) [u_t, k_t] and every earlier token's state is a
 * chunk-final key, at RoPE position t, so hy_rat runs it on the attention kernels: against the
 * plain form (the recurrence and the chunk-final keys), gradients included, and on the tape an
 * attention op, no rat op. */
Test(rat, chunk_one_runs_as_softmax_attention_over_gated_inputs) {
  hy_tensor *in[N_IN], *g1[N_IN], *g2[N_IN];
  inputs(HY_F64, 2, 97, 3, 8, 21, in);
  hy_tensor *go = t_randn(HY_F64, hy_shape_of(in[0]), 25);
  int64_t before = hy_tape_size();
  hy_tensor *o1 = run(hy_rat, in, go, 1, 10000.0, g1);
  bool attention = false, rat = false;
  for (int64_t i = before; i < hy_tape_size(); i++) {
    attention = attention || !strcmp(hy_tape_op(i), "attention");
    rat = rat || !strcmp(hy_tape_op(i), "rat");
  }
  cr_assert(attention && !rat, "chunk 1 recorded %s", rat ? "the rat op" : "no attention op");
  hy_tensor *o2 = run(hy_rat_reference, in, go, 1, 10000.0, g2);
  double e = t_max_rel_err(o1, o2);
  for (int i = 0; i < N_IN; i++) e = fmax(e, t_max_rel_err(g1[i], g2[i]));
  cr_log_info("chunk 1 on hy_attention vs the plain form: %.3g", e);
  cr_assert(e <= 1e-12, "chunk 1 on hy_attention vs the plain form: %.3g", e);
}

/* One chunk over the whole sequence: no finished chunk, so o_t is the running value state of
 * the gated RNN, whatever q and k are. Against a direct loop. */
Test(rat, one_chunk_is_a_gated_rnn) {
  int64_t B = 2, T = 20, H = 2, D = 6, chunks[] = {20, 32, INT64_MAX};
  for (int c = 0; c < 3; c++) {
    hy_tensor *in[N_IN];
    inputs(HY_F64, B, T, H, D, 31, in);
    hy_tensor *o = hy_rat(in[0], in[1], in[2], in[3], chunks[c], 0.4, 10000.0);
    double worst = 0;
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t d = 0; d < D; d++) {
          double state = 0;
          for (int64_t t = 0; t < T; t++) {
            int64_t i = ((b * T + t) * H + h) * D + d;
            double f = hy_get(in[3], i);
            state = f * state + (1 - f) * hy_get(in[1], i);
            worst = fmax(worst, fabs(hy_get(o, i) - state) / fmax(1.0, fabs(state)));
          }
        }
    cr_log_info("one chunk (L = %lld) vs a direct RNN loop: %.3g", (long long)chunks[c], worst);
    cr_assert(worst <= 1e-14, "L = %lld: %.3g", (long long)chunks[c], worst);
  }
}

/* A chunk past any sequence, as a recipe may ask for, is a chunk of the whole sequence: the same
 * output and gradients as chunk = T. */
Test(rat, a_chunk_past_any_size_is_the_whole_sequence) {
  hy_tensor *in[N_IN], *g1[N_IN], *g2[N_IN];
  inputs(HY_F64, 1, 5, 2, 6, 41, in);
  hy_tensor *go = t_randn(HY_F64, hy_shape_of(in[0]), 42);
  hy_tensor *o1 = run(hy_rat, in, go, INT64_MAX, 10000.0, g1);
  hy_tensor *o2 = run(hy_rat, in, go, 5, 10000.0, g2);
  cr_assert_eq(t_max_rel_err(o1, o2), 0);
  for (int i = 0; i < N_IN; i++) cr_assert_eq(t_max_rel_err(g1[i], g2[i]), 0, "d%s", NAMES[i]);
}

static hy_tensor *op_fn(hy_tensor **in, void *ctx) {
  int64_t chunk = *(int64_t *)ctx;
  return hy_rat(in[0], in[1], in[2], in[3], chunk, 0.5, 50.0);
}

Test(rat, op_gradchecks) {
  int64_t chunks[] = {1, 3, 8};
  for (int c = 0; c < 3; c++) {
    hy_tensor *in[N_IN];
    inputs(HY_F64, 2, 11, 2, 4, 41, in);
    bool ok = hy_gradcheck(op_fn, &chunks[c], N_IN, in, NULL);
    cr_assert(ok, "chunk %lld: worst %.3g", (long long)chunks[c], hy_gradcheck_last_error());
    hy_step_reset();
  }
}

Test(rat, f32_matches_f64) {
  int64_t chunks[] = {1, 16, 64};
  for (int c = 0; c < 3; c++) {
    hy_tensor *in64[N_IN], *in32[N_IN], *g64[N_IN], *g32[N_IN];
    inputs(HY_F64, 2, 300, 2, 16, 51, in64);
    inputs(HY_F32, 2, 300, 2, 16, 51, in32);
    hy_tensor *go64 = t_randn(HY_F64, hy_shape_of(in64[0]), 55);
    hy_tensor *go32 = t_cast(go64, HY_F32);
    hy_tensor *o64 = run(hy_rat, in64, go64, chunks[c], 10000.0, g64);
    hy_tensor *o32 = run(hy_rat, in32, go32, chunks[c], 10000.0, g32);
    double e = t_max_rel_err(o32, o64);
    cr_log_info("chunk %lld: f32 vs f64 output %.3g", (long long)chunks[c], e);
    cr_assert(e <= 1e-5, "chunk %lld: f32 output error %.3g", (long long)chunks[c], e);
    for (int i = 0; i < N_IN; i++) {
      e = t_max_rel_err(g32[i], g64[i]);
      cr_log_info("chunk %lld: f32 vs f64 d%s %.3g", (long long)chunks[c], NAMES[i], e);
      cr_assert(e <= 1e-5, "chunk %lld: f32 d%s error %.3g", (long long)chunks[c], NAMES[i], e);
    }
    hy_step_reset();
  }
}

/* ---- after earlier chunks (hy_rat_after) and the chunks' final states (sequence parallelism) ----
 */

/* The earlier chunks' final keys and values [B, P, H, D], normal, as leaves. */
static void earlier(int64_t B, int64_t P, int64_t H, int64_t D, uint64_t seed, hy_tensor **kv) {
  for (int i = 0; i < 2; i++) kv[i] = t_param(t_randn(HY_F64, HY_SHAPE(B, P, H, D), seed + i));
}

typedef hy_tensor *(*rat_after_fn)(hy_tensor *, hy_tensor *, hy_tensor *, hy_tensor *, hy_tensor *,
                                   hy_tensor *, int64_t, double, double);

/* out and the gradients of q, u, k, f, kp, vp for the output gradient go. */
static hy_tensor *run_after(rat_after_fn fn, hy_tensor **in, hy_tensor *go, int64_t chunk,
                            hy_tensor **grads) {
  for (int i = 0; i < N_IN + 2; i++) in[i]->grad = NULL;
  hy_tensor *o = fn(in[0], in[1], in[2], in[3], in[4], in[5], chunk, 0.4, 30.0);
  hy_backward_with(o, go);
  for (int i = 0; i < N_IN + 2; i++) grads[i] = in[i]->grad;
  return o;
}

Test(rat, after_earlier_chunks_equals_reference_in_f64) {
  struct {
    int64_t B, T, H, D, chunk, P;
  } cases[] = {
      {2, 37, 3, 8, 4, 5},   /* several chunks of the slice, a short last one */
      {1, 16, 2, 6, 16, 3},  /* exactly one chunk: only the earlier chunks' keys */
      {1, 150, 2, 8, 1, 70}, /* key tiles across the earlier and the slice's chunks */
      {2, 24, 2, 4, 8, 0},   /* no earlier chunk (the first rank): hy_rat */
      {1, 5, 1, 4, 8, 2},    /* a slice shorter than its chunk */
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    hy_tensor *in[N_IN + 2], *g1[N_IN + 2], *g2[N_IN + 2];
    inputs(HY_F64, cases[c].B, cases[c].T, cases[c].H, cases[c].D, 10 * c + 3, in);
    earlier(cases[c].B, cases[c].P, cases[c].H, cases[c].D, 10 * c + 5, in + N_IN);
    hy_tensor *go = t_randn(HY_F64, hy_shape_of(in[0]), 10 * c + 8);
    hy_tensor *o1 = run_after(hy_rat_after, in, go, cases[c].chunk, g1);
    hy_tensor *o2 = run_after(hy_rat_reference_after, in, go, cases[c].chunk, g2);
    double e = t_max_rel_err(o1, o2);
    cr_assert(e <= 1e-10, "case %zu: output error %.3g", c, e);
    for (int i = 0; i < N_IN + 2; i++) {
      if (hy_numel(in[i]) == 0) continue;
      e = fmax(e, t_max_rel_err(g1[i], g2[i]));
      cr_assert(e <= 1e-10, "case %zu: gradient %d error %.3g", c, i, e);
    }
    cr_log_info("case %zu: fused after %lld chunks vs reference %.3g", c, (long long)cases[c].P, e);
    hy_step_reset();
  }
}

Test(rat, chunk_ends_equal_reference_in_f64) {
  int64_t chunks[] = {1, 4, 12};
  for (int c = 0; c < 3; c++) {
    hy_tensor *in[N_IN], *g[2][2];
    inputs(HY_F64, 2, 24, 3, 4, 60 + c, in);
    hy_tensor *go = t_randn(HY_F64, HY_SHAPE(2, 24 / chunks[c], 3, 4), 65 + c);
    hy_tensor *y[2];
    for (int r = 0; r < 2; r++) {
      in[1]->grad = in[3]->grad = NULL;
      y[r] = (r ? hy_rat_chunk_ends_reference : hy_rat_chunk_ends)(in[1], in[3], chunks[c]);
      hy_backward_with(y[r], go);
      g[r][0] = in[1]->grad, g[r][1] = in[3]->grad;
    }
    double e = fmax(t_max_rel_err(y[0], y[1]),
                    fmax(t_max_rel_err(g[0][0], g[1][0]), t_max_rel_err(g[0][1], g[1][1])));
    cr_log_info("chunk %lld: chunk ends vs reference %.3g", (long long)chunks[c], e);
    cr_assert(e <= 1e-12, "chunk %lld: %.3g", (long long)chunks[c], e);
    hy_step_reset();
  }
}

/* What a sequence-parallel rank computes: the first T0 tokens (whole chunks) by hy_rat, the rest by
 * hy_rat_after their chunks' ends, equal to hy_rat over the whole sequence, gradients included
 * (those of the first part's ends flow back through hy_rat_chunk_ends). */
Test(rat, a_sequence_cut_at_a_chunk_equals_the_whole) {
  struct {
    int64_t T, T0, chunk;
  } cases[] = {{40, 16, 4}, {40, 32, 8}, {21, 6, 3}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    int64_t T = cases[c].T, T0 = cases[c].T0, L = cases[c].chunk;
    hy_tensor *in[N_IN], *whole[N_IN], *cut[N_IN], *first[N_IN], *rest[N_IN];
    inputs(HY_F64, 2, T, 2, 6, 70 + c, in);
    hy_tensor *go = t_randn(HY_F64, hy_shape_of(in[0]), 75 + c);
    hy_tensor *o1 = run(hy_rat, in, go, L, 30.0, whole);
    for (int i = 0; i < N_IN; i++) {
      in[i]->grad = NULL;
      first[i] = hy_slice(in[i], 1, 0, T0);
      rest[i] = hy_slice(in[i], 1, T0, T);
    }
    hy_tensor *kp = hy_rat_chunk_ends(first[2], first[3], L);
    hy_tensor *vp = hy_rat_chunk_ends(first[1], first[3], L);
    double scale = 1.0 / sqrt(6.0);
    hy_tensor *parts[2] = {
        hy_rat(first[0], first[1], first[2], first[3], L, scale, 30.0),
        hy_rat_after(rest[0], rest[1], rest[2], rest[3], kp, vp, L, scale, 30.0)};
    hy_tensor *o2 = hy_concat(2, parts, 1);
    hy_backward_with(o2, go);
    for (int i = 0; i < N_IN; i++) cut[i] = in[i]->grad;
    double e = t_max_rel_err(o2, o1);
    for (int i = 0; i < N_IN; i++) e = fmax(e, t_max_rel_err(cut[i], whole[i]));
    cr_log_info("T = %lld cut at %lld, chunk %lld: %.3g", (long long)T, (long long)T0, (long long)L,
                e);
    cr_assert(e <= 1e-12, "T = %lld cut at %lld: %.3g", (long long)T, (long long)T0, e);
    hy_step_reset();
  }
}

static hy_tensor *after_fn(hy_tensor **in, void *ctx) {
  int64_t chunk = *(int64_t *)ctx;
  return hy_rat_after(in[0], in[1], in[2], in[3], in[4], in[5], chunk, 0.5, 50.0);
}

static hy_tensor *ends_fn(hy_tensor **in, void *ctx) {
  return hy_rat_chunk_ends(in[0], in[1], *(int64_t *)ctx);
}

Test(rat, after_and_chunk_ends_gradcheck) {
  int64_t chunks[] = {1, 3};
  for (int c = 0; c < 2; c++) {
    hy_tensor *in[N_IN + 2];
    inputs(HY_F64, 2, 9, 2, 4, 81, in);
    earlier(2, 3, 2, 4, 83, in + N_IN);
    bool ok = hy_gradcheck(after_fn, &chunks[c], N_IN + 2, in, NULL);
    cr_assert(ok, "after, chunk %lld: worst %.3g", (long long)chunks[c], hy_gradcheck_last_error());
    ok = hy_gradcheck(ends_fn, &chunks[c], 2, (hy_tensor *[]){in[1], in[3]}, NULL);
    cr_assert(ok, "chunk ends, chunk %lld: worst %.3g", (long long)chunks[c],
              hy_gradcheck_last_error());
    hy_step_reset();
  }
}

static void bad_shapes(void) {
  hy_tensor *a = hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 4)),
            *b = hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 6));
  hy_rat(a, a, b, a, 2, 1.0, 1e4);
}
static void odd_head(void) {
  hy_tensor *a = hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 5));
  hy_rat(a, a, a, a, 2, 1.0, 1e4);
}
static void zero_chunk(void) {
  hy_tensor *a = hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 4));
  hy_rat(a, a, a, a, 0, 1.0, 1e4);
}

static void keys_without_values(void) {
  hy_tensor *a = hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 4));
  hy_rat_after(a, a, a, a, a, NULL, 2, 1.0, 1e4);
}
static void bad_earlier_shape(void) {
  hy_tensor *a = hy_zeros(HY_F32, HY_SHAPE(1, 4, 2, 4)),
            *e = hy_zeros(HY_F32, HY_SHAPE(1, 3, 1, 4));
  hy_rat_after(a, a, a, a, e, e, 2, 1.0, 1e4);
}
static void ends_of_a_short_chunk(void) {
  hy_tensor *a = hy_zeros(HY_F32, HY_SHAPE(1, 6, 2, 4));
  hy_rat_chunk_ends(a, a, 4);
}

Test(rat, bad_calls_abort_with_the_shapes) {
  t_expect_abort(bad_shapes, 2, (const char *const[]){"rat", "[1, 4, 2, 6]"});
  t_expect_abort(odd_head, 2, (const char *const[]){"rat", "D even"});
  t_expect_abort(zero_chunk, 2, (const char *const[]){"rat", "chunk size 0"});
  t_expect_abort(keys_without_values, 2, (const char *const[]){"rat", "or neither"});
  t_expect_abort(bad_earlier_shape, 2, (const char *const[]){"rat", "[1, 3, 1, 4]"});
  t_expect_abort(ends_of_a_short_chunk, 2,
                 (const char *const[]){"rat_chunk_ends", "a multiple of the chunk 4"});
}

/* ---- the layer ---- */

static hy_model_config model_config(hy_dtype dt) {
  hy_model_config c = hy_model_config_default();
  c.dtype = dt;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_layers = 2;
  c.init_std = 0.4; /* gates away from their linear regime */
  return c;
}

static hy_rat_layer make(int64_t chunk, bool naive, uint64_t seed) {
  hy_model_config cfg = model_config(HY_F64);
  hy_rat_config rc = hy_rat_config_default();
  rc.chunk = chunk;
  rc.naive = naive;
  rc.rope_theta = 30.0;
  hy_rat_layer l;
  hy_rng rng = hy_rng_new(seed);
  hy_rat_layer_init(&l, &t_params, "mixer", &cfg, &rc, &rng);
  return l;
}

static hy_tensor *layer_fn(hy_tensor **in, void *ctx) { return hy_mixer_rat.forward(ctx, in[0]); }

Test(rat, every_layer_parameter_gradchecks) {
  int64_t chunks[] = {1, 4};
  for (int c = 0; c < 2; c++)
    for (int naive = 0; naive < 2; naive++) {
      hy_rat_layer l = make(chunks[c], naive, 1);
      hy_tensor *in[16];
      int n = 0;
      in[n++] = t_param(t_randn(HY_F64, HY_SHAPE(2, 11, 16), 2));
      for (int i = 0; i < t_params.n; i++) in[n++] = t_params.items[i].t;
      cr_assert_eq(n, 1 + 7, "z, u, g (+ bias), q, k, o");
      bool ok = hy_gradcheck(layer_fn, &l, n, in, NULL);
      cr_assert(ok, "chunk %lld %s: worst %.3g", (long long)chunks[c], naive ? "naive" : "fused",
                hy_gradcheck_last_error());
      hy_params_free(&t_params);
      hy_step_reset();
    }
}

Test(rat, fused_layer_equals_plain_layer) {
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(2, 23, 16), 4));
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(2, 23, 16), 5);
  hy_tensor *y[2], *grads[2][16];
  int n = 0;
  for (int naive = 0; naive < 2; naive++) {
    hy_rat_layer l = make(4, naive, 3);
    x->grad = NULL;
    y[naive] = hy_rat_layer_forward(&l, x);
    hy_backward_with(y[naive], gy);
    n = 0;
    grads[naive][n++] = x->grad;
    for (int i = 0; i < t_params.n; i++) grads[naive][n++] = hy_copy(t_params.items[i].t->grad);
    hy_params_free(&t_params);
  }
  double worst = t_max_rel_err(y[0], y[1]);
  cr_assert(worst <= 1e-10, "output: %.3g", worst);
  for (int i = 0; i < n; i++) {
    double e = t_max_rel_err(grads[0][i], grads[1][i]);
    cr_assert(e <= 1e-10, "gradient %d: %.3g", i, e);
    worst = fmax(worst, e);
  }
  cr_log_info("layer fused vs plain: %.3g", worst);
}

Test(rat, decoding_equals_forward) {
  enum { B = 2, T = 23 };
  int64_t chunks[] = {1, 4, 7, 32};
  for (int c = 0; c < 4; c++) {
    hy_rat_layer l = make(chunks[c], false, 6);
    hy_tensor *x = t_randn(HY_F64, HY_SHAPE(B, T, 16), 7);
    hy_no_grad_begin();
    hy_tensor *full = hy_mixer_rat.forward(&l, x);
    void *state = hy_mixer_rat.decode_new(&l, B, T);
    double worst = 0;
    for (int64_t t = 0; t < T; t++) {
      hy_tensor *y = hy_mixer_rat.decode_step(&l, state, hy_slice(x, 1, t, t + 1), t);
      worst = fmax(worst, t_max_rel_err(y, hy_contiguous(hy_slice(full, 1, t, t + 1))));
    }
    hy_no_grad_end();
    hy_mixer_rat.decode_free(state);
    cr_log_info("chunk %lld: decoding vs forward %.3g", (long long)chunks[c], worst);
    cr_assert(worst <= 1e-10, "chunk %lld: decoding vs forward %.3g", (long long)chunks[c], worst);
    hy_params_free(&t_params);
    hy_step_reset();
  }
}

/* The parameters the paper has, by name and shape; b_f = log(uniform(1, L - 1)). */
Test(rat, parameters_and_gate_bias_init) {
  hy_rat_layer l = make(16, false, 8);
  struct {
    const char *name;
    int64_t rows, cols;
  } want[] = {{"mixer/z_proj/weight", 16, 16}, {"mixer/u_proj/weight", 16, 16},
              {"mixer/g_proj/weight", 16, 16}, {"mixer/g_proj/bias", 16, 0},
              {"mixer/q_proj/weight", 8, 16},  {"mixer/k_proj/weight", 8, 16},
              {"mixer/o_proj/weight", 16, 16}};
  cr_assert_eq(t_params.n, 7);
  for (int i = 0; i < 7; i++) {
    cr_assert_str_eq(t_params.items[i].name, want[i].name);
    cr_assert_eq(t_params.items[i].t->shape[0], want[i].rows, "%s", want[i].name);
    if (want[i].cols) cr_assert_eq(t_params.items[i].t->shape[1], want[i].cols, "%s", want[i].name);
  }
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < 16; i++) {
    double b = hy_get(l.g.bias, i);
    lo = fmin(lo, b);
    hi = fmax(hi, b);
  }
  cr_assert(lo >= 0 && hi <= log(15.0) && hi - lo > 0.5, "b_f in [%g, %g]", lo, hi);
  cr_assert_eq(l.heads, 4);
  cr_assert_eq(l.head_dim, 4);
  cr_assert_eq(l.groups, 2);
  const hy_rat_config *d = hy_rat_config_of(NULL);
  cr_assert(d->chunk == 16 && d->n_groups == 2 && d->heads == 0 && d->rope_theta == 10000.0 &&
            !d->naive);
}

/* Head h uses q/k group h mod G (torch's .repeat along channels, as rat_slow.py): H = 4, G = 2. */
Test(rat, heads_take_groups_in_turn) {
  hy_rat_layer l = make(2, false, 9);
  hy_tensor *x = t_randn(HY_F64, HY_SHAPE(2, 5, 16), 10);
  hy_tensor *z, *q, *u, *k, *f;
  hy_rat_layer_project(&l, x, &z, &q, &u, &k, &f);
  hy_tensor *gq = hy_linear_forward(&l.q, x), *gk = hy_linear_forward(&l.k, x); /* [2, 5, 8] */
  cr_assert(q->shape[2] == 4 && q->shape[3] == 4 && k->shape[2] == 4 && f->shape[2] == 4);
  for (int64_t bt = 0; bt < 10; bt++)
    for (int64_t h = 0; h < 4; h++)
      for (int64_t d = 0; d < 4; d++) {
        int64_t src = bt * 8 + (h % 2) * 4 + d, dst = (bt * 4 + h) * 4 + d;
        cr_assert_eq(hy_get(q, dst), hy_get(gq, src));
        cr_assert_eq(hy_get(k, dst), hy_get(gk, src));
      }
}
