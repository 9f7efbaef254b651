#include "layers/titans_memory.h"
#include "dist/collective_ops.h"
#include "layers/titans.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* l2norm(z) = z / sqrt(|z|^2 + L2_EPS) over the last axis, as one fused RMSNorm. */
#define L2_EPS 1e-12

void hy_titans_memory_init(hy_titans_memory *m, hy_params *ps, const char *prefix,
                           const hy_titans_config *c, int64_t d_model, hy_dtype dtype, hy_rng *rng,
                           double init_std, double out_std) {
  const char *op = "titans";
  int64_t H = c->heads, D = c->head_dim;
  if (H < 1) hy_die(op, "memory heads %lld must be >= 1", (long long)H);
  if (D == 0) {
    if (d_model % H)
      hy_die(op, "d_model %lld must split into %lld heads", (long long)d_model, (long long)H);
    D = d_model / H;
  }
  if (D < 1 || (c->depth != 1 && c->depth != 2) || c->chunk < 1 || !(c->expansion > 0))
    hy_die(op, "bad memory settings: head width %lld, depth %lld, chunk %lld, expansion %g",
           (long long)D, (long long)c->depth, (long long)c->chunk, c->expansion);
  *m = (hy_titans_memory){.heads = H,
                          .dim = D,
                          .hidden = c->depth == 2 ? (int64_t)(c->expansion * (double)D) : D,
                          .depth = c->depth,
                          .chunk = c->chunk,
                          .lr_max = c->lr_max > 0 ? c->lr_max : 1.0 / (double)D,
                          .reference = c->reference};
  if (m->hidden < 1) hy_die(op, "memory hidden width %lld", (long long)m->hidden);
  char path[HY_PARAM_NAME_MAX];
#define PROJ(field, name, in, out, bias, s)                                                        \
  snprintf(path, sizeof path, "%s/%s", prefix, name);                                              \
  hy_linear_init(&m->field, ps, path, in, out, bias, dtype, rng, s)
  PROJ(q, "w_q", d_model, H * D, false, init_std);
  PROJ(k, "w_k", d_model, H * D, false, init_std);
  PROJ(v, "w_v", d_model, H * D, false, init_std);
  PROJ(eta, "w_eta", d_model, H, true, init_std);
  PROJ(theta, "w_theta", d_model, H, true, init_std);
  PROJ(alpha, "w_alpha", d_model, H, true, init_std);
  PROJ(o, "o_proj", H * D, d_model, false, out_std);
#undef PROJ
  int64_t dims[3] = {D, m->hidden, D};
  if (m->depth == 1) dims[1] = D;
  for (int i = 0; i < m->depth; i++) {
    char name[16];
    snprintf(name, sizeof name, "m0_%d", i + 1);
    int64_t in = dims[i], out = i + 1 == m->depth ? D : dims[i + 1];
    m->m0[i] = hy_params_add(ps, prefix, name, dtype, HY_SHAPE(H, in, out), true);
    double bound = sqrt(6.0 / (double)(in + out)); /* xavier uniform */
    hy_fill_uniform(m->m0[i], rng, -bound, bound);
  }
}

/* ---- pieces shared by the chunked form, the reference and decoding ---- */

static hy_tensor *l2norm(hy_tensor *z) {
  double D = (double)z->shape[z->ndim - 1];
  return hy_scale(hy_rmsnorm(z, NULL, L2_EPS / D), 1.0 / sqrt(D));
}

/* [B, T, H * n] -> [B, H, T, n], contiguous. */
static hy_tensor *heads_first(hy_tensor *y, int64_t H) {
  int64_t B = y->shape[0], T = y->shape[1];
  return hy_contiguous(hy_transpose(hy_reshape(y, HY_SHAPE(B, T, H, y->shape[2] / H)), 1, 2));
}

/* The memory's queries of x [B, T, d]: [B, H, T, D]. */
static hy_tensor *query(const hy_titans_memory *m, hy_tensor *x) {
  return l2norm(heads_first(hy_silu(hy_linear_forward(&m->q, x)), m->heads));
}

/* q, k, v [B, H, T, D] and theta [B, H, T, 1] of x [B, T, d]. */
static void project(const hy_titans_memory *m, hy_tensor *x, hy_tensor **q, hy_tensor **k,
                    hy_tensor **v, hy_tensor **theta) {
  int64_t H = m->heads;
  *q = query(m, x);
  *k = l2norm(heads_first(hy_silu(hy_linear_forward(&m->k, x)), H));
  *v = heads_first(hy_silu(hy_linear_forward(&m->v, x)), H);
  *theta = heads_first(hy_scale(hy_sigmoid(hy_linear_forward(&m->theta, x)), m->lr_max), H);
}

/* The momentum eta and the retention 1 - alpha of chunk means xbar [B, N, d]: [B, H, N, 1]. */
static void gates(const hy_titans_memory *m, hy_tensor *xbar, hy_tensor **eta, hy_tensor **keep) {
  int64_t H = m->heads;
  *eta = heads_first(hy_sigmoid(hy_linear_forward(&m->eta, xbar)), H);
  hy_tensor *alpha = heads_first(hy_sigmoid(hy_linear_forward(&m->alpha, xbar)), H);
  *keep = hy_add_scalar(hy_scale(alpha, -1.0), 1.0);
}

/* M_0 for each of B sequences: [B, H, ., .]. */
void hy_titans_memory_initial(const hy_titans_memory *m, int64_t B, hy_tensor **w) {
  for (int i = 0; i < m->depth; i++) {
    hy_shape s = hy_shape_of(m->m0[i]);
    w[i] = hy_add(hy_zeros(m->m0[i]->dtype, HY_SHAPE(B, s.d[0], s.d[1], s.d[2])), m->m0[i]);
  }
}

void hy_titans_memory_grad(const hy_titans_memory *m, hy_tensor *const *w, hy_tensor *k,
                           hy_tensor *v, hy_tensor *theta, hy_tensor **g) {
  if (m->depth == 1) {
    hy_tensor *err = hy_sub(hy_matmul(k, w[0]), v);
    hy_tensor *G = hy_scale(hy_mul(err, theta), 2.0); /* d loss / d M(k), rows weighted */
    g[0] = hy_matmul(hy_transpose(k, 2, 3), G);
    return;
  }
  hy_tensor *h = hy_matmul(k, w[0]), *s = hy_sigmoid(h), *a = hy_silu(h);
  hy_tensor *err = hy_sub(hy_matmul(a, w[1]), v);
  hy_tensor *G = hy_scale(hy_mul(err, theta), 2.0);
  g[1] = hy_matmul(hy_transpose(a, 2, 3), G);
  hy_tensor *da = hy_matmul(G, hy_transpose(w[1], 2, 3));
  /* silu'(h) = s (1 + h (1 - s)) */
  hy_tensor *dsilu =
      hy_mul(s, hy_add_scalar(hy_mul(h, hy_add_scalar(hy_scale(s, -1.0), 1.0)), 1.0));
  g[0] = hy_matmul(hy_transpose(k, 2, 3), hy_mul(da, dsilu));
}

hy_tensor *hy_titans_memory_apply(const hy_titans_memory *m, hy_tensor *const *w, hy_tensor *z) {
  if (m->depth == 1) return hy_matmul(z, w[0]);
  return hy_matmul(hy_silu(hy_matmul(z, w[0])), w[1]);
}

/* One chunk's update: S = eta S - U (S NULL: no momentum yet), W = (1 - alpha) W + S. */
static void update(const hy_titans_memory *m, hy_tensor **w, hy_tensor **s, hy_tensor *const *u,
                   hy_tensor *eta, hy_tensor *keep) {
  for (int i = 0; i < m->depth; i++) {
    s[i] = s[i] ? hy_sub(hy_mul(s[i], eta), u[i]) : hy_scale(u[i], -1.0);
    w[i] = hy_add(hy_mul(w[i], keep), s[i]);
  }
}

/* y [B, H, T, D] -> concat_heads(y) W_O, [B, T, d]. */
static hy_tensor *output(const hy_titans_memory *m, hy_tensor *y) {
  int64_t B = y->shape[0], T = y->shape[2];
  hy_tensor *yt = hy_contiguous(hy_transpose(y, 1, 2));
  return hy_linear_forward(&m->o, hy_reshape(yt, HY_SHAPE(B, T, m->heads * m->dim)));
}

/* ---- the chunked form (tensor/titans_scan.c) ---- */

/* The chunk recurrence as one op with a hand-written backward, on either device. Under sequence
 * parallelism each rank holds whole chunks, and the memory is handed along the ranks: rank r
 * starts from the weights and momentum rank r - 1 ends in and hands its own on (2 P values per
 * sequence and memory head). So the ranks' scans run one after another; the rest of the layer
 * does not wait. The backward hands the state's gradient back the same way. */
hy_shape hy_titans_memory_state_shape(const hy_titans_memory *m, int64_t batch) {
  int64_t P = m->depth == 2 ? 2 * m->dim * m->hidden : m->dim * m->dim;
  return HY_SHAPE(batch, m->heads, 2, P);
}

hy_tensor *hy_titans_memory_recv_state(const hy_titans_memory *m, const hy_tensor *x) {
  const hy_sequence *seq = hy_sequence_get();
  hy_dtype dt = x->dtype == HY_BF16 ? HY_F32 : x->dtype; /* the scan's state is never bf16 */
  return hy_dist_recv(seq->group, hy_group_rank(seq->group) - 1, x->device, dt,
                      hy_titans_memory_state_shape(m, x->shape[0]));
}

static hy_tensor *scan(const hy_titans_memory *m, hy_tensor *q, hy_tensor *k, hy_tensor *v,
                       hy_tensor *theta, hy_tensor *eta, hy_tensor *keep) {
  hy_tensor *w2 = m->depth == 2 ? m->m0[1] : NULL;
  if (!hy_sequence_parallel())
    return hy_titans_scan(q, k, v, theta, eta, keep, m->m0[0], w2, m->chunk);
  const hy_sequence *seq = hy_sequence_get();
  int W = hy_group_size(seq->group), r = hy_group_rank(seq->group);
  hy_tensor *init = NULL, *last = NULL;
  if (r > 0) init = hy_titans_memory_recv_state(m, q);
  hy_tensor *y = hy_titans_scan_state(q, k, v, theta, eta, keep, m->m0[0], w2, init, m->chunk,
                                      r + 1 < W ? &last : NULL);
  return last ? hy_dist_send(seq->group, r + 1, last, y) : y;
}

hy_tensor *hy_titans_memory_forward(const hy_titans_memory *m, hy_tensor *x) {
  int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2], c = m->chunk, N = T / c;
  if (hy_sequence_parallel() && m->reference)
    hy_die("titans", "the memory's reference form has no sequence-parallel form");
  if (hy_sequence_parallel() && T % c)
    hy_die("titans",
           "sequence parallelism hands the memory on between chunks: this rank's slice of %lld "
           "tokens must be a whole number of chunks of %lld ([layer.titans] chunk)",
           (long long)T, (long long)c);
  if (m->reference) return hy_titans_memory_reference(m, x);
  if (T == 0) return hy_zeros(x->dtype, HY_SHAPE(B, 0, d));
  hy_tensor *q, *k, *v, *theta, *eta = NULL, *keep = NULL;
  project(m, x, &q, &k, &v, &theta);
  if (N > 0) { /* the mean input of each complete chunk */
    hy_tensor *xc = hy_reshape(hy_slice(x, 1, 0, N * c), HY_SHAPE(B, N, c, d));
    gates(m, hy_mean(xc, 2, false), &eta, &keep);
  }
  return output(m, scan(m, q, k, v, theta, eta, keep));
}

hy_tensor *hy_titans_memory_scan_composed(const hy_titans_memory *m, hy_tensor *q, hy_tensor *k,
                                          hy_tensor *v, hy_tensor *theta, hy_tensor *eta,
                                          hy_tensor *keep) {
  int64_t B = q->shape[0], T = q->shape[2], c = m->chunk, N = T / c;
  hy_tensor *w[2], *s[2] = {NULL, NULL}, *u[2];
  hy_titans_memory_initial(m, B, w);
  hy_tensor **pieces = malloc((size_t)(N + 1) * sizeof *pieces);
  if (!pieces) hy_die("titans", "out of memory");
  int n_pieces = 0;
  /* Tokens before the end of the first chunk read M_0; the last token of chunk n and the tokens
   * of chunk n + 1 before its last read the memory after chunk n. */
  int64_t first = c - 1 < T ? c - 1 : T;
  if (first > 0) pieces[n_pieces++] = hy_titans_memory_apply(m, w, hy_slice(q, 2, 0, first));
  for (int64_t n = 0; n < N; n++) {
    int64_t lo = n * c, hi = lo + c;
    hy_titans_memory_grad(m, w, hy_slice(k, 2, lo, hi), hy_slice(v, 2, lo, hi),
                          hy_slice(theta, 2, lo, hi), u);
    update(m, w, s, u, hy_slice(eta, 2, n, n + 1), hy_slice(keep, 2, n, n + 1));
    int64_t end = hi - 1 + c < T ? hi - 1 + c : T;
    pieces[n_pieces++] = hy_titans_memory_apply(m, w, hy_slice(q, 2, hi - 1, end));
  }
  hy_tensor *y = n_pieces == 1 ? pieces[0] : hy_concat(n_pieces, pieces, 2);
  free(pieces);
  return y;
}

/* ---- the token-by-token reference ---- */

/* The mean input of each complete chunk, summed token by token: [B, N, d] (NULL when N = 0). */
static hy_tensor *chunk_means(hy_tensor *x, int64_t c) {
  int64_t N = x->shape[1] / c;
  if (N == 0) return NULL;
  hy_tensor **means = malloc((size_t)N * sizeof *means);
  if (!means) hy_die("titans", "out of memory");
  for (int64_t n = 0; n < N; n++) {
    hy_tensor *sum = hy_slice(x, 1, n * c, n * c + 1);
    for (int64_t t = n * c + 1; t < n * c + c; t++) sum = hy_add(sum, hy_slice(x, 1, t, t + 1));
    means[n] = hy_scale(sum, 1.0 / (double)c);
  }
  hy_tensor *all = N == 1 ? means[0] : hy_concat((int)N, means, 1);
  free(means);
  return all;
}

/* The token loop from weights w and momentum s (NULL: none yet), which become the state after the
 * last complete chunk. */
static hy_tensor *reference_from(const hy_titans_memory *m, hy_tensor *x, hy_tensor **w,
                                 hy_tensor **s) {
  int64_t T = x->shape[1], c = m->chunk;
  /* Every position-wise map (projections, gates of the chunk means) runs once over all rows, as
   * in the chunked form: a matrix product's rounding depends on its number of rows. */
  hy_tensor *q, *k, *v, *theta, *eta = NULL, *keep = NULL, *means = chunk_means(x, c);
  project(m, x, &q, &k, &v, &theta);
  if (means) gates(m, means, &eta, &keep);
  hy_tensor *u[2] = {NULL, NULL}, *g[2];
  hy_tensor **rows = malloc((size_t)T * sizeof *rows);
  if (!rows) hy_die("titans", "out of memory");
  for (int64_t t = 0; t < T; t++) {
    /* this token's gradient at the weights its chunk started with */
    hy_titans_memory_grad(m, w, hy_slice(k, 2, t, t + 1), hy_slice(v, 2, t, t + 1),
                          hy_slice(theta, 2, t, t + 1), g);
    for (int i = 0; i < m->depth; i++) u[i] = u[i] ? hy_add(u[i], g[i]) : g[i];
    if ((t + 1) % c == 0) { /* the chunk is complete: update the memory */
      int64_t n = t / c;
      update(m, w, s, u, hy_slice(eta, 2, n, n + 1), hy_slice(keep, 2, n, n + 1));
      u[0] = u[1] = NULL;
    }
    rows[t] = hy_titans_memory_apply(m, w, hy_slice(q, 2, t, t + 1));
  }
  hy_tensor *y = T == 1 ? rows[0] : hy_concat((int)T, rows, 2);
  free(rows);
  return output(m, y);
}

hy_tensor *hy_titans_memory_reference(const hy_titans_memory *m, hy_tensor *x) {
  int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2];
  if (T == 0) return hy_zeros(x->dtype, HY_SHAPE(B, 0, d));
  hy_tensor *w[2], *s[2] = {NULL, NULL};
  hy_titans_memory_initial(m, B, w);
  return reference_from(m, x, w, s);
}

/* ---- continuing from a state (titans_mac's segments) ---- */

/* The weights of a state [B, H, 2, P] (hy_titans_scan_state's layout: per sequence and head the
 * weights, w1's then w2's row-major, then the momentum the same way), [B, H, ., .] each. */
static void state_part(const hy_titans_memory *m, hy_tensor *state, int part, hy_tensor **w) {
  int64_t B = state->shape[0], H = m->heads, D = m->dim, F = m->hidden;
  hy_tensor *row = hy_slice(state, 2, part, part + 1);
  if (m->depth == 1) {
    w[0] = hy_reshape(row, HY_SHAPE(B, H, D, D));
    return;
  }
  w[0] = hy_reshape(hy_slice(row, 3, 0, D * F), HY_SHAPE(B, H, D, F));
  w[1] = hy_reshape(hy_slice(row, 3, D * F, 2 * D * F), HY_SHAPE(B, H, F, D));
}

/* The state [B, H, 2, P] of weights w and momentum s (NULL: zero). */
static hy_tensor *pack_state(const hy_titans_memory *m, hy_tensor **w, hy_tensor **s) {
  int64_t B = w[0]->shape[0], H = m->heads;
  hy_tensor *rows[2];
  for (int part = 0; part < 2; part++) {
    hy_tensor *flat[2];
    for (int i = 0; i < m->depth; i++) {
      hy_tensor *x = part ? (s[i] ? s[i] : hy_zeros(w[i]->dtype, hy_shape_of(w[i]))) : w[i];
      flat[i] = hy_reshape(x, HY_SHAPE(B, H, 1, -1));
    }
    rows[part] = m->depth == 1 ? flat[0] : hy_concat(2, flat, 3);
  }
  return hy_concat(2, rows, 2);
}

hy_tensor *hy_titans_memory_read(const hy_titans_memory *m, hy_tensor *state, hy_tensor *x) {
  hy_tensor *q = query(m, x), *w[2] = {NULL, NULL};
  if (state) {
    state_part(m, state, 0, w);
  } else {
    hy_titans_memory_initial(m, x->shape[0], w);
  }
  for (int i = 0; i < m->depth; i++) w[i] = hy_cast(w[i], q->dtype); /* f32 state, bf16 input */
  return output(m, hy_titans_memory_apply(m, w, q));
}

hy_tensor *hy_titans_memory_continue(const hy_titans_memory *m, hy_tensor *x, hy_tensor **state) {
  int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2], c = m->chunk, N = T / c;
  if (T == 0) return hy_zeros(x->dtype, HY_SHAPE(B, 0, d));
  if (m->reference) {
    hy_tensor *w[2] = {NULL, NULL}, *s[2] = {NULL, NULL};
    if (*state) {
      state_part(m, *state, 0, w);
      state_part(m, *state, 1, s);
    } else {
      hy_titans_memory_initial(m, B, w);
    }
    hy_tensor *y = reference_from(m, x, w, s);
    *state = pack_state(m, w, s);
    return y;
  }
  hy_tensor *q, *k, *v, *theta, *eta = NULL, *keep = NULL, *last = NULL;
  project(m, x, &q, &k, &v, &theta);
  if (N > 0) {
    hy_tensor *xc = hy_reshape(hy_slice(x, 1, 0, N * c), HY_SHAPE(B, N, c, d));
    gates(m, hy_mean(xc, 2, false), &eta, &keep);
  }
  hy_tensor *y = hy_titans_scan_state(q, k, v, theta, eta, keep, m->m0[0],
                                      m->depth == 2 ? m->m0[1] : NULL, *state, c, &last);
  *state = last;
  return output(m, y);
}

/* ---- decoding ---- */

typedef struct {
  hy_tensor *w[2], *s[2], *u[2]; /* weights, momentum, this chunk's gradient sum [B, H, ., .] */
  hy_tensor *xsum;               /* this chunk's input sum [B, 1, d] */
  int64_t count;                 /* tokens of this chunk so far */
} mem_state;

void *hy_titans_memory_state_new(const hy_titans_memory *m, int64_t batch) {
  mem_state *st = calloc(1, sizeof *st);
  if (!st) hy_die("titans", "out of memory");
  hy_dtype dt = m->m0[0]->dtype;
  for (int i = 0; i < m->depth; i++) {
    hy_shape s = hy_shape_of(m->m0[i]);
    hy_shape sb = HY_SHAPE(batch, s.d[0], s.d[1], s.d[2]);
    st->w[i] = hy_zeros_persistent(dt, sb);
    for (int64_t b = 0; b < batch; b++)
      hy_copy_into(hy_reshape(hy_slice(st->w[i], 0, b, b + 1), s), m->m0[i]);
    st->s[i] = hy_zeros_persistent(dt, sb);
    st->u[i] = hy_zeros_persistent(dt, sb);
  }
  st->xsum = hy_zeros_persistent(dt, HY_SHAPE(batch, 1, m->q.weight->shape[1]));
  return st;
}

hy_tensor *hy_titans_memory_step(const hy_titans_memory *m, void *state, hy_tensor *x) {
  mem_state *st = state;
  hy_tensor *q, *k, *v, *theta, *g[2];
  project(m, x, &q, &k, &v, &theta);
  hy_titans_memory_grad(m, st->w, k, v, theta, g);
  for (int i = 0; i < m->depth; i++) hy_copy_into(st->u[i], hy_add(st->u[i], g[i]));
  hy_copy_into(st->xsum, hy_add(st->xsum, x));
  if (++st->count == m->chunk) {
    hy_tensor *eta, *keep, *w[2] = {st->w[0], st->w[1]}, *s[2] = {st->s[0], st->s[1]};
    gates(m, hy_scale(st->xsum, 1.0 / (double)m->chunk), &eta, &keep);
    update(m, w, s, st->u, eta, keep);
    for (int i = 0; i < m->depth; i++) {
      hy_copy_into(st->s[i], s[i]);
      hy_copy_into(st->w[i], w[i]);
      hy_fill(st->u[i], 0.0);
    }
    hy_fill(st->xsum, 0.0);
    st->count = 0;
  }
  return output(m, hy_titans_memory_apply(m, st->w, q));
}

hy_tensor *hy_titans_memory_state_of(const hy_titans_memory *m, void *state) {
  mem_state *st = state;
  return pack_state(m, st->w, st->s);
}

void hy_titans_memory_state_free(void *state) {
  mem_state *st = state;
  if (!st) return;
  for (int i = 0; i < 2; i++) {
    hy_free(st->w[i]);
    hy_free(st->s[i]);
    hy_free(st->u[i]);
  }
  hy_free(st->xsum);
  free(st);
}
