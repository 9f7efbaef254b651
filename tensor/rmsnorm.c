#include "tensor/op.h"

/* The statistics' dtype: f64 for f64 rows, else f32 (bf16 rows keep their rstd in f32). */
static hy_dtype stat_dtype(const hy_tensor *x) { return x->dtype == HY_F64 ? HY_F64 : HY_F32; }

/* The weight, contiguous, after checking it fits x's rows: x's dtype, or f32 for bf16 rows (a
 * parameter in mixed precision). */
static hy_tensor *checked_weight(const char *op, const hy_tensor *x, hy_dtype x_dtype,
                                 hy_tensor *weight) {
  if (!weight) return NULL;
  hy_check_input_any(op, weight);
  hy_check_same_device(op, x, weight);
  hy_dtype want = x_dtype == HY_BF16 ? HY_F32 : x_dtype;
  if (weight->dtype != want)
    hy_die(op, "weight %s does not fit the rows of %s (a %s weight expected)", hy_describe(weight),
           hy_describe(x), hy_dtype_name(want));
  int64_t d = x->shape[x->ndim - 1];
  if (weight->ndim != 1 || weight->shape[0] != d)
    hy_die(op, "weight %s does not match the last dim of %s", hy_describe(weight), hy_describe(x));
  return hy_contiguous(weight);
}

static void rmsnorm_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *w = n->in[1];
  int64_t d = x->shape[x->ndim - 1];
  bool acc = false;
  void *gx = x->requires_grad ? hy_grad_acc(x, &acc)->data : NULL;
  HY_KERNEL_BF16(x, rmsnorm_backward, d ? hy_numel(x) / d : 0, d, x->data, w ? w->data : NULL,
                 n->saved, n->out->grad->data, gx, acc,
                 w && w->requires_grad ? hy_grad(w)->data : NULL);
}

hy_tensor *hy_rmsnorm(hy_tensor *x, hy_tensor *weight, double eps) {
  const char *op = "rmsnorm";
  hy_check_input_any(op, x);
  if (x->ndim == 0) hy_die(op, "needs at least one dim, got %s", hy_describe(x));
  weight = checked_weight(op, x, x->dtype, weight);
  x = hy_contiguous(x);
  int64_t d = x->shape[x->ndim - 1], rows = d ? hy_numel(x) / d : 0;
  hy_tensor *y = hy_empty_like(x);
  void *rstd = hy_saved_like(x, (size_t)rows * hy_dtype_size(stat_dtype(x)));
  HY_KERNEL_BF16(x, rmsnorm, rows, d, x->data, weight ? weight->data : NULL, eps, y->data, rstd);
  hy_node *n = hy_record(op, rmsnorm_backward, y, 2, (hy_tensor *[]){x, weight});
  if (n) n->saved = rstd;
  return y;
}

/* in: x, y (or NULL), weight (or NULL); out: h; out2: the sum (absent when y is NULL: the sum is
 * x itself, whose gradient its other users give it directly). One pass over the rows for every
 * gradient: t = g_sum + rmsnorm's backward of g_h, then g_x (+)= t and g_y (+)= t. */
static void add_rmsnorm_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *y = n->in[1], *w = n->in[2];
  hy_tensor *s = n->out2 ? n->out2 : x, *gh = n->out->grad, *gs = n->out2 ? n->out2->grad : NULL;
  int64_t d = x->shape[x->ndim - 1], rows = d ? hy_numel(x) / d : 0;
  bool acc_x = false, acc_y = false; /* gx is written before gy is read: y may be x */
  hy_tensor *gx = x->requires_grad ? hy_grad_acc(x, &acc_x) : NULL;
  hy_tensor *gy = y && y->requires_grad ? hy_grad_acc(y, &acc_y) : NULL;
  void *gw = w && w->requires_grad && gh ? hy_grad(w)->data : NULL;
  const void *wd = w ? w->data : NULL, *ghd = gh ? gh->data : NULL, *gsd = gs ? gs->data : NULL;
  void *gxd = gx ? gx->data : NULL, *gyd = gy ? gy->data : NULL;
#ifdef HYLA_CUDA
  if (x->device == HY_CUDA) {
    cuda_add_rmsnorm_backward(rows, d, s->data, wd, n->saved, ghd, gh && gh->dtype == HY_BF16, gsd,
                              gxd, acc_x, gyd, y && y->dtype == HY_BF16, acc_y, gw);
    return;
  }
#endif
  HY_CPU(x->dtype, cpu_add_rmsnorm_backward, rows, d, s->data, wd, n->saved, ghd, gsd, gxd, acc_x,
         gyd, acc_y, gw);
}

hy_tensor *hy_add_rmsnorm(hy_tensor *x, hy_tensor *y, hy_tensor *weight, double eps, hy_dtype dtype,
                          hy_tensor **sum) {
  const char *op = "add_rmsnorm";
  hy_check_input_any(op, x);
  if (x->ndim == 0) hy_die(op, "needs at least one dim, got %s", hy_describe(x));
  if (x->dtype == HY_BF16)
    hy_die(op, "x %s is the residual stream: f32 (or f64 on the CPU)", hy_describe(x));
  if (y) {
    hy_check_input_any(op, y);
    hy_check_same_device(op, x, y);
    hy_check_same_shape(op, x, y);
    if (y->dtype != x->dtype && y->dtype != HY_BF16)
      hy_die(op, "y %s: x's dtype or bf16 expected (x %s)", hy_describe(y), hy_describe(x));
  }
  if (dtype != x->dtype && !(dtype == HY_BF16 && x->device == HY_CUDA))
    hy_die(op, "output dtype %s: %s or bf16 on the GPU expected (x %s)", hy_dtype_name(dtype),
           hy_dtype_name(x->dtype), hy_describe(x));
  weight = checked_weight(op, x, x->dtype, weight);
  x = hy_contiguous(x);
  y = y ? hy_contiguous(y) : NULL;
  int64_t d = x->shape[x->ndim - 1], rows = d ? hy_numel(x) / d : 0;
  hy_tensor *s = y ? hy_empty_like(x) : x;
  hy_tensor *h = hy_empty_on(x->device, dtype, hy_shape_of(x));
  void *rstd = hy_saved_like(x, (size_t)rows * hy_dtype_size(stat_dtype(x)));
  const void *wd = weight ? weight->data : NULL, *yd = y ? y->data : NULL;
#ifdef HYLA_CUDA
  if (x->device == HY_CUDA)
    cuda_add_rmsnorm(rows, d, x->data, yd, y && y->dtype == HY_BF16, wd, eps, s->data, h->data,
                     dtype == HY_BF16, rstd);
  else
#endif
    HY_CPU(x->dtype, cpu_add_rmsnorm, rows, d, x->data, yd, wd, eps, s->data, h->data, rstd);
  hy_node *n = hy_record(op, add_rmsnorm_backward, h, 3, (hy_tensor *[]){x, y, weight});
  if (n) {
    n->saved = rstd;
    if (y) hy_record_second(n, s);
  }
  if (sum) *sum = s;
  return h;
}
