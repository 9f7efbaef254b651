#include "tensor/op.h"

#include <string.h>

static hy_gla_dims dims_of(const hy_tensor *q, const hy_tensor *v, int64_t chunk,
                           const double *head_decay) {
  int64_t T = q->shape[1];
  return (hy_gla_dims){
      q->shape[0], T, q->shape[2], q->shape[3], v->shape[3], chunk, (T + chunk - 1) / chunk,
      head_decay};
}

/* What the backward needs beyond the inputs, in the host arena: the chunk states (on the inputs'
 * device) and, with a constant decay, the per-head log decays (host memory on either device). */
typedef struct {
  void *states;
  double *head_decay; /* NULL: a gate g, or no decay */
} gla_saved;

/* The op's own dq, dk, dv go to fresh buffers first: the gate's gradient needs them alone, not
 * mixed with what q and k receive from elsewhere. */
static void gla_backward(hy_node *n) {
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *g = n->in[3];
  const gla_saved *sv = n->saved;
  hy_gla_dims d = dims_of(q, v, n->iarg[0], sv->head_decay);
  hy_tensor *dq = hy_zeros_like(q), *dk = hy_zeros_like(k), *dv = hy_zeros_like(v);
  HY_KERNEL(q, gla_backward, &d, q->data, k->data, v->data, g ? g->data : NULL, sv->states,
            n->out->grad->data, dq->data, dk->data, dv->data);
  hy_tensor *pairs[3][2] = {{q, dq}, {k, dk}, {v, dv}};
  for (int i = 0; i < 3; i++)
    if (pairs[i][0]->requires_grad) HY_KERNEL(q, copy, hy_grad(pairs[i][0]), pairs[i][1], true);
  if (g && g->requires_grad)
    HY_KERNEL(q, gla_gate_grad, &d, q->data, k->data, dq->data, dk->data, hy_grad(g)->data);
}

/* Shared by hy_gla (g, per channel) and hy_linear_attention (a constant per head, or none). */
static hy_tensor *chunked(const char *op, hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                          const double *head_decay, int64_t chunk) {
  hy_check_input_any(op, q);
  hy_check_input_any(op, k);
  hy_check_input_any(op, v);
  hy_check_same_device(op, q, k);
  hy_check_same_device(op, q, v);
  hy_check_same_dtype(op, q, k);
  hy_check_same_dtype(op, q, v);
  bool ok = q->ndim == 4 && hy_same_shape(q, k) && v->ndim == 4;
  for (int i = 0; ok && i < 3; i++) ok = v->shape[i] == q->shape[i];
  if (g) {
    hy_check_input_any(op, g);
    hy_check_same_device(op, q, g);
    hy_check_same_dtype(op, q, g);
    ok = ok && hy_same_shape(q, g);
  }
  if (!ok)
    hy_die(op, "needs q, k%s [B, T, H, dk] and v [B, T, H, dv], got q %s, k %s, v %s%s%s",
           g ? ", g" : "", hy_describe(q), hy_describe(k), hy_describe(v), g ? ", g " : "",
           g ? hy_describe(g) : "");
  if (chunk < 1) hy_die(op, "chunk size %lld (must be >= 1)", (long long)chunk);
  q = hy_contiguous(q);
  k = hy_contiguous(k);
  v = hy_contiguous(v);
  if (g) g = hy_contiguous(g);
  /* Saved for the backward: the chunk states, kept on the inputs' device, and the head decays. */
  int64_t H = q->shape[2];
  hy_gla_dims d = dims_of(q, v, chunk, NULL);
  size_t state_bytes = (size_t)(d.B * d.H * d.n_chunks * d.dk * d.dv) * hy_dtype_size(q->dtype);
  gla_saved *sv = hy_arena_alloc(sizeof *sv + (head_decay ? (size_t)H * sizeof(double) : 0));
  sv->states = hy_saved_like(q, state_bytes);
  sv->head_decay = NULL;
  if (head_decay) {
    sv->head_decay = (double *)(sv + 1);
    memcpy(sv->head_decay, head_decay, (size_t)H * sizeof(double));
    d.head_decay = sv->head_decay;
  }
  hy_tensor *o = hy_empty_on(q->device, q->dtype, hy_shape_of(v));
  HY_KERNEL(q, gla, &d, q->data, k->data, v->data, g ? g->data : NULL, o->data, sv->states);
  hy_node *n = hy_record(op, gla_backward, o, 4, (hy_tensor *[]){q, k, v, g});
  if (n) {
    n->iarg[0] = chunk;
    n->saved = sv;
  }
  return o;
}

hy_tensor *hy_gla(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g, int64_t chunk) {
  return chunked("gla", q, k, v, g, NULL, chunk);
}

hy_tensor *hy_linear_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, const double *log_decay,
                               int64_t chunk) {
  return chunked("linear_attention", q, k, v, NULL, log_decay, chunk);
}
