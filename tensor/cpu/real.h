/* Included first by every CPU kernel file: `real` is float or double depending on which of the
 * two compilations this is, K(name) gives the kernel its _f32 or _f64 name, and <tgmath.h> makes
 * exp, log, sqrt... pick the precision of their argument. */
#ifndef HYLA_CPU_REAL_H
#define HYLA_CPU_REAL_H

#include "tensor/cpu/kernels.h"

#include <stdlib.h>
#include <tgmath.h>

#if defined(HY_REAL_F64)
typedef double real;
#define K(name) name##_f64
#elif defined(HY_REAL_F32)
typedef float real;
#define K(name) name##_f32
#else
#error "compile CPU kernels with HY_REAL_F32 or HY_REAL_F64"
#endif

/* exp for the hot loops. In f64 (the precision of references and gradient checks) it is libm's.
 * In f32 it is a branch-free Cody-Waite reduction x = n ln2 + r and a degree-6 polynomial for
 * e^r, within 3 ulp of expf over its whole range, which the compiler can vectorize where it
 * cannot vectorize calls to expf. Below -87.3 (e^x under FLT_MIN, and -inf) it is exactly 0,
 * above 88.72 it is inf, and NaN stays NaN. */
#if defined(HY_REAL_F64)
static inline double real_exp(double x) { return exp(x); }
#else
static inline float real_exp(float x) {
  /* Plain comparisons and the 1.5 * 2^23 rounding trick rather than fminf, fmaxf and nearbyintf,
   * which gcc leaves as calls. */
  float xc = x < -87.3f ? -87.3f : x;
  xc = xc > 88.72f ? 88.72f : xc;
  xc = x != x ? 0.0f : xc; /* NaN: compute on 0 (converting NaN to int is undefined), return x */
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = fmaf(n, -0.693145751953125f, xc); /* ln 2 split in two for an exact product */
  r = fmaf(n, -1.42860682030941723212e-6f, r);
  float p = 1.0f / 720.0f;
  p = fmaf(p, r, 1.0f / 120.0f);
  p = fmaf(p, r, 1.0f / 24.0f);
  p = fmaf(p, r, 1.0f / 6.0f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  /* 2^n as 2^(n/2) 2^(n - n/2): each half stays a normal float for n in [-126, 128]. */
  int32_t n1 = (int32_t)n >> 1, n2 = (int32_t)n - n1;
  union {
    int32_t i;
    float f;
  } s1 = {.i = (n1 + 127) << 23}, s2 = {.i = (n2 + 127) << 23};
  float y = x < -87.3f ? 0.0f : p * s1.f * s2.f;
  y = x > 88.72f ? INFINITY : y;
  return x != x ? x : y;
}
#endif

/* Loops shorter than this stay on one thread: spawning costs more than it saves. */
#define PAR_MIN 32768

/* n values of scratch (at least one, so that n = 0 is no failure); the op stops on no memory. */
static inline real *real_alloc(const char *op, size_t n) {
  real *p = malloc(sizeof(real) * (n ? n : 1));
  if (!p) hy_die(op, "out of memory");
  return p;
}

#endif
