#include "tensor/device.h"

#include <stdlib.h>
#include <string.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

static hy_device current = HY_CPU;

bool hy_cuda_built(void) {
#ifdef HYLA_CUDA
  return true;
#else
  return false;
#endif
}

int hy_gpu_count(void) {
#ifdef HYLA_CUDA
  return hy_cuda_device_count();
#else
  return 0;
#endif
}

bool hy_cuda_available(void) { return hy_gpu_count() > 0; }

const char *hy_device_name(hy_device device) { return device == HY_CPU ? "cpu" : "cuda"; }

/* The one place a GPU request meets a build or machine without one. */
static void need_cuda(const char *what) {
  if (!hy_cuda_built())
    hy_die(what, "this hyla was built without CUDA (configure with -DHYLA_CUDA=ON)");
  if (!hy_cuda_available()) hy_die(what, "no CUDA GPU is visible to this process");
}

void hy_set_device(hy_device device) {
  if (device == HY_CUDA) need_cuda("set_device");
  current = device;
}

hy_device hy_current_device(void) { return current; }

void hy_select_gpu(int index) {
  need_cuda("select_gpu");
#ifdef HYLA_CUDA
  hy_cuda_select(index % hy_gpu_count());
#else
  (void)index;
#endif
}

static hy_precision precision = HY_PRECISION_F32;

void hy_set_precision(hy_precision p) { precision = p; }

hy_precision hy_get_precision(void) { return precision; }

hy_dtype hy_activation_dtype(const hy_tensor *x) {
  bool mixed = precision == HY_PRECISION_BF16 && x->device == HY_CUDA && x->dtype == HY_F32;
  return mixed ? HY_BF16 : x->dtype;
}

void *hy_device_malloc(hy_device device, size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (device == HY_CPU) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
      hy_die("tensor", "out of memory asking for %zu bytes", bytes);
    return p;
  }
  need_cuda("device_malloc");
#ifdef HYLA_CUDA
  return hy_cuda_malloc(bytes);
#else
  return NULL; /* not reached: need_cuda died */
#endif
}

void hy_device_free(hy_device device, void *p) {
  if (device == HY_CPU) {
    free(p);
    return;
  }
#ifdef HYLA_CUDA
  hy_cuda_free(p);
#endif
}

void hy_device_memset(hy_device device, void *p, int byte, size_t bytes) {
  if (device == HY_CPU) {
    memset(p, byte, bytes);
    return;
  }
  need_cuda("memset");
#ifdef HYLA_CUDA
  hy_cuda_memset(p, byte, bytes);
#endif
}

void hy_device_memset0(hy_device device, void *p, size_t bytes) {
  hy_device_memset(device, p, 0, bytes);
}

void hy_device_copy(hy_device dst_device, void *dst, hy_device src_device, const void *src,
                    size_t bytes) {
  if (dst_device == HY_CPU && src_device == HY_CPU) {
    memmove(dst, src, bytes);
    return;
  }
  need_cuda("copy");
#ifdef HYLA_CUDA
  hy_cuda_memcpy(dst, dst_device == HY_CUDA, src, src_device == HY_CUDA, bytes);
#endif
}
