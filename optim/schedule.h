/* Learning-rate schedules: linear warmup from 0 to the peak over `warmup` steps, then cosine,
 * linear or constant down to min_lr by the last step, or WSD (warmup, stable at the peak, then a
 * linear decay over the last decay_fraction of the steps). Steps count from 1. */
#ifndef HYLA_SCHEDULE_H
#define HYLA_SCHEDULE_H

#include <stdint.h>

typedef enum { HY_COSINE, HY_LINEAR, HY_CONSTANT, HY_WSD } hy_schedule_kind;

typedef struct {
  hy_schedule_kind kind;
  double lr, min_lr;
  int64_t warmup, steps;
  double decay_fraction; /* WSD */
} hy_schedule;

double hy_schedule_lr(const hy_schedule *s, int64_t step);

#endif
