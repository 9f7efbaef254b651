/* hyla's CUDA runtime, callable from C (tensor/cuda/runtime.cu): the GPU, its memory and the
 * cuBLAS handle. Every call checks its CUDA status and dies naming the call and the error. */
#ifndef HYLA_CUDA_RUNTIME_H
#define HYLA_CUDA_RUNTIME_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int hy_cuda_device_count(void); /* 0 when no GPU or no driver */
/* The GPU this process uses from now on (0 <= index < count); before its first allocation. */
void hy_cuda_select(int index);
void *hy_cuda_malloc(size_t bytes);
void hy_cuda_free(void *p);
void hy_cuda_memset(void *p, int byte, size_t bytes);
void hy_cuda_memcpy(void *dst, bool dst_on_gpu, const void *src, bool src_on_gpu, size_t bytes);
void hy_cuda_synchronize(void);
/* hyla's one stream: every kernel, copy, cuBLAS and NCCL call goes there, in order (a blocking
 * stream, so a plain cudaMemcpy still waits for it; a CUDA graph can capture it). */
cudaStream_t hy_cuda_stream(void);
/* hyla's stream is being captured into a CUDA graph: work is recorded, not run, and nothing may
 * allocate or wait for the GPU. */
bool hy_cuda_capturing(void);
size_t hy_cuda_memory_in_use(void); /* bytes of this GPU in use by every process (cudaMemGetInfo) */
const char *hy_cuda_device_description(void); /* "NVIDIA H200, 132 SMs, sm_90" */

#ifdef __cplusplus
}
#endif

#endif
