#include "optim/schedule.h"

#include <math.h>

double hy_schedule_lr(const hy_schedule *s, int64_t step) {
  if (s->warmup > 0 && step <= s->warmup) return s->lr * (double)step / (double)s->warmup;
  double span = (double)(s->steps - s->warmup);
  double p = span > 0 ? (double)(step - s->warmup) / span : 1.0;
  p = p < 0 ? 0 : p > 1 ? 1 : p;
  switch (s->kind) {
  case HY_COSINE:
    return s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
  case HY_LINEAR: return s->lr + (s->min_lr - s->lr) * p;
  case HY_CONSTANT: return s->lr;
  case HY_WSD: {
    double decay_start = (double)s->steps * (1.0 - s->decay_fraction);
    if ((double)step <= decay_start) return s->lr;
    double q = ((double)step - decay_start) / ((double)s->steps - decay_start);
    return s->lr + (s->min_lr - s->lr) * (q > 1 ? 1 : q);
  }
  }
  return s->lr;
}
