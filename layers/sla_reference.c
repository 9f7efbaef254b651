#include "layers/sla_reference.h"

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

/* p [B, H, T, T] applied to v [B, T, H, D]: [B, T, H, D]. */
static hy_tensor *apply(hy_tensor *p, hy_tensor *v) {
  return hy_contiguous(hy_transpose(hy_matmul(p, hy_transpose(v, 1, 2)), 1, 2));
}

hy_tensor *hy_sla_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                        double critical_fraction, double negligible_fraction, int feature_map,
                        int64_t block) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2];
  hy_tensor *classes = hy_sla_select(q, k, block, critical_fraction, negligible_fraction, NULL);
  int64_t nb = classes->shape[2];
  const int32_t *cls = classes->data;
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
