#include "tensor/op.h"

#include "tensor/device.h"

/* What the backward needs, beside the inputs: each row's log-sum-exp and the count of targets
 * that are not ignored, both where the kernels wrote them (device memory for GPU tensors). */
typedef struct {
  void *lse;
  int64_t *count;
} ce_saved;

typedef struct {
  int ignore_index;
} cross_entropy_args;

static void cross_entropy_backward(hy_node *n) {
  const cross_entropy_args *a = HY_NODE_ARGS(n, cross_entropy_args);
  hy_tensor *logits = n->in[0], *targets = n->in[1];
  const ce_saved *s = n->saved;
  /* On the CPU the count is at hand: with nothing counted there is no gradient to add. (The GPU
   * does not read it back: its kernel writes zeros, or nothing into a gradient that adds.) */
  if (logits->device == HY_CPU && *s->count == 0) return;
  int64_t V = logits->shape[logits->ndim - 1];
  bool accumulate;
  hy_tensor *g = hy_grad_acc(logits, &accumulate);
  /* The loss's gradient is read where it is, by the kernel: no copy to the host. */
  HY_KERNEL_BF16(logits, cross_entropy_backward, hy_numel(logits) / V, V, logits->data,
                 targets->data, a->ignore_index, s->lse, s->count, n->out->grad->data, accumulate,
                 g->data);
}

void hy_check_targets(const char *op, const hy_tensor *targets, int64_t V, int ignore_index) {
  hy_check_dtype(op, targets, HY_I32);
  if (targets->device != HY_CPU)
    hy_die(op, "internal: targets %s are checked on the host", hy_describe(targets));
  int64_t n = hy_numel(targets), idx[HY_MAX_DIMS] = {0};
  for (int64_t i = 0; i < n; i++) {
    /* idx: the logical index of element i, stepped in row-major order (any strides) */
    int64_t off = 0;
    for (int a = 0; a < targets->ndim; a++) off += idx[a] * targets->stride[a];
    int32_t t = ((const int32_t *)targets->data)[off];
    if (t != ignore_index && (t < 0 || t >= V))
      hy_die(op, "target %d at position %lld is outside [0, %lld)", t, (long long)i, (long long)V);
    for (int a = targets->ndim - 1; a >= 0 && ++idx[a] == targets->shape[a]; a--) idx[a] = 0;
  }
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
  /* Host targets are checked here; GPU targets are not read back (hy_model_loss checks a batch's
   * before it moves them), and a bad one makes the loss NaN. */
  if (targets->device == HY_CPU) hy_check_targets(op, targets, V, ignore_index);
  /* The loss, its log-sum-exps and its gradient are f32 for bf16 logits. */
  hy_device dev = logits->device;
  hy_tensor *loss =
      hy_empty_on(dev, logits->dtype == HY_BF16 ? HY_F32 : logits->dtype, HY_SHAPE(1));
  size_t real_size = hy_dtype_size(loss->dtype);
  ce_saved *s = hy_arena_alloc(sizeof *s);
  s->lse = hy_saved_like(logits, (size_t)rows * real_size);
  s->count = hy_arena_alloc_on(dev, sizeof *s->count);
  double *row_loss = hy_arena_alloc_on(dev, (size_t)rows * sizeof *row_loss);
  HY_KERNEL(loss, cross_entropy_count, rows, targets->data, ignore_index, s->count);
  HY_KERNEL_BF16(logits, cross_entropy_rows, rows, V, logits->data, targets->data, ignore_index,
                 s->lse, row_loss, NULL);
  HY_KERNEL(loss, cross_entropy_total, rows, row_loss, s->count, loss->data);
  hy_node *n = hy_record(op, cross_entropy_backward, loss, 2, (hy_tensor *[]){logits, targets});
  if (n) {
    HY_NODE_ARGS(n, cross_entropy_args)->ignore_index = ignore_index;
    n->saved = s;
  }
  return loss;
}
