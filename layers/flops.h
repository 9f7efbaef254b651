/* Model FLOPs for MFU (model FLOPs utilization): what a training step must compute, counted from
 * the model's shape alone, as nanoGPT and llm.c count them (docs/cuda.md states the formula). */
#ifndef HYLA_FLOPS_H
#define HYLA_FLOPS_H

#include "layers/model.h"

/* FLOPs of one training step (forward and backward, 3 x the forward) per token of sequences of
 * length T: 6 for every parameter of a matrix the tokens are multiplied by (every 2-d parameter
 * but the embedding table: the head counts, a tied head once), plus each mixer's own products:
 * causal softmax, sigmoid and softplus attention 6 H D T / 2 (q k^T and p v over the T / 2 keys a
 * token sees on average, capped by a window), the chunked linear family (GLA, lightning, linear
 * attention) 3 H (4 dk dv + C (dk + dv)) for chunks of C; other mixers count their projections
 * only. */
double hy_model_flops_per_token(const hy_model *m, int64_t T);

/* The dense bf16 tensor-core peak of this process's GPU by its datasheet, in FLOP/s (H100 and
 * H200 SXM: 989 TFLOP/s), or 0 when the GPU is not one of those hyla knows. */
double hy_gpu_bf16_peak(void);

#endif
