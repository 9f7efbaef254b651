/* hy_sla, fused causal sparse-linear attention: forward and backward against hy_sla_naive (the
 * dense masked form from plain ops, layers/sla_reference.h, with its own block selection by the
 * same rule) for T not a multiple of the block, several fractions and each feature map;
 * gradcheck; the limits (all blocks critical: hy_attention and o_l = 0; none but the diagonal:
 * block-diagonal attention); the block selection and the stats by hand; causality row by row
 * (rows after t change nothing at or before t); strided inputs; f32 against f64; determinism;
 * bad arguments; and a sequence-parallel rank's slice (hy_sla_offset, hy_sla_naive_offset: queries
 * from a later position) against the whole sequence's rows, with a gradcheck. */
#include "layers/sla_reference.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const int FMAPS[] = {HY_SLA_PHI_SOFTMAX, HY_SLA_PHI_ELU, HY_SLA_PHI_RELU};
static const char *const FMAP_NAMES[] = {"softmax", "elu+1", "relu"};

/* The o_s (part 0) or o_l (part 1) half of an output [B, T, H, 2 D]. */
static hy_tensor *half(hy_tensor *o, int part) {
  int64_t D = o->shape[3] / 2;
  return hy_slice(o, 3, part * D, (part + 1) * D);
}

typedef struct {
  hy_tensor *o, *gq, *gk, *gv;
} result;

/* Output and gradients of the fused op (naive false) or the reference for one output gradient. */
static result run(bool naive, hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *go, double scale,
                  double cf, double nf, int fm, int64_t block) {
  q->grad = k->grad = v->grad = NULL;
  hy_tensor *o = naive ? hy_sla_naive(q, k, v, scale, cf, nf, fm, block)
                       : hy_sla(q, k, v, scale, cf, nf, fm, block, NULL);
  hy_backward_with(o, go);
  result r = {o, q->grad, k->grad, v->grad};
  q->grad = k->grad = v->grad = NULL;
  return r;
}

/* t_expect_close, but a reference that is exactly 0 (dq and dk at T = 1, where the one weight is
 * 1 whatever the score) is met by values within tol of 0: the fused backward's P (dP - Di)
 * cancels to rounding there. */
static void expect_close(const hy_tensor *a, const hy_tensor *ref, double tol, const char *what) {
  double ref_max = 0, a_max = 0;
  for (int64_t i = 0; i < hy_numel(ref); i++) ref_max = fmax(ref_max, fabs(hy_get(ref, i)));
  if (ref_max > 0) {
    t_expect_close(a, ref, tol, what);
    return;
  }
  for (int64_t i = 0; i < hy_numel(a); i++) a_max = fmax(a_max, fabs(hy_get(a, i)));
  cr_assert(hy_same_shape(a, ref) && a_max <= tol, "%s: %g where the reference is 0", what, a_max);
}

static void expect_result_close(result a, result ref, double tol, const char *what) {
  char name[300];
  const char *parts[] = {"o_s", "o_l"};
  for (int p = 0; p < 2; p++) {
    snprintf(name, sizeof name, "%s: %s", what, parts[p]);
    expect_close(half(a.o, p), half(ref.o, p), tol, name);
  }
  const hy_tensor *g[3][2] = {{a.gq, ref.gq}, {a.gk, ref.gk}, {a.gv, ref.gv}};
  const char *gn[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "%s: %s", what, gn[i]);
    expect_close(g[i][0], g[i][1], tol, name);
  }
}

/* f64: the same sums in another order (tiles, online softmax, per block states); the worst seen
 * is 6e-15 (dq). */
static void expect_fused_matches_naive(int64_t B, int64_t T, int64_t H, int64_t D, int64_t block,
                                       double cf, double nf, int fi) {
  hy_shape sh = HY_SHAPE(B, T, H, D);
  hy_tensor *q = t_param(t_randn_next(HY_F64, sh)), *k = t_param(t_randn_next(HY_F64, sh));
  hy_tensor *v = t_param(t_randn_next(HY_F64, sh)),
            *go = t_randn_next(HY_F64, HY_SHAPE(B, T, H, 2 * D));
  double scale = 1 / sqrt((double)D);
  result f = run(false, q, k, v, go, scale, cf, nf, FMAPS[fi], block);
  result n = run(true, q, k, v, go, scale, cf, nf, FMAPS[fi], block);
  char what[200];
  snprintf(what, sizeof what, "sla %s block %lld, critical %g, negligible %g, %s", hy_describe(q),
           (long long)block, cf, nf, FMAP_NAMES[fi]);
  expect_result_close(f, n, 1e-12, what);
}

Test(sla, fused_against_naive) {
  static const int64_t Ts[] = {1, 5, 37, 70};
  static const double cfs[] = {0.05, 0.3, 1.0}, nfs[] = {0, 0.3};
  for (int ti = 0; ti < 4; ti++)
    for (int c = 0; c < 3; c++)
      for (int n = 0; n < 2; n++)
        for (int fi = 0; fi < 3; fi++) {
          expect_fused_matches_naive(2, Ts[ti], 2, 5, 8, cfs[c], nfs[n], fi);
          hy_step_reset();
        }
}

/* Other block sizes: one row per block, 64 (the default) across three blocks, one block longer
 * than T, a block past any size (as a recipe may give), and a wide head. */
Test(sla, fused_against_naive_other_blocks) {
  for (int fi = 0; fi < 3; fi++) {
    expect_fused_matches_naive(1, 9, 2, 3, 1, 0.3, 0.3, fi);
    expect_fused_matches_naive(1, 150, 2, 16, 64, 0.5, 0, fi);
    expect_fused_matches_naive(2, 20, 1, 4, 32, 0.05, 0.3, fi);
    expect_fused_matches_naive(2, 20, 1, 4, INT64_MAX, 0.05, 0.3, fi);
    expect_fused_matches_naive(1, 45, 1, 32, 4, 0.2, 0.4, fi);
    expect_fused_matches_naive(1, 40, 2, 4, 4, 0, 0, fi);
    expect_fused_matches_naive(1, 40, 2, 4, 4, 0, 1, fi);
    hy_step_reset();
  }
}

/* ---- gradcheck ---- */

typedef struct {
  double scale, cf, nf;
  int fm;
  int64_t block, H, D;
} sla_ctx;

static hy_tensor *sla_gc(hy_tensor **in, void *ctx) {
  const sla_ctx *c = ctx;
  return hy_sla(in[0], in[1], in[2], c->scale, c->cf, c->nf, c->fm, c->block, NULL);
}

static hy_tensor *sla_qkv_gc(hy_tensor **in, void *ctx) {
  const sla_ctx *c = ctx;
  hy_tensor *q, *k, *v;
  t_qkv_views(in[0], c->H, c->D, &q, &k, &v);
  return hy_sla(q, k, v, c->scale, c->cf, c->nf, c->fm, c->block, NULL);
}

#define P(...) t_param(t_randn_next(HY_F64, HY_SHAPE(__VA_ARGS__)))

/* Block 4, T 13 (blocks of 4, 4, 4, 1). (0.3, 0.5) gives every class: query block 2 has one
 * critical and one negligible earlier block, block 3 one of each. */
Test(sla, gradcheck) {
  static const double fr[][2] = {{0, 0}, {0.3, 0.5}, {1, 0}};
  char what[160];
  for (int fi = 0; fi < 3; fi++)
    for (int c = 0; c < 3; c++) {
      sla_ctx ctx = {0.6, fr[c][0], fr[c][1], FMAPS[fi], 4, 0, 0};
      snprintf(what, sizeof what, "sla gradcheck %s, critical %g, negligible %g", FMAP_NAMES[fi],
               fr[c][0], fr[c][1]);
      t_expect_gradcheck(sla_gc, &ctx, 3,
                         (hy_tensor *[]){P(2, 13, 2, 3), P(2, 13, 2, 3), P(2, 13, 2, 3)}, what);
      hy_step_reset();
    }
}

Test(sla, gradcheck_shared_and_strided_inputs) {
  for (int fi = 0; fi < 3; fi++) {
    sla_ctx c = {0.5, 0.3, 0.5, FMAPS[fi], 4, 2, 3};
    hy_tensor *x = P(1, 13, 2, 3);
    t_expect_gradcheck(sla_gc, &c, 3, (hy_tensor *[]){x, x, x}, "sla q = k = v");
    hy_tensor *qkv = P(2, 13, 3 * 2 * 3);
    t_expect_gradcheck(sla_qkv_gc, &c, 1, &qkv, "sla from one qkv projection");
    /* some inputs without a gradient */
    hy_tensor *q = t_randn_next(HY_F64, HY_SHAPE(1, 13, 2, 3)),
              *v = t_randn_next(HY_F64, HY_SHAPE(1, 13, 2, 3));
    t_expect_gradcheck(sla_gc, &c, 3, (hy_tensor *[]){q, P(1, 13, 2, 3), v}, "sla k only");
    hy_tensor *k = t_randn_next(HY_F64, HY_SHAPE(1, 13, 2, 3));
    t_expect_gradcheck(sla_gc, &c, 3, (hy_tensor *[]){P(1, 13, 2, 3), k, P(1, 13, 2, 3)},
                       "sla q, v only");
    hy_step_reset();
  }
}

/* ---- the limits ---- */

/* Every earlier block critical: o_s is causal softmax attention, o_l is exactly 0 (no marginal
 * block), and the gradients are hy_attention's for the o_s part of the output gradient. */
Test(sla, all_critical_is_attention) {
  static const int64_t sizes[][5] = {{2, 70, 3, 8, 8}, {1, 150, 2, 16, 64}, {1, 13, 2, 3, 4}};
  for (int i = 0; i < 3; i++)
    for (int nfi = 0; nfi < 2; nfi++) {
      const int64_t *s = sizes[i];
      hy_shape sh = HY_SHAPE(s[0], s[1], s[2], s[3]);
      hy_tensor *q = t_param(t_randn_next(HY_F64, sh)), *k = t_param(t_randn_next(HY_F64, sh));
      hy_tensor *v = t_param(t_randn_next(HY_F64, sh));
      hy_tensor *go = t_randn_next(HY_F64, HY_SHAPE(s[0], s[1], s[2], 2 * s[3]));
      double scale = 0.4;
      hy_sla_stats st;
      hy_tensor *o = hy_sla(q, k, v, scale, 1.0, nfi ? 0.5 : 0, HY_SLA_PHI_SOFTMAX, s[4], &st);
      cr_assert(st.exact == 1 && st.marginal == 0, "stats %g %g", st.exact, st.marginal);
      hy_backward_with(o, go);
      result f = {o, q->grad, k->grad, v->grad};
      q->grad = k->grad = v->grad = NULL;
      hy_tensor *a = hy_attention(q, k, v, scale);
      hy_backward_with(a, hy_contiguous(half(go, 0)));
      t_expect_close(half(o, 0), a, 1e-12, "critical 1: o_s against hy_attention");
      hy_tensor *ol = half(o, 1);
      for (int64_t x = 0; x < hy_numel(ol); x++)
        cr_assert(hy_get(ol, x) == 0, "critical 1: o_l[%lld] = %g", (long long)x, hy_get(ol, x));
      t_expect_close(f.gq, q->grad, 1e-12, "critical 1: dq");
      t_expect_close(f.gk, k->grad, 1e-12, "critical 1: dk");
      t_expect_close(f.gv, v->grad, 1e-12, "critical 1: dv");
      hy_step_reset();
    }
}

/* No earlier block critical: o_s is causal attention inside each block alone (hy_attention on
 * each block's slice), and every earlier block feeds o_l. */
Test(sla, no_critical_is_block_diagonal_attention) {
  static const int64_t sizes[][5] = {{2, 70, 3, 8, 8}, {1, 150, 2, 16, 64}, {1, 13, 2, 3, 4}};
  for (int i = 0; i < 3; i++) {
    const int64_t *s = sizes[i];
    int64_t T = s[1], block = s[4];
    hy_shape sh = HY_SHAPE(s[0], T, s[2], s[3]);
    hy_tensor *q = t_randn_next(HY_F64, sh), *k = t_randn_next(HY_F64, sh),
              *v = t_randn_next(HY_F64, sh);
    hy_sla_stats st;
    hy_tensor *o = hy_sla(q, k, v, 0.4, 0, 0, HY_SLA_PHI_ELU, block, &st);
    int64_t nb = (T + block - 1) / block;
    cr_assert(fabs(st.exact - 2.0 / (double)(nb + 1)) < 1e-15 &&
              fabs(st.exact + st.marginal - 1) < 1e-15);
    hy_tensor *parts[64];
    for (int64_t j = 0; j < nb; j++) {
      int64_t a = j * block, e = a + block < T ? a + block : T;
      parts[j] =
          hy_attention(hy_slice(q, 1, a, e), hy_slice(k, 1, a, e), hy_slice(v, 1, a, e), 0.4);
    }
    t_expect_close(half(o, 0), hy_concat((int)nb, parts, 1), 1e-12,
                   "critical 0: o_s against block-diagonal attention");
  }
}

/* The first block's rows: o_l = 0 (nothing earlier), and row 0 of o_s is v_0. */
Test(sla, first_block) {
  hy_shape sh = HY_SHAPE(2, 20, 3, 4);
  hy_tensor *q = t_randn_next(HY_F64, sh), *k = t_randn_next(HY_F64, sh),
            *v = t_randn_next(HY_F64, sh);
  hy_tensor *o = hy_sla(q, k, v, 0.5, 0.1, 0, HY_SLA_PHI_SOFTMAX, 8, NULL);
  for (int64_t b = 0; b < 2; b++)
    for (int64_t h = 0; h < 3; h++)
      for (int64_t d = 0; d < 4; d++) {
        cr_assert(t_at(o, (int64_t[]){b, 0, h, d}) == t_at(v, (int64_t[]){b, 0, h, d}));
        for (int64_t t = 0; t < 8; t++) cr_assert(t_at(o, (int64_t[]){b, t, h, 4 + d}) == 0);
      }
}

/* ---- the selection and the stats by hand ---- */

/* Blocks of 2 rows. Both rows of key block j are (s_j, u_j). Query block i's rows are
 * (m_i + 5, 1) and (m_i - 5, -1): their mean is (m_i, 0) exactly, so the score of key block j
 * for query block i is mean(q of block i - 1) . mean(k_j) = m_{i-1} s_j, whatever u_j. (A single
 * row of block i - 1 would score (m_{i-1} +- 5) s_j +- u_j, another order.) */
static void hand_inputs(const double *m, const double *s, const double *u, int64_t nb,
                        hy_tensor **q, hy_tensor **k) {
  *q = hy_zeros(HY_F64, HY_SHAPE(1, 2 * nb, 1, 2));
  *k = hy_zeros(HY_F64, HY_SHAPE(1, 2 * nb, 1, 2));
  for (int64_t t = 0; t < 2 * nb; t++) {
    double sign = t % 2 ? -1 : 1;
    hy_set(*q, 2 * t, m[t / 2] + 5 * sign);
    hy_set(*q, 2 * t + 1, sign);
    hy_set(*k, 2 * t, s[t / 2]);
    hy_set(*k, 2 * t + 1, u[t / 2]);
  }
}

static void expect_classes(const hy_tensor *c, int64_t nb, const char *expected) {
  /* expected: nb rows of nb letters, F future, N negligible, M marginal, C critical */
  static const char letters[] = "FNMC";
  for (int64_t i = 0; i < nb; i++)
    for (int64_t j = 0; j < nb; j++) {
      char got = letters[((const int32_t *)c->data)[i * nb + j]], want = expected[i * nb + j];
      cr_assert(got == want, "class (%lld, %lld): %c, expected %c", (long long)i, (long long)j, got,
                want);
    }
}

/* The query block means alternate in sign, m = (1, -1, 1, -1, 1), so query block i ranks key
 * block j by m_{i-1} s_j: by -s_j for i = 2 and 4, by s_j for i = 1 and 3. (Ranking by block
 * i's own mean would reverse every row from 2 on.) With s = (0.5, 3, 3, -1, 2):
 *   row 1 (m_0 = 1):  j0 0.5
 *   row 2 (m_1 = -1): j0 -0.5, j1 -3
 *   row 3 (m_2 = 1):  j1 3 = j2 3 (tie: j1 first), j0 0.5
 *   row 4 (m_3 = -1): j3 1, j0 -0.5, j1 -3 = j2 -3 (tie: j1 first, so j2 is last)
 * The last query block's own mean (m_4) is never read. */
Test(sla, selection_by_hand) {
  const double m[] = {1, -1, 1, -1, 1}, s[] = {0.5, 3.0, 3.0, -1.0, 2.0};
  const double u[] = {4, -4, 0, 2, -2};
  hy_tensor *q, *k;
  hand_inputs(m, s, u, 5, &q, &k);
  /* critical 0.5: ceil(i / 2) of the i earlier blocks, highest first; negligible 0.25: floor(i / 4)
   * lowest. Row 1: j0. Row 2: j0 (-0.5 over -3). Row 3: j1, j2 (the two 3s). Row 4: j3 and j0
   * critical, j2 (last) negligible, j1 marginal. */
  hy_tensor *c = hy_sla_select(q, k, 2, 0.5, 0.25, NULL);
  cr_assert(c->dtype == HY_I32 && c->ndim == 4 && c->shape[2] == 5 && c->shape[3] == 5);
  expect_classes(c, 5,
                 "CFFFF"
                 "CCFFF"
                 "CMCFF"
                 "MCCCF"
                 "CMNCC");
  /* critical 0.25: one block from row 1 on (ceil(i / 4)): the top of each ranking; row 3's tie
   * at 3 goes to the lower block, 1. */
  expect_classes(hy_sla_select(q, k, 2, 0.25, 0, NULL), 5,
                 "CFFFF"
                 "CCFFF"
                 "CMCFF"
                 "MCMCF"
                 "MMMCC");
  /* negligible 1: everything earlier that is not critical is dropped. */
  expect_classes(hy_sla_select(q, k, 2, 0.25, 1, NULL), 5,
                 "CFFFF"
                 "CCFFF"
                 "CNCFF"
                 "NCNCF"
                 "NNNCC");
  /* The last query block's rows change nothing: no block ranks with them. */
  hy_tensor *q2 = hy_copy(q);
  hy_copy_into(hy_slice(q2, 1, 8, 10), t_randn_next(HY_F64, HY_SHAPE(1, 2, 1, 2)));
  expect_classes(hy_sla_select(q2, k, 2, 0.5, 0.25, NULL), 5,
                 "CFFFF"
                 "CCFFF"
                 "CMCFF"
                 "MCCCF"
                 "CMNCC");
}

Test(sla, stats_by_hand) {
  hy_tensor *q = t_randn_next(HY_F64, HY_SHAPE(2, 37, 3, 4)),
            *k = t_randn_next(HY_F64, HY_SHAPE(2, 37, 3, 4));
  /* block 8: 5 blocks, 15 causal (i, j) pairs, 10 earlier ones. critical ceil(0.3 i) for
   * i = 0..4: 0, 1, 1, 1, 2 (5) plus the 5 diagonals: 10 exact; negligible floor(0.3 i): 1
   * (i = 4); marginal 10 - 5 - 1 = 4. */
  hy_sla_stats st;
  hy_tensor *c = hy_sla_select(q, k, 8, 0.3, 0.3, &st);
  cr_assert(fabs(st.exact - 10.0 / 15) < 1e-15, "exact %g", st.exact);
  cr_assert(fabs(st.marginal - 4.0 / 15) < 1e-15, "marginal %g", st.marginal);
  /* the class map agrees, for every (b, h) */
  int64_t count[4] = {0};
  for (int64_t x = 0; x < hy_numel(c); x++) count[((const int32_t *)c->data)[x]]++;
  cr_assert(count[HY_SLA_CRITICAL] == 6 * 10 && count[HY_SLA_MARGINAL] == 6 * 4 &&
            count[HY_SLA_NEGLIGIBLE] == 6 * 1 && count[HY_SLA_FUTURE] == 6 * 10);
  hy_sla_stats st2;
  hy_sla(q, k, k, 1, 0.3, 0.3, HY_SLA_PHI_RELU, 8, &st2);
  cr_assert(st2.exact == st.exact && st2.marginal == st.marginal);
  /* Counts forgive the rounding of f i: 0.28 * 25 = 7.000000000000001 gives 7 critical blocks,
   * 0.7 * 90 = 62.99999999999999 gives 63 negligible ones (block 1: row i has i earlier blocks). */
  hy_tensor *x = t_randn_next(HY_F64, HY_SHAPE(1, 91, 1, 2));
  hy_tensor *c1 = hy_sla_select(x, x, 1, 0.28, 0, NULL), *c2 = hy_sla_select(x, x, 1, 0, 0.7, NULL);
  int64_t crit = 0, negl = 0;
  for (int64_t j = 0; j < 25; j++)
    crit += ((const int32_t *)c1->data)[25 * 91 + j] == HY_SLA_CRITICAL;
  for (int64_t j = 0; j < 90; j++)
    negl += ((const int32_t *)c2->data)[90 * 91 + j] == HY_SLA_NEGLIGIBLE;
  cr_assert(crit == 7 && negl == 63, "critical %lld, negligible %lld", (long long)crit,
            (long long)negl);
}

/* ---- other properties ---- */

/* Row-by-row causality: for a cut t, new q, k and v at every position after t (later rows of
 * t's own block included) leave output rows 0..t bitwise alone, and the class rows of the query
 * blocks that start at or before t too (each reads only rows before its block), while later rows
 * and later blocks' classes do change. Blocks of 4 over T = 45 (12 blocks, the last of one
 * row), 30% critical and 30% negligible: every class from query block 4 on; cuts at the start,
 * inside and at the end of blocks; each feature map. */
Test(sla, causal_row_by_row) {
  enum { B = 2, T = 45, H = 2, D = 4, BL = 4 };
  hy_shape sh = HY_SHAPE(B, T, H, D);
  hy_tensor *q = t_randn_next(HY_F64, sh), *k = t_randn_next(HY_F64, sh),
            *v = t_randn_next(HY_F64, sh);
  hy_sla_stats st;
  hy_tensor *c1 = hy_sla_select(q, k, BL, 0.3, 0.3, &st);
  int64_t nb = c1->shape[2], count[4] = {0};
  for (int64_t x = 0; x < hy_numel(c1); x++) count[((const int32_t *)c1->data)[x]]++;
  cr_assert(count[HY_SLA_NEGLIGIBLE] > 0 && count[HY_SLA_MARGINAL] > 0 && st.marginal > 0.1,
            "negligible %lld, marginal %lld", (long long)count[HY_SLA_NEGLIGIBLE],
            (long long)count[HY_SLA_MARGINAL]);
  static const int64_t cuts[] = {0, 1, 13, 16, 17, 18, 22, 23, 30, 39, 42, 43};
  int64_t classes_changed = 0;
  for (int fi = 0; fi < 3; fi++) {
    hy_tensor *o1 = hy_sla(q, k, v, 0.5, 0.3, 0.3, FMAPS[fi], BL, NULL);
    for (size_t ci = 0; ci < sizeof cuts / sizeof *cuts; ci++) {
      int64_t t = cuts[ci], n = T - t - 1;
      hy_tensor *q2 = hy_copy(q), *k2 = hy_copy(k), *v2 = hy_copy(v);
      hy_copy_into(hy_slice(q2, 1, t + 1, T),
                   hy_scale(t_randn_next(HY_F64, HY_SHAPE(B, n, H, D)), 3));
      hy_copy_into(hy_slice(k2, 1, t + 1, T),
                   hy_scale(t_randn_next(HY_F64, HY_SHAPE(B, n, H, D)), 3));
      hy_copy_into(hy_slice(v2, 1, t + 1, T), t_randn_next(HY_F64, HY_SHAPE(B, n, H, D)));
      hy_tensor *o2 = hy_sla(q2, k2, v2, 0.5, 0.3, 0.3, FMAPS[fi], BL, NULL);
      char what[120];
      snprintf(what, sizeof what, "sla %s: rows 0..%lld after changing rows %lld..%d",
               FMAP_NAMES[fi], (long long)t, (long long)t + 1, T - 1);
      t_expect_same_bits(hy_contiguous(hy_slice(o2, 1, 0, t + 1)),
                         hy_contiguous(hy_slice(o1, 1, 0, t + 1)), what);
      cr_assert(t_max_rel_err(hy_slice(o2, 1, t + 1, T), hy_slice(o1, 1, t + 1, T)) > 1e-3,
                "%s: the later rows did not change", what);
      /* the class rows of query blocks 0..t / BL read rows before t / BL * BL only */
      hy_tensor *c2 = hy_sla_select(q2, k2, BL, 0.3, 0.3, NULL);
      const int32_t *a = c1->data, *b = c2->data;
      for (int64_t bh = 0; bh < B * H; bh++)
        for (int64_t i = 0; i < nb; i++)
          for (int64_t j = 0; j < nb; j++) {
            int64_t x = (bh * nb + i) * nb + j;
            if (i <= t / BL)
              cr_assert(a[x] == b[x], "%s: class (%lld, %lld) of head %lld changed", what,
                        (long long)i, (long long)j, (long long)bh);
            else
              classes_changed += a[x] != b[x];
          }
    }
  }
  cr_assert(classes_changed > 0, "no later block's selection changed");
}

/* q, k, v read in place from one projection give the contiguous inputs' results. */
Test(sla, strided_inputs) {
  for (int fi = 0; fi < 3; fi++) {
    int64_t H = 3, D = 5;
    hy_tensor *qkv = t_param(t_randn_next(HY_F64, HY_SHAPE(2, 70, 3 * H * D))), *q, *k, *v;
    t_qkv_views(qkv, H, D, &q, &k, &v);
    cr_assert(!hy_is_contiguous(q));
    hy_tensor *go = t_randn_next(HY_F64, HY_SHAPE(2, 70, H, 2 * D));
    hy_tensor *o1 = hy_sla(q, k, v, 0.5, 0.25, 0.25, FMAPS[fi], 16, NULL);
    hy_backward_with(o1, go);
    hy_tensor *g1 = qkv->grad;
    qkv->grad = NULL;
    hy_tensor *qc = t_param(hy_copy(q)), *kc = t_param(hy_copy(k)), *vc = t_param(hy_copy(v));
    result r = run(false, qc, kc, vc, go, 0.5, 0.25, 0.25, FMAPS[fi], 16);
    t_expect_close(o1, r.o, 1e-14, "strided: output");
    hy_tensor *g1v[3];
    t_qkv_views(g1, H, D, &g1v[0], &g1v[1], &g1v[2]);
    t_expect_close(g1v[0], r.gq, 1e-14, "strided: dq");
    t_expect_close(g1v[1], r.gk, 1e-14, "strided: dk");
    t_expect_close(g1v[2], r.gv, 1e-14, "strided: dv");
    hy_step_reset();
  }
}

/* f32 against f64 on the same inputs: dot products of 16 terms, real_exp within 3 ulp, sums of up
 * to 150 positive weights, and D x D states summed over up to 9 blocks. */
Test(sla, f32_against_f64) {
  static const double fr[][2] = {{0.05, 0}, {0.25, 0.1}, {1, 0}};
  for (int fi = 0; fi < 3; fi++)
    for (int c = 0; c < 3; c++) {
      hy_shape sh = HY_SHAPE(2, 150, 2, 16);
      hy_tensor *q = t_randn_next(HY_F64, sh), *k = t_randn_next(HY_F64, sh),
                *v = t_randn_next(HY_F64, sh);
      hy_tensor *go = t_randn_next(HY_F64, HY_SHAPE(2, 150, 2, 32));
      hy_tensor *q32 = t_param(t_cast(q, HY_F32)), *k32 = t_param(t_cast(k, HY_F32));
      hy_tensor *v32 = t_param(t_cast(v, HY_F32));
      /* f64 on the f32-rounded inputs: the difference is the arithmetic's alone */
      hy_tensor *q64 = t_param(t_cast(q32, HY_F64)), *k64 = t_param(t_cast(k32, HY_F64));
      hy_tensor *v64 = t_param(t_cast(v32, HY_F64));
      result a =
          run(false, q32, k32, v32, t_cast(go, HY_F32), 0.25, fr[c][0], fr[c][1], FMAPS[fi], 16);
      result b = run(false, q64, k64, v64, go, 0.25, fr[c][0], fr[c][1], FMAPS[fi], 16);
      char what[120];
      snprintf(what, sizeof what, "sla f32 vs f64, %s, critical %g, negligible %g", FMAP_NAMES[fi],
               fr[c][0], fr[c][1]);
      expect_result_close(a, b, 1e-5, what);
      hy_step_reset();
    }
}

Test(sla, deterministic) {
  hy_shape sh = HY_SHAPE(2, 300, 3, 32);
  hy_tensor *q = t_param(t_randn_next(HY_F32, sh)), *k = t_param(t_randn_next(HY_F32, sh));
  hy_tensor *v = t_param(t_randn_next(HY_F32, sh)),
            *go = t_randn_next(HY_F32, HY_SHAPE(2, 300, 3, 64));
  for (int fi = 0; fi < 3; fi++) {
    result a = run(false, q, k, v, go, 0.2, 0.25, 0.1, FMAPS[fi], 32);
    result b = run(false, q, k, v, go, 0.2, 0.25, 0.1, FMAPS[fi], 32);
    t_expect_same_bits(a.o, b.o, "sla forward");
    t_expect_same_bits(a.gq, b.gq, "sla dq");
    t_expect_same_bits(a.gk, b.gk, "sla dk");
    t_expect_same_bits(a.gv, b.gv, "sla dv");
  }
}

/* ---- a rank's slice: queries from a later position (hy_sla_offset) ---- */

/* The queries of [q0, q0 + n) of one sequence, against its keys up to `keys` (>= q0 + n), with
 * the block before q0 as q_before, give the whole sequence's rows and their share of the key
 * gradients: hy_sla on the whole with the output gradient zero outside those rows. The fused op
 * (naive false) or the naive form; f64, the same sums in the same order: 1e-12. */
static void expect_slice_matches_whole(bool naive, int64_t T, int64_t block, int64_t q0, int64_t n,
                                       int64_t keys, double cf, double nf, int fi) {
  int64_t B = 2, H = 2, D = 5;
  hy_shape sh = HY_SHAPE(B, T, H, D);
  hy_tensor *q = t_param(t_randn_next(HY_F64, sh)), *k = t_param(t_randn_next(HY_F64, sh));
  hy_tensor *v = t_param(t_randn_next(HY_F64, sh)),
            *go = t_randn_next(HY_F64, HY_SHAPE(B, n, H, 2 * D));
  hy_tensor *go_whole = hy_zeros(HY_F64, HY_SHAPE(B, T, H, 2 * D));
  hy_copy_into(hy_slice(go_whole, 1, q0, q0 + n), go);
  result whole = run(naive, q, k, v, go_whole, 0.4, cf, nf, FMAPS[fi], block);
  hy_tensor *qs = t_param(hy_contiguous(hy_slice(q, 1, q0, q0 + n)));
  hy_tensor *ks = t_param(hy_contiguous(hy_slice(k, 1, 0, keys)));
  hy_tensor *vs = t_param(hy_contiguous(hy_slice(v, 1, 0, keys)));
  hy_tensor *before = q0 ? hy_contiguous(hy_slice(q, 1, q0 - block, q0)) : NULL;
  hy_tensor *o = naive ? hy_sla_naive_offset(qs, ks, vs, before, q0, 0.4, cf, nf, FMAPS[fi], block)
                       : hy_sla_offset(qs, ks, vs, before, q0, 0.4, cf, nf, FMAPS[fi], block, NULL);
  hy_backward_with(o, go);
  char what[200];
  snprintf(what, sizeof what, "sla%s rows %lld..%lld of %lld, keys %lld, block %lld, %g/%g, %s",
           naive ? " naive" : "", (long long)q0, (long long)(q0 + n), (long long)T, (long long)keys,
           (long long)block, cf, nf, FMAP_NAMES[fi]);
  result r = {o, qs->grad, ks->grad, vs->grad};
  result w = {hy_contiguous(hy_slice(whole.o, 1, q0, q0 + n)),
              hy_contiguous(hy_slice(whole.gq, 1, q0, q0 + n)),
              hy_contiguous(hy_slice(whole.gk, 1, 0, keys)),
              hy_contiguous(hy_slice(whole.gv, 1, 0, keys))};
  expect_result_close(r, w, 1e-12, what);
}

/* Slices of several blocks and of one, the first and the last, a last block shorter than the
 * others and a slice shorter than a block, keys that end at the slice and ones that go on to
 * the end (not read); fractions that make every class, and none but the diagonal; each map. */
Test(sla, slice_matches_whole) {
  static const int64_t cuts[][5] = {/* T, block, q0, n, keys */
                                    {64, 8, 32, 16, 48}, {64, 8, 32, 16, 64}, {64, 8, 0, 16, 64},
                                    {64, 8, 56, 8, 64},  {61, 4, 40, 21, 61}, {61, 4, 8, 3, 61},
                                    {70, 16, 48, 22, 70}};
  static const double fr[][2] = {{0.3, 0.3}, {0, 0}, {1, 0}};
  for (int c = 0; c < 7; c++)
    for (int f = 0; f < 3; f++)
      for (int fi = 0; fi < 3; fi++) {
        const int64_t *x = cuts[c];
        expect_slice_matches_whole(false, x[0], x[1], x[2], x[3], x[4], fr[f][0], fr[f][1], fi);
        hy_step_reset();
      }
  for (int fi = 0; fi < 3; fi++) {
    expect_slice_matches_whole(true, 64, 8, 32, 16, 64, 0.3, 0.3, fi);
    expect_slice_matches_whole(true, 61, 4, 40, 21, 61, 0.25, 0.5, fi);
    hy_step_reset();
  }
}

/* The selection of a slice: the whole sequence's class rows of its query blocks (the key blocks
 * up to its last), and its stats count the same pairs. */
Test(sla, slice_selection_matches_whole) {
  hy_shape sh = HY_SHAPE(2, 45, 3, 4);
  hy_tensor *q = t_randn_next(HY_F64, sh), *k = t_randn_next(HY_F64, sh);
  hy_tensor *whole = hy_sla_select(q, k, 4, 0.3, 0.3, NULL);
  int64_t nb = whole->shape[2];
  hy_sla_stats st;
  hy_tensor *part =
      hy_sla_select_offset(hy_slice(q, 1, 16, 45), k, hy_slice(q, 1, 12, 16), 16, 4, 0.3, 0.3, &st);
  cr_assert(part->shape[2] == nb - 4 && part->shape[3] == nb, "%s", hy_describe(part));
  const int32_t *a = whole->data, *b = part->data;
  double causal = 0, exact = 0;
  for (int64_t bh = 0; bh < 6; bh++)
    for (int64_t i = 4; i < nb; i++)
      for (int64_t j = 0; j < nb; j++) {
        int32_t c = b[(bh * (nb - 4) + i - 4) * nb + j];
        cr_assert(c == a[(bh * nb + i) * nb + j], "class (%lld, %lld) of head %lld", (long long)i,
                  (long long)j, (long long)bh);
        causal += bh == 0 && j <= i, exact += bh == 0 && c == HY_SLA_CRITICAL;
      }
  cr_assert(fabs(st.exact - exact / causal) < 1e-15, "exact %g, expected %g", st.exact,
            exact / causal);
}

typedef struct {
  hy_tensor *before;
  int64_t q_offset;
  sla_ctx c;
} slice_ctx;

static hy_tensor *sla_slice_gc(hy_tensor **in, void *ctx) {
  const slice_ctx *s = ctx;
  return hy_sla_offset(in[0], in[1], in[2], s->before, s->q_offset, s->c.scale, s->c.cf, s->c.nf,
                       s->c.fm, s->c.block, NULL);
}

/* Queries 8..16 of keys 0..19 (blocks of 4: the slice starts block 2; the last two keys are not
 * read), every class. */
Test(sla, gradcheck_slice) {
  for (int fi = 0; fi < 3; fi++) {
    slice_ctx s = {
        t_randn_next(HY_F64, HY_SHAPE(2, 4, 2, 3)), 8, {0.6, 0.3, 0.5, FMAPS[fi], 4, 0, 0}};
    t_expect_gradcheck(sla_slice_gc, &s, 3,
                       (hy_tensor *[]){P(2, 9, 2, 3), P(2, 19, 2, 3), P(2, 19, 2, 3)},
                       "sla gradcheck of a slice");
    hy_step_reset();
  }
}

/* ---- bad arguments ---- */

static hy_tensor *z(hy_dtype dt, int64_t T) { return hy_zeros(dt, HY_SHAPE(1, T, 2, 3)); }
static void sla_mismatch(void) {
  hy_sla(z(HY_F32, 4), z(HY_F32, 5), z(HY_F32, 4), 1, 0.1, 0, HY_SLA_PHI_SOFTMAX, 2, NULL);
}
static void sla_dtypes(void) {
  hy_sla(z(HY_F32, 4), z(HY_F32, 4), z(HY_F64, 4), 1, 0.1, 0, HY_SLA_PHI_SOFTMAX, 2, NULL);
}
static void sla_block(void) {
  hy_sla(z(HY_F32, 4), z(HY_F32, 4), z(HY_F32, 4), 1, 0.1, 0, HY_SLA_PHI_SOFTMAX, 0, NULL);
}
static void sla_fraction(void) {
  hy_sla(z(HY_F32, 4), z(HY_F32, 4), z(HY_F32, 4), 1, 1.5, 0, HY_SLA_PHI_SOFTMAX, 2, NULL);
}
static void sla_fmap(void) {
  hy_sla(z(HY_F32, 4), z(HY_F32, 4), z(HY_F32, 4), 1, 0.1, 0, 7, 2, NULL);
}

static hy_tensor *zb(int64_t T) { return hy_zeros(HY_F32, HY_SHAPE(1, T, 2, 3)); }
static void slice_off_block(void) {
  hy_sla_offset(z(HY_F32, 4), z(HY_F32, 9), z(HY_F32, 9), zb(2), 3, 1, 0.1, 0, 0, 2, NULL);
}
static void slice_past_keys(void) {
  hy_sla_offset(z(HY_F32, 4), z(HY_F32, 9), z(HY_F32, 9), zb(2), 6, 1, 0.1, 0, 0, 2, NULL);
}
static void slice_without_before(void) {
  hy_sla_offset(z(HY_F32, 4), z(HY_F32, 9), z(HY_F32, 9), NULL, 4, 1, 0.1, 0, 0, 2, NULL);
}
static void slice_before_shape(void) {
  hy_sla_offset(z(HY_F32, 4), z(HY_F32, 9), z(HY_F32, 9), zb(3), 4, 1, 0.1, 0, 0, 2, NULL);
}

Test(sla, bad_slice_arguments_abort) {
  t_expect_abort(slice_off_block, 3, (const char *[]){"sla", "position 3", "block of 2"});
  t_expect_abort(slice_past_keys, 3, (const char *[]){"sla", "position 6", "[1, 9, 2, 3]"});
  t_expect_abort(slice_without_before, 2, (const char *[]){"sla", "q_before missing"});
  t_expect_abort(slice_before_shape, 3, (const char *[]){"sla", "[1, 3, 2, 3]", "[B, 2, H, D]"});
}

Test(sla, bad_arguments_abort) {
  t_expect_abort(sla_mismatch, 3, (const char *[]){"sla", "[1, 4, 2, 3]", "[1, 5, 2, 3]"});
  t_expect_abort(sla_dtypes, 3, (const char *[]){"sla", "f32", "f64"});
  t_expect_abort(sla_block, 2, (const char *[]){"sla", "block 0"});
  t_expect_abort(sla_fraction, 2, (const char *[]){"sla", "critical 1.5"});
  t_expect_abort(sla_fmap, 2, (const char *[]){"sla", "feature map 7"});
}
