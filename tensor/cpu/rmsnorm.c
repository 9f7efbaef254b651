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

/* sum = x + y (y NULL: x itself is normalized and sum is not written), then h = rmsnorm(sum) * w:
 * the sum as hy_add makes it, the norm as cpu_rmsnorm, so the fused op keeps their numbers. */
void K(cpu_add_rmsnorm)(int64_t rows, int64_t d, const real *x, const real *y, const real *w,
                        double eps, real *sum, real *h, real *rstd) {
  if (y) {
    int64_t n = rows * d;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) sum[i] = x[i] + y[i];
    x = sum;
  }
  K(cpu_rmsnorm)(rows, d, x, w, eps, h, rstd);
}

/* The backward of an RMSNorm of the rows x (hy_rmsnorm's input, or hy_add_rmsnorm's sum) with
 * xh = x * rstd and g = gh * w: t = gsum + rstd * (g - xh * mean(g * xh)) (gh or gsum NULL: that
 * term is missing), gx (+)= t and gy (+)= t (acc_*: add, else overwrite; either NULL: skipped),
 * gw += sum_rows gh * xh, summed over rows serially, in row order. The same arithmetic as the
 * unfused rmsnorm and add, so that fusing them changes no number. */
void K(cpu_add_rmsnorm_backward)(int64_t rows, int64_t d, const real *x, const real *w,
                                 const real *rstd, const real *gh, const real *gsum, real *gx,
                                 bool acc_x, real *gy, bool acc_y, real *gw) {
  if (gx || gy) {
#pragma omp parallel for if (rows * d > PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const real *xr = x + r * d, *gr = gh ? gh + r * d : NULL, *sr = gsum ? gsum + r * d : NULL;
      real s = rstd[r], dot = 0;
      if (gr) {
        for (int64_t j = 0; j < d; j++) dot += gr[j] * (w ? w[j] : 1) * xr[j] * s;
        dot /= (real)d;
      }
      for (int64_t j = 0; j < d; j++) {
        real t = gr ? s * (gr[j] * (w ? w[j] : 1) - xr[j] * s * dot) : 0;
        if (sr) t = gr ? sr[j] + t : sr[j];
        if (gx) gx[r * d + j] = acc_x ? gx[r * d + j] + t : t;
        if (gy) gy[r * d + j] = acc_y ? gy[r * d + j] + t : t;
      }
    }
  }
  if (gw && gh) {
    for (int64_t r = 0; r < rows; r++) {
      const real *xr = x + r * d, *gr = gh + r * d;
      real s = rstd[r];
      for (int64_t j = 0; j < d; j++) gw[j] += gr[j] * xr[j] * s;
    }
  }
}

void K(cpu_rmsnorm_backward)(int64_t rows, int64_t d, const real *x, const real *w,
                             const real *rstd, const real *gy, real *gx, bool accumulate,
                             real *gw) {
  K(cpu_add_rmsnorm_backward)(rows, d, x, w, rstd, gy, NULL, gx, accumulate, NULL, false, gw);
}
