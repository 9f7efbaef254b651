/* Causal softmax attention on the GPU (hy_attention, tensor/cuda/attention.cu): forward, and
 * forward + backward, at B=8 T=2048 H=16 D=64 in f32 and with bf16 matmuls (the tensor-core
 * kernels of tensor/cuda/attention_bf16.cu); the median of 20 runs after 3 warm-ups, in
 * ms and TFLOP/s (forward 4 B H T^2 D / 2 flops with the causal half, backward 2.5 times that).
 * Usage: bench_cuda_attention [T] */
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
  hy_tensor *q, *k, *v, *go; /* persistent, on the GPU */
  bool backward;
} attn_case;

static void step(void *ctx) {
  attn_case *c = ctx;
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
  attn_case c = {bench_gpu_normal(s, &rng, 1, true), bench_gpu_normal(s, &rng, 1, true),
                 bench_gpu_normal(s, &rng, 1, true), bench_gpu_normal(s, &rng, 1, false), false};
  double flops = 4.0 * (double)(B * H * D) * (double)T * (double)T / 2;
  double tf = bench_gpu_median(step, &c, WARMUP, REPS);
  c.backward = true;
  double tfb = bench_gpu_median(step, &c, WARMUP, REPS);
  hy_set_precision(HY_PRECISION_BF16);
  c.backward = false;
  double tf16 = bench_gpu_median(step, &c, WARMUP, REPS);
  c.backward = true;
  double tfb16 = bench_gpu_median(step, &c, WARMUP, REPS);
  hy_set_precision(HY_PRECISION_F32);
  printf("device: %s\n", bench_gpu_description());
  printf("causal softmax attention, B=%lld T=%lld H=%lld D=%lld, median of %d after %d warm-ups\n",
         (long long)B, (long long)T, (long long)H, (long long)D, REPS, WARMUP);
  printf("| %-40s | %10s | %10s |\n", "pass", "ms", "TFLOP/s");
  printf("| %-40s | %10.3f | %10.2f |\n", "forward, f32", tf * 1e3, flops / tf * 1e-12);
  printf("| %-40s | %10.3f | %10.2f |\n", "forward + backward, f32", tfb * 1e3,
         3.5 * flops / tfb * 1e-12);
  printf("| %-40s | %10.3f | %10.2f |\n", "forward, bf16 tensor cores", tf16 * 1e3,
         flops / tf16 * 1e-12);
  printf("| %-40s | %10.3f | %10.2f |\n", "forward + backward, bf16 tensor cores", tfb16 * 1e3,
         3.5 * flops / tfb16 * 1e-12);
  hy_free(c.q);
  hy_free(c.k);
  hy_free(c.v);
  hy_free(c.go);
  hy_step_reset();
  return 0;
}
