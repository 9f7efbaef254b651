#include "tensor/cpu/real.h"
#include "tensor/cpu/attention_rows.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* Causal softplus attention with length scaling and re-weighting (LSSA / LSSAR) on the tiling of
 * tensor/cpu/attention.c: one (batch, head) pair per task, queries and keys in tiles of TILE rows,
 * each tile product one small single-threaded GEMM. For query t (global position
 * t + pos_offset) the logits are x_ts = c_t scale q_t . k_s with c_t = log(t + pos_offset + 1) /
 * log(train_len) (1 when train_len <= 1), the weights w_ts = softplus(x_ts)^p for s <= t, and
 * o_t = sum_s w_ts v_s / sum_s w_ts.
 *
 * The forward keeps, per query row, the largest logit m_t seen so far and the sum
 * z_t = sum_s r(x_ts)^p of the ratios r(x) = softplus(x) / softplus(m_t) <= 1 (ratio()),
 * rescaling the sum and the output accumulator when m_t grows: the same weights as w / sum w,
 * but with one term equal to 1, so z_t >= 1 and no power under- or overflows (softplus(-40)^3
 * is 0 in f32). In softplus's exponential tail, m_t < LOW, softplus(x) = e^x (1 - e^x / 2 + ...)
 * and the ratio is e^(x - m_t) to within e^LOW / 2 relative, below the rounding of `real`: such a
 * row's weights become the softmax of p x they tend to, where softplus itself would underflow.
 * m and z are saved, and the backward recomputes the weights from them. dims->Tk = T,
 * q_offset = 0 and window = 0 here. */

enum { TILE = 64 };

#if defined(HY_REAL_F64)
#define LOW ((real)-40) /* e^-40 / 2 = 2e-18 */
#else
#define LOW ((real)-20) /* e^-20 / 2 = 1e-9 */
#endif

typedef struct {
  real *s, *p; /* [TILE, TILE]: logits then weights; dP then dS in the backward */
  real *acc;   /* [TILE, D]: output accumulator of the forward */
  real *cs;    /* [TILE]: c_t scale of the tile's query rows */
} scratch;

static scratch scratch_new(int64_t D) {
  scratch w;
  w.s = malloc(sizeof(real) * TILE * TILE);
  w.p = malloc(sizeof(real) * TILE * TILE);
  w.acc = malloc(sizeof(real) * (size_t)(TILE * D));
  w.cs = malloc(sizeof(real) * TILE);
  if (!w.s || !w.p || !w.acc || !w.cs) hy_die("softplus_attention", "out of memory");
  return w;
}

static void scratch_free(scratch *w) {
  free(w->s);
  free(w->p);
  free(w->acc);
  free(w->cs);
}

/* log(1 + e) for e in [0, 1] and u^p for u in [0, 1]. In f64 (references, gradient checks) they
 * are libm's. In f32, where libm's log1pf and powf are calls that keep the loops from vectorizing
 * and cost more than the tile GEMMs, they are series the compiler vectorizes: log(1 + e) =
 * 2 atanh(s), s = e / (2 + e) in [0, 1/3], to the term s^15 / 15 (within 4 ulp); u^p =
 * exp(p log u) with real_exp and log u = n ln 2 + 2 atanh((m - 1) / (m + 1)) for u = m 2^n, m in
 * [sqrt(1/2), sqrt(2)), to s^9 / 9. The rounding of p log u makes u^p's relative error
 * p |log u| 2^-24, that is within a few ulp of the row's largest weight (1) for every u; below
 * FLT_MIN u^p is 0. */
#if defined(HY_REAL_F64)
static inline double log1p_unit(double e) { return log1p(e); }
static inline double pow_unit(double u, double p) { return pow(u, p); }
#else
static inline float log1p_unit(float e) {
  float s = e / (2 + e), s2 = s * s, r = 1.0f / 15;
  r = fmaf(r, s2, 1.0f / 13);
  r = fmaf(r, s2, 1.0f / 11);
  r = fmaf(r, s2, 1.0f / 9);
  r = fmaf(r, s2, 1.0f / 7);
  r = fmaf(r, s2, 1.0f / 5);
  r = fmaf(r, s2, 1.0f / 3);
  r = fmaf(r, s2, 1.0f);
  return 2 * s * r;
}

static inline float pow_unit(float u, float p) {
  union {
    float f;
    int32_t i;
  } b = {.f = u};
  int32_t n = ((b.i >> 23) & 0xff) - 127;
  b.i = (b.i & 0x007fffff) | 0x3f800000; /* m in [1, 2) */
  float m = b.f;
  bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  n += big;
  float s = (m - 1) / (m + 1), s2 = s * s, r = 1.0f / 9;
  r = fmaf(r, s2, 1.0f / 7);
  r = fmaf(r, s2, 1.0f / 5);
  r = fmaf(r, s2, 1.0f / 3);
  r = fmaf(r, s2, 1.0f);
  float lg =
      fmaf((float)n, 0.693145751953125f, fmaf((float)n, 1.42860682030941723212e-6f, 2 * s * r));
  return u < FLT_MIN ? 0.0f : real_exp(p * lg);
}
#endif

static inline real softplus(real x) { return (x > 0 ? x : 0) + log1p_unit(real_exp(-fabs(x))); }

/* softplus(x), and sigmoid(x) into *sig, from one exp. */
static inline real softplus_sigmoid(real x, real *sig) {
  real e = real_exp(-fabs(x)), inv = 1 / (1 + e);
  *sig = x >= 0 ? inv : e * inv;
  return (x > 0 ? x : 0) + log1p_unit(e);
}

/* u^p for u in [0, 1]; p = 1 (plain LSSA) without the pow. */
static inline real power_of(real u, real p, bool linear) { return linear ? u : pow_unit(u, p); }

/* softplus(x) / softplus(mx) for x <= mx, given inv = 1 / softplus(mx) (not used when low). */
static inline real ratio(real x, real mx, real inv, bool low) {
  return low ? real_exp(x - mx) : softplus(x) * inv;
}

typedef struct {
  int64_t train_len, pos_offset;
  real p;
  bool linear; /* p == 1 */
} params;

/* c_t scale for the nq query rows from i0, rounded once to `real` (as the reference does). */
static void row_scales(const hy_attn_dims *dm, const params *pr, int64_t i0, int64_t nq, real *cs) {
  double log_len = pr->train_len > 1 ? log((double)pr->train_len) : 1;
  for (int64_t r = 0; r < nq; r++) {
    double c = pr->train_len > 1 ? log((double)(i0 + r + pr->pos_offset + 1)) / log_len : 1;
    cs[r] = (real)(c * dm->scale);
  }
}

static void forward_head(const hy_attn_dims *dm, const params *pa, const real *q, const real *k,
                         const real *v, real *o, real *rmax, real *rsum, int64_t b, int64_t h,
                         scratch *w) {
  int64_t T = dm->T, D = dm->D;
  real *m = rmax + (b * dm->H + h) * T, *z = rsum + (b * dm->H + h) * T;
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    const real *qi = at(q, dm->q_stride, b, i0, h);
    row_scales(dm, pa, i0, nq, w->cs);
    for (int64_t r = 0; r < nq; r++) {
      m[i0 + r] = -INFINITY;
      z[i0 + r] = 0;
    }
    memset(w->acc, 0, sizeof(real) * (size_t)(nq * D));
    for (int64_t j0 = 0; j0 < i0 + nq; j0 += TILE) {
      int64_t nk = i0 + nq - j0 < TILE ? i0 + nq - j0 : TILE;
      K(cpu_gemm)
      (false, true, nq, nk, D, 1.0, qi, dm->q_stride[1], at(k, dm->k_stride, b, j0, h),
       dm->k_stride[1], 0.0, w->s, TILE);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * TILE, cs = w->cs[r], old = m[i0 + r], mx = old, sum = 0;
        int64_t n = visible(i0, r, j0, nk);
        for (int64_t c = 0; c < n; c++) {
          sr[c] *= cs;
          mx = sr[c] > mx ? sr[c] : mx;
        }
        bool low = mx < LOW;
        real inv = low ? 0 : 1 / softplus(mx);
        if (mx > old) { /* rescale what the row has so far to the new maximum */
          real alpha = old == -INFINITY ? 0 : power_of(ratio(old, mx, inv, low), pa->p, pa->linear);
          real *ar = w->acc + r * D;
          z[i0 + r] *= alpha;
          for (int64_t d = 0; d < D; d++) ar[d] *= alpha;
          m[i0 + r] = mx;
        }
        for (int64_t c = 0; c < n; c++) {
          sr[c] = power_of(ratio(sr[c], mx, inv, low), pa->p, pa->linear);
          sum += sr[c];
        }
        for (int64_t c = n; c < nk; c++) sr[c] = 0;
        z[i0 + r] += sum;
      }
      K(cpu_gemm)
      (false, false, nq, D, nk, 1.0, w->s, TILE, at(v, dm->v_stride, b, j0, h), dm->v_stride[1],
       1.0, w->acc, D);
    }
    for (int64_t r = 0; r < nq; r++) {
      real *orow = o + ((b * T + i0 + r) * dm->H + h) * D, inv = 1 / z[i0 + r];
      for (int64_t d = 0; d < D; d++) orow[d] = w->acc[r * D + d] * inv;
    }
  }
}

void K(cpu_softplus_attention)(const hy_attn_dims *dm, int64_t train_len, int64_t pos_offset,
                               double power, const real *q, const real *k, const real *v, real *o,
                               real *rmax, real *rsum) {
  params pa = {train_len, pos_offset, (real)power, power == 1};
#pragma omp parallel
  {
    scratch w = scratch_new(dm->D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      forward_head(dm, &pa, q, k, v, o, rmax, rsum, bh / dm->H, bh % dm->H, &w);
    scratch_free(&w);
  }
}

/* With u = softplus(x) / softplus(m_t) (ratio()), P = u^p / z_t (the normalized weights) and
 * Di = dO_t . O_t: dV_j += P^T dO_i; dP = dO_i V_j^T; the gradient of the weight w = softplus^p
 * is (dP - Di) / Z_t with Z_t = softplus(m_t)^p z_t, and dw/dx = p softplus(x)^(p-1) sigmoid(x),
 * so dx = (dP - Di) p u^(p-1) [sigmoid(x) / softplus(m_t)] / z_t, where the bracket is u again in
 * the tail (m_t < LOW), and u^(p-1) = u^p / u (0 where u underflows to 0, the bracket with it);
 * dS = c_t scale dx; dQ_i += dS K_j; dK_j += dS^T Q_i. */
static void backward_head(const hy_attn_dims *dm, const params *pa, const real *q, const real *k,
                          const real *v, const real *o, const real *rmax, const real *rsum,
                          const real *go, real *gq, real *gk, real *gv, int64_t b, int64_t h,
                          scratch *w, real *di) {
  int64_t T = dm->T, D = dm->D, H = dm->H, ld = H * D;
  const real *m = rmax + (b * H + h) * T, *z = rsum + (b * H + h) * T;
  row_dots(go, o, b, h, T, H, D, D, di);
  for (int64_t i0 = 0; i0 < T; i0 += TILE) {
    int64_t nq = T - i0 < TILE ? T - i0 : TILE;
    const real *qi = at(q, dm->q_stride, b, i0, h);
    int64_t off_i = ((b * T + i0) * H + h) * D;
    row_scales(dm, pa, i0, nq, w->cs);
    for (int64_t j0 = 0; j0 < i0 + nq; j0 += TILE) {
      int64_t nk = i0 + nq - j0 < TILE ? i0 + nq - j0 : TILE;
      const real *kj = at(k, dm->k_stride, b, j0, h), *vj = at(v, dm->v_stride, b, j0, h);
      int64_t off_j = ((b * T + j0) * H + h) * D;
      K(cpu_gemm)
      (false, true, nq, nk, D, 1.0, qi, dm->q_stride[1], kj, dm->k_stride[1], 0.0, w->s, TILE);
      K(cpu_gemm)
      (false, true, nq, nk, D, 1.0, go + off_i, ld, vj, dm->v_stride[1], 0.0, w->p, TILE);
      for (int64_t r = 0; r < nq; r++) {
        real *sr = w->s + r * TILE, *pr = w->p + r * TILE, cs = w->cs[r], mx = m[i0 + r];
        bool low = mx < LOW;
        real inv = low ? 0 : 1 / softplus(mx), inv_z = 1 / z[i0 + r], dr = di[i0 + r];
        real f = pa->p * inv_z * cs; /* p / z_t c_t scale */
        int64_t n = visible(i0, r, j0, nk);
        for (int64_t c = 0; c < n; c++) {
          real x = cs * sr[c], sig, sp = softplus_sigmoid(x, &sig);
          real u = low ? real_exp(x - mx) : sp * inv, wu = power_of(u, pa->p, pa->linear);
          real up = pa->linear ? 1 : (u > 0 ? wu / u : 0); /* u^(p-1) */
          real sq = low ? u : sig * inv;                   /* sigmoid(x) / softplus(m_t) */
          sr[c] = wu * inv_z;
          pr[c] = (pr[c] - dr) * f * sq * up;
        }
        for (int64_t c = n; c < nk; c++) sr[c] = pr[c] = 0;
      }
      tile_grads(nq, nk, D, TILE, w->s, w->p, go + off_i, qi, dm->q_stride[1], kj, dm->k_stride[1],
                 ld, gq ? gq + off_i : NULL, gk ? gk + off_j : NULL, gv ? gv + off_j : NULL);
    }
  }
}

void K(cpu_softplus_attention_backward)(const hy_attn_dims *dm, int64_t train_len,
                                        int64_t pos_offset, double power, const real *q,
                                        const real *k, const real *v, const real *o,
                                        const real *rmax, const real *rsum, const real *go,
                                        real *gq, real *gk, real *gv) {
  params pa = {train_len, pos_offset, (real)power, power == 1};
#pragma omp parallel
  {
    scratch w = scratch_new(dm->D);
    real *di = real_alloc("softplus_attention", (size_t)dm->T);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < dm->B * dm->H; bh++)
      backward_head(dm, &pa, q, k, v, o, rmax, rsum, go, gq, gk, gv, bh / dm->H, bh % dm->H, &w,
                    di);
    free(di);
    scratch_free(&w);
  }
}
