/* What tensor/attention.c asks of the tensor-core attention kernels (tensor/cuda/attention_bf16.cu;
 * their entries cuda_attention_bf16 and cuda_attention_backward_bf16 are in kernels.h). */
#ifndef HYLA_CUDA_ATTENTION_BF16_H
#define HYLA_CUDA_ATTENTION_BF16_H

#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* They take bf16 attention of B sequences of T queries against Tk keys, H heads of size D = 64
 * or 128, where a contiguous [B, max(T, Tk), H, D] tensor has fewer than 2^32 16-byte pieces; the
 * op computes the others in f32. */
bool cuda_attention_bf16_takes(int64_t B, int64_t T, int64_t Tk, int64_t H, int64_t D);
/* They read q, k or v [B, T, H, D] as it lies where its data is 16-byte aligned, its strides over
 * b, t and h are multiples of 8 elements (the last one 1) and it reaches fewer than 2^32 16-byte
 * pieces from its start; the op copies any other layout first. */
bool cuda_attention_bf16_rows(const hy_tensor *t);

#ifdef __cplusplus
}
#endif

#endif
