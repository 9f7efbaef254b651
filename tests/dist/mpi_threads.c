/* The default count of CPU threads under mpirun -np W (W = 1, 2, 4; every rank on this machine):
 * with HYLA_THREADS and OMP_NUM_THREADS unset, a rank that mpirun left free to run on every core
 * takes its share of them (cores / W, at least 1), and one bound to some cores takes those; a
 * count given, by the variables or by the caller, still wins. A plain MPI program, as
 * mpi_sequence_parallel.c. */
#include "tensor/threads.h"
#include "tests/dist/mpi_check.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static void expect_threads(int got, int want, const char *what) {
  bool ok = got == want;
  if (!ok) failures++;
  if (D.rank == 0 || !ok)
    printf("rank %d %s %-56s %d threads (expected %d)\n", D.rank, ok ? "ok  " : "FAIL", what, got,
           want);
}

static int chosen(int n) {
  hy_error err;
  if (hy_threads_choose(n, &err)) {
    printf("rank %d FAIL hy_threads_choose(%d): %s\n", D.rank, n, err.msg);
    failures++;
  }
  return hy_threads_get();
}

int main(int argc, char **argv) {
  int world = mpi_check_start(&argc, &argv);
  unsetenv("HYLA_THREADS");
  unsetenv("OMP_NUM_THREADS");
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  int usable = omp_get_num_procs();
  int share = usable == online ? usable / world : usable;
  expect_threads(chosen(0), share > 1 ? share : 1, "default: this rank's share of the cores");
  expect_threads(chosen(3), 3, "asked for 3");
  setenv("HYLA_THREADS", "5", 1);
  expect_threads(chosen(0), 5, "HYLA_THREADS=5");
  unsetenv("HYLA_THREADS");
  setenv("OMP_NUM_THREADS", "6,2", 1);
  expect_threads(chosen(0), 6, "OMP_NUM_THREADS=6,2");
  return mpi_check_finish();
}
