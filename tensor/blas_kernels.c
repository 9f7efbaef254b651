#include "tensor/blas_kernels.h"

#include <cblas.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *hy_blas_better_kernels(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (getenv("OPENBLAS_CORETYPE")) return NULL; /* the user's choice stands */
  const char *name = openblas_get_corename();
  static const char *const generic[] = {"Prescott",   "Core2", "Nehalem", "Penryn",
                                        "Dunnington", "Atom",  "Katmai"};
  bool fell_back = false;
  for (size_t i = 0; i < sizeof generic / sizeof *generic; i++)
    fell_back |= name && !strcmp(name, generic[i]);
  if (!fell_back) return NULL;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return NULL;
}

void hy_blas_pick_kernels(char **argv) {
  const char *better = hy_blas_better_kernels();
  if (!better) return;
  if (setenv("OPENBLAS_CORETYPE", better, 1)) return;
  const char *rank = getenv("OMPI_COMM_WORLD_RANK"); /* under mpirun: rank 0 speaks */
  if (!rank || !strcmp(rank, "0"))
    fprintf(stderr,
            "hyla: OpenBLAS chose its generic %s kernels for this CPU; using %s "
            "(set OPENBLAS_CORETYPE to choose)\n",
            openblas_get_corename(), better);
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE"); /* the re-run failed: go on with what OpenBLAS chose */
}
