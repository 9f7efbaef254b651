#include "tensor/op.h"

static void embedding_backward(hy_node *n) {
  hy_tensor *w = n->in[0], *idx = n->in[1];
  HY_KERNEL(w, embedding_backward, hy_numel(idx), w->shape[0], w->shape[1], idx->data,
            n->out->grad->data, hy_grad(w)->data);
}

hy_tensor *hy_embedding(hy_tensor *weight, hy_tensor *indices) {
  const char *op = "embedding";
  hy_check_input_any(op, weight);
  hy_check_dtype(op, indices, HY_I32);
  hy_check_same_device(op, weight, indices);
  if (weight->ndim != 2) hy_die(op, "weight must be [V, d], got %s", hy_describe(weight));
  if (weight->dtype == HY_BF16) /* no bf16 kernels: the rows gathered in f32 */
    return hy_cast(hy_embedding(hy_as_f32(weight), indices), HY_BF16);
  if (indices->ndim > HY_MAX_DIMS - 1)
    hy_die(op, "indices %s have too many dims for an output with one more", hy_describe(indices));
  weight = hy_contiguous(weight);
  indices = hy_contiguous(indices);
  int64_t n = hy_numel(indices), V = weight->shape[0], d = weight->shape[1];
  const int32_t *idx = indices->data;
  /* On the GPU the indices are not read back to be checked: an index outside [0, V) gives a NaN
   * row (tensor/cuda/embedding.cu). */
  if (indices->device == HY_CPU)
    for (int64_t i = 0; i < n; i++)
      if (idx[i] < 0 || idx[i] >= V)
        hy_die(op, "index %d at position %lld is outside [0, %lld) of weight %s", idx[i],
               (long long)i, (long long)V, hy_describe(weight));
  hy_shape s = hy_shape_of(indices);
  s.d[s.ndim++] = d;
  hy_tensor *y = hy_empty_on(weight->device, weight->dtype, s);
  HY_KERNEL(weight, embedding, n, V, d, idx, weight->data, y->data);
  hy_record(op, embedding_backward, y, 2, (hy_tensor *[]){weight, indices});
  return y;
}
