#include "tensor/cuda/common.cuh"
#include "tensor/cuda/vec8.cuh"

#include <initializer_list>

/* RMSNorm over rows of d, and hy_add_rmsnorm (the residual add fused with the norm after it), from
 * one forward and one backward template over the storage types: TX of the rows (x, or the f32
 * residual stream and its sum), TY of the added branch y, TH of the norm's output h; the weight,
 * rstd and the weight's gradient are f32. Values compute in f32 and round once on store.
 *
 * A team of threads takes a row: a warp for short rows (the per-head norms, d = 64: a block of
 * two warps per row would leave the SMs short of warps), HY_CUDA_THREADS / 32 rows a block;
 * otherwise the whole block, as many threads as the row needs rounded up to a warp, at most
 * HY_CUDA_THREADS, in 16-byte steps of 8 elements where the row allows (d a multiple of 8, every
 * pointer 16-byte aligned), else one element a step. The forward walks the rows grid-stride.
 * The backward gives each block a chunk of consecutive rows and does everything in one pass over
 * them: each team sums its columns' part of the weight gradient into shared memory, the block adds
 * its teams' sums in order into one partial row per chunk, and one more kernel adds the chunks'
 * partial rows in order. No atomics: the same inputs give the same bits. */

enum { WARP_ROWS_MAX_D = 128, WARP_ROWS_PER_BLOCK = HY_CUDA_THREADS / 32, VEC = 8 };

static bool warp_rows(int64_t d) { return d <= WARP_ROWS_MAX_D; }

static unsigned row_threads(int64_t d, int n) {
  if (warp_rows(d)) return HY_CUDA_THREADS;
  int64_t steps = (d + n - 1) / n, t = (steps + 31) / 32 * 32;
  return (unsigned)(t < HY_CUDA_THREADS ? t : (int64_t)HY_CUDA_THREADS);
}

/* Who works on which row: a warp (WARP) or the whole block. */
template <bool WARP> struct row_team {
  int id, n;       /* this team among the block's, and their number */
  int lane, lanes; /* along the row */
  __device__ row_team()
      : id(WARP ? (int)threadIdx.x / 32 : 0), n(WARP ? (int)blockDim.x / 32 : 1),
        lane(WARP ? (int)threadIdx.x % 32 : (int)threadIdx.x), lanes(WARP ? 32 : (int)blockDim.x) {}
  /* The team's sum of v, handed to all its threads. */
  __device__ float sum(float v) const {
    return WARP ? __shfl_sync(0xffffffffu, hy_warp_sum(v), 0) : hy_block_sum(v);
  }
};

/* N elements of x from i, or of x + y there (the sum in f32, as it is stored). */
template <int N, typename TX, typename TY>
__device__ __forceinline__ void load_sum(const TX *x, const TY *y, int64_t i, float (&v)[N]) {
  ldn(x + i, v);
  if (y) {
    float b[N];
    ldn(y + i, b);
    for (int e = 0; e < N; e++) v[e] += b[e];
  }
}

/* N weights from column j, or ones. */
template <int N>
__device__ __forceinline__ void load_weight(const float *w, int64_t j, float (&v)[N]) {
  if (w)
    ldn(w + j, v);
  else
    for (int e = 0; e < N; e++) v[e] = 1.0f;
}

/* sum = x + y (y NULL: none, sum not written), h = sum * rstd * w, rstd = 1 / sqrt(mean(sum^2) +
 * eps), with the CPU's f32 formula. The second pass reads x and y again (from the cache) rather
 * than the sum. */
template <bool WARP, int N, typename TX, typename TY, typename TH>
__global__ void __launch_bounds__(HY_CUDA_THREADS)
    norm_kernel(int64_t rows, int64_t d, const TX *x, const TY *y, const float *w, float eps,
                TX *sum, TH *h, float *rstd) {
  const row_team<WARP> team;
  const int64_t step = (int64_t)team.lanes * N;
  for (int64_t r = (int64_t)blockIdx.x * team.n + team.id; r < rows;
       r += (int64_t)gridDim.x * team.n) {
    const int64_t o = r * d;
    float ss = 0.0f;
    for (int64_t j = (int64_t)team.lane * N; j < d; j += step) {
      float v[N];
      load_sum(x, y, o + j, v);
      if (sum) stn(sum + o + j, v);
      for (int e = 0; e < N; e++) ss += v[e] * v[e];
    }
    ss = team.sum(ss);
    float s = 1.0f / sqrtf(ss / (float)d + eps);
    if (team.lane == 0) rstd[r] = s;
    for (int64_t j = (int64_t)team.lane * N; j < d; j += step) {
      float v[N], g[N];
      load_sum(x, y, o + j, v);
      load_weight(w, j, g);
      for (int e = 0; e < N; e++) v[e] = v[e] * s * g[e];
      stn(h + o + j, v);
    }
  }
}

/* With xh = x * rstd and g = gh * w: t = gsum + rstd * (g - xh * mean(g * xh)) (gh or gsum NULL:
 * that term is missing), gx (+)= t, then gy (+)= t (they may be one buffer), and the block's
 * partial weight gradient sum over its rows of gh * xh into partial[blockIdx.x] (NULL: none). The
 * teams' column sums live in shared memory (shared_acc), else, for rows too long for it (one team a
 * block then), straight in the block's partial row. */
template <bool WARP, int N, typename TX, typename TH, typename TY>
__global__ void __launch_bounds__(HY_CUDA_THREADS)
    norm_backward_kernel(int64_t rows, int64_t d, int64_t chunk, const TX *x, const float *w,
                         const float *rstd, const TH *gh, const TX *gsum, TX *gx, bool acc_x,
                         TY *gy, bool acc_y, float *partial, bool shared_acc) {
  extern __shared__ float team_acc[]; /* [teams][d] */
  const row_team<WARP> team;
  float *mine = nullptr;
  if (partial) {
    float *all = shared_acc ? team_acc : partial + (int64_t)blockIdx.x * d;
    int64_t n = shared_acc ? team.n * d : d;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) all[i] = 0.0f;
    __syncthreads();
    mine = shared_acc ? team_acc + team.id * d : all;
  }
  const int64_t step = (int64_t)team.lanes * N, r0 = (int64_t)blockIdx.x * chunk;
  const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
  for (int64_t r = r0 + team.id; r < r1; r += team.n) {
    const int64_t o = r * d;
    const float s = rstd[r];
    float dot = 0.0f;
    if (gh) {
      for (int64_t j = (int64_t)team.lane * N; j < d; j += step) {
        float xv[N], gv[N], wv[N];
        ldn(x + o + j, xv);
        ldn(gh + o + j, gv);
        load_weight(w, j, wv);
        for (int e = 0; e < N; e++) dot += gv[e] * wv[e] * xv[e] * s;
      }
      dot = team.sum(dot) / (float)d;
    }
    for (int64_t j = (int64_t)team.lane * N; j < d; j += step) {
      float t[N];
      if (gh) {
        float xv[N], gv[N], wv[N];
        ldn(x + o + j, xv);
        ldn(gh + o + j, gv);
        load_weight(w, j, wv);
        for (int e = 0; e < N; e++) {
          float xh = xv[e] * s;
          t[e] = s * (gv[e] * wv[e] - xh * dot);
          if (mine) mine[j + e] += gv[e] * xh;
        }
      } else {
        for (int e = 0; e < N; e++) t[e] = 0.0f;
      }
      if (gsum) {
        float g2[N];
        ldn(gsum + o + j, g2);
        for (int e = 0; e < N; e++) t[e] += g2[e];
      }
      if (gx) stn_acc(gx + o + j, acc_x, t);
      if (gy) stn_acc(gy + o + j, acc_y, t);
    }
  }
  if (partial && shared_acc) {
    __syncthreads();
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
      float v = 0.0f;
      for (int i = 0; i < team.n; i++) v += team_acc[i * d + k];
      partial[(int64_t)blockIdx.x * d + k] = v;
    }
  }
}

/* gw[j] += the chunks' partial sums of column j: a block per column, its threads over the chunks,
 * summed in a fixed order. */
__global__ void norm_backward_w_sum_kernel(int64_t d, int64_t n_chunks, const float *partial,
                                           float *gw) {
  for (int64_t j = blockIdx.x; j < d; j += gridDim.x) {
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < n_chunks; c += blockDim.x) sum += partial[c * d + j];
    sum = hy_block_sum(sum);
    if (threadIdx.x == 0) gw[j] += sum;
  }
}

/* The three ways to walk rows of d, given the pointers a kernel will access. */
enum walk { WALK_WARP, WALK_BLOCK, WALK_BLOCK_VEC };

static walk walk_of(int64_t d, std::initializer_list<const void *> ptrs) {
  if (warp_rows(d)) return WALK_WARP;
  bool vec = d % VEC == 0;
  for (const void *p : ptrs) vec = vec && hy_aligned16(p);
  return vec ? WALK_BLOCK_VEC : WALK_BLOCK;
}

template <typename TX, typename TY, typename TH>
static void forward(int64_t rows, int64_t d, const TX *x, const TY *y, const float *w, double eps,
                    TX *sum, TH *h, float *rstd) {
  if (rows == 0 || d == 0) return;
  walk k = walk_of(d, {x, y, w, sum, h});
  unsigned threads = row_threads(d, k == WALK_BLOCK_VEC ? VEC : 1);
  int64_t team_rows =
      k == WALK_WARP ? (rows + WARP_ROWS_PER_BLOCK - 1) / WARP_ROWS_PER_BLOCK : rows;
  unsigned blocks = (unsigned)(team_rows < 65535 * 16 ? team_rows : 65535 * 16);
  cudaStream_t st = hy_cuda_stream();
  float e = (float)eps;
  if (k == WALK_WARP)
    norm_kernel<true, 1><<<blocks, threads, 0, st>>>(rows, d, x, y, w, e, sum, h, rstd);
  else if (k == WALK_BLOCK_VEC)
    norm_kernel<false, VEC><<<blocks, threads, 0, st>>>(rows, d, x, y, w, e, sum, h, rstd);
  else
    norm_kernel<false, 1><<<blocks, threads, 0, st>>>(rows, d, x, y, w, e, sum, h, rstd);
  HY_CUDA_LAUNCHED(norm_kernel);
}

static int sm_count(void) {
  static int n;
  if (!n) {
    int dev;
    HY_CUDA_CHECK(cudaGetDevice(&dev));
    HY_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  }
  return n;
}

/* One wave of blocks (as many as fit on the GPU at once), each over a chunk of consecutive rows,
 * at least 4 rows a team so that a partial row of the weight gradient stands for several rows. */
template <typename Kernel>
static int64_t backward_blocks(Kernel kernel, unsigned threads, size_t smem, int64_t rows,
                               int teams) {
  int per_sm = 0;
  HY_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, (int)threads, smem));
  int64_t wave = (int64_t)sm_count() * (per_sm > 0 ? per_sm : 1);
  int64_t min_rows = 4 * (int64_t)teams, blocks = (rows + min_rows - 1) / min_rows;
  return blocks < wave ? blocks : wave;
}

template <bool WARP, int N, typename TX, typename TH, typename TY>
static void backward_walk(int64_t rows, int64_t d, const TX *x, const float *w, const float *rstd,
                          const TH *gh, const TX *gsum, TX *gx, bool acc_x, TY *gy, bool acc_y,
                          float *gw) {
  auto kernel = norm_backward_kernel<WARP, N, TX, TH, TY>;
  unsigned threads = row_threads(d, N);
  int teams = WARP ? (int)threads / 32 : 1;
  size_t acc_bytes = (size_t)teams * (size_t)d * sizeof(float);
  bool shared_acc = gw && acc_bytes <= 48 * 1024;
  size_t smem = shared_acc ? acc_bytes : 0;
  int64_t blocks = backward_blocks(kernel, threads, smem, rows, teams);
  int64_t chunk = (rows + blocks - 1) / blocks;
  blocks = (rows + chunk - 1) / chunk; /* no empty chunk at the end */
  float *partial =
      gw ? (float *)hy_arena_alloc_on(HY_CUDA, (size_t)(blocks * d) * sizeof(float)) : nullptr;
  cudaStream_t st = hy_cuda_stream();
  kernel<<<(unsigned)blocks, threads, smem, st>>>(rows, d, chunk, x, w, rstd, gh, gsum, gx, acc_x,
                                                  gy, acc_y, partial, shared_acc);
  HY_CUDA_LAUNCHED(norm_backward_kernel);
  if (gw) {
    norm_backward_w_sum_kernel<<<(unsigned)(d < 65535 ? d : 65535), HY_CUDA_THREADS, 0, st>>>(
        d, blocks, partial, gw);
    HY_CUDA_LAUNCHED(norm_backward_w_sum_kernel);
  }
}

template <typename TX, typename TH, typename TY>
static void backward(int64_t rows, int64_t d, const TX *x, const float *w, const float *rstd,
                     const TH *gh, const TX *gsum, TX *gx, bool acc_x, TY *gy, bool acc_y,
                     float *gw) {
  if (!gh) gw = nullptr; /* the weight gets nothing without the norm's gradient */
  if (rows == 0 || d == 0 || (!gx && !gy && !gw)) return;
  switch (walk_of(d, {x, w, gh, gsum, gx, gy})) {
  case WALK_WARP:
    backward_walk<true, 1>(rows, d, x, w, rstd, gh, gsum, gx, acc_x, gy, acc_y, gw);
    break;
  case WALK_BLOCK_VEC:
    backward_walk<false, VEC>(rows, d, x, w, rstd, gh, gsum, gx, acc_x, gy, acc_y, gw);
    break;
  case WALK_BLOCK:
    backward_walk<false, 1>(rows, d, x, w, rstd, gh, gsum, gx, acc_x, gy, acc_y, gw);
    break;
  }
}

static const bf16 *b16(const void *p) { return static_cast<const bf16 *>(p); }
static bf16 *b16(void *p) { return static_cast<bf16 *>(p); }
static const float *f32(const void *p) { return static_cast<const float *>(p); }
static float *f32(void *p) { return static_cast<float *>(p); }

extern "C" void cuda_rmsnorm_f32(int64_t rows, int64_t d, const float *x, const float *w,
                                 double eps, float *y, float *rstd) {
  forward(rows, d, x, (const float *)nullptr, w, eps, (float *)nullptr, y, rstd);
}

extern "C" void cuda_rmsnorm_bf16(int64_t rows, int64_t d, const hy_bf16 *x, const float *w,
                                  double eps, hy_bf16 *y, float *rstd) {
  forward(rows, d, b16(x), (const bf16 *)nullptr, w, eps, (bf16 *)nullptr, b16(y), rstd);
}

extern "C" void cuda_rmsnorm_backward_f32(int64_t rows, int64_t d, const float *x, const float *w,
                                          const float *rstd, const float *gy, float *gx,
                                          bool accumulate, float *gw) {
  backward(rows, d, x, w, rstd, gy, (const float *)nullptr, gx, accumulate, (float *)nullptr, false,
           gw);
}

extern "C" void cuda_rmsnorm_backward_bf16(int64_t rows, int64_t d, const hy_bf16 *x,
                                           const float *w, const float *rstd, const hy_bf16 *gy,
                                           hy_bf16 *gx, bool accumulate, float *gw) {
  backward(rows, d, b16(x), w, rstd, b16(gy), (const bf16 *)nullptr, b16(gx), accumulate,
           (bf16 *)nullptr, false, gw);
}

extern "C" void cuda_add_rmsnorm(int64_t rows, int64_t d, const float *x, const void *y,
                                 bool y_bf16, const float *w, double eps, float *sum, void *h,
                                 bool h_bf16, float *rstd) {
  if (!y) sum = nullptr; /* the sum is x itself */
  if (y_bf16 && h_bf16)
    forward(rows, d, x, b16(y), w, eps, sum, b16(h), rstd);
  else if (y_bf16)
    forward(rows, d, x, b16(y), w, eps, sum, f32(h), rstd);
  else if (h_bf16)
    forward(rows, d, x, f32(y), w, eps, sum, b16(h), rstd);
  else
    forward(rows, d, x, f32(y), w, eps, sum, f32(h), rstd);
}

extern "C" void cuda_add_rmsnorm_backward(int64_t rows, int64_t d, const float *x, const float *w,
                                          const float *rstd, const void *gh, bool h_bf16,
                                          const float *gsum, float *gx, bool acc_x, void *gy,
                                          bool y_bf16, bool acc_y, float *gw) {
  if (h_bf16 && y_bf16)
    backward(rows, d, x, w, rstd, b16(gh), gsum, gx, acc_x, b16(gy), acc_y, gw);
  else if (h_bf16)
    backward(rows, d, x, w, rstd, b16(gh), gsum, gx, acc_x, f32(gy), acc_y, gw);
  else if (y_bf16)
    backward(rows, d, x, w, rstd, f32(gh), gsum, gx, acc_x, b16(gy), acc_y, gw);
  else
    backward(rows, d, x, w, rstd, f32(gh), gsum, gx, acc_x, f32(gy), acc_y, gw);
}
