#include "tensor/attention_inputs.h"

#include <math.h>

typedef struct {
  double scale, power;
  int64_t train_len, pos_offset;
} softplus_args;

/* Saved per (b, h, t): the row's largest logit m and the sum z of (softplus(x) / softplus(m))^p
 * (tensor/cpu/softplus_attention.c), two [B, H, T] arrays one after the other, on q's device. */
static void softplus_attention_backward(hy_node *n) {
  const softplus_args *a = HY_NODE_ARGS(n, softplus_args);
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out;
  hy_attn_dims d = hy_attention_dims(q, k, v, a->scale);
  size_t rows = (size_t)(d.B * d.H * d.T), bytes = hy_dtype_size(q->dtype);
  char *stats = n->saved;
  HY_KERNEL(q, softplus_attention_backward, &d, a->train_len, a->pos_offset, a->power, q->data,
            k->data, v->data, o->data, (void *)stats, (void *)(stats + rows * bytes), o->grad->data,
            q->requires_grad ? hy_grad(q)->data : NULL, k->requires_grad ? hy_grad(k)->data : NULL,
            v->requires_grad ? hy_grad(v)->data : NULL);
}

hy_tensor *hy_softplus_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                 int64_t train_len, double power, int64_t pos_offset) {
  const char *op = "softplus_attention";
  if (train_len < 0 || pos_offset < 0 || !(power > 0) || !isfinite(power))
    hy_die(op, "train_len %lld (>= 0), power %g (> 0) or pos_offset %lld (>= 0) out of range",
           (long long)train_len, power, (long long)pos_offset);
  hy_attention_check_qkv(op, q, k, v);
  if (q->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(hy_softplus_attention(hy_as_f32(q), hy_as_f32(k), hy_as_f32(v), scale, train_len,
                                         power, pos_offset),
                   HY_BF16);
  q = hy_attention_rows_dense(q);
  k = hy_attention_rows_dense(k);
  v = hy_attention_rows_dense(v);
  hy_tensor *o = hy_empty_like(q);
  size_t rows = (size_t)(q->shape[0] * q->shape[1] * q->shape[2]), bytes = hy_dtype_size(q->dtype);
  char *stats = hy_saved_like(q, 2 * rows * bytes + 1);
  hy_attn_dims d = hy_attention_dims(q, k, v, scale);
  HY_KERNEL(q, softplus_attention, &d, train_len, pos_offset, power, q->data, k->data, v->data,
            o->data, (void *)stats, (void *)(stats + rows * bytes));
  hy_node *n = hy_record(op, softplus_attention_backward, o, 3, (hy_tensor *[]){q, k, v});
  if (n) {
    *HY_NODE_ARGS(n, softplus_args) = (softplus_args){
        .scale = scale, .power = power, .train_len = train_len, .pos_offset = pos_offset};
    n->saved = stats;
  }
  return o;
}
