/* Every tensor op of hyla. Each returns a new step tensor (or a view), checks its inputs (a
 * mismatch aborts naming the op and the shapes), and records a tape node when grad mode is on and
 * an input requires a gradient. Float ops take f32 or f64; all inputs of an op share one dtype. */
#ifndef HYLA_OPS_H
#define HYLA_OPS_H

#include "tensor/tensor.h"

/* Matrix products through BLAS. a [..., M, K] times b [K, N] or b [..., K, N] with the same leading
 * dims. Transposed views (hy_transpose) go to BLAS as transposes, without a copy. */
hy_tensor *hy_matmul(hy_tensor *a, hy_tensor *b);

/* Elementwise binary ops with broadcasting: shapes align at the right, and a dim of size 1 (or a
 * missing leading dim) stretches to the other's size. */
hy_tensor *hy_add(hy_tensor *a, hy_tensor *b);
hy_tensor *hy_sub(hy_tensor *a, hy_tensor *b);
hy_tensor *hy_mul(hy_tensor *a, hy_tensor *b);
hy_tensor *hy_div(hy_tensor *a, hy_tensor *b);

/* Elementwise unary ops. */
hy_tensor *hy_scale(hy_tensor *x, double c);      /* c * x */
hy_tensor *hy_add_scalar(hy_tensor *x, double c); /* x + c */
hy_tensor *hy_exp(hy_tensor *x);
hy_tensor *hy_log(hy_tensor *x);
hy_tensor *hy_sigmoid(hy_tensor *x);
hy_tensor *hy_logsigmoid(hy_tensor *x);
hy_tensor *hy_softplus(hy_tensor *x);
hy_tensor *hy_silu(hy_tensor *x);
hy_tensor *hy_tanh(hy_tensor *x);
hy_tensor *hy_relu(hy_tensor *x);
hy_tensor *hy_sqrt(hy_tensor *x);
hy_tensor *hy_rsqrt(hy_tensor *x);
hy_tensor *hy_pow(hy_tensor *x, double p); /* x^p */
hy_tensor *hy_elu(hy_tensor *x);           /* x > 0 ? x : e^x - 1 */

/* Reductions over one axis; keepdim leaves it with size 1. max sends its gradient to the first
 * maximal element. */
hy_tensor *hy_sum(hy_tensor *x, int axis, bool keepdim);
hy_tensor *hy_mean(hy_tensor *x, int axis, bool keepdim);
hy_tensor *hy_max(hy_tensor *x, int axis, bool keepdim);
hy_tensor *hy_sum_all(hy_tensor *x); /* a one-element tensor of shape [1] */

/* Over the last axis: softmax keeps the shape, logsumexp drops the axis. */
hy_tensor *hy_softmax(hy_tensor *x);
hy_tensor *hy_logsumexp(hy_tensor *x);

/* Inclusive cumulative sum along an axis; reverse sums from the end (y_i = sum_{j >= i} x_j). */
hy_tensor *hy_cumsum(hy_tensor *x, int axis, bool reverse);

/* Rows of weight [V, d] picked by the i32 indices [...]: out [..., d]. */
hy_tensor *hy_embedding(hy_tensor *weight, hy_tensor *indices);

/* Mean over the targets that are not ignore_index of -log softmax(logits)[target]; logits
 * [..., V], targets i32 [...]. Returns shape [1]; 0 when every target is ignored. */
hy_tensor *hy_cross_entropy(hy_tensor *logits, hy_tensor *targets, int ignore_index);

/* x / sqrt(mean(x^2 over the last axis) + eps) * weight; weight [d] or NULL. */
hy_tensor *hy_rmsnorm(hy_tensor *x, hy_tensor *weight, double eps);

/* Rotary embedding of x [B, T, H, D] (D even), rotate-half convention: channel i pairs with
 * i + D/2 and turns by angle (t + pos_offset) * theta^(-2i/D). */
hy_tensor *hy_rope(hy_tensor *x, int64_t pos_offset, double theta);

/* Causal softmax attention, fused (FlashAttention-2 style: online softmax forward, recompute in
 * backward from the saved log-sum-exp). q, k, v [B, T, H, D]; out [B, T, H, D]. */
hy_tensor *hy_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale);
/* Sliding-window attention: query t sees the `window` keys t - window < s <= t (0: all). */
hy_tensor *hy_attention_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window);
/* Queries at positions q_offset .. q_offset + T - 1 against keys 0 .. Tk - 1 (k, v [B, Tk, H, D],
 * Tk >= q_offset + T): a sequence-parallel rank's slice of queries against the gathered keys. */
hy_tensor *hy_attention_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window, int64_t q_offset);

/* Chunked gated linear attention (GLA; with g NULL, plain causal linear attention):
 * S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = q_t S_t, S_0 = 0, computed chunk by chunk
 * (`chunk` tokens, any T) with a hand-written backward, states in the inputs' precision.
 * q, k, g [B, T, H, dk] (g: log decays, <= 0 in practice), v [B, T, H, dv] -> o [B, T, H, dv].
 * q is used as given: scale it first. */
hy_tensor *hy_gla(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g, int64_t chunk);
/* The same recurrence with a constant decay per head, exp(log_decay[h]) (lightning attention), or
 * none when log_decay is NULL (plain linear attention); the intra-chunk sums become GEMMs. */
hy_tensor *hy_linear_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, const double *log_decay,
                               int64_t chunk);

/* Shapes and views. reshape, transpose and slice are views where the layout allows (reshape copies
 * a non-contiguous input); split returns views; concat and contiguous copy. */
hy_tensor *hy_reshape(hy_tensor *x, hy_shape shape); /* one size may be -1 */
hy_tensor *hy_transpose(hy_tensor *x, int axis0, int axis1);
hy_tensor *hy_slice(hy_tensor *x, int axis, int64_t start, int64_t end);
void hy_split(hy_tensor *x, int axis, int n, const int64_t *sizes, hy_tensor **out);
hy_tensor *hy_concat(int n, hy_tensor *const *xs, int axis);
hy_tensor *hy_contiguous(hy_tensor *x); /* x itself when already contiguous */
hy_tensor *hy_copy(hy_tensor *x);       /* always a new contiguous tensor */

#endif
