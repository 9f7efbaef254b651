/* Causal softmax attention on the tensor cores (tensor/cuda/attention_bf16.cu): the kernels that
 * tensor/cuda/attention.cu hands the op to when GPU matmuls run in bf16 (hy_matmul_precision) and
 * the head size is 64 or 128. Same arguments and meaning as cuda_attention_f32 and
 * cuda_attention_backward_f32; q, k, v, o, go and the gradients must be 16-byte aligned, their row
 * strides multiples of 4 floats. */
#ifndef HYLA_CUDA_ATTENTION_BF16_H
#define HYLA_CUDA_ATTENTION_BF16_H

#include "tensor/kernel_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The head sizes the tensor-core kernels take. */
bool cuda_attention_bf16_head(int64_t D);
void cuda_attention_bf16(const hy_attn_dims *dims, const float *q, const float *k, const float *v,
                         float *o, float *lse);
/* delta [B, H, T]: go . o per row, as the f32 backward computes it. */
void cuda_attention_backward_bf16(const hy_attn_dims *dims, const float *q, const float *k,
                                  const float *v, const float *go, const float *lse,
                                  const float *delta, float *gq, float *gk, float *gv);

#ifdef __cplusplus
}
#endif

#endif
