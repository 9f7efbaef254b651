/* What every op file needs: the tape, the kernels and the checks. Private to tensor/. */
#ifndef HYLA_OP_H
#define HYLA_OP_H

#include "autograd/tape.h"
#include "tensor/arena.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

/* The device seam. An op with CUDA kernels checks its inputs with hy_check_input_any and runs
 * HY_KERNEL(t, kernel, args...): the CUDA twin (tensor/cuda/kernels.h) for a tensor on the GPU,
 * the CPU kernel of t's dtype otherwise. Ops without CUDA kernels check with hy_check_input,
 * which refuses GPU tensors by name. */
#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"
#define HY_KERNEL(t, kernel, ...)                                                                  \
  ((t)->device == HY_CUDA ? cuda_##kernel##_f32(__VA_ARGS__)                                       \
                          : HY_CPU((t)->dtype, cpu_##kernel, __VA_ARGS__))
#else
#define HY_KERNEL(t, kernel, ...) HY_CPU((t)->dtype, cpu_##kernel, __VA_ARGS__)
#endif

static inline void hy_check_cpu(const char *op, const hy_tensor *t) {
  if (t->device != HY_CPU)
    hy_die(op, "%s is on the GPU; this op has CPU kernels only", hy_describe(t));
}

/* Checks shared by the float ops: a CPU float tensor. */
static inline void hy_check_input(const char *op, const hy_tensor *t) {
  if (!t) hy_die(op, "input is NULL");
  hy_check_cpu(op, t);
  hy_check_float(op, t);
}

/* A float tensor on either device; on the GPU, f32 (f64 is the CPU's reference precision). */
static inline void hy_check_input_any(const char *op, const hy_tensor *t) {
  if (!t) hy_die(op, "input is NULL");
  hy_check_float(op, t);
  if (t->device == HY_CUDA && t->dtype != HY_F32)
    hy_die(op, "%s: GPU kernels take f32 (f64 stays on the CPU)", hy_describe(t));
}

static inline void hy_check_same_device(const char *op, const hy_tensor *a, const hy_tensor *b) {
  if (a->device != b->device)
    hy_die(op, "inputs on different devices: %s and %s", hy_describe(a), hy_describe(b));
}

/* Scratch a kernel keeps for its backward (log-sum-exps, argmaxes), on the tensor's device. */
static inline void *hy_saved_like(const hy_tensor *t, size_t bytes) {
  return hy_arena_alloc_on(t->device, bytes);
}

#endif
