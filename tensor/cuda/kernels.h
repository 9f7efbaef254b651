/* CUDA kernels: the CPU kernels' twins (tensor/cpu/kernels.h), with the same arguments and the
 * same meaning, over device pointers, in f32; a _bf16 twin takes bf16 storage (hy_bf16 in C,
 * computing in f32). tensor/<op>.c picks CPU or CUDA by the tensor's device (HY_KERNEL and
 * HY_KERNEL_BF16 in tensor/op.h). Gradient outputs (g*) are accumulated into (+=), as on the
 * CPU, or overwritten (a fresh gradient from hy_grad_acc) where an accumulate flag, or the
 * `overwrite` bits (HY_OVERWRITE_*) of a dims struct, say so. Launches go to hyla's stream and
 * return at once. */
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
void cuda_binary_bf16(hy_binary_op op, const hy_bcast *bc, const hy_bf16 *a, const hy_bf16 *b,
                      hy_bf16 *y);
void cuda_binary_backward_f32(hy_binary_op op, const hy_bcast *bc, const float *a, const float *b,
                              const float *gy, float *ga, float *gb, bool acc_a, bool acc_b);
void cuda_binary_backward_bf16(hy_binary_op op, const hy_bcast *bc, const hy_bf16 *a,
                               const hy_bf16 *b, const hy_bf16 *gy, hy_bf16 *ga, hy_bf16 *gb,
                               bool acc_a, bool acc_b);
void cuda_unary_f32(hy_unary_op op, double p, int64_t n, const float *x, float *y);
void cuda_unary_bf16(hy_unary_op op, double p, int64_t n, const hy_bf16 *x, hy_bf16 *y);
void cuda_unary_backward_f32(hy_unary_op op, double p, int64_t n, const float *x, const float *y,
                             const float *gy, float *gx, bool accumulate);
void cuda_unary_backward_bf16(hy_unary_op op, double p, int64_t n, const hy_bf16 *x,
                              const hy_bf16 *y, const hy_bf16 *gy, hy_bf16 *gx, bool accumulate);
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
/* Cross entropy (tensor/cpu/cross_entropy.c): the count, the loss and the loss's gradient stay in
 * device memory; lse, the loss and its gradient are f32 also for bf16 logits. */
void cuda_cross_entropy_count_f32(int64_t rows, const int32_t *targets, int ignore_index,
                                  int64_t *count);
void cuda_cross_entropy_rows_f32(int64_t rows, int64_t V, float *logits, const int32_t *targets,
                                 int ignore_index, float *lse, double *row_loss,
                                 const int64_t *count);
void cuda_cross_entropy_rows_bf16(int64_t rows, int64_t V, hy_bf16 *logits, const int32_t *targets,
                                  int ignore_index, float *lse, double *row_loss,
                                  const int64_t *count);
void cuda_cross_entropy_total_f32(int64_t rows, const double *row_loss, const int64_t *count,
                                  float *loss);
void cuda_cross_entropy_backward_f32(int64_t rows, int64_t V, const float *logits,
                                     const int32_t *targets, int ignore_index, const float *lse,
                                     const int64_t *count, const float *gloss, bool accumulate,
                                     float *glogits);
void cuda_cross_entropy_backward_bf16(int64_t rows, int64_t V, const hy_bf16 *logits,
                                      const int32_t *targets, int ignore_index, const float *lse,
                                      const int64_t *count, const float *gloss, bool accumulate,
                                      hy_bf16 *glogits);
void cuda_cross_entropy_scale_f32(int64_t n, const float *src, const float *gloss, bool accumulate,
                                  float *dst);
void cuda_cross_entropy_scale_bf16(int64_t n, const float *src, const float *gloss, bool accumulate,
                                   hy_bf16 *dst);
void cuda_rmsnorm_f32(int64_t rows, int64_t d, const float *x, const float *w, double eps, float *y,
                      float *rstd);
void cuda_rmsnorm_backward_f32(int64_t rows, int64_t d, const float *x, const float *w,
                               const float *rstd, const float *gy, float *gx, bool accumulate,
                               float *gw);
/* bf16 rows with an f32 weight (a parameter), f32 rstd and weight gradient. */
void cuda_rmsnorm_bf16(int64_t rows, int64_t d, const hy_bf16 *x, const float *w, double eps,
                       hy_bf16 *y, float *rstd);
void cuda_rmsnorm_backward_bf16(int64_t rows, int64_t d, const hy_bf16 *x, const float *w,
                                const float *rstd, const hy_bf16 *gy, hy_bf16 *gx, bool accumulate,
                                float *gw);
/* cpu_add_rmsnorm's twin for the f32 residual stream x: y (NULL, or f32 or bf16 by y_bf16) and h
 * (f32 or bf16 by h_bf16) in either storage; sum, rstd, the weight and its gradient in f32. */
void cuda_add_rmsnorm(int64_t rows, int64_t d, const float *x, const void *y, bool y_bf16,
                      const float *w, double eps, float *sum, void *h, bool h_bf16, float *rstd);
void cuda_add_rmsnorm_backward(int64_t rows, int64_t d, const float *x, const float *w,
                               const float *rstd, const void *gh, bool h_bf16, const float *gsum,
                               float *gx, bool acc_x, void *gy, bool y_bf16, bool acc_y, float *gw);
void cuda_rope_f32(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset, double theta,
                   bool inverse, bool accumulate, const int64_t *xs, const float *x, float *y);
void cuda_rope_bf16(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset, double theta,
                    bool inverse, bool accumulate, const int64_t *xs, const hy_bf16 *x, hy_bf16 *y);
void cuda_swiglu_f32(int64_t rows, int64_t cols, const float *g, int64_t sg, const float *u,
                     int64_t su, float *y);
void cuda_swiglu_bf16(int64_t rows, int64_t cols, const hy_bf16 *g, int64_t sg, const hy_bf16 *u,
                      int64_t su, hy_bf16 *y);
void cuda_swiglu_backward_f32(int64_t rows, int64_t cols, const float *g, int64_t sg,
                              const float *u, int64_t su, const float *gy, float *gg, bool acc_g,
                              float *gu, bool acc_u);
void cuda_swiglu_backward_bf16(int64_t rows, int64_t cols, const hy_bf16 *g, int64_t sg,
                               const hy_bf16 *u, int64_t su, const hy_bf16 *gy, hy_bf16 *gg,
                               bool acc_g, hy_bf16 *gu, bool acc_u);
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
void cuda_sla_select_f32(const hy_sla_dims *dims, const float *q, const float *k,
                         const float *q_before, int32_t *classes);
void cuda_sla_f32(const hy_sla_dims *dims, const int32_t *classes, const float *q, const float *k,
                  const float *v, float *o, float *lse, float *states);
void cuda_sla_backward_f32(const hy_sla_dims *dims, const int32_t *classes, const float *q,
                           const float *k, const float *v, const float *o, const float *lse,
                           float *states, float *dstates, const float *go, float *gq, float *gk,
                           float *gv);
void cuda_rat_f32(const hy_rat_dims *dims, const float *q, const float *u, const float *k,
                  const float *f, const float *kp, const float *vp, float *o, float *lse);
void cuda_rat_backward_f32(const hy_rat_dims *dims, const float *q, const float *u, const float *k,
                           const float *f, const float *kp, const float *vp, const float *o,
                           const float *lse, const float *go, float *gq, float *gu, float *gk,
                           float *gf, float *gkp, float *gvp);
void cuda_rat_ends_f32(const hy_rat_dims *dims, const float *x, const float *f, float *y);
void cuda_rat_ends_backward_f32(const hy_rat_dims *dims, const float *x, const float *f,
                                const float *gy, float *gx, float *gf);
void cuda_titans_scan_f32(const hy_titans_dims *dims, const float *q, const float *k,
                          const float *v, const float *theta, const float *eta, const float *keep,
                          const float *w1, const float *w2, const float *init, float *y,
                          float *states, float *momenta, float *final);
void cuda_titans_scan_backward_f32(const hy_titans_dims *dims, const float *q, const float *k,
                                   const float *v, const float *theta, const float *eta,
                                   const float *keep, const float *w1, const float *w2,
                                   const float *init, const float *states, const float *momenta,
                                   const float *gy, const float *gfinal, float *gq, float *gk,
                                   float *gv, float *gtheta, float *geta, float *gkeep, float *gw1,
                                   float *gw2, float *ginit, float *work);

/* The optimizer end of a GPU step (optim/clip.c, optim/optimizer.c; tensor/cuda/optim.cu): the
 * global gradient norm and AdamW or SGD over all of a parameter set's f32 parameters, one launch
 * each, nothing read back. A hy_fused keeps the device table of the parameters that have a
 * gradient (made again when a pointer or size changes: never while hyla's stream is being
 * captured), the clip factor, and the step's values, which each update copies from pinned host
 * memory so that a captured update replays with the values written before each replay. */
typedef struct hy_fused hy_fused;
typedef struct {
  float *w;
  const float *g; /* NULL: no gradient, left alone */
  float *m, *v;   /* AdamW's moments, SGD's momentum in m; NULL for the norm alone */
  int64_t n;
  float wd; /* the parameter's weight decay: 0 unless it is marked decay */
} hy_fused_param;
typedef struct {
  float lr, c1, c2; /* AdamW's bias corrections 1 / (1 - beta^t) */
  int32_t first;    /* SGD's first step: the momentum buffer starts at the gradient */
} hy_fused_step;
typedef struct {
  bool adamw;
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps; /* AdamW */
  float momentum;                                            /* SGD */
} hy_fused_hyper;
hy_fused *cuda_fused_new(void);
void cuda_fused_free(hy_fused *f);
/* The L2 norm of the gradients of ps[0..n) in double, summed in a fixed order, into the device
 * double *norm; with clip also the factor the next cuda_fused_update scales each gradient by,
 * max_norm / (norm + 1e-6) where 0 < max_norm < norm and 1 otherwise, and a non-finite norm makes
 * that update leave everything alone (and is counted). */
void cuda_fused_norm(hy_fused *f, int n, const hy_fused_param *ps, double *norm, bool clip,
                     double max_norm);
/* Write the next update's values where its copy reads them, once the last update's copy is done. */
void cuda_fused_set_step(hy_fused *f, hy_fused_step step);
/* Copy the step's values to the device and update every parameter that has a gradient; clipped:
 * scale each gradient by the last cuda_fused_norm's factor as it is read. */
void cuda_fused_update(hy_fused *f, int n, const hy_fused_param *ps, hy_fused_hyper h,
                       bool clipped);
int64_t cuda_fused_nonfinite(hy_fused *f);  /* clips that found a non-finite norm (reads the GPU) */
double cuda_fused_clip_factor(hy_fused *f); /* the last clip factor (reads the GPU) */

#ifdef __cplusplus
}
#endif

#endif
