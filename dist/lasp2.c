#include "dist/lasp2.h"
#include "dist/collective_ops.h"
#include "tensor/ops.h"

/* [B, T, H, n] -> [B, H, T, n] as a view (batched matmuls take the strides as they are). */
static hy_tensor *by_head(hy_tensor *x) { return hy_transpose(x, 1, 2); }

/* The op itself over this rank's slice, from a zero state. */
static hy_tensor *slice_op(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                           const double *head_decay, int64_t chunk) {
  return g ? hy_gla(q, k, v, g, chunk) : hy_linear_attention(q, k, v, head_decay, chunk);
}

hy_tensor *hy_gla_lasp2(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                        const double *head_decay, int64_t chunk) {
  const hy_sequence *seq = hy_sequence_get();
  int W = hy_group_size(seq->group), r = hy_group_rank(seq->group);
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], dk = q->shape[3], dv = v->shape[3];
  if (W == 1) return slice_op(q, k, v, g, head_decay, chunk);
  /* b: the cumulative log decay from the slice's start (a constant per head: gamma (t + 1)). */
  hy_tensor *b = NULL;
  if (g) {
    b = hy_cumsum(g, 1, false);
  } else if (head_decay) {
    b = hy_empty_on(HY_CPU, q->dtype, hy_shape_of(q)); /* filled here, then moved to q's device */
    for (int64_t i = 0; i < hy_numel(b); i++) {
      int64_t t = i / (H * dk) % T, h = i / dk % H;
      hy_set(b, i, head_decay[h] * (double)(t + 1));
    }
    b = hy_to(b, q->device);
  }
  /* This slice's state M = (k * exp(B - b))^T v and its total decay B. */
  hy_tensor *kd = k, *total = NULL;
  if (b) {
    total = hy_slice(b, 1, T - 1, T); /* [B, 1, H, dk] */
    kd = hy_mul(k, hy_exp(hy_sub(total, b)));
  }
  hy_tensor *M = hy_matmul(hy_transpose(by_head(kd), 2, 3), by_head(v)); /* [B, H, dk, dv] */
  /* ONE AllGather per layer: M with the total decay packed beside it as an extra column. */
  hy_tensor *packed = hy_reshape(M, HY_SHAPE(B * H, dk, dv));
  if (b) {
    hy_tensor *parts[2] = {packed,
                           hy_reshape(hy_exp(hy_transpose(total, 1, 2)), HY_SHAPE(B * H, dk, 1))};
    packed = hy_concat(2, parts, 2);
  }
  /* The AllGather overlaps the slice's own chunked op, which does not need it (and in the
   * backward the reduce-scatter overlaps that op's backward), unless dist.overlap is off. */
  hy_gathering gathering = hy_dist_allgather_start(seq->group, 1, &packed);
  hy_tensor *gathered = seq->overlap ? NULL : hy_dist_gathered(&gathering);
  hy_tensor *o = slice_op(q, k, v, g, head_decay, chunk);
  if (!gathered) gathered = hy_dist_gathered(&gathering); /* [W, B H, dk, dv (+ 1)] */
  hy_tensor *Ms = b ? hy_slice(gathered, 3, 0, dv) : gathered;
  hy_tensor *As = b ? hy_slice(gathered, 3, dv, dv + 1) : NULL;
  /* S_in by Horner's rule over the earlier ranks: S <- diag(A_s) S + M_s. It starts from zero
   * times the gathered tensors, so that every rank's output depends on them and every rank's
   * backward takes part in their reduce-scatter, rank 0 included. */
  hy_tensor *S = hy_scale(hy_reshape(hy_slice(Ms, 0, 0, 1), HY_SHAPE(B, H, dk, dv)), 0.0);
  for (int s = -1; s < r; s++) { /* s = -1: the zero times A_0 */
    int a = s < 0 ? 0 : s;
    if (As) S = hy_mul(S, hy_reshape(hy_slice(As, 0, a, a + 1), HY_SHAPE(B, H, dk, 1)));
    if (s >= 0) S = hy_add(S, hy_reshape(hy_slice(Ms, 0, s, s + 1), HY_SHAPE(B, H, dk, dv)));
  }
  hy_tensor *qe = b ? hy_mul(q, hy_exp(b)) : q;
  hy_tensor *inter = hy_transpose(hy_matmul(by_head(qe), S), 1, 2); /* [B, T, H, dv] */
  return hy_add(o, inter);
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
