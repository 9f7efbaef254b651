/* MQAR, multi-query associative recall (Zoology; its zoology/data/multiquery_ar.py is followed
 * step by step). One example of T tokens over a vocabulary of V:
 *   - N keys, distinct, from [1, V/2); N values, distinct, from [V/2, V);
 *   - the context k_1 v_1 ... k_N v_N fills the first 2N positions;
 *   - the rest is (T - 2N) / 2 even slots; each key is placed once, in a slot drawn without
 *     replacement with probability proportional to g^(a - 1), g = 1..slots (power law: mostly near
 *     the start of the region);
 *   - the target at a query key's position is its value (the model must say v_i right after
 *     seeing k_i again); every other target is HY_MQAR_IGNORE;
 *   - every other position of the query region holds a random token from [0, V).
 * An example is a function of (seed, split, index) alone. */
#ifndef HYLA_MQAR_H
#define HYLA_MQAR_H

#include <stdint.h>

enum { HY_MQAR_IGNORE = -100 };

typedef struct {
  int64_t vocab, seq_len, pairs; /* V, T (even), N with 4 N <= T and N <= V / 2 - 1 */
  double power_a;                /* a, Zoology's default 0.01 */
} hy_mqar_config;

/* NULL when the configuration can make examples, else what is wrong. */
const char *hy_mqar_check(const hy_mqar_config *c);

/* inputs and targets: T tokens each. split: 0 train, 1 validation. */
void hy_mqar_example(const hy_mqar_config *c, uint64_t seed, int split, int64_t index,
                     int32_t *inputs, int32_t *targets);

#endif
