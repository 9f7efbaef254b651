#include "dist/collective_ops.h"
#include "autograd/tape.h"
#include "tensor/ops.h"

static void allgather_backward(hy_node *n) {
  hy_tensor *x = n->in[0];
  hy_group *g = n->saved;
  hy_tensor *part = hy_empty_like(x);
  hy_reduce_scatter_sum(g, x->device, hy_contiguous(n->out->grad)->data, part->data, hy_numel(x),
                        x->dtype);
  hy_tensor *gx = hy_grad(x);
  hy_copy_into(gx, hy_add(gx, part));
}

hy_tensor *hy_dist_allgather(hy_group *g, hy_tensor *x) {
  const char *op = "allgather";
  if (x->ndim > HY_MAX_DIMS - 1) hy_die(op, "%s has too many dims to stack", hy_describe(x));
  x = hy_contiguous(x);
  hy_shape s = hy_shape_of(x);
  for (int i = s.ndim; i > 0; i--) s.d[i] = s.d[i - 1];
  s.d[0] = hy_group_size(g);
  s.ndim++;
  hy_tensor *y = hy_empty_on(x->device, x->dtype, s);
  hy_allgather(g, x->device, x->data, y->data, hy_numel(x), x->dtype);
  hy_node *n = hy_record(op, allgather_backward, y, 1, &x);
  if (n) n->saved = g;
  return y;
}

static hy_sequence current = {NULL, 0};

void hy_sequence_set(hy_group *group, int64_t offset) { current = (hy_sequence){group, offset}; }

const hy_sequence *hy_sequence_get(void) { return &current; }

bool hy_sequence_parallel(void) { return hy_group_size(current.group) > 1; }
