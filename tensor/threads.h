/* One thread count for hyla's own loops (OpenMP) and for OpenBLAS, so the two never add up to
 * more threads than asked for. */
#ifndef HYLA_THREADS_H
#define HYLA_THREADS_H

/* n <= 0 picks the default: $HYLA_THREADS, else $OMP_NUM_THREADS, else the number of cores. */
void hy_threads_set(int n);
int hy_threads_get(void);

#endif
