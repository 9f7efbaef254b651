/* LASP-2: sequence parallelism for the linear-attention family. Each rank of the sequence group
 * holds a contiguous slice of the sequence. It runs the chunked op on its slice from a zero state,
 * computes the state its slice would hand on, M_r = sum_s (k_s * exp(B_r - b_s))^T v_s (with b the
 * cumulative log decay inside the slice and B_r its total), and ONE AllGather shares every rank's
 * M and B. Each rank then folds in the earlier ranks' states,
 *   S_in = sum_{s < r} diag(exp(sum_{s < u < r} B_u)) M_s,
 * and adds (q_t * exp(b_t)) S_in to its outputs. The gathered size, H d_k (d_v + 1) per sequence,
 * does not depend on the sequence length. Everything is ops on the tape: the backward runs the
 * AllGather's matching reduce-scatter, once per layer. */
#ifndef HYLA_LASP2_H
#define HYLA_LASP2_H

#include "tensor/tensor.h"

/* hy_gla (g [B, T, H, dk] log decays) or hy_linear_attention (g NULL, with head_decay a constant
 * per head, or neither: no decay) over the whole sequence: that op itself on one process, LASP-2
 * over the ranks of the sequence group (hy_sequence_get), whose slice T is. */
hy_tensor *hy_gla_lasp2(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                        const double *head_decay, int64_t chunk);

/* LASP-2H: the softmax family. ONE AllGather of K and V [B, T, H, D] (packed side by side, the
 * packing only a send buffer: hy_dist_allgather_cat) of every rank along the sequence: *ks, *vs
 * [B, W T, H, D], views of the gathered tensor (the backward reduce-scatters their gradients). */
void hy_lasp2h_gather(hy_tensor *k, hy_tensor *v, hy_tensor **ks, hy_tensor **vs);

/* Causal attention of q against k and v, all [B, T, H, D] with T queries against their own T keys
 * (hy_sigmoid_attention, hy_softplus_attention, their naive forms). */
typedef hy_tensor *(*hy_causal_attention_fn)(const void *layer, hy_tensor *q, hy_tensor *k,
                                             hy_tensor *v);

/* LASP-2H for such ops: without sequence parallelism, attend(layer, q, k, v). With it, ONE
 * AllGather of every rank's keys and values (hy_lasp2h_gather) and this rank's queries with
 * `offset` zero rows in front for the earlier ranks', [B, offset + T, H, D]; the op runs on those
 * and rows offset .. offset + T - 1 are kept. They are exactly the one-process rows (a causal row
 * sees only keys), and the zero rows get no output gradient, so they add nothing to the key and
 * value gradients. The price: the earlier ranks' rows are computed and dropped (a quarter of the
 * op's work on the last of two ranks). */
hy_tensor *hy_lasp2h_attend(hy_causal_attention_fn attend, const void *layer, hy_tensor *q,
                            hy_tensor *k, hy_tensor *v);

#endif
