/* Numbers a user typed (command-line values): the whole text must be one number in the range the
 * caller can use. Nothing is clamped: text that overflows 64 bits (strtoll's and strtod's ERANGE)
 * or lies outside the range is refused with a message that quotes it and states the range. */
#ifndef HYLA_PARSE_NUMBER_H
#define HYLA_PARSE_NUMBER_H

#include "util/error.h"

#include <stdbool.h>
#include <stdint.h>

/* A whole number in [lo, hi] (decimal, an optional sign). On failure, err says e.g.
 * `"-1" is not a whole number >= 1` (hi = INT64_MAX) or `... from 0 to 1024`. */
int hy_parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out, hy_error *err);

/* A finite real number in [lo, hi], or in (lo, hi] with above_lo (strtod's syntax: 0.5, 1e-3).
 * NaN and infinities are refused. */
int hy_parse_real(const char *text, double lo, bool above_lo, double hi, double *out,
                  hy_error *err);

#endif
