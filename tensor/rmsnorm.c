#include "tensor/op.h"

static void rmsnorm_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *w = n->in[1];
  int64_t d = x->shape[x->ndim - 1];
  HY_KERNEL(x, rmsnorm_backward, d ? hy_numel(x) / d : 0, d, x->data, w ? w->data : NULL, n->saved,
            n->out->grad->data, x->requires_grad ? hy_grad(x)->data : NULL,
            w && w->requires_grad ? hy_grad(w)->data : NULL);
}

hy_tensor *hy_rmsnorm(hy_tensor *x, hy_tensor *weight, double eps) {
  const char *op = "rmsnorm";
  hy_check_input_any(op, x);
  if (x->ndim == 0) hy_die(op, "needs at least one dim, got %s", hy_describe(x));
  int64_t d = x->shape[x->ndim - 1];
  if (weight) {
    hy_check_input_any(op, weight);
    hy_check_same_dtype(op, x, weight);
    hy_check_same_device(op, x, weight);
    if (weight->ndim != 1 || weight->shape[0] != d)
      hy_die(op, "weight %s does not match the last dim of %s", hy_describe(weight),
             hy_describe(x));
    weight = hy_contiguous(weight);
  }
  x = hy_contiguous(x);
  int64_t rows = d ? hy_numel(x) / d : 0;
  hy_tensor *y = hy_empty_like(x);
  void *rstd = hy_saved_like(x, (size_t)rows * hy_dtype_size(x->dtype));
  HY_KERNEL(x, rmsnorm, rows, d, x->data, weight ? weight->data : NULL, eps, y->data, rstd);
  hy_node *n = hy_record(op, rmsnorm_backward, y, 2, (hy_tensor *[]){x, weight});
  if (n) n->saved = rstd;
  return y;
}
