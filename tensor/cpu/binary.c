#include "tensor/cpu/real.h"

#include <string.h>

static inline real apply(hy_binary_op op, real a, real b) {
  switch (op) {
  case HY_ADD: return a + b;
  case HY_SUB: return a - b;
  case HY_MUL: return a * b;
  case HY_DIV: return a / b;
  }
  return 0;
}

void K(cpu_binary)(hy_binary_op op, const hy_bcast *bc, const real *a, const real *b, real *y) {
  const int64_t *s = bc->shape;
  if (bc->a_full && bc->b_full) {
    int64_t n = s[0] * s[1] * s[2] * s[3];
    switch (op) { /* one loop per op so that each vectorizes */
    case HY_ADD:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
      for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
      return;
    case HY_SUB:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
      for (int64_t i = 0; i < n; i++) y[i] = a[i] - b[i];
      return;
    case HY_MUL:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
      for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
      return;
    case HY_DIV:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
      for (int64_t i = 0; i < n; i++) y[i] = a[i] / b[i];
      return;
    }
  }
  int64_t outer = s[0] * s[1] * s[2];
#pragma omp parallel for if (outer * s[3] > PAR_MIN) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    int64_t i0 = o / (s[1] * s[2]), i1 = o / s[2] % s[1], i2 = o % s[2];
    const real *ar = a + i0 * bc->sa[0] + i1 * bc->sa[1] + i2 * bc->sa[2];
    const real *br = b + i0 * bc->sb[0] + i1 * bc->sb[1] + i2 * bc->sb[2];
    real *yr = y + o * s[3];
    int64_t sa = bc->sa[3], sb = bc->sb[3];
    for (int64_t j = 0; j < s[3]; j++) yr[j] = apply(op, ar[j * sa], br[j * sb]);
  }
}

/* d/da and d/db of op at (a, b), times the output gradient g. */
static inline real grad_a(hy_binary_op op, real a, real b, real g) {
  (void)a;
  switch (op) {
  case HY_ADD:
  case HY_SUB: return g;
  case HY_MUL: return g * b;
  case HY_DIV: return g / b;
  }
  return 0;
}

static inline real grad_b(hy_binary_op op, real a, real b, real g) {
  switch (op) {
  case HY_ADD: return g;
  case HY_SUB: return -g;
  case HY_MUL: return g * a;
  case HY_DIV: return -g * a / (b * b);
  }
  return 0;
}

/* Accumulate one operand's gradient. An operand of the output's shape is done in parallel; a
 * stretched one sums several output elements into one, serially so that the order is fixed. */
static void accumulate(hy_binary_op op, const hy_bcast *bc, bool for_a, const real *a,
                       const real *b, const real *gy, real *g) {
  const int64_t *s = bc->shape;
  const int64_t *sg = for_a ? bc->sa : bc->sb;
  bool full = for_a ? bc->a_full : bc->b_full;
  int64_t outer = s[0] * s[1] * s[2];
#pragma omp parallel for if (full && outer * s[3] > PAR_MIN) schedule(static)
  for (int64_t o = 0; o < outer; o++) {
    int64_t i0 = o / (s[1] * s[2]), i1 = o / s[2] % s[1], i2 = o % s[2];
    const real *ar = a + i0 * bc->sa[0] + i1 * bc->sa[1] + i2 * bc->sa[2];
    const real *br = b + i0 * bc->sb[0] + i1 * bc->sb[1] + i2 * bc->sb[2];
    real *gr = g + i0 * sg[0] + i1 * sg[1] + i2 * sg[2];
    const real *gyr = gy + o * s[3];
    int64_t sa = bc->sa[3], sb = bc->sb[3], sgs = sg[3];
    for (int64_t j = 0; j < s[3]; j++) {
      real ga = ar[j * sa], gb = br[j * sb];
      gr[j * sgs] += for_a ? grad_a(op, ga, gb, gyr[j]) : grad_b(op, ga, gb, gyr[j]);
    }
  }
}

/* Both operands of the output's shape (residual adds, gates): flat loops that vectorize. */
static void accumulate_flat(hy_binary_op op, int64_t n, const real *a, const real *b,
                            const real *gy, real *ga, real *gb) {
  switch (op) {
  case HY_ADD:
  case HY_SUB: {
    real sign = op == HY_ADD ? 1 : -1;
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
      if (ga) ga[i] += gy[i];
      if (gb) gb[i] += sign * gy[i];
    }
    return;
  }
  case HY_MUL:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
      if (ga) ga[i] += gy[i] * b[i];
      if (gb) gb[i] += gy[i] * a[i];
    }
    return;
  case HY_DIV:
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
      if (ga) ga[i] += gy[i] / b[i];
      if (gb) gb[i] -= gy[i] * a[i] / (b[i] * b[i]);
    }
    return;
  }
}

/* The elements of an operand whose broadcast strides are sg (a non-empty output). */
static int64_t operand_size(const hy_bcast *bc, const int64_t *sg) {
  int64_t m = 1;
  for (int d = 0; d < HY_MAX_DIMS; d++) m *= sg[d] ? bc->shape[d] : 1;
  return m;
}

/* A fresh gradient (acc_* false) is zeroed, then summed into in the same order as an old one. */
void K(cpu_binary_backward)(hy_binary_op op, const hy_bcast *bc, const real *a, const real *b,
                            const real *gy, real *ga, real *gb, bool acc_a, bool acc_b) {
  if (ga && !acc_a) memset(ga, 0, (size_t)operand_size(bc, bc->sa) * sizeof *ga);
  if (gb && !acc_b) memset(gb, 0, (size_t)operand_size(bc, bc->sb) * sizeof *gb);
  if (bc->a_full && bc->b_full) {
    const int64_t *s = bc->shape;
    accumulate_flat(op, s[0] * s[1] * s[2] * s[3], a, b, gy, ga, gb);
    return;
  }
  if (ga) accumulate(op, bc, true, a, b, gy, ga);
  if (gb) accumulate(op, bc, false, a, b, gy, gb);
}
