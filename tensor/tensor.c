#include "tensor/tensor.h"
#include "tensor/arena.h"
#include "tensor/device.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void (*die_hook)(const char *message);

void hy_on_die(void (*hook)(const char *message)) { die_hook = hook; }

_Noreturn void hy_die(const char *op, const char *fmt, ...) {
  char message[1024];
  int n = snprintf(message, sizeof message, "%.200s: ", op);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message + n, sizeof message - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "hyla: %s\n", message);
  fflush(stderr);
  void (*hook)(const char *) = die_hook;
  die_hook = NULL; /* a hook that dies itself aborts at once */
  if (hook) hook(message);
  abort();
}

size_t hy_dtype_size(hy_dtype dtype) {
  switch (dtype) {
  case HY_F32: return 4;
  case HY_F64: return 8;
  case HY_I32: return 4;
  case HY_BF16: return 2;
  }
  hy_die("tensor", "unknown dtype %d", (int)dtype);
}

const char *hy_dtype_name(hy_dtype dtype) {
  switch (dtype) {
  case HY_F32: return "f32";
  case HY_F64: return "f64";
  case HY_I32: return "i32";
  case HY_BF16: return "bf16";
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
  snprintf(s + n, 96 - (size_t)n, "] %s%s", hy_dtype_name(t->dtype),
           t->device == HY_CUDA ? " cuda" : "");
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

static size_t bytes_of(const hy_tensor *t) { return (size_t)hy_numel(t) * hy_dtype_size(t->dtype); }

hy_tensor *hy_empty_on(hy_device device, hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = hy_arena_alloc(sizeof *t);
  set_shape(t, dtype, shape);
  t->device = device;
  t->data = hy_arena_alloc_on(device, bytes_of(t));
  return t;
}

hy_tensor *hy_empty(hy_dtype dtype, hy_shape shape) {
  return hy_empty_on(hy_current_device(), dtype, shape);
}

hy_tensor *hy_zeros(hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_device_memset0(t->device, t->data, bytes_of(t));
  return t;
}

hy_tensor *hy_full(hy_dtype dtype, hy_shape shape, double value) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_fill(t, value);
  return t;
}

hy_tensor *hy_empty_like(const hy_tensor *t) {
  return hy_empty_on(t->device, t->dtype, hy_shape_of(t));
}

hy_tensor *hy_zeros_like(const hy_tensor *t) {
  hy_tensor *z = hy_empty_like(t);
  hy_device_memset0(z->device, z->data, bytes_of(z));
  return z;
}

hy_tensor *hy_empty_persistent_on(hy_device device, hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = malloc(sizeof *t);
  if (!t) hy_die("tensor", "out of memory");
  set_shape(t, dtype, shape);
  t->device = device;
  t->data = hy_device_malloc(device, bytes_of(t));
  t->persistent = true;
  return t;
}

hy_tensor *hy_empty_persistent(hy_dtype dtype, hy_shape shape) {
  return hy_empty_persistent_on(hy_current_device(), dtype, shape);
}

hy_tensor *hy_zeros_persistent_on(hy_device device, hy_dtype dtype, hy_shape shape) {
  hy_tensor *t = hy_empty_persistent_on(device, dtype, shape);
  hy_device_memset0(t->device, t->data, bytes_of(t));
  return t;
}

hy_tensor *hy_zeros_persistent(hy_dtype dtype, hy_shape shape) {
  return hy_zeros_persistent_on(hy_current_device(), dtype, shape);
}

void hy_free(hy_tensor *t) {
  if (!t) return;
  if (!t->persistent) hy_die("hy_free", "tensor %s lives in the arena", hy_describe(t));
  if (t->grad && t->grad->persistent) hy_free(t->grad);
  if (t->bf16_copy) hy_free(t->bf16_copy);
  hy_device_free(t->device, t->data);
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

/* One element's bytes, wherever the tensor lives (a GPU element costs a copy: tests and setup). */
static void element(const hy_tensor *t, int64_t index, void *value, bool store) {
  check_index(t, index);
  size_t es = hy_dtype_size(t->dtype);
  char *p = (char *)t->data + offset_of(t, index) * (int64_t)es;
  if (store)
    hy_device_copy(t->device, p, HY_CPU, value, es);
  else
    hy_device_copy(HY_CPU, value, t->device, p, es);
}

hy_bf16 hy_bf16_from_float(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (hy_bf16)((u >> 16) | 0x40u); /* a quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
  return (hy_bf16)(u >> 16);
}

float hy_bf16_to_float(hy_bf16 x) {
  uint32_t u = (uint32_t)x << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

typedef union {
  float f;
  double d;
  int32_t i;
  hy_bf16 h;
} scalar;

double hy_get(const hy_tensor *t, int64_t index) {
  scalar v;
  element(t, index, &v, false);
  switch (t->dtype) {
  case HY_F32: return v.f;
  case HY_F64: return v.d;
  case HY_I32: return v.i;
  case HY_BF16: return hy_bf16_to_float(v.h);
  }
  return 0;
}

void hy_set(hy_tensor *t, int64_t index, double value) {
  if (t->persistent) hy_weights_changed();
  scalar v;
  switch (t->dtype) {
  case HY_F32: v.f = (float)value; break;
  case HY_F64: v.d = value; break;
  case HY_I32: v.i = (int32_t)value; break;
  case HY_BF16: v.h = hy_bf16_from_float((float)value); break;
  }
  element(t, index, &v, true);
}

double hy_item(const hy_tensor *t) {
  if (hy_numel(t) != 1) hy_die("item", "tensor %s has more than one element", hy_describe(t));
  return hy_get(t, 0);
}

static void fill_host(hy_dtype dtype, void *data, int64_t n, double value) {
  switch (dtype) {
  case HY_F32:
    for (int64_t i = 0; i < n; i++) ((float *)data)[i] = (float)value;
    return;
  case HY_F64:
    for (int64_t i = 0; i < n; i++) ((double *)data)[i] = value;
    return;
  case HY_I32:
    for (int64_t i = 0; i < n; i++) ((int32_t *)data)[i] = (int32_t)value;
    return;
  case HY_BF16:
    for (int64_t i = 0; i < n; i++) ((hy_bf16 *)data)[i] = hy_bf16_from_float((float)value);
    return;
  }
}

void hy_fill(hy_tensor *t, double value) {
  if (t->persistent) hy_weights_changed();
  int64_t n = hy_numel(t);
  if (!hy_is_contiguous(t)) {
    for (int64_t i = 0; i < n; i++) hy_set(t, i, value);
  } else if (t->device == HY_CPU) {
    fill_host(t->dtype, t->data, n, value);
  } else {
#ifdef HYLA_CUDA
    cuda_fill(t, value);
#endif
  }
}

void hy_copy_into(hy_tensor *dst, const hy_tensor *src) {
  if (dst->persistent) hy_weights_changed();
  hy_check_same_shape("copy_into", dst, src);
  hy_check_same_dtype("copy_into", dst, src);
  int64_t n = hy_numel(src);
  if (hy_is_contiguous(dst) && hy_is_contiguous(src)) {
    hy_device_copy(dst->device, dst->data, src->device, src->data, bytes_of(src));
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
  if (t->dtype != HY_F32 && t->dtype != HY_F64 && t->dtype != HY_BF16)
    hy_die(op, "expected a float tensor, got %s", hy_describe(t));
}
