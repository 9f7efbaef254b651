#include "tensor/op.h"

static void cross_entropy_backward(hy_node *n) {
  hy_tensor *logits = n->in[0], *targets = n->in[1];
  int64_t count = n->iarg[1];
  if (count == 0) return;
  int64_t V = logits->shape[logits->ndim - 1];
  double scale = hy_get(n->out->grad, 0) / (double)count;
  HY_CPU(logits->dtype, cpu_cross_entropy_backward, hy_numel(logits) / V, V, logits->data,
         targets->data, (int)n->iarg[0], n->saved, scale, hy_grad(logits)->data);
}

hy_tensor *hy_cross_entropy(hy_tensor *logits, hy_tensor *targets, int ignore_index) {
  const char *op = "cross_entropy";
  hy_check_input(op, logits);
  hy_check_cpu(op, targets);
  hy_check_dtype(op, targets, HY_I32);
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
  for (int64_t r = 0; r < rows; r++)
    if (t[r] != ignore_index && (t[r] < 0 || t[r] >= V))
      hy_die(op, "target %d at position %lld is outside [0, %lld)", t[r], (long long)r,
             (long long)V);
  void *lse = hy_arena_alloc((size_t)rows * hy_dtype_size(logits->dtype));
  int64_t count = 0;
  double total =
      HY_CPU(logits->dtype, cpu_cross_entropy, rows, V, logits->data, t, ignore_index, lse, &count);
  hy_tensor *loss = hy_full(logits->dtype, HY_SHAPE(1), count ? total / (double)count : 0.0);
  hy_node *n = hy_record(op, cross_entropy_backward, loss, 2, (hy_tensor *[]){logits, targets});
  if (n) {
    n->iarg[0] = ignore_index;
    n->iarg[1] = count;
    n->saved = lse;
  }
  return loss;
}
