/* The monotonic clock in seconds, for timing: steps, profiles, collectives, benchmarks. */
#ifndef HYLA_CLOCK_H
#define HYLA_CLOCK_H

#include <time.h>

static inline double hy_clock_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
