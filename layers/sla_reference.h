/* The naive O(T^2)-memory form of hy_sla (causal sparse-linear attention), built from plain ops so
 * the tape differentiates it: the reference the fused op is checked against. It makes the block
 * selection itself, in plain loops apart from the kernel's, by the same causal rule (query block
 * i ranks its earlier key blocks by mean(q of block i - 1) . mean(k of block j); see
 * hy_sla in tensor/ops.h), and turns it into two masks [B, H, T, T]: an additive one
 * (0 on the critical blocks' keys at or before the query, -inf elsewhere) for the softmax branch
 * and a 0/1 one (the marginal blocks' keys) for the linear branch:
 *   o_s = softmax(scale q k^T + mask) v,
 *   o_l_t = sum_s m_ts (phi(q_t) . phi(k_s)) v_s / (sum_s m_ts phi(q_t) . phi(k_s) + 1e-5).
 * Same contract and output [B, T, H, 2 D] (o_s, then o_l) as hy_sla. For tests and small inputs. */
#ifndef HYLA_SLA_REFERENCE_H
#define HYLA_SLA_REFERENCE_H

#include "tensor/tensor.h"

hy_tensor *hy_sla_naive(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                        double critical_fraction, double negligible_fraction, int feature_map,
                        int64_t block);
/* The same for queries from position `offset` of the keys' sequence, as hy_sla_offset: masks
 * [B, H, T, Tk], query t at position offset + t. */
hy_tensor *hy_sla_naive_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *q_before,
                               int64_t offset, double scale, double critical_fraction,
                               double negligible_fraction, int feature_map, int64_t block);

/* phi(x) over the last axis from plain ops: softmax, elu + 1 or relu (hy_sla_feature_map). */
hy_tensor *hy_sla_feature_map_naive(hy_tensor *x, int feature_map);

#endif
