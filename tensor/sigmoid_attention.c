#include "tensor/attention_inputs.h"

typedef struct {
  double scale, bias;
} sigmoid_args;

static void sigmoid_attention_backward(hy_node *n) {
  const sigmoid_args *a = HY_NODE_ARGS(n, sigmoid_args);
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out;
  hy_attn_dims d = hy_attention_dims(q, k, v, a->scale);
  HY_KERNEL(q, sigmoid_attention_backward, &d, a->bias, q->data, k->data, v->data, o->grad->data,
            q->requires_grad ? hy_grad(q)->data : NULL, k->requires_grad ? hy_grad(k)->data : NULL,
            v->requires_grad ? hy_grad(v)->data : NULL);
}

hy_tensor *hy_sigmoid_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                double bias) {
  const char *op = "sigmoid_attention";
  hy_attention_check_qkv(op, q, k, v);
  if (q->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(hy_sigmoid_attention(hy_as_f32(q), hy_as_f32(k), hy_as_f32(v), scale, bias),
                   HY_BF16);
  q = hy_attention_rows_dense(q);
  k = hy_attention_rows_dense(k);
  v = hy_attention_rows_dense(v);
  hy_tensor *o = hy_empty_like(q);
  hy_attn_dims d = hy_attention_dims(q, k, v, scale);
  HY_KERNEL(q, sigmoid_attention, &d, bias, q->data, k->data, v->data, o->data);
  hy_node *n = hy_record(op, sigmoid_attention_backward, o, 3, (hy_tensor *[]){q, k, v});
  if (n) {
    *HY_NODE_ARGS(n, sigmoid_args) = (sigmoid_args){.scale = scale, .bias = bias};
  }
  return o;
}
