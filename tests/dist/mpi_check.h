/* What the plain MPI test programs share (Criterion runs tests in forked children, which MPI does
 * not allow): the grid of every process along the sequence, a failure count summed over the ranks
 * at the end, and the relative error of a result against one process's (tests/rel_norm_err.h). */
#ifndef HYLA_MPI_CHECK_H
#define HYLA_MPI_CHECK_H

#include "dist/dist.h"
#include "tensor/tensor.h"
#include "tests/rel_norm_err.h"

#include <math.h>
#include <stdio.h>

static hy_dist D;
static int failures;

/* MPI started and every process in one sequence-parallel group; returns the world's size. */
static inline int mpi_check_start(int *argc, char ***argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order under mpirun */
  int world = hy_dist_start(argc, argv);
  hy_error err;
  if (hy_dist_grid(&D, 1, world, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    hy_dist_abort(2);
  }
  return world;
}

/* Every rank's failures summed, the verdict printed once, MPI stopped: main's exit status. */
static inline int mpi_check_finish(void) {
  int all = failures, world = D.world;
  hy_allreduce_sum(D.all, HY_CPU, &all, 1, HY_I32);
  if (D.rank == 0) printf("%s: %d failures over %d ranks\n", all ? "FAILED" : "passed", all, world);
  hy_dist_free(&D);
  hy_dist_stop();
  return all ? 1 : 0;
}

static inline double rel_err(const hy_tensor *a, const hy_tensor *ref) {
  return t_rel_norm_err_of(a, ref);
}

#endif
