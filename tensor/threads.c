#include "tensor/threads.h"
#include "tensor/tensor.h"
#include "util/parse_number.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The processes of this machine that share its cores: the ranks of mpirun here (hy_threads_share). */
static int sharers = 1;

void hy_threads_share(int processes) { sharers = processes > 1 ? processes : 1; }

/* The count $name asks for, its text up to `end` (or all of it for end = 0); *n = 0 when the
 * variable is unset, empty or 0. */
static int env_threads(const char *name, char end, int64_t *n, hy_error *err) {
  const char *s = getenv(name);
  *n = 0;
  if (!s || !*s) return 0;
  char *text = strndup(s, end ? strcspn(s, (char[]){end, 0}) : strlen(s));
  hy_error why;
  int rc = text ? hy_parse_int(text, 0, HY_THREADS_MAX, n, &why) : hy_fail(&why, "out of memory");
  free(text);
  return rc ? hy_fail(err, "the environment variable %s: %s", name, why.msg) : 0;
}

int hy_threads_choose(int n, hy_error *err) {
  int64_t chosen = n;
  if (chosen <= 0 && env_threads("HYLA_THREADS", 0, &chosen, err)) return -1;
  if (chosen <= 0 && env_threads("OMP_NUM_THREADS", ',', &chosen, err)) return -1;
  if (chosen <= 0) { /* the cores this process may run on, split among unbound ranks */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int usable = omp_get_num_procs(); /* fewer than online where mpirun bound the rank */
    if (usable == online) usable /= sharers;
    chosen = usable > 1 ? usable : 1;
  }
  hy_threads_set((int)chosen);
  return 0;
}

void hy_threads_set(int n) {
  if (n < 1 || n > HY_THREADS_MAX) hy_die("threads", "internal: %d threads", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(1); /* hyla splits products over its own threads (tensor/cpu/gemm.c) */
}

int hy_threads_get(void) { return omp_get_max_threads(); }
