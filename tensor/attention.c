#include "tensor/op.h"

static hy_attn_dims dims_of(const hy_tensor *q, const hy_tensor *k, const hy_tensor *v,
                            double scale, int64_t window, int64_t q_offset) {
  hy_attn_dims d = {.B = q->shape[0],
                    .T = q->shape[1],
                    .H = q->shape[2],
                    .D = q->shape[3],
                    .Tk = k->shape[1],
                    .q_offset = q_offset,
                    .scale = scale,
                    .window = window};
  for (int i = 0; i < 3; i++) {
    d.q_stride[i] = q->stride[i];
    d.k_stride[i] = k->stride[i];
    d.v_stride[i] = v->stride[i];
  }
  return d;
}

static void attention_backward(hy_node *n) {
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out;
  hy_attn_dims d = dims_of(q, k, v, n->arg[0], n->iarg[0], n->iarg[1]);
  HY_KERNEL(q, attention_backward, &d, q->data, k->data, v->data, o->data, n->saved, o->grad->data,
            q->requires_grad ? hy_grad(q)->data : NULL, k->requires_grad ? hy_grad(k)->data : NULL,
            v->requires_grad ? hy_grad(v)->data : NULL);
}

/* q, k, v may be strided views (e.g. heads of one projection): each head's rows must be dense and
 * at least a row apart, as the tile GEMMs read them with the time stride as leading dim. */
static hy_tensor *rows_dense(hy_tensor *t) {
  bool ok = (t->stride[3] == 1 || t->shape[3] == 1) && t->stride[1] >= t->shape[3];
  return ok ? t : hy_contiguous(t);
}

hy_tensor *hy_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale) {
  return hy_attention_window(q, k, v, scale, 0);
}

hy_tensor *hy_attention_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window) {
  return hy_attention_offset(q, k, v, scale, window, 0);
}

hy_tensor *hy_attention_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window, int64_t q_offset) {
  const char *op = "attention";
  if (window < 0) hy_die(op, "window %lld (0 for none, or >= 1)", (long long)window);
  hy_check_input_any(op, q);
  hy_check_input_any(op, k);
  hy_check_input_any(op, v);
  hy_check_same_device(op, q, k);
  hy_check_same_device(op, q, v);
  hy_check_same_dtype(op, q, k);
  hy_check_same_dtype(op, q, v);
  bool ok = q->ndim == 4 && k->ndim == 4 && hy_same_shape(k, v);
  for (int i = 0; ok && i < 4; i++) ok = i == 1 || q->shape[i] == k->shape[i];
  if (!ok || q_offset < 0 || q_offset + q->shape[1] > k->shape[1])
    hy_die(op,
           "q [B, T, H, D] at offset %lld needs k, v [B, Tk, H, D] with Tk >= offset + T, got "
           "%s, %s, %s",
           (long long)q_offset, hy_describe(q), hy_describe(k), hy_describe(v));
  q = rows_dense(q);
  k = rows_dense(k);
  v = rows_dense(v);
  hy_tensor *o = hy_empty_like(q);
  void *lse =
      hy_saved_like(q, (size_t)(q->shape[0] * q->shape[1] * q->shape[2]) * hy_dtype_size(q->dtype));
  hy_attn_dims d = dims_of(q, k, v, scale, window, q_offset);
  HY_KERNEL(q, attention, &d, q->data, k->data, v->data, o->data, lse);
  hy_node *n = hy_record(op, attention_backward, o, 3, (hy_tensor *[]){q, k, v});
  if (n) {
    n->arg[0] = scale;
    n->iarg[0] = window;
    n->iarg[1] = q_offset;
    n->saved = lse;
  }
  return o;
}
