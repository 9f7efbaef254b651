#include "dist/collective_ops.h"
#include "autograd/tape.h"
#include "tensor/ops.h"

/* A new tensor over t's memory, without its gradient or node: the output of an op that passes t
 * on unchanged but needs a node of its own on the tape. */
static hy_tensor *view_of(const hy_tensor *t) {
  hy_tensor *v = hy_arena_alloc(sizeof *v);
  *v = *t;
  v->persistent = v->requires_grad = v->retain_grad = false;
  v->grad = NULL;
  v->node = NULL;
  v->bf16_copy = NULL;
  return v;
}

/* The node of an allgather's start: the reduce-scatter of the gathered gradient, started by the
 * backward of hy_dist_gathered, and the buffer it fills. */
typedef struct {
  hy_inflight *inflight;
  hy_tensor *part;
} gather_args;

/* Each rank's block of the gathered gradient, summed over the ranks (a reduce-scatter started at
 * the backward of hy_dist_gathered), split back onto the inputs along their last dim. */
static void allgather_backward(hy_node *n) {
  gather_args *a = HY_NODE_ARGS(n, gather_args);
  hy_dist_wait(a->inflight);
  hy_tensor *part = a->part;
  int64_t at = 0, last = n->in[0]->ndim - 1;
  for (int i = 0; i < n->n_in; i++) {
    hy_tensor *x = n->in[i];
    int64_t w = x->shape[last];
    if (x->requires_grad) {
      bool accumulate;
      hy_tensor *gx = hy_grad_acc(x, &accumulate), *mine = hy_slice(part, (int)last, at, at + w);
      hy_copy_into(gx, accumulate ? hy_add(gx, mine) : mine);
    }
    at += w;
  }
  hy_arena_recycle(part->device, part->data, (size_t)hy_numel(part) * hy_dtype_size(part->dtype));
}

/* Starts the reduce-scatter of the gathered tensor's gradient. The gradient becomes the start's
 * output's (not handed back to the arena before the start's backward has waited for it), and
 * the part is a buffer of its own (the backward of the work between start and wait, which runs
 * meanwhile, may add to the inputs' gradients). */
static void gathered_backward(hy_node *n) {
  hy_tensor *y = n->in[0], *gy = hy_contiguous(n->out->grad);
  if (gy == n->out->grad) n->out->grad = NULL; /* y's now */
  y->grad = gy;
  hy_node *start = y->node;
  gather_args *a = HY_NODE_ARGS(start, gather_args);
  hy_shape s = hy_shape_of(y);
  for (int i = 0; i + 1 < s.ndim; i++) s.d[i] = s.d[i + 1];
  s.ndim--;
  a->part = hy_empty_on(y->device, y->dtype, s);
  a->inflight = hy_reduce_scatter_start(start->saved, y->device, gy->data, a->part->data,
                                        hy_numel(a->part), y->dtype);
}

hy_tensor *hy_dist_allgather(hy_group *g, hy_tensor *x) { return hy_dist_allgather_cat(g, 1, &x); }

hy_tensor *hy_dist_allgather_cat(hy_group *g, int n, hy_tensor *const *xs) {
  hy_gathering gathering = hy_dist_allgather_start(g, n, xs);
  return hy_dist_gathered(&gathering);
}

hy_gathering hy_dist_allgather_start(hy_group *g, int n, hy_tensor *const *xs) {
  const char *op = "allgather";
  hy_tensor *x = xs[0];
  if (x->ndim > HY_MAX_DIMS - 1) hy_die(op, "%s has too many dims to stack", hy_describe(x));
  hy_shape s = hy_shape_of(x);
  int last = x->ndim - 1;
  for (int i = 1; i < n; i++) {
    hy_check_same_dtype(op, x, xs[i]);
    bool fits = xs[i]->ndim == x->ndim && xs[i]->device == x->device;
    for (int a = 0; fits && a < last; a++) fits = xs[i]->shape[a] == x->shape[a];
    if (!fits)
      hy_die(op, "cannot join %s and %s along the last dim", hy_describe(x), hy_describe(xs[i]));
    s.d[last] += xs[i]->shape[last];
  }
  hy_tensor *one = n == 1 ? hy_contiguous(x) : NULL; /* one input is sent as it is */
  hy_tensor *send = one;
  if (!one) { /* the joined inputs are only the send buffer: scratch, not kept on the tape */
    hy_no_grad_begin();
    send = hy_concat(n, xs, last);
    hy_no_grad_end();
  }
  for (int i = s.ndim; i > 0; i--) s.d[i] = s.d[i - 1];
  s.d[0] = hy_group_size(g);
  s.ndim++;
  hy_tensor *y = hy_empty_on(x->device, x->dtype, s);
  hy_inflight *inflight =
      hy_allgather_start(g, x->device, send->data, y->data, hy_numel(send), x->dtype);
  hy_node *node = hy_record(op, allgather_backward, y, one ? 1 : n, one ? &one : xs);
  if (node) node->saved = g;
  return (hy_gathering){y, one ? NULL : send, inflight};
}

hy_tensor *hy_dist_gathered(hy_gathering *gathering) {
  hy_tensor *y = gathering->y, *scratch = gathering->scratch;
  hy_dist_wait(gathering->inflight);
  gathering->inflight = NULL;
  if (scratch)
    hy_arena_recycle(scratch->device, scratch->data,
                     (size_t)hy_numel(scratch) * hy_dtype_size(scratch->dtype));
  if (!y->node) return y; /* nothing on the tape */
  hy_tensor *view = view_of(y);
  hy_record("allgather wait", gathered_backward, view, 1, &y);
  return view;
}

/* A point-to-point node's argument: the rank at the other end. */
typedef struct {
  int rank;
} peer_args;

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
  hy_recv(n->saved, x->device, gx->data, hy_numel(x), x->dtype, HY_NODE_ARGS(n, peer_args)->rank);
  if (x->requires_grad) {
    hy_tensor *acc = hy_grad(x);
    hy_copy_into(acc, hy_add(acc, gx));
  }
}

hy_tensor *hy_dist_send(hy_group *g, int to, hy_tensor *x, hy_tensor *after) {
  x = hy_contiguous(x);
  hy_send(g, x->device, x->data, hy_numel(x), x->dtype, to);
  hy_tensor *y = view_of(after);
  hy_node *n = hy_record_always("send", send_backward, y, 2, (hy_tensor *[]){x, after});
  if (n) {
    n->saved = g;
    HY_NODE_ARGS(n, peer_args)->rank = to;
  }
  return n ? y : after;
}

static void recv_backward(hy_node *n) {
  hy_tensor *gy = hy_contiguous(hy_grad(n->out));
  hy_send(n->saved, gy->device, gy->data, hy_numel(gy), gy->dtype,
          HY_NODE_ARGS(n, peer_args)->rank);
}

hy_tensor *hy_dist_recv(hy_group *g, int from, hy_device device, hy_dtype dtype, hy_shape shape) {
  hy_tensor *y = hy_empty_on(device, dtype, shape);
  hy_recv(g, device, y->data, hy_numel(y), dtype, from);
  hy_node *n = hy_record_always("recv", recv_backward, y, 0, NULL);
  if (n) {
    n->saved = g;
    HY_NODE_ARGS(n, peer_args)->rank = from;
  }
  return y;
}

static hy_sequence current = {NULL, 0, true};

void hy_sequence_set(hy_group *group, int64_t offset) {
  current.group = group;
  current.offset = offset;
}

void hy_sequence_set_overlap(bool on) { current.overlap = on; }

const hy_sequence *hy_sequence_get(void) { return &current; }

bool hy_sequence_parallel(void) { return hy_group_size(current.group) > 1; }
