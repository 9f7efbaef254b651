/* The logistic function for CPU kernel files (after tensor/cpu/real.h): both branches are
 * computed and one is selected, so loops over it vectorize; e^-|x| cannot overflow. */
#ifndef HYLA_CPU_SIGMOID_H
#define HYLA_CPU_SIGMOID_H

static inline real sigmoid(real x) {
  real e = real_exp(-fabs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

#endif
