/* dist.collectives under mpirun -np W (W = 1, 2, 4), on host buffers: "timed" gives the results
 * of "on" exactly and a positive time in collectives (zero for one process, which has none),
 * which hy_dist_take_seconds hands out once; "skipped" leaves every rank with its own numbers
 * (an allreduce or a broadcast leaves the buffer, an allgather fills only this rank's part, a
 * reduce-scatter gives this rank's part unsummed, a send and its receive move nothing) and
 * counts no bytes; "on" again reduces. A plain MPI program, as mpi_sequence_parallel.c. */
#include "dist/dist.h"
#include "tests/dist/mpi_check.h"

#include <stdio.h>
#include <string.h>

enum { N = 5 };

static void expect(bool ok, const char *what) {
  if (!ok) failures++;
  if (D.rank == 0 || !ok) printf("rank %d %s %s\n", D.rank, ok ? "ok  " : "FAIL", what);
}

/* This rank's values: rank r holds r * 10 + i at i. */
static void fill(double *x, int n, int rank) {
  for (int i = 0; i < n; i++) x[i] = rank * 10.0 + i;
}

static bool all_equal(const double *a, const double *b, int n) {
  return memcmp(a, b, sizeof *a * (size_t)n) == 0;
}

/* The collectives on host buffers with their results as one process computes them; with
 * `skipped`, what each rank keeps instead. */
static void check_results(bool skipped, const char *mode) {
  int W = D.world, r = D.rank;
  char what[96];
  double x[N], want[N];
  fill(x, N, r);
  for (int i = 0; i < N; i++) want[i] = skipped ? x[i] : 10.0 * W * (W - 1) / 2 + W * i;
  hy_allreduce_sum(D.all, HY_CPU, x, N, HY_F64);
  snprintf(what, sizeof what, "%s: allreduce", mode);
  expect(all_equal(x, want, N), what);

  double mine[N], gathered[4 * N], gathered_want[4 * N] = {0};
  fill(mine, N, r);
  for (int q = 0; q < W; q++) {
    fill(gathered_want + q * N, N, q);
    if (skipped && q != r)
      for (int i = 0; i < N; i++) gathered_want[q * N + i] = -1;
  }
  for (int i = 0; i < W * N; i++) gathered[i] = -1;
  hy_allgather(D.all, HY_CPU, mine, gathered, N, HY_F64);
  snprintf(what, sizeof what, "%s: allgather", mode);
  expect(all_equal(gathered, gathered_want, W * N), what);

  /* every rank sends rank r * 10 + j at j of W * N; part r sums rank * 10 + r * N + i */
  double parts[4 * N], part[N];
  fill(parts, W * N, r);
  for (int i = 0; i < N; i++)
    want[i] = skipped ? parts[r * N + i] : 10.0 * W * (W - 1) / 2 + W * (double)(r * N + i);
  hy_reduce_scatter_sum(D.all, HY_CPU, parts, part, N, HY_F64);
  snprintf(what, sizeof what, "%s: reduce-scatter", mode);
  expect(all_equal(part, want, N), what);

  fill(x, N, r);
  fill(want, N, skipped ? r : 0);
  hy_broadcast(D.all, HY_CPU, x, N, HY_F64, 0);
  snprintf(what, sizeof what, "%s: broadcast", mode);
  expect(all_equal(x, want, N), what);

  if (W > 1) { /* a ring: each rank sends to the next, receives from the one before */
    fill(x, N, r);
    double got[N];
    for (int i = 0; i < N; i++) got[i] = -1;
    hy_send(D.all, HY_CPU, x, N, HY_F64, (r + 1) % W);
    hy_recv(D.all, HY_CPU, got, N, HY_F64, (r + W - 1) % W);
    fill(want, N, (r + W - 1) % W);
    if (skipped)
      for (int i = 0; i < N; i++) want[i] = -1;
    snprintf(what, sizeof what, "%s: send and receive", mode);
    expect(all_equal(got, want, N), what);
  }
}

int main(int argc, char **argv) {
  mpi_check_start(&argc, &argv);
  if (D.world > 4) {
    fprintf(stderr, "mpi_collective_modes: at most 4 ranks\n");
    hy_dist_abort(2);
  }
  check_results(false, "on");
  expect(hy_dist_take_seconds(NULL) == 0, "on: no time taken");

  hy_dist_set_collectives(HY_COLLECTIVES_TIMED);
  check_results(false, "timed");
  double by[HY_COLL_KINDS], s = hy_dist_take_seconds(by), sum = 0;
  bool each = true; /* every kind ran (point to point only between two ranks or more) */
  for (int k = 0; k < HY_COLL_KINDS; k++) {
    sum += by[k];
    each = each && (D.world == 1 ? by[k] == 0 : by[k] > 0);
  }
  expect(D.world == 1 ? s == 0 : s > 0, "timed: time in collectives (none for one process)");
  expect(each && sum == s, "timed: each kind's time, summing to the whole");
  expect(hy_dist_take_seconds(NULL) == 0, "timed: the time handed out once");

  hy_dist_set_collectives(HY_COLLECTIVES_SKIPPED);
  hy_dist_reset_bytes();
  check_results(true, "skipped");
  uint64_t bytes = 0;
  for (int k = 0; k < HY_COLL_KINDS; k++) bytes += hy_dist_bytes((hy_coll_kind)k);
  expect(bytes == 0, "skipped: no bytes sent");

  hy_dist_set_collectives(HY_COLLECTIVES_ON);
  hy_barrier(D.all);
  check_results(false, "on again");
  return mpi_check_finish();
}
