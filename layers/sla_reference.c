#include "layers/sla_reference.h"

#include "tensor/arena.h"
#include "tensor/ops.h"

#include <math.h>

hy_tensor *hy_sla_feature_map_naive(hy_tensor *x, int feature_map) {
  switch (feature_map) {
  case HY_SLA_PHI_SOFTMAX: return hy_softmax(x);
  case HY_SLA_PHI_ELU: return hy_add_scalar(hy_elu(x), 1.0);
  case HY_SLA_PHI_RELU: return hy_relu(x);
  default: hy_die("sla_naive", "unknown feature map %d", feature_map);
  }
}

/* a [B, T, H, D] times b [B, Tk, H, D] transposed, per head: [B, H, T, Tk]. */
static hy_tensor *head_products(hy_tensor *a, hy_tensor *b) {
  return hy_matmul(hy_transpose(a, 1, 2), hy_transpose(hy_transpose(b, 1, 2), 2, 3));
}

/* The mean of rows [t0, t0 + n) of head h of x [B, T, H, D] in double, summed in row order. */
static void mean_rows(const hy_tensor *x, int64_t b, int64_t h, int64_t t0, int64_t n, double *m) {
  int64_t T = x->shape[1], H = x->shape[2], D = x->shape[3];
  for (int64_t d = 0; d < D; d++) {
    double s = 0;
    for (int64_t r = 0; r < n; r++) s += hy_get(x, ((b * T + t0 + r) * H + h) * D + d);
    m[d] = s / (double)n;
  }
}

/* The block selection from its definition, apart from the kernel's (tensor/cpu/sla.c), in plain
 * loops: classes [B H, nb, nbk] (the HY_SLA_* of tensor/sla_types.h) for the nb query blocks of q,
 * blocks first .. first + nb - 1 of the sequence (nbk = first + nb). Block i of the sequence ranks
 * its earlier key blocks j < i by mean(q of block i - 1) . mean(k of block j) (block first - 1 is
 * q_before), best first, ties to the lower j (NaN last); the top ceil(cf i) are critical, the
 * bottom floor(nf i) (never a critical one) negligible, the rest marginal; the diagonal block is
 * critical. Only rows before block i are read for block i: the selection is causal. */
static int32_t *select_naive(const hy_tensor *q, const hy_tensor *k, const hy_tensor *q_before,
                             int64_t block, double cf, double nf, int64_t first, int64_t nb) {
  int64_t B = q->shape[0], T = q->shape[1], Tk = k->shape[1], H = q->shape[2], D = q->shape[3];
  int64_t nbk = first + nb;
  int32_t *cls = hy_arena_alloc(sizeof(int32_t) * (size_t)(B * H * nb * nbk + 1));
  double *pq = hy_arena_alloc(sizeof(double) * (size_t)((nb + 1) * D)); /* block first - 1 on */
  double *pk = hy_arena_alloc(sizeof(double) * (size_t)(nbk * D + 1));
  double *score = hy_arena_alloc(sizeof(double) * (size_t)(nbk + 1));
  int64_t *order = hy_arena_alloc(sizeof(int64_t) * (size_t)(nbk + 1));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      if (q_before) mean_rows(q_before, b, h, 0, block, pq);
      for (int64_t i = 0; i < nb; i++)
        mean_rows(q, b, h, i * block, T - i * block < block ? T - i * block : block,
                  pq + (i + 1) * D);
      for (int64_t j = 0; j < nbk; j++) /* (keys after block nbk - 1 are never read) */
        mean_rows(k, b, h, j * block, Tk - j * block < block ? Tk - j * block : block, pk + j * D);
      for (int64_t i = 0; i < nb; i++) {
        int64_t g = first + i;
        int32_t *row = cls + ((b * H + h) * nb + i) * nbk;
        for (int64_t j = 0; j < nbk; j++)
          row[j] = j < g ? HY_SLA_MARGINAL : j == g ? HY_SLA_CRITICAL : HY_SLA_FUTURE;
        for (int64_t j = 0; j < g; j++) { /* score with the previous query block's mean */
          double s = 0;
          for (int64_t d = 0; d < D; d++) s += pq[i * D + d] * pk[j * D + d];
          score[j] = isnan(s) ? -INFINITY : s;
          int64_t at = j; /* insertion: before the lower-scoring ones, after equal earlier j */
          while (at > 0 && score[order[at - 1]] < score[j]) {
            order[at] = order[at - 1];
            at--;
          }
          order[at] = j;
        }
        int64_t nc = (int64_t)ceil(cf * (double)g - 1e-9);
        int64_t nn = (int64_t)floor(nf * (double)g + 1e-9);
        nc = nc < 0 ? 0 : nc > g ? g : nc;
        nn = nn < 0 ? 0 : nn > g - nc ? g - nc : nn;
        for (int64_t r = 0; r < nc; r++) row[order[r]] = HY_SLA_CRITICAL;
        for (int64_t r = g - nn; r < g; r++) row[order[r]] = HY_SLA_NEGLIGIBLE;
      }
    }
  return cls;
}

/* p [B, H, T, Tk] applied to v [B, Tk, H, D]: [B, T, H, D]. */
static hy_tensor *apply(hy_tensor *p, hy_tensor *v) {
  return hy_contiguous(hy_transpose(hy_matmul(p, hy_transpose(v, 1, 2)), 1, 2));
}

hy_tensor *hy_sla_naive_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *q_before,
                               int64_t offset, double scale, double critical_fraction,
                               double negligible_fraction, int feature_map, int64_t block) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], Tk = k->shape[1];
  if (block < 1) hy_die("sla_naive", "block %lld (>= 1)", (long long)block);
  if (offset < 0 || offset + T > Tk || offset % block || !offset != !q_before)
    hy_die("sla_naive",
           "q %s from position %lld of k %s: not a block's start inside k, or "
           "q_before not given exactly when it is not 0",
           hy_describe(q), (long long)offset, hy_describe(k));
  if (block > Tk && Tk > 0) block = Tk; /* the whole sequence, as in hy_sla */
  int64_t first = offset / block, nb = (T + block - 1) / block, nbk = first + nb;
  const int32_t *cls =
      select_naive(q, k, q_before, block, critical_fraction, negligible_fraction, first, nb);
  hy_tensor *exact = hy_empty(q->dtype, HY_SHAPE(B, H, T, Tk));
  hy_tensor *marginal = hy_empty(q->dtype, HY_SHAPE(B, H, T, Tk));
  for (int64_t bh = 0; bh < B * H; bh++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t s = 0; s < Tk; s++) {
        int32_t c = s / block < nbk ? cls[(bh * nb + t / block) * nbk + s / block] : HY_SLA_FUTURE;
        int64_t x = (bh * T + t) * Tk + s;
        hy_set(exact, x, c == HY_SLA_CRITICAL && s <= offset + t ? 0 : -INFINITY);
        hy_set(marginal, x, c == HY_SLA_MARGINAL ? 1 : 0);
      }
  hy_tensor *p = hy_softmax(hy_add(hy_scale(head_products(q, k), scale), exact));
  hy_tensor *o_s = apply(p, v);
  hy_tensor *fq = hy_sla_feature_map_naive(q, feature_map);
  hy_tensor *fk = hy_sla_feature_map_naive(k, feature_map);
  hy_tensor *a = hy_mul(head_products(fq, fk), marginal); /* [B, H, T, Tk] */
  hy_tensor *den = hy_add_scalar(hy_sum(a, -1, true), 1e-5);
  hy_tensor *o_l = apply(hy_div(a, den), v);
  return hy_concat(2, (hy_tensor *[]){o_s, o_l}, 3);
}

hy_tensor *hy_sla_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                        double critical_fraction, double negligible_fraction, int feature_map,
                        int64_t block) {
  return hy_sla_naive_offset(q, k, v, NULL, 0, scale, critical_fraction, negligible_fraction,
                             feature_map, block);
}
