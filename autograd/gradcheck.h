/* Gradient checks: the tape's gradients against central finite differences, in f64.
 *
 *   bool ok = hy_gradcheck(f, ctx, 2, (hy_tensor *[]){a, b}, NULL);
 *
 * f maps the inputs to any tensor y; the check differentiates L = sum(y * R) for a fixed random R.
 * Every input that requires a gradient is checked, on all its elements or on a sample of them
 * (always some from every tensor). An element passes when |analytic - numeric| <= rtol *
 * max(|analytic|, |numeric|), or, for gradients smaller than `floor`, <= atol. Failures are
 * printed. */
#ifndef HYLA_GRADCHECK_H
#define HYLA_GRADCHECK_H

#include "tensor/tensor.h"

typedef hy_tensor *(*hy_gradcheck_fn)(hy_tensor **inputs, void *ctx);

typedef struct {
  double step;        /* finite-difference step, relative to max(1, |x|); default 1e-5 */
  double rtol;        /* default 1e-6 */
  double atol;        /* default 1e-9 */
  double floor;       /* default 1e-3 */
  int max_per_tensor; /* elements checked per input; default 48 */
  uint64_t seed;      /* for R and the sample; default 1 */
  bool quiet;         /* do not print failures */
} hy_gradcheck_opts;

bool hy_gradcheck(hy_gradcheck_fn f, void *ctx, int n, hy_tensor **inputs,
                  const hy_gradcheck_opts *opts);

/* The worst relative error seen by the last hy_gradcheck call (for reports). */
double hy_gradcheck_last_error(void);

#endif
