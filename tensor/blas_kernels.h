/* OpenBLAS picks its kernels from the CPU model when it loads. Where it does not know the model
 * (new CPUs, virtual machines that hide it) it falls back to its oldest x86-64 kernels, several
 * times slower than the AVX2 or AVX-512 ones the CPU has. */
#ifndef HYLA_BLAS_KERNELS_H
#define HYLA_BLAS_KERNELS_H

/* The kernel set suited to this CPU's instructions when OpenBLAS fell back to a generic one and
 * OPENBLAS_CORETYPE is unset ("SkylakeX", "Haswell"); NULL when nothing is to be done. */
const char *hy_blas_better_kernels(void);

/* When hy_blas_better_kernels() names a set: sets OPENBLAS_CORETYPE to it and runs this program
 * again in place (OpenBLAS reads the variable only when it loads), saying so on stderr (rank 0
 * only under mpirun).
 * Returns only when nothing is to be done or the re-run could not start. Call first in main. */
void hy_blas_pick_kernels(char **argv);

#endif
