#include "tensor/op.h"

#include <string.h>

/* A chunk longer than the sequence is the whole sequence: the kernels' scratch and the GPU's grids
 * grow with the chunk, and one chunk of T gives the same result. */
static hy_gla_dims dims_of(const hy_tensor *q, const hy_tensor *v, int64_t chunk,
                           const double *head_decay) {
  int64_t T = q->shape[1];
  /* A chunk longer than the sequence (a recipe may ask for any) is the whole sequence: the same
   * result, and no size computed from the chunk outgrows the sequence's. */
  int64_t C = chunk > T && T > 0 ? T : chunk;
  return (hy_gla_dims){.B = q->shape[0],
                       .T = T,
                       .H = q->shape[2],
                       .dk = q->shape[3],
                       .dv = v->shape[3],
                       .C = C,
                       .n_chunks = (T + C - 1) / C,
                       .head_decay = head_decay};
}

/* What the backward needs beyond the inputs, in the host arena: the chunk states (on the inputs'
 * device, f32 for bf16 inputs) and, with a constant decay, the per-head log decays (host memory
 * on either device). */
typedef struct {
  void *states;
  double *head_decay; /* NULL: a gate g, or no decay */
} gla_saved;

/* On the CPU the op's own dq, dk, dv go to zeroed buffers first (the kernels add): the gate's
 * gradient needs them alone, not mixed with what q and k receive from elsewhere. */
static void cpu_backward(hy_node *n, hy_gla_dims *d) {
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *g = n->in[3];
  const gla_saved *sv = n->saved;
  hy_tensor *dq = hy_zeros_like(q), *dk = hy_zeros_like(k), *dv = hy_zeros_like(v);
  HY_KERNEL(q, gla_backward, d, q->data, k->data, v->data, g ? g->data : NULL, sv->states,
            n->out->grad->data, dq->data, dk->data, dv->data);
  hy_tensor *pairs[3][2] = {{q, dq}, {k, dk}, {v, dv}};
  for (int i = 0; i < 3; i++)
    if (pairs[i][0]->requires_grad) HY_KERNEL(q, copy, hy_grad(pairs[i][0]), pairs[i][1], true);
  if (g && g->requires_grad)
    HY_KERNEL(q, gla_gate_grad, d, q->data, k->data, dq->data, dk->data, hy_grad(g)->data);
}

/* x's gradient for the GPU kernels to write over (its bit in d->overwrite) when fresh, else to
 * add to; NULL when x needs none. */
static void *gpu_grad(hy_tensor *x, unsigned bit, hy_gla_dims *d) {
  if (!x->requires_grad) return NULL;
  bool accumulate;
  void *p = hy_grad_acc(x, &accumulate)->data;
  if (!accumulate) d->overwrite |= bit;
  return p;
}

/* With a gate, the op's own dq (dk) in f32, written over: x's gradient itself where x is f32 and
 * has none yet (then it is x's whole gradient: *own), else a scratch buffer added to x's
 * gradient after the gate's has been summed from it. NULL when neither x nor g needs it. */
static hy_tensor *gate_operand(hy_tensor *x, const hy_tensor *g, unsigned bit, hy_gla_dims *d,
                               bool *own) {
  *own = false;
  if (!x->requires_grad && !g->requires_grad) return NULL;
  d->overwrite |= bit;
  if (x->requires_grad && x->dtype == HY_F32 && !x->grad) {
    bool accumulate;
    *own = true;
    return hy_grad_acc(x, &accumulate);
  }
  return hy_empty_on(HY_CUDA, HY_F32, hy_shape_of(x));
}

/* On the GPU the kernels write v's, q's and k's gradients in this order (the order to ask for
 * them in, where two inputs are one tensor), without a zero fill where they are fresh. */
static void gpu_backward(hy_node *n, hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                         hy_gla_dims *d) {
  const gla_saved *sv = n->saved;
  void *gv = gpu_grad(v, HY_OVERWRITE_V, d);
  if (!g) {
    void *gq = gpu_grad(q, HY_OVERWRITE_Q, d), *gk = gpu_grad(k, HY_OVERWRITE_K, d);
    HY_KERNEL_BF16(q, gla_backward, d, q->data, k->data, v->data, NULL, sv->states,
                   n->out->grad->data, gq, gk, gv);
    return;
  }
  bool own_q, own_k;
  hy_tensor *dq = gate_operand(q, g, HY_OVERWRITE_Q, d, &own_q);
  hy_tensor *dk = gate_operand(k, g, HY_OVERWRITE_K, d, &own_k);
  HY_KERNEL_BF16(q, gla_backward, d, q->data, k->data, v->data, g->data, sv->states,
                 n->out->grad->data, dq ? dq->data : NULL, dk ? dk->data : NULL, gv);
  if (g->requires_grad) {
    void *gg = gpu_grad(g, HY_OVERWRITE_G, d);
    HY_KERNEL_BF16(q, gla_gate_grad, d, q->data, k->data, dq->data, dk->data, gg);
  }
  hy_tensor *pairs[2][2] = {{q, dq}, {k, dk}};
  bool own[2] = {own_q, own_k};
  for (int i = 0; i < 2; i++) {
    if (!pairs[i][0]->requires_grad || own[i]) continue;
    bool accumulate; /* set by hy_grad_acc before it is read: not in one call's arguments */
    hy_tensor *grad = hy_grad_acc(pairs[i][0], &accumulate);
    hy_convert_into(grad, pairs[i][1], accumulate);
  }
}

typedef struct {
  int64_t chunk;
} gla_args;

static void gla_backward(hy_node *n) {
  const gla_args *a = HY_NODE_ARGS(n, gla_args);
  const gla_saved *sv = n->saved;
  hy_gla_dims d = dims_of(n->in[0], n->in[2], a->chunk, sv->head_decay);
  if (hy_numel(n->in[0]) == 0 || hy_numel(n->in[2]) == 0) { /* o is zero: so are the gradients */
    for (int i = 0; i < 4; i++)
      if (n->in[i] && n->in[i]->requires_grad) hy_grad(n->in[i]);
    return;
  }
  if (n->in[0]->device != HY_CUDA) {
    cpu_backward(n, &d);
    return;
  }
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *g = n->in[3];
  if (q != k && q != v && k != v) {
    gpu_backward(n, q, k, v, g, &d);
    return;
  }
  /* One tensor as two of q, k, v: a kernel would write one gradient and add another into the same
   * memory at once. Each input gets a stand-in with a gradient of its own, added after. */
  hy_tensor *in[4] = {q, k, v, g}, *own[4];
  for (int i = 0; i < 4; i++) {
    own[i] = in[i];
    if (!in[i] || !in[i]->requires_grad) continue;
    own[i] = hy_arena_alloc(sizeof *own[i]);
    *own[i] = *in[i];
    own[i]->grad = NULL;
    own[i]->persistent = own[i]->retain_grad = false;
    own[i]->bf16_copy = NULL;
  }
  gpu_backward(n, own[0], own[1], own[2], own[3], &d);
  for (int i = 0; i < 4; i++) {
    if (own[i] == in[i] || !own[i]->grad) continue;
    bool accumulate;
    hy_tensor *grad = hy_grad_acc(in[i], &accumulate);
    hy_convert_into(grad, own[i]->grad, accumulate);
  }
}

/* Shared by hy_gla (g, per channel) and hy_linear_attention (a constant per head, or none). */
static hy_tensor *chunked(const char *op, hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                          const double *head_decay, int64_t chunk) {
  hy_check_inputs_alike(op, q, k, v);
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
  /* Saved for the backward: the chunk states, kept on the inputs' device in f64 for f64 inputs and
   * f32 otherwise, and the head decays. */
  int64_t H = q->shape[2];
  hy_gla_dims d = dims_of(q, v, chunk, NULL);
  size_t state_bytes = (size_t)(d.B * d.H * d.n_chunks * d.dk * d.dv) *
                       (q->dtype == HY_F64 ? sizeof(double) : sizeof(float));
  gla_saved *sv = hy_arena_alloc(sizeof *sv + (head_decay ? (size_t)H * sizeof(double) : 0));
  sv->states = hy_saved_like(q, state_bytes);
  sv->head_decay = NULL;
  if (head_decay) {
    sv->head_decay = (double *)(sv + 1);
    memcpy(sv->head_decay, head_decay, (size_t)H * sizeof(double));
    d.head_decay = sv->head_decay;
  }
  hy_tensor *o = hy_empty_on(q->device, q->dtype, hy_shape_of(v));
  HY_KERNEL_BF16(q, gla, &d, q->data, k->data, v->data, g ? g->data : NULL, o->data, sv->states);
  hy_node *n = hy_record(op, gla_backward, o, 4, (hy_tensor *[]){q, k, v, g});
  if (n) {
    HY_NODE_ARGS(n, gla_args)->chunk = chunk;
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
