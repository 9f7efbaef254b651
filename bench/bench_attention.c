/* Causal softmax attention, forward + backward on the CPU: the fused op (hy_attention) against
 * the naive form that materializes the T x T scores (hy_attention_naive), in time and in the
 * step memory each needs (the arena's high-water mark). Usage: bench_attention [threads] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "layers/attention.h"
#include "tensor/arena.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>

typedef struct {
  hy_tensor *q, *k, *v; /* persistent inputs, made once */
  bool naive;
  size_t bytes; /* arena bytes the step used */
} attn_case;

static void step(void *p) {
  attn_case *c = p;
  hy_step_mark mark = hy_step_get_mark();
  size_t before = hy_arena_used();
  double scale = 1.0 / sqrt((double)c->q->shape[3]);
  hy_tensor *o = c->naive ? hy_attention_naive(c->q, c->k, c->v, scale)
                          : hy_attention(c->q, c->k, c->v, scale);
  hy_backward(hy_sum_all(o));
  c->bytes = hy_arena_used() - before;
  hy_step_rewind(mark);
}

static hy_tensor *input(int64_t B, int64_t T, int64_t H, int64_t D, hy_rng *rng) {
  hy_tensor *t = hy_empty_persistent(HY_F32, HY_SHAPE(B, T, H, D));
  hy_fill_normal(t, rng, 0, 1);
  t->requires_grad = true;
  return t;
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  bench_print_hardware();
  printf("f32, forward + backward, B=2 H=8 D=64\n");
  printf("%6s %12s %12s %8s %12s %12s %8s\n", "T", "fused ms", "naive ms", "speedup", "fused MiB",
         "naive MiB", "mem x");
  int64_t Ts[] = {256, 1024};
  for (int i = 0; i < 2; i++) {
    hy_rng rng = hy_rng_new(7);
    attn_case f = {input(2, Ts[i], 8, 64, &rng), input(2, Ts[i], 8, 64, &rng),
                   input(2, Ts[i], 8, 64, &rng), false, 0};
    attn_case n = f;
    n.naive = true;
    double tf = bench_median(step, &f, 5, 1.0), tn = bench_median(step, &n, 5, 1.0);
    printf("%6lld %12.2f %12.2f %8.2f %12.2f %12.2f %8.1f\n", (long long)Ts[i], tf * 1e3, tn * 1e3,
           tn / tf, (double)f.bytes / (1 << 20), (double)n.bytes / (1 << 20),
           (double)n.bytes / (double)f.bytes);
    hy_free(f.q);
    hy_free(f.k);
    hy_free(f.v);
  }
  hy_step_reset();
  return 0;
}
