/* Views (reshape, transpose, slice, split) and copies (contiguous, copy, concat). A view shares
 * its input's memory; its backward adds the output gradient into the matching view of the input
 * gradient. They only move data, so they take every float dtype a device holds (bf16 on the CPU
 * too): every copy goes through hy_convert_into, which has kernels for each. */
#include "tensor/op.h"

#include <stdio.h>
#include <string.h>

static hy_tensor *view_of(hy_tensor *x) {
  hy_tensor *v = hy_arena_alloc(sizeof *v);
  *v = *x;
  v->persistent = false;
  v->requires_grad = false;
  v->retain_grad = false;
  v->grad = NULL;
  v->node = NULL;
  v->bf16_copy = NULL;
  return v;
}

enum { VIEW_RESHAPE, VIEW_TRANSPOSE, VIEW_SLICE };

/* A view's kind and arguments: transpose's two axes, slice's axis and range. */
typedef struct {
  int kind, axis, other; /* other: transpose's second axis */
  int64_t start, end;    /* slice */
} view_args;

/* concat's axis */
typedef struct {
  int axis;
} concat_args;

/* Same layout change applied to the gradient of the input (the node's view_args). */
static hy_tensor *same_view(hy_node *n, hy_tensor *g);
static hy_tensor *reshape_view(hy_tensor *x, hy_shape s);

/* A view's gradient goes into the same view of x's gradient. A reshape's gradient, when x has
 * none yet, becomes x's own (the same elements in the same order: no copy), unless something keeps
 * it or x is persistent (a parameter's gradient lives in its own memory); a view of all of x
 * (reshape, transpose) writes a fresh gradient whole; a part of x (slice, split) adds into a
 * zeroed one, whose other parts may get nothing. */
static void view_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *gy = n->out->grad;
  if (HY_NODE_ARGS(n, view_args)->kind == VIEW_RESHAPE && !x->grad && !x->persistent &&
      !n->out->retain_grad && hy_is_contiguous(x)) {
    x->grad = reshape_view(gy, hy_shape_of(x));
    n->out->grad = NULL; /* now x's: not handed back with the reshape's spent gradient */
    return;
  }
  bool accumulate = true;
  hy_tensor *gx = hy_numel(n->out) == hy_numel(x) ? hy_grad_acc(x, &accumulate) : hy_grad(x);
  hy_convert_into(same_view(n, gx), gy, accumulate);
}

/* A float tensor of a dtype its device holds. */
static void check_data(const char *op, const hy_tensor *t) {
  if (!t) hy_die(op, "input is NULL");
  hy_check_float(op, t);
  if (t->device == HY_CUDA && t->dtype == HY_F64)
    hy_die(op, "%s: GPU tensors are f32 or bf16", hy_describe(t));
}

/* ---- copies ---- */

static void copy_backward(hy_node *n) {
  bool accumulate;
  hy_tensor *gx = hy_grad_acc(n->in[0], &accumulate);
  hy_convert_into(gx, n->out->grad, accumulate);
}

static hy_tensor *copy_as(hy_tensor *x, const char *op) {
  check_data(op, x);
  hy_tensor *y = hy_empty_like(x);
  hy_convert_into(y, x, false);
  hy_record(op, copy_backward, y, 1, &x);
  return y;
}

hy_tensor *hy_copy(hy_tensor *x) { return copy_as(x, "copy"); }

hy_tensor *hy_contiguous(hy_tensor *x) {
  if (!x) hy_die("contiguous", "input is NULL");
  if (hy_is_contiguous(x)) return x;
  if (x->dtype == HY_I32) { /* indices never need a gradient */
    hy_tensor *y = hy_empty_like(x);
    for (int64_t i = 0; i < hy_numel(x); i++) hy_set(y, i, hy_get(x, i));
    return y;
  }
  return copy_as(x, "contiguous");
}

/* ---- reshape ---- */

static hy_tensor *reshape_view(hy_tensor *x, hy_shape s) {
  hy_tensor *v = view_of(x);
  v->ndim = s.ndim;
  int64_t stride = 1;
  for (int i = s.ndim - 1; i >= 0; i--) {
    v->shape[i] = s.d[i];
    v->stride[i] = stride;
    stride *= s.d[i];
  }
  return v;
}

hy_tensor *hy_reshape(hy_tensor *x, hy_shape s) {
  const char *op = "reshape";
  if (!x) hy_die(op, "input is NULL");
  if (s.ndim < 0 || s.ndim > HY_MAX_DIMS) hy_die(op, "%d dims (at most %d)", s.ndim, HY_MAX_DIMS);
  int64_t known = 1, n = hy_numel(x);
  int free_dim = -1;
  for (int i = 0; i < s.ndim; i++) {
    if (s.d[i] == -1) {
      if (free_dim >= 0) hy_die(op, "more than one -1 in the new shape of %s", hy_describe(x));
      free_dim = i;
    } else {
      known *= s.d[i];
    }
  }
  if (free_dim >= 0 && known > 0) s.d[free_dim] = n / known;
  int64_t total = 1;
  for (int i = 0; i < s.ndim; i++) total *= s.d[i];
  if (total != n || (free_dim >= 0 && known == 0)) {
    char want[64] = "";
    for (int i = 0, k = 0; i < s.ndim; i++)
      k += snprintf(want + k, sizeof want - (size_t)k, "%s%lld", i ? ", " : "", (long long)s.d[i]);
    hy_die(op, "cannot reshape %s into [%s]", hy_describe(x), want);
  }
  x = hy_contiguous(x);
  hy_tensor *v = reshape_view(x, s);
  hy_node *n_ = hy_record(op, view_backward, v, 1, &x);
  if (n_) HY_NODE_ARGS(n_, view_args)->kind = VIEW_RESHAPE;
  return v;
}

/* ---- transpose ---- */

static hy_tensor *transpose_view(hy_tensor *x, int a, int b) {
  hy_tensor *v = view_of(x);
  int64_t t = v->shape[a];
  v->shape[a] = v->shape[b];
  v->shape[b] = t;
  t = v->stride[a];
  v->stride[a] = v->stride[b];
  v->stride[b] = t;
  return v;
}

hy_tensor *hy_transpose(hy_tensor *x, int axis0, int axis1) {
  const char *op = "transpose";
  if (!x) hy_die(op, "input is NULL");
  int a = hy_axis(x, axis0, op), b = hy_axis(x, axis1, op);
  hy_tensor *v = transpose_view(x, a, b);
  hy_node *n = hy_record(op, view_backward, v, 1, &x);
  if (n) {
    *HY_NODE_ARGS(n, view_args) = (view_args){.kind = VIEW_TRANSPOSE, .axis = a, .other = b};
  }
  return v;
}

/* ---- slice and split ---- */

static hy_tensor *slice_view(hy_tensor *x, int axis, int64_t start, int64_t end) {
  hy_tensor *v = view_of(x);
  v->shape[axis] = end - start;
  v->data = (char *)x->data + start * x->stride[axis] * (int64_t)hy_dtype_size(x->dtype);
  return v;
}

hy_tensor *hy_slice(hy_tensor *x, int axis, int64_t start, int64_t end) {
  const char *op = "slice";
  if (!x) hy_die(op, "input is NULL");
  int a = hy_axis(x, axis, op);
  if (start < 0 || end < start || end > x->shape[a])
    hy_die(op, "range [%lld, %lld) of axis %d is outside %s", (long long)start, (long long)end, a,
           hy_describe(x));
  hy_tensor *v = slice_view(x, a, start, end);
  hy_node *n = hy_record(op, view_backward, v, 1, &x);
  if (n) {
    *HY_NODE_ARGS(n, view_args) =
        (view_args){.kind = VIEW_SLICE, .axis = a, .start = start, .end = end};
  }
  return v;
}

void hy_split(hy_tensor *x, int axis, int n, const int64_t *sizes, hy_tensor **out) {
  const char *op = "split";
  if (!x) hy_die(op, "input is NULL");
  int a = hy_axis(x, axis, op);
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += sizes[i];
  if (total != x->shape[a])
    hy_die(op, "sizes add up to %lld, but axis %d of %s has %lld", (long long)total, a,
           hy_describe(x), (long long)x->shape[a]);
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    out[i] = hy_slice(x, a, start, start + sizes[i]);
    start += sizes[i];
  }
}

static hy_tensor *same_view(hy_node *n, hy_tensor *g) {
  const view_args *a = HY_NODE_ARGS(n, view_args);
  switch (a->kind) {
  case VIEW_RESHAPE: return reshape_view(g, hy_shape_of(n->out));
  case VIEW_TRANSPOSE: return transpose_view(g, a->axis, a->other);
  case VIEW_SLICE: return slice_view(g, a->axis, a->start, a->end);
  }
  hy_die("view", "unknown view kind %d", a->kind);
}

/* ---- concat ---- */

static void concat_backward(hy_node *n) {
  int axis = HY_NODE_ARGS(n, concat_args)->axis;
  int64_t start = 0;
  for (int i = 0; i < n->n_in; i++) {
    hy_tensor *x = n->in[i];
    int64_t len = x->shape[axis];
    if (x->requires_grad) {
      bool accumulate;
      hy_tensor *gx = hy_grad_acc(x, &accumulate);
      hy_convert_into(gx, slice_view(n->out->grad, axis, start, start + len), accumulate);
    }
    start += len;
  }
}

hy_tensor *hy_concat(int n, hy_tensor *const *xs, int axis) {
  const char *op = "concat";
  if (n < 1) hy_die(op, "nothing to concatenate");
  check_data(op, xs[0]);
  int a = hy_axis(xs[0], axis, op);
  hy_shape s = hy_shape_of(xs[0]);
  s.d[a] = 0;
  for (int i = 0; i < n; i++) {
    check_data(op, xs[i]);
    hy_check_same_dtype(op, xs[0], xs[i]);
    hy_check_same_device(op, xs[0], xs[i]);
    bool ok = xs[i]->ndim == xs[0]->ndim;
    for (int j = 0; ok && j < s.ndim; j++) ok = j == a || xs[i]->shape[j] == xs[0]->shape[j];
    if (!ok)
      hy_die(op, "%s and %s differ outside axis %d", hy_describe(xs[0]), hy_describe(xs[i]), a);
    s.d[a] += xs[i]->shape[a];
  }
  hy_tensor *y = hy_empty_on(xs[0]->device, xs[0]->dtype, s);
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    int64_t len = xs[i]->shape[a];
    hy_convert_into(slice_view(y, a, start, start + len), xs[i], false);
    start += len;
  }
  hy_node *node = hy_record(op, concat_backward, y, n, xs);
  if (node) HY_NODE_ARGS(node, concat_args)->axis = a;
  return y;
}
