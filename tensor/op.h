/* What every op file needs: the tape, the CPU kernels and the checks. Private to tensor/. */
#ifndef HYLA_OP_H
#define HYLA_OP_H

#include "autograd/tape.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

/* The device seam: CUDA kernels plug in beside the CPU ones (tensor/cuda/). */
static inline void hy_check_cpu(const char *op, const hy_tensor *t) {
  if (t->device != HY_CPU)
    hy_die(op, "%s is on a device this build has no kernels for", hy_describe(t));
}

/* Checks shared by the float ops: a CPU float tensor. */
static inline void hy_check_input(const char *op, const hy_tensor *t) {
  if (!t) hy_die(op, "input is NULL");
  hy_check_cpu(op, t);
  hy_check_float(op, t);
}

#endif
