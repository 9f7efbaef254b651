/* Writing the safetensors format (Hugging Face's tensor file): an 8-byte little-endian header
 * length N, N bytes of JSON naming each tensor's dtype, shape and [begin, end) byte offsets into
 * the data that follows (the header padded with spaces to a multiple of 8 bytes, so that every
 * tensor starts 8-byte aligned), then the tensors' raw little-endian bytes. hyla writes the
 * tensors in the order of their names, and "__metadata__": {"format": "pt"}, which transformers
 * asks of a PyTorch checkpoint. */
#ifndef HYLA_SAFETENSORS_H
#define HYLA_SAFETENSORS_H

#include "tensor/tensor.h"
#include "util/error.h"

typedef enum { HY_ST_F32, HY_ST_I64 } hy_st_dtype;

typedef struct {
  const char *name; /* letters, digits, '.', '_', '-' */
  hy_st_dtype dtype;
  int ndim;
  int64_t shape[HY_MAX_DIMS];
  const void *data; /* the host's float or int64_t values, row-major */
} hy_st_tensor;

/* The file holding the n tensors, written whole (hy_write_bytes_atomic: a crash leaves the old
 * file or the new one); replace false: an existing path is an error. -1 with err naming the path
 * or the tensor on failure (a name used twice, a name the format's JSON would need escaped). */
int hy_safetensors_write(const char *path, const hy_st_tensor *ts, int n, bool replace,
                         hy_error *err);

#endif
