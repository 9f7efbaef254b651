#include "tensor/cuda/common.cuh"

/* add, sub, mul, div of two broadcast operands (hy_bcast, as cpu_binary), and their gradients.
 * A gradient of an operand of the output's shape is a map over the output; that of a stretched
 * operand sums over the stretched dims, one thread or one block per operand element, in a fixed
 * order: no atomics, the same bits on every run. */

namespace {

template <hy_binary_op OP> __device__ __forceinline__ float apply(float a, float b) {
  switch (OP) {
  case HY_ADD: return a + b;
  case HY_SUB: return a - b;
  case HY_MUL: return a * b;
  case HY_DIV: return a / b;
  }
  return 0;
}

/* d/da and d/db of op at (a, b), times the output gradient g: cpu_binary_backward's formulas. */
template <hy_binary_op OP> __device__ __forceinline__ float grad_a(float a, float b, float g) {
  (void)a;
  switch (OP) {
  case HY_ADD:
  case HY_SUB: return g;
  case HY_MUL: return g * b;
  case HY_DIV: return g / b;
  }
  return 0;
}

template <hy_binary_op OP> __device__ __forceinline__ float grad_b(float a, float b, float g) {
  switch (OP) {
  case HY_ADD: return g;
  case HY_SUB: return -g;
  case HY_MUL: return g * a;
  case HY_DIV: return -g * a / (b * b);
  }
  return 0;
}

template <hy_binary_op OP, bool FOR_A>
__device__ __forceinline__ float grad_of(float a, float b, float g) {
  return FOR_A ? grad_a<OP>(a, b, g) : grad_b<OP>(a, b, g);
}

/* The broadcast as the kernels take it, by value; `small` when every output index fits 32 bits,
 * which makes the index arithmetic several times cheaper. */
struct bcast4 {
  int64_t shape[4], sa[4], sb[4];
  bool small;
};

static bcast4 bcast4_of(const hy_bcast *bc) {
  bcast4 c;
  for (int d = 0; d < 4; d++) {
    c.shape[d] = bc->shape[d];
    c.sa[d] = bc->sa[d];
    c.sb[d] = bc->sb[d];
  }
  c.small = bc->shape[0] * bc->shape[1] * bc->shape[2] * bc->shape[3] <= (int64_t)UINT32_MAX;
  return c;
}

/* The operands' offsets of output element i (row-major over shape). */
template <typename I>
__device__ __forceinline__ void offsets_in(const bcast4 &c, I i, int64_t *oa, int64_t *ob) {
  int64_t a = 0, b = 0;
  for (int d = 3; d >= 0; d--) {
    I size = (I)c.shape[d], idx = i % size;
    i /= size;
    a += (int64_t)idx * c.sa[d];
    b += (int64_t)idx * c.sb[d];
  }
  *oa = a;
  *ob = b;
}

__device__ __forceinline__ void offsets(const bcast4 &c, int64_t i, int64_t *oa, int64_t *ob) {
  if (c.small)
    offsets_in<uint32_t>(c, (uint32_t)i, oa, ob);
  else
    offsets_in<int64_t>(c, i, oa, ob);
}

/* ---- forward ---- */

template <hy_binary_op OP>
__global__ void binary_flat(int64_t n, const float *__restrict__ a, const float *__restrict__ b,
                            float *__restrict__ y) {
  HY_GRID_STRIDE(i, n) y[i] = apply<OP>(a[i], b[i]);
}

template <hy_binary_op OP>
__global__ void binary_bcast(bcast4 c, int64_t n, const float *__restrict__ a,
                             const float *__restrict__ b, float *__restrict__ y) {
  HY_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    offsets(c, i, &oa, &ob);
    y[i] = apply<OP>(a[oa], b[ob]);
  }
}

template <hy_binary_op OP>
static void forward(const hy_bcast *bc, const float *a, const float *b, float *y) {
  const int64_t *s = bc->shape;
  int64_t n = s[0] * s[1] * s[2] * s[3];
  if (n == 0) return;
  if (bc->a_full && bc->b_full) {
    binary_flat<OP><<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n, a, b, y);
    HY_CUDA_LAUNCHED(binary_flat);
  } else {
    binary_bcast<OP>
        <<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(bcast4_of(bc), n, a, b, y);
    HY_CUDA_LAUNCHED(binary_bcast);
  }
}

/* ---- backward ---- */

/* Both operands of the output's shape: ga[i] += ..., gb[i] += ... (either may be NULL). ga and
 * gb are one buffer for x op x, so they are not __restrict__: the second += sees the first. */
template <hy_binary_op OP>
__global__ void grad_flat(int64_t n, const float *a, const float *b, const float *__restrict__ gy,
                          float *ga, float *gb) {
  HY_GRID_STRIDE(i, n) {
    float av = a[i], bv = b[i], g = gy[i];
    if (ga) ga[i] += grad_a<OP>(av, bv, g);
    if (gb) gb[i] += grad_b<OP>(av, bv, g);
  }
}

/* One operand of the output's shape, the other stretched: a map over the output. */
template <hy_binary_op OP, bool FOR_A>
__global__ void grad_full(bcast4 c, int64_t n, const float *__restrict__ a,
                          const float *__restrict__ b, const float *__restrict__ gy,
                          float *__restrict__ g) {
  HY_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    offsets(c, i, &oa, &ob);
    g[i] += grad_of<OP, FOR_A>(a[oa], b[ob], gy[i]);
  }
}

/* A stretched operand: its m elements (row-major over the dims it keeps) each sum r output
 * elements, those of the stretched dims (row-major over them, the last dim fastest). */
struct plan {
  int64_t shape[4], sa[4], sb[4], sy[4];
  int64_t kept[4]; /* the operand's own sizes: shape[d] where kept, 1 where stretched */
  int n_red, red[4];
  int64_t m, r;
};

static plan plan_of(const hy_bcast *bc, bool for_a) {
  plan p;
  const int64_t *sg = for_a ? bc->sa : bc->sb;
  int64_t stride = 1;
  p.n_red = 0;
  p.m = p.r = 1;
  for (int d = 3; d >= 0; d--) {
    p.shape[d] = bc->shape[d];
    p.sa[d] = bc->sa[d];
    p.sb[d] = bc->sb[d];
    p.sy[d] = stride;
    stride *= bc->shape[d];
    bool stretched = sg[d] == 0 && bc->shape[d] > 1;
    p.kept[d] = stretched ? 1 : bc->shape[d];
    p.m *= p.kept[d];
    if (stretched) p.r *= bc->shape[d];
  }
  for (int d = 0; d < 4; d++)
    if (sg[d] == 0 && bc->shape[d] > 1) p.red[p.n_red++] = d;
  return p;
}

/* The offsets into a, b and gy of operand element e at stretched position 0... */
__device__ __forceinline__ void base_of(const plan &p, int64_t e, int64_t o[3]) {
  o[0] = o[1] = o[2] = 0;
  for (int d = 3; d >= 0; d--) {
    int64_t idx = e % p.kept[d];
    e /= p.kept[d];
    o[0] += idx * p.sa[d];
    o[1] += idx * p.sb[d];
    o[2] += idx * p.sy[d];
  }
}

/* ...and what stretched position k adds to them. */
__device__ __forceinline__ void step_of(const plan &p, int64_t k, int64_t o[3]) {
  o[0] = o[1] = o[2] = 0;
  for (int j = p.n_red - 1; j >= 0; j--) {
    int d = p.red[j];
    int64_t idx = k % p.shape[d];
    k /= p.shape[d];
    o[0] += idx * p.sa[d];
    o[1] += idx * p.sb[d];
    o[2] += idx * p.sy[d];
  }
}

template <hy_binary_op OP, bool FOR_A>
__device__ __forceinline__ float term(const plan &p, const int64_t base[3], int64_t k,
                                      const float *__restrict__ a, const float *__restrict__ b,
                                      const float *__restrict__ gy) {
  int64_t st[3];
  step_of(p, k, st);
  return grad_of<OP, FOR_A>(a[base[0] + st[0]], b[base[1] + st[1]], gy[base[2] + st[2]]);
}

/* Stretched gradients are long sums (a bias over every row): they add in double, so that the
 * result is the exact sum rounded once to f32 rather than f32 rounding at every level.
 * The last dim is stretched (a column [.., 1] against rows): one block per operand element, its
 * threads over the stretched positions, which run along the output's rows (coalesced). */
template <hy_binary_op OP, bool FOR_A>
__global__ void grad_rows(plan p, const float *__restrict__ a, const float *__restrict__ b,
                          const float *__restrict__ gy, float *__restrict__ g) {
  __shared__ double warps[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int64_t e = blockIdx.x; e < p.m; e += gridDim.x) {
    int64_t base[3];
    base_of(p, e, base);
    double s = 0;
    for (int64_t k = threadIdx.x; k < p.r; k += blockDim.x)
      s += term<OP, FOR_A>(p, base, k, a, b, gy);
    s = hy_warp_sum(s);
    if (lane == 0) warps[warp] = s;
    __syncthreads();
    if (warp == 0) {
      s = lane < n_warps ? warps[lane] : 0.0;
      s = hy_warp_sum(s);
      if (lane == 0) g[e] += (float)s;
    }
    __syncthreads();
  }
}

/* The last dim is kept (a row vector, a bias): threadIdx.x runs over 32 consecutive operand
 * elements (consecutive output columns, coalesced), threadIdx.y over a share of the stretched
 * positions; the shares are summed in order of y. Few elements over many positions (a bias of a
 * few hundred over every row) would leave most SMs idle, so blockIdx.y splits the positions into
 * chunks that write partial sums, added in chunk order by cols_sum: no atomics. */
enum { COLS_X = 32, COLS_Y = 32 };

template <hy_binary_op OP, bool FOR_A>
__global__ void grad_cols(plan p, int64_t chunk, const float *__restrict__ a,
                          const float *__restrict__ b, const float *__restrict__ gy,
                          float *__restrict__ g, double *__restrict__ partial) {
  __shared__ double part[COLS_Y][COLS_X + 1];
  int64_t tiles = (p.m + COLS_X - 1) / COLS_X;
  int64_t k0 = (int64_t)blockIdx.y * chunk, k1 = k0 + chunk < p.r ? k0 + chunk : p.r;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    int64_t e = t * COLS_X + threadIdx.x;
    double s = 0;
    if (e < p.m) {
      int64_t base[3];
      base_of(p, e, base);
      for (int64_t k = k0 + threadIdx.y; k < k1; k += blockDim.y)
        s += term<OP, FOR_A>(p, base, k, a, b, gy);
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && e < p.m) {
      double total = part[0][threadIdx.x];
      for (unsigned y = 1; y < blockDim.y; y++) total += part[y][threadIdx.x];
      if (partial)
        partial[(int64_t)blockIdx.y * p.m + e] = total;
      else
        g[e] += (float)total;
    }
    __syncthreads();
  }
}

/* g[e] += the chunks' partial sums of element e, in chunk order. */
__global__ void cols_sum(int64_t m, int64_t chunks, const double *__restrict__ partial,
                         float *__restrict__ g) {
  HY_GRID_STRIDE(e, m) {
    double s = 0;
    for (int64_t c = 0; c < chunks; c++) s += partial[c * m + e];
    g[e] += (float)s;
  }
}

template <hy_binary_op OP, bool FOR_A>
static void grad_operand(const hy_bcast *bc, const float *a, const float *b, const float *gy,
                         float *g) {
  const int64_t *s = bc->shape;
  int64_t n = s[0] * s[1] * s[2] * s[3];
  if (FOR_A ? bc->a_full : bc->b_full) {
    grad_full<OP, FOR_A><<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(
        bcast4_of(bc), n, a, b, gy, g);
    HY_CUDA_LAUNCHED(grad_full);
    return;
  }
  plan p = plan_of(bc, FOR_A);
  if (p.n_red > 0 && p.red[p.n_red - 1] == 3) {
    unsigned threads = p.r >= 4096 ? 512 : p.r >= 512 ? 256 : p.r >= 64 ? 64 : 32;
    unsigned blocks = (unsigned)(p.m < 65535 * 8 ? p.m : 65535 * 8);
    grad_rows<OP, FOR_A><<<blocks, threads, 0, hy_cuda_stream()>>>(p, a, b, gy, g);
    HY_CUDA_LAUNCHED(grad_rows);
  } else {
    int64_t ys = p.r >= (int64_t)COLS_Y * 8 ? (int64_t)COLS_Y : (p.r + 7) / 8;
    int64_t tiles = (p.m + COLS_X - 1) / COLS_X;
    unsigned blocks = (unsigned)(tiles < 65535 * 8 ? tiles : 65535 * 8);
    /* about 1024 blocks in all, each chunk at least 16 positions a thread */
    int64_t chunks = (1024 + blocks - 1) / blocks, most = (p.r + ys * 16 - 1) / (ys * 16);
    if (chunks > most) chunks = most;
    if (chunks > 65535) chunks = 65535;
    if (chunks < 1) chunks = 1;
    int64_t chunk = (p.r + chunks - 1) / chunks;
    chunks = (p.r + chunk - 1) / chunk;
    double *partial =
        chunks > 1 ? (double *)hy_arena_alloc_on(HY_CUDA, (size_t)(chunks * p.m) * sizeof(double))
                   : NULL;
    grad_cols<OP, FOR_A>
        <<<dim3(blocks, (unsigned)chunks), dim3(COLS_X, (unsigned)ys), 0, hy_cuda_stream()>>>(
            p, chunk, a, b, gy, g, partial);
    HY_CUDA_LAUNCHED(grad_cols);
    if (partial) {
      cols_sum<<<hy_cuda_blocks(p.m), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(p.m, chunks, partial,
                                                                              g);
      HY_CUDA_LAUNCHED(cols_sum);
    }
  }
}

template <hy_binary_op OP>
static void backward(const hy_bcast *bc, const float *a, const float *b, const float *gy, float *ga,
                     float *gb) {
  const int64_t *s = bc->shape;
  int64_t n = s[0] * s[1] * s[2] * s[3];
  if (n == 0) return; /* an empty output adds nothing to either operand */
  if (bc->a_full && bc->b_full) {
    if (!ga && !gb) return;
    grad_flat<OP><<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, hy_cuda_stream()>>>(n, a, b, gy, ga, gb);
    HY_CUDA_LAUNCHED(grad_flat);
    return;
  }
  if (ga) grad_operand<OP, true>(bc, a, b, gy, ga);
  if (gb) grad_operand<OP, false>(bc, a, b, gy, gb);
}

} // namespace

extern "C" void cuda_binary_f32(hy_binary_op op, const hy_bcast *bc, const float *a, const float *b,
                                float *y) {
  switch (op) {
  case HY_ADD: forward<HY_ADD>(bc, a, b, y); return;
  case HY_SUB: forward<HY_SUB>(bc, a, b, y); return;
  case HY_MUL: forward<HY_MUL>(bc, a, b, y); return;
  case HY_DIV: forward<HY_DIV>(bc, a, b, y); return;
  }
  hy_die("binary", "unknown op %d", (int)op);
}

extern "C" void cuda_binary_backward_f32(hy_binary_op op, const hy_bcast *bc, const float *a,
                                         const float *b, const float *gy, float *ga, float *gb) {
  switch (op) {
  case HY_ADD: backward<HY_ADD>(bc, a, b, gy, ga, gb); return;
  case HY_SUB: backward<HY_SUB>(bc, a, b, gy, ga, gb); return;
  case HY_MUL: backward<HY_MUL>(bc, a, b, gy, ga, gb); return;
  case HY_DIV: backward<HY_DIV>(bc, a, b, gy, ga, gb); return;
  }
  hy_die("binary_backward", "unknown op %d", (int)op);
}
