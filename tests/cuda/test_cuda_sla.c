/* Sparse-linear attention on the GPU (tensor/cuda/sla.cu) against the CPU path: the block
 * selection gives the CPU's classes exactly; hy_sla's forward (o_s and o_l) and the gradients of
 * q, k and v agree within 1e-5. Covered: each feature map; T a multiple of the block, not one,
 * shorter than one block, and a single token; blocks smaller than, equal to and larger than the
 * kernels' 32-row tiles and not multiples of them; critical fractions 0, small, and 1 (dense),
 * negligible fractions 0, > 0 and 1; several heads and batches; head sizes 16, 64, 128 and odd
 * ones (rows not 16-byte aligned); a longer sequence (T 512, block 32) and 300 blocks of 2 rows;
 * q, k, v as strided slices of one projection and one tensor as all three; a sequence-parallel
 * rank's slice (hy_sla_offset: queries from a later position, the block before them for the
 * selection). The layer is tests/cuda/test_cuda_mixers.c's, with every other kind. */
#include "layers/sla.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double TOL = 1e-5; /* f32, relative norm error */

static uint64_t seed = 9000; /* every input fresh */

typedef struct {
  int64_t B, T, H, D, block;
  double critical, negligible;
  int fm;
} sla_case;

static const char *const MAPS[] = {"softmax", "elu", "relu"};

static const char *describe(sla_case c, const char *what) {
  static char buf[240];
  snprintf(buf, sizeof buf,
           "%s: B %lld T %lld H %lld D %lld block %lld critical %g negligible %g %s", what,
           (long long)c.B, (long long)c.T, (long long)c.H, (long long)c.D, (long long)c.block,
           c.critical, c.negligible, MAPS[c.fm]);
  return buf;
}

static hy_tensor *run(const sla_case *c, hy_tensor *q, hy_tensor *k, hy_tensor *v) {
  return hy_sla(q, k, v, 1 / sqrt((double)c->D), c->critical, c->negligible, c->fm, c->block, NULL);
}

static hy_tensor *separate(hy_tensor **in, void *ctx) { return run(ctx, in[0], in[1], in[2]); }

/* q, k, v as slices of one [B, T, 3 H D] projection. */
static hy_tensor *of_projection(hy_tensor **in, void *ctx) {
  const sla_case *c = ctx;
  hy_tensor *qkv = hy_reshape(in[0], HY_SHAPE(in[0]->shape[0], in[0]->shape[1], 3 * c->H, c->D));
  hy_tensor *parts[3];
  hy_split(qkv, 2, 3, (int64_t[]){c->H, c->H, c->H}, parts);
  return run(c, parts[0], parts[1], parts[2]);
}

/* One tensor as q, k and v: the three gradients add up in one buffer. */
static hy_tensor *one_tensor(hy_tensor **in, void *ctx) { return run(ctx, in[0], in[0], in[0]); }

/* hy_sla_select on the GPU gives the CPU's classes, element for element. */
static void expect_same_classes(const sla_case *c, hy_tensor *q, hy_tensor *k) {
  hy_tensor *want = hy_sla_select(q, k, c->block, c->critical, c->negligible, NULL);
  hy_tensor *qg = t_to_gpu(q), *kg = t_to_gpu(k);
  t_poison(); /* an unwritten class reads -1 */
  hy_tensor *got = t_to_cpu(hy_sla_select(qg, kg, c->block, c->critical, c->negligible, NULL));
  cr_assert(hy_same_shape(got, want), "%s: classes %s, expected %s", describe(*c, "select"),
            hy_describe(got), hy_describe(want));
  const int32_t *g = got->data, *w = want->data;
  for (int64_t x = 0; x < hy_numel(want); x++)
    cr_assert(g[x] == w[x], "%s: class %lld is %d, expected %d", describe(*c, "select"),
              (long long)x, g[x], w[x]);
}

/* Fresh q, k, v [B, T, H, D]: the classes, then the forward and the three gradients. With one
 * token the one weight is 1 whatever the score, so the gradients of q and k are zero up to
 * rounding on both devices: only v's is compared there (and the kernels run without gq, gk). */
static void expect(sla_case c, const char *what) {
  hy_tensor *in[3];
  for (int i = 0; i < 3; i++)
    in[i] = t_param(t_randn(HY_F32, HY_SHAPE(c.B, c.T, c.H, c.D), seed++));
  in[0]->requires_grad = in[1]->requires_grad = c.T > 1;
  expect_same_classes(&c, in[0], in[1]);
  t_expect_gpu_matches_cpu(separate, &c, 3, in, TOL, describe(c, what));
}

Test(cuda_sla, feature_maps_match_cpu) {
  T_NEED_GPU();
  for (int fm = 0; fm < 3; fm++) {
    expect((sla_case){2, 100, 2, 16, 16, 0.3, 0.2, fm}, "feature map");
    expect((sla_case){1, 130, 3, 64, 32, 0.25, 0.25, fm}, "feature map");
  }
}

/* T a multiple of the block and not, shorter than a block, one token; blocks of 8 to 100 rows
 * against the kernels' tiles of 32. */
Test(cuda_sla, lengths_and_blocks_match_cpu) {
  T_NEED_GPU();
  static const int64_t TS[] = {1, 20, 64, 77, 200};
  static const int64_t BLOCKS[] = {8, 20, 32, 48, 64, 100};
  for (int t = 0; t < 5; t++)
    for (int b = 0; b < 6; b++)
      expect((sla_case){2, TS[t], 2, 32, BLOCKS[b], 0.3, 0.25, (t + b) % 3}, "length and block");
}

/* Critical fractions 0 (the diagonal block only), small and 1 (dense softmax, o_l = 0), with no,
 * some and all of the rest negligible. */
Test(cuda_sla, fractions_match_cpu) {
  T_NEED_GPU();
  static const double CRIT[] = {0, 0.1, 0.5, 1}, NEGL[] = {0, 0.3, 1};
  for (int ci = 0; ci < 4; ci++)
    for (int ni = 0; ni < 3; ni++)
      expect((sla_case){2, 150, 2, 16, 16, CRIT[ci], NEGL[ni], (ci + ni) % 3}, "fractions");
}

/* Head sizes the softmax branch pads (5, 24, 80), its widest (256) and the common ones. */
Test(cuda_sla, head_sizes_match_cpu) {
  T_NEED_GPU();
  static const int64_t DS[] = {5, 16, 24, 64, 80, 128, 256};
  for (int d = 0; d < 7; d++)
    expect((sla_case){1 + d % 2, 90, 2, DS[d], 24 + 8 * (d % 3), 0.3, 0.2, d % 3}, "head size");
}

Test(cuda_sla, long_sequence_matches_cpu) {
  T_NEED_GPU();
  for (int fm = 0; fm < 3; fm++) expect((sla_case){2, 512, 2, 64, 32, 0.2, 0.3, fm}, "long");
  expect((sla_case){1, 512, 4, 16, 64, 0.1, 0, 0}, "long");
  /* more than 256 blocks: the selection's counts go through device memory */
  expect((sla_case){1, 600, 2, 8, 2, 0.2, 0.3, 1}, "many blocks");
}

/* q, k, v as strided slices of one projection, and one tensor as all three. */
Test(cuda_sla, strided_and_shared_inputs_match_cpu) {
  T_NEED_GPU();
  for (int fm = 0; fm < 3; fm++) {
    sla_case c = {2, 70, 2, 32, 16, 0.3, 0.2, fm};
    hy_tensor *in[1] = {t_param(t_randn(HY_F32, HY_SHAPE(c.B, c.T, 3 * c.H * c.D), seed++))};
    t_expect_gpu_matches_cpu(of_projection, &c, 1, in, TOL, describe(c, "projection slices"));
    c.D = 13;
    hy_tensor *one[1] = {t_param(t_randn(HY_F32, HY_SHAPE(c.B, c.T, c.H, c.D), seed++))};
    t_expect_gpu_matches_cpu(one_tensor, &c, 1, one, TOL, describe(c, "one tensor"));
  }
}

/* ---- a sequence-parallel rank's slice ---- */

typedef struct {
  sla_case c; /* c.T: the keys */
  int64_t q0;
  hy_tensor *before; /* on the CPU; NULL at q0 = 0 */
} slice_case;

static hy_tensor *before_on(const slice_case *s, hy_device device) {
  return s->before ? hy_to(s->before, device) : NULL;
}

static hy_tensor *slice_run(hy_tensor **in, void *ctx) {
  const slice_case *s = ctx;
  const sla_case *c = &s->c;
  return hy_sla_offset(in[0], in[1], in[2], before_on(s, in[0]->device), s->q0,
                       1 / sqrt((double)c->D), c->critical, c->negligible, c->fm, c->block, NULL);
}

/* Queries [q0, q0 + n) of c.T keys (those after the queries not read) with the block before q0
 * as q_before (hy_sla_offset): the classes and then the forward and the gradients, as above. */
static void expect_slice(sla_case c, int64_t q0, int64_t n) {
  slice_case s = {c, q0, q0 ? t_randn(HY_F32, HY_SHAPE(c.B, c.block, c.H, c.D), seed++) : NULL};
  hy_tensor *in[3] = {t_param(t_randn(HY_F32, HY_SHAPE(c.B, n, c.H, c.D), seed++)),
                      t_param(t_randn(HY_F32, HY_SHAPE(c.B, c.T, c.H, c.D), seed++)),
                      t_param(t_randn(HY_F32, HY_SHAPE(c.B, c.T, c.H, c.D), seed++))};
  char what[300];
  snprintf(what, sizeof what, "%s, queries %lld..%lld", describe(c, "slice"), (long long)q0,
           (long long)(q0 + n));
  hy_tensor *want =
      hy_sla_select_offset(in[0], in[1], s.before, q0, c.block, c.critical, c.negligible, NULL);
  hy_tensor *qg = t_to_gpu(in[0]), *kg = t_to_gpu(in[1]);
  t_poison(); /* an unwritten class reads -1 */
  hy_tensor *got = t_to_cpu(hy_sla_select_offset(qg, kg, before_on(&s, HY_CUDA), q0, c.block,
                                                 c.critical, c.negligible, NULL));
  cr_assert(hy_same_shape(got, want), "%s: classes %s, expected %s", what, hy_describe(got),
            hy_describe(want));
  for (int64_t x = 0; x < hy_numel(want); x++)
    cr_assert(((const int32_t *)got->data)[x] == ((const int32_t *)want->data)[x], "%s: class %lld",
              what, (long long)x);
  t_expect_gpu_matches_cpu(slice_run, &s, 3, in, TOL, what);
}

/* Slices of several blocks and shorter than one, keys that end at the slice and ones that go on,
 * blocks that are not a multiple of the 32-row tiles, a last block shorter than the others, and
 * more than 256 query blocks (the counts through device memory). */
Test(cuda_sla, slices_match_cpu) {
  T_NEED_GPU();
  for (int fm = 0; fm < 3; fm++) {
    expect_slice((sla_case){2, 200, 2, 32, 16, 0.3, 0.2, fm}, 64, 96);
    expect_slice((sla_case){2, 160, 2, 32, 16, 0.3, 0.2, fm}, 64, 96);
  }
  expect_slice((sla_case){1, 130, 3, 64, 32, 0.25, 0.25, 1}, 96, 34);
  expect_slice((sla_case){2, 100, 2, 16, 20, 0.3, 0.3, 2}, 40, 60);
  expect_slice((sla_case){1, 64, 2, 16, 8, 0.5, 0, 0}, 32, 5);
  expect_slice((sla_case){2, 90, 2, 24, 48, 1, 0, 1}, 48, 42);
  expect_slice((sla_case){1, 600, 2, 8, 2, 0.2, 0.3, 1}, 40, 560);
}
