#include "tensor/op.h"

#include "tensor/device.h"

#include <math.h>

static void cross_entropy_backward(hy_node *n) {
  hy_tensor *logits = n->in[0], *targets = n->in[1];
  int64_t count = n->iarg[1];
  if (count == 0) return;
  int64_t V = logits->shape[logits->ndim - 1];
  /* The loss gradient is one number; on the GPU reading it is a 4-byte copy and a wait, once per
   * backward (the kernels take the scale as a host double). */
  double scale = hy_get(n->out->grad, 0) / (double)count;
  HY_KERNEL(logits, cross_entropy_backward, hy_numel(logits) / V, V, logits->data, targets->data,
            (int)n->iarg[0], n->saved, scale, hy_grad(logits)->data);
}

/* Dies naming the first target outside [0, V) that is not ignore_index; t is host memory. */
static void check_targets(const char *op, const int32_t *t, int64_t rows, int64_t V,
                          int ignore_index) {
  for (int64_t r = 0; r < rows; r++)
    if (t[r] != ignore_index && (t[r] < 0 || t[r] >= V))
      hy_die(op, "target %d at position %lld is outside [0, %lld)", t[r], (long long)r,
             (long long)V);
}

hy_tensor *hy_cross_entropy(hy_tensor *logits, hy_tensor *targets, int ignore_index) {
  const char *op = "cross_entropy";
  hy_check_input_any(op, logits);
  hy_check_dtype(op, targets, HY_I32);
  hy_check_same_device(op, logits, targets);
  bool match = logits->ndim == targets->ndim + 1;
  for (int i = 0; match && i < targets->ndim; i++) match = logits->shape[i] == targets->shape[i];
  if (!match)
    hy_die(op, "logits %s need targets of their leading shape, got %s", hy_describe(logits),
           hy_describe(targets));
  logits = hy_contiguous(logits);
  targets = hy_contiguous(targets);
  int64_t V = logits->shape[logits->ndim - 1], rows = hy_numel(targets);
  if (V == 0) hy_die(op, "empty vocabulary in %s", hy_describe(logits));
  const int32_t *t = targets->data;
  if (targets->device == HY_CPU) check_targets(op, t, rows, V, ignore_index);
  void *lse = hy_saved_like(logits, (size_t)rows * hy_dtype_size(logits->dtype));
  int64_t count = 0;
  double total =
      HY_KERNEL(logits, cross_entropy, rows, V, logits->data, t, ignore_index, lse, &count);
  /* On the GPU the targets are checked only when the loss is NaN, which a bad target makes it
   * (tensor/cuda/cross_entropy.cu): then they are copied back to say which one is bad. A NaN that
   * comes from the logits passes on as the loss. */
  if (targets->device != HY_CPU && isnan(total)) {
    int32_t *host = hy_arena_alloc((size_t)rows * sizeof *host);
    hy_device_copy(HY_CPU, host, targets->device, t, (size_t)rows * sizeof *host);
    check_targets(op, host, rows, V, ignore_index);
  }
  hy_tensor *loss = hy_empty_on(logits->device, logits->dtype, HY_SHAPE(1));
  hy_fill(loss, count ? total / (double)count : 0.0);
  hy_node *n = hy_record(op, cross_entropy_backward, loss, 2, (hy_tensor *[]){logits, targets});
  if (n) {
    n->iarg[0] = ignore_index;
    n->iarg[1] = count;
    n->saved = lse;
  }
  return loss;
}
