/* Included first by every CPU kernel file: `real` is float or double depending on which of the
 * two compilations this is, K(name) gives the kernel its _f32 or _f64 name, and <tgmath.h> makes
 * exp, log, sqrt... pick the precision of their argument. */
#ifndef HYLA_CPU_REAL_H
#define HYLA_CPU_REAL_H

#include "tensor/cpu/kernels.h"

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

/* Loops shorter than this stay on one thread: spawning costs more than it saves. */
#define PAR_MIN 32768

#endif
