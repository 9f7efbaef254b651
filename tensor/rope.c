#include "tensor/op.h"

static void rope_backward(hy_node *n) {
  hy_tensor *x = n->in[0];
  /* A rotation's adjoint is the rotation by the opposite angle. */
  HY_KERNEL(x, rope, x->shape[0], x->shape[1], x->shape[2], x->shape[3], n->iarg[0], n->arg[0],
            true, true, n->out->grad->data, hy_grad(x)->data);
}

hy_tensor *hy_rope(hy_tensor *x, int64_t pos_offset, double theta) {
  const char *op = "rope";
  hy_check_input_any(op, x);
  if (x->ndim != 4 || x->shape[3] % 2 != 0)
    hy_die(op, "needs [B, T, H, D] with D even, got %s", hy_describe(x));
  x = hy_contiguous(x);
  hy_tensor *y = hy_empty_like(x);
  HY_KERNEL(x, rope, x->shape[0], x->shape[1], x->shape[2], x->shape[3], pos_offset, theta, false,
            false, x->data, y->data);
  hy_node *n = hy_record(op, rope_backward, y, 1, &x);
  if (n) {
    n->iarg[0] = pos_offset;
    n->arg[0] = theta;
  }
  return y;
}
