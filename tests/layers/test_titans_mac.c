/* titans_mac (memory as context): the segmented layer against a token-by-token reference written
 * here from plain ops (outputs and every gradient, f64, 1e-10; the memory chunked and in its
 * reference form), gradcheck of every parameter with every gradient non-zero, decoding against
 * the forward, f32 against f64, and the refusal of a segment that is not whole chunks. */
#include "layers/model.h"
#include "layers/titans.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hy_params ps;
static void fini(void) {
  hy_params_free(&ps);
  hy_step_reset();
}
TestSuite(titans_mac, .fini = fini);

enum { D_MODEL = 8, MAX_T = 32 };

typedef struct {
  int64_t depth, segment, chunk, persistent;
  bool reference;
} mac_case;

static hy_model_config config_of(hy_dtype dtype, mac_case mc) {
  hy_model_config c = hy_model_config_default();
  c.dtype = dtype;
  c.d_model = D_MODEL;
  c.n_heads = 2;
  c.n_layers = 2;
  c.init_std = 0.4; /* large enough that silu, sigmoids and softmaxes are far from linear */
  c.titans.depth = mc.depth;
  c.titans.chunk = mc.chunk;
  c.titans.segment = mc.segment;
  c.titans.persistent = mc.persistent;
  c.titans.reference = mc.reference;
  c.titans.expansion = 1.5; /* hidden 6 for memory heads of 4 */
  c.titans.heads = 2;
  c.titans.lr_max = 0.7;
  return c;
}

/* A layer whose gains, biases and persistent tokens are moved off their initial values. */
static hy_titans_layer *make(hy_dtype dtype, mac_case mc, uint64_t seed) {
  hy_model_config cfg = config_of(dtype, mc);
  hy_rng rng = hy_rng_new(seed);
  hy_titans_layer *l = hy_mixer_titans_mac.create(&ps, "mixer", &cfg, 0, &rng);
  for (int i = 0; i < ps.n; i++) {
    const char *name = ps.items[i].name;
    if (strstr(name, "norm")) hy_fill_normal(ps.items[i].t, &rng, 1.0, 0.3);
    if (strstr(name, "bias") || strstr(name, "persistent"))
      hy_fill_normal(ps.items[i].t, &rng, 0.0, 0.5);
  }
  return l;
}

/* ---- the token-by-token reference ---- */

/* [B, 1, H n] -> [B, H, 1, n] */
static hy_tensor *mheads(hy_tensor *y, int64_t H) {
  int64_t B = y->shape[0], n = y->shape[2] / H;
  return hy_transpose(hy_reshape(y, HY_SHAPE(B, 1, H, n)), 1, 2);
}

/* z / sqrt(|z|^2 + 1e-12) over the last axis */
static hy_tensor *l2n(hy_tensor *z) {
  return hy_mul(z, hy_rsqrt(hy_add_scalar(hy_sum(hy_mul(z, z), 3, true), 1e-12)));
}

static hy_tensor *mem_query(const hy_titans_memory *m, hy_tensor *x) {
  return l2n(mheads(hy_silu(hy_linear_forward(&m->q, x)), m->heads));
}

/* concat_heads(M_w(q)) W_O for q [B, H, 1, D]: [B, 1, d] */
static hy_tensor *mem_out(const hy_titans_memory *m, hy_tensor *const *w, hy_tensor *q) {
  hy_tensor *y = hy_titans_memory_apply(m, w, q);
  int64_t B = y->shape[0];
  hy_tensor *rows = hy_reshape(hy_contiguous(hy_transpose(y, 1, 2)), HY_SHAPE(B, 1, -1));
  return hy_linear_forward(&m->o, rows);
}

/* x [B, 1, d] in the attention's heads: [B, 1, H, D] */
static hy_tensor *aheads(const hy_attention_layer *a, const hy_linear *p, hy_tensor *x) {
  return hy_reshape(hy_linear_forward(p, x), HY_SHAPE(x->shape[0], 1, a->n_heads, a->head_dim));
}

/* One query q [B, 1, H, D] over n key and value rows [B, 1, H, D] each: [B, 1, d] */
static hy_tensor *attend(const hy_attention_layer *a, hy_tensor *q, int n, hy_tensor **k,
                         hy_tensor **v) {
  hy_tensor *K = hy_transpose(hy_concat(n, k, 1), 1, 2),
            *V = hy_transpose(hy_concat(n, v, 1), 1, 2);
  hy_tensor *s = hy_scale(hy_matmul(hy_transpose(q, 1, 2), hy_transpose(K, 2, 3)),
                          1.0 / sqrt((double)a->head_dim));
  hy_tensor *o = hy_transpose(hy_matmul(hy_softmax(s), V), 1, 2); /* [B, 1, H, D] */
  int64_t B = q->shape[0];
  return hy_linear_forward(&a->o, hy_reshape(hy_contiguous(o), HY_SHAPE(B, 1, -1)));
}

/* y [B, 1, d] / sqrt(mean(y^2) + eps) * g */
static hy_tensor *rms(hy_tensor *y, hy_tensor *g, double eps) {
  hy_tensor *ms = hy_mean(hy_mul(y, y), 2, true);
  return hy_mul(hy_mul(y, hy_rsqrt(hy_add_scalar(ms, eps))), g);
}

/* For each token t of segment n: h_t read at the weights the segment began with; its query over
 * the persistent rows, then (h_i, x_i) for the segment's i <= t; y_t through W_O; the memory's
 * gradient step on RMSNorm(y_t) at its chunk's starting weights, the update when the chunk
 * completes, and z_t read after it; y_t sigmoid(RMSNorm(z_t)). */
static hy_tensor *reference(const hy_titans_layer *l, hy_tensor *x) {
  const hy_titans_memory *m = &l->mem;
  const hy_attention_layer *a = &l->attn;
  int64_t B = x->shape[0], T = x->shape[1], S = l->segment, c = m->chunk, H = m->heads;
  int64_t P = l->pk ? l->pk->shape[0] : 0;
  cr_assert(T <= MAX_T && P + 2 * S <= 2 * MAX_T);
  hy_tensor *w[2] = {NULL, NULL}, *mom[2] = {NULL, NULL}, *u[2] = {NULL, NULL}, *start[2];
  hy_tensor *ysum = NULL, *rows[MAX_T], *keys[2 * MAX_T], *values[2 * MAX_T];
  hy_titans_memory_initial(m, B, w);
  int n = 0; /* rows in keys, values */
  for (int64_t t = 0; t < T; t++) {
    hy_tensor *xt = hy_slice(x, 1, t, t + 1);
    if (t % S == 0) { /* a segment begins: the persistent rows, the weights it reads */
      start[0] = w[0], start[1] = w[1];
      n = 0;
      for (int64_t p = 0; p < P; p++) {
        hy_shape s = HY_SHAPE(B, 1, a->n_heads, a->head_dim);
        keys[n] = hy_add(hy_zeros(x->dtype, s), hy_slice(l->pk, 0, p, p + 1));
        values[n++] = hy_add(hy_zeros(x->dtype, s), hy_slice(l->pv, 0, p, p + 1));
      }
    }
    hy_tensor *h = mem_out(m, start, mem_query(m, xt));
    /* the segment's rows in the order read-outs, then tokens: insert h_t before the tokens */
    int64_t i = t % S, first_token = P + i;
    for (int64_t r = n; r > first_token; r--) keys[r] = keys[r - 1], values[r] = values[r - 1];
    keys[first_token] = hy_rope(aheads(a, &a->k, h), t, a->rope_theta);
    values[first_token] = aheads(a, &a->v, h);
    n++;
    keys[n] = hy_rope(aheads(a, &a->k, xt), t, a->rope_theta);
    values[n++] = aheads(a, &a->v, xt);
    hy_tensor *y = attend(a, hy_rope(aheads(a, &a->q, xt), t, a->rope_theta), n, keys, values);
    /* the memory on u, y normalized */
    hy_tensor *yn = rms(y, l->in_norm, l->norm_eps);
    hy_tensor *k = l2n(mheads(hy_silu(hy_linear_forward(&m->k, yn)), H));
    hy_tensor *v = mheads(hy_silu(hy_linear_forward(&m->v, yn)), H);
    hy_tensor *theta = mheads(hy_scale(hy_sigmoid(hy_linear_forward(&m->theta, yn)), m->lr_max), H);
    hy_tensor *g[2];
    hy_titans_memory_grad(m, w, k, v, theta, g);
    for (int j = 0; j < m->depth; j++) u[j] = u[j] ? hy_add(u[j], g[j]) : g[j];
    ysum = ysum ? hy_add(ysum, yn) : yn;
    if ((t + 1) % c == 0) {
      hy_tensor *mean = hy_scale(ysum, 1.0 / (double)c);
      hy_tensor *eta = mheads(hy_sigmoid(hy_linear_forward(&m->eta, mean)), H);
      hy_tensor *alpha = mheads(hy_sigmoid(hy_linear_forward(&m->alpha, mean)), H);
      for (int j = 0; j < m->depth; j++) {
        mom[j] = mom[j] ? hy_sub(hy_mul(mom[j], eta), u[j]) : hy_scale(u[j], -1.0);
        w[j] = hy_add(hy_sub(w[j], hy_mul(w[j], alpha)), mom[j]);
        u[j] = NULL;
      }
      ysum = NULL;
    }
    hy_tensor *z = mem_out(m, w, mem_query(m, yn));
    rows[t] = hy_mul(y, hy_sigmoid(rms(z, l->mem_norm, l->norm_eps)));
  }
  return T == 1 ? rows[0] : hy_concat((int)T, rows, 1);
}

/* The input's gradient, then every parameter's, copied out. */
static int grads_of(hy_tensor *x, hy_tensor **out) {
  int n = 0;
  out[n++] = x->grad;
  for (int i = 0; i < ps.n; i++) {
    hy_tensor *g = ps.items[i].t->grad;
    cr_assert(g, "%s has no gradient", ps.items[i].name);
    out[n] = hy_empty_like(g);
    hy_copy_into(out[n++], g);
  }
  return n;
}

static void describe(char *buf, size_t size, mac_case mc, const char *what) {
  snprintf(buf, size, "depth %lld segment %lld chunk %lld persistent %lld%s: %s",
           (long long)mc.depth, (long long)mc.segment, (long long)mc.chunk,
           (long long)mc.persistent, mc.reference ? " (memory reference)" : "", what);
}

Test(titans_mac, segments_equal_the_token_reference) {
  enum { B = 2, T = 13 };
  static const mac_case cases[] = {{1, 4, 1, 2, false}, {2, 4, 2, 2, false},  {2, 8, 4, 0, false},
                                   {1, 5, 5, 2, false}, {2, 16, 4, 2, false}, {2, 6, 3, 2, true},
                                   {1, 4, 2, 0, true}};
  double worst = 0;
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    mac_case mc = cases[ci];
    hy_titans_layer *l = make(HY_F64, mc, 3 + ci);
    hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 4));
    hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 5);
    hy_tensor *y[2], *g[2][40];
    int n = 0;
    for (int form = 0; form < 2; form++) {
      y[form] = form ? reference(l, x) : hy_titans_mac_forward(l, x);
      hy_backward_with(y[form], gy);
      n = grads_of(x, g[form]);
      x->grad = NULL;
      hy_params_zero_grad(&ps);
    }
    char what[160];
    describe(what, sizeof what, mc, "output");
    t_expect_close(y[0], y[1], 1e-10, what);
    worst = fmax(worst, t_rel_norm_err(y[0], y[1]));
    for (int i = 0; i < n; i++) {
      describe(what, sizeof what, mc, i ? ps.items[i - 1].name : "input gradient");
      t_expect_close(g[0][i], g[1][i], 1e-10, what);
      worst = fmax(worst, t_rel_norm_err(g[0][i], g[1][i]));
    }
    free(l);
    hy_params_free(&ps);
    hy_step_reset();
  }
  cr_log_info("segments vs token reference: worst relative error %.3g", worst);
}

/* ---- gradcheck of every parameter ---- */

static hy_tensor *layer_fn(hy_tensor **in, void *ctx) { return hy_titans_mac_forward(ctx, in[0]); }

Test(titans_mac, every_parameter_gradchecks) {
  for (int depth = 1; depth <= 2; depth++) {
    mac_case mc = {depth, 4, 2, 2, false};
    hy_titans_layer *l = make(HY_F64, mc, 9);
    hy_tensor *inputs[40];
    int n = 0;
    inputs[n++] = t_param(t_randn(HY_F64, HY_SHAPE(2, 9, D_MODEL), 10));
    for (int i = 0; i < ps.n; i++) inputs[n++] = ps.items[i].t;
    /* A parameter cut off from the output would pass the check with a zero gradient. */
    hy_backward_with(hy_titans_mac_forward(l, inputs[0]),
                     t_randn(HY_F64, HY_SHAPE(2, 9, D_MODEL), 16));
    char what[32];
    snprintf(what, sizeof what, "depth %d", depth);
    t_expect_every_param_reached(&ps, what);
    hy_params_zero_grad(&ps);
    inputs[0]->grad = NULL;
    hy_gradcheck_opts opts = {.max_per_tensor = 16};
    bool ok = hy_gradcheck(layer_fn, l, n, inputs, &opts);
    cr_assert(ok, "depth %d: worst %.3g", depth, hy_gradcheck_last_error());
    cr_log_info("gradcheck depth %d (%d tensors): worst %.3g", depth, n, hy_gradcheck_last_error());
    free(l);
    hy_params_free(&ps);
    hy_step_reset();
  }
}

/* ---- decoding ---- */

Test(titans_mac, decoding_matches_forward) {
  enum { B = 2, T = 13 };
  static const mac_case cases[] = {{1, 4, 1, 2, false},
                                   {2, 6, 3, 0, false},
                                   {2, 6, 3, 2, false},
                                   {1, 8, 8, 2, false},
                                   {2, 16, 4, 2, false}};
  double worst = 0;
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    mac_case mc = cases[ci];
    hy_titans_layer *l = make(HY_F64, mc, 11);
    hy_tensor *x = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 12);
    char what[160];
    describe(what, sizeof what, mc, "decoding");
    worst = fmax(worst, t_expect_decoding_matches(&hy_mixer_titans_mac, l, x, 1e-10, what));
    free(l);
    hy_params_free(&ps);
    hy_step_reset();
  }
  cr_log_info("decoding vs forward: %.3g", worst);
}

/* ---- f32 against f64 ----
 * At the default inner step 1 / D (here 1 / 4): the f64 tests' 0.7 makes each inner step nearly
 * as large as the memory can take, which amplifies f32 rounding through the steps' second-order
 * terms into the input's gradient (measured 1.7e-5 there; at 1 / D, below 1.5e-6 everywhere). */

Test(titans_mac, f32_matches_f64) {
  enum { B = 2, T = 21 };
  double worst[2] = {0, 0};
  for (int depth = 1; depth <= 2; depth++) {
    mac_case mc = {depth, 8, 4, 2, false};
    hy_tensor *y[2], *g[2][40];
    int n = 0;
    hy_tensor *x64 = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 13);
    hy_tensor *gy64 = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 14);
    for (int p = 0; p < 2; p++) {
      hy_dtype dt = p ? HY_F32 : HY_F64;
      hy_titans_layer *l = make(dt, mc, 15);    /* the same values, rounded in f32 */
      l->mem.lr_max = 1.0 / (double)l->mem.dim; /* the default inner step (see above) */
      hy_tensor *x = t_param(t_cast(x64, dt));
      y[p] = hy_titans_mac_forward(l, x);
      hy_backward_with(y[p], t_cast(gy64, dt));
      n = grads_of(x, g[p]);
      for (int i = 0; i < n; i++) g[p][i] = t_cast(g[p][i], HY_F64);
      y[p] = t_cast(y[p], HY_F64);
      free(l);
      hy_params_free(&ps);
    }
    char what[64];
    snprintf(what, sizeof what, "depth %d: output", depth);
    worst[0] = fmax(worst[0], t_expect_each_close(1, &y[1], &y[0], 1e-5, what));
    snprintf(what, sizeof what, "depth %d: gradient", depth);
    worst[1] = fmax(worst[1], t_expect_each_close(n, g[1], g[0], 1e-5, what));
    hy_step_reset();
  }
  cr_log_info("f32 vs f64: outputs %.3g, gradients %.3g", worst[0], worst[1]);
}

/* ---- settings and parameters ---- */

static void segment_of_partial_chunks(void) { make(HY_F32, (mac_case){2, 6, 4, 2, false}, 1); }

Test(titans_mac, segment_must_be_whole_chunks) {
  t_expect_abort(segment_of_partial_chunks, 3,
                 (const char *const[]){"titans_mac", "segment 6", "chunk 4"});
}

Test(titans_mac, parameters_and_kind) {
  hy_titans_layer *l = make(HY_F32, (mac_case){2, 4, 2, 2, false}, 1);
  const char *names[] = {"memory/w_q/weight",  "memory/w_eta/bias", "memory/o_proj/weight",
                         "memory/m0_1",        "memory/m0_2",       "attn/q_proj/weight",
                         "attn/o_proj/weight", "attn/persistent_k", "attn/persistent_v"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char path[HY_PARAM_NAME_MAX];
    snprintf(path, sizeof path, "mixer/%s", names[i]);
    cr_assert(hy_params_find(&ps, path), "no parameter %s", path);
  }
  cr_assert(hy_params_find(&ps, "mixer/memory_input_norm/weight"), "no memory input norm");
  cr_assert(hy_params_find(&ps, "mixer/memory_norm/weight"), "no memory output norm");
  cr_assert_null(hy_params_find(&ps, "mixer/attn_norm/weight"), "MAC has no attention norm");
  cr_assert_eq(hy_mixer_find("titans_mac"), &hy_mixer_titans_mac);
  cr_assert_eq(hy_titans_config_default().segment, 128);
  hy_tensor *x = t_randn(HY_F32, HY_SHAPE(1, 7, D_MODEL), 2);
  cr_assert(hy_same_shape(x, hy_mixer_titans_mac.forward(l, x)));
  hy_mixer_titans_mac.destroy(l);
}
