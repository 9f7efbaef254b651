#include "tensor/op.h"

/* The layout [outer, len, inner] and the direction. */
typedef struct {
  int64_t outer, len, inner;
  bool reverse;
} cumsum_args;

static void cumsum_backward(hy_node *n) {
  const cumsum_args *a = HY_NODE_ARGS(n, cumsum_args);
  hy_tensor *x = n->in[0];
  /* The adjoint of a forward prefix sum is a reverse one, and the other way round. */
  HY_KERNEL(x, cumsum, a->outer, a->len, a->inner, !a->reverse, true, n->out->grad->data,
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
    *HY_NODE_ARGS(n, cumsum_args) =
        (cumsum_args){.outer = outer, .len = x->shape[axis], .inner = inner, .reverse = reverse};
  }
  return y;
}
