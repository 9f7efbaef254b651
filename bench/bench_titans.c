/* Titans, forward + backward of one titans_mag layer on the CPU against the memory's chunk size:
 * chunk 1 (one inner update per token, the step-by-step form) is the reference measured in the
 * same run; larger chunks take fewer, larger inner steps. Usage: bench_titans [threads] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "layers/model.h"
#include "layers/titans.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

typedef struct {
  hy_titans_layer *layer;
  hy_tensor *x; /* persistent input, made once */
} titans_case;

static void step(void *p) {
  titans_case *c = p;
  hy_step_mark mark = hy_step_get_mark();
  hy_backward(hy_sum_all(hy_titans_forward(c->layer, c->x)));
  hy_step_rewind(mark);
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  bench_print_hardware();
  hy_model_config cfg = hy_model_config_default();
  cfg.dtype = HY_F32;
  cfg.d_model = 64;
  cfg.n_heads = 4;
  hy_titans_config tc = hy_titans_config_default();
  tc.heads = 4; /* memory heads of 16, a 2-layer MLP 32 wide */
  tc.expansion = 2;
  tc.window = 64;
  tc.lr_max = 1.0 / 16; /* a stable inner step (docs/layers/titans.md) */
  printf("titans_mag, f32, forward + backward, B=1 d=64, memory: 4 heads of 16, depth 2, hidden "
         "32; window 64, 4 persistent tokens\n");
  printf("%6s %6s %12s %10s %14s\n", "T", "chunk", "ms", "tok/s", "vs chunk 1");
  const int64_t Ts[] = {256, 1024}, chunks[] = {1, 4, 16, 64};
  for (int i = 0; i < 2; i++) {
    double reference = 0;
    for (int j = 0; j < 4; j++) {
      hy_params ps = {0};
      hy_rng rng = hy_rng_new(7);
      tc.chunk = chunks[j];
      titans_case c = {hy_titans_new(&ps, "mixer", &cfg, &tc, true, &rng), NULL};
      c.x = hy_empty_persistent(HY_F32, HY_SHAPE(1, Ts[i], cfg.d_model));
      hy_fill_normal(c.x, &rng, 0, 1);
      c.x->requires_grad = true;
      double t = bench_median(step, &c, 3, 1.0);
      if (j == 0) reference = t;
      printf("%6lld %6lld %12.2f %10.0f %13.2fx\n", (long long)Ts[i], (long long)chunks[j], t * 1e3,
             (double)Ts[i] / t, reference / t);
      hy_free(c.x);
      free(c.layer);
      hy_params_free(&ps);
      hy_step_reset();
    }
  }
  return 0;
}
