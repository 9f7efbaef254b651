/* One pool of threads: hyla's OpenMP loops use them, and matrix products are split over them with
 * OpenBLAS itself held to one thread, so two pools never spin against each other. */
#ifndef HYLA_THREADS_H
#define HYLA_THREADS_H

/* n <= 0 picks the default: $HYLA_THREADS, else $OMP_NUM_THREADS, else the number of cores. */
void hy_threads_set(int n);
int hy_threads_get(void);

#endif
