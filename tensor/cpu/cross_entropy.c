#include "tensor/cpu/real.h"

/* Sum over rows of lse(logits_r) - logits_r[target_r], skipping ignored targets. Saves each row's
 * log-sum-exp for the backward; counts the rows that were not ignored. Row losses are added in
 * row order in double, so the result does not depend on the thread count. */
double K(cpu_cross_entropy)(int64_t rows, int64_t V, const real *logits, const int32_t *targets,
                            int ignore_index, real *lse, int64_t *count) {
#pragma omp parallel for if (rows * V > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const real *x = logits + r * V;
    real m = x[0];
    for (int64_t j = 1; j < V; j++) m = x[j] > m ? x[j] : m;
    real s = 0;
    for (int64_t j = 0; j < V; j++) s += hy_exp(x[j] - m);
    lse[r] = m + log(s);
  }
  double total = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] == ignore_index) continue;
    total += (double)lse[r] - (double)logits[r * V + targets[r]];
    n++;
  }
  *count = n;
  return total;
}

/* glogits += scale * (softmax(logits) - onehot(target)) for rows that are not ignored. */
void K(cpu_cross_entropy_backward)(int64_t rows, int64_t V, const real *logits,
                                   const int32_t *targets, int ignore_index, const real *lse,
                                   double scale, real *glogits) {
  real c = (real)scale;
#pragma omp parallel for if (rows * V > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] == ignore_index) continue;
    const real *x = logits + r * V;
    real *g = glogits + r * V;
    for (int64_t j = 0; j < V; j++) g[j] += c * hy_exp(x[j] - lse[r]);
    g[targets[r]] -= c;
  }
}
