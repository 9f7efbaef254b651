#include "tensor/cpu/real.h"

/* y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps) per row; w may be NULL (no weight). */
void K(cpu_rmsnorm)(int64_t rows, int64_t d, const real *x, const real *w, double eps, real *y,
                    real *rstd) {
#pragma omp parallel for if (rows * d > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *xr = x + r * d;
    real *yr = y + r * d;
    real ss = 0;
    for (int64_t j = 0; j < d; j++) ss += xr[j] * xr[j];
    real s = 1 / sqrt(ss / (real)d + (real)eps);
    rstd[r] = s;
    if (w)
      for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * s * w[j];
    else
      for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * s;
  }
}

/* With xh = x * rstd and g = gy * w: gx += rstd * (g - xh * mean(g * xh)); gw += sum_rows gy * xh.
 * The weight gradient is summed over rows serially, in row order. */
void K(cpu_rmsnorm_backward)(int64_t rows, int64_t d, const real *x, const real *w,
                             const real *rstd, const real *gy, real *gx, real *gw) {
  if (gx) {
#pragma omp parallel for if (rows * d > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const real *xr = x + r * d, *gr = gy + r * d;
      real *gxr = gx + r * d;
      real s = rstd[r], dot = 0;
      for (int64_t j = 0; j < d; j++) dot += gr[j] * (w ? w[j] : 1) * xr[j] * s;
      dot /= (real)d;
      for (int64_t j = 0; j < d; j++) gxr[j] += s * (gr[j] * (w ? w[j] : 1) - xr[j] * s * dot);
    }
  }
  if (gw) {
    for (int64_t r = 0; r < rows; r++) {
      const real *xr = x + r * d, *gr = gy + r * d;
      real s = rstd[r];
      for (int64_t j = 0; j < d; j++) gw[j] += gr[j] * xr[j] * s;
    }
  }
}
