/* What every op file needs: the tape, the kernels and the checks. Private to tensor/. */
#ifndef HYLA_OP_H
#define HYLA_OP_H

#include "autograd/tape.h"
#include "tensor/arena.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

/* The device seam. An op with CUDA kernels checks its inputs with hy_check_input_any and runs
 * HY_KERNEL(t, kernel, args...): the CUDA twin (tensor/cuda/kernels.h) for a tensor on the GPU,
 * the CPU kernel of t's dtype otherwise. HY_KERNEL_BF16 also takes bf16 tensors on the GPU, to the
 * kernel's _bf16 twin; an op without one computes a bf16 input in f32 (hy_as_f32) and casts its
 * result back, and HY_KERNEL stops at a bf16 tensor that reaches it. Ops without CUDA kernels
 * check with hy_check_input, which refuses GPU tensors by name. */
#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"
#define HY_KERNEL(t, kernel, ...)                                                                  \
  ((t)->device == HY_CUDA ? (hy_check_not_bf16(#kernel, t), cuda_##kernel##_f32(__VA_ARGS__))      \
                          : HY_CPU((t)->dtype, cpu_##kernel, __VA_ARGS__))
#define HY_KERNEL_BF16(t, kernel, ...)                                                             \
  ((t)->device == HY_CUDA ? ((t)->dtype == HY_BF16 ? cuda_##kernel##_bf16(__VA_ARGS__)             \
                                                   : cuda_##kernel##_f32(__VA_ARGS__))             \
                          : HY_CPU((t)->dtype, cpu_##kernel, __VA_ARGS__))
#else
#define HY_KERNEL(t, kernel, ...)      HY_CPU((t)->dtype, cpu_##kernel, __VA_ARGS__)
#define HY_KERNEL_BF16(t, kernel, ...) HY_CPU((t)->dtype, cpu_##kernel, __VA_ARGS__)
#endif

static inline void hy_check_not_bf16(const char *kernel, const hy_tensor *t) {
  if (t->dtype == HY_BF16)
    hy_die(kernel, "internal: %s reached an f32-only kernel (the op must compute it in f32)",
           hy_describe(t));
}

/* x in f32 when it is bf16 (a cast on the tape), else x itself (NULL stays NULL). */
static inline hy_tensor *hy_as_f32(hy_tensor *x) {
  return x && x->dtype == HY_BF16 ? hy_cast(x, HY_F32) : x;
}

static inline void hy_check_cpu(const char *op, const hy_tensor *t) {
  if (t->device != HY_CPU)
    hy_die(op, "%s is on the GPU; this op has CPU kernels only", hy_describe(t));
}

/* Checks shared by the float ops: a CPU f32 or f64 tensor. */
static inline void hy_check_input(const char *op, const hy_tensor *t) {
  if (!t) hy_die(op, "input is NULL");
  hy_check_cpu(op, t);
  hy_check_float(op, t);
  if (t->dtype == HY_BF16)
    hy_die(op, "%s: bf16 tensors compute on the GPU only (hy_cast it to f32 on the CPU)",
           hy_describe(t));
}

/* A float tensor on either device: f32 or f64 on the CPU, f32 or bf16 on the GPU (f64 is the
 * CPU's reference precision; bf16 tensors compute on the GPU only). */
static inline void hy_check_input_any(const char *op, const hy_tensor *t) {
  if (!t) hy_die(op, "input is NULL");
  hy_check_float(op, t);
  if (t->device == HY_CUDA && t->dtype == HY_F64)
    hy_die(op, "%s: GPU kernels take f32 or bf16 (f64 stays on the CPU)", hy_describe(t));
  if (t->device == HY_CPU && t->dtype == HY_BF16)
    hy_die(op, "%s: bf16 tensors compute on the GPU only (hy_cast it to f32 on the CPU)",
           hy_describe(t));
}

static inline void hy_check_same_device(const char *op, const hy_tensor *a, const hy_tensor *b) {
  if (a->device != b->device)
    hy_die(op, "inputs on different devices: %s and %s", hy_describe(a), hy_describe(b));
}

/* q, k and v (or any three inputs) each as hy_check_input_any wants, on one device, of one dtype. */
static inline void hy_check_inputs_alike(const char *op, const hy_tensor *q, const hy_tensor *k,
                                         const hy_tensor *v) {
  hy_check_input_any(op, q);
  hy_check_input_any(op, k);
  hy_check_input_any(op, v);
  hy_check_same_device(op, q, k);
  hy_check_same_device(op, q, v);
  hy_check_same_dtype(op, q, k);
  hy_check_same_dtype(op, q, v);
}

/* dst (+)= src converted to dst's dtype (any float dtypes, one device, any strides); no tape. */
void hy_convert_into(hy_tensor *dst, const hy_tensor *src, bool accumulate);

/* hy_dense's pieces (tensor/dense.c), shared with hy_dense_cross_entropy. */
/* Checks x [..., in] and weight [out, in] for the product x W^T and brings both to the dtypes it
 * computes in, contiguous: a bf16 x keeps an f32 weight that is a persistent parameter (mixed
 * precision: hy_dense_weight reads its bf16 copy); any other f32 weight meeting a bf16 x, or f32 x
 * meeting a bf16 weight, is cast to bf16 on the tape. */
void hy_dense_operands(const char *op, hy_tensor **x, hy_tensor **weight);
/* C (+)= op(A) op(B), row-major, in the storage of the operands: bf16 A and B (into a bf16 or f32
 * C, as c_bf16 says) on the tensor cores, else the GEMM of like's dtype. */
void hy_dense_gemm(const hy_tensor *like, bool c_bf16, bool ta, bool tb, int64_t M, int64_t N,
                   int64_t K, const void *A, int64_t lda, const void *B, int64_t ldb,
                   bool accumulate, void *C, int64_t ldc);
/* The weight as the product reads it: its bf16 copy when x is bf16 and it is an f32 parameter. */
const void *hy_dense_weight(const hy_tensor *x, hy_tensor *w);

/* Scratch a kernel keeps for its backward (log-sum-exps, argmaxes), on the tensor's device. */
static inline void *hy_saved_like(const hy_tensor *t, size_t bytes) {
  return hy_arena_alloc_on(t->device, bytes);
}

#endif
