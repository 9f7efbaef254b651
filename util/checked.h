/* Checked arithmetic for sizes computed from user input (recipes, command lines, files): each
 * gives the exact result in *out and returns true, or returns false when that result does not
 * fit (*out is then unspecified). Callers turn false into an error that names what the user gave.
 */
#ifndef HYLA_CHECKED_H
#define HYLA_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

static inline bool hy_checked_mul(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}

static inline bool hy_checked_add(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

/* x truncated toward zero, as C's cast does, where the cast is defined: x finite and in
 * [-2^63, 2^63). */
static inline bool hy_checked_trunc(double x, int64_t *out) {
  if (!(x >= -0x1p63 && x < 0x1p63)) return false;
  *out = (int64_t)x;
  return true;
}

#endif
