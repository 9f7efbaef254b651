#include "tensor/op.h"

static int64_t rows_of(const hy_tensor *x) {
  return x->ndim ? hy_numel(x) / x->shape[x->ndim - 1] : 1;
}

static void softmax_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *y = n->out;
  HY_KERNEL(x, softmax_backward, rows_of(x), x->shape[x->ndim - 1], y->data, y->grad->data,
            hy_grad(x)->data);
}

hy_tensor *hy_softmax(hy_tensor *x) {
  const char *op = "softmax";
  hy_check_input_any(op, x);
  if (x->dtype == HY_BF16) return hy_cast(hy_softmax(hy_as_f32(x)), HY_BF16); /* f32 kernels */
  if (x->ndim == 0 || x->shape[x->ndim - 1] == 0)
    hy_die(op, "empty last axis in %s", hy_describe(x));
  x = hy_contiguous(x);
  hy_tensor *y = hy_empty_like(x);
  HY_KERNEL(x, softmax, rows_of(x), x->shape[x->ndim - 1], x->data, y->data);
  hy_record(op, softmax_backward, y, 1, &x);
  return y;
}

static void logsumexp_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *y = n->out;
  HY_KERNEL(x, logsumexp_backward, rows_of(x), x->shape[x->ndim - 1], x->data, y->data,
            y->grad->data, hy_grad(x)->data);
}

hy_tensor *hy_logsumexp(hy_tensor *x) {
  const char *op = "logsumexp";
  hy_check_input_any(op, x);
  if (x->dtype == HY_BF16) return hy_cast(hy_logsumexp(hy_as_f32(x)), HY_BF16); /* f32 kernels */
  if (x->ndim == 0 || x->shape[x->ndim - 1] == 0)
    hy_die(op, "empty last axis in %s", hy_describe(x));
  x = hy_contiguous(x);
  hy_shape s = hy_shape_of(x);
  s.ndim--;
  hy_tensor *y = hy_empty_on(x->device, x->dtype, s);
  HY_KERNEL(x, logsumexp, rows_of(x), x->shape[x->ndim - 1], x->data, y->data);
  hy_record(op, logsumexp_backward, y, 1, &x);
  return y;
}
