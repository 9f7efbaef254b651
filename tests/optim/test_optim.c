/* Optimizers, schedules and clipping against hand-computed references. */
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "tests/support.h"

#include <math.h>

static hy_params ps;
static void fini(void) { hy_params_free(&ps); }
TestSuite(optim, .fini = fini);

/* Two parameters, one with weight decay, one without, with fixed gradients per step. */
static void setup(hy_dtype dtype) {
  hy_tensor *w = hy_params_add(&ps, "", "w", dtype, HY_SHAPE(3), true);
  hy_tensor *b = hy_params_add(&ps, "", "b", dtype, HY_SHAPE(2), false);
  double w0[] = {0.5, -1.0, 2.0}, b0[] = {0.25, -0.75};
  for (int i = 0; i < 3; i++) hy_set(w, i, w0[i]);
  for (int i = 0; i < 2; i++) hy_set(b, i, b0[i]);
}

static double grad_at(int step, int param, int i) {
  return 0.1 * (step + 1) * (param ? -1.0 : 1.0) + 0.05 * i - 0.02 * step * step;
}

static void set_grads(int step) {
  for (int p = 0; p < 2; p++) {
    hy_tensor *t = ps.items[p].t;
    hy_tensor *g = hy_grad(t);
    for (int64_t i = 0; i < hy_numel(t); i++) hy_set(g, i, grad_at(step, p, (int)i));
  }
}

Test(optim, adamw_matches_the_formula_over_five_steps) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dtype = d ? HY_F64 : HY_F32;
    setup(dtype);
    hy_optimizer o;
    double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, lr = 0.01;
    hy_optimizer_init(&o, &ps, hy_adamw_config(b1, b2, eps, wd));
    /* Reference in double, written out per element. */
    double w[2][3] = {{0.5, -1.0, 2.0}, {0.25, -0.75, 0}}, m[2][3] = {{0}}, v[2][3] = {{0}};
    int n[2] = {3, 2};
    for (int step = 0; step < 5; step++) {
      set_grads(step);
      hy_optimizer_step(&o, lr);
      for (int p = 0; p < 2; p++)
        for (int i = 0; i < n[p]; i++) {
          double g = grad_at(step, p, i);
          m[p][i] = b1 * m[p][i] + (1 - b1) * g;
          v[p][i] = b2 * v[p][i] + (1 - b2) * g * g;
          double mh = m[p][i] / (1 - pow(b1, step + 1)), vh = v[p][i] / (1 - pow(b2, step + 1));
          double decay = p == 0 ? wd : 0.0; /* "b" is not marked for decay */
          w[p][i] -= lr * (mh / (sqrt(vh) + eps) + decay * w[p][i]);
        }
    }
    double tol = d ? 1e-14 : 2e-6;
    for (int p = 0; p < 2; p++)
      for (int i = 0; i < n[p]; i++)
        cr_assert(fabs(hy_get(ps.items[p].t, i) - w[p][i]) <= tol, "%s p%d[%d]: %.17g vs %.17g",
                  hy_dtype_name(dtype), p, i, hy_get(ps.items[p].t, i), w[p][i]);
    cr_assert_eq(o.step, 5);
    hy_optimizer_free(&o);
    hy_params_free(&ps);
  }
}

Test(optim, sgd_momentum_matches_the_formula_over_five_steps) {
  setup(HY_F64);
  hy_optimizer o;
  double mu = 0.9, wd = 0.01, lr = 0.1;
  hy_optimizer_init(&o, &ps, hy_sgd_config(mu, wd));
  double w[2][3] = {{0.5, -1.0, 2.0}, {0.25, -0.75, 0}}, buf[2][3] = {{0}};
  int n[2] = {3, 2};
  for (int step = 0; step < 5; step++) {
    set_grads(step);
    hy_optimizer_step(&o, lr);
    for (int p = 0; p < 2; p++)
      for (int i = 0; i < n[p]; i++) {
        double g = grad_at(step, p, i) + (p == 0 ? wd : 0.0) * w[p][i];
        buf[p][i] = step == 0 ? g : mu * buf[p][i] + g;
        w[p][i] -= lr * buf[p][i];
      }
  }
  for (int p = 0; p < 2; p++)
    for (int i = 0; i < n[p]; i++)
      cr_assert(fabs(hy_get(ps.items[p].t, i) - w[p][i]) <= 1e-14, "p%d[%d]", p, i);
  hy_optimizer_free(&o);
}

Test(optim, a_parameter_without_gradient_is_left_alone) {
  setup(HY_F64);
  hy_optimizer o;
  hy_optimizer_init(&o, &ps, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  hy_grad(ps.items[0].t); /* only w has a gradient (zero) */
  hy_optimizer_step(&o, 0.1);
  cr_assert_eq(hy_get(ps.items[1].t, 0), 0.25);
  /* zero gradient: only the decoupled decay moves w */
  cr_assert(fabs(hy_get(ps.items[0].t, 0) - 0.5 * (1 - 0.1 * 0.1)) < 1e-15);
  hy_optimizer_free(&o);
}

Test(optim, schedules_at_known_steps) {
  hy_schedule s = {HY_COSINE, 1.0, 0.1, 10, 110, 0.2};
  cr_assert_float_eq(hy_schedule_lr(&s, 1), 0.1, 1e-15); /* warmup: 1/10 */
  cr_assert_float_eq(hy_schedule_lr(&s, 5), 0.5, 1e-15);
  cr_assert_float_eq(hy_schedule_lr(&s, 10), 1.0, 1e-15);
  cr_assert_float_eq(hy_schedule_lr(&s, 60), 0.55, 1e-12); /* halfway: (1 + 0.1) / 2 */
  cr_assert_float_eq(hy_schedule_lr(&s, 110), 0.1, 1e-12);
  cr_assert_float_eq(hy_schedule_lr(&s, 35), 0.1 + 0.9 * 0.5 * (1 + cos(0.78539816339744830962)),
                     1e-12);
  s.kind = HY_LINEAR;
  cr_assert_float_eq(hy_schedule_lr(&s, 60), 0.55, 1e-12);
  cr_assert_float_eq(hy_schedule_lr(&s, 35), 1.0 - 0.9 * 0.25, 1e-12);
  s.kind = HY_CONSTANT;
  cr_assert_float_eq(hy_schedule_lr(&s, 100), 1.0, 1e-15);
  s.kind = HY_WSD; /* decays over the last 22 of 110 steps, from step 88 */
  cr_assert_float_eq(hy_schedule_lr(&s, 88), 1.0, 1e-15);
  cr_assert_float_eq(hy_schedule_lr(&s, 99), 1.0 - 0.9 * 0.5, 1e-12);
  cr_assert_float_eq(hy_schedule_lr(&s, 110), 0.1, 1e-12);
  s.warmup = 0;
  s.kind = HY_COSINE;
  cr_assert_float_eq(hy_schedule_lr(&s, 0), 1.0, 1e-15);
}

Test(optim, clipping_scales_to_the_global_norm) {
  setup(HY_F64);
  set_grads(0); /* w: 0.1, 0.15, 0.2; b: -0.1, -0.05 */
  double norm = sqrt(0.01 + 0.0225 + 0.04 + 0.01 + 0.0025);
  cr_assert_float_eq(hy_grad_norm(&ps), norm, 1e-15);
  cr_assert_float_eq(hy_item(hy_clip_grad_norm(&ps, 1.0)), norm, 1e-15); /* below: unchanged */
  cr_assert_float_eq(hy_grad_norm(&ps), norm, 1e-15);
  hy_clip_grad_norm(&ps, 0.1);
  cr_assert_float_eq(hy_grad_norm(&ps), 0.1 * norm / (norm + 1e-6), 1e-15);
}

Test(optim, the_clipped_norm_is_a_scalar_tensor_owned_by_the_parameters) {
  setup(HY_F32);
  set_grads(0);
  double norm = hy_grad_norm(&ps);
  hy_tensor *t = hy_clip_grad_norm(&ps, 0); /* 0: no clipping */
  cr_assert(t == ps.grad_norm && t->device == HY_CPU && t->dtype == HY_F64 && hy_numel(t) == 1);
  cr_assert_eq(hy_item(t), norm);
  cr_assert_eq(hy_grad_norm(&ps), norm); /* max_norm 0 scales nothing */
  set_grads(3);
  cr_assert(hy_clip_grad_norm(&ps, 0) == t, "the same tensor, overwritten");
  cr_assert_eq(hy_item(t), hy_grad_norm(&ps));
  cr_assert_eq(hy_clip_nonfinite(&ps), 0);
  cr_assert(!ps.clip_pending, "the CPU scales in place: nothing waits for the step");
}

Test(optim, a_non_finite_norm_scales_nothing_on_the_cpu) {
  setup(HY_F32);
  set_grads(0);
  hy_set(ps.items[1].t->grad, 1, NAN);
  double g0 = hy_get(ps.items[0].t->grad, 2);
  cr_assert(isnan(hy_item(hy_clip_grad_norm(&ps, 1e-3))));
  cr_assert_eq(hy_get(ps.items[0].t->grad, 2), g0);
  cr_assert_eq(hy_clip_nonfinite(&ps), 0); /* the CPU's caller sees the norm and decides */
}

Test(optim, zero_grad_drops_a_pending_clip_and_free_resets_the_parameters) {
  setup(HY_F32);
  set_grads(0);
  hy_clip_grad_norm(&ps, 1.0);
  ps.clip_pending = true; /* as a GPU clip leaves it */
  hy_params_zero_grad(&ps);
  cr_assert(!ps.clip_pending);
  cr_assert_eq(hy_get(ps.items[0].t->grad, 0), 0.0);
  hy_params_free(&ps);
  cr_assert(ps.n == 0 && ps.items == NULL && ps.grad_norm == NULL && ps.fused == NULL);
}

static void prepare_on_the_cpu(void) {
  setup(HY_F32);
  hy_optimizer o;
  hy_optimizer_init(&o, &ps, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  hy_optimizer_prepare(&o, 1e-3);
}

Test(optim, prepare_is_for_the_gpu) {
  t_expect_abort(prepare_on_the_cpu, 1, (const char *const[]){"for parameters on the GPU"});
}
