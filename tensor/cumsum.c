#include "tensor/op.h"

static void cumsum_backward(hy_node *n) {
  hy_tensor *x = n->in[0];
  /* The adjoint of a forward prefix sum is a reverse one, and the other way round. */
  HY_KERNEL(x, cumsum, n->iarg[0], n->iarg[1], n->iarg[2], !n->iarg[3], true, n->out->grad->data,
            hy_grad(x)->data);
}

hy_tensor *hy_cumsum(hy_tensor *x, int axis, bool reverse) {
  const char *op = "cumsum";
  hy_check_input_any(op, x);
  if (x->dtype == HY_BF16) /* no bf16 kernel: computed in f32 */
    return hy_cast(hy_cumsum(hy_as_f32(x), axis, reverse), HY_BF16);
  axis = hy_axis(x, axis, op);
  x = hy_contiguous(x);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x->shape[i];
  for (int i = axis + 1; i < x->ndim; i++) inner *= x->shape[i];
  hy_tensor *y = hy_empty_like(x);
  HY_KERNEL(x, cumsum, outer, x->shape[axis], inner, reverse, false, x->data, y->data);
  hy_node *n = hy_record(op, cumsum_backward, y, 1, &x);
  if (n) {
    n->iarg[0] = outer;
    n->iarg[1] = x->shape[axis];
    n->iarg[2] = inner;
    n->iarg[3] = reverse;
  }
  return y;
}
