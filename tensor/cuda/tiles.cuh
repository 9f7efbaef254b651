/* The tiles of the fused causal attention kernels (attention.cu, and through attention_tiles.cuh
 * the sigmoid and softplus kernels): tile loads with cp.async, tile products in registers, row
 * reductions and row stores, and the tile sizes per head size.
 *
 * Inside a block, thread (ty, tx) = (tid / 16, tid % 16) owns the tile rows ty + TY i (i < RT) and
 * the score columns tx + 16 j; a row's 16 threads are one half-warp, so row maxima and sums are
 * shuffles. Its columns of a [*, D] output are cols<DP>::col(e): 16-byte chunks where D allows. D
 * is padded to DP (16, 32, 64, 128 or 256) with zero columns in shared memory. */
#ifndef HYLA_CUDA_TILES_CUH
#define HYLA_CUDA_TILES_CUH

#include "tensor/cuda/common.cuh"
#include "tensor/cuda/limits.h"

namespace {

__device__ __forceinline__ void cp_async16(float *dst, const float *src, bool valid) {
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}

__device__ __forceinline__ void cp_async4(float *dst, const float *src, bool valid) {
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src),
               "r"(valid ? 4 : 0)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Wait until at most n of this thread's committed load groups are still in flight. */
template <int n> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
}

/* Start loading a tile of ROWS rows into shared memory (rows ld floats apart): the first n rows
 * from g (rows `stride` floats apart), each its D floats then zeros up to DP; rows n.. zero.
 * vec4: 16-byte copies (D % 4 == 0, rows 16-byte aligned). */
template <int ROWS, int DP, int THREADS>
__device__ __forceinline__ void load_tile(float *s, int ld, const float *g, int64_t stride, int n,
                                          int D, bool vec4) {
  if (vec4) {
    constexpr int C = DP / 4, ALL = ROWS * C;
#pragma unroll
    for (int x = 0; x < (ALL + THREADS - 1) / THREADS; x++) {
      int i = (int)threadIdx.x + x * THREADS;
      if (ALL % THREADS == 0 || i < ALL) {
        int r = i / C, c = i % C * 4;
        bool ok = r < n && c < D;
        cp_async16(s + r * ld + c, ok ? g + r * stride + c : g, ok);
      }
    }
  } else {
    constexpr int ALL = ROWS * DP;
    for (int i = (int)threadIdx.x; i < ALL; i += THREADS) {
      int r = i / DP, c = i % DP;
      bool ok = r < n && c < D;
      cp_async4(s + r * ld + c, ok ? g + r * stride + c : g, ok);
    }
  }
}

/* Start loading n of ROWS consecutive floats (zeros after). */
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_row(float *s, const float *g, int n) {
  for (int i = (int)threadIdx.x; i < ROWS; i += THREADS) cp_async4(s + i, i < n ? g + i : g, i < n);
}

__device__ __forceinline__ float lane(const float4 &v, int k) {
  return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}

/* The thread's columns of a [*, DP] tile: N = DP / 16 of them, in chunks of VEC. */
template <int DP> struct cols {
  static constexpr int N = DP / 16, VEC = N < 4 ? N : 4;
  static __device__ __forceinline__ int col(int e, int tx) {
    return (e / VEC * 16 + tx) * VEC + e % VEC;
  }
};

/* The thread's N columns of one shared-memory row. */
template <int DP> __device__ __forceinline__ void load_cols(float *x, const float *row, int tx) {
  constexpr int N = cols<DP>::N, VEC = cols<DP>::VEC;
#pragma unroll
  for (int c = 0; c < N / VEC; c++) {
    const float *p = row + (c * 16 + tx) * VEC;
    if (VEC == 4) {
      float4 v = *reinterpret_cast<const float4 *>(p);
      x[c * 4] = v.x;
      x[c * 4 + 1] = v.y;
      x[c * 4 + 2] = v.z;
      x[c * 4 + 3] = v.w;
    } else if (VEC == 2) {
      float2 v = *reinterpret_cast<const float2 *>(p);
      x[c * 2] = v.x;
      x[c * 2 + 1] = v.y;
    } else {
      x[c] = *p;
    }
  }
}

/* acc[i][j] += A[ty + TY i, :] . B[tx + 16 j, :] over DP columns (both row-major in shared
 * memory, rows lda and ldb floats apart): a tile of A B^T. */
template <int RT, int CT, int TY, int DP>
__device__ __forceinline__ void product_abt(float (&acc)[RT][CT], const float *A, int lda,
                                            const float *B, int ldb, int ty, int tx) {
#pragma unroll 4
  for (int d = 0; d < DP; d += 4) {
    float4 a[RT], b[CT];
#pragma unroll
    for (int i = 0; i < RT; i++)
      a[i] = *reinterpret_cast<const float4 *>(A + (ty + TY * i) * lda + d);
#pragma unroll
    for (int j = 0; j < CT; j++)
      b[j] = *reinterpret_cast<const float4 *>(B + (tx + 16 * j) * ldb + d);
#pragma unroll
    for (int i = 0; i < RT; i++)
#pragma unroll
      for (int j = 0; j < CT; j++) {
        acc[i][j] = fmaf(a[i].x, b[j].x, acc[i][j]);
        acc[i][j] = fmaf(a[i].y, b[j].y, acc[i][j]);
        acc[i][j] = fmaf(a[i].z, b[j].z, acc[i][j]);
        acc[i][j] = fmaf(a[i].w, b[j].w, acc[i][j]);
      }
  }
}

/* acc[i][e] += sum_{c < NC} A[ty + TY i, c] B[c, col(e)]: a tile of A B, with A [*, NC] and
 * B [NC, DP] row-major in shared memory. */
template <int RT, int NC, int TY, int DP>
__device__ __forceinline__ void product_ab(float (&acc)[RT][DP / 16], const float *A, int lda,
                                           const float *B, int ldb, int ty, int tx) {
  constexpr int N = DP / 16;
#pragma unroll 2
  for (int c = 0; c < NC; c += 4) {
    float4 a[RT];
#pragma unroll
    for (int i = 0; i < RT; i++)
      a[i] = *reinterpret_cast<const float4 *>(A + (ty + TY * i) * lda + c);
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float b[N];
      load_cols<DP>(b, B + (c + k) * ldb, tx);
#pragma unroll
      for (int i = 0; i < RT; i++) {
        float x = lane(a[i], k);
#pragma unroll
        for (int e = 0; e < N; e++) acc[i][e] = fmaf(x, b[e], acc[i][e]);
      }
    }
  }
}

/* Max and sum over the 16 threads of a row (a half-warp). */
__device__ __forceinline__ float row_max(float x) {
#pragma unroll
  for (int m = 8; m >= 1; m /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, m));
  return x;
}

__device__ __forceinline__ float row_sum(float x) {
#pragma unroll
  for (int m = 8; m >= 1; m /= 2) x += __shfl_xor_sync(0xffffffffu, x, m);
  return x;
}

/* out[e] += x[e] (accumulate) or out[e] = x[e] for the thread's columns of one contiguous row. */
template <int DP>
__device__ __forceinline__ void store_row(float *out, const float *x, int D, int tx, bool vec4,
                                          bool accumulate) {
  constexpr int N = cols<DP>::N, VEC = cols<DP>::VEC;
#pragma unroll
  for (int c = 0; c < N / VEC; c++) {
    int d = (c * 16 + tx) * VEC;
    if (d >= D) continue;
    if (VEC == 4 && vec4) {
      float4 *p = reinterpret_cast<float4 *>(out + d);
      float4 v = accumulate ? *p : make_float4(0.f, 0.f, 0.f, 0.f);
      v.x += x[c * 4];
      v.y += x[c * 4 + 1];
      v.z += x[c * 4 + 2];
      v.w += x[c * 4 + 3];
      *p = v;
    } else {
#pragma unroll
      for (int k = 0; k < VEC; k++)
        if (d + k < D) out[d + k] = accumulate ? out[d + k] + x[c * VEC + k] : x[c * VEC + k];
    }
  }
}

/* Tile sizes per padded head size DP: query tile BR, key tile BC, rows per thread RT, for the
 * forward (F_), dQ (Q_) and dK, dV (K_). */
template <int DP> struct tile_cfg;
template <> struct tile_cfg<16> {
  static constexpr int F_BR = 64, F_BC = 64, F_RT = 8, Q_BR = 64, Q_BC = 64, Q_RT = 4, K_BC = 64,
                       K_BR = 64, K_RT = 4;
};
template <> struct tile_cfg<32> : tile_cfg<16> {};
template <> struct tile_cfg<64> : tile_cfg<16> {};
template <> struct tile_cfg<128> {
  static constexpr int F_BR = 64, F_BC = 32, F_RT = 8, Q_BR = 64, Q_BC = 32, Q_RT = 8, K_BC = 32,
                       K_BR = 32, K_RT = 4;
};
template <> struct tile_cfg<256> {
  static constexpr int F_BR = 64, F_BC = 32, F_RT = 4, Q_BR = 32, Q_BC = 32, Q_RT = 2, K_BC = 32,
                       K_BR = 32, K_RT = 2;
};

/* The tiles along a grid's y (F_BR and Q_BR over queries, K_BC over keys) are as long as
 * tensor/cuda/limits.h tells the recipe checks. */
template <int DP> constexpr bool rows_at_least(int rows) {
  return tile_cfg<DP>::F_BR >= rows && tile_cfg<DP>::Q_BR >= rows && tile_cfg<DP>::K_BC >= rows;
}
static_assert(rows_at_least<16>(HY_CUDA_ATTN_NARROW_ROWS) &&
                  rows_at_least<32>(HY_CUDA_ATTN_NARROW_ROWS) &&
                  rows_at_least<HY_CUDA_ATTN_NARROW_HEAD>(HY_CUDA_ATTN_NARROW_ROWS) &&
                  rows_at_least<128>(HY_CUDA_ATTN_WIDE_ROWS) &&
                  rows_at_least<HY_CUDA_ATTN_HEAD_MAX>(HY_CUDA_ATTN_WIDE_ROWS),
              "tile rows below tensor/cuda/limits.h's");

} // namespace

#endif
