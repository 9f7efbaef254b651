#include "tensor/op.h"

static const char *const NAMES[] = {"sum", "mean", "max"};

/* x viewed as [outer, n, inner] around `axis`. */
static void split_at(const hy_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = *inner = 1;
  for (int i = 0; i < axis; i++) *outer *= x->shape[i];
  *n = x->shape[axis];
  for (int i = axis + 1; i < x->ndim; i++) *inner *= x->shape[i];
}

/* The reduction's kind and its layout [outer, len, inner]. */
typedef struct {
  hy_reduce_op kind;
  int64_t outer, len, inner;
} reduce_args;

static void reduce_backward(hy_node *n) {
  const reduce_args *a = HY_NODE_ARGS(n, reduce_args);
  hy_tensor *x = n->in[0];
  HY_KERNEL(x, reduce_backward, a->kind, a->outer, a->len, a->inner, n->saved, n->out->grad->data,
            hy_grad(x)->data);
}

static hy_tensor *reduce(hy_reduce_op kind, hy_tensor *x, int axis, bool keepdim) {
  const char *op = NAMES[kind];
  hy_check_input_any(op, x);
  if (x->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(reduce(kind, hy_as_f32(x), axis, keepdim), HY_BF16);
  axis = hy_axis(x, axis, op);
  if (kind == HY_REDUCE_MAX && x->shape[axis] == 0)
    hy_die(op, "max over an empty axis of %s", hy_describe(x));
  x = hy_contiguous(x);
  int64_t outer, len, inner;
  split_at(x, axis, &outer, &len, &inner);
  hy_shape s = hy_shape_of(x);
  if (keepdim) {
    s.d[axis] = 1;
  } else {
    for (int i = axis; i < s.ndim - 1; i++) s.d[i] = s.d[i + 1];
    s.ndim--;
  }
  hy_tensor *y = hy_empty_on(x->device, x->dtype, s);
  int32_t *argmax = NULL;
  bool grad = hy_grad_enabled() && x->requires_grad;
  if (kind == HY_REDUCE_MAX && grad)
    argmax = hy_saved_like(x, (size_t)(outer * inner) * sizeof *argmax);
  HY_KERNEL(x, reduce, kind, outer, len, inner, x->data, y->data, argmax);
  hy_node *n = hy_record(op, reduce_backward, y, 1, &x);
  if (n) {
    *HY_NODE_ARGS(n, reduce_args) =
        (reduce_args){.kind = kind, .outer = outer, .len = len, .inner = inner};
    n->saved = argmax;
  }
  return y;
}

hy_tensor *hy_sum(hy_tensor *x, int axis, bool keepdim) {
  return reduce(HY_REDUCE_SUM, x, axis, keepdim);
}

hy_tensor *hy_mean(hy_tensor *x, int axis, bool keepdim) {
  return reduce(HY_REDUCE_MEAN, x, axis, keepdim);
}

hy_tensor *hy_max(hy_tensor *x, int axis, bool keepdim) {
  return reduce(HY_REDUCE_MAX, x, axis, keepdim);
}

hy_tensor *hy_sum_all(hy_tensor *x) {
  return hy_sum(hy_reshape(x, HY_SHAPE(1, hy_numel(x))), 1, false);
}
