/* Training throughput: tokens/s of full steps (forward, backward, AdamW) of a d=128, 4-layer,
 * 4-head softmax model at T=256, B=8 over a byte vocabulary. scripts/bench_train.sh runs it beside
 * the same model in PyTorch. Usage: bench_train [threads] [steps] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

typedef struct {
  hy_model *m;
  hy_optimizer opt;
  hy_tensor *tokens; /* persistent [B, T + 1] */
  int64_t T;
  double loss;
} train_case;

static void step(void *p) {
  train_case *c = p;
  hy_tensor *x = hy_slice(c->tokens, 1, 0, c->T), *y = hy_slice(c->tokens, 1, 1, c->T + 1);
  hy_tensor *loss = hy_model_loss(c->m, x, y, -1);
  c->loss = hy_item(loss);
  hy_params_zero_grad(&c->m->params);
  hy_backward(loss);
  hy_optimizer_step(&c->opt, 1e-3);
  hy_step_reset();
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  int steps = argc > 2 ? atoi(argv[2]) : 20;
  bench_print_hardware();
  enum { B = 8, T = 256 };
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 256;
  cfg.d_model = 128;
  cfg.n_heads = 4;
  cfg.n_layers = 4;
  train_case c = {.m = hy_model_new(&cfg, 1), .T = T};
  hy_optimizer_init(&c.opt, &c.m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  c.tokens = hy_empty_persistent(HY_I32, HY_SHAPE(B, T + 1));
  hy_rng rng = hy_rng_new(3);
  hy_fill_int(c.tokens, &rng, 0, 256);
  double t = bench_median(step, &c, steps, 0.0);
  printf("hyla  threads=%d  params=%lld  step %.2f ms  %.0f tokens/s  (loss %.3f)\n",
         hy_threads_get(), (long long)hy_params_count(&c.m->params), t * 1e3, B * T / t, c.loss);
  hy_free(c.tokens);
  hy_optimizer_free(&c.opt);
  hy_model_free(c.m);
  return 0;
}
