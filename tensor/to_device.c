#include "tensor/device.h"
#include "tensor/op.h"

/* The gradient goes back to x's device and adds into x's gradient there. */
static void to_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *gy = n->out->grad;
  hy_tensor *g = hy_empty_like(x);
  hy_copy_into(g, gy);
  hy_convert_into(hy_grad(x), g, true);
}

hy_tensor *hy_to(hy_tensor *x, hy_device device) {
  if (!x) hy_die("to", "input is NULL");
  if (x->device == device) return x;
  if (!hy_is_contiguous(x)) x = hy_contiguous(x);
  hy_tensor *y = hy_empty_on(device, x->dtype, hy_shape_of(x));
  hy_copy_into(y, x);
  if (x->dtype != HY_I32) hy_record("to", to_backward, y, 1, &x);
  return y;
}
