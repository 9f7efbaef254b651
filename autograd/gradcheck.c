#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "tensor/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double last_error;

double hy_gradcheck_last_error(void) { return last_error; }

/* L = sum(y * R), with y from f. */
static double loss_of(hy_gradcheck_fn f, void *ctx, hy_tensor **inputs, const double *R) {
  hy_step_mark mark = hy_step_get_mark();
  hy_tensor *y = f(inputs, ctx);
  double L = 0;
  for (int64_t i = 0; i < hy_numel(y); i++) L += hy_get(y, i) * R[i];
  hy_step_rewind(mark);
  return L;
}

static void forget_grad(hy_tensor *t) {
  if (t->persistent && t->grad)
    hy_fill(t->grad, 0.0);
  else
    t->grad = NULL;
}

bool hy_gradcheck(hy_gradcheck_fn f, void *ctx, int n, hy_tensor **inputs,
                  const hy_gradcheck_opts *opts) {
  hy_gradcheck_opts o = {1e-5, 1e-6, 1e-9, 1e-3, 48, 1, false};
  if (opts) {
    if (opts->step > 0) o.step = opts->step;
    if (opts->rtol > 0) o.rtol = opts->rtol;
    if (opts->atol > 0) o.atol = opts->atol;
    if (opts->floor > 0) o.floor = opts->floor;
    if (opts->max_per_tensor > 0) o.max_per_tensor = opts->max_per_tensor;
    if (opts->seed) o.seed = opts->seed;
    o.quiet = opts->quiet;
  }
  int checked_inputs = 0;
  for (int i = 0; i < n; i++) {
    if (inputs[i]->requires_grad) {
      hy_check_dtype("gradcheck", inputs[i], HY_F64);
      checked_inputs++;
    }
  }
  if (checked_inputs == 0) hy_die("gradcheck", "no input requires a gradient");

  hy_step_mark mark = hy_step_get_mark();
  for (int i = 0; i < n; i++) forget_grad(inputs[i]);
  hy_tensor *y = f(inputs, ctx);
  if (!y->requires_grad) hy_die("gradcheck", "the output does not depend on any checked input");
  int64_t ny = hy_numel(y);
  hy_rng rng = hy_rng_new(o.seed);
  double *R = malloc((size_t)(ny ? ny : 1) * sizeof *R);
  hy_tensor *gy = hy_empty(y->dtype, hy_shape_of(y));
  for (int64_t i = 0; i < ny; i++) {
    R[i] = hy_rng_normal(&rng);
    hy_set(gy, i, R[i]);
  }
  hy_backward_with(y, gy);
  double **analytic = calloc((size_t)n, sizeof *analytic);
  for (int i = 0; i < n; i++) {
    if (!inputs[i]->requires_grad) continue;
    int64_t m = hy_numel(inputs[i]);
    analytic[i] = calloc((size_t)(m ? m : 1), sizeof **analytic);
    if (inputs[i]->grad)
      for (int64_t j = 0; j < m; j++) analytic[i][j] = hy_get(inputs[i]->grad, j);
  }
  for (int i = 0; i < n; i++) forget_grad(inputs[i]);
  hy_step_rewind(mark);

  bool ok = true;
  last_error = 0;
  hy_no_grad_begin();
  for (int i = 0; i < n; i++) {
    hy_tensor *x = inputs[i];
    if (!x->requires_grad) continue;
    int64_t m = hy_numel(x);
    int64_t count = m < o.max_per_tensor ? m : o.max_per_tensor;
    int printed = 0;
    for (int64_t c = 0; c < count; c++) {
      int64_t j = count == m ? c : (int64_t)(hy_rng_u64(&rng) % (uint64_t)m);
      double x0 = hy_get(x, j);
      double h = o.step * fmax(1.0, fabs(x0));
      hy_set(x, j, x0 + h);
      double lp = loss_of(f, ctx, inputs, R);
      hy_set(x, j, x0 - h);
      double lm = loss_of(f, ctx, inputs, R);
      hy_set(x, j, x0);
      double num = (lp - lm) / (2 * h), ana = analytic[i][j];
      double scale = fmax(fabs(num), fabs(ana));
      double err = fabs(num - ana);
      bool pass = scale < o.floor ? err <= o.atol : err <= o.rtol * scale;
      double rel = scale < o.floor ? err / o.floor : err / scale;
      if (rel > last_error) last_error = rel;
      if (!pass) {
        ok = false;
        if (!o.quiet && printed++ < 5)
          fprintf(stderr,
                  "gradcheck: input %d %s element %lld: analytic %.12g numeric %.12g "
                  "(error %.3g)\n",
                  i, hy_describe(x), (long long)j, ana, num, err);
      }
    }
  }
  hy_no_grad_end();
  for (int i = 0; i < n; i++) free(analytic[i]);
  free(analytic);
  free(R);
  return ok;
}
