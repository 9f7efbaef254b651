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

/* a [B, T, H, D] times b [B, T, H, D] transposed, per head: [B, H, T, T]. */
static hy_tensor *head_products(hy_tensor *a, hy_tensor *b) {
  return hy_matmul(hy_transpose(a, 1, 2), hy_transpose(hy_transpose(b, 1, 2), 2, 3));
}

/* The block selection from its definition, apart from the kernel's (tensor/cpu/sla.c), in plain
 * loops: classes [B H, nb, nb] (the HY_SLA_* of tensor/sla_types.h). Query block i ranks its
 * earlier key blocks j < i by mean(q of block i - 1) . mean(k of block j), best first, ties to the
 * lower j (NaN last); the top ceil(cf i) are critical, the bottom floor(nf i) (never a critical
 * one) negligible, the rest marginal; the diagonal block is critical. Only rows before block i
 * are read for block i: the selection is causal. Means and dots in double, summed in row order. */
static int32_t *select_naive(const hy_tensor *q, const hy_tensor *k, int64_t block, double cf,
                             double nf, int64_t *n_blocks) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
  int64_t nb = (T + block - 1) / block;
  int32_t *cls = hy_arena_alloc(sizeof(int32_t) * (size_t)(B * H * nb * nb + 1));
  double *pq = hy_arena_alloc(sizeof(double) * (size_t)(nb * D + 1));
  double *pk = hy_arena_alloc(sizeof(double) * (size_t)(nb * D + 1));
  double *score = hy_arena_alloc(sizeof(double) * (size_t)(nb + 1));
  int64_t *order = hy_arena_alloc(sizeof(int64_t) * (size_t)(nb + 1));
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      for (int64_t i = 0; i < nb; i++) {
        int64_t n = T - i * block < block ? T - i * block : block;
        for (int64_t d = 0; d < D; d++) {
          double sq = 0, sk = 0;
          for (int64_t r = 0; r < n; r++) {
            int64_t x = ((b * T + i * block + r) * H + h) * D + d;
            sq += hy_get(q, x);
            sk += hy_get(k, x);
          }
          pq[i * D + d] = sq / (double)n;
          pk[i * D + d] = sk / (double)n;
        }
      }
      for (int64_t i = 0; i < nb; i++) {
        int32_t *row = cls + ((b * H + h) * nb + i) * nb;
        for (int64_t j = 0; j < nb; j++)
          row[j] = j < i ? HY_SLA_MARGINAL : j == i ? HY_SLA_CRITICAL : HY_SLA_FUTURE;
        for (int64_t j = 0; j < i; j++) { /* score with the previous query block's mean */
          double s = 0;
          for (int64_t d = 0; d < D; d++) s += pq[(i - 1) * D + d] * pk[j * D + d];
          score[j] = isnan(s) ? -INFINITY : s;
          int64_t at = j; /* insertion: before the lower-scoring ones, after equal earlier j */
          while (at > 0 && score[order[at - 1]] < score[j]) {
            order[at] = order[at - 1];
            at--;
          }
          order[at] = j;
        }
        int64_t nc = (int64_t)ceil(cf * (double)i - 1e-9);
        int64_t nn = (int64_t)floor(nf * (double)i + 1e-9);
        nc = nc < 0 ? 0 : nc > i ? i : nc;
        nn = nn < 0 ? 0 : nn > i - nc ? i - nc : nn;
        for (int64_t r = 0; r < nc; r++) row[order[r]] = HY_SLA_CRITICAL;
        for (int64_t r = i - nn; r < i; r++) row[order[r]] = HY_SLA_NEGLIGIBLE;
      }
    }
  *n_blocks = nb;
  return cls;
}

/* p [B, H, T, T] applied to v [B, T, H, D]: [B, T, H, D]. */
static hy_tensor *apply(hy_tensor *p, hy_tensor *v) {
  return hy_contiguous(hy_transpose(hy_matmul(p, hy_transpose(v, 1, 2)), 1, 2));
}

hy_tensor *hy_sla_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                        double critical_fraction, double negligible_fraction, int feature_map,
                        int64_t block) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2];
  if (block < 1) hy_die("sla_naive", "block %lld (>= 1)", (long long)block);
  if (block > T && T > 0) block = T; /* the whole sequence, as in hy_sla */
  int64_t nb;
  const int32_t *cls = select_naive(q, k, block, critical_fraction, negligible_fraction, &nb);
  hy_tensor *exact = hy_empty(q->dtype, HY_SHAPE(B, H, T, T));
  hy_tensor *marginal = hy_empty(q->dtype, HY_SHAPE(B, H, T, T));
  for (int64_t bh = 0; bh < B * H; bh++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t s = 0; s < T; s++) {
        int32_t c = cls[(bh * nb + t / block) * nb + s / block];
        int64_t x = (bh * T + t) * T + s;
        hy_set(exact, x, c == HY_SLA_CRITICAL && s <= t ? 0 : -INFINITY);
        hy_set(marginal, x, c == HY_SLA_MARGINAL ? 1 : 0);
      }
  hy_tensor *p = hy_softmax(hy_add(hy_scale(head_products(q, k), scale), exact));
  hy_tensor *o_s = apply(p, v);
  hy_tensor *fq = hy_sla_feature_map_naive(q, feature_map);
  hy_tensor *fk = hy_sla_feature_map_naive(k, feature_map);
  hy_tensor *a = hy_mul(head_products(fq, fk), marginal); /* [B, H, T, T] */
  hy_tensor *den = hy_add_scalar(hy_sum(a, -1, true), 1e-5);
  hy_tensor *o_l = apply(hy_div(a, den), v);
  return hy_concat(2, (hy_tensor *[]){o_s, o_l}, 3);
}
