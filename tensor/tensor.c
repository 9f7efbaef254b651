#include "tensor/tensor.h"
#include "tensor/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void hy_die(const char *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "hyla: %s: ", op);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stderr);
  abort();
}

size_t hy_dtype_size(hy_dtype dtype) {
  switch (dtype) {
  case HY_F32: return 4;
  case HY_F64: return 8;
  case HY_I32: return 4;
  }
  hy_die("tensor", "unknown dtype %d", (int)dtype);
}

const char *hy_dtype_name(hy_dtype dtype) {
  switch (dtype) {
  case HY_F32: return "f32";
  case HY_F64: return "f64";
  case HY_I32: return "i32";
  }
  return "?";
}

const char *hy_describe(const hy_tensor *t) {
  static char buf[8][96];
  static int next;
  char *s = buf[next++ % 8];
  if (!t) return strcpy(s, "(null)");
  int n = snprintf(s, 96, "[");
  for (int i = 0; i < t->ndim; i++)
    n += snprintf(s + n, 96 - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  snprintf(s + n, 96 - (size_t)n, "] %s", hy_dtype_name(t->dtype));
  return s;
}

static void set_shape(hy_tensor *t, hy_dtype dtype, hy_shape shape) {
  if (shape.ndim < 0 || shape.ndim > HY_MAX_DIMS)
    hy_die("tensor", "%d dimensions (at most %d)", shape.ndim, HY_MAX_DIMS);
  memset(t, 0, sizeof *t);
  t->dtype = dtype;
  t->device = HY_CPU;
  t->ndim = shape.ndim;
  int64_t stride = 1;
  for (int i = shape.ndim - 1; i >= 0; i--) {
    if (shape.d[i] < 0) hy_die("tensor", "negative size %lld", (long long)shape.d[i]);
    t->shape[i] = shape.d[i];
    t->stride[i] = stride;
    stride *= shape.d[i];
  }
}

hy_tensor *hy_empty(hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = hy_arena_alloc(sizeof *t);
  set_shape(t, dtype, shape);
  t->data = hy_arena_alloc((size_t)hy_numel(t) * hy_dtype_size(dtype));
  return t;
}

hy_tensor *hy_zeros(hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = hy_empty(dtype, shape);
  memset(t->data, 0, (size_t)hy_numel(t) * hy_dtype_size(dtype));
  return t;
}

hy_tensor *hy_full(hy_dtype dtype, hy_shape shape, double value) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_fill(t, value);
  return t;
}

hy_tensor *hy_empty_like(const hy_tensor *t) { return hy_empty(t->dtype, hy_shape_of(t)); }

hy_tensor *hy_zeros_like(const hy_tensor *t) { return hy_zeros(t->dtype, hy_shape_of(t)); }

hy_tensor *hy_empty_persistent(hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = malloc(sizeof *t);
  if (!t) hy_die("tensor", "out of memory");
  set_shape(t, dtype, shape);
  size_t bytes = (size_t)hy_numel(t) * hy_dtype_size(dtype);
  if (posix_memalign(&t->data, 64, bytes ? bytes : 64) != 0)
    hy_die("tensor", "out of memory asking for %zu bytes", bytes);
  t->persistent = true;
  return t;
}

hy_tensor *hy_zeros_persistent(hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = hy_empty_persistent(dtype, shape);
  memset(t->data, 0, (size_t)hy_numel(t) * hy_dtype_size(dtype));
  return t;
}

void hy_free(hy_tensor *t) {
  if (!t) return;
  if (!t->persistent) hy_die("hy_free", "tensor %s lives in the arena", hy_describe(t));
  if (t->grad && t->grad->persistent) hy_free(t->grad);
  free(t->data);
  free(t);
}

int64_t hy_numel(const hy_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

bool hy_is_contiguous(const hy_tensor *t) {
  int64_t stride = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != stride) return false;
    stride *= t->shape[i];
  }
  return true;
}

bool hy_same_shape(const hy_tensor *a, const hy_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

hy_shape hy_shape_of(const hy_tensor *t) {
  hy_shape s = {.ndim = t->ndim};
  for (int i = 0; i < t->ndim; i++) s.d[i] = t->shape[i];
  return s;
}

int hy_axis(const hy_tensor *t, int axis, const char *op) {
  int a = axis < 0 ? axis + t->ndim : axis;
  if (a < 0 || a >= t->ndim) hy_die(op, "axis %d out of range for %s", axis, hy_describe(t));
  return a;
}

int64_t hy_size(const hy_tensor *t, int axis) { return t->shape[hy_axis(t, axis, "size")]; }

static int64_t offset_of(const hy_tensor *t, int64_t index) {
  int64_t off = 0;
  for (int i = t->ndim - 1; i >= 0; i--) {
    off += (index % t->shape[i]) * t->stride[i];
    index /= t->shape[i];
  }
  return off;
}

static void check_index(const hy_tensor *t, int64_t index) {
  if (index < 0 || index >= hy_numel(t))
    hy_die("get/set", "index %lld out of range for %s", (long long)index, hy_describe(t));
}

double hy_get(const hy_tensor *t, int64_t index) {
  check_index(t, index);
  int64_t off = offset_of(t, index);
  switch (t->dtype) {
  case HY_F32: return ((const float *)t->data)[off];
  case HY_F64: return ((const double *)t->data)[off];
  case HY_I32: return ((const int32_t *)t->data)[off];
  }
  return 0;
}

void hy_set(hy_tensor *t, int64_t index, double value) {
  check_index(t, index);
  int64_t off = offset_of(t, index);
  switch (t->dtype) {
  case HY_F32: ((float *)t->data)[off] = (float)value; break;
  case HY_F64: ((double *)t->data)[off] = value; break;
  case HY_I32: ((int32_t *)t->data)[off] = (int32_t)value; break;
  }
}

double hy_item(const hy_tensor *t) {
  if (hy_numel(t) != 1) hy_die("item", "tensor %s has more than one element", hy_describe(t));
  return hy_get(t, 0);
}

void hy_fill(hy_tensor *t, double value) {
  int64_t n = hy_numel(t);
  if (hy_is_contiguous(t)) {
    switch (t->dtype) {
    case HY_F32:
      for (int64_t i = 0; i < n; i++) ((float *)t->data)[i] = (float)value;
      return;
    case HY_F64:
      for (int64_t i = 0; i < n; i++) ((double *)t->data)[i] = value;
      return;
    case HY_I32:
      for (int64_t i = 0; i < n; i++) ((int32_t *)t->data)[i] = (int32_t)value;
      return;
    }
  }
  for (int64_t i = 0; i < n; i++) hy_set(t, i, value);
}

void hy_copy_into(hy_tensor *dst, const hy_tensor *src) {
  hy_check_same_shape("copy_into", dst, src);
  hy_check_same_dtype("copy_into", dst, src);
  int64_t n = hy_numel(src);
  if (hy_is_contiguous(dst) && hy_is_contiguous(src)) {
    memmove(dst->data, src->data, (size_t)n * hy_dtype_size(src->dtype));
    return;
  }
  for (int64_t i = 0; i < n; i++) hy_set(dst, i, hy_get(src, i));
}

void hy_check_dtype(const char *op, const hy_tensor *t, hy_dtype dtype) {
  if (t->dtype != dtype) hy_die(op, "expected %s, got %s", hy_dtype_name(dtype), hy_describe(t));
}

void hy_check_same_dtype(const char *op, const hy_tensor *a, const hy_tensor *b) {
  if (a->dtype != b->dtype) hy_die(op, "dtypes differ: %s and %s", hy_describe(a), hy_describe(b));
}

void hy_check_same_shape(const char *op, const hy_tensor *a, const hy_tensor *b) {
  if (!hy_same_shape(a, b)) hy_die(op, "shapes differ: %s and %s", hy_describe(a), hy_describe(b));
}

void hy_check_float(const char *op, const hy_tensor *t) {
  if (t->dtype != HY_F32 && t->dtype != HY_F64)
    hy_die(op, "expected a float tensor, got %s", hy_describe(t));
}
