#include "tests/support.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

hy_tensor *t_randn(hy_dtype dtype, hy_shape shape, uint64_t seed) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_rng r = hy_rng_new(seed);
  hy_fill_normal(t, &r, 0.0, 1.0);
  return t;
}

hy_tensor *t_uniform(hy_dtype dtype, hy_shape shape, uint64_t seed, double lo, double hi) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_rng r = hy_rng_new(seed);
  hy_fill_uniform(t, &r, lo, hi);
  return t;
}

hy_tensor *t_cast(const hy_tensor *t, hy_dtype dtype) {
  hy_tensor *c = hy_empty(dtype, hy_shape_of(t));
  for (int64_t i = 0; i < hy_numel(t); i++) hy_set(c, i, hy_get(t, i));
  return c;
}

hy_tensor *t_param(hy_tensor *t) {
  t->requires_grad = true;
  return t;
}

double t_max_rel_err(const hy_tensor *a, const hy_tensor *ref) {
  double scale = 1e-300, err = 0;
  for (int64_t i = 0; i < hy_numel(ref); i++) scale = fmax(scale, fabs(hy_get(ref, i)));
  for (int64_t i = 0; i < hy_numel(ref); i++) {
    double d = fabs(hy_get(a, i) - hy_get(ref, i));
    if (isnan(d)) return INFINITY;
    err = fmax(err, d);
  }
  return err / scale;
}

double t_rel_norm_err(const hy_tensor *a, const hy_tensor *ref) {
  double num = 0, den = 1e-300;
  for (int64_t i = 0; i < hy_numel(ref); i++) {
    double d = hy_get(a, i) - hy_get(ref, i);
    num += d * d;
    den += hy_get(ref, i) * hy_get(ref, i);
  }
  return isnan(num) ? INFINITY : sqrt(num / den);
}

void t_expect_close(const hy_tensor *a, const hy_tensor *ref, double tol, const char *what) {
  cr_assert(a != NULL && ref != NULL, "%s: missing tensor", what);
  cr_assert(hy_same_shape(a, ref), "%s: shape %s, expected %s", what, hy_describe(a),
            hy_describe(ref));
  double err = t_max_rel_err(a, ref);
  cr_assert(err <= tol, "%s: max relative error %.3g > %.3g", what, err, tol);
}

char *t_capture_abort(void (*fn)(void), int *sig) {
  int fds[2];
  cr_assert(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    signal(SIGABRT, SIG_DFL);
    fn();
    _exit(0);
  }
  close(fds[1]);
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  ssize_t got;
  while ((got = read(fds[0], buf + len, cap - len - 1)) > 0) {
    len += (size_t)got;
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return buf;
}
