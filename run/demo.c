#include "run/demo.h"
#include "autograd/tape.h"
#include "layers/model.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "tensor/ops.h"
#include "tensor/threads.h"

static const char DEMO_TEXT[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the winter "
    "of despair.";

double hy_demo(int64_t max_steps, FILE *out) {
  enum { B = 4, T = 64, STRIDE = 50 }; /* rows start STRIDE bytes apart: overlapping windows */
  _Static_assert((B - 1) * STRIDE + T < sizeof DEMO_TEXT, "the demo's rows fit the text");
  hy_model_config cfg = hy_model_config_default();
  hy_model *m = hy_model_new(&cfg, 1);
  hy_optimizer opt;
  hy_optimizer_init(&opt, &m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  fprintf(out, "demo: %lld parameters, batch %d x %d bytes, %d threads\n",
          (long long)hy_params_count(&m->params), B, T, hy_threads_get());
  double loss = 0;
  int64_t step = 0;
  do {
    step++;
    hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(B, T + 1));
    for (int b = 0; b < B; b++)
      for (int t = 0; t <= T; t++)
        hy_set(tokens, b * (T + 1) + t, (unsigned char)DEMO_TEXT[b * STRIDE + t]);
    hy_tensor *l = hy_model_loss(m, hy_slice(tokens, 1, 0, T), hy_slice(tokens, 1, 1, T + 1), -1);
    loss = hy_item(l);
    hy_params_zero_grad(&m->params);
    hy_backward(l);
    hy_clip_grad_norm(&m->params, 1.0);
    hy_optimizer_step(&opt, 3e-3);
    hy_step_reset();
    if (step == 1 || step % 20 == 0) fprintf(out, "step %4lld  loss %.4f\n", (long long)step, loss);
  } while (!(loss < HY_DEMO_LOSS) && step < max_steps);
  fprintf(out, "demo: loss %.4f after %lld steps\n", loss, (long long)step);
  hy_optimizer_free(&opt);
  hy_model_free(m);
  return loss;
}
