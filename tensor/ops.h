/* Every tensor op of hyla. Each returns a new step tensor (or a view), checks its inputs (a
 * mismatch aborts naming the op and the shapes), and records a tape node when grad mode is on and
 * an input requires a gradient. Float ops take f32 or f64 on the CPU, f32 or bf16 on the GPU; all
 * inputs of an op share one dtype unless its comment says otherwise. An op without bf16 kernels
 * computes bf16 inputs in f32 and returns its result in bf16 (cast on the tape). */
#ifndef HYLA_OPS_H
#define HYLA_OPS_H

#include "tensor/sla_types.h"
#include "tensor/tensor.h"

/* Matrix products through BLAS. a [..., M, K] times b [K, N] or b [..., K, N] with the same leading
 * dims. Transposed views (hy_transpose) go to BLAS as transposes, without a copy. */
hy_tensor *hy_matmul(hy_tensor *a, hy_tensor *b);

/* A dense (linear) layer: x W^T (+ bias) for x [..., in], weight [out, in], bias [out] or NULL, in
 * x's dtype. A bf16 x may take an f32 weight (a persistent parameter; mixed precision): the product
 * reads the weight's bf16 copy (hy_bf16_copy), and the weight's gradient is summed in f32 from
 * the bf16 operands. */
hy_tensor *hy_dense(hy_tensor *x, hy_tensor *weight, hy_tensor *bias);

/* Elementwise binary ops with broadcasting: shapes align at the right, and a dim of size 1 (or a
 * missing leading dim) stretches to the other's size. Mixed precision: a bf16 operand with an f32
 * one (a bias parameter added to bf16 activations) casts the f32 one to bf16 on the tape
 * (hy_cast), so the result is bf16 and the f32 operand's gradient arrives in f32; cast the bf16 one
 * to f32 first to keep an f32 result (the residual stream). Any other pair needs one dtype. */
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
 * [..., V], targets i32 [...]. Returns shape [1] on the logits' device (f32 for bf16 logits); 0
 * when every target is ignored. On the GPU neither the loss nor its gradient passes the host. */
hy_tensor *hy_cross_entropy(hy_tensor *logits, hy_tensor *targets, int ignore_index);
/* hy_cross_entropy(hy_dense(h, weight, NULL), targets, ignore_index) as one op that never holds
 * all the logits (tensor/dense_cross_entropy.c): h [..., d], weight [V, d] (a language model's
 * head; with a bf16 h, an f32 parameter as in hy_dense), targets i32 [...]. The loss is f32 for
 * a bf16 h. It walks the rows in chunks, and computes the gradients of h and weight in the
 * forward (when they need one) for the backward to scale by the loss's gradient. */
hy_tensor *hy_dense_cross_entropy(hy_tensor *h, hy_tensor *weight, hy_tensor *targets,
                                  int ignore_index);
/* Rows per chunk of hy_dense_cross_entropy; 0 (the start) picks them by a memory budget. For
 * tests and benchmarks. */
void hy_dense_cross_entropy_chunk(int64_t rows);
/* Stops naming op and the first position (row-major) of a target outside [0, V) that is not
 * ignore_index; targets i32 on the host, any strides. The losses check host targets themselves;
 * GPU targets are not read back (a bad one makes the loss NaN), so a caller that moves targets to
 * the GPU checks them first. */
void hy_check_targets(const char *op, const hy_tensor *targets, int64_t V, int ignore_index);

/* x / sqrt(mean(x^2 over the last axis) + eps) * weight; weight [d] or NULL, in x's dtype (f32
 * for bf16 x: a parameter in mixed precision). The output has x's dtype. */
hy_tensor *hy_rmsnorm(hy_tensor *x, hy_tensor *weight, double eps);

/* The residual step of a pre-norm block in one pass: *sum = x + y in x's dtype (x the residual
 * stream, f32 or f64; y the branch's output, of x's dtype or bf16; y NULL: *sum = x itself, no
 * add), and the result rmsnorm(*sum, weight, eps) in `dtype` (x's, or bf16 on the GPU: the next
 * layer's input in mixed precision). Both outputs take gradients (sum may be NULL when the caller
 * needs only the norm). */
hy_tensor *hy_add_rmsnorm(hy_tensor *x, hy_tensor *y, hy_tensor *weight, double eps, hy_dtype dtype,
                          hy_tensor **sum);

/* Rotary embedding of x [B, T, H, D] (D even), rotate-half convention: channel i pairs with
 * i + D/2 and turns by angle (t + pos_offset) * theta^(-2i/D). x may be a strided view whose
 * channels are contiguous (heads sliced from one projection); the output is packed. */
hy_tensor *hy_rope(hy_tensor *x, int64_t pos_offset, double theta);

/* SwiGLU's product, silu(g) * u elementwise (silu(v) = v sigmoid(v)); g and u of one shape and
 * dtype, either a strided view whose rows (last dim) are contiguous (the halves of one
 * [..., 2 h] projection); the output is packed. */
hy_tensor *hy_swiglu(hy_tensor *g, hy_tensor *u);

/* Causal softmax attention, fused (FlashAttention-2 style: online softmax forward, recompute in
 * backward from the saved log-sum-exp). q, k, v [B, T, H, D]; out [B, T, H, D]. bf16 tensors of
 * head size 64 or 128 run on the tensor cores (bf16 products, f32 sums and statistics), other
 * head sizes in f32. */
hy_tensor *hy_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale);
/* Sliding-window attention: query t sees the `window` keys t - window < s <= t (0: all). */
hy_tensor *hy_attention_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window);
/* Queries at positions q_offset .. q_offset + T - 1 against keys 0 .. Tk - 1 (k, v [B, Tk, H, D],
 * Tk >= q_offset + T): a sequence-parallel rank's slice of queries against the gathered keys. */
hy_tensor *hy_attention_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window, int64_t q_offset);

/* Causal sigmoid attention (FlashSigmoid), fused on hy_attention's tiles with a hand-written
 * backward: o_t = sum_{s <= t} sigmoid(scale q_t . k_s + bias) v_s, no normalization over s.
 * q, k, v [B, T, H, D] (strided views as for hy_attention); out [B, T, H, D]. */
hy_tensor *hy_sigmoid_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                double bias);
/* Causal softplus attention with length scaling (LSSA) and re-weighting (LSSAR), fused likewise:
 * for query t at global position t + pos_offset (keys likewise), c_t = log(t + pos_offset + 1) /
 * log(train_len) (1 when train_len <= 1), w_ts = softplus(c_t scale q_t . k_s)^power for s <= t,
 * o_t = sum_s w_ts v_s / sum_s w_ts. train_len >= 0, pos_offset >= 0, power > 0. */
hy_tensor *hy_softplus_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                                 int64_t train_len, double power, int64_t pos_offset);

/* Causal sparse-linear attention (SLA, Zhang et al. 2025), fused with a hand-written backward.
 * q, k, v [B, T, H, D] (strided views as for hy_attention) in blocks of `block` >= 1 rows (the
 * last one shorter when block does not divide T). Query block i sees key blocks j <= i: the
 * diagonal block is always critical; the i earlier ones, ranked by pooled q_{i-1} . pooled k_j
 * (block means, k not centred; ties to the lower j; the PREVIOUS query block's mean, so that the
 * choice reads only rows before block i and the op is causal row by row), give
 * ceil(critical_fraction i) critical blocks from the top and floor(negligible_fraction i)
 * negligible ones from the bottom (never a critical one); the rest are marginal.
 * o_s = softmax(scale q k^T) v over the critical blocks' keys (causal inside the diagonal block);
 * o_l_t = phi(q_t) S / (phi(q_t) . z + 1e-5) with S = sum phi(k_s)^T v_s and z = sum phi(k_s)
 * over the marginal blocks' keys. Returns ONE tensor [B, T, H, 2 D]: o_s in channels [0, D), o_l
 * in [D, 2 D); the layer projects o_l and adds. The block selection gets no gradient. stats (may
 * be NULL) receives the fractions of causal blocks (j <= i) computed exactly and linearly.
 * feature_map: a hy_sla_feature_map (tensor/sla_types.h). */
hy_tensor *hy_sla(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale, double critical_fraction,
                  double negligible_fraction, int feature_map, int64_t block, hy_sla_stats *stats);
/* hy_sla for a sequence-parallel rank's slice: the T queries q [B, T, H, D] sit at positions
 * q_offset .. q_offset + T - 1 of the keys k, v [B, Tk, H, D] (q_offset + T <= Tk; later keys are
 * not read, and get zero gradients), q_offset a multiple of the block, so that q starts block
 * first = q_offset / block of the sequence. q_before [B, block, H, D] holds the queries of block
 * first - 1, whose mean ranks block first's key blocks (NULL exactly when q_offset = 0); it gets
 * no gradient. Each output row, and the gradients from this op's rows, are hy_sla's on the whole
 * sequence: blocks, rankings and counts go by the sequence's positions. */
hy_tensor *hy_sla_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *q_before,
                         int64_t q_offset, double scale, double critical_fraction,
                         double negligible_fraction, int feature_map, int64_t block,
                         hy_sla_stats *stats);
/* hy_sla's block selection (no tape): i32 [B, H, nb, nb], nb = ceil(T / block), entry (i, j) the
 * class (HY_SLA_FUTURE, _NEGLIGIBLE, _MARGINAL, _CRITICAL) of key block j for query block i.
 * hy_sla_select_offset: hy_sla_offset's, [B, H, nb, first + nb] for q's nb query blocks. */
hy_tensor *hy_sla_select(hy_tensor *q, hy_tensor *k, int64_t block, double critical_fraction,
                         double negligible_fraction, hy_sla_stats *stats);
hy_tensor *hy_sla_select_offset(hy_tensor *q, hy_tensor *k, hy_tensor *q_before, int64_t q_offset,
                                int64_t block, double critical_fraction, double negligible_fraction,
                                hy_sla_stats *stats);

/* Chunked gated linear attention (GLA; with g NULL, plain causal linear attention):
 * S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = q_t S_t, S_0 = 0, computed chunk by chunk
 * (`chunk` tokens, any T) with a hand-written backward, states in the inputs' precision (f32 for
 * bf16 inputs, whose sums are f32 too).
 * q, k, g [B, T, H, dk] (g: log decays, <= 0 in practice), v [B, T, H, dv] -> o [B, T, H, dv].
 * q is used as given: scale it first. */
hy_tensor *hy_gla(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g, int64_t chunk);
/* The same recurrence with a constant decay per head, exp(log_decay[h]) (lightning attention), or
 * none when log_decay is NULL (plain linear attention); the intra-chunk sums become GEMMs. */
hy_tensor *hy_linear_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, const double *log_decay,
                               int64_t chunk);

/* RAT (Wei et al. 2025; mixer "rat"): per head, the gated recurrence inside chunks of `chunk`
 * tokens, xs_t = f_t xs_{t-1} + (1 - f_t) u_t and ks_t = f_t ks_{t-1} + (1 - f_t) k_t (reset at
 * each chunk start), then one softmax per query over the final states of all strictly earlier
 * chunks plus its own chunk's running state (ks_t, xs_t), with RoPE at chunk-level positions
 * (chunk index, base theta) on q and the keys, fused with a hand-written backward. q, u, k, f
 * [B, T, H, D] (D even, f in (0, 1), q and k unrotated), any T; out [B, T, H, D]. The exact math:
 * tensor/rat.c. */
hy_tensor *hy_rat(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, int64_t chunk,
                  double scale, double theta);
/* hy_rat on a slice that starts after P whole chunks of the same sequence (sequence parallelism):
 * kp, vp [B, P, H, D] are those chunks' final key and value states (keys unrotated, as
 * hy_rat_chunk_ends gives them), which every query of the slice also attends to, and the slice's
 * chunk c is chunk P + c for the RoPE. The rows equal those of hy_rat on the whole sequence. */
hy_tensor *hy_rat_after(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, hy_tensor *kp,
                        hy_tensor *vp, int64_t chunk, double scale, double theta);
/* RAT's gated recurrence h_t = f_t h_{t-1} + (1 - f_t) x_t (reset at each chunk start) at the last
 * token of each chunk: x, f [B, T, H, D], T a multiple of chunk -> [B, T / chunk, H, D]. */
hy_tensor *hy_rat_chunk_ends(hy_tensor *x, hy_tensor *f, int64_t chunk);

/* The Titans neural memory's chunk recurrence (layers/titans_memory.h) as one op with a
 * hand-written backward: per head, chunks of `chunk` tokens update the memory MLP (depth 1: M(z) =
 * z W1; depth 2: M(z) = silu(z W1) W2) by momentum gradient descent on theta_t ||M(k_t) - v_t||^2
 * (S_n = eta_n S_{n-1} - U_n, M_n = keep_n M_{n-1} + S_n), and token t reads
 * y_t = M_{floor((t + 1) / chunk)}(q_t). q, k, v [B, H, T, D], theta [B, H, T, 1], eta and keep
 * [B, H, N, 1] with N = floor(T / chunk) (NULL when N = 0), M_0 as w1 [H, D, F] and w2 [H, F, D]
 * (depth 2) or w1 [H, D, D] and w2 NULL (depth 1), shared by the batch; y [B, H, T, D]. CPU
 * (f32, f64) and GPU (f32) kernels; on the GPU bf16 inputs may mix with f32 ones (the memory's
 * f32 weights): all compute in f32 and y takes q's dtype. The exact math: tensor/titans_scan.c. */
hy_tensor *hy_titans_scan(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *theta,
                          hy_tensor *eta, hy_tensor *keep, hy_tensor *w1, hy_tensor *w2,
                          int64_t chunk);
/* The same scan from a state of each sequence's own and handing on its last: init (NULL: M_0 and
 * zero momentum) [B, H, 2, P], P the memory's size per head (D D, or 2 D F: w1's then w2's, each
 * row-major), holds the weights, then the momentum, the first chunk starts from; *final (when
 * final is not NULL) gets the state after the last complete chunk in the same layout (the op's
 * second output; in f32 when the inputs are bf16). With init, w1 and w2 only give the memory's
 * shape and get no gradient. Sequence parallelism hands the state from rank to rank. */
hy_tensor *hy_titans_scan_state(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *theta,
                                hy_tensor *eta, hy_tensor *keep, hy_tensor *w1, hy_tensor *w2,
                                hy_tensor *init, int64_t chunk, hy_tensor **final);

/* Shapes and views. reshape, transpose and slice are views where the layout allows (reshape copies
 * a non-contiguous input); split returns views; concat and contiguous copy. They move data only,
 * so they also take bf16 tensors on the CPU. */
hy_tensor *hy_reshape(hy_tensor *x, hy_shape shape); /* one size may be -1 */
hy_tensor *hy_transpose(hy_tensor *x, int axis0, int axis1);
hy_tensor *hy_slice(hy_tensor *x, int axis, int64_t start, int64_t end);
void hy_split(hy_tensor *x, int axis, int n, const int64_t *sizes, hy_tensor **out);
hy_tensor *hy_concat(int n, hy_tensor *const *xs, int axis);
hy_tensor *hy_contiguous(hy_tensor *x); /* x itself when already contiguous */
hy_tensor *hy_copy(hy_tensor *x);       /* always a new contiguous tensor */

/* x in another float dtype (a new contiguous tensor; x itself when it has that dtype already);
 * the gradient flows back converted to x's dtype. bf16 rounds to nearest even. */
hy_tensor *hy_cast(hy_tensor *x, hy_dtype dtype);

/* A contiguous copy of x on `device` (x itself when it is there already); the gradient flows back
 * to x's device. */
hy_tensor *hy_to(hy_tensor *x, hy_device device);

#endif
