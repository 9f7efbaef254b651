#include "layers/gla_reference.h"
#include "tensor/ops.h"

#include <stdlib.h>

/* Row t of x [B, T, H, n] as [B, H, rows, cols] (rows * cols = n). */
static hy_tensor *step(hy_tensor *x, int64_t t, int64_t rows, int64_t cols) {
  hy_tensor *r = hy_contiguous(hy_slice(x, 1, t, t + 1));
  return hy_reshape(r, HY_SHAPE(x->shape[0], x->shape[2], rows, cols));
}

hy_tensor *hy_gla_recurrent(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *g) {
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], dk = q->shape[3], dv = v->shape[3];
  hy_tensor *S = hy_zeros(q->dtype, HY_SHAPE(B, H, dk, dv));
  hy_tensor **outs = malloc((size_t)(T ? T : 1) * sizeof *outs);
  for (int64_t t = 0; t < T; t++) {
    if (g) S = hy_mul(S, hy_exp(step(g, t, dk, 1)));
    S = hy_add(S, hy_matmul(step(k, t, dk, 1), step(v, t, 1, dv)));
    outs[t] = hy_reshape(hy_matmul(step(q, t, 1, dk), S), HY_SHAPE(B, 1, H, dv));
  }
  hy_tensor *o = T ? hy_concat((int)T, outs, 1) : hy_zeros(q->dtype, HY_SHAPE(B, 0, H, dv));
  free(outs);
  return o;
}
