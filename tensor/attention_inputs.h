/* The checks and views shared by the fused softmax-family attention ops without sequence
 * parallelism (sigmoid and softplus attention). Private to tensor/. */
#ifndef HYLA_ATTENTION_INPUTS_H
#define HYLA_ATTENTION_INPUTS_H

#include "tensor/op.h"

/* q, k, v: float tensors of one dtype, one device (f32 on the GPU) and one shape [B, T, H, D];
 * aborts otherwise. */
static inline void hy_attention_check_qkv(const char *op, const hy_tensor *q, const hy_tensor *k,
                                          const hy_tensor *v) {
  hy_check_inputs_alike(op, q, k, v);
  if (q->ndim != 4 || !hy_same_shape(q, k) || !hy_same_shape(q, v))
    hy_die(op, "needs q, k, v of one shape [B, T, H, D], got %s, %s, %s", hy_describe(q),
           hy_describe(k), hy_describe(v));
}

/* q, k, v may be strided views (e.g. heads of one projection): each head's rows must be dense and
 * at least a row apart, as the tile GEMMs read them with the time stride as leading dim. */
static inline hy_tensor *hy_attention_rows_dense(hy_tensor *t) {
  bool ok = (t->stride[3] == 1 || t->shape[3] == 1) && t->stride[1] >= t->shape[3];
  return ok ? t : hy_contiguous(t);
}

/* The kernels' sizes for causal attention of T queries against their own T keys. */
static inline hy_attn_dims hy_attention_dims(const hy_tensor *q, const hy_tensor *k,
                                             const hy_tensor *v, double scale) {
  hy_attn_dims d = {.B = q->shape[0],
                    .T = q->shape[1],
                    .H = q->shape[2],
                    .D = q->shape[3],
                    .Tk = q->shape[1],
                    .scale = scale};
  for (int i = 0; i < 3; i++) {
    d.q_stride[i] = q->stride[i];
    d.k_stride[i] = k->stride[i];
    d.v_stride[i] = v->stride[i];
  }
  return d;
}

#endif
