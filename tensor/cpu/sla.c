#include "tensor/cpu/real.h"
#include "tensor/cpu/attention_rows.h"

#include "tensor/sla_types.h"

#include <stdlib.h>
#include <string.h>

/* Causal sparse-linear attention (SLA) on the CPU. One (batch, head) pair is one task. Queries
 * and keys go in blocks of `block` rows (the selection's granularity, so the tiles are
 * block x block); every tile product is a small single-threaded GEMM. The queries may start at a
 * later block of the keys' sequence (a sequence-parallel rank's slice, hy_sla_dims): query block
 * i is block first_block + i of the sequence, and everything below ranks, counts and masks by
 * that index and the sequence's positions.
 *
 * Softmax branch: hy_attention's FlashAttention-2 loop, restricted to the critical key blocks of
 * each query block (causal mask inside the diagonal block), saving the log-sum-exp per row; the
 * backward recomputes the probabilities from it.
 *
 * Linear branch: each key block j that is marginal for some query block gets its state
 * KV_j = phi(K_j)^T V_j [D, D] and z_j = sum_s phi(k_s) [D] once (in `states`, scratch: the
 * backward computes them again rather than keep them); query block i sums
 * those of its marginal blocks (in increasing j) into S_i and z_i, and
 * o_l_t = phi(q_t) S_i / (phi(q_t) . z_i + eps). With den_t = phi(q_t) . z_i + eps and g_t the
 * gradient of o_l_t, the backward is
 *   dnum_t = g_t / den_t,  dden_t = -(g_t . o_l_t) / den_t,
 *   d phi(q_t) = dnum_t S_i^T + dden_t z_i,  dS_i = sum_t phi(q_t)^T dnum_t,  dz_i = sum_t dden_t
 *   phi(q_t),
 * and for key block j with G_j = sum of dS_i and g_j = sum of dz_i over the query blocks i where
 * j is marginal (increasing i): d phi(K_j) = V_j G_j^T + 1 g_j^T, dV_j += phi(K_j) G_j; then
 * through the feature map. Scratch per thread: a few block x block tiles; the states (per key
 * block) and their gradients (per query block) live in the caller's buffers. */

#define SLA_EPS 1e-5

typedef struct {
  real *s, *p;   /* [tb, tb]: scores, probabilities (dP / dS in the backward) */
  real *acc;     /* [tb, D]: softmax output accumulator */
  real *m, *l;   /* [tb]: running max and sum */
  real *f, *x;   /* [tb, D]: phi of a block; dnum in the backward */
  real *df;      /* [tb, D]: d phi of a block */
  real *kv, *z;  /* [nb, D, D], [nb, D]: this head's key block states (in `states`) */
  real *dS, *dz; /* [nb, D, D], [nb, D]: its query block state gradients (in `dstates`) */
  real *S, *zs;  /* [D, D], [D]: one query block's marginal sums (G_j, g_j in the backward) */
  real *den;     /* [tb] */
  real *di;      /* [T]: go_s . o_s (backward) */
  bool *used;    /* [n_key_blocks]: key block j is marginal for some query block */
} scratch;

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) hy_die("sla", "out of memory");
  return p;
}

static int64_t tile_rows(const hy_sla_dims *dm) {
  return dm->block < dm->a.Tk ? dm->block : (dm->a.Tk ? dm->a.Tk : 1);
}

static scratch scratch_new(const hy_sla_dims *dm, bool backward) {
  int64_t tb = tile_rows(dm), D = dm->a.D, nb = dm->n_key_blocks;
  scratch w = {0};
  size_t r = sizeof(real);
  w.s = xmalloc(r * (size_t)(tb * tb));
  w.p = xmalloc(r * (size_t)(tb * tb));
  w.acc = xmalloc(r * (size_t)(tb * D));
  w.m = xmalloc(r * (size_t)tb);
  w.l = xmalloc(r * (size_t)tb);
  w.f = xmalloc(r * (size_t)(tb * D));
  w.x = xmalloc(r * (size_t)(tb * D));
  w.df = xmalloc(r * (size_t)(tb * D));
  w.S = xmalloc(r * (size_t)(D * D));
  w.zs = xmalloc(r * (size_t)D);
  w.den = xmalloc(r * (size_t)tb);
  w.used = xmalloc(sizeof(bool) * (size_t)nb);
  if (backward) w.di = xmalloc(r * (size_t)dm->a.T);
  return w;
}

static void scratch_free(scratch *w) {
  real *bufs[] = {w->s, w->p, w->acc, w->m, w->l, w->f, w->x, w->df, w->S, w->zs, w->den, w->di};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
  free(w->used);
}

/* The rows of block i of n rows in all (queries: T; keys: Tk). */
static int64_t block_rows(const hy_sla_dims *dm, int64_t n, int64_t i) {
  int64_t r = n - i * dm->block;
  return r < dm->block ? r : dm->block;
}

static int64_t rows_of(const hy_sla_dims *dm, int64_t i) { return block_rows(dm, dm->a.T, i); }
static int64_t key_rows(const hy_sla_dims *dm, int64_t j) { return block_rows(dm, dm->a.Tk, j); }

/* The class row of query block i: n_key_blocks entries. */
static const int32_t *class_row(const hy_sla_dims *dm, const int32_t *classes, int64_t b, int64_t h,
                                int64_t i) {
  return classes + ((b * dm->a.H + h) * dm->n_blocks + i) * dm->n_key_blocks;
}

/* ---- the feature map ---- */

/* max and sum of n values in 8 interleaved lanes, then the lanes in order: a fixed order that the
 * compiler turns into vector instructions (one running scalar would be latency-bound). */
static real lanes_max(const real *x, int64_t n) {
  real m[8];
  for (int u = 0; u < 8; u++) m[u] = -INFINITY;
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int u = 0; u < 8; u++) m[u] = x[d + u] > m[u] ? x[d + u] : m[u];
  for (; d < n; d++) m[0] = x[d] > m[0] ? x[d] : m[0];
  real r = m[0];
  for (int u = 1; u < 8; u++) r = m[u] > r ? m[u] : r;
  return r;
}

static real lanes_sum(const real *x, int64_t n) {
  real m[8] = {0};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int u = 0; u < 8; u++) m[u] += x[d + u];
  for (; d < n; d++) m[0] += x[d];
  real r = m[0];
  for (int u = 1; u < 8; u++) r += m[u];
  return r;
}

/* y = phi(x) for n rows of D (x rows `ldx` apart, y dense). */
static void phi_rows(int fm, int64_t n, int64_t D, const real *x, int64_t ldx, real *y) {
  for (int64_t r = 0; r < n; r++) {
    const real *xr = x + r * ldx;
    real *yr = y + r * D;
    if (fm == HY_SLA_PHI_SOFTMAX) {
      real mx = lanes_max(xr, D);
      for (int64_t d = 0; d < D; d++) yr[d] = real_exp(xr[d] - mx);
      real inv = 1 / lanes_sum(yr, D);
      for (int64_t d = 0; d < D; d++) yr[d] *= inv;
    } else if (fm == HY_SLA_PHI_ELU) {
      for (int64_t d = 0; d < D; d++) yr[d] = xr[d] > 0 ? xr[d] + 1 : real_exp(xr[d]);
    } else {
      for (int64_t d = 0; d < D; d++) yr[d] = xr[d] > 0 ? xr[d] : 0;
    }
  }
}

/* gx += (d phi / d x)^T dy for n rows, from x and y = phi(x); gx rows `ldg` apart. */
static void phi_backward_rows(int fm, int64_t n, int64_t D, const real *x, int64_t ldx,
                              const real *y, const real *dy, real *gx, int64_t ldg) {
  for (int64_t r = 0; r < n; r++) {
    const real *xr = x + r * ldx, *yr = y + r * D, *dyr = dy + r * D;
    real *gr = gx + r * ldg;
    if (fm == HY_SLA_PHI_SOFTMAX) {
      real dot = 0;
      for (int64_t d = 0; d < D; d++) dot += yr[d] * dyr[d];
      for (int64_t d = 0; d < D; d++) gr[d] += yr[d] * (dyr[d] - dot);
    } else if (fm == HY_SLA_PHI_ELU) {
      for (int64_t d = 0; d < D; d++) gr[d] += xr[d] > 0 ? dyr[d] : dyr[d] * yr[d];
    } else {
      for (int64_t d = 0; d < D; d++) gr[d] += xr[d] > 0 ? dyr[d] : 0;
    }
  }
}

/* ---- the block selection ----
 *
 * Causal: query block i ranks its earlier key blocks j < i by pooled q_{i-1} . pooled k_j, the
 * mean of the PREVIOUS query block's queries against the mean of key block j. Every row these
 * means read (q of block i - 1, k of blocks j <= i - 1) comes before the first row of block i,
 * so the blocks a token attends to never depend on that token's own block or anything later (the
 * mean of block i's own queries would let a token's later block-mates choose its blocks). Block
 * indices are the sequence's here: the first query block (first_block) ranks with q_before. */

typedef struct {
  double score;
  int64_t j;
} ranked;

/* Highest score first, then the lower block. */
static int by_score(const void *pa, const void *pb) {
  const ranked *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  return (a->j > b->j) - (a->j < b->j);
}

/* Block means of x's `rows` rows for one head, in double: pooled [ceil(rows / block), D]. */
static void pool(const hy_sla_dims *dm, const real *x, const int64_t *stride, int64_t rows,
                 int64_t b, int64_t h, double *pooled) {
  int64_t D = dm->a.D;
  for (int64_t i = 0; i * dm->block < rows; i++) {
    int64_t n = block_rows(dm, rows, i);
    double *pr = pooled + i * D;
    for (int64_t d = 0; d < D; d++) pr[d] = 0;
    for (int64_t r = 0; r < n; r++) {
      const real *xr = at(x, stride, b, i * dm->block + r, h);
      for (int64_t d = 0; d < D; d++) pr[d] += xr[d];
    }
    for (int64_t d = 0; d < D; d++) pr[d] /= (double)n;
  }
}

/* pq [1 + n_blocks, D]: the mean of q_before (when there is one), then the query blocks'. */
static void select_head(const hy_sla_dims *dm, const real *q, const real *k, const real *q_before,
                        int32_t *classes, int64_t b, int64_t h, double *pq, double *pk,
                        ranked *rank) {
  int64_t nb = dm->n_blocks, nkb = dm->n_key_blocks, first = dm->first_block, D = dm->a.D;
  int64_t H = dm->a.H, before_stride[3] = {dm->block * H * D, H * D, D};
  if (q_before) pool(dm, q_before, before_stride, dm->block, b, h, pq);
  pool(dm, q, dm->a.q_stride, dm->a.T, b, h, pq + D);
  int64_t keys = nkb * dm->block < dm->a.Tk ? nkb * dm->block : dm->a.Tk; /* the rest unread */
  pool(dm, k, dm->a.k_stride, keys, b, h, pk);
  for (int64_t i = 0; i < nb; i++) {
    int64_t g = first + i; /* the sequence's block */
    int32_t *row = classes + ((b * H + h) * nb + i) * nkb;
    for (int64_t j = 0; j < nkb; j++)
      row[j] = j > g ? HY_SLA_FUTURE : j == g ? HY_SLA_CRITICAL : HY_SLA_MARGINAL;
    /* Block g > 0 ranks with the previous query block's mean (rows all before block g); block 0
     * has no earlier key block and ranks nothing. */
    const double *pqi = pq + i * D;
    for (int64_t j = 0; j < g; j++) {
      double s = 0;
      for (int64_t d = 0; d < D; d++) s += pqi[d] * pk[j * D + d];
      rank[j] = (ranked){s == s ? s : -INFINITY, j}; /* NaN ranks last */
    }
    qsort(rank, (size_t)g, sizeof *rank, by_score);
    for (int64_t c = 0; c < dm->n_critical[i]; c++) row[rank[c].j] = HY_SLA_CRITICAL;
    for (int64_t c = 0; c < dm->n_negligible[i]; c++) row[rank[g - 1 - c].j] = HY_SLA_NEGLIGIBLE;
  }
}

void K(cpu_sla_select)(const hy_sla_dims *dm, const real *q, const real *k, const real *q_before,
                       int32_t *classes) {
#pragma omp parallel
  {
    int64_t nb = dm->n_blocks, nkb = dm->n_key_blocks, D = dm->a.D;
    double *pq = xmalloc(sizeof(double) * (size_t)((nb + 1) * D));
    double *pk = xmalloc(sizeof(double) * (size_t)(nkb * D));
    ranked *rank = xmalloc(sizeof(ranked) * (size_t)nkb);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->a.B * dm->a.H; bh++)
      select_head(dm, q, k, q_before, classes, bh / dm->a.H, bh % dm->a.H, pq, pk, rank);
    free(pq);
    free(pk);
    free(rank);
  }
}

/* ---- shared pieces of the forward and the backward ---- */

/* s = scale Q_i K_j^T for nq query rows from position i0 and nk key rows from j0, keys after the
 * query masked out (only the diagonal block has any). */
static void tile_scores(const hy_sla_dims *dm, const real *qi, const real *kj, int64_t nq,
                        int64_t nk, int64_t i0, int64_t j0, int64_t ld, real *s) {
  K(cpu_gemm)
  (false, true, nq, nk, dm->a.D, dm->a.scale, qi, dm->a.q_stride[1], kj, dm->a.k_stride[1], 0.0, s,
   ld);
  if (j0 + nk - 1 > i0)
    for (int64_t r = 0; r < nq; r++)
      for (int64_t c = 0; c < nk; c++)
        if (j0 + c > i0 + r) s[r * ld + c] = -INFINITY;
}

/* Point w->kv, w->z (per key block) and w->dS, w->dz (per query block) at head (b, h) of the
 * state buffers, and mark in w->used the key blocks that are marginal for some query block. */
static void head_states(const hy_sla_dims *dm, const int32_t *classes, real *states, real *dstates,
                        int64_t b, int64_t h, scratch *w) {
  int64_t nb = dm->n_blocks, nkb = dm->n_key_blocks, D = dm->a.D, bh = b * dm->a.H + h;
  w->kv = states + bh * nkb * D * (D + 1);
  w->z = w->kv + nkb * D * D;
  if (dstates) {
    w->dS = dstates + bh * nb * D * (D + 1);
    w->dz = w->dS + nb * D * D;
  }
  for (int64_t j = 0; j < nkb; j++) w->used[j] = false;
  for (int64_t i = 0; i < nb; i++) {
    const int32_t *row = class_row(dm, classes, b, h, i);
    for (int64_t j = 0; j < dm->first_block + i; j++)
      if (row[j] == HY_SLA_MARGINAL) w->used[j] = true;
  }
}

/* KV_j and z_j of every key block that is marginal for some query block (w->used). */
static void block_states(const hy_sla_dims *dm, const real *k, const real *v, int64_t b, int64_t h,
                         scratch *w) {
  int64_t nkb = dm->n_key_blocks, D = dm->a.D;
  for (int64_t j = 0; j < nkb; j++) {
    if (!w->used[j]) continue;
    int64_t j0 = j * dm->block, nk = key_rows(dm, j);
    phi_rows(dm->feature_map, nk, D, at(k, dm->a.k_stride, b, j0, h), dm->a.k_stride[1], w->f);
    K(cpu_gemm)
    (true, false, D, D, nk, 1.0, w->f, D, at(v, dm->a.v_stride, b, j0, h), dm->a.v_stride[1], 0.0,
     w->kv + j * D * D, D);
    real *zj = w->z + j * D;
    for (int64_t d = 0; d < D; d++) zj[d] = 0;
    for (int64_t r = 0; r < nk; r++)
      for (int64_t d = 0; d < D; d++) zj[d] += w->f[r * D + d];
  }
}

/* S and zs = the sums of src[x] [D, D] and zsrc[x] [D] over first <= x < n with
 * row[x * step] == HY_SLA_MARGINAL, in increasing x (step 1: along a row of the class map, step
 * nb: down a column); false when there are none. */
static bool marginal_sum(const int32_t *row, int64_t first, int64_t step, int64_t n, int64_t D,
                         const real *src, const real *zsrc, real *S, real *zs) {
  bool any = false;
  for (int64_t x = first; x < n; x++) {
    if (row[x * step] != HY_SLA_MARGINAL) continue;
    const real *sx = src + x * D * D, *zx = zsrc + x * D;
    if (!any) {
      memcpy(S, sx, sizeof(real) * (size_t)(D * D));
      memcpy(zs, zx, sizeof(real) * (size_t)D);
    } else {
      for (int64_t e = 0; e < D * D; e++) S[e] += sx[e];
      for (int64_t d = 0; d < D; d++) zs[d] += zx[d];
    }
    any = true;
  }
  return any;
}

/* ---- forward ---- */

static void forward_head(const hy_sla_dims *dm, const int32_t *classes, const real *q,
                         const real *k, const real *v, real *o, real *lse, real *states, int64_t b,
                         int64_t h, scratch *w) {
  int64_t T = dm->a.T, D = dm->a.D, H = dm->a.H, nb = dm->n_blocks, tb = tile_rows(dm);
  head_states(dm, classes, states, NULL, b, h, w);
  block_states(dm, k, v, b, h, w);
  for (int64_t i = 0; i < nb; i++) {
    int64_t i0 = i * dm->block, nq = rows_of(dm, i), g = dm->first_block + i;
    const int32_t *row = class_row(dm, classes, b, h, i);
    const real *qi = at(q, dm->a.q_stride, b, i0, h);
    real *oi = o + ((b * T + i0) * H + h) * 2 * D; /* rows 2 H D apart */
    /* the softmax branch over the critical blocks */
    for (int64_t r = 0; r < nq; r++) {
      w->m[r] = -INFINITY;
      w->l[r] = 0;
    }
    memset(w->acc, 0, sizeof(real) * (size_t)(nq * D));
    for (int64_t j = 0; j <= g; j++) {
      if (row[j] != HY_SLA_CRITICAL) continue;
      int64_t j0 = j * dm->block, nk = key_rows(dm, j);
      tile_scores(dm, qi, at(k, dm->a.k_stride, b, j0, h), nq, nk, dm->a.q_offset + i0, j0, tb,
                  w->s);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * tb, *pr = w->p + r * tb;
        real mx = w->m[r];
        for (int64_t c = 0; c < nk; c++) mx = sr[c] > mx ? sr[c] : mx;
        if (mx == -INFINITY) {
          for (int64_t c = 0; c < nk; c++) pr[c] = 0;
          continue;
        }
        real alpha = real_exp(w->m[r] - mx), sum = 0;
        for (int64_t c = 0; c < nk; c++) sum += pr[c] = real_exp(sr[c] - mx);
        w->m[r] = mx;
        w->l[r] = w->l[r] * alpha + sum;
        real *ar = w->acc + r * D;
        for (int64_t d = 0; d < D; d++) ar[d] *= alpha;
      }
      K(cpu_gemm)
      (false, false, nq, D, nk, 1.0, w->p, tb, at(v, dm->a.v_stride, b, j0, h), dm->a.v_stride[1],
       1.0, w->acc, D);
    }
    for (int64_t r = 0; r < nq; r++) {
      real *orow = oi + r * H * 2 * D, inv = 1 / w->l[r];
      for (int64_t d = 0; d < D; d++) orow[d] = w->acc[r * D + d] * inv;
      lse[(b * H + h) * T + i0 + r] = w->m[r] + log(w->l[r]);
    }
    /* the linear branch over the marginal blocks */
    if (!marginal_sum(row, 0, 1, g, D, w->kv, w->z, w->S, w->zs)) {
      for (int64_t r = 0; r < nq; r++) memset(oi + r * H * 2 * D + D, 0, sizeof(real) * (size_t)D);
      continue;
    }
    phi_rows(dm->feature_map, nq, D, qi, dm->a.q_stride[1], w->f);
    K(cpu_gemm)(false, false, nq, D, D, 1.0, w->f, D, w->S, D, 0.0, oi + D, H * 2 * D);
    for (int64_t r = 0; r < nq; r++) {
      real den = (real)SLA_EPS, *orow = oi + r * H * 2 * D + D;
      for (int64_t d = 0; d < D; d++) den += w->f[r * D + d] * w->zs[d];
      real inv = 1 / den;
      for (int64_t d = 0; d < D; d++) orow[d] *= inv;
    }
  }
}

void K(cpu_sla)(const hy_sla_dims *dm, const int32_t *classes, const real *q, const real *k,
                const real *v, real *o, real *lse, real *states) {
#pragma omp parallel
  {
    scratch w = scratch_new(dm, false);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->a.B * dm->a.H; bh++)
      forward_head(dm, classes, q, k, v, o, lse, states, bh / dm->a.H, bh % dm->a.H, &w);
    scratch_free(&w);
  }
}

/* ---- backward ---- */

/* The softmax branch of query block i, as hy_attention's backward over the critical blocks: with
 * P = exp(S - lse) and Di = dO_s . O_s: dV_j += P^T dO; dP = dO V_j^T; dS = scale P (dP - Di);
 * dQ_i += dS K_j; dK_j += dS^T Q_i. */
static void softmax_backward_block(const hy_sla_dims *dm, const int32_t *row, const real *q,
                                   const real *k, const real *v, const real *lse, const real *go,
                                   real *gq, real *gk, real *gv, int64_t b, int64_t h, int64_t i,
                                   scratch *w) {
  int64_t T = dm->a.T, D = dm->a.D, H = dm->a.H, ld = H * D, tb = tile_rows(dm);
  int64_t i0 = i * dm->block, nq = rows_of(dm, i);
  real scale = (real)dm->a.scale;
  const real *qi = at(q, dm->a.q_stride, b, i0, h), *lse_i = lse + (b * H + h) * T + i0;
  const real *goi = go + ((b * T + i0) * H + h) * 2 * D; /* rows 2 H D apart */
  for (int64_t j = 0; j <= dm->first_block + i; j++) {
    if (row[j] != HY_SLA_CRITICAL) continue;
    int64_t j0 = j * dm->block, nk = key_rows(dm, j);
    const real *kj = at(k, dm->a.k_stride, b, j0, h), *vj = at(v, dm->a.v_stride, b, j0, h);
    int64_t off_j = ((b * dm->a.Tk + j0) * H + h) * D;
    tile_scores(dm, qi, kj, nq, nk, dm->a.q_offset + i0, j0, tb, w->s);
    for (int64_t r = 0; r < nq; r++)
      for (int64_t c = 0; c < nk; c++) w->s[r * tb + c] = real_exp(w->s[r * tb + c] - lse_i[r]);
    if (gv) K(cpu_gemm)(true, false, nk, D, nq, 1.0, w->s, tb, goi, 2 * ld, 1.0, gv + off_j, ld);
    if (!gq && !gk) continue;
    K(cpu_gemm)(false, true, nq, nk, D, 1.0, goi, 2 * ld, vj, dm->a.v_stride[1], 0.0, w->p, tb);
    for (int64_t r = 0; r < nq; r++)
      for (int64_t c = 0; c < nk; c++) {
        int64_t x = r * tb + c;
        w->p[x] = scale * w->s[x] * (w->p[x] - w->di[i0 + r]);
      }
    if (gq) K(cpu_gemm)
    (false, false, nq, D, nk, 1.0, w->p, tb, kj, dm->a.k_stride[1], 1.0,
     gq + ((b * T + i0) * H + h) * D, ld);
    if (gk) K(cpu_gemm)
    (true, false, nk, D, nq, 1.0, w->p, tb, qi, dm->a.q_stride[1], 1.0, gk + off_j, ld);
  }
}

/* The linear branch of query block i: d phi(Q_i) into gq through the feature map, and dS_i, dz_i
 * kept for the key blocks when they need gradients. */
static void linear_backward_block(const hy_sla_dims *dm, const int32_t *row, const real *q,
                                  const real *o, const real *go, real *gq, bool need_kv, int64_t b,
                                  int64_t h, int64_t i, scratch *w) {
  int64_t T = dm->a.T, D = dm->a.D, H = dm->a.H;
  int64_t i0 = i * dm->block, nq = rows_of(dm, i);
  if (!marginal_sum(row, 0, 1, dm->first_block + i, D, w->kv, w->z, w->S, w->zs)) return;
  const real *qi = at(q, dm->a.q_stride, b, i0, h);
  int64_t off = ((b * T + i0) * H + h) * 2 * D + D, ld2 = 2 * H * D;
  const real *ol = o + off, *gol = go + off; /* o_l rows and their gradients, 2 H D apart */
  real *dnum = w->x, *f = w->f;
  phi_rows(dm->feature_map, nq, D, qi, dm->a.q_stride[1], f);
  for (int64_t r = 0; r < nq; r++) {
    real den = (real)SLA_EPS, go_o = 0;
    for (int64_t d = 0; d < D; d++) {
      den += f[r * D + d] * w->zs[d];
      go_o += gol[r * ld2 + d] * ol[r * ld2 + d];
    }
    real inv = 1 / den;
    for (int64_t d = 0; d < D; d++) dnum[r * D + d] = gol[r * ld2 + d] * inv;
    w->den[r] = -go_o * inv; /* d den */
  }
  if (gq) {
    K(cpu_gemm)(false, true, nq, D, D, 1.0, dnum, D, w->S, D, 0.0, w->df, D);
    for (int64_t r = 0; r < nq; r++)
      for (int64_t d = 0; d < D; d++) w->df[r * D + d] += w->den[r] * w->zs[d];
    phi_backward_rows(dm->feature_map, nq, D, qi, dm->a.q_stride[1], f, w->df,
                      gq + ((b * T + i0) * H + h) * D, H * D);
  }
  if (need_kv) {
    K(cpu_gemm)(true, false, D, D, nq, 1.0, f, D, dnum, D, 0.0, w->dS + i * D * D, D);
    real *dzi = w->dz + i * D;
    for (int64_t d = 0; d < D; d++) dzi[d] = 0;
    for (int64_t r = 0; r < nq; r++)
      for (int64_t d = 0; d < D; d++) dzi[d] += w->den[r] * f[r * D + d];
  }
}

/* Key block j's share of the linear branch: G_j, g_j summed over the query blocks where it is
 * marginal, then dV_j += phi(K_j) G_j and d phi(K_j) = V_j G_j^T + 1 g_j^T through the map. */
static void linear_backward_keys(const hy_sla_dims *dm, const int32_t *classes, const real *k,
                                 const real *v, real *gk, real *gv, int64_t b, int64_t h,
                                 scratch *w) {
  int64_t D = dm->a.D, H = dm->a.H, nb = dm->n_blocks, nkb = dm->n_key_blocks, ld = H * D;
  const int32_t *col0 = class_row(dm, classes, b, h, 0);
  for (int64_t j = 0; j < nkb; j++) {
    if (!w->used[j]) continue;
    /* column j of the class map (rows nkb apart), the query blocks after block j */
    int64_t after = j + 1 - dm->first_block;
    if (!marginal_sum(col0 + j, after > 0 ? after : 0, nkb, nb, D, w->dS, w->dz, w->S, w->zs))
      continue;
    int64_t j0 = j * dm->block, nk = key_rows(dm, j), off = ((b * dm->a.Tk + j0) * H + h) * D;
    const real *kj = at(k, dm->a.k_stride, b, j0, h), *vj = at(v, dm->a.v_stride, b, j0, h);
    phi_rows(dm->feature_map, nk, D, kj, dm->a.k_stride[1], w->f);
    if (gv) K(cpu_gemm)(false, false, nk, D, D, 1.0, w->f, D, w->S, D, 1.0, gv + off, ld);
    if (gk) {
      K(cpu_gemm)(false, true, nk, D, D, 1.0, vj, dm->a.v_stride[1], w->S, D, 0.0, w->df, D);
      for (int64_t r = 0; r < nk; r++)
        for (int64_t d = 0; d < D; d++) w->df[r * D + d] += w->zs[d];
      phi_backward_rows(dm->feature_map, nk, D, kj, dm->a.k_stride[1], w->f, w->df, gk + off, ld);
    }
  }
}

static void backward_head(const hy_sla_dims *dm, const int32_t *classes, const real *q,
                          const real *k, const real *v, const real *o, const real *lse,
                          real *states, real *dstates, const real *go, real *gq, real *gk, real *gv,
                          int64_t b, int64_t h, scratch *w) {
  int64_t T = dm->a.T, D = dm->a.D, H = dm->a.H, nb = dm->n_blocks;
  row_dots(go, o, b, h, T, H, 2 * D, D, w->di);
  head_states(dm, classes, states, dstates, b, h, w);
  block_states(dm, k, v, b, h, w);
  bool need_kv = gk || gv;
  for (int64_t i = 0; i < nb; i++) {
    const int32_t *row = class_row(dm, classes, b, h, i);
    softmax_backward_block(dm, row, q, k, v, lse, go, gq, gk, gv, b, h, i, w);
    linear_backward_block(dm, row, q, o, go, gq, need_kv, b, h, i, w);
  }
  if (need_kv) linear_backward_keys(dm, classes, k, v, gk, gv, b, h, w);
}

void K(cpu_sla_backward)(const hy_sla_dims *dm, const int32_t *classes, const real *q,
                         const real *k, const real *v, const real *o, const real *lse, real *states,
                         real *dstates, const real *go, real *gq, real *gk, real *gv) {
#pragma omp parallel
  {
    scratch w = scratch_new(dm, true);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->a.B * dm->a.H; bh++)
      backward_head(dm, classes, q, k, v, o, lse, states, dstates, go, gq, gk, gv, bh / dm->a.H,
                    bh % dm->a.H, &w);
    scratch_free(&w);
  }
}
