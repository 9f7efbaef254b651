/* The point-to-point tape ops (dist/collective_ops.h: hy_dist_send, hy_dist_recv) under mpirun
 * -np W (W = 1, 2, 4): a pipeline along the ranks, rank r continuing from the value rank r - 1
 * hands it, gives every rank's parameter the gradient one process gets for the whole chain (f64,
 * relative error <= 1e-12); a value handed on that needs no gradient still gets its gradient
 * exchanged (nothing hangs); several sends in flight before their receiver reads them arrive in
 * order; the bytes sent are the formula's. A plain MPI program, as mpi_sequence_parallel.c. */
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "dist/dist.h"
#include "tests/dist/mpi_check.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void expect(bool ok, const char *what, double value) {
  if (!ok) failures++;
  if (D.rank == 0 || !ok)
    printf("rank %d %s %-48s %.3g\n", D.rank, ok ? "ok  " : "FAIL", what, value);
}

/* Stage r of the chain: s_r = tanh(s_{r-1} * a_r + a_r) (s_{-1} = 0); it adds <s_r, c> to the
 * loss. */
static hy_tensor *stage(hy_tensor *s, hy_tensor *a) {
  return hy_tanh(s ? hy_add(hy_mul(s, a), a) : a);
}

static hy_tensor *stage_loss(hy_tensor *s, hy_tensor *c) { return hy_sum_all(hy_mul(s, c)); }

/* Every rank's parameter a_r (and the weights c), the same on every rank. */
static void make(hy_tensor **a, hy_tensor **c) {
  hy_rng rng = hy_rng_new(5);
  for (int r = 0; r < D.sp; r++) {
    a[r] = hy_empty_persistent(HY_F64, HY_SHAPE(3, 4));
    hy_fill_normal(a[r], &rng, 0.2, 0.7);
    a[r]->requires_grad = true;
  }
  *c = hy_empty_persistent(HY_F64, HY_SHAPE(3, 4));
  hy_fill_normal(*c, &rng, 0, 1);
}

static void check_pipeline(void) {
  int W = D.sp, r = D.sp_rank;
  hy_tensor **a = calloc((size_t)W, sizeof *a), *c;
  make(a, &c);
  /* one process: the whole chain */
  hy_tensor *s = NULL, *loss = NULL;
  for (int i = 0; i < W; i++) {
    s = stage(s, a[i]);
    loss = loss ? hy_add(loss, stage_loss(s, c)) : stage_loss(s, c);
  }
  hy_backward(loss);
  hy_tensor *ref = hy_empty_persistent(HY_F64, HY_SHAPE(3, 4));
  hy_copy_into(ref, a[r]->grad);
  hy_fill(a[r]->grad, 0.0);
  hy_step_reset();
  /* the chain along the ranks: each its own stage */
  hy_dist_reset_bytes();
  hy_tensor *in = r ? hy_dist_recv(D.sp_group, r - 1, HY_CPU, HY_F64, HY_SHAPE(3, 4)) : NULL;
  s = stage(in, a[r]);
  loss = stage_loss(s, c);
  if (r + 1 < W) loss = hy_dist_send(D.sp_group, r + 1, s, loss);
  hy_backward(loss);
  expect(rel_err(a[r]->grad, ref) <= 1e-12, "pipeline: every rank's gradient",
         rel_err(a[r]->grad, ref));
  /* forward: s to the next rank; backward: the gradient of what came in, to the previous one */
  uint64_t want = (uint64_t)((r + 1 < W) + (r > 0)) * 12 * sizeof(double);
  expect(hy_dist_bytes(HY_COLL_SEND) == want, "pipeline: bytes sent = (next + previous) x 96",
         (double)hy_dist_bytes(HY_COLL_SEND));
  hy_step_reset();
  hy_free(ref);
  for (int i = 0; i < W; i++) hy_free(a[i]);
  hy_free(c);
  free(a);
}

/* A constant handed on (no gradient needed on the sender's side): the receiver still sends the
 * gradient back and the sender still takes it, so the two backward passes meet. */
static void check_constant_handed_on(void) {
  int W = D.sp, r = D.sp_rank;
  hy_tensor **a = calloc((size_t)W, sizeof *a), *c;
  make(a, &c);
  hy_tensor *in = r ? hy_dist_recv(D.sp_group, r - 1, HY_CPU, HY_F64, HY_SHAPE(3, 4)) : NULL;
  hy_tensor *s = stage(in, a[r]);
  hy_tensor *loss = stage_loss(s, c);
  if (r + 1 < W) loss = hy_dist_send(D.sp_group, r + 1, c, loss); /* c needs no gradient */
  hy_backward(loss);
  expect(c->grad == NULL, "constant handed on: no gradient kept", 0);
  hy_step_reset();
  for (int i = 0; i < W; i++) hy_free(a[i]);
  hy_free(c);
  free(a);
}

/* Three sends before the receiver reads any: they arrive in order. Without a tape: nothing is
 * sent back. */
static void check_in_order(void) {
  int W = D.sp, r = D.sp_rank;
  if (W == 1) return;
  hy_no_grad_begin();
  hy_dist_reset_bytes();
  double got[3] = {0};
  for (int i = 0; i < 3; i++)
    if (r + 1 < W) {
      hy_tensor *x = hy_full(HY_F64, HY_SHAPE(1000), 10.0 * r + i);
      hy_dist_send(D.sp_group, r + 1, x, x);
    }
  for (int i = 0; i < 3; i++)
    if (r > 0)
      got[i] = hy_get(hy_dist_recv(D.sp_group, r - 1, HY_CPU, HY_F64, HY_SHAPE(1000)), 999);
  hy_no_grad_end();
  bool ok = true;
  for (int i = 0; i < 3 && r > 0; i++) ok = ok && got[i] == 10.0 * (r - 1) + i;
  expect(ok, "three sends in flight arrive in order", r > 0 ? got[2] : 0);
  uint64_t want = r + 1 < W ? 3 * 1000 * sizeof(double) : 0;
  expect(hy_dist_bytes(HY_COLL_SEND) == want, "no tape: nothing sent back",
         (double)hy_dist_bytes(HY_COLL_SEND));
  hy_step_reset();
}

int main(int argc, char **argv) {
  mpi_check_start(&argc, &argv);
  check_pipeline();
  check_constant_handed_on();
  check_in_order();
  return mpi_check_finish();
}
