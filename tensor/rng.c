#include "tensor/rng.h"

#include <math.h>

hy_rng hy_rng_new(uint64_t seed) { return (hy_rng){seed, 0}; }

uint64_t hy_rng_u64(hy_rng *r) {
  uint64_t z = r->seed + (++r->counter) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double hy_rng_uniform(hy_rng *r) { return (double)(hy_rng_u64(r) >> 11) * 0x1.0p-53; }

double hy_rng_normal(hy_rng *r) {
  double u1 = 1.0 - hy_rng_uniform(r); /* in (0, 1] so the log is finite */
  double u2 = hy_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586477 * u2);
}

void hy_fill_normal(hy_tensor *t, hy_rng *r, double mean, double std) {
  for (int64_t i = 0; i < hy_numel(t); i++) hy_set(t, i, mean + std * hy_rng_normal(r));
}

void hy_fill_uniform(hy_tensor *t, hy_rng *r, double lo, double hi) {
  for (int64_t i = 0; i < hy_numel(t); i++) hy_set(t, i, lo + (hi - lo) * hy_rng_uniform(r));
}

void hy_fill_int(hy_tensor *t, hy_rng *r, int64_t lo, int64_t hi) {
  if (hi <= lo) hy_die("fill_int", "empty range [%lld, %lld)", (long long)lo, (long long)hi);
  uint64_t span = (uint64_t)(hi - lo);
  for (int64_t i = 0; i < hy_numel(t); i++)
    hy_set(t, i, (double)(lo + (int64_t)(hy_rng_u64(r) % span)));
}
