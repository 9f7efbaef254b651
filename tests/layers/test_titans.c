/* Titans: the memory's explicit inner gradient against the tape, the chunked memory against the
 * token-by-token reference (outputs and every gradient, f64) and against a plain C loop of the
 * chunked math, the sliding-window attention with persistent tokens against a naive masked form,
 * gradcheck of every parameter of "titans_mal" and "titans_mag" (memory depth 1 and 2), decoding
 * against the full forward, and f32 against f64. */
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
TestSuite(titans, .fini = fini);

enum { D_MODEL = 8 };

static hy_model_config model_config(hy_dtype dtype) {
  hy_model_config c = hy_model_config_default();
  c.dtype = dtype;
  c.d_model = D_MODEL;
  c.n_heads = 2;
  c.n_layers = 2;
  c.init_std = 0.4; /* large enough that silu, sigmoids and norms are far from linear */
  return c;
}

static hy_titans_config titans_config(int64_t depth, int64_t chunk) {
  hy_titans_config c = hy_titans_config_default();
  c.depth = depth;
  c.chunk = chunk;
  c.expansion = 1.5; /* hidden 6 for heads of 4 */
  c.heads = 2;
  c.lr_max = 0.7;
  c.window = 4;
  c.persistent = 2;
  return c;
}

/* A layer whose gains, biases and persistent tokens are moved off their initial values. */
static hy_titans_layer *make(hy_dtype dtype, const hy_titans_config *tc, bool gate, uint64_t seed) {
  hy_model_config cfg = model_config(dtype);
  hy_rng rng = hy_rng_new(seed);
  hy_titans_layer *l = hy_titans_new(&ps, "mixer", &cfg, tc, gate, &rng);
  for (int i = 0; i < ps.n; i++) {
    const char *name = ps.items[i].name;
    if (strstr(name, "norm")) hy_fill_normal(ps.items[i].t, &rng, 1.0, 0.3);
    if (strstr(name, "bias") || strstr(name, "persistent"))
      hy_fill_normal(ps.items[i].t, &rng, 0.0, 0.5);
  }
  return l;
}

/* Parameter gradients copied out (only the memory's when memory_only), after the input's. */
static int grads_of(hy_tensor *x, hy_tensor **out, bool memory_only) {
  int n = 0;
  out[n++] = x->grad;
  for (int i = 0; i < ps.n; i++) {
    if (memory_only && !strstr(ps.items[i].name, "/memory/")) continue;
    hy_tensor *g = ps.items[i].t->grad;
    cr_assert(g, "%s has no gradient", ps.items[i].name);
    out[n] = hy_empty_like(g);
    hy_copy_into(out[n++], g);
  }
  return n;
}

/* ---- the explicit inner gradient ---- */

Test(titans, inner_gradient_matches_the_tape) {
  for (int depth = 1; depth <= 2; depth++) {
    hy_titans_config tc = titans_config(depth, 4);
    hy_titans_layer *l = make(HY_F64, &tc, false, 1);
    const hy_titans_memory *m = &l->mem;
    int64_t B = 2, H = m->heads, D = m->dim, n = 5;
    hy_tensor *w[2];
    for (int i = 0; i < depth; i++) {
      hy_shape s = hy_shape_of(m->m0[i]);
      w[i] = t_param(t_randn(HY_F64, HY_SHAPE(B, H, s.d[1], s.d[2]), 10 + (uint64_t)i));
    }
    hy_tensor *k = t_randn(HY_F64, HY_SHAPE(B, H, n, D), 3);
    hy_tensor *v = t_randn(HY_F64, HY_SHAPE(B, H, n, D), 4);
    hy_tensor *theta = t_uniform(HY_F64, HY_SHAPE(B, H, n, 1), 5, 0.1, 1.0);
    hy_tensor *g[2];
    hy_titans_memory_grad(m, w, k, v, theta, g);
    /* sum_t theta_t ||M(k_t) - v_t||^2, differentiated by the tape */
    hy_tensor *err = hy_sub(hy_titans_memory_apply(m, w, k), v);
    hy_backward(hy_sum_all(hy_mul(hy_mul(err, err), theta)));
    for (int i = 0; i < depth; i++) {
      char what[48];
      snprintf(what, sizeof what, "depth %d: gradient of layer %d", depth, i + 1);
      t_expect_close(g[i], w[i]->grad, 1e-13, what);
    }
    free(l);
    hy_params_free(&ps);
    hy_step_reset();
  }
}

/* ---- the chunked form against the token-by-token reference ---- */

Test(titans, chunked_memory_equals_reference) {
  const int64_t chunks[] = {1, 4, 8};
  enum { B = 2, T = 19 }; /* not a multiple of 4 or 8 */
  double worst[2] = {0, 0};
  for (int depth = 1; depth <= 2; depth++)
    for (int ci = 0; ci < 3; ci++) {
      hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 7));
      hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 8);
      hy_tensor *y[2], *grads[2][32];
      int n = 0;
      for (int ref = 0; ref < 2; ref++) {
        hy_titans_config tc = titans_config(depth, chunks[ci]);
        tc.reference = ref;
        hy_titans_layer *l = make(HY_F64, &tc, false, 3); /* same seed: same parameters */
        x->grad = NULL;
        y[ref] = hy_titans_memory_forward(&l->mem, x);
        hy_backward_with(y[ref], gy);
        n = grads_of(x, grads[ref], true);
        free(l);
        hy_params_free(&ps);
      }
      double tol = 1e-10;
      char what[64];
      snprintf(what, sizeof what, "depth %d chunk %lld: output", depth, (long long)chunks[ci]);
      t_expect_close(y[0], y[1], tol, what);
      worst[0] = fmax(worst[0], t_max_rel_err(y[0], y[1]));
      for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "depth %d chunk %lld: gradient %d", depth,
                 (long long)chunks[ci], i);
        t_expect_close(grads[0][i], grads[1][i], tol, what);
        worst[1] = fmax(worst[1], t_max_rel_err(grads[0][i], grads[1][i]));
      }
      if (chunks[ci] == 1) /* one token per chunk: the step form exactly */
        for (int64_t i = 0; i < hy_numel(y[0]); i++)
          cr_assert(hy_get(y[0], i) == hy_get(y[1], i), "chunk 1: output %lld differs",
                    (long long)i);
      hy_step_reset();
    }
  cr_log_info("chunked vs reference: outputs %.3g, gradients %.3g", worst[0], worst[1]);
}

/* ---- the chunked math as a plain C loop ---- */

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }
static double silu(double z) { return z * sigm(z); }

/* y = x W^T (+ b) for W [out, in] */
static void lin(const hy_linear *p, const double *x, int64_t in, int64_t out, double *y) {
  for (int64_t j = 0; j < out; j++) {
    double s = p->bias ? hy_get(p->bias, j) : 0;
    for (int64_t i = 0; i < in; i++) s += x[i] * hy_get(p->weight, j * in + i);
    y[j] = s;
  }
}

static void plain_memory(const hy_titans_memory *m, const hy_tensor *x, double *out) {
  int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2], H = m->heads, D = m->dim;
  int64_t F = m->hidden, c = m->chunk, N = T / c, HD = H * D;
  int64_t r0 = D, c0 = m->depth == 1 ? D : F; /* layer 1 is [r0, c0]; layer 2 is [F, D] */
  double *q = calloc((size_t)(T * HD), 8), *k = calloc((size_t)(T * HD), 8);
  double *v = calloc((size_t)(T * HD), 8), *th = calloc((size_t)(T * H), 8);
  double *eta = calloc((size_t)(N * H + 1), 8), *keep = calloc((size_t)(N * H + 1), 8);
  double *W[2], *S[2], *U[2], *y = calloc((size_t)(T * HD), 8), *xr = calloc((size_t)d, 8);
  int64_t size[2] = {r0 * c0, F * D};
  for (int i = 0; i < 2; i++) {
    W[i] = calloc((size_t)size[i], 8);
    S[i] = calloc((size_t)size[i], 8);
    U[i] = calloc((size_t)size[i], 8);
  }
  double *hbuf = calloc((size_t)F, 8), *abuf = calloc((size_t)F, 8), *G = calloc((size_t)D, 8);
  for (int64_t b = 0; b < B; b++) {
    for (int64_t t = 0; t < T; t++) {
      for (int64_t i = 0; i < d; i++) xr[i] = hy_get(x, (b * T + t) * d + i);
      lin(&m->q, xr, d, HD, q + t * HD);
      lin(&m->k, xr, d, HD, k + t * HD);
      lin(&m->v, xr, d, HD, v + t * HD);
      lin(&m->theta, xr, d, H, th + t * H);
      for (int64_t j = 0; j < HD; j++) {
        q[t * HD + j] = silu(q[t * HD + j]);
        k[t * HD + j] = silu(k[t * HD + j]);
        v[t * HD + j] = silu(v[t * HD + j]);
      }
      for (int64_t h = 0; h < H; h++) {
        th[t * H + h] = m->lr_max * sigm(th[t * H + h]);
        double *rows[2] = {q + t * HD + h * D, k + t * HD + h * D};
        for (int r = 0; r < 2; r++) {
          double n2 = 1e-12;
          for (int64_t j = 0; j < D; j++) n2 += rows[r][j] * rows[r][j];
          for (int64_t j = 0; j < D; j++) rows[r][j] /= sqrt(n2);
        }
      }
    }
    for (int64_t n = 0; n < N; n++) {
      for (int64_t i = 0; i < d; i++) {
        xr[i] = 0;
        for (int64_t t = n * c; t < n * c + c; t++) xr[i] += hy_get(x, (b * T + t) * d + i);
        xr[i] /= (double)c;
      }
      lin(&m->eta, xr, d, H, eta + n * H);
      lin(&m->alpha, xr, d, H, keep + n * H);
      for (int64_t h = 0; h < H; h++) {
        eta[n * H + h] = sigm(eta[n * H + h]);
        keep[n * H + h] = 1 - sigm(keep[n * H + h]);
      }
    }
    for (int64_t h = 0; h < H; h++) {
      for (int i = 0; i < m->depth; i++)
        for (int64_t e = 0; e < size[i]; e++) {
          W[i][e] = hy_get(m->m0[i], h * size[i] + e);
          S[i][e] = 0;
        }
      for (int64_t n = 0; n <= N; n++) {
        /* tokens reading the memory after n chunks: floor((t + 1) / c) == n */
        for (int64_t t = n * c - 1; t < n * c + c - 1 && t < T; t++) {
          if (t < 0) continue;
          const double *qt = q + t * HD + h * D;
          double *yt = y + t * HD + h * D;
          for (int64_t j = 0; j < D; j++) yt[j] = 0;
          if (m->depth == 1) {
            for (int64_t r = 0; r < D; r++)
              for (int64_t j = 0; j < D; j++) yt[j] += qt[r] * W[0][r * D + j];
          } else {
            for (int64_t f = 0; f < F; f++) {
              double s = 0;
              for (int64_t r = 0; r < D; r++) s += qt[r] * W[0][r * F + f];
              abuf[f] = silu(s);
            }
            for (int64_t f = 0; f < F; f++)
              for (int64_t j = 0; j < D; j++) yt[j] += abuf[f] * W[1][f * D + j];
          }
        }
        if (n == N) break;
        for (int i = 0; i < m->depth; i++) memset(U[i], 0, (size_t)size[i] * 8);
        for (int64_t t = n * c; t < n * c + c; t++) {
          const double *kt = k + t * HD + h * D, *vt = v + t * HD + h * D;
          if (m->depth == 1) {
            for (int64_t j = 0; j < D; j++) {
              double p = 0;
              for (int64_t r = 0; r < D; r++) p += kt[r] * W[0][r * D + j];
              G[j] = 2 * th[t * H + h] * (p - vt[j]);
            }
            for (int64_t r = 0; r < D; r++)
              for (int64_t j = 0; j < D; j++) U[0][r * D + j] += kt[r] * G[j];
          } else {
            for (int64_t f = 0; f < F; f++) {
              hbuf[f] = 0;
              for (int64_t r = 0; r < D; r++) hbuf[f] += kt[r] * W[0][r * F + f];
              abuf[f] = silu(hbuf[f]);
            }
            for (int64_t j = 0; j < D; j++) {
              double p = 0;
              for (int64_t f = 0; f < F; f++) p += abuf[f] * W[1][f * D + j];
              G[j] = 2 * th[t * H + h] * (p - vt[j]);
            }
            for (int64_t f = 0; f < F; f++) {
              double da = 0, s = sigm(hbuf[f]);
              for (int64_t j = 0; j < D; j++) {
                U[1][f * D + j] += abuf[f] * G[j];
                da += G[j] * W[1][f * D + j];
              }
              double dh = da * s * (1 + hbuf[f] * (1 - s));
              for (int64_t r = 0; r < D; r++) U[0][r * F + f] += kt[r] * dh;
            }
          }
        }
        for (int i = 0; i < m->depth; i++)
          for (int64_t e = 0; e < size[i]; e++) {
            S[i][e] = eta[n * H + h] * S[i][e] - U[i][e];
            W[i][e] = keep[n * H + h] * W[i][e] + S[i][e];
          }
      }
    }
    for (int64_t t = 0; t < T; t++) lin(&m->o, y + t * HD, HD, d, out + (b * T + t) * d);
  }
  void *bufs[] = {q, k, v, th, eta, keep, y, xr, hbuf, abuf, G};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
  for (int i = 0; i < 2; i++) {
    free(W[i]);
    free(S[i]);
    free(U[i]);
  }
}

Test(titans, chunked_memory_equals_plain_loop) {
  const int64_t chunks[] = {1, 3, 4, 8, 32};
  enum { B = 2, T = 19 };
  double worst = 0;
  for (int depth = 1; depth <= 2; depth++)
    for (int ci = 0; ci < 5; ci++) {
      hy_titans_config tc = titans_config(depth, chunks[ci]);
      hy_titans_layer *l = make(HY_F64, &tc, false, 5);
      hy_tensor *x = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 6);
      hy_tensor *y = hy_titans_memory_forward(&l->mem, x);
      hy_tensor *ref = hy_empty(HY_F64, HY_SHAPE(B, T, D_MODEL));
      plain_memory(&l->mem, x, ref->data);
      char what[48];
      snprintf(what, sizeof what, "depth %d chunk %lld", depth, (long long)chunks[ci]);
      t_expect_close(y, ref, 1e-12, what);
      worst = fmax(worst, t_max_rel_err(y, ref));
      free(l);
      hy_params_free(&ps);
      hy_step_reset();
    }
  cr_log_info("chunked vs plain loop: %.3g", worst);
}

/* ---- sliding-window attention with persistent tokens ---- */

/* All keys [persistent; k] at once, the mask built per query. */
static hy_tensor *naive_persistent(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *pk,
                                   hy_tensor *pv, double scale, int64_t window) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3], P = pk->shape[0];
  hy_tensor *keys = k, *vals = v;
  if (P > 0) {
    hy_shape s = HY_SHAPE(B, P, H, D);
    keys = hy_concat(2, (hy_tensor *[]){hy_add(hy_zeros(q->dtype, s), pk), k}, 1);
    vals = hy_concat(2, (hy_tensor *[]){hy_add(hy_zeros(q->dtype, s), pv), v}, 1);
  }
  hy_tensor *mask = hy_zeros(q->dtype, HY_SHAPE(T, P + T));
  for (int64_t t = 0; t < T; t++)
    for (int64_t s = 0; s < T; s++)
      if (s > t || (window > 0 && t - s >= window)) hy_set(mask, t * (P + T) + P + s, -INFINITY);
  hy_tensor *qh = hy_transpose(q, 1, 2), *kh = hy_transpose(keys, 1, 2);
  hy_tensor *sc = hy_add(hy_scale(hy_matmul(qh, hy_transpose(kh, 2, 3)), scale), mask);
  hy_tensor *o = hy_matmul(hy_softmax(sc), hy_transpose(vals, 1, 2));
  return hy_contiguous(hy_transpose(o, 1, 2));
}

/* max |a - ref| / max(|ref|_inf, 1): with a window of 1 the gradients of q and k are 0 up to
 * rounding. */
static void expect_near(const hy_tensor *a, const hy_tensor *ref, double tol, const char *what) {
  cr_assert(hy_same_shape(a, ref), "%s: shapes differ", what);
  double err = 0, scale = 1;
  for (int64_t i = 0; i < hy_numel(ref); i++) {
    scale = fmax(scale, fabs(hy_get(ref, i)));
    err = fmax(err, fabs(hy_get(a, i) - hy_get(ref, i)));
  }
  cr_assert(err <= tol * scale, "%s: error %.3g (scale %.3g)", what, err, scale);
}

Test(titans, window_attention_with_persistent_tokens) {
  enum { B = 2, T = 11, H = 2, D = 4 };
  const int64_t windows[] = {0, 1, 3, 4, 11, 20};
  for (int P = 0; P <= 3; P += 3)
    for (int wi = 0; wi < 6; wi++) {
      hy_tensor *in[5];
      for (int i = 0; i < 3; i++) in[i] = t_param(t_randn(HY_F64, HY_SHAPE(B, T, H, D), 20 + i));
      in[3] = t_param(t_randn(HY_F64, HY_SHAPE(P, H, D), 30));
      in[4] = t_param(t_randn(HY_F64, HY_SHAPE(P, H, D), 31));
      hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(B, T, H, D), 32);
      hy_tensor *y[2], *g[2][5];
      for (int naive = 0; naive < 2; naive++) {
        for (int i = 0; i < 5; i++) in[i]->grad = NULL;
        y[naive] = naive ? naive_persistent(in[0], in[1], in[2], in[3], in[4], 0.5, windows[wi])
                         : hy_titans_window_attention(in[0], in[1], in[2], P ? in[3] : NULL,
                                                      P ? in[4] : NULL, 0.5, windows[wi]);
        hy_backward_with(y[naive], gy);
        for (int i = 0; i < 5; i++) g[naive][i] = in[i]->grad;
      }
      char what[64];
      snprintf(what, sizeof what, "P %d window %lld: output", P, (long long)windows[wi]);
      expect_near(y[0], y[1], 1e-12, what);
      for (int i = 0; i < (P ? 5 : 3); i++) {
        snprintf(what, sizeof what, "P %d window %lld: gradient %d", P, (long long)windows[wi], i);
        expect_near(g[0][i], g[1][i], 1e-12, what);
      }
      hy_step_reset();
    }
}

/* ---- gradcheck of every parameter ---- */

static hy_tensor *layer_fn(hy_tensor **in, void *ctx) { return hy_titans_forward(ctx, in[0]); }

Test(titans, every_parameter_gradchecks) {
  for (int gate = 0; gate < 2; gate++)
    for (int depth = 1; depth <= 2; depth++) {
      hy_titans_config tc = titans_config(depth, 3);
      hy_titans_layer *l = make(HY_F64, &tc, gate, 9);
      hy_tensor *inputs[40];
      int n = 0;
      inputs[n++] = t_param(t_randn(HY_F64, HY_SHAPE(2, 8, D_MODEL), 10));
      for (int i = 0; i < ps.n; i++) inputs[n++] = ps.items[i].t;
      /* A parameter cut off from the output would pass the check with a zero gradient. */
      hy_backward_with(hy_titans_forward(l, inputs[0]),
                       t_randn(HY_F64, HY_SHAPE(2, 8, D_MODEL), 16));
      char what[64];
      snprintf(what, sizeof what, "%s depth %d", gate ? "mag" : "mal", depth);
      t_expect_every_param_reached(&ps, what);
      hy_params_zero_grad(&ps);
      inputs[0]->grad = NULL;
      hy_gradcheck_opts opts = {.max_per_tensor = 16};
      bool ok = hy_gradcheck(layer_fn, l, n, inputs, &opts);
      cr_assert(ok, "%s depth %d: worst %.3g", gate ? "mag" : "mal", depth,
                hy_gradcheck_last_error());
      cr_log_info("gradcheck %s depth %d (%d tensors): worst %.3g", gate ? "mag" : "mal", depth, n,
                  hy_gradcheck_last_error());
      free(l);
      hy_params_free(&ps);
      hy_step_reset();
    }
}

/* ---- decoding ---- */

Test(titans, decoding_matches_forward) {
  enum { B = 2, T = 13 };
  const int64_t chunks[] = {1, 3, 16};
  double worst = 0;
  for (int gate = 0; gate < 2; gate++)
    for (int depth = 1; depth <= 2; depth++)
      for (int ci = 0; ci < 3; ci++)
        for (int P = 0; P <= 2; P += 2) {
          hy_titans_config tc = titans_config(depth, chunks[ci]);
          tc.persistent = P;
          hy_titans_layer *l = make(HY_F64, &tc, gate, 11);
          const hy_mixer_kind *kind = gate ? &hy_mixer_titans_mag : &hy_mixer_titans_mal;
          hy_tensor *x = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 12);
          char what[80];
          snprintf(what, sizeof what, "%s depth %d chunk %lld P %d", gate ? "mag" : "mal", depth,
                   (long long)chunks[ci], P);
          worst = fmax(worst, t_expect_decoding_matches(kind, l, x, 1e-10, what));
          free(l);
          hy_params_free(&ps);
          hy_step_reset();
        }
  cr_log_info("decoding vs forward: %.3g", worst);
}

/* ---- f32 against f64 ---- */

Test(titans, f32_matches_f64) {
  enum { B = 2, T = 21 };
  double worst[2] = {0, 0};
  for (int gate = 0; gate < 2; gate++)
    for (int depth = 1; depth <= 2; depth++) {
      hy_titans_config tc = titans_config(depth, 4);
      hy_tensor *y[2], *g[2][40];
      int n = 0;
      hy_tensor *x64 = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 13);
      hy_tensor *gy64 = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 14);
      for (int p = 0; p < 2; p++) {
        hy_dtype dt = p ? HY_F32 : HY_F64;
        hy_titans_layer *l = make(dt, &tc, gate, 15); /* the same values, rounded in f32 */
        hy_tensor *x = t_param(t_cast(x64, dt));
        y[p] = hy_titans_forward(l, x);
        hy_backward_with(y[p], t_cast(gy64, dt));
        n = grads_of(x, g[p], false);
        for (int i = 0; i < n; i++) g[p][i] = t_cast(g[p][i], HY_F64);
        y[p] = t_cast(y[p], HY_F64);
        free(l);
        hy_params_free(&ps);
      }
      char what[64];
      snprintf(what, sizeof what, "%s depth %d: output", gate ? "mag" : "mal", depth);
      worst[0] = fmax(worst[0], t_expect_each_close(1, &y[1], &y[0], 1e-5, what));
      snprintf(what, sizeof what, "%s depth %d: gradient", gate ? "mag" : "mal", depth);
      worst[1] = fmax(worst[1], t_expect_each_close(n, g[1], g[0], 1e-5, what));
      hy_step_reset();
    }
  cr_log_info("f32 vs f64: outputs %.3g, gradients %.3g", worst[0], worst[1]);
}

/* ---- parameters and the mixer kinds ---- */

Test(titans, parameter_names_and_mixer_kinds) {
  hy_model_config cfg = model_config(HY_F32);
  hy_rng rng = hy_rng_new(1);
  hy_titans_layer *l = hy_mixer_titans_mag.create(&ps, "blocks/0/mixer", &cfg, 0, &rng);
  const char *names[] = {
      "memory/w_q/weight", "memory/w_k/weight",   "memory/w_v/weight",   "memory/w_eta/weight",
      "memory/w_eta/bias", "memory/w_theta/bias", "memory/w_alpha/bias", "memory/o_proj/weight",
      "memory/m0_1",       "memory/m0_2",         "attn/q_proj/weight",  "attn/o_proj/weight",
      "attn/persistent_k", "attn/persistent_v",   "attn_norm/weight",    "memory_norm/weight"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char path[HY_PARAM_NAME_MAX];
    snprintf(path, sizeof path, "blocks/0/mixer/%s", names[i]);
    cr_assert(hy_params_find(&ps, path), "no parameter %s", path);
  }
  const hy_titans_config *tc = hy_titans_config_of(&cfg);
  /* the defaults: a 2-layer memory of one head of width d, 4x wide, 4 persistent tokens */
  cr_assert_eq(hy_params_find(&ps, "blocks/0/mixer/memory/m0_1")->t->shape[2], 4 * D_MODEL);
  cr_assert_eq(hy_params_find(&ps, "blocks/0/mixer/attn/persistent_k")->t->shape[0],
               tc->persistent);
  cr_assert_str_eq(hy_mixer_titans_mal.name, "titans_mal");
  cr_assert_str_eq(hy_mixer_titans_mag.name, "titans_mag");
  hy_tensor *x = t_randn(HY_F32, HY_SHAPE(1, 5, D_MODEL), 2);
  hy_tensor *y = hy_mixer_titans_mag.forward(l, x);
  cr_assert(hy_same_shape(x, y));
  hy_mixer_titans_mag.destroy(l);
}
