/* RAT's fused op (hy_rat) against causal softmax attention (hy_attention), forward + backward on
 * the CPU, f32, B = 1, H = 8, d_h = 64, at T = 1024 and 4096 for chunk sizes 1, 16, 64 and 256.
 * RAT attends over T / L chunk states instead of T tokens, so its time should fall about as 1 / L
 * until the O(T d) recurrence dominates; chunk 1 runs as attention over the gated keys and values
 * (tensor/rat.c). The attention time is measured in the same run. Usage: bench_rat [threads] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "tensor/arena.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>

enum { B = 1, H = 8, D = 64 };

typedef struct {
  hy_tensor *q, *u, *k, *f; /* persistent [B, T, H, D]; f in (0, 1) */
  int64_t chunk;            /* 0: hy_attention on q, k, u */
} rat_case;

static void step(void *p) {
  rat_case *c = p;
  hy_step_mark mark = hy_step_get_mark();
  double scale = 1.0 / sqrt((double)D);
  hy_tensor *o = c->chunk ? hy_rat(c->q, c->u, c->k, c->f, c->chunk, scale, 10000.0)
                          : hy_attention(c->q, c->k, c->u, scale);
  hy_backward(hy_sum_all(o));
  hy_step_rewind(mark);
}

static hy_tensor *input(int64_t T, hy_rng *rng, double lo, double hi, bool normal) {
  hy_tensor *t = hy_empty_persistent(HY_F32, HY_SHAPE(B, T, H, D));
  if (normal)
    hy_fill_normal(t, rng, 0, 1);
  else
    hy_fill_uniform(t, rng, lo, hi);
  t->requires_grad = true;
  return t;
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  bench_print_hardware();
  printf("f32, forward + backward, B=%d H=%d D=%d; speedup = attention ms / rat ms\n", B, H, D);
  printf("%6s %6s %12s %12s %8s\n", "T", "chunk", "rat ms", "attn ms", "speedup");
  int64_t Ts[] = {1024, 4096}, chunks[] = {1, 16, 64, 256};
  for (int i = 0; i < 2; i++) {
    hy_rng rng = hy_rng_new(7);
    rat_case c = {input(Ts[i], &rng, 0, 0, true), input(Ts[i], &rng, 0, 0, true),
                  input(Ts[i], &rng, 0, 0, true), input(Ts[i], &rng, 0.05, 0.95, false), 0};
    double t_attn = bench_median(step, &c, 3, 1.0);
    for (int j = 0; j < 4; j++) {
      c.chunk = chunks[j];
      double t = bench_median(step, &c, 3, 1.0);
      printf("%6lld %6lld %12.2f %12.2f %8.2f\n", (long long)Ts[i], (long long)chunks[j], t * 1e3,
             t_attn * 1e3, t_attn / t);
    }
    hy_free(c.q);
    hy_free(c.u);
    hy_free(c.k);
    hy_free(c.f);
  }
  hy_step_reset();
  return 0;
}
