#include "layers/softmax_variants_reference.h"

#include "tensor/ops.h"

#include <math.h>

/* 1 where key j <= query i, else 0: [T, T], broadcast over [B, H]. */
static hy_tensor *causal_mask(hy_dtype dtype, int64_t T) {
  hy_tensor *mask = hy_zeros(dtype, HY_SHAPE(T, T));
  for (int64_t i = 0; i < T; i++)
    for (int64_t j = 0; j <= i; j++) hy_set(mask, i * T + j, 1);
  return mask;
}

/* q k^T per head: [B, H, T, T] from q, k [B, T, H, D]. */
static hy_tensor *scores(hy_tensor *q, hy_tensor *k) {
  hy_tensor *qh = hy_transpose(q, 1, 2), *kh = hy_transpose(k, 1, 2);
  return hy_matmul(qh, hy_transpose(kh, 2, 3));
}

/* p [B, H, T, T] applied to v [B, T, H, D]: o [B, T, H, D]. */
static hy_tensor *apply(hy_tensor *p, hy_tensor *v) {
  return hy_contiguous(hy_transpose(hy_matmul(p, hy_transpose(v, 1, 2)), 1, 2));
}

hy_tensor *hy_sigmoid_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                      double bias) {
  hy_tensor *s = hy_add_scalar(hy_scale(scores(q, k), scale), bias);
  return apply(hy_mul(hy_sigmoid(s), causal_mask(q->dtype, q->shape[1])), v);
}

hy_tensor *hy_softplus_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                       int64_t train_len, double power, int64_t pos_offset) {
  int64_t T = q->shape[1];
  hy_tensor *c = hy_empty(q->dtype, HY_SHAPE(T, 1)); /* c_t scale, one per query row */
  for (int64_t t = 0; t < T; t++) {
    double ct = train_len > 1 ? log((double)(t + pos_offset + 1)) / log((double)train_len) : 1;
    hy_set(c, t, ct * scale);
  }
  hy_tensor *w = hy_softplus(hy_mul(scores(q, k), c));
  if (power != 1) w = hy_pow(w, power);
  w = hy_mul(w, causal_mask(q->dtype, T));
  return apply(hy_div(w, hy_sum(w, -1, true)), v);
}
