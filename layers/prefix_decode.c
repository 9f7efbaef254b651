#include "layers/prefix_decode.h"
#include "tensor/ops.h"

hy_tensor *hy_prefix_decode_step(void *self, void *state, hy_tensor *x, int64_t pos,
                                 hy_forward_fn forward) {
  hy_tensor *inputs = state; /* persistent [B, max_len, d] */
  if (pos >= inputs->shape[1])
    hy_die("decode", "position %lld past the %lld tokens decoding was set up for", (long long)pos,
           (long long)inputs->shape[1]);
  hy_copy_into(hy_slice(inputs, 1, pos, pos + 1), x);
  hy_tensor *y = forward(self, hy_contiguous(hy_slice(inputs, 1, 0, pos + 1)));
  return hy_contiguous(hy_slice(y, 1, pos, pos + 1));
}

void *hy_prefix_decode_new(void *self, int64_t batch, int64_t max_len, int64_t d, hy_dtype dtype) {
  (void)self;
  return hy_zeros_persistent(dtype, HY_SHAPE(batch, max_len, d));
}

void hy_prefix_decode_free(void *state) { hy_free(state); }
