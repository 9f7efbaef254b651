/* Where tensor memory lives and how bytes move between the host and the GPU. New tensors go to
 * the current device (hy_set_device); hy_empty_like and the ops keep their inputs' device. In a
 * build without HYLA_CUDA every GPU request dies with a message that says so. */
#ifndef HYLA_DEVICE_H
#define HYLA_DEVICE_H

#include "tensor/tensor.h"

#include <stdbool.h>
#include <stddef.h>

bool hy_cuda_built(void);     /* this build has the CUDA backend */
bool hy_cuda_available(void); /* ...and a GPU it can use */
int hy_gpu_count(void);       /* the GPUs this process sees (0 without CUDA) */
const char *hy_device_name(hy_device device);

void hy_set_device(hy_device device); /* dies when asked for a GPU that is not there */
hy_device hy_current_device(void);
/* Which of the visible GPUs this process uses (one per rank under mpirun): index modulo their
 * number. Call before the first GPU allocation. */
void hy_select_gpu(int index);

/* Mixed precision (train.precision = "bf16"): a model on the GPU keeps its activations and their
 * gradients in bf16 (the dtype hy_activation_dtype names), so that its matmuls and attention run on
 * the tensor cores and every activation takes half the memory; parameters, their gradients, the
 * optimizer's state, the residual stream, the loss and the norms' statistics stay f32.
 * HY_PRECISION_F32 (the start) computes everything in f32, as the CPU always does. */
typedef enum { HY_PRECISION_F32, HY_PRECISION_BF16 } hy_precision;
void hy_set_precision(hy_precision precision);
hy_precision hy_get_precision(void);
/* The dtype of the activations a layer makes from x: bf16 for an f32 tensor on the GPU under
 * HY_PRECISION_BF16, x's own dtype otherwise. */
hy_dtype hy_activation_dtype(const hy_tensor *x);

void *hy_device_malloc(hy_device device, size_t bytes); /* 64-byte aligned; dies when out */
void hy_device_free(hy_device device, void *p);
void hy_device_memset(hy_device device, void *p, int byte, size_t bytes);
void hy_device_memset0(hy_device device, void *p, size_t bytes);
void hy_device_copy(hy_device dst_device, void *dst, hy_device src_device, const void *src,
                    size_t bytes);

#endif
