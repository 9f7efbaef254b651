#include "util/parse_number.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How the text is quoted in a message: whole up to 40 bytes, else its start and "...". */
#define QUOTED   "\"%.40s%s\""
#define QUOTE(s) (s), strlen(s) > 40 ? "..." : ""

/* strtoll and strtod skip leading white space and stop where the number ends: only text that is
 * the number and nothing else is one. */
static bool starts_like_a_number(const char *text) {
  return *text && !isspace((unsigned char)*text);
}

int hy_parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out, hy_error *err) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  bool number = starts_like_a_number(text) && end != text && !*end;
  bool overflow = number && errno == ERANGE;
  if (number && !overflow && v >= lo && v <= hi) {
    *out = v;
    return 0;
  }
  /* Text past 64 bits is shown the whole range, so that "99999999999999999999" is not told that
   * it is less than the lower bound. */
  if (hi == INT64_MAX && !overflow)
    return hy_fail(err, QUOTED " is not a whole number >= %lld", QUOTE(text), (long long)lo);
  return hy_fail(err, QUOTED " is not a whole number from %lld to %lld", QUOTE(text), (long long)lo,
                 (long long)hi);
}

int hy_parse_real(const char *text, double lo, bool above_lo, double hi, double *out,
                  hy_error *err) {
  char *end;
  double v = strtod(text, &end);
  /* An overflow is infinite, so refused; an underflow (ERANGE too) rounds to the nearest double,
   * as any decimal does. */
  bool number = starts_like_a_number(text) && end != text && !*end && isfinite(v);
  if (number && (above_lo ? v > lo : v >= lo) && v <= hi) {
    *out = v;
    return 0;
  }
  const char *op = above_lo ? ">" : ">=";
  if (hi >= DBL_MAX)
    return hy_fail(err, QUOTED " is not a finite number %s %g", QUOTE(text), op, lo);
  return hy_fail(err, QUOTED " is not a number %s %g and <= %g", QUOTE(text), op, lo, hi);
}
