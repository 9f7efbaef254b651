/* The Titans neural memory (Behrouz et al. 2025; lucidrains/titans-pytorch's NeuralMemory), built
 * from ordinary ops so the tape backpropagates through every inner update to the projections and
 * to the memory's initial weights M_0.
 *
 * Per head h (H heads of width D; widths below per head):
 *   q_t = l2norm(silu(x_t W_Q)),  k_t = l2norm(silu(x_t W_K)),  v_t = silu(x_t W_V)
 *   M(z) = z W          (depth 1: W [D, D])
 *   M(z) = silu(z W1) W2 (depth 2: W1 [D, E D], W2 [E D, D])
 *   l(M; k, v) = ||M(k) - v||^2                                          (associative loss)
 *   theta_t = lr_max sigmoid(x_t w_theta + b_theta)                      (per token;
 *             lr_max 0 in the settings means 1 / D)
 *   eta_n = sigmoid(xbar_n w_eta + b_eta), alpha_n = sigmoid(xbar_n w_alpha + b_alpha)
 *       with xbar_n the mean of x over chunk n                           (per chunk)
 * Chunk n (tokens nb .. nb + b - 1, b = chunk) updates the memory once, every gradient taken at
 * the chunk's starting weights M_{n-1}:
 *   U_n = sum_{t in n} theta_t grad_M l(M_{n-1}; k_t, v_t)
 *   S_n = eta_n S_{n-1} - U_n,   M_n = (1 - alpha_n) M_{n-1} + S_n,   S_0 = 0
 * with the explicit gradients (E_t = M(k_t) - v_t, rows stacked over the chunk):
 *   depth 1: grad_W = 2 K^T (theta * E)
 *   depth 2: h = K W1, a = silu(h), G = 2 theta * E:  grad_W2 = a^T G,
 *            grad_W1 = K^T ((G W2^T) * silu'(h)),  silu'(h) = s (1 + h (1 - s)), s = sigmoid(h)
 * Retrieval (as titans-pytorch's retrieve_memories): token t reads the memory after every chunk
 * that ends at or before t, y_t = M_{floor((t + 1) / b)}(q_t): the last token of a chunk sees its
 * own chunk's update, the others the memory from before their chunk. An incomplete last chunk
 * never updates. With b = 1 this is the per-token recurrence S_t = eta_t S_{t-1} - theta_t grad,
 * M_t = (1 - alpha_t) M_{t-1} + S_t, y_t = M_t(q_t).
 * Output: concat_heads(y) W_O, [B, T, d]. */
#ifndef HYLA_TITANS_MEMORY_H
#define HYLA_TITANS_MEMORY_H

#include "layers/linear.h"
#include "tensor/params.h"
#include "tensor/rng.h"

typedef struct hy_titans_config hy_titans_config; /* layers/titans.h */

typedef struct {
  hy_linear q, k, v;           /* d -> H D, no bias: prefix/w_q, w_k, w_v */
  hy_linear eta, theta, alpha; /* d -> H, with bias: prefix/w_eta, w_theta, w_alpha */
  hy_linear o;                 /* H D -> d: prefix/o_proj */
  hy_tensor *m0[2];            /* M_0: [H, D, D] (depth 1), or [H, D, E D] and [H, E D, D] */
  int64_t heads, dim, hidden, depth, chunk;
  double lr_max;
  bool reference; /* forward runs hy_titans_memory_reference */
} hy_titans_memory;

/* Parameters under prefix (M_0 as prefix/m0_1, prefix/m0_2: xavier-uniform as titans-pytorch's
 * MemoryMLP; projections normal(0, init_std), W_O normal(0, out_std), biases 0). */
void hy_titans_memory_init(hy_titans_memory *m, hy_params *ps, const char *prefix,
                           const hy_titans_config *c, int64_t d_model, hy_dtype dtype, hy_rng *rng,
                           double init_std, double out_std);

/* [B, T, d] -> [B, T, d]: the chunked form (the fused hy_titans_scan), or the reference when
 * m->reference. Under sequence parallelism x is this rank's slice, whole chunks, and the memory
 * continues from the previous rank's (layers/titans_memory.c). */
hy_tensor *hy_titans_memory_forward(const hy_titans_memory *m, hy_tensor *x);
/* The chunk recurrence between the projections and the output, from generic ops: what
 * hy_titans_scan (tensor/ops.h) computes for q, k, v [B, H, T, D], theta [B, H, T, 1] and the
 * gates eta, keep [B, H, T / chunk, 1] (NULL when T < chunk) at M_0 = m->m0, y [B, H, T, D]. The
 * fused op's reference in the tests. */
hy_tensor *hy_titans_memory_scan_composed(const hy_titans_memory *m, hy_tensor *q, hy_tensor *k,
                                          hy_tensor *v, hy_tensor *theta, hy_tensor *eta,
                                          hy_tensor *keep);
/* The same function token by token: each token's gradient (at its chunk's starting weights) is
 * added to the chunk's sum, and the memory is updated when the chunk completes. The projections
 * and the gates of the chunk means (summed token by token) run once over all rows, as in the
 * chunked form, so that with b = 1 both give the same bits. O(T) small ops: for tests and as the
 * plain form. */
hy_tensor *hy_titans_memory_reference(const hy_titans_memory *m, hy_tensor *x);

/* M_0 for each of B sequences: w[0], w[1] [B, H, ., .]. */
void hy_titans_memory_initial(const hy_titans_memory *m, int64_t B, hy_tensor **w);

/* Continuing from a state, segment after segment (titans_mac): a state is [B, H, 2, P], each
 * sequence's weights then momentum as hy_titans_scan_state holds them (P = D D, or 2 D E D: w1's
 * then w2's, row-major; f32 for bf16 inputs); NULL is M_0 with no momentum yet. continue is
 * hy_titans_memory_forward (chunked, or the reference with m->reference) from *state, which
 * becomes the state after the last complete chunk of x. read is the output of the memory at the
 * state's weights for x's queries, with no update: concat_heads(M(q(x))) W_O, [B, T, d]. */
hy_tensor *hy_titans_memory_continue(const hy_titans_memory *m, hy_tensor *x, hy_tensor **state);
/* A state's shape for `batch` sequences: [batch, H, 2, P]. */
hy_shape hy_titans_memory_state_shape(const hy_titans_memory *m, int64_t batch);
/* Under sequence parallelism, the state rank r - 1 of the sequence group hands this rank, for the
 * B sequences of x (its first axis) on x's device (f32 for bf16 x: a state is never bf16). */
hy_tensor *hy_titans_memory_recv_state(const hy_titans_memory *m, const hy_tensor *x);
hy_tensor *hy_titans_memory_read(const hy_titans_memory *m, hy_tensor *state, hy_tensor *x);

/* The memory's weighted gradient sum_t theta_t grad_M ||M(k_t) - v_t||^2 at weights w (w[0], w[1]
 * [B, H, ., .]) for rows k [B, H, n, D], v [B, H, n, D], theta [B, H, n, 1]: g[0], g[1] like w. */
void hy_titans_memory_grad(const hy_titans_memory *m, hy_tensor *const *w, hy_tensor *k,
                           hy_tensor *v, hy_tensor *theta, hy_tensor **g);
/* M(z) for z [B, H, n, D] at weights w [B, H, ., .]: [B, H, n, D]. */
hy_tensor *hy_titans_memory_apply(const hy_titans_memory *m, hy_tensor *const *w, hy_tensor *z);

/* Decoding: the memory's weights, momentum, and the chunk in progress (its gradient sum and input
 * sum), for `batch` sequences; step maps x [B, 1, d] to the forward's row at the next position. */
void *hy_titans_memory_state_new(const hy_titans_memory *m, int64_t batch);
hy_tensor *hy_titans_memory_step(const hy_titans_memory *m, void *state, hy_tensor *x);
/* A decoding state's weights and momentum as a state [B, H, 2, P] of continue and read (a new
 * tensor of the current step). */
hy_tensor *hy_titans_memory_state_of(const hy_titans_memory *m, void *state);
void hy_titans_memory_state_free(void *state);

#endif
