/* The hyla tensor: a small strided view of up to four dimensions over memory that lives either in
 * the per-step arena (activations) or in its own allocation (parameters, optimizer state). */
#ifndef HYLA_TENSOR_H
#define HYLA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The CUDA kernels (C++) include this header too. */
#ifdef __cplusplus
#define HY_NORETURN [[noreturn]]
extern "C" {
#else
#define HY_NORETURN _Noreturn
#endif

enum { HY_MAX_DIMS = 4 };

/* HY_BF16 (bfloat16: f32's exponent, 8 bits of mantissa) stores activations and their gradients
 * in mixed-precision training on the GPU (tensor/device.h, hy_set_precision); its kernels compute
 * in f32. On the CPU a bf16 tensor only holds data (element access, copies, hy_cast). */
typedef enum { HY_F32, HY_F64, HY_I32, HY_BF16 } hy_dtype;

/* One bf16 value's bits, and the conversions (round to nearest even; NaN stays NaN). */
typedef uint16_t hy_bf16;
hy_bf16 hy_bf16_from_float(float x);
float hy_bf16_to_float(hy_bf16 x);
typedef enum { HY_CPU, HY_CUDA } hy_device;

typedef struct hy_node hy_node;

typedef struct hy_tensor {
  hy_dtype dtype;
  hy_device device;
  int ndim;
  int64_t shape[HY_MAX_DIMS];
  int64_t stride[HY_MAX_DIMS]; /* in elements */
  void *data;                  /* first element of the view */
  bool persistent;             /* owns its memory past the step (hy_free releases it) */
  bool requires_grad;
  bool retain_grad;       /* an intermediate whose gradient outlives the backward pass */
  struct hy_tensor *grad; /* same shape, contiguous; persistent iff the tensor is */
  hy_node *node;          /* the tape node that produced it; NULL for leaves */
  /* A persistent f32 tensor's bf16 copy for mixed-precision matmuls (hy_bf16_copy) and the
   * weights' generation it was made in. */
  struct hy_tensor *bf16_copy;
  uint64_t bf16_copy_generation;
} hy_tensor;

/* A shape passed by value: hy_empty(HY_F32, HY_SHAPE(B, T, d)). */
typedef struct {
  int ndim;
  int64_t d[HY_MAX_DIMS];
} hy_shape;
#define HY_SHAPE(...)                                                                              \
  ((hy_shape){.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                   \
              .d = {__VA_ARGS__}})

/* Step tensors: memory from the arena, valid until the next hy_step_reset(), on the current device
 * (tensor/device.h); the _like forms on their model's device. */
hy_tensor *hy_empty(hy_dtype dtype, hy_shape shape);
hy_tensor *hy_empty_on(hy_device device, hy_dtype dtype, hy_shape shape);
hy_tensor *hy_zeros(hy_dtype dtype, hy_shape shape);
hy_tensor *hy_full(hy_dtype dtype, hy_shape shape, double value);
hy_tensor *hy_empty_like(const hy_tensor *t);
hy_tensor *hy_zeros_like(const hy_tensor *t);

/* Persistent tensors (parameters, optimizer moments) on the current device: released with hy_free.
 */
hy_tensor *hy_empty_persistent(hy_dtype dtype, hy_shape shape);
hy_tensor *hy_zeros_persistent(hy_dtype dtype, hy_shape shape);
hy_tensor *hy_empty_persistent_on(hy_device device, hy_dtype dtype, hy_shape shape);
hy_tensor *hy_zeros_persistent_on(hy_device device, hy_dtype dtype, hy_shape shape);
void hy_free(hy_tensor *t);

/* The bf16 copy of a persistent f32 tensor on the GPU (a weight in a mixed-precision matmul),
 * persistent too: made on first use and made again on the first use after the weights may have
 * changed (hy_weights_changed), so each weight is converted at most once per step. */
hy_tensor *hy_bf16_copy(hy_tensor *t);
/* Called by whatever may write persistent tensors: the optimizer, a step's end (hy_step_reset),
 * hy_set, hy_fill and hy_copy_into on a persistent tensor, moving parameters. */
void hy_weights_changed(void);

/* Facts about a tensor. Negative axes count from the end. */
int64_t hy_numel(const hy_tensor *t);
size_t hy_dtype_size(hy_dtype dtype);
const char *hy_dtype_name(hy_dtype dtype);
bool hy_is_contiguous(const hy_tensor *t);
bool hy_same_shape(const hy_tensor *a, const hy_tensor *b);
hy_shape hy_shape_of(const hy_tensor *t);
int hy_axis(const hy_tensor *t, int axis, const char *op);
int64_t hy_size(const hy_tensor *t, int axis);

/* Element access by logical row-major index (slow, a copy per element on a GPU; for tests,
 * gradcheck and small setup). */
double hy_get(const hy_tensor *t, int64_t index);
void hy_set(hy_tensor *t, int64_t index, double value);
double hy_item(const hy_tensor *t); /* the one element of a one-element tensor */
void hy_fill(hy_tensor *t, double value);
void hy_copy_into(hy_tensor *dst,
                  const hy_tensor *src); /* no tape; shapes must match; any devices */

/* Broken internal invariants: print "hyla: <op>: <message>" and abort. */
HY_NORETURN void hy_die(const char *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A last word before hy_die aborts: called once with "<op>: <message>" (a sweep writes it to the
 * run's error.txt, so that a run the abort ended shows as failed, and why). NULL removes it. */
void hy_on_die(void (*hook)(const char *message));
/* "[2, 3, 4] f32" into one of a few rotating static buffers, for error messages. */
const char *hy_describe(const hy_tensor *t);

/* A copy's extents and the two operands' strides (dst's, src's; one shape) right-aligned in
 * HY_MAX_DIMS dimensions, extent 1 and stride 0 before: the walk every strided copy makes. */
typedef struct {
  int64_t shape[HY_MAX_DIMS], sd[HY_MAX_DIMS], ss[HY_MAX_DIMS];
} hy_copy_dims;

static inline hy_copy_dims hy_copy_dims_of(const hy_tensor *dst, const hy_tensor *src) {
  hy_copy_dims c;
  int pad = HY_MAX_DIMS - src->ndim;
  for (int i = 0; i < HY_MAX_DIMS; i++) {
    int j = i - pad;
    c.shape[i] = j < 0 ? 1 : src->shape[j];
    c.sd[i] = j < 0 ? 0 : dst->stride[j];
    c.ss[i] = j < 0 ? 0 : src->stride[j];
  }
  return c;
}

/* Abort unless the tensors have the given dtype / identical shapes. */
void hy_check_dtype(const char *op, const hy_tensor *t, hy_dtype dtype);
void hy_check_same_dtype(const char *op, const hy_tensor *a, const hy_tensor *b);
void hy_check_same_shape(const char *op, const hy_tensor *a, const hy_tensor *b);
void hy_check_float(const char *op, const hy_tensor *t); /* f32, f64 or bf16 */

#ifdef __cplusplus
}
#endif

#endif
