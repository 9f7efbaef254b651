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

/* in: x, after; out: after's view. */
static void send_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *after = n->in[1], *gy = n->out->grad;
  if (gy && after->requires_grad) { /* the view's gradient is after's */
    if (!after->grad && !after->persistent && !n->out->retain_grad) {
      after->grad = gy;
      n->out->grad = NULL; /* now after's: not handed back with the view's spent gradient */
    } else {
      hy_tensor *ga = hy_grad(after);
      hy_copy_into(ga, hy_add(ga, gy));
    }
  }
  hy_tensor *gx = hy_empty_like(x); /* always received: the receiver sends it either way */
  hy_recv(n->saved, x->device, gx->data, hy_numel(x), x->dtype, (int)n->iarg[0]);
  if (x->requires_grad) {
    hy_tensor *acc = hy_grad(x);
    hy_copy_into(acc, hy_add(acc, gx));
  }
}

hy_tensor *hy_dist_send(hy_group *g, int to, hy_tensor *x, hy_tensor *after) {
  x = hy_contiguous(x);
  hy_send(g, x->device, x->data, hy_numel(x), x->dtype, to);
  hy_tensor *y = hy_arena_alloc(sizeof *y); /* a view of after */
  *y = *after;
  y->persistent = y->requires_grad = y->retain_grad = false;
  y->grad = NULL;
  y->node = NULL;
  y->bf16_copy = NULL;
  hy_node *n = hy_record_always("send", send_backward, y, 2, (hy_tensor *[]){x, after});
  if (n) {
    n->saved = g;
    n->iarg[0] = to;
  }
  return n ? y : after;
}

static void recv_backward(hy_node *n) {
  hy_tensor *gy = hy_contiguous(hy_grad(n->out));
  hy_send(n->saved, gy->device, gy->data, hy_numel(gy), gy->dtype, (int)n->iarg[0]);
}

hy_tensor *hy_dist_recv(hy_group *g, int from, hy_device device, hy_dtype dtype, hy_shape shape) {
  hy_tensor *y = hy_empty_on(device, dtype, shape);
  hy_recv(g, device, y->data, hy_numel(y), dtype, from);
  hy_node *n = hy_record_always("recv", recv_backward, y, 0, NULL);
  if (n) {
    n->saved = g;
    n->iarg[0] = from;
  }
  return y;
}

static hy_sequence current = {NULL, 0};

void hy_sequence_set(hy_group *group, int64_t offset) { current = (hy_sequence){group, offset}; }

const hy_sequence *hy_sequence_get(void) { return &current; }

bool hy_sequence_parallel(void) { return hy_group_size(current.group) > 1; }
