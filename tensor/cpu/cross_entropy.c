#include "tensor/cpu/real.h"

/* Cross entropy in three steps, each the twin of a kernel of tensor/cuda/cross_entropy.cu: count
 * the targets that are not ignored, then per row the log-sum-exp and the row's loss (and, for the
 * fused dense cross entropy, the row's gradient written over its logits), then the mean. The
 * count and the mean stay where the kernels put them (no value comes back to the caller), as on
 * the GPU, where that spares a copy to the host and a wait. */

void K(cpu_cross_entropy_count)(int64_t rows, const int32_t *targets, int ignore_index,
                                int64_t *count) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; r++) n += targets[r] != ignore_index;
  *count = n;
}

/* Per row: lse[r] (when lse is not NULL) and row_loss[r] = lse - logits[target] in double, 0 for
 * an ignored target, NaN for a target outside [0, V) (the op has already stopped on those; this
 * only keeps the kernel from reading outside the row). With count not NULL the row becomes its
 * gradient for a loss gradient of 1: (softmax - onehot(target)) / count, 0 on ignored rows. */
void K(cpu_cross_entropy_rows)(int64_t rows, int64_t V, real *logits, const int32_t *targets,
                               int ignore_index, real *lse, double *row_loss,
                               const int64_t *count) {
  real c = count && *count ? (real)(1.0 / (double)*count) : 0;
#pragma omp parallel for if (rows * V > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    real *x = logits + r * V;
    int32_t t = targets[r];
    if (t == ignore_index) {
      row_loss[r] = 0.0;
      if (count)
        for (int64_t j = 0; j < V; j++) x[j] = 0;
      continue;
    }
    real m = x[0];
    for (int64_t j = 1; j < V; j++) m = x[j] > m ? x[j] : m;
    real s = 0;
    for (int64_t j = 0; j < V; j++) s += real_exp(x[j] - m);
    real l = m + log(s);
    if (lse) lse[r] = l;
    bool valid = t >= 0 && t < V;
    row_loss[r] = valid ? (double)l - (double)x[t] : (double)NAN;
    if (!count) continue;
    for (int64_t j = 0; j < V; j++) x[j] = valid ? c * real_exp(x[j] - l) : (real)NAN;
    if (valid) x[t] -= c;
  }
}

/* loss = the row losses summed in row order in double, over the count (0 when it is 0). */
void K(cpu_cross_entropy_total)(int64_t rows, const double *row_loss, const int64_t *count,
                                real *loss) {
  double total = 0;
  for (int64_t r = 0; r < rows; r++) total += row_loss[r];
  *loss = (real)(*count ? total / (double)*count : 0.0);
}

/* glogits (+)= gloss / count * (softmax(logits) - onehot(target)) on rows that are not ignored;
 * ignored rows are left alone, or set to 0 when the gradient is fresh (accumulate false). */
void K(cpu_cross_entropy_backward)(int64_t rows, int64_t V, const real *logits,
                                   const int32_t *targets, int ignore_index, const real *lse,
                                   const int64_t *count, const real *gloss, bool accumulate,
                                   real *glogits) {
  real c = *count ? (real)((double)*gloss / (double)*count) : 0;
#pragma omp parallel for if (rows * V > PAR_MIN) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    real *g = glogits + r * V;
    int32_t t = targets[r];
    if (t == ignore_index) {
      if (!accumulate)
        for (int64_t j = 0; j < V; j++) g[j] = 0;
      continue;
    }
    const real *x = logits + r * V;
    bool valid = t >= 0 && t < V;
    for (int64_t j = 0; j < V; j++) {
      real v = valid ? c * real_exp(x[j] - lse[r]) : (real)NAN;
      g[j] = accumulate ? g[j] + v : v;
    }
    if (valid) g[t] -= c;
  }
}

/* dst (+)= gloss * src: the dense cross entropy's gradients, computed in its forward for a loss
 * gradient of 1, scaled by the loss's gradient. */
void K(cpu_cross_entropy_scale)(int64_t n, const real *src, const real *gloss, bool accumulate,
                                real *dst) {
  real g = *gloss;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
  for (int64_t i = 0; i < n; i++) dst[i] = accumulate ? dst[i] + g * src[i] : g * src[i];
}
