/* One pool of threads: hyla's OpenMP loops use them, and matrix products are split over them with
 * OpenBLAS itself held to one thread, so two pools never spin against each other. */
#ifndef HYLA_THREADS_H
#define HYLA_THREADS_H

#include "util/error.h"

/* The most threads hyla runs (train.threads, --threads, HYLA_THREADS): far past any machine's
 * cores, and far from the counts at which libgomp runs out of stack (about 100,000). */
enum { HY_THREADS_MAX = 4096 };

/* n >= 1 threads, or for n <= 0 the default: $HYLA_THREADS, else the first number of
 * $OMP_NUM_THREADS (OpenMP's list "8,4" nests), else the cores this process may run on (where
 * mpirun bound it to some), or the machine's cores split evenly among the processes that share
 * them (hy_threads_share), at least 1; a variable that is empty or 0 counts as unset. 0, or -1 with err naming the variable when it holds anything but a
 * whole number from 0 to HY_THREADS_MAX (nothing is changed then). */
int hy_threads_choose(int n, hy_error *err);
/* `processes` processes of this machine share its cores (mpirun's ranks on it: hy_dist_start). Each
 * would otherwise start a thread per core, and OpenMP threads that spin while they wait take the
 * cores from the other processes' threads. */
void hy_threads_share(int processes);
/* Exactly n threads, 1 <= n <= HY_THREADS_MAX. */
void hy_threads_set(int n);
int hy_threads_get(void);

#endif
