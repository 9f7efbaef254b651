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

/* Shapes as hy_gla / hy_linear_attention: g [B, T, H, dk] log decays, or NULL with head_decay
 * (a constant per head) or with neither (no decay). T is this rank's slice. */
hy_tensor *hy_lasp2(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g,
                    const double *head_decay, int64_t chunk);

/* LASP-2H: the softmax family. ONE AllGather of K and V [B, T, H, D] (packed side by side) of
 * every rank along the sequence: *ks, *vs [B, W T, H, D] (the backward reduce-scatters their
 * gradients). */
void hy_lasp2h_gather(hy_tensor *k, hy_tensor *v, hy_tensor **ks, hy_tensor **vs);

#endif
