/* Causal softmax attention on the GPU (hy_attention, tensor/cuda/attention.cu): forward, and
 * forward + backward, at B=8 T=2048 H=16 D=64 on f32 tensors and on bf16 tensors (the tensor-core
 * kernels of tensor/cuda/attention_bf16.cu; q, k, v and the output gradient cast once before
 * timing); the median of 20 runs after 3 warm-ups, in ms and TFLOP/s (forward 4 B H T^2 D / 2
 * flops with the causal half, backward 2.5 times that). q, k, v get fresh gradients every run,
 * as a layer's projections do. Usage: bench_cuda_attention [T] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "tensor/arena.h"
#include "tensor/device.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { WARMUP = 3, REPS = 20 };

typedef struct {
  hy_tensor *q, *k, *v, *go; /* step tensors on the GPU, made before any run */
  bool backward;
} attn_case;

/* x (a persistent GPU tensor) in `dtype` as a step tensor of its own, made once, before the runs'
 * marks: their rewinds keep it. */
static hy_tensor *leaf(hy_tensor *x, hy_dtype dtype) {
  hy_tensor *y = hy_empty_on(HY_CUDA, dtype, hy_shape_of(x));
  hy_step_mark mark = hy_step_get_mark();
  hy_no_grad_begin();
  hy_copy_into(y, hy_cast(x, dtype));
  hy_no_grad_end();
  hy_step_rewind(mark);
  y->requires_grad = x->requires_grad;
  return y;
}

static attn_case case_of(hy_tensor *const *x, hy_dtype dtype) {
  return (attn_case){leaf(x[0], dtype), leaf(x[1], dtype), leaf(x[2], dtype), leaf(x[3], dtype),
                     false};
}

static void step(void *ctx) {
  attn_case *c = ctx;
  c->q->grad = c->k->grad = c->v->grad = NULL; /* last run's, rewound */
  hy_step_mark mark = hy_step_get_mark();
  double scale = 1.0 / sqrt((double)c->q->shape[3]);
  hy_tensor *o = hy_attention(c->q, c->k, c->v, scale);
  if (c->backward) hy_backward_with(o, c->go);
  hy_step_rewind(mark);
}

int main(int argc, char **argv) {
  if (!hy_cuda_available()) {
    printf("bench_cuda_attention: no CUDA GPU (%s); nothing to time\n",
           hy_cuda_built() ? "none visible" : "built without -DHYLA_CUDA=ON");
    return 0;
  }
  int64_t B = 8, T = argc > 1 ? atoll(argv[1]) : 2048, H = 16, D = 64;
  hy_set_device(HY_CUDA);
  hy_rng rng = hy_rng_new(7);
  hy_shape s = HY_SHAPE(B, T, H, D);
  hy_tensor *x[4] = {bench_gpu_normal(s, &rng, 1, true), bench_gpu_normal(s, &rng, 1, true),
                     bench_gpu_normal(s, &rng, 1, true), bench_gpu_normal(s, &rng, 1, false)};
  attn_case c = case_of(x, HY_F32), c16 = case_of(x, HY_BF16);
  double flops = 4.0 * (double)(B * H * D) * (double)T * (double)T / 2;
  double tf = bench_gpu_median(step, &c, WARMUP, REPS);
  c.backward = true;
  double tfb = bench_gpu_median(step, &c, WARMUP, REPS);
  double tf16 = bench_gpu_median(step, &c16, WARMUP, REPS);
  c16.backward = true;
  double tfb16 = bench_gpu_median(step, &c16, WARMUP, REPS);
  printf("device: %s\n", bench_gpu_description());
  printf("causal softmax attention, B=%lld T=%lld H=%lld D=%lld, median of %d after %d warm-ups\n",
         (long long)B, (long long)T, (long long)H, (long long)D, REPS, WARMUP);
  printf("| %-40s | %10s | %10s |\n", "pass", "ms", "TFLOP/s");
  printf("| %-40s | %10.3f | %10.2f |\n", "forward, f32", tf * 1e3, flops / tf * 1e-12);
  printf("| %-40s | %10.3f | %10.2f |\n", "forward + backward, f32", tfb * 1e3,
         3.5 * flops / tfb * 1e-12);
  printf("| %-40s | %10.3f | %10.2f |\n", "forward, bf16", tf16 * 1e3, flops / tf16 * 1e-12);
  printf("| %-40s | %10.3f | %10.2f |\n", "forward + backward, bf16", tfb16 * 1e3,
         3.5 * flops / tfb16 * 1e-12);
  for (int i = 0; i < 4; i++) hy_free(x[i]);
  hy_step_reset();
  return 0;
}
