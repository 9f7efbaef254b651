#include "tensor/cpu/real.h"

#include <stdlib.h>

/* x viewed as [outer, n, inner]: y_j (+)= sum_{i <= j} x_i, or sum_{i >= j} x_i when reversed.
 * The running sums are kept for all `inner` columns at once so the inner loop is contiguous. */
void K(cpu_cumsum)(int64_t outer, int64_t n, int64_t inner, bool reverse, bool accumulate,
                   const real *x, real *y) {
#pragma omp parallel for if (outer * n * inner > PAR_MIN) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    const real *xo = x + o * n * inner;
    real *yo = y + o * n * inner;
    real *run = calloc((size_t)inner, sizeof *run);
    if (!run) hy_die("cumsum", "out of memory");
    for (int64_t s = 0; s < n; s++) {
      int64_t j = reverse ? n - 1 - s : s;
      const real *xj = xo + j * inner;
      real *yj = yo + j * inner;
      for (int64_t i = 0; i < inner; i++) run[i] += xj[i];
      if (accumulate)
        for (int64_t i = 0; i < inner; i++) yj[i] += run[i];
      else
        for (int64_t i = 0; i < inner; i++) yj[i] = run[i];
    }
    free(run);
  }
}
