#include "tensor/op.h"

/* The stride between the rows of t seen as [numel / cols, cols] (cols its last dim), or -1 when
 * its rows are not contiguous or not evenly spaced (then it is copied first). */
static int64_t row_stride(const hy_tensor *t) {
  int n = t->ndim;
  int64_t cols = t->shape[n - 1];
  if (cols > 1 && t->stride[n - 1] != 1) return -1;
  int64_t rs = cols, span = -1; /* span: the stride the next dim up must have */
  for (int i = n - 2; i >= 0; i--) {
    if (t->shape[i] == 1) continue;
    if (span < 0)
      rs = t->stride[i];
    else if (t->stride[i] != span)
      return -1;
    span = t->stride[i] * t->shape[i];
  }
  return rs;
}

static hy_tensor *as_rows(hy_tensor *t, int64_t *stride) {
  *stride = row_stride(t);
  if (*stride < 0) {
    t = hy_contiguous(t);
    *stride = t->shape[t->ndim - 1];
  }
  return t;
}

/* The row strides of g and u. */
typedef struct {
  int64_t stride_g, stride_u;
} swiglu_args;

static void swiglu_backward(hy_node *n) {
  const swiglu_args *a = HY_NODE_ARGS(n, swiglu_args);
  hy_tensor *g = n->in[0], *u = n->in[1];
  int64_t cols = g->shape[g->ndim - 1], rows = cols ? hy_numel(g) / cols : 0;
  bool acc_g = false, acc_u = false; /* gg is written before gu is read: u may be g */
  hy_tensor *gg = g->requires_grad ? hy_grad_acc(g, &acc_g) : NULL;
  hy_tensor *gu = u->requires_grad ? hy_grad_acc(u, &acc_u) : NULL;
  HY_KERNEL_BF16(g, swiglu_backward, rows, cols, g->data, a->stride_g, u->data, a->stride_u,
                 n->out->grad->data, gg ? gg->data : NULL, acc_g, gu ? gu->data : NULL, acc_u);
}

hy_tensor *hy_swiglu(hy_tensor *g, hy_tensor *u) {
  const char *op = "swiglu";
  hy_check_input_any(op, g);
  hy_check_input_any(op, u);
  hy_check_same_dtype(op, g, u);
  hy_check_same_device(op, g, u);
  hy_check_same_shape(op, g, u);
  if (g->ndim == 0) hy_die(op, "needs at least one dim, got %s", hy_describe(g));
  int64_t sg, su;
  g = as_rows(g, &sg);
  u = as_rows(u, &su);
  int64_t cols = g->shape[g->ndim - 1], rows = cols ? hy_numel(g) / cols : 0;
  hy_tensor *y = hy_empty_on(g->device, g->dtype, hy_shape_of(g));
  if (rows > 0) HY_KERNEL_BF16(g, swiglu, rows, cols, g->data, sg, u->data, su, y->data);
  hy_node *n = hy_record(op, swiglu_backward, y, 2, (hy_tensor *[]){g, u});
  if (n) {
    *HY_NODE_ARGS(n, swiglu_args) = (swiglu_args){.stride_g = sg, .stride_u = su};
  }
  return y;
}
