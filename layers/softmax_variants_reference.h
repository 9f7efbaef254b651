/* The naive O(T^2)-memory forms of the fused sigmoid and softplus attention ops, built from plain
 * ops so the tape differentiates them: the references hy_sigmoid_attention and
 * hy_softplus_attention are checked against. The full score matrix [B, H, T, T] is materialized
 * and the causal mask is a 0/1 factor. Same contracts and shapes as the fused ops (tensor/ops.h).
 * For tests and small inputs. */
#ifndef HYLA_SOFTMAX_VARIANTS_REFERENCE_H
#define HYLA_SOFTMAX_VARIANTS_REFERENCE_H

#include "tensor/tensor.h"

/* o = (sigmoid(scale q k^T + bias) * causal) v */
hy_tensor *hy_sigmoid_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                      double bias);

/* W = softplus(c scale q k^T)^power * causal, c [T, 1] per query row; o = (W / rowsum W) v */
hy_tensor *hy_softplus_attention_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                       int64_t train_len, double power, int64_t pos_offset);

#endif
