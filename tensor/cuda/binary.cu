#include "tensor/cuda/elementwise.cuh"

/* add, sub, mul, div of two broadcast operands (hy_bcast, as cpu_binary), and their gradients,
 * one template over the op and the storage type T (float or bf16: loads to f32, one rounding on
 * store). Operands of the output's shape take the packed maps of tensor/cuda/elementwise.cuh (four
 * elements a thread); a broadcast is a map over the output that reads each operand through its
 * strides, four elements a thread where rows allow it. A gradient of an operand of the output's
 * shape is such a map; that of a stretched operand sums over the stretched dims in double, one
 * thread or one block per operand element, in a fixed order: no atomics, the same bits on every
 * run. Operands the formula does not need (a and b in add's gradient) are not read. A gradient is
 * overwritten, or added into when its accumulate flag is set. */

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

/* Whether the gradient of a (FOR_A) or of b reads a, and b. */
template <hy_binary_op OP, bool FOR_A> constexpr bool reads_a() {
  return !FOR_A && (OP == HY_MUL || OP == HY_DIV);
}

template <hy_binary_op OP, bool FOR_A> constexpr bool reads_b() {
  return FOR_A ? OP == HY_MUL || OP == HY_DIV : OP == HY_DIV;
}

/* The maps' formulas at one element (a, b, g): the value, or one operand's gradient term. */
template <hy_binary_op OP> struct value_f {
  __device__ float operator()(float a, float b, float) const { return apply<OP>(a, b); }
};

template <hy_binary_op OP, bool FOR_A> struct grad_f {
  __device__ float operator()(float a, float b, float g) const {
    return grad_of<OP, FOR_A>(a, b, g);
  }
};

/* A packed map's element: x = (a, b, gy), y[0] = f(a, b, gy). */
template <typename F> struct packed_f {
  F f;
  __device__ void operator()(const float *x, float *y) const { y[0] = f(x[0], x[1], x[2]); }
};

/* Both gradients of one element: x = (a, b, gy), y = (ga, gb). */
template <hy_binary_op OP> struct grads_f {
  __device__ void operator()(const float *x, float *y) const {
    y[0] = grad_a<OP>(x[0], x[1], x[2]);
    y[1] = grad_b<OP>(x[0], x[1], x[2]);
  }
};

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

/* ---- maps over the output with broadcast operands ---- */

/* out[i] (+)= f(a, b, gy[i]) at output element i, a and b read through their broadcast strides
 * (gy NULL in the forward, and a or b NULL where f does not read them: f sees 0). */
template <typename F, typename T>
__global__ void bcast_map(bcast4 c, int64_t n, const T *__restrict__ a, const T *__restrict__ b,
                          const T *__restrict__ gy, T *__restrict__ out, bool acc, F f) {
  HY_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    offsets(c, i, &oa, &ob);
    float v = f(a ? ld(a + oa) : 0.0f, b ? ld(b + ob) : 0.0f, gy ? ld(gy + i) : 0.0f);
    st(out + i, acc ? ld(out + i) + v : v);
  }
}

/* Four consecutive elements of a row of an operand: four loads where it runs along the row (last
 * stride 1), one value for all four where it is stretched along it (stride 0). */
template <typename T> __device__ __forceinline__ float4 ld4_along(const T *p, int64_t s3) {
  if (!p) return make_float4(0, 0, 0, 0);
  if (s3) return ld4(p);
  float v = ld(p);
  return make_float4(v, v, v, v);
}

/* bcast_map four outputs a thread, for rows whose length is a multiple of 4 (the four share their
 * row, so one offset computation serves them). */
template <typename F, typename T>
__global__ void bcast_map4(bcast4 c, int64_t n4, const T *__restrict__ a, const T *__restrict__ b,
                           const T *__restrict__ gy, T *__restrict__ out, bool acc, F f) {
  HY_GRID_STRIDE(i, n4) {
    int64_t oa, ob;
    offsets(c, 4 * i, &oa, &ob);
    float4 va = ld4_along(a ? a + oa : a, c.sa[3]), vb = ld4_along(b ? b + ob : b, c.sb[3]);
    float4 vg = gy ? ld4(gy + 4 * i) : make_float4(0, 0, 0, 0), v;
#pragma unroll
    for (int j = 0; j < 4; j++) lane(v, j) = f(lane(va, j), lane(vb, j), lane(vg, j));
    if (acc) {
      float4 old = ld4(out + 4 * i);
      v.x += old.x, v.y += old.y, v.z += old.z, v.w += old.w;
    }
    st4(out + 4 * i, v);
  }
}

template <typename F, typename T>
static void bcast_launch(const hy_bcast *bc, const T *a, const T *b, const T *gy, T *out, bool acc,
                         F f) {
  bcast4 c = bcast4_of(bc);
  int64_t n = c.shape[0] * c.shape[1] * c.shape[2] * c.shape[3];
  bool vec = c.shape[3] % 4 == 0 && hy_aligned4<T>(out) && (!gy || hy_aligned4<T>(gy)) &&
             (!a || c.sa[3] == 0 || hy_aligned4<T>(a)) && (!b || c.sb[3] == 0 || hy_aligned4<T>(b));
  cudaStream_t s = hy_cuda_stream();
  if (vec) {
    bcast_map4<<<hy_cuda_blocks(n / 4), HY_CUDA_THREADS, 0, s>>>(c, n / 4, a, b, gy, out, acc, f);
    HY_CUDA_LAUNCHED(bcast_map4);
  } else {
    bcast_map<<<hy_cuda_blocks(n), HY_CUDA_THREADS, 0, s>>>(c, n, a, b, gy, out, acc, f);
    HY_CUDA_LAUNCHED(bcast_map);
  }
}

/* ---- forward ---- */

template <hy_binary_op OP, typename T>
static void forward(const hy_bcast *bc, const T *a, const T *b, T *y) {
  const int64_t *s = bc->shape;
  int64_t n = s[0] * s[1] * s[2] * s[3];
  if (n == 0) return;
  if (bc->a_full && bc->b_full)
    map_launch(n, map_io<T, 3, 1>{{a, b, NULL}, {y}, {false}}, packed_f<value_f<OP>>{});
  else
    bcast_launch(bc, a, b, (const T *)NULL, y, false, value_f<OP>{});
}

/* ---- backward ---- */

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

template <hy_binary_op OP, bool FOR_A, typename T>
__device__ __forceinline__ float term(const plan &p, const int64_t base[3], int64_t k,
                                      const T *__restrict__ a, const T *__restrict__ b,
                                      const T *__restrict__ gy) {
  int64_t o[3];
  step_of(p, k, o);
  return grad_of<OP, FOR_A>(a ? ld(a + base[0] + o[0]) : 0.0f, b ? ld(b + base[1] + o[1]) : 0.0f,
                            ld(gy + base[2] + o[2]));
}

/* Stretched gradients are long sums (a bias over every row): they add in double, so that the
 * result is the exact sum rounded once to f32 rather than f32 rounding at every level.
 * The last dim is stretched (a column [.., 1] against rows): one block per operand element, its
 * threads over the stretched positions, which run along the output's rows (coalesced). */
template <hy_binary_op OP, bool FOR_A, typename T>
__global__ void grad_rows(plan p, const T *__restrict__ a, const T *__restrict__ b,
                          const T *__restrict__ gy, T *__restrict__ g, bool acc) {
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
      if (lane == 0) st(g + e, acc ? ld(g + e) + (float)s : (float)s);
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

template <hy_binary_op OP, bool FOR_A, typename T>
__global__ void grad_cols(plan p, int64_t chunk, const T *__restrict__ a, const T *__restrict__ b,
                          const T *__restrict__ gy, T *__restrict__ g, bool acc,
                          double *__restrict__ partial) {
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
        st(g + e, acc ? ld(g + e) + (float)total : (float)total);
    }
    __syncthreads();
  }
}

/* g[e] (+)= the chunks' partial sums of element e, in chunk order. */
template <typename T>
__global__ void cols_sum(int64_t m, int64_t chunks, const double *__restrict__ partial,
                         T *__restrict__ g, bool acc) {
  HY_GRID_STRIDE(e, m) {
    double s = 0;
    for (int64_t c = 0; c < chunks; c++) s += partial[c * m + e];
    st(g + e, acc ? ld(g + e) + (float)s : (float)s);
  }
}

template <hy_binary_op OP, bool FOR_A, typename T>
static void grad_operand(const hy_bcast *bc, const T *a, const T *b, const T *gy, T *g, bool acc) {
  if (!reads_a<OP, FOR_A>()) a = NULL;
  if (!reads_b<OP, FOR_A>()) b = NULL;
  if (FOR_A ? bc->a_full : bc->b_full) {
    bcast_launch(bc, a, b, gy, g, acc, grad_f<OP, FOR_A>{});
    return;
  }
  cudaStream_t stream = hy_cuda_stream();
  plan p = plan_of(bc, FOR_A);
  if (p.n_red > 0 && p.red[p.n_red - 1] == 3) {
    unsigned threads = p.r >= 4096 ? 512 : p.r >= 512 ? 256 : p.r >= 64 ? 64 : 32;
    unsigned blocks = (unsigned)(p.m < 65535 * 8 ? p.m : 65535 * 8);
    grad_rows<OP, FOR_A><<<blocks, threads, 0, stream>>>(p, a, b, gy, g, acc);
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
    grad_cols<OP, FOR_A><<<dim3(blocks, (unsigned)chunks), dim3(COLS_X, (unsigned)ys), 0, stream>>>(
        p, chunk, a, b, gy, g, acc, partial);
    HY_CUDA_LAUNCHED(grad_cols);
    if (partial) {
      cols_sum<<<hy_cuda_blocks(p.m), HY_CUDA_THREADS, 0, stream>>>(p.m, chunks, partial, g, acc);
      HY_CUDA_LAUNCHED(cols_sum);
    }
  }
}

/* The op's caller gives the operands of an empty output their (zero) gradients: n > 0 here, so
 * every element of ga and gb is written. */
template <hy_binary_op OP, typename T>
static void backward(const hy_bcast *bc, const T *a, const T *b, const T *gy, T *ga, T *gb,
                     bool acc_a, bool acc_b) {
  const int64_t *s = bc->shape;
  int64_t n = s[0] * s[1] * s[2] * s[3];
  if (n == 0 || (!ga && !gb)) return;
  if (bc->a_full && bc->b_full) {
    bool need_a = (ga && reads_a<OP, true>()) || (gb && reads_a<OP, false>());
    bool need_b = (ga && reads_b<OP, true>()) || (gb && reads_b<OP, false>());
    map_io<T, 3, 2> io = {{need_a ? a : NULL, need_b ? b : NULL, gy}, {ga, gb}, {acc_a, acc_b}};
    map_launch(n, io, grads_f<OP>{});
    return;
  }
  if (ga) grad_operand<OP, true>(bc, a, b, gy, ga, acc_a);
  if (gb) grad_operand<OP, false>(bc, a, b, gy, gb, acc_b);
}

template <typename T>
static void binary(hy_binary_op op, const hy_bcast *bc, const T *a, const T *b, T *y) {
  switch (op) {
  case HY_ADD: forward<HY_ADD>(bc, a, b, y); return;
  case HY_SUB: forward<HY_SUB>(bc, a, b, y); return;
  case HY_MUL: forward<HY_MUL>(bc, a, b, y); return;
  case HY_DIV: forward<HY_DIV>(bc, a, b, y); return;
  }
  hy_die("binary", "unknown op %d", (int)op);
}

template <typename T>
static void binary_backward(hy_binary_op op, const hy_bcast *bc, const T *a, const T *b,
                            const T *gy, T *ga, T *gb, bool acc_a, bool acc_b) {
  switch (op) {
  case HY_ADD: backward<HY_ADD>(bc, a, b, gy, ga, gb, acc_a, acc_b); return;
  case HY_SUB: backward<HY_SUB>(bc, a, b, gy, ga, gb, acc_a, acc_b); return;
  case HY_MUL: backward<HY_MUL>(bc, a, b, gy, ga, gb, acc_a, acc_b); return;
  case HY_DIV: backward<HY_DIV>(bc, a, b, gy, ga, gb, acc_a, acc_b); return;
  }
  hy_die("binary_backward", "unknown op %d", (int)op);
}

} // namespace

extern "C" void cuda_binary_f32(hy_binary_op op, const hy_bcast *bc, const float *a, const float *b,
                                float *y) {
  binary(op, bc, a, b, y);
}

extern "C" void cuda_binary_bf16(hy_binary_op op, const hy_bcast *bc, const hy_bf16 *a,
                                 const hy_bf16 *b, hy_bf16 *y) {
  binary(op, bc, (const bf16 *)a, (const bf16 *)b, (bf16 *)y);
}

extern "C" void cuda_binary_backward_f32(hy_binary_op op, const hy_bcast *bc, const float *a,
                                         const float *b, const float *gy, float *ga, float *gb,
                                         bool acc_a, bool acc_b) {
  binary_backward(op, bc, a, b, gy, ga, gb, acc_a, acc_b);
}

extern "C" void cuda_binary_backward_bf16(hy_binary_op op, const hy_bcast *bc, const hy_bf16 *a,
                                          const hy_bf16 *b, const hy_bf16 *gy, hy_bf16 *ga,
                                          hy_bf16 *gb, bool acc_a, bool acc_b) {
  binary_backward(op, bc, (const bf16 *)a, (const bf16 *)b, (const bf16 *)gy, (bf16 *)ga,
                  (bf16 *)gb, acc_a, acc_b);
}
