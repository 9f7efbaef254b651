/* The linear-attention family on the CPU: forward + backward time per token of each layer (gla,
 * lightning, linear) in its chunked form, against the same layer in its plain step-by-step
 * recurrence and against softmax attention, at T = 256, 1024, 4096 (B = 1, d = 256, 4 heads).
 * The chunked forms should cost about the same per token at every T; softmax attention's cost
 * per token grows with T. Usage: bench_linear_attention [threads] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "layers/model.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

typedef struct {
  const hy_mixer_kind *kind;
  void *layer;
  hy_tensor *x; /* persistent [1, T, d] */
} mixer_case;

static void step(void *p) {
  mixer_case *c = p;
  hy_step_mark mark = hy_step_get_mark();
  hy_tensor *y = c->kind->forward(c->layer, c->x);
  hy_backward(hy_sum_all(y));
  hy_step_rewind(mark);
}

/* Microseconds per token of one forward + backward. */
static double time_layer(const char *kind, bool reference, int64_t T, hy_params *ps) {
  hy_model_config cfg = hy_model_config_default();
  cfg.d_model = 256;
  cfg.n_heads = 4;
  cfg.gla.recurrent = cfg.lightning.recurrent = cfg.linear.recurrent = reference;
  cfg.naive_attention = reference;
  hy_rng rng = hy_rng_new(1);
  mixer_case c = {hy_mixer_find(kind), NULL, hy_empty_persistent(HY_F32, HY_SHAPE(1, T, 256))};
  c.layer = c.kind->create(ps, kind, &cfg, 1, &rng);
  hy_fill_normal(c.x, &rng, 0, 1);
  c.x->requires_grad = true;
  double t = bench_median(step, &c, 3, T >= 4096 && reference ? 0.0 : 1.0);
  c.kind->destroy(c.layer);
  hy_free(c.x);
  hy_params_free(ps);
  return t / (double)T * 1e6;
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  bench_print_hardware();
  printf("f32, forward + backward of one layer, B=1 d=256 H=4; microseconds per token\n");
  printf("%-10s %6s %12s %12s %10s\n", "layer", "T", "chunked", "recurrence", "ratio");
  hy_params ps = {0};
  const char *kinds[] = {"gla", "lightning", "linear"};
  int64_t Ts[] = {256, 1024, 4096};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 3; i++) {
      double fast = time_layer(kinds[k], false, Ts[i], &ps);
      double ref = time_layer(kinds[k], true, Ts[i], &ps);
      printf("%-10s %6lld %12.2f %12.2f %10.1f\n", kinds[k], (long long)Ts[i], fast, ref,
             ref / fast);
    }
  printf("\n%-10s %6s %12s %12s\n", "layer", "T", "fused", "naive");
  for (int i = 0; i < 3; i++)
    printf("%-10s %6lld %12.2f %12.2f\n", "attn", (long long)Ts[i],
           time_layer("attn", false, Ts[i], &ps), time_layer("attn", true, Ts[i], &ps));
  hy_step_reset();
  return 0;
}
