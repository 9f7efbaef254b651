/* RAT (Wei et al. 2025, "RAT: Bridging RNN Efficiency and Attention Accuracy"; the plain form is
 * rat_slow.py in the paper's code), the part between the projections and the output gate, as one
 * op with a hand-written backward. Per batch and head, with chunks of L tokens, c(t) = floor(t/L)
 * the chunk of position t (0-based) and e_c = (c + 1) L - 1 the last position of chunk c:
 *
 *   recurrence, reset at each chunk start (xs_{-1} = ks_{-1} = 0 before every c(t) L):
 *     xs_t = f_t * xs_{t-1} + (1 - f_t) * u_t          (values, per channel)
 *     ks_t = f_t * ks_{t-1} + (1 - f_t) * k_t          (keys, the same gate)
 *   chunk-level RoPE ("inter-RoPE"): R(c) turns channel i < D/2 and its partner i + D/2 by the
 *   angle c theta^(-2i/D) (rotate-half, as hy_rope at position c): every token of chunk c uses
 *   the chunk index c as its position, queries and keys alike.
 *   keys of query t: the finished chunks' final states (R(c) ks_{e_c}, xs_{e_c}) for c < c(t),
 *   and its own chunk's running state (R(c(t)) ks_t, xs_t);
 *     s_tc = scale (R(c(t)) q_t) . (R(c) ks_{e_c})   for c < c(t)
 *     s_t* = scale (R(c(t)) q_t) . (R(c(t)) ks_t) = scale q_t . ks_t
 *     o_t  = (sum_{c < c(t)} exp(s_tc) xs_{e_c} + exp(s_t*) xs_t) / (sum_c exp(s_tc) + exp(s_t*))
 *
 * one softmax over the c(t) + 1 keys. Inputs q, u, k, f [B, T, H, D] (D even; f the forget gate
 * in (0, 1); q and k unrotated: the op applies the RoPE); out [B, T, H, D]; any T >= 0, the last
 * chunk may be short. L = 1 is causal softmax attention over ((1 - f) k, (1 - f) u) with RoPE at
 * the token's position; L >= T is the gated RNN o_t = xs_t.
 *
 * The forward saves only the log-sum-exp of each row ([B, H, T]); the backward recomputes the
 * states (tensor/cpu/rat.c; on the GPU, f32 only, tensor/cuda/rat.cu). */
#include "tensor/op.h"

static hy_rat_dims dims_of(const hy_tensor *q, int64_t chunk, double scale, double theta) {
  int64_t T = q->shape[1];
  /* A chunk longer than the sequence (a recipe may ask for any) is the whole sequence: the same
   * result, and no size computed from the chunk outgrows the sequence's. */
  if (chunk > T && T > 0) chunk = T;
  return (hy_rat_dims){.B = q->shape[0],
                       .T = T,
                       .H = q->shape[2],
                       .D = q->shape[3],
                       .L = chunk,
                       .n_keys = T > 0 ? (T - 1) / chunk : 0,
                       .scale = scale,
                       .theta = theta};
}

static void *grad_of(hy_tensor *t) { return t->requires_grad ? hy_grad(t)->data : NULL; }

static void rat_backward(hy_node *n) {
  hy_tensor *q = n->in[0], *u = n->in[1], *k = n->in[2], *f = n->in[3];
  hy_rat_dims d = dims_of(q, n->iarg[0], n->arg[0], n->arg[1]);
  HY_KERNEL(q, rat_backward, &d, q->data, u->data, k->data, f->data, n->out->data, n->saved,
            n->out->grad->data, grad_of(q), grad_of(u), grad_of(k), grad_of(f));
}

hy_tensor *hy_rat(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, int64_t chunk,
                  double scale, double theta) {
  const char *op = "rat";
  hy_tensor *in[4] = {q, u, k, f};
  for (int i = 0; i < 4; i++) {
    hy_check_input_any(op, in[i]);
    hy_check_same_device(op, q, in[i]);
    hy_check_same_dtype(op, q, in[i]);
  }
  bool ok = q->ndim == 4 && q->shape[3] % 2 == 0;
  for (int i = 1; i < 4; i++) ok = ok && hy_same_shape(q, in[i]);
  if (!ok)
    hy_die(op, "needs q, u, k, f [B, T, H, D] of one shape with D even, got %s, %s, %s, %s",
           hy_describe(q), hy_describe(u), hy_describe(k), hy_describe(f));
  if (chunk < 1) hy_die(op, "chunk size %lld (must be >= 1)", (long long)chunk);
  if (!(theta > 0)) hy_die(op, "rope theta %g (must be > 0)", theta);
  if (q->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(
        hy_rat(hy_as_f32(q), hy_as_f32(u), hy_as_f32(k), hy_as_f32(f), chunk, scale, theta),
        HY_BF16);
  for (int i = 0; i < 4; i++) in[i] = hy_contiguous(in[i]);
  hy_rat_dims d = dims_of(in[0], chunk, scale, theta);
  hy_tensor *o = hy_empty_like(in[0]);
  void *lse = hy_saved_like(in[0], (size_t)(d.B * d.H * d.T) * hy_dtype_size(q->dtype));
  HY_KERNEL(in[0], rat, &d, in[0]->data, in[1]->data, in[2]->data, in[3]->data, o->data, lse);
  hy_node *n = hy_record(op, rat_backward, o, 4, in);
  if (n) {
    n->iarg[0] = chunk;
    n->arg[0] = scale;
    n->arg[1] = theta;
    n->saved = lse;
  }
  return o;
}
