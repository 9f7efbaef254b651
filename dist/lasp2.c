#include "dist/lasp2.h"
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "tensor/arena.h"
#include "tensor/op.h"
#include "tensor/ops.h"

/* [B, T, H, n] -> [B, H, T, n] as a view (batched matmuls take the strides as they are). */
static hy_tensor *by_head(hy_tensor *x) { return hy_transpose(x, 1, 2); }

/* The op itself over this rank's slice, from a zero state. */
static hy_tensor *slice_op(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                           const double *head_decay, int64_t chunk) {
  return g ? hy_gla(q, k, v, g, chunk) : hy_linear_attention(q, k, v, head_decay, chunk);
}

/* ---- the slice's state and the earlier ranks' share: two ops that keep only their inputs ----
 * Composed of plain ops on the tape, the cumulative decays b, exp(B - b) and exp(b), the decayed
 * keys and the decayed queries would each stay alive until the backward: five [B, T, H, dk]
 * tensors a layer beside q, k, v and g. These two ops save nothing and recompute them in their
 * backward, from plain ops run off the tape. */

typedef struct {
  const double *head_decay; /* with g NULL: a constant log decay per head, or none */
} decay_args;

/* b, the cumulative log decay from the slice's start (NULL: no decay), off the tape: cumsum(g)
 * over the tokens [B, T, H, dk], or gamma_h (t + 1), the same for every sequence and channel,
 * [1, T, H, 1] (broadcast where it is used): made on the host, T H values. */
static hy_tensor *cumulative_decay(const hy_tensor *like, hy_tensor *g, const double *head_decay) {
  if (g) return hy_cumsum(g, 1, false);
  if (!head_decay) return NULL;
  int64_t T = like->shape[1], H = like->shape[2];
  hy_tensor *b = hy_empty_on(HY_CPU, like->dtype, HY_SHAPE(1, T, H, 1)); /* moved to the device */
  for (int64_t i = 0; i < T * H; i++) hy_set(b, i, head_decay[i % H] * (double)(i / H + 1));
  return hy_to(b, like->device);
}

/* Where a backward adds an input's gradient: its buffer, taken before the backward's scratch
 * (zeroed when new, so that one tensor given as two inputs gets both parts). */
typedef struct {
  hy_tensor *to; /* NULL: the input needs none */
} grad_slot;

static grad_slot slot_of(hy_tensor *t) {
  return (grad_slot){t && t->requires_grad ? hy_grad(t) : NULL};
}

static void put(grad_slot s, hy_tensor *x) {
  if (s.to) hy_convert_into(s.to, hy_contiguous(x), true);
}

/* dg from the gradient db of b = cumsum(g) (a reverse cumulative sum), plus dB for the slice's
 * total B = b_{T-1}, which every g of the slice adds to. */
static void put_decay_grad(grad_slot g, hy_tensor *db, hy_tensor *dtotal) {
  if (!g.to) return;
  hy_tensor *dg = hy_cumsum(db, 1, true);
  put(g, dtotal ? hy_add(dg, dtotal) : dg);
}

static hy_tensor *slice_decay(hy_tensor *b) { return hy_slice(b, 1, b->shape[1] - 1, b->shape[1]); }

/* The keys decayed to the slice's end, k * w with w = exp(B - b) (k itself without a decay). */
static hy_tensor *decayed_keys(hy_tensor *k, hy_tensor *b, hy_tensor **w) {
  *w = b ? hy_exp(hy_sub(slice_decay(b), b)) : NULL;
  return b ? hy_mul(k, *w) : k;
}

/* The recomputed tensors are scratch: the arena forgets them when the backward returns. */
static void state_backward(hy_node *n) {
  hy_tensor *k = n->in[0], *v = n->in[1], *g = n->n_in > 2 ? n->in[2] : NULL;
  const decay_args *a = HY_NODE_ARGS(n, decay_args);
  int64_t B = k->shape[0], H = k->shape[2], dk = k->shape[3], dv = v->shape[3];
  grad_slot dk_ = slot_of(k), dv_ = slot_of(v), dg_ = slot_of(g);
  hy_arena_mark scratch = hy_arena_get_mark();
  hy_no_grad_begin();
  hy_tensor *b = cumulative_decay(k, g, a->head_decay), *w, *kd = decayed_keys(k, b, &w);
  hy_tensor *dp = n->out->grad; /* [B H, dk, dv (+ 1)] */
  hy_tensor *dM = hy_reshape(hy_contiguous(hy_slice(dp, 2, 0, dv)), HY_SHAPE(B, H, dk, dv));
  if (dv_.to) put(dv_, hy_transpose(hy_matmul(by_head(kd), dM), 1, 2));
  hy_tensor *dkd = hy_transpose(hy_matmul(by_head(v), hy_transpose(dM, 2, 3)), 1, 2);
  if (dk_.to) put(dk_, b ? hy_mul(dkd, w) : dkd);
  if (b && dg_.to) {
    hy_tensor *dz = hy_mul(hy_mul(dkd, k), w); /* d(B - b) */
    hy_tensor *dA = hy_reshape(hy_contiguous(hy_slice(dp, 2, dv, dv + 1)), HY_SHAPE(B, H, 1, dk));
    hy_tensor *dtotal = hy_add(hy_sum(dz, 1, true), /* [B, 1, H, dk] */
                               hy_mul(hy_transpose(dA, 1, 2), hy_exp(slice_decay(b))));
    put_decay_grad(dg_, hy_scale(dz, -1.0), dtotal);
  }
  hy_no_grad_end();
  hy_arena_rewind(scratch);
}

/* The slice's state M = (k * exp(B - b))^T v [B, H, dk, dv] packed as [B H, dk, dv] with, when
 * there is a decay, its total exp(B) [B H, dk, 1] beside it: the AllGather's send buffer. The
 * tensors it is made from are scratch, as in the backward. */
static hy_tensor *slice_state(hy_tensor *k, hy_tensor *v, hy_tensor *g, const double *head_decay) {
  int64_t B = k->shape[0], H = k->shape[2], dk = k->shape[3], dv = v->shape[3];
  bool decays = g || head_decay;
  hy_tensor *packed = hy_empty_on(k->device, k->dtype, HY_SHAPE(B * H, dk, dv + decays));
  hy_arena_mark scratch = hy_arena_get_mark();
  hy_no_grad_begin();
  hy_tensor *b = cumulative_decay(k, g, head_decay), *w, *kd = decayed_keys(k, b, &w);
  hy_tensor *M = hy_matmul(hy_transpose(by_head(kd), 2, 3), by_head(v)); /* [B, H, dk, dv] */
  hy_tensor *p = hy_reshape(M, HY_SHAPE(B * H, dk, dv));
  if (b) {
    hy_tensor *last = hy_zeros_like(hy_slice(k, 1, k->shape[1] - 1, k->shape[1]));
    hy_tensor *total = hy_exp(hy_transpose(hy_add(last, slice_decay(b)), 1, 2)); /* [B, H, 1, dk] */
    hy_tensor *parts[2] = {p, hy_reshape(total, HY_SHAPE(B * H, dk, 1))};
    p = hy_concat(2, parts, 2);
  }
  hy_copy_into(packed, hy_contiguous(p));
  hy_no_grad_end();
  hy_arena_rewind(scratch);
  hy_tensor *in[3] = {k, v, g};
  hy_node *n = hy_record("lasp2_state", state_backward, packed, g ? 3 : 2, in);
  if (n) *HY_NODE_ARGS(n, decay_args) = (decay_args){head_decay};
  return packed;
}

/* The outputs o with the earlier ranks' share added, o + (q * exp(b)) S [B, T, H, dv], for their
 * folded state S [B, H, dk, dv], written over o's own memory: the slice's op keeps nothing of its
 * output for its backward (only the gradient), so the layer holds one tensor, not o and the sum.
 * The backward needs o's gradient only, never its value. */
static void share_backward(hy_node *n) {
  hy_tensor *o = n->in[0], *q = n->in[1], *S = n->in[2], *g = n->n_in > 3 ? n->in[3] : NULL;
  const decay_args *a = HY_NODE_ARGS(n, decay_args);
  grad_slot do_ = slot_of(o), dq_ = slot_of(q), dS_ = slot_of(S), dg_ = slot_of(g);
  put(do_, n->out->grad);
  hy_arena_mark scratch = hy_arena_get_mark();
  hy_no_grad_begin();
  hy_tensor *b = cumulative_decay(q, g, a->head_decay);
  hy_tensor *e = b ? hy_exp(b) : NULL, *qe = b ? hy_mul(q, e) : q;
  hy_tensor *dy = by_head(n->out->grad); /* [B, H, T, dv] */
  if (dS_.to) put(dS_, hy_matmul(hy_transpose(by_head(qe), 2, 3), dy));
  hy_tensor *dqe = hy_transpose(hy_matmul(dy, hy_transpose(S, 2, 3)), 1, 2); /* [B, T, H, dk] */
  if (dq_.to) put(dq_, b ? hy_mul(dqe, e) : dqe);
  if (b) put_decay_grad(dg_, hy_mul(dqe, qe), NULL);
  hy_no_grad_end();
  hy_arena_rewind(scratch);
}

static hy_tensor *with_earlier_share(hy_tensor *o, hy_tensor *q, hy_tensor *S, hy_tensor *g,
                                     const double *head_decay) {
  hy_no_grad_begin();
  hy_tensor *y = hy_reshape(o, hy_shape_of(o)); /* a second name for o's memory, off the tape */
  hy_arena_mark scratch = hy_arena_get_mark();
  hy_tensor *b = cumulative_decay(q, g, head_decay);
  hy_tensor *qe = b ? hy_mul(q, hy_exp(b)) : q;
  hy_convert_into(y, hy_transpose(hy_matmul(by_head(qe), S), 1, 2), true);
  hy_arena_rewind(scratch);
  hy_no_grad_end();
  hy_tensor *in[4] = {o, q, S, g};
  hy_node *n = hy_record("lasp2_share", share_backward, y, g ? 4 : 3, in);
  if (n) *HY_NODE_ARGS(n, decay_args) = (decay_args){head_decay};
  return y;
}

hy_tensor *hy_gla_lasp2(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                        const double *head_decay, int64_t chunk) {
  const hy_sequence *seq = hy_sequence_get();
  int W = hy_group_size(seq->group), r = hy_group_rank(seq->group);
  int64_t B = q->shape[0], H = q->shape[2], dk = q->shape[3], dv = v->shape[3];
  if (W == 1) return slice_op(q, k, v, g, head_decay, chunk);
  bool decays = g || head_decay;
  /* This slice's state M and its total decay exp(B), packed: ONE AllGather per layer. */
  hy_tensor *packed = slice_state(k, v, g, head_decay);
  /* The AllGather overlaps the slice's own chunked op, which does not need it (and in the
   * backward the reduce-scatter overlaps that op's backward), unless dist.overlap is off. */
  hy_gathering gathering = hy_dist_allgather_start(seq->group, 1, &packed);
  hy_tensor *gathered = seq->overlap ? NULL : hy_dist_gathered(&gathering);
  hy_tensor *o = slice_op(q, k, v, g, head_decay, chunk);
  if (!gathered) gathered = hy_dist_gathered(&gathering); /* [W, B H, dk, dv (+ 1)] */
  hy_tensor *Ms = decays ? hy_slice(gathered, 3, 0, dv) : gathered;
  hy_tensor *As = decays ? hy_slice(gathered, 3, dv, dv + 1) : NULL;
  /* S_in by Horner's rule over the earlier ranks: S <- diag(A_s) S + M_s. It starts from zero
   * times the gathered tensors, so that every rank's output depends on them and every rank's
   * backward takes part in their reduce-scatter, rank 0 included. */
  hy_tensor *S = hy_scale(hy_reshape(hy_slice(Ms, 0, 0, 1), HY_SHAPE(B, H, dk, dv)), 0.0);
  for (int s = -1; s < r; s++) { /* s = -1: the zero times A_0 */
    int a = s < 0 ? 0 : s;
    if (As) S = hy_mul(S, hy_reshape(hy_slice(As, 0, a, a + 1), HY_SHAPE(B, H, dk, 1)));
    if (s >= 0) S = hy_add(S, hy_reshape(hy_slice(Ms, 0, s, s + 1), HY_SHAPE(B, H, dk, dv)));
  }
  return with_earlier_share(o, q, S, g, head_decay);
}

hy_tensor *hy_lasp2h_attend(hy_causal_attention_fn attend, const void *layer, hy_tensor *q,
                            hy_tensor *k, hy_tensor *v) {
  if (!hy_sequence_parallel()) return attend(layer, q, k, v);
  int64_t offset = hy_sequence_get()->offset, T = q->shape[1], end = offset + T;
  hy_tensor *ks, *vs;
  hy_lasp2h_gather(k, v, &ks, &vs);
  ks = hy_slice(ks, 1, 0, end), vs = hy_slice(vs, 1, 0, end);
  if (offset > 0) {
    hy_shape front = HY_SHAPE(q->shape[0], offset, q->shape[2], q->shape[3]);
    hy_tensor *parts[2] = {hy_zeros(q->dtype, front), q};
    q = hy_concat(2, parts, 1);
  }
  return hy_slice(attend(layer, q, ks, vs), 1, offset, end);
}

void hy_lasp2h_gather(hy_tensor *k, hy_tensor *v, hy_tensor **ks, hy_tensor **vs) {
  const hy_sequence *seq = hy_sequence_get();
  int W = hy_group_size(seq->group);
  if (W == 1) {
    *ks = k, *vs = v;
    return;
  }
  int64_t B = k->shape[0], T = k->shape[1], H = k->shape[2], D = k->shape[3];
  hy_tensor *kv[2] = {hy_reshape(k, HY_SHAPE(B * T, H, D)), hy_reshape(v, HY_SHAPE(B * T, H, D))};
  hy_tensor *all = hy_dist_allgather_cat(seq->group, 2, kv); /* [W, B T, H, 2 D] */
  /* -> [B, W, T, H 2 D] -> [B, W T, H, 2 D]; one sequence is in that order already (no copy
   * here, nor of the gradient in the backward) */
  hy_tensor *ordered =
      B == 1 ? all
             : hy_contiguous(hy_transpose(hy_reshape(all, HY_SHAPE(W, B, T, H * 2 * D)), 0, 1));
  hy_tensor *whole = hy_reshape(ordered, HY_SHAPE(B, W * T, H, 2 * D));
  *ks = hy_slice(whole, 3, 0, D);
  *vs = hy_slice(whole, 3, D, 2 * D);
}
