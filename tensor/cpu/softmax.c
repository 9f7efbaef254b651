#include "tensor/cpu/real.h"

static real row_max(const real *x, int64_t n) {
  real m = x[0];
  for (int64_t j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

/* log sum_j exp(x_j), shifted by the row max; a row of all -inf gives -inf. */
static real row_logsumexp(const real *x, int64_t n) {
  real m = row_max(x, n);
  if (isinf(m) && m < 0) return m;
  real s = 0;
  for (int64_t j = 0; j < n; j++) s += real_exp(x[j] - m);
  return m + log(s);
}

void K(cpu_softmax)(int64_t rows, int64_t n, const real *x, real *y) {
#pragma omp parallel for if (rows * n > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *xr = x + r * n;
    real *yr = y + r * n;
    real m = row_max(xr, n), s = 0;
    for (int64_t j = 0; j < n; j++) {
      yr[j] = real_exp(xr[j] - m);
      s += yr[j];
    }
    real inv = 1 / s;
    for (int64_t j = 0; j < n; j++) yr[j] *= inv;
  }
}

/* gx += y * (gy - sum_j gy_j y_j) */
void K(cpu_softmax_backward)(int64_t rows, int64_t n, const real *y, const real *gy, real *gx) {
#pragma omp parallel for if (rows * n > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *yr = y + r * n, *gr = gy + r * n;
    real *gxr = gx + r * n;
    real dot = 0;
    for (int64_t j = 0; j < n; j++) dot += gr[j] * yr[j];
    for (int64_t j = 0; j < n; j++) gxr[j] += yr[j] * (gr[j] - dot);
  }
}

void K(cpu_logsumexp)(int64_t rows, int64_t n, const real *x, real *y) {
#pragma omp parallel for if (rows * n > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) y[r] = row_logsumexp(x + r * n, n);
}

/* gx += gy * softmax(x) = gy * exp(x - lse) */
void K(cpu_logsumexp_backward)(int64_t rows, int64_t n, const real *x, const real *y,
                               const real *gy, real *gx) {
#pragma omp parallel for if (rows * n > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *xr = x + r * n;
    real *gxr = gx + r * n;
    if (isinf(y[r]) && y[r] < 0) continue;
    for (int64_t j = 0; j < n; j++) gxr[j] += gy[r] * real_exp(xr[j] - y[r]);
  }
}
