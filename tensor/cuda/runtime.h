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
/* A second stream, for collectives that overlap hyla's stream's work (dist/dist.h's
 * hy_allgather_start): hy_cuda_side_after_main makes it wait for the work queued on hyla's stream
 * so far, hy_cuda_main_after_side makes hyla's stream wait for the work queued on it so far, each
 * through `event` (hy_cuda_event_new), which may be reused once the wait is queued. Inside a CUDA
 * graph's capture the pair forks the side stream off and joins it back. */
cudaStream_t hy_cuda_side_stream(void);
void hy_cuda_side_after_main(void *event);
void hy_cuda_main_after_side(void *event);
/* A training step as a CUDA graph (tensor/cuda/graph.cu): what hyla's stream is given between
 * begin and end is captured, not run; each launch replays it. */
typedef struct hy_cuda_graph hy_cuda_graph;
void hy_cuda_graph_begin(void);
hy_cuda_graph *hy_cuda_graph_end(void);
bool hy_cuda_capturing(void); /* between begin and end */
void hy_cuda_graph_launch(hy_cuda_graph *g);
void hy_cuda_graph_free(hy_cuda_graph *g);

/* Events on hyla's stream, for tensor/profile.c: a new one, its recording, and the seconds
 * between two recorded ones (after a synchronization). */
void *hy_cuda_event_new(void);
void hy_cuda_event_record(void *event);
double hy_cuda_event_seconds(void *start, void *end);
size_t hy_cuda_memory_in_use(void); /* bytes of this GPU in use by every process (cudaMemGetInfo) */
const char *hy_cuda_device_description(void); /* "NVIDIA H200, 132 SMs, sm_90" */

#ifdef __cplusplus
}
#endif

#endif
