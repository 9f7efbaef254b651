#include "tensor/cuda/common.cuh"

extern "C" {
#include "tensor/cuda/runtime.h"
}

#include <stdio.h>
#include <stdlib.h>

static cudaStream_t stream; /* hy_cuda_stream */

extern "C" int hy_cuda_device_count(void) {
  static int count = -1;
  if (count < 0) {
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      count = 0;
      (void)cudaGetLastError(); /* no driver or no GPU: not an error for the caller */
    }
  }
  return count;
}

extern "C" void hy_cuda_select(int index) {
  int count = hy_cuda_device_count();
  if (index < 0 || index >= count)
    hy_die("cuda", "GPU %d asked for, but %d are visible", index, count);
  HY_CUDA_CHECK(cudaSetDevice(index));
}

/* What a CUDA graph cannot hold: named, rather than the runtime's bare error code. */
static void not_while_capturing(const char *what) {
  if (stream && hy_cuda_capturing())
    hy_die("cuda graph",
           "%s inside a captured training step: such a step cannot be a CUDA graph "
           "(train.cuda_graph = false runs it without one)",
           what);
}

extern "C" void *hy_cuda_malloc(size_t bytes) {
  not_while_capturing("a GPU allocation");
  void *p = NULL;
  cudaError_t status = cudaMalloc(&p, bytes ? bytes : 64);
  if (status != cudaSuccess)
    hy_die("cuda", "out of GPU memory asking for %zu bytes: %s", bytes, cudaGetErrorString(status));
  return p;
}

extern "C" void hy_cuda_free(void *p) {
  if (!p) return;
  cudaError_t status = cudaFree(p);
  /* At exit the runtime may be torn down before the arena lets go: its memory is gone anyway. */
  if (status == cudaErrorCudartUnloading) return;
  HY_CUDA_CHECK(status);
}

static cudaStream_t side; /* hy_cuda_side_stream */

static void destroy_stream(void) {
  if (stream) (void)cudaStreamDestroy(stream);
  if (side) (void)cudaStreamDestroy(side);
  stream = side = NULL;
}

/* A blocking stream: the legacy default stream (a plain cudaMemcpy, say) still waits for its
 * work, while a CUDA graph can capture it. */
extern "C" cudaStream_t hy_cuda_stream(void) {
  if (!stream) {
    HY_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamDefault));
    atexit(destroy_stream);
  }
  return stream;
}

/* Of the highest priority, so that a collective there gets its SMs while hyla's stream computes;
 * non-blocking: it waits only for what hy_cuda_side_after_main orders. */
extern "C" cudaStream_t hy_cuda_side_stream(void) {
  if (!side) {
    int least, greatest;
    HY_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    HY_CUDA_CHECK(cudaStreamCreateWithPriority(&side, cudaStreamNonBlocking, greatest));
    hy_cuda_stream(); /* made first, so that the one atexit destroys both */
  }
  return side;
}

extern "C" void hy_cuda_side_after_main(void *event) {
  HY_CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, hy_cuda_stream()));
  HY_CUDA_CHECK(cudaStreamWaitEvent(hy_cuda_side_stream(), (cudaEvent_t)event, 0));
}

extern "C" void hy_cuda_main_after_side(void *event) {
  HY_CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, hy_cuda_side_stream()));
  HY_CUDA_CHECK(cudaStreamWaitEvent(hy_cuda_stream(), (cudaEvent_t)event, 0));
}

extern "C" bool hy_cuda_capturing(void) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  HY_CUDA_CHECK(cudaStreamIsCapturing(hy_cuda_stream(), &status));
  return status != cudaStreamCaptureStatusNone;
}

extern "C" void hy_cuda_memset(void *p, int byte, size_t bytes) {
  if (bytes) HY_CUDA_CHECK(cudaMemsetAsync(p, byte, bytes, hy_cuda_stream()));
}

extern "C" void hy_cuda_memcpy(void *dst, bool dst_on_gpu, const void *src, bool src_on_gpu,
                               size_t bytes) {
  if (!bytes) return;
  if (!dst_on_gpu || !src_on_gpu) not_while_capturing("a copy between the host and the GPU");
  cudaMemcpyKind kind = dst_on_gpu
                            ? (src_on_gpu ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                            : (src_on_gpu ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  /* In order with the kernels. A copy from pageable host memory is staged before the call
   * returns, so the caller may reuse its buffer; a copy to the host waits for the data, which
   * the caller reads next. */
  HY_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, hy_cuda_stream()));
  if (!dst_on_gpu) HY_CUDA_CHECK(cudaStreamSynchronize(hy_cuda_stream()));
}

extern "C" void hy_cuda_synchronize(void) { HY_CUDA_CHECK(cudaDeviceSynchronize()); }

extern "C" size_t hy_cuda_memory_in_use(void) {
  size_t free_bytes = 0, total = 0;
  HY_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return total - free_bytes;
}

extern "C" const char *hy_cuda_device_description(void) {
  static char text[320];
  int device = 0;
  cudaDeviceProp prop;
  HY_CUDA_CHECK(cudaGetDevice(&device));
  HY_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  snprintf(text, sizeof text, "%s, %d SMs, sm_%d%d, %.0f GiB", prop.name, prop.multiProcessorCount,
           prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30));
  return text;
}

static cublasHandle_t handle;

static void destroy_handle(void) {
  if (handle) cublasDestroy(handle);
  handle = NULL;
}

cublasHandle_t hy_cublas(void) {
  if (!handle) {
    HY_CUBLAS_CHECK(cublasCreate(&handle));
    HY_CUBLAS_CHECK(cublasSetStream(handle, hy_cuda_stream()));
    /* f32 GEMMs stay exact f32 (no TF32): the GPU must match the CPU path to 1e-5. */
    HY_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    atexit(destroy_handle);
  }
  return handle;
}

extern "C" void *hy_cuda_event_new(void) {
  cudaEvent_t e;
  HY_CUDA_CHECK(cudaEventCreate(&e));
  return (void *)e;
}

extern "C" void hy_cuda_event_record(void *event) {
  HY_CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, hy_cuda_stream()));
}

extern "C" double hy_cuda_event_seconds(void *start, void *end) {
  float ms = 0;
  HY_CUDA_CHECK(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)end));
  return 1e-3 * ms;
}
