/* The optimizer and gradient clipping on the GPU against the CPU: the same parameters, gradients
 * and steps give the same weights. */
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>

static const double TOL = 1e-6; /* f32 elementwise updates, relative norm error */

/* Two parameters (one with weight decay), gradients from fixed seeds, `steps` updates. */
static void train(hy_device device, hy_optimizer_config cfg, int steps, double clip,
                  hy_tensor **out, double *norm) {
  hy_params ps = {0};
  hy_tensor *w = hy_params_add(&ps, "layer", "weight", HY_F32, HY_SHAPE(37, 29), true);
  hy_tensor *b = hy_params_add(&ps, "layer", "bias", HY_F32, HY_SHAPE(1000), false);
  hy_copy_into(w, t_randn(HY_F32, HY_SHAPE(37, 29), 1));
  hy_copy_into(b, t_randn(HY_F32, HY_SHAPE(1000), 2));
  hy_params_to(&ps, device);
  hy_optimizer o;
  hy_optimizer_init(&o, &ps, cfg);
  for (int s = 0; s < steps; s++) {
    for (int i = 0; i < ps.n; i++) {
      hy_tensor *p = ps.items[i].t;
      hy_copy_into(hy_grad(p), t_randn(HY_F32, hy_shape_of(p), 100 + 10 * s + i));
    }
    *norm = hy_item(hy_clip_grad_norm(&ps, clip));
    hy_optimizer_step(&o, 1e-2);
  }
  for (int i = 0; i < ps.n; i++) out[i] = t_to_cpu(ps.items[i].t);
  hy_optimizer_free(&o);
  hy_params_free(&ps);
}

static void expect_same_training(hy_optimizer_config cfg, double clip, const char *what) {
  hy_tensor *cpu[2], *gpu[2];
  double cpu_norm, gpu_norm;
  train(HY_CPU, cfg, 5, clip, cpu, &cpu_norm);
  train(HY_CUDA, cfg, 5, clip, gpu, &gpu_norm);
  t_expect_gpu_close(gpu[0], cpu[0], TOL, what);
  t_expect_gpu_close(gpu[1], cpu[1], TOL, what);
  cr_assert(fabs(gpu_norm - cpu_norm) <= 1e-6 * cpu_norm, "%s: gradient norm %.9g vs %.9g", what,
            gpu_norm, cpu_norm);
}

Test(cuda_optim, adamw_matches_cpu) {
  T_NEED_GPU();
  expect_same_training(hy_adamw_config(0.9, 0.95, 1e-8, 0.1), 0, "AdamW");
}

Test(cuda_optim, sgd_matches_cpu) {
  T_NEED_GPU();
  expect_same_training(hy_sgd_config(0.9, 0.01), 0, "SGD with momentum");
}

Test(cuda_optim, clipping_matches_cpu) {
  T_NEED_GPU();
  expect_same_training(hy_adamw_config(0.9, 0.95, 1e-8, 0.1), 1.0, "AdamW after clipping to 1");
}
