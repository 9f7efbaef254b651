/* The sizes and kinds that tensor/<op>.c hands to a kernel, shared by the CPU kernels
 * (tensor/cpu/) and the CUDA kernels (tensor/cuda/). */
#ifndef HYLA_KERNEL_TYPES_H
#define HYLA_KERNEL_TYPES_H

#include "tensor/tensor.h"

typedef enum { HY_ADD, HY_SUB, HY_MUL, HY_DIV } hy_binary_op;

typedef enum {
  HY_SCALE, /* p * x */
  HY_ADD_SCALAR,
  HY_EXP,
  HY_LOG,
  HY_SIGMOID,
  HY_LOGSIGMOID,
  HY_SOFTPLUS,
  HY_SILU,
  HY_TANH,
  HY_RELU,
  HY_SQRT,
  HY_RSQRT,
  HY_POW, /* x^p */
  HY_ELU, /* x > 0 ? x : e^x - 1 */
} hy_unary_op;

typedef enum { HY_REDUCE_SUM, HY_REDUCE_MEAN, HY_REDUCE_MAX } hy_reduce_op;

/* A broadcast of two contiguous operands to a 4-d output shape: strides are 0 along stretched dims.
 */
typedef struct {
  int64_t shape[HY_MAX_DIMS];
  int64_t sa[HY_MAX_DIMS], sb[HY_MAX_DIMS];
  bool a_full, b_full; /* the operand has the output's shape */
} hy_bcast;

/* The gradients a GPU backward writes instead of adding to (fresh buffers from hy_grad_acc: no
 * zero fill, no read), as bits of a dims struct's `overwrite`; the CPU kernels always add. */
enum { HY_OVERWRITE_Q = 1, HY_OVERWRITE_K = 2, HY_OVERWRITE_V = 4, HY_OVERWRITE_G = 8 };

/* Attention sizes; q/k/v rows are addressed by their strides (in elements) over b, t and h. T
 * queries sit at positions q_offset .. q_offset + T - 1 of a sequence of Tk keys (Tk = T and
 * q_offset = 0 but for sequence parallelism, where a rank's queries see every earlier key). */
typedef struct {
  int64_t B, T, H, D, Tk, q_offset;
  int64_t q_stride[3], k_stride[3], v_stride[3]; /* over b, t, h; the last dim is contiguous */
  double scale;
  int64_t window;     /* query t sees keys t - window < s <= t; 0: all keys up to t */
  unsigned overwrite; /* HY_OVERWRITE_* (softmax attention's GPU backward) */
} hy_attn_dims;

/* Chunked gated linear attention: q, k, g [B, T, H, dk], v and o [B, T, H, dv], contiguous;
 * chunks of C tokens, n_chunks = ceil(T / C). Without g, head h decays by the constant
 * exp(head_decay[h]) (head_decay NULL: no decay). */
typedef struct {
  int64_t B, T, H, dk, dv, C, n_chunks;
  const double *head_decay;
  unsigned overwrite; /* HY_OVERWRITE_* (the GPU backward and gate gradient) */
} hy_gla_dims;

/* Causal sparse-linear attention (tensor/sla.c): q, k, v rows as in `a` (no window); the T
 * queries sit at positions q_offset .. of the Tk keys', q_offset a multiple of `block` (0 but for
 * a sequence-parallel rank's slice; keys after the last query are not read). Blocks of `block` rows
 * from position 0: n_blocks = ceil(T / block) query blocks, the first of them block first_block =
 * q_offset / block of the sequence, and n_key_blocks = first_block + n_blocks key blocks. q_before
 * (the select kernel's argument) holds the queries of block first_block - 1, contiguous [B, block,
 * H, D], when first_block > 0. classes i32 [B, H, n_blocks, n_key_blocks] (the HY_SLA_* of
 * tensor/sla_types.h); of query block i's earlier key blocks n_critical[i] are critical and
 * n_negligible[i] negligible; o [B, T, H, 2 D]: o_s, then o_l; lse [B, H, T]; workspaces states
 * [B, H, n_key_blocks, D (D + 1)], the linear branch's per key block states (the forward and the
 * backward each compute them), and dstates [B, H, n_blocks, D (D + 1)], their gradients per
 * query block (backward). */
typedef struct {
  hy_attn_dims a;
  int64_t block, n_blocks, first_block, n_key_blocks;
  int feature_map; /* hy_sla_feature_map */
  const int64_t *n_critical, *n_negligible;
} hy_sla_dims;

/* RAT (tensor/rat.c): q, u, k, f, o [B, T, H, D] contiguous; chunks of L tokens; n_keys = the
 * slice's chunk-final states any query sees, floor((T - 1) / L); P earlier chunks whose final
 * states kp, vp [B, P, H, D] every query also sees (hy_rat_after; 0 for hy_rat); lse [B, H, T].
 * hy_rat_chunk_ends uses B, T, H, D and L. */
typedef struct {
  int64_t B, T, H, D, L, n_keys, P;
  double scale, theta;
} hy_rat_dims;

/* The Titans memory scan (tensor/titans_scan.c): q, k, v, y [B, H, T, D], theta [B, H, T, 1], eta
 * and keep [B, H, N, 1], contiguous; chunks of C tokens, N = floor(T / C) updates; memory depth 1
 * (w1 [H, D, D]) or 2 (w1 [H, D, F], w2 [H, F, D]); P = the memory's size per head (D D or 2 D F);
 * states and momenta [B, H, slots, P]: the weights and momentum after update j in slot j % slots
 * (slots = N when the backward needs them all, fewer when nothing is recorded); the backward's work
 * [B, H, P]: each sequence's gradient of M_0 before the sum over the batch. A state handed in or
 * on (init, final and their gradients, each optional) is [B, H, 2 P]: weights, then momentum. */
typedef struct {
  int64_t B, H, T, D, F, C, N, depth, P, slots;
} hy_titans_dims;

#endif
