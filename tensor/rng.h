/* A counter-based random generator: the whole state is (seed, counter), so a checkpoint saves it
 * as two integers and a resumed run draws the same numbers. Each draw is splitmix64 of
 * seed + counter * golden gamma. */
#ifndef HYLA_RNG_H
#define HYLA_RNG_H

#include "tensor/tensor.h"

typedef struct {
  uint64_t seed;
  uint64_t counter;
} hy_rng;

hy_rng hy_rng_new(uint64_t seed);
uint64_t hy_rng_u64(hy_rng *r);
double hy_rng_uniform(hy_rng *r); /* in [0, 1) */
double hy_rng_normal(hy_rng *r);  /* standard normal (Box-Muller) */

/* Fill a tensor (any strides) element by element in row-major order. */
void hy_fill_normal(hy_tensor *t, hy_rng *r, double mean, double std);
void hy_fill_uniform(hy_tensor *t, hy_rng *r, double lo, double hi);
void hy_fill_int(hy_tensor *t, hy_rng *r, int64_t lo, int64_t hi); /* in [lo, hi) */

#endif
