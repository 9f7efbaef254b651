/* CUDA kernels: the CPU kernels' twins (tensor/cpu/kernels.h), with the same arguments and the
 * same meaning, over device pointers, in f32; a _bf16 twin takes bf16 storage (hy_bf16 in C,
 * computing in f32). tensor/<op>.c picks CPU or CUDA by the tensor's device (HY_KERNEL and
 * HY_KERNEL_BF16 in tensor/op.h). Gradient outputs (g*) are accumulated into (+=),
 * as on the CPU, except those a dims struct flags in its `overwrite` (HY_OVERWRITE_*), which
 * are written. Launches go to hyla's stream and return at once. */
#ifndef HYLA_CUDA_KERNELS_H
#define HYLA_CUDA_KERNELS_H

#include "tensor/kernel_types.h"

#ifdef __cplusplus
extern "C" {
#endif

void cuda_copy_f32(hy_tensor *dst, const hy_tensor *src, bool accumulate);
void cuda_copy_bf16(hy_tensor *dst, const hy_tensor *src, bool accumulate);
/* dst (+)= src between f32 and bf16 in any pairing (the dtypes are the tensors'), any strides. */
void cuda_convert(hy_tensor *dst, const hy_tensor *src, bool accumulate);
/* Every element of a packed f32, bf16 or i32 tensor set to value. */
void cuda_fill(hy_tensor *t, double value);
void cuda_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, double beta, float *C,
                   int64_t ldc);
/* The same product with A and B in bf16 and C bf16 or f32 (c_bf16), summed in f32 on the tensor
 * cores (cuBLASLt): a mixed-precision matmul, or a weight's f32 gradient from bf16 operands. */
void cuda_gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                    const hy_bf16 *A, int64_t lda, const hy_bf16 *B, int64_t ldb, double beta,
                    void *C, bool c_bf16, int64_t ldc);
void cuda_binary_f32(hy_binary_op op, const hy_bcast *bc, const float *a, const float *b, float *y);
void cuda_binary_backward_f32(hy_binary_op op, const hy_bcast *bc, const float *a, const float *b,
                              const float *gy, float *ga, float *gb);
void cuda_unary_f32(hy_unary_op op, double p, int64_t n, const float *x, float *y);
void cuda_unary_backward_f32(hy_unary_op op, double p, int64_t n, const float *x, const float *y,
                             const float *gy, float *gx);
void cuda_reduce_f32(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner, const float *x,
                     float *y, int32_t *argmax);
void cuda_reduce_backward_f32(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner,
                              const int32_t *argmax, const float *gy, float *gx);
void cuda_softmax_f32(int64_t rows, int64_t n, const float *x, float *y);
void cuda_softmax_backward_f32(int64_t rows, int64_t n, const float *y, const float *gy, float *gx);
void cuda_logsumexp_f32(int64_t rows, int64_t n, const float *x, float *y);
void cuda_logsumexp_backward_f32(int64_t rows, int64_t n, const float *x, const float *y,
                                 const float *gy, float *gx);
void cuda_cumsum_f32(int64_t outer, int64_t n, int64_t inner, bool reverse, bool accumulate,
                     const float *x, float *y);
void cuda_embedding_f32(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx, const float *w,
                        float *y);
void cuda_embedding_backward_f32(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,
                                 const float *gy, float *gw);
double cuda_cross_entropy_f32(int64_t rows, int64_t V, const float *logits, const int32_t *targets,
                              int ignore_index, float *lse, int64_t *count);
void cuda_cross_entropy_backward_f32(int64_t rows, int64_t V, const float *logits,
                                     const int32_t *targets, int ignore_index, const float *lse,
                                     double scale, float *glogits);
void cuda_rmsnorm_f32(int64_t rows, int64_t d, const float *x, const float *w, double eps, float *y,
                      float *rstd);
void cuda_rmsnorm_backward_f32(int64_t rows, int64_t d, const float *x, const float *w,
                               const float *rstd, const float *gy, float *gx, float *gw);
void cuda_rope_f32(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset, double theta,
                   bool inverse, bool accumulate, const float *x, float *y);
void cuda_attention_f32(const hy_attn_dims *dims, const float *q, const float *k, const float *v,
                        float *o, float *lse);
void cuda_attention_backward_f32(const hy_attn_dims *dims, const float *q, const float *k,
                                 const float *v, const float *o, const float *lse, const float *go,
                                 float *gq, float *gk, float *gv);
/* bf16 q, k, v, o and gradients, lse f32; head sizes 64 and 128 on the tensor cores (the layouts
 * of tensor/cuda/attention_bf16.h). */
void cuda_attention_bf16(const hy_attn_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                         const hy_bf16 *v, hy_bf16 *o, float *lse);
void cuda_attention_backward_bf16(const hy_attn_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                                  const hy_bf16 *v, const hy_bf16 *o, const float *lse,
                                  const hy_bf16 *go, hy_bf16 *gq, hy_bf16 *gk, hy_bf16 *gv);
void cuda_sigmoid_attention_f32(const hy_attn_dims *dims, double bias, const float *q,
                                const float *k, const float *v, float *o);
void cuda_sigmoid_attention_backward_f32(const hy_attn_dims *dims, double bias, const float *q,
                                         const float *k, const float *v, const float *go, float *gq,
                                         float *gk, float *gv);
void cuda_softplus_attention_f32(const hy_attn_dims *dims, int64_t train_len, int64_t pos_offset,
                                 double power, const float *q, const float *k, const float *v,
                                 float *o, float *rmax, float *rsum);
void cuda_softplus_attention_backward_f32(const hy_attn_dims *dims, int64_t train_len,
                                          int64_t pos_offset, double power, const float *q,
                                          const float *k, const float *v, const float *o,
                                          const float *rmax, const float *rsum, const float *go,
                                          float *gq, float *gk, float *gv);
void cuda_gla_f32(const hy_gla_dims *dims, const float *q, const float *k, const float *v,
                  const float *g, float *o, float *states);
void cuda_gla_backward_f32(const hy_gla_dims *dims, const float *q, const float *k, const float *v,
                           const float *g, const float *states, const float *go, float *gq,
                           float *gk, float *gv);
void cuda_gla_gate_grad_f32(const hy_gla_dims *dims, const float *q, const float *k,
                            const float *dq, const float *dk, float *gg);
/* bf16 q, k, v, g, o and gradients; the states and every sum f32. With a gate g, gq and gk are the
 * op's own dq and dk in f32 (the gate's gradient is summed from them), else bf16. */
void cuda_gla_bf16(const hy_gla_dims *dims, const hy_bf16 *q, const hy_bf16 *k, const hy_bf16 *v,
                   const hy_bf16 *g, hy_bf16 *o, float *states);
void cuda_gla_backward_bf16(const hy_gla_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                            const hy_bf16 *v, const hy_bf16 *g, const float *states,
                            const hy_bf16 *go, void *gq, void *gk, hy_bf16 *gv);
void cuda_gla_gate_grad_bf16(const hy_gla_dims *dims, const hy_bf16 *q, const hy_bf16 *k,
                             const float *dq, const float *dk, hy_bf16 *gg);
void cuda_sla_select_f32(const hy_sla_dims *dims, const float *q, const float *k, int32_t *classes);
void cuda_sla_f32(const hy_sla_dims *dims, const int32_t *classes, const float *q, const float *k,
                  const float *v, float *o, float *lse, float *states);
void cuda_sla_backward_f32(const hy_sla_dims *dims, const int32_t *classes, const float *q,
                           const float *k, const float *v, const float *o, const float *lse,
                           const float *states, float *dstates, const float *go, float *gq,
                           float *gk, float *gv);
void cuda_rat_f32(const hy_rat_dims *dims, const float *q, const float *u, const float *k,
                  const float *f, float *o, float *lse);
void cuda_rat_backward_f32(const hy_rat_dims *dims, const float *q, const float *u, const float *k,
                           const float *f, const float *o, const float *lse, const float *go,
                           float *gq, float *gu, float *gk, float *gf);
void cuda_titans_scan_f32(const hy_titans_dims *dims, const float *q, const float *k,
                          const float *v, const float *theta, const float *eta, const float *keep,
                          const float *w1, const float *w2, float *y, float *states,
                          float *momenta);
void cuda_titans_scan_backward_f32(const hy_titans_dims *dims, const float *q, const float *k,
                                   const float *v, const float *theta, const float *eta,
                                   const float *keep, const float *w1, const float *w2,
                                   const float *states, const float *momenta, const float *gy,
                                   float *gq, float *gk, float *gv, float *gtheta, float *geta,
                                   float *gkeep, float *gw1, float *gw2, float *work);

/* The optimizer's loops (optim/): AdamW and SGD updates with the factors of optim/optimizer.c,
 * the sum of squares of a gradient (in double, the same on every run) and an in-place scaling. */
void cuda_adamw_f32(int64_t n, float *w, float *m, float *v, const float *g, double lr, double b1,
                    double b2, double c1, double c2, double eps, double wd);
void cuda_sgd_f32(int64_t n, float *w, float *b, const float *g, double lr, double mu, double wd,
                  bool first);
double cuda_sum_squares_f32(int64_t n, const float *x);
void cuda_scale_inplace_f32(int64_t n, float *x, double c);

#ifdef __cplusplus
}
#endif

#endif
