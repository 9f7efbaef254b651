/* The sizes the CUDA kernels take, as numbers that C code can read: the kernels assert them (and
 * static_assert that their tiles keep to them), and a recipe that trains on the GPU is checked
 * against them when it is validated (recipes/gpu_limits.c), so that an accepted recipe never
 * stops a run in a kernel's assertion. */
#ifndef HYLA_CUDA_LIMITS_H
#define HYLA_CUDA_LIMITS_H

enum {
  /* A grid's y and z extents: tiles of rows run along y. */
  HY_CUDA_GRID_YZ_MAX = 65535,
  /* Softmax, sigmoid, softplus and sparse-linear attention: head sizes 1 to 256, padded to 16,
   * 32, 64, 128 or 256, in tiles of at least 64 rows (queries or keys) up to 64 and of at least
   * 32 rows beyond (attention.cu, attention_tiles.cuh, tiles.cuh, sla.cu). */
  HY_CUDA_ATTN_HEAD_MAX = 256,
  HY_CUDA_ATTN_NARROW_HEAD = 64,
  HY_CUDA_ATTN_NARROW_ROWS = 64,
  HY_CUDA_ATTN_WIDE_ROWS = 32,
  /* Sparse-linear attention: query tiles of 32 rows, and a selection that ranks at most this many
   * key blocks (their scores in 200 KiB of shared memory, sla.cu). */
  HY_CUDA_SLA_ROWS = 32,
  HY_CUDA_SLA_SELECT_BLOCKS_MAX = 200 * 1024 / 8,
  /* RAT: head sizes up to 512, and at most 65535 heads over the batch (rat.cu). */
  HY_CUDA_RAT_HEAD_MAX = 512,
  HY_CUDA_RAT_BATCH_HEADS_MAX = 65535,
  /* Chunked linear attention (gla.cu): tiles of 64 rows and columns; a chunk's pairs of tiles run
   * along y; a constant decay per head (lightning, linear) travels in a kernel argument of 256. */
  HY_CUDA_GLA_TILE = 64,
  HY_CUDA_DECAY_HEADS_MAX = 256,
};

#endif
