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

/* How GPU matmuls of f32 tensors compute: exactly in f32 (the default), or with their inputs
 * rounded to bf16 on the tensor cores and the products summed in f32 (mixed-precision training:
 * weights, activations and gradients stay f32 in memory). CPU matmuls are always exact. */
typedef enum { HY_MATMUL_F32, HY_MATMUL_BF16 } hy_matmul_precision;
void hy_set_matmul_precision(hy_matmul_precision precision);
hy_matmul_precision hy_get_matmul_precision(void);

void *hy_device_malloc(hy_device device, size_t bytes); /* 64-byte aligned; dies when out */
void hy_device_free(hy_device device, void *p);
void hy_device_memset(hy_device device, void *p, int byte, size_t bytes);
void hy_device_memset0(hy_device device, void *p, size_t bytes);
void hy_device_copy(hy_device dst_device, void *dst, hy_device src_device, const void *src,
                    size_t bytes);

#endif
