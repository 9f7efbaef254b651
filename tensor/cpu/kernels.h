/* CPU kernels. Each kernel file is written once over `real` and compiled twice, as float (_f32)
 * and as double (_f64); tensor/<op>.c picks one by dtype. Kernels take contiguous buffers unless
 * a parameter says otherwise. Gradient outputs (g*) are accumulated into (+=), or overwritten
 * where an accumulate flag says so (a fresh gradient, hy_grad_acc). */
#ifndef HYLA_CPU_KERNELS_H
#define HYLA_CPU_KERNELS_H

#include "tensor/kernel_types.h"

#define HY_CPU_KERNELS(S, real)                                                                    \
  void cpu_copy_##S(hy_tensor *dst, const hy_tensor *src, bool accumulate);                        \
  void cpu_gemm_##S(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,     \
                    const real *A, int64_t lda, const real *B, int64_t ldb, double beta, real *C,  \
                    int64_t ldc);                                                                  \
  void cpu_binary_##S(hy_binary_op op, const hy_bcast *bc, const real *a, const real *b, real *y); \
  void cpu_binary_backward_##S(hy_binary_op op, const hy_bcast *bc, const real *a, const real *b,  \
                               const real *gy, real *ga, real *gb, bool acc_a, bool acc_b);        \
  void cpu_unary_##S(hy_unary_op op, double p, int64_t n, const real *x, real *y);                 \
  void cpu_unary_backward_##S(hy_unary_op op, double p, int64_t n, const real *x, const real *y,   \
                              const real *gy, real *gx, bool accumulate);                          \
  void cpu_reduce_##S(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner, const real *x,     \
                      real *y, int32_t *argmax);                                                   \
  void cpu_reduce_backward_##S(hy_reduce_op op, int64_t outer, int64_t n, int64_t inner,           \
                               const int32_t *argmax, const real *gy, real *gx);                   \
  void cpu_softmax_##S(int64_t rows, int64_t n, const real *x, real *y);                           \
  void cpu_softmax_backward_##S(int64_t rows, int64_t n, const real *y, const real *gy, real *gx); \
  void cpu_logsumexp_##S(int64_t rows, int64_t n, const real *x, real *y);                         \
  void cpu_logsumexp_backward_##S(int64_t rows, int64_t n, const real *x, const real *y,           \
                                  const real *gy, real *gx);                                       \
  void cpu_cumsum_##S(int64_t outer, int64_t n, int64_t inner, bool reverse, bool accumulate,      \
                      const real *x, real *y);                                                     \
  void cpu_embedding_##S(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx, const real *w,   \
                         real *y);                                                                 \
  void cpu_embedding_backward_##S(int64_t n_idx, int64_t V, int64_t d, const int32_t *idx,         \
                                  const real *gy, real *gw);                                       \
  void cpu_cross_entropy_count_##S(int64_t rows, const int32_t *targets, int ignore_index,         \
                                   int64_t *count);                                                \
  void cpu_cross_entropy_rows_##S(int64_t rows, int64_t V, real *logits, const int32_t *targets,   \
                                  int ignore_index, real *lse, double *row_loss,                   \
                                  const int64_t *count);                                           \
  void cpu_cross_entropy_total_##S(int64_t rows, const double *row_loss, const int64_t *count,     \
                                   real *loss);                                                    \
  void cpu_cross_entropy_backward_##S(                                                             \
      int64_t rows, int64_t V, const real *logits, const int32_t *targets, int ignore_index,       \
      const real *lse, const int64_t *count, const real *gloss, bool accumulate, real *glogits);   \
  void cpu_cross_entropy_scale_##S(int64_t n, const real *src, const real *gloss, bool accumulate, \
                                   real *dst);                                                     \
  void cpu_rmsnorm_##S(int64_t rows, int64_t d, const real *x, const real *w, double eps, real *y, \
                       real *rstd);                                                                \
  void cpu_rmsnorm_backward_##S(int64_t rows, int64_t d, const real *x, const real *w,             \
                                const real *rstd, const real *gy, real *gx, bool accumulate,       \
                                real *gw);                                                         \
  void cpu_add_rmsnorm_##S(int64_t rows, int64_t d, const real *x, const real *y, const real *w,   \
                           double eps, real *sum, real *h, real *rstd);                            \
  void cpu_add_rmsnorm_backward_##S(int64_t rows, int64_t d, const real *x, const real *w,         \
                                    const real *rstd, const real *gh, const real *gsum, real *gx,  \
                                    bool acc_x, real *gy, bool acc_y, real *gw);                   \
  void cpu_rope_##S(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset, double theta,  \
                    bool inverse, bool accumulate, const int64_t *xs, const real *x, real *y);     \
  void cpu_swiglu_##S(int64_t rows, int64_t cols, const real *g, int64_t sg, const real *u,        \
                      int64_t su, real *y);                                                        \
  void cpu_swiglu_backward_##S(int64_t rows, int64_t cols, const real *g, int64_t sg,              \
                               const real *u, int64_t su, const real *gy, real *gg, bool acc_g,    \
                               real *gu, bool acc_u);                                              \
  void cpu_attention_##S(const hy_attn_dims *dims, const real *q, const real *k, const real *v,    \
                         real *o, real *lse);                                                      \
  void cpu_attention_backward_##S(const hy_attn_dims *dims, const real *q, const real *k,          \
                                  const real *v, const real *o, const real *lse, const real *go,   \
                                  real *gq, real *gk, real *gv);                                   \
  void cpu_sigmoid_attention_##S(const hy_attn_dims *dims, double bias, const real *q,             \
                                 const real *k, const real *v, real *o);                           \
  void cpu_sigmoid_attention_backward_##S(const hy_attn_dims *dims, double bias, const real *q,    \
                                          const real *k, const real *v, const real *go, real *gq,  \
                                          real *gk, real *gv);                                     \
  void cpu_softplus_attention_##S(const hy_attn_dims *dims, int64_t train_len, int64_t pos_offset, \
                                  double power, const real *q, const real *k, const real *v,       \
                                  real *o, real *rmax, real *rsum);                                \
  void cpu_softplus_attention_backward_##S(                                                        \
      const hy_attn_dims *dims, int64_t train_len, int64_t pos_offset, double power,               \
      const real *q, const real *k, const real *v, const real *o, const real *rmax,                \
      const real *rsum, const real *go, real *gq, real *gk, real *gv);                             \
  void cpu_sla_select_##S(const hy_sla_dims *dims, const real *q, const real *k,                   \
                          const real *q_before, int32_t *classes);                                 \
  void cpu_sla_##S(const hy_sla_dims *dims, const int32_t *classes, const real *q, const real *k,  \
                   const real *v, real *o, real *lse, real *states);                               \
  void cpu_sla_backward_##S(const hy_sla_dims *dims, const int32_t *classes, const real *q,        \
                            const real *k, const real *v, const real *o, const real *lse,          \
                            real *states, real *dstates, const real *go, real *gq, real *gk,       \
                            real *gv);                                                             \
  void cpu_gla_##S(const hy_gla_dims *dims, const real *q, const real *k, const real *v,           \
                   const real *g, real *o, real *states);                                          \
  void cpu_gla_backward_##S(const hy_gla_dims *dims, const real *q, const real *k, const real *v,  \
                            const real *g, const real *states, const real *go, real *gq, real *gk, \
                            real *gv);                                                             \
  void cpu_gla_gate_grad_##S(const hy_gla_dims *dims, const real *q, const real *k,                \
                             const real *dq, const real *dk, real *gg);                            \
  void cpu_rat_##S(const hy_rat_dims *dims, const real *q, const real *u, const real *k,           \
                   const real *f, const real *kp, const real *vp, real *o, real *lse);             \
  void cpu_rat_backward_##S(const hy_rat_dims *dims, const real *q, const real *u, const real *k,  \
                            const real *f, const real *kp, const real *vp, const real *o,          \
                            const real *lse, const real *go, real *gq, real *gu, real *gk,         \
                            real *gf, real *gkp, real *gvp);                                       \
  void cpu_rat_ends_##S(const hy_rat_dims *dims, const real *x, const real *f, real *y);           \
  void cpu_rat_ends_backward_##S(const hy_rat_dims *dims, const real *x, const real *f,            \
                                 const real *gy, real *gx, real *gf);                              \
  void cpu_titans_scan_##S(const hy_titans_dims *dims, const real *q, const real *k,               \
                           const real *v, const real *theta, const real *eta, const real *keep,    \
                           const real *w1, const real *w2, const real *init, real *y,              \
                           real *states, real *momenta, real *final);                              \
  void cpu_titans_scan_backward_##S(                                                               \
      const hy_titans_dims *dims, const real *q, const real *k, const real *v, const real *theta,  \
      const real *eta, const real *keep, const real *w1, const real *w2, const real *init,         \
      const real *states, const real *momenta, const real *gy, const real *gfinal, real *gq,       \
      real *gk, real *gv, real *gtheta, real *geta, real *gkeep, real *gw1, real *gw2,             \
      real *ginit, real *work);

HY_CPU_KERNELS(f32, float)
HY_CPU_KERNELS(f64, double)

/* Call the kernel of t's dtype: HY_CPU(t->dtype, cpu_softmax, rows, n, x, y). The arguments are
 * cast by the caller through HY_PTR. */
#define HY_CPU(dtype, kernel, ...)                                                                 \
  ((dtype) == HY_F64 ? kernel##_f64(__VA_ARGS__) : kernel##_f32(__VA_ARGS__))

#endif
