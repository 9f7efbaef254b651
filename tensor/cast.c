#include "tensor/op.h"

/* One element of a float tensor's memory as a double, and back. */
static double load(hy_dtype dtype, const void *p, int64_t i) {
  switch (dtype) {
  case HY_F32: return ((const float *)p)[i];
  case HY_F64: return ((const double *)p)[i];
  case HY_BF16: return hy_bf16_to_float(((const hy_bf16 *)p)[i]);
  case HY_I32: break;
  }
  hy_die("cast", "internal: not a float dtype");
}

static void store(hy_dtype dtype, void *p, int64_t i, double v) {
  switch (dtype) {
  case HY_F32: ((float *)p)[i] = (float)v; return;
  case HY_F64: ((double *)p)[i] = v; return;
  case HY_BF16: ((hy_bf16 *)p)[i] = hy_bf16_from_float((float)v); return;
  case HY_I32: break;
  }
  hy_die("cast", "internal: not a float dtype");
}

/* The CPU's conversion, over any strides: each value rounds once, to the destination's dtype
 * (a bf16 destination first to f32, then to bf16: for values f32 holds, the same as rounding
 * directly). */
static void convert_cpu(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  hy_copy_dims dims = hy_copy_dims_of(dst, src);
  const int64_t *shape = dims.shape, *sd = dims.sd, *ss = dims.ss;
  for (int64_t a = 0; a < shape[0]; a++)
    for (int64_t b = 0; b < shape[1]; b++)
      for (int64_t c = 0; c < shape[2]; c++)
        for (int64_t e = 0; e < shape[3]; e++) {
          int64_t od = a * sd[0] + b * sd[1] + c * sd[2] + e * sd[3];
          int64_t os = a * ss[0] + b * ss[1] + c * ss[2] + e * ss[3];
          double v = load(src->dtype, src->data, os);
          if (accumulate) v += load(dst->dtype, dst->data, od);
          store(dst->dtype, dst->data, od, v);
        }
}

void hy_convert_into(hy_tensor *dst, const hy_tensor *src, bool accumulate) {
  const char *op = "cast";
  hy_check_float(op, dst);
  hy_check_float(op, src);
  hy_check_same_shape(op, dst, src);
  hy_check_same_device(op, dst, src);
  if (dst->device == HY_CUDA) {
#ifdef HYLA_CUDA
    cuda_convert(dst, src, accumulate);
#endif
    return;
  }
  if (dst->dtype == src->dtype && dst->dtype != HY_BF16)
    HY_KERNEL(dst, copy, dst, src, accumulate);
  else
    convert_cpu(dst, src, accumulate);
}

static void cast_backward(hy_node *n) { hy_convert_into(hy_grad(n->in[0]), n->out->grad, true); }

hy_tensor *hy_cast(hy_tensor *x, hy_dtype dtype) {
  const char *op = "cast";
  if (!x) hy_die(op, "input is NULL");
  hy_check_float(op, x);
  if (dtype != HY_F32 && dtype != HY_F64 && dtype != HY_BF16)
    hy_die(op, "to %s: not a float dtype", hy_dtype_name(dtype));
  if (x->device == HY_CUDA && dtype == HY_F64)
    hy_die(op, "%s to f64: GPU tensors are f32 or bf16", hy_describe(x));
  if (x->dtype == dtype) return x;
  hy_tensor *y = hy_empty_on(x->device, dtype, hy_shape_of(x));
  hy_convert_into(y, x, false);
  hy_record(op, cast_backward, y, 1, &x);
  return y;
}

static uint64_t generation = 1;

void hy_weights_changed(void) { generation++; }

hy_tensor *hy_bf16_copy(hy_tensor *t) {
  if (!t->persistent || t->dtype != HY_F32 || t->device != HY_CUDA)
    hy_die("bf16_copy", "%s: takes a persistent f32 tensor on the GPU", hy_describe(t));
  if (!hy_is_contiguous(t)) hy_die("bf16_copy", "%s is not contiguous", hy_describe(t));
  if (!t->bf16_copy) t->bf16_copy = hy_empty_persistent_on(HY_CUDA, HY_BF16, hy_shape_of(t));
  if (t->bf16_copy_generation != generation) {
    hy_convert_into(t->bf16_copy, t, false);
    t->bf16_copy_generation = generation;
  }
  return t->bf16_copy;
}
