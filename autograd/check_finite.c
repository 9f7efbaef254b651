#include "autograd/check_finite.h"
#include "autograd/tape.h"
#include "tensor/arena.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int enabled = -1; /* -1: the environment not read yet */
static bool inside;      /* the check's own ops (copies to the host) are not checked */

bool hy_check_finite_enabled(void) {
  if (enabled < 0) {
    const char *e = getenv("HYLA_CHECK_FINITE");
    enabled = e && *e && strcmp(e, "0");
  }
  return enabled;
}

void hy_check_finite_enable(bool on) { enabled = on; }

/* The index of the first element of t that is not finite, or -1. */
static int64_t first_non_finite(const hy_tensor *t) {
  if (t->dtype == HY_I32) return -1;
  hy_tensor *h = hy_to((hy_tensor *)t, HY_CPU);
  for (int64_t i = 0; i < hy_numel(h); i++)
    if (!isfinite(hy_get(h, i))) return i;
  return -1;
}

void hy_check_finite(const char *op, const char *what, const hy_tensor *t, int n_in,
                     hy_tensor *const *in) {
  if (!t || inside || !hy_check_finite_enabled()) return;
  inside = true;
  hy_no_grad_begin();
  hy_arena_mark mark = hy_arena_get_mark();
  int64_t bad = first_non_finite(t);
  if (bad >= 0) {
    double v = hy_get(hy_to((hy_tensor *)t, HY_CPU), bad);
    char inputs[512] = "";
    size_t used = 0;
    for (int i = 0; i < n_in && used < sizeof inputs; i++)
      if (in[i])
        used += (size_t)snprintf(inputs + used, sizeof inputs - used, "%s %d %s%s", i ? ";" : "", i,
                                 hy_describe(in[i]),
                                 first_non_finite(in[i]) >= 0 ? " NOT finite" : " finite");
    hy_die("check_finite", "%s: %s %s holds %g at element %lld; inputs:%s", op, what,
           hy_describe(t), v, (long long)bad, inputs);
  }
  hy_arena_rewind(mark);
  hy_no_grad_end();
  inside = false;
}
