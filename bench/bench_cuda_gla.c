/* Chunked gated linear attention on the GPU (hy_gla, tensor/cuda/gla.cu): forward, and forward +
 * backward, at B=8 T=2048 H=4 dk=128 dv=256 and chunks of 64, gates as the layer makes them
 * (logsigmoid / 16); then lightning attention (hy_linear_attention with the lightning layer's
 * constant decay per head, the same kernels) at B=8 T=2048 H=16 d=64. Each on f32 tensors, then
 * on bf16 tensors (the inputs and the output gradient cast once before timing; rows named bf16).
 * q, k, v and g get fresh gradients every run, as a layer's projections do. The median of 20 runs
 * after 3 warm-ups, in ms and TFLOP/s. Flops count the useful work of the chunked form: per head,
 * the state products 4 T dk dv (o's and the state update) and the causal half of the intra-chunk
 * pairs T C (dk + dv); the backward twice that (recomputed intra-chunk scores not counted).
 * Usage: bench_cuda_gla [T] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "tensor/arena.h"
#include "tensor/device.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { WARMUP = 3, REPS = 20, CHUNK = 64 };

typedef struct {
  hy_tensor *q, *k, *v, *g, *go; /* on the GPU; g NULL: lightning's decays */
  const double *log_decay;
  bool backward;
} gla_case;

/* x (a persistent GPU tensor, or NULL) in `dtype` as a step tensor of its own, made before the
 * runs' marks: their rewinds keep it. */
static hy_tensor *leaf(hy_tensor *x, hy_dtype dtype) {
  if (!x) return NULL;
  hy_tensor *y = hy_empty_on(HY_CUDA, dtype, hy_shape_of(x));
  hy_step_mark mark = hy_step_get_mark();
  hy_no_grad_begin();
  hy_copy_into(y, hy_cast(x, dtype));
  hy_no_grad_end();
  hy_step_rewind(mark);
  y->requires_grad = x->requires_grad;
  return y;
}

static void step(void *ctx) {
  gla_case *c = ctx;
  hy_tensor *in[4] = {c->q, c->k, c->v, c->g};
  for (int i = 0; i < 4; i++)
    if (in[i]) in[i]->grad = NULL; /* last run's, rewound */
  hy_step_mark mark = hy_step_get_mark();
  hy_tensor *o = c->g ? hy_gla(c->q, c->k, c->v, c->g, CHUNK)
                      : hy_linear_attention(c->q, c->k, c->v, c->log_decay, CHUNK);
  if (c->backward) hy_backward_with(o, c->go);
  hy_step_rewind(mark);
}

/* Gates as the layer makes them: logsigmoid(x) / 16 of x ~ N(0, 1), computed on the GPU. */
static hy_tensor *gate(hy_shape s, hy_rng *rng) {
  hy_tensor *g = bench_gpu_normal(s, rng, 1, false);
  hy_step_mark mark = hy_step_get_mark();
  hy_no_grad_begin();
  hy_copy_into(g, hy_scale(hy_logsigmoid(g), 1.0 / 16));
  hy_no_grad_end();
  hy_step_rewind(mark);
  g->requires_grad = true;
  return g;
}

/* Times one case (forward, then forward + backward) on the persistent tensors of c cast to each
 * dtype, and prints the two table rows of each: f32's named as before, bf16's with ", bf16". */
static void time_case(const char *name, gla_case *c, int64_t B, int64_t T, int64_t H, int64_t dk,
                      int64_t dv) {
  double flops =
      (double)(B * H) * (double)T * (4.0 * (double)(dk * dv) + (double)(CHUNK * (dk + dv)));
  hy_dtype dtypes[2] = {HY_F32, HY_BF16};
  for (int i = 0; i < 2; i++) {
    hy_step_mark mark = hy_step_get_mark();
    gla_case t = {leaf(c->q, dtypes[i]),
                  leaf(c->k, dtypes[i]),
                  leaf(c->v, dtypes[i]),
                  leaf(c->g, dtypes[i]),
                  leaf(c->go, dtypes[i]),
                  c->log_decay,
                  false};
    double tf = bench_gpu_median(step, &t, WARMUP, REPS);
    t.backward = true;
    double tfb = bench_gpu_median(step, &t, WARMUP, REPS);
    hy_step_rewind(mark);
    const char *dt = hy_dtype_name(dtypes[i]), *suffix = i ? ", bf16" : "";
    printf("%s, %s, B=%lld T=%lld H=%lld dk=%lld dv=%lld chunk=%d, median of %d after %d "
           "warm-ups\n",
           name, dt, (long long)B, (long long)T, (long long)H, (long long)dk, (long long)dv, CHUNK,
           REPS, WARMUP);
    char row[64];
    snprintf(row, sizeof row, "forward%s", suffix);
    printf("| %-30s | %10.3f | %10.2f |\n", row, tf * 1e3, flops / tf * 1e-12);
    snprintf(row, sizeof row, "forward + backward%s", suffix);
    printf("| %-30s | %10.3f | %10.2f |\n", row, tfb * 1e3, 3 * flops / tfb * 1e-12);
  }
  hy_tensor *ts[5] = {c->q, c->k, c->v, c->g, c->go};
  for (int i = 0; i < 5; i++)
    if (ts[i]) hy_free(ts[i]);
}

int main(int argc, char **argv) {
  if (!hy_cuda_available()) {
    printf("bench_cuda_gla: no CUDA GPU (%s); nothing to time\n",
           hy_cuda_built() ? "none visible" : "built without -DHYLA_CUDA=ON");
    return 0;
  }
  int64_t B = 8, T = argc > 1 ? atoll(argv[1]) : 2048, H = 4, dk = 128, dv = 256;
  hy_set_device(HY_CUDA);
  hy_rng rng = hy_rng_new(7);
  printf("device: %s\n", bench_gpu_description());
  printf("| %-30s | %10s | %10s |\n", "pass", "ms", "TFLOP/s");
  hy_shape sk = HY_SHAPE(B, T, H, dk), sv = HY_SHAPE(B, T, H, dv);
  gla_case gla = {bench_gpu_normal(sk, &rng, 1 / sqrt((double)dk), true),
                  bench_gpu_normal(sk, &rng, 1, true),
                  bench_gpu_normal(sv, &rng, 1, true),
                  gate(sk, &rng),
                  bench_gpu_normal(sv, &rng, 1, false),
                  NULL,
                  false};
  time_case("chunked gla", &gla, B, T, H, dk, dv);
  /* Lightning: the decays of the first of 12 layers (layers/lightning.c). */
  int64_t LH = 16, D = 64;
  double log_decay[16];
  for (int64_t h = 0; h < LH; h++) log_decay[h] = -(8.0 / (double)LH) * (double)h;
  hy_shape sl = HY_SHAPE(B, T, LH, D);
  gla_case lightning = {bench_gpu_normal(sl, &rng, 1 / sqrt((double)D), true),
                        bench_gpu_normal(sl, &rng, 1, true),
                        bench_gpu_normal(sl, &rng, 1, true),
                        NULL,
                        bench_gpu_normal(sl, &rng, 1, false),
                        log_decay,
                        false};
  time_case("lightning attention", &lightning, B, T, LH, D, D);
  hy_step_reset();
  return 0;
}
