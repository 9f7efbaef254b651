/* The optimizer end of a GPU step (optim/clip.c, optim/optimizer.c): the global gradient norm and
 * AdamW or SGD over every parameter, one launch each, with nothing read back on the host.
 *
 * Work is cut into chunks of at most CHUNK elements of one parameter, listed once in a device
 * table (rebuilt only when a pointer or a size changes), and each kernel gives a block to a
 * chunk. A block reads its 48-byte entry once and then streams its elements with 16-byte
 * accesses; no element searches for its tensor (a flat index space would need a binary search
 * over the prefix offsets per access, or per block plus a split where a block straddles two
 * tensors), and a chunk never straddles tensors, so every access stays aligned.
 *
 * The norm: each block sums its chunk's squares in double, one block adds the partial sums in a
 * fixed order (no atomics: the same norm on every run) and writes the norm and the clip factor
 * on the device. The update scales each gradient by that factor as it reads it, so clipping
 * costs one read of the gradients and no pass of its own. The step's values (learning rate,
 * bias corrections) come from a device buffer written by one copy per step from pinned host
 * memory, so that a captured step replays with new ones.
 *
 * The arithmetic is the CPU's f32 (optim/optimizer.c) operation for operation, each rounded on
 * its own (no fused multiply-adds), so the GPU's updates are the CPU's. */
#include "tensor/cuda/common.cuh"
#include "tensor/cuda/bf16.cuh"

extern "C" {
#include "tensor/cuda/runtime.h"
}

#include <stdlib.h>
#include <string.h>

namespace {

constexpr int THREADS = 256;
constexpr int CHUNK = 8 * 4 * THREADS; /* elements per block: 8 float4 per thread */
constexpr int FINAL_THREADS = 1024;

struct chunk {
  float *w;
  const float *g;
  float *m, *v; /* SGD: the momentum in m, v unused */
  int n;
  float wd;
  int vec; /* every pointer 16-byte aligned: the body moves in float4 */
};

/* The device's scalars. */
struct scalars {
  double factor;       /* the clip factor for the next update */
  long long nonfinite; /* clips that found a non-finite norm */
  int skip;            /* the last clip's norm was not finite: its update changes nothing */
  hy_fused_step step;  /* copied from pinned host memory before each update */
};

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* ---- the kernels ---- */

__global__ void __launch_bounds__(THREADS) norm_partials(const chunk *chunks, double *partial) {
  const chunk c = chunks[blockIdx.x];
  int head = c.vec ? c.n & ~3 : 0;
  double acc = 0;
  for (int i = 4 * (int)threadIdx.x; i < head; i += 4 * THREADS) {
    float4 g = ld4(c.g + i);
    acc += (double)g.x * g.x;
    acc += (double)g.y * g.y;
    acc += (double)g.z * g.z;
    acc += (double)g.w * g.w;
  }
  for (int i = head + (int)threadIdx.x; i < c.n; i += THREADS) acc += (double)c.g[i] * c.g[i];
  acc = hy_block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

/* The partial sums in a fixed order, then the norm and (with s) the clip factor, exactly as
 * optim/clip.c computes them on the CPU. */
__global__ void __launch_bounds__(FINAL_THREADS)
    norm_final(const double *partial, int n, double max_norm, double *norm_out, scalars *s) {
  double acc = 0;
  for (int i = (int)threadIdx.x; i < n; i += FINAL_THREADS) acc += partial[i];
  acc = hy_block_sum(acc);
  if (threadIdx.x != 0) return;
  double norm = sqrt(acc);
  *norm_out = norm;
  if (!s) return;
  s->factor = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
  bool bad = !isfinite(norm);
  s->skip = bad;
  s->nonfinite += bad;
}

/* One element, the CPU's expressions with every operation rounded on its own. */
template <bool adamw>
__device__ __forceinline__ void update_one(float &w, float g, float &m, float &v, float wd,
                                           const hy_fused_step &s, const hy_fused_hyper &h) {
  if (adamw) {
    m = __fadd_rn(__fmul_rn(h.beta1, m), __fmul_rn(h.one_minus_beta1, g));
    v = __fadd_rn(__fmul_rn(h.beta2, v), __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
    float mhat = __fmul_rn(m, s.c1), vhat = __fmul_rn(v, s.c2);
    float u = __fadd_rn(__fdiv_rn(mhat, __fadd_rn(__fsqrt_rn(vhat), h.eps)), __fmul_rn(wd, w));
    w = __fsub_rn(w, __fmul_rn(s.lr, u));
  } else {
    float gj = __fadd_rn(g, __fmul_rn(wd, w));
    m = s.first ? gj : __fadd_rn(__fmul_rn(h.momentum, m), gj);
    w = __fsub_rn(w, __fmul_rn(s.lr, m));
  }
}

template <bool adamw>
__global__ void __launch_bounds__(THREADS)
    update(const chunk *chunks, const scalars *s, bool clipped, hy_fused_hyper h) {
  if (clipped && s->skip) return;
  const chunk c = chunks[blockIdx.x];
  const hy_fused_step st = s->step;
  const float f = clipped ? (float)s->factor : 1.0f; /* the CPU's g *= (float)c */
  int head = c.vec ? c.n & ~3 : 0;
  for (int i = 4 * (int)threadIdx.x; i < head; i += 4 * THREADS) {
    float4 w = ld4(c.w + i), g = ld4(c.g + i), m = ld4(c.m + i);
    float4 v = adamw ? ld4(c.v + i) : m;
    update_one<adamw>(w.x, __fmul_rn(g.x, f), m.x, v.x, c.wd, st, h);
    update_one<adamw>(w.y, __fmul_rn(g.y, f), m.y, v.y, c.wd, st, h);
    update_one<adamw>(w.z, __fmul_rn(g.z, f), m.z, v.z, c.wd, st, h);
    update_one<adamw>(w.w, __fmul_rn(g.w, f), m.w, v.w, c.wd, st, h);
    st4(c.w + i, w);
    st4(c.m + i, m);
    if (adamw) st4(c.v + i, v);
  }
  for (int i = head + (int)threadIdx.x; i < c.n; i += THREADS) {
    float w = c.w[i], m = c.m[i], v = adamw ? c.v[i] : 0.0f;
    update_one<adamw>(w, __fmul_rn(c.g[i], f), m, v, c.wd, st, h);
    c.w[i] = w;
    c.m[i] = m;
    if (adamw) c.v[i] = v;
  }
}

} // namespace

/* ---- the table ---- */

struct hy_fused {
  int n;                  /* parameters the table was built from */
  hy_fused_param *mirror; /* ...and their pointers, sizes and decays */
  int n_chunks, capacity; /* chunks in the table, room on the device */
  chunk *host_chunks;     /* the table on the host, kept while the device copy may be pending */
  chunk *chunks;          /* the table on the device */
  double *partial;        /* [capacity] per-block sums of squares */
  scalars *dev;           /* the device's scalars */
  hy_fused_step *pinned;  /* the next step's values, in pinned host memory */
  cudaEvent_t copied;     /* recorded after each copy from `pinned` */
};

static void die_if_capturing(const char *what) {
  if (hy_cuda_capturing())
    hy_die("optimizer",
           "%s while hyla's stream is being captured: run one step before the capture (it "
           "builds the parameters' table), and capture steps whose parameters and gradients "
           "stay where they are",
           what);
}

extern "C" hy_fused *cuda_fused_new(void) {
  die_if_capturing("the GPU optimizer's first use");
  hy_fused *f = (hy_fused *)calloc(1, sizeof *f);
  if (!f) hy_die("optimizer", "out of memory");
  f->dev = (scalars *)hy_cuda_malloc(sizeof(scalars));
  hy_cuda_memset(f->dev, 0, sizeof(scalars));
  HY_CUDA_CHECK(cudaHostAlloc((void **)&f->pinned, sizeof *f->pinned, cudaHostAllocDefault));
  memset(f->pinned, 0, sizeof *f->pinned);
  HY_CUDA_CHECK(cudaEventCreateWithFlags(&f->copied, cudaEventDisableTiming));
  return f;
}

extern "C" void cuda_fused_free(hy_fused *f) {
  if (!f) return;
  /* nothing queued may still read the table or the pinned values */
  HY_CUDA_CHECK(cudaStreamSynchronize(hy_cuda_stream()));
  hy_cuda_free(f->chunks);
  hy_cuda_free(f->partial);
  hy_cuda_free(f->dev);
  HY_CUDA_CHECK(cudaFreeHost(f->pinned));
  HY_CUDA_CHECK(cudaEventDestroy(f->copied));
  free(f->host_chunks);
  free(f->mirror);
  free(f);
}

/* Whether the table was built from these parameters: their gradients and sizes (enough for the
 * norm), or every field (the update). */
static bool same_table(const hy_fused *f, int n, const hy_fused_param *ps, bool all) {
  if (f->n != n) return false;
  for (int i = 0; i < n; i++) {
    const hy_fused_param &a = f->mirror[i], &b = ps[i];
    if (a.g != b.g || a.n != b.n) return false;
    if (all && (a.w != b.w || a.m != b.m || a.v != b.v || a.wd != b.wd)) return false;
  }
  return true;
}

/* Rebuild the table from ps unless it matches: the first step, or after parameters moved or a
 * gradient appeared. Allocates and waits for the stream, so never during a capture. */
static void sync_table(hy_fused *f, int n, const hy_fused_param *ps, bool all) {
  if (same_table(f, n, ps, all)) return;
  die_if_capturing("the parameters' table changed");
  HY_CUDA_CHECK(cudaStreamSynchronize(hy_cuda_stream())); /* the old table is no longer read */
  int64_t count = 0;
  for (int i = 0; i < n; i++)
    if (ps[i].g) count += (ps[i].n + CHUNK - 1) / CHUNK;
  if (count > INT32_MAX) hy_die("optimizer", "%lld chunks: too many", (long long)count);
  if (count > f->capacity) {
    hy_cuda_free(f->chunks);
    hy_cuda_free(f->partial);
    f->capacity = (int)count;
    f->chunks = (chunk *)hy_cuda_malloc(sizeof(chunk) * (size_t)count);
    f->partial = (double *)hy_cuda_malloc(sizeof(double) * (size_t)count);
  }
  free(f->host_chunks);
  free(f->mirror);
  f->host_chunks = (chunk *)malloc(sizeof(chunk) * (size_t)(count ? count : 1));
  f->mirror = (hy_fused_param *)malloc(sizeof(hy_fused_param) * (size_t)(n ? n : 1));
  if (!f->host_chunks || !f->mirror) hy_die("optimizer", "out of memory");
  memcpy(f->mirror, ps, sizeof(hy_fused_param) * (size_t)n);
  f->n = n;
  int k = 0;
  for (int i = 0; i < n; i++) {
    const hy_fused_param &p = ps[i];
    if (!p.g) continue; /* a parameter without a gradient is left alone */
    bool vec = aligned16(p.w) && aligned16(p.g) && aligned16(p.m) && aligned16(p.v);
    for (int64_t start = 0; start < p.n; start += CHUNK) {
      chunk &c = f->host_chunks[k++];
      c.w = p.w ? p.w + start : nullptr;
      c.g = p.g + start;
      c.m = p.m ? p.m + start : nullptr;
      c.v = p.v ? p.v + start : nullptr;
      c.n = (int)(p.n - start < CHUNK ? p.n - start : CHUNK);
      c.wd = p.wd;
      c.vec = vec;
    }
  }
  f->n_chunks = k;
  if (k)
    HY_CUDA_CHECK(cudaMemcpyAsync(f->chunks, f->host_chunks, sizeof(chunk) * (size_t)k,
                                  cudaMemcpyHostToDevice, hy_cuda_stream()));
}

/* ---- the entry points ---- */

extern "C" void cuda_fused_norm(hy_fused *f, int n, const hy_fused_param *ps, double *norm,
                                bool clip, double max_norm) {
  sync_table(f, n, ps, false);
  if (f->n_chunks) {
    norm_partials<<<f->n_chunks, THREADS, 0, hy_cuda_stream()>>>(f->chunks, f->partial);
    HY_CUDA_LAUNCHED(norm_partials);
  }
  norm_final<<<1, FINAL_THREADS, 0, hy_cuda_stream()>>>(f->partial, f->n_chunks, max_norm, norm,
                                                        clip ? f->dev : nullptr);
  HY_CUDA_LAUNCHED(norm_final);
}

extern "C" void cuda_fused_set_step(hy_fused *f, hy_fused_step step) {
  /* The last update's copy reads `pinned` when the GPU gets to it: wait for that copy (about a
   * step behind, with the step in between already queued) before writing the next values. */
  HY_CUDA_CHECK(cudaEventSynchronize(f->copied));
  *f->pinned = step;
}

extern "C" void cuda_fused_update(hy_fused *f, int n, const hy_fused_param *ps, hy_fused_hyper h,
                                  bool clipped) {
  sync_table(f, n, ps, true);
  cudaStream_t stream = hy_cuda_stream();
  HY_CUDA_CHECK(
      cudaMemcpyAsync(&f->dev->step, f->pinned, sizeof *f->pinned, cudaMemcpyHostToDevice, stream));
  /* In a capture the event becomes a node of the graph, recorded again by every replay. */
  HY_CUDA_CHECK(cudaEventRecordWithFlags(
      f->copied, stream, hy_cuda_capturing() ? cudaEventRecordExternal : cudaEventRecordDefault));
  if (!f->n_chunks) return;
  if (h.adamw) {
    update<true><<<f->n_chunks, THREADS, 0, stream>>>(f->chunks, f->dev, clipped, h);
    HY_CUDA_LAUNCHED(update<true>);
  } else {
    update<false><<<f->n_chunks, THREADS, 0, stream>>>(f->chunks, f->dev, clipped, h);
    HY_CUDA_LAUNCHED(update<false>);
  }
}

extern "C" int64_t cuda_fused_nonfinite(hy_fused *f) {
  long long n = 0;
  hy_cuda_memcpy(&n, false, &f->dev->nonfinite, true, sizeof n);
  return n;
}

extern "C" double cuda_fused_clip_factor(hy_fused *f) {
  double c = 0;
  hy_cuda_memcpy(&c, false, &f->dev->factor, true, sizeof c);
  return c;
}
