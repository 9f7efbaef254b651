/* The optimizer end of a GPU step in one launch each (tensor/cuda/optim.cu) against the CPU's
 * optimizer: AdamW and SGD over a model's worth of parameters of odd sizes (around the kernels'
 * 8192-element chunks and their float4 steps), weight decay on some parameters only, one
 * parameter without a gradient and one whose gradient appears at the third step (the table is
 * made again), with and without clipping; the clip factor on the device against the CPU's; a step
 * left out for a non-finite norm; and the clip and the step captured into a CUDA graph, replayed
 * with new learning rates, against the same steps run one by one. */
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/kernels.h"
#include "tensor/cuda/runtime.h"

enum { N_PARAMS = 11, NO_GRAD = 5, LATE = 8, STEPS = 5 };
static const int64_t SIZES[N_PARAMS][2] = {{1000, 77}, {77, 1}, {8192, 1},  {8193, 1},
                                           {1, 1},     {3, 5},  {16387, 1}, {257, 129},
                                           {4095, 1},  {2, 2},  {6, 1365}};
static const double LR[STEPS] = {1e-2, 3e-3, 2e-2, 5e-3, 1e-3};
static const double TOL = 1e-6; /* f32, relative norm error */

typedef struct {
  hy_params ps;
  hy_optimizer o;
} model;

/* The same initial weights on either device; parameters 1, 4, 7 and 10 take no weight decay. */
static void build(model *m, hy_device device, hy_optimizer_config cfg) {
  m->ps = (hy_params){0};
  for (int i = 0; i < N_PARAMS; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    hy_shape shape = HY_SHAPE(SIZES[i][0], SIZES[i][1]);
    hy_tensor *p = hy_params_add(&m->ps, "layer", name, HY_F32, shape, i % 3 != 1);
    hy_copy_into(p, t_randn(HY_F32, shape, 10 + (uint64_t)i));
  }
  hy_params_to(&m->ps, device);
  hy_optimizer_init(&m->o, &m->ps, cfg);
}

static void drop(model *m) {
  hy_optimizer_free(&m->o);
  hy_params_free(&m->ps);
}

/* Fresh gradients of step s (the same on either device), scaled by `scale`. */
static void set_grads(model *m, int s, double scale) {
  for (int i = 0; i < N_PARAMS; i++) {
    if (i == NO_GRAD || (i == LATE && s < 2)) continue;
    hy_tensor *p = m->ps.items[i].t;
    hy_tensor *g = t_randn(HY_F32, hy_shape_of(p), 1000 + 100 * (uint64_t)s + (uint64_t)i);
    hy_copy_into(hy_grad(p), hy_scale(g, scale));
  }
}

static void expect_near(double got, double want, double rel, const char *what, int step) {
  cr_assert(fabs(got - want) <= rel * fabs(want), "%s at step %d: %.17g vs the CPU's %.17g", what,
            step, got, want);
}

/* STEPS steps of the same gradients on both devices, each clipped to max_norm (0: no clipping);
 * weights and the optimizer's state must agree, the norms and clip factors too. */
static void expect_same_training(hy_optimizer_config cfg, double max_norm, const char *what) {
  t_poison();
  model cpu, gpu;
  build(&cpu, HY_CPU, cfg);
  build(&gpu, HY_CUDA, cfg);
  hy_tensor *start = t_to_cpu(gpu.ps.items[NO_GRAD].t);
  for (int s = 0; s < STEPS; s++) {
    set_grads(&cpu, s, 0.1);
    set_grads(&gpu, s, 0.1);
    double norm = hy_grad_norm(&cpu.ps);
    expect_near(hy_grad_norm(&gpu.ps), norm, 1e-12, "hy_grad_norm", s);
    cr_assert_eq(hy_item(hy_clip_grad_norm(&cpu.ps, max_norm)), norm);
    hy_tensor *t = hy_clip_grad_norm(&gpu.ps, max_norm);
    cr_assert(t->device == HY_CUDA && t->dtype == HY_F64 && hy_numel(t) == 1);
    expect_near(hy_item(t), norm, 1e-12, "the clipped norm", s);
    double factor = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
    double got = cuda_fused_clip_factor(gpu.ps.fused);
    expect_near(got, factor, 1e-12, "the clip factor", s);
    cr_assert_eq((float)got, (float)factor, "%s: the f32 clip factor at step %d", what, s);
    hy_grad_norm(&gpu.ps); /* a norm read in between leaves the pending factor alone */
    hy_optimizer_step(&cpu.o, LR[s]);
    hy_optimizer_step(&gpu.o, LR[s]);
  }
  char name[128];
  for (int i = 0; i < N_PARAMS; i++) {
    if (i == NO_GRAD) continue;
    snprintf(name, sizeof name, "%s: weight %d", what, i);
    t_expect_gpu_close(gpu.ps.items[i].t, cpu.ps.items[i].t, TOL, name);
    for (int k = 0; k < cpu.o.n_state; k++) {
      snprintf(name, sizeof name, "%s: %s of weight %d", what, cpu.o.state_names[k], i);
      t_expect_gpu_close(gpu.o.state[k][i], cpu.o.state[k][i], TOL, name);
    }
  }
  snprintf(name, sizeof name, "%s: the weight without a gradient", what);
  t_expect_same_bits(t_to_cpu(gpu.ps.items[NO_GRAD].t), start, name);
  for (int k = 0; k < cpu.o.n_state; k++)
    t_expect_same_bits(t_to_cpu(gpu.o.state[k][NO_GRAD]), cpu.o.state[k][NO_GRAD], name);
  cr_assert_eq(gpu.o.step, STEPS);
  cr_assert_eq(hy_clip_nonfinite(&gpu.ps), 0);
  drop(&cpu);
  drop(&gpu);
}

Test(cuda_optim_fused, adamw_matches_the_cpu) {
  T_NEED_GPU();
  expect_same_training(hy_adamw_config(0.9, 0.95, 1e-8, 0.1), 0, "AdamW");
}

Test(cuda_optim_fused, adamw_after_clipping_matches_the_cpu) {
  T_NEED_GPU();
  /* the gradients' norm is about 0.1 sqrt(155000) = 39: clipped at every step */
  expect_same_training(hy_adamw_config(0.9, 0.95, 1e-8, 0.1), 5.0, "AdamW clipped to 5");
}

Test(cuda_optim_fused, adamw_with_a_norm_below_the_clip_matches_the_cpu) {
  T_NEED_GPU();
  expect_same_training(hy_adamw_config(0.9, 0.99, 1e-6, 0.01), 1e6, "AdamW under the clip");
}

Test(cuda_optim_fused, sgd_matches_the_cpu) {
  T_NEED_GPU();
  expect_same_training(hy_sgd_config(0.9, 0.01), 0, "SGD with momentum");
  expect_same_training(hy_sgd_config(0.9, 0.01), 5.0, "SGD clipped to 5");
}

/* The tensors of m (weights, then each state tensor) copied to the host. */
static void snapshot(model *m, hy_tensor **out) {
  for (int i = 0; i < N_PARAMS; i++) {
    out[i] = t_to_cpu(m->ps.items[i].t);
    for (int k = 0; k < m->o.n_state; k++) out[(k + 1) * N_PARAMS + i] = t_to_cpu(m->o.state[k][i]);
  }
}

Test(cuda_optim_fused, a_non_finite_norm_leaves_the_step_out) {
  T_NEED_GPU();
  model m;
  build(&m, HY_CUDA, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  set_grads(&m, 0, 1.0);
  hy_clip_grad_norm(&m.ps, 0);
  hy_optimizer_step(&m.o, 1e-2);
  hy_tensor *before[3 * N_PARAMS], *after[3 * N_PARAMS];
  snapshot(&m, before);
  set_grads(&m, 1, 1.0);
  hy_set(m.ps.items[3].t->grad, 8192, NAN); /* in the second chunk of parameter 3 */
  cr_assert(isnan(hy_item(hy_clip_grad_norm(&m.ps, 0))));
  hy_optimizer_step(&m.o, 1e-2);
  cr_assert_eq(hy_clip_nonfinite(&m.ps), 1);
  snapshot(&m, after);
  for (int i = 0; i < 3 * N_PARAMS; i++)
    t_expect_same_bits(after[i], before[i], "a step after a non-finite norm");
  set_grads(&m, 2, 1.0); /* finite again: the next step updates */
  cr_assert(isfinite(hy_item(hy_clip_grad_norm(&m.ps, 1.0))));
  hy_optimizer_step(&m.o, 1e-2);
  cr_assert_eq(hy_clip_nonfinite(&m.ps), 1);
  hy_tensor *w = t_to_cpu(m.ps.items[0].t);
  cr_assert(t_rel_norm_err(w, before[0]) > 1e-4, "the step after updates the weights");
  drop(&m);
}

/* The clip and the step captured into a graph and replayed 3 times with a learning rate written
 * before each replay, against 3 steps run one by one: the same weights and state to the bit. */
Test(cuda_optim_fused, a_captured_step_replays_with_new_learning_rates) {
  T_NEED_GPU();
  static const double lr[3] = {2e-2, 7e-3, 1e-3};
  for (int adamw = 0; adamw < 2; adamw++) {
    hy_optimizer_config cfg =
        adamw ? hy_adamw_config(0.9, 0.95, 1e-8, 0.1) : hy_sgd_config(0.9, 0.01);
    model a, b;
    build(&a, HY_CUDA, cfg);
    build(&b, HY_CUDA, cfg);
    for (int s = 0; s < 3; s++) { /* every gradient present before the capture */
      set_grads(&a, s, 0.1);
      set_grads(&b, s, 0.1);
    }
    hy_clip_grad_norm(&a.ps, 5.0); /* the first step builds the table, outside the capture */
    hy_optimizer_step(&a.o, 1e-2);
    hy_clip_grad_norm(&b.ps, 5.0);
    hy_optimizer_step(&b.o, 1e-2);

    cudaStream_t stream = hy_cuda_stream();
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cr_assert_eq(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert(hy_cuda_capturing());
    hy_clip_grad_norm(&a.ps, 5.0);
    hy_optimizer_step(&a.o, 123.0); /* recorded, not run: the replays bring their own rates */
    cudaError_t status = cudaStreamEndCapture(stream, &graph);
    cr_assert_eq(status, cudaSuccess, "capture: %s", cudaGetErrorString(status));
    cr_assert(!hy_cuda_capturing());
    cr_assert_eq(a.o.step, 1, "a capture counts no step");
    cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int r = 0; r < 3; r++) {
      hy_optimizer_prepare(&a.o, lr[r]);
      cr_assert_eq(cudaGraphLaunch(exec, stream), cudaSuccess);
    }
    for (int r = 0; r < 3; r++) {
      hy_clip_grad_norm(&b.ps, 5.0);
      hy_optimizer_step(&b.o, lr[r]);
    }
    hy_cuda_synchronize();
    cr_assert_eq(a.o.step, 4);
    cr_assert_eq(b.o.step, 4);
    hy_tensor *ta[3 * N_PARAMS], *tb[3 * N_PARAMS];
    snapshot(&a, ta);
    snapshot(&b, tb);
    for (int i = 0; i < (a.o.n_state + 1) * N_PARAMS; i++)
      t_expect_same_bits(ta[i], tb[i], adamw ? "AdamW replayed" : "SGD replayed");
    cr_assert_eq(hy_item(a.ps.grad_norm), hy_item(b.ps.grad_norm));
    cr_assert_eq(cudaGraphExecDestroy(exec), cudaSuccess);
    cr_assert_eq(cudaGraphDestroy(graph), cudaSuccess);
    drop(&a);
    drop(&b);
  }
}

#else
Test(cuda_optim_fused, needs_a_cuda_build) { T_NEED_GPU(); }
#endif
