/* Helpers for the GPU test suites (tests/cuda/): every CUDA op is run against the CPU path on
 * fresh random inputs, forward and backward, with the GPU arena poisoned first. */
#ifndef HYLA_TEST_GPU_H
#define HYLA_TEST_GPU_H

#include "tensor/device.h"
#include "tests/support.h"

/* Skip the calling test, saying why, where this build or machine has no GPU; fail it instead
 * where HYLA_REQUIRE_GPU is set (scripts/gpu-check.sh), so that a GPU check cannot pass by
 * skipping. */
void t_need_gpu(void);
#define T_NEED_GPU() t_need_gpu()

/* A fresh f32 input on the next seed (t_next_seed), a leaf requiring a gradient: N(0, 1) times
 * scale, or uniform in [lo, hi]. */
hy_tensor *t_randn_leaf(hy_shape shape, double scale);
hy_tensor *t_uniform_leaf(hy_shape shape, double lo, double hi);

/* A copy of t on the GPU (or the host), as a leaf that requires a gradient iff t does. */
hy_tensor *t_to_gpu(const hy_tensor *t);
hy_tensor *t_to_cpu(const hy_tensor *t);

/* Fill the free memory of both arenas (at least 256 MiB of the GPU's) with NaN bytes. */
void t_poison(void);

/* Assert gpu (any device) has cpu's shape, no NaN or infinity, and
 * ||gpu - cpu|| / ||cpu|| <= tol. */
void t_expect_gpu_close(const hy_tensor *gpu, const hy_tensor *cpu, double tol, const char *what);

/* An op under test: its output from n inputs. */
typedef hy_tensor *(*t_gpu_op)(hy_tensor **in, void *ctx);

/* Run op on the CPU inputs and on GPU copies of them (arena poisoned before each), compare the
 * outputs, then back-propagate one random output gradient through both and compare the gradient
 * of every input that requires one. tol: relative norm error (f32: 1e-5). */
void t_expect_gpu_matches_cpu(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs, double tol,
                              const char *what);

/* The same, against the op run on the CPU in f64: for long sums, where the CPU's f32 running sum
 * is itself further than tol from the exact result. cpu_inputs are replaced by f64 copies. */
void t_expect_gpu_matches_f64(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs, double tol,
                              const char *what);

/* Mixed precision: op on GPU copies of the inputs, those flagged in bf16_mask (bit i for input i)
 * as bf16 and the rest as they are (f32 weights, i32 indices), against op on the CPU in f64 on the
 * same values (each bf16 input rounded to bf16 first, so that only the op's own rounding counts;
 * the output gradient likewise). Asserts the GPU output's dtype is out_dtype and each gradient has
 * its input's dtype, then relative norm errors within tol for the output and every input gradient
 * (bf16 storage rounds each value by up to 2^-9: about 3e-3 for an op that stores once). */
void t_expect_bf16_matches_f64(t_gpu_op op, void *ctx, int n, hy_tensor **cpu_inputs,
                               unsigned bf16_mask, hy_dtype out_dtype, double tol,
                               const char *what);

/* Plain ops as the GPU suites run them. t_binary: ctx points to a t_binary_fn, one of T_BINARY
 * (named in T_BINARY_NAME). t_reduce: ctx is a t_reduce_case. The others take no ctx: in[0] times
 * itself, the sum of all of in[0], softmax and log-sum-exp over its last axis, and the products
 * in[0] in[1] and in[0]^T in[1]^T (their last two axes swapped). */
typedef hy_tensor *(*t_binary_fn)(hy_tensor *, hy_tensor *);
extern const t_binary_fn T_BINARY[4];
extern const char *const T_BINARY_NAME[4];
hy_tensor *t_binary(hy_tensor **in, void *ctx);
typedef struct {
  hy_tensor *(*fn)(hy_tensor *, int, bool);
  int axis;
  bool keepdim;
} t_reduce_case;
hy_tensor *t_reduce(hy_tensor **in, void *ctx);
hy_tensor *t_square(hy_tensor **in, void *ctx);
hy_tensor *t_sum_all(hy_tensor **in, void *ctx);
hy_tensor *t_softmax(hy_tensor **in, void *ctx);
hy_tensor *t_logsumexp(hy_tensor **in, void *ctx);
hy_tensor *t_matmul(hy_tensor **in, void *ctx);
hy_tensor *t_matmul_transposed(hy_tensor **in, void *ctx);

/* The GLA family as the GPU suites run it: hy_gla on q, k, v, g in in[0..3] (t_gla), or
 * hy_linear_attention on q, k, v in in[0..2] (t_linear_attention). ctx: a t_gla_ctx. */
typedef struct {
  int64_t chunk;
  const double *log_decay; /* hy_linear_attention's; NULL: none */
} t_gla_ctx;
hy_tensor *t_gla(hy_tensor **in, void *ctx);
hy_tensor *t_linear_attention(hy_tensor **in, void *ctx);

/* Softmax attention as the GPU suites run it: on q, k, v in in[0..2] (hy_attention_offset), or on
 * q, k, v sliced from one [B, T, 3 H D] projection in in[0], as the layers pass them
 * (hy_attention_window). ctx: a t_attn_ctx. */
typedef struct {
  double scale;
  int64_t window, q_offset, H, D;
} t_attn_ctx;
hy_tensor *t_attention(hy_tensor **in, void *ctx);
hy_tensor *t_attention_of_projection(hy_tensor **in, void *ctx);
/* t_attention_of_projection (scale 1 / sqrt(D)) on a fresh random [2, T, 3 H D] projection from
 * `seed`, GPU against CPU within tol; failures name `what` and the sizes. */
void t_expect_attention_of_projection(int64_t T, int64_t H, int64_t D, int64_t window,
                                      uint64_t seed, double tol, const char *what);

#endif
