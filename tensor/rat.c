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
 * the token's position, and runs as that (chunks_of_one); L >= T is the gated RNN o_t = xs_t.
 *
 * hy_rat_after is the same op on a slice of a longer sequence that starts at a chunk boundary,
 * after P earlier chunks (sequence parallelism: layers/rat.c): every query of the slice also sees
 * the final states (R(p) kp_p, vp_p) of those chunks, p < P, and the slice's chunk c is chunk P + c
 * for the RoPE, so that its rows are exactly those of the whole sequence. hy_rat_chunk_ends gives
 * a slice's own final states, unrotated, for the slices after it.
 *
 * The forward saves only the log-sum-exp of each row ([B, H, T]); the backward recomputes the
 * states (tensor/cpu/rat.c; on the GPU, f32 only, tensor/cuda/rat.cu). */
#include "tensor/op.h"

static hy_rat_dims dims_of(const hy_tensor *q, const hy_tensor *kp, int64_t chunk, double scale,
                           double theta) {
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
                       .P = kp ? kp->shape[1] : 0,
                       .scale = scale,
                       .theta = theta};
}

static void *data_of(hy_tensor *t) { return t ? t->data : NULL; }
static void *grad_of(hy_tensor *t) { return t && t->requires_grad ? hy_grad(t)->data : NULL; }

typedef struct {
  int64_t chunk;
  double scale, theta;
} rat_args;

static void rat_backward(hy_node *n) {
  const rat_args *a = HY_NODE_ARGS(n, rat_args);
  hy_tensor *q = n->in[0], *u = n->in[1], *k = n->in[2], *f = n->in[3];
  hy_tensor *kp = n->n_in > 4 ? n->in[4] : NULL, *vp = n->n_in > 4 ? n->in[5] : NULL;
  hy_rat_dims d = dims_of(q, kp, a->chunk, a->scale, a->theta);
  HY_KERNEL(q, rat_backward, &d, q->data, u->data, k->data, f->data, data_of(kp), data_of(vp),
            n->out->data, n->saved, n->out->grad->data, grad_of(q), grad_of(u), grad_of(k),
            grad_of(f), grad_of(kp), grad_of(vp));
}

static void check_inputs(const char *op, int n, hy_tensor **in) {
  for (int i = 0; i < n; i++) {
    hy_check_input_any(op, in[i]);
    hy_check_same_device(op, in[0], in[i]);
    hy_check_same_dtype(op, in[0], in[i]);
  }
}

/* Chunks of one token: every token's gated key and value are its chunk's final state, so the op is
 * causal softmax attention over ((1 - f) k, (1 - f) u), RoPE at the tokens' positions after the P
 * earlier ones: the attention kernels run it (on the GPU bf16 takes the tensor cores at head sizes
 * 64 and 128), where the chunk kernels would walk T keys a row. */
static hy_tensor *chunks_of_one(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f,
                                hy_tensor *kp, hy_tensor *vp, double scale, double theta) {
  hy_tensor *keep = hy_add_scalar(hy_scale(f, -1.0), 1.0);
  hy_tensor *keys = hy_mul(keep, k), *values = hy_mul(keep, u);
  if (!kp) return hy_attention(hy_rope(q, 0, theta), hy_rope(keys, 0, theta), values, scale);
  int64_t P = kp->shape[1];
  keys = hy_concat(2, (hy_tensor *[]){kp, keys}, 1);
  values = hy_concat(2, (hy_tensor *[]){vp, values}, 1);
  return hy_attention_offset(hy_rope(q, P, theta), hy_rope(keys, 0, theta), values, scale, 0, P);
}

hy_tensor *hy_rat_after(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, hy_tensor *kp,
                        hy_tensor *vp, int64_t chunk, double scale, double theta) {
  const char *op = "rat";
  if (!kp != !vp) hy_die(op, "needs both of the earlier chunks' keys and values, or neither");
  hy_tensor *in[6] = {q, u, k, f, kp, vp};
  int n_in = kp ? 6 : 4;
  check_inputs(op, n_in, in);
  bool ok = q->ndim == 4 && q->shape[3] % 2 == 0;
  for (int i = 1; i < 4; i++) ok = ok && hy_same_shape(q, in[i]);
  if (!ok)
    hy_die(op, "needs q, u, k, f [B, T, H, D] of one shape with D even, got %s, %s, %s, %s",
           hy_describe(q), hy_describe(u), hy_describe(k), hy_describe(f));
  if (kp && !(kp->ndim == 4 && hy_same_shape(kp, vp) && kp->shape[0] == q->shape[0] &&
              kp->shape[2] == q->shape[2] && kp->shape[3] == q->shape[3]))
    hy_die(op, "needs the earlier chunks' keys and values [B, P, H, D] as q %s, got %s and %s",
           hy_describe(q), hy_describe(kp), hy_describe(vp));
  if (chunk < 1) hy_die(op, "chunk size %lld (must be >= 1)", (long long)chunk);
  if (!(theta > 0)) hy_die(op, "rope theta %g (must be > 0)", theta);
  if (chunk == 1 && q->shape[1] > 0) return chunks_of_one(q, u, k, f, kp, vp, scale, theta);
  if (q->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(hy_rat_after(hy_as_f32(q), hy_as_f32(u), hy_as_f32(k), hy_as_f32(f),
                                hy_as_f32(kp), hy_as_f32(vp), chunk, scale, theta),
                   HY_BF16);
  for (int i = 0; i < n_in; i++) in[i] = hy_contiguous(in[i]);
  hy_rat_dims d = dims_of(in[0], in[4], chunk, scale, theta);
  hy_tensor *o = hy_empty_like(in[0]);
  void *lse = hy_saved_like(in[0], (size_t)(d.B * d.H * d.T) * hy_dtype_size(q->dtype));
  HY_KERNEL(in[0], rat, &d, in[0]->data, in[1]->data, in[2]->data, in[3]->data, data_of(in[4]),
            data_of(in[5]), o->data, lse);
  hy_node *n = hy_record(op, rat_backward, o, n_in, in);
  if (n) {
    *HY_NODE_ARGS(n, rat_args) = (rat_args){.chunk = chunk, .scale = scale, .theta = theta};
    n->saved = lse;
  }
  return o;
}

hy_tensor *hy_rat(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, int64_t chunk,
                  double scale, double theta) {
  return hy_rat_after(q, u, k, f, NULL, NULL, chunk, scale, theta);
}

/* ---- the chunks' final states ---- */

static hy_rat_dims ends_dims(const hy_tensor *x, int64_t chunk) {
  return (hy_rat_dims){
      .B = x->shape[0], .T = x->shape[1], .H = x->shape[2], .D = x->shape[3], .L = chunk};
}

static void chunk_ends_backward(hy_node *n) {
  const rat_args *a = HY_NODE_ARGS(n, rat_args);
  hy_tensor *x = n->in[0], *f = n->in[1];
  hy_rat_dims d = ends_dims(x, a->chunk);
  HY_KERNEL(x, rat_ends_backward, &d, x->data, f->data, n->out->grad->data, grad_of(x), grad_of(f));
}

hy_tensor *hy_rat_chunk_ends(hy_tensor *x, hy_tensor *f, int64_t chunk) {
  const char *op = "rat_chunk_ends";
  hy_tensor *in[2] = {x, f};
  check_inputs(op, 2, in);
  if (x->ndim != 4 || !hy_same_shape(x, f) || chunk < 1 || x->shape[1] % chunk)
    hy_die(op,
           "needs x, f [B, T, H, D] of one shape with T a multiple of the chunk %lld, got %s "
           "and %s",
           (long long)chunk, hy_describe(x), hy_describe(f));
  if (x->dtype == HY_BF16)
    return hy_cast(hy_rat_chunk_ends(hy_as_f32(x), hy_as_f32(f), chunk), HY_BF16);
  for (int i = 0; i < 2; i++) in[i] = hy_contiguous(in[i]);
  hy_tensor *y = hy_empty_on(x->device, x->dtype,
                             HY_SHAPE(x->shape[0], x->shape[1] / chunk, x->shape[2], x->shape[3]));
  hy_rat_dims d = ends_dims(in[0], chunk);
  HY_KERNEL(in[0], rat_ends, &d, in[0]->data, in[1]->data, y->data);
  hy_node *n = hy_record(op, chunk_ends_backward, y, 2, in);
  if (n) HY_NODE_ARGS(n, rat_args)->chunk = chunk;
  return y;
}
