#include "tensor/op.h"

/* The strides over b, t and h of a packed [B, T, H, D] tensor. */
static void packed_strides(const hy_tensor *x, int64_t *s) {
  s[2] = x->shape[3];
  s[1] = x->shape[2] * s[2];
  s[0] = x->shape[1] * s[1];
}

typedef struct {
  int64_t pos_offset;
  double theta;
} rope_args;

static void rope_backward(hy_node *n) {
  const rope_args *a = HY_NODE_ARGS(n, rope_args);
  hy_tensor *x = n->in[0], *gy = n->out->grad;
  int64_t s[3];
  packed_strides(gy, s);
  bool acc;
  hy_tensor *gx = hy_grad_acc(x, &acc);
  /* A rotation's adjoint is the rotation by the opposite angle. */
  HY_KERNEL_BF16(x, rope, x->shape[0], x->shape[1], x->shape[2], x->shape[3], a->pos_offset,
                 a->theta, true, acc, s, gy->data, gx->data);
}

hy_tensor *hy_rope(hy_tensor *x, int64_t pos_offset, double theta) {
  const char *op = "rope";
  hy_check_input_any(op, x);
  if (x->ndim != 4 || x->shape[3] % 2 != 0)
    hy_die(op, "needs [B, T, H, D] with D even, got %s", hy_describe(x));
  if (x->stride[3] != 1 && x->shape[3] > 1) x = hy_contiguous(x); /* rows must be contiguous */
  hy_tensor *y = hy_empty_on(x->device, x->dtype, hy_shape_of(x));
  HY_KERNEL_BF16(x, rope, x->shape[0], x->shape[1], x->shape[2], x->shape[3], pos_offset, theta,
                 false, false, x->stride, x->data, y->data);
  hy_node *n = hy_record(op, rope_backward, y, 1, &x);
  if (n) {
    *HY_NODE_ARGS(n, rope_args) = (rope_args){.pos_offset = pos_offset, .theta = theta};
  }
  return y;
}
