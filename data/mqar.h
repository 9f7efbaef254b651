/* MQAR, multi-query associative recall (Zoology's zoology/data/multiquery_ar.py, step by step).
 * One example of T tokens over a vocabulary of V:
 *   - N keys, distinct, from [1, V/2); N values, distinct, from [V/2, V);
 *   - the context k_1 v_1 ... k_N v_N fills positions 0 .. 2N - 1;
 *   - the rest is (T - 2N) / 2 even slots (positions 2N + 2g, g = 0 ..); each key is placed once,
 *     in a slot drawn without replacement with probability proportional to a (g+1)^(a - 1)
 *     (power law: mostly near the start of the region);
 *   - the label sits at the query key's own position: inputs[p] = k_i and targets[p] = v_i, so a
 *     model predicting the next token must say v_i right after seeing k_i again (Zoology builds
 *     labels one longer and shifts them left by one: the same thing). Every other target is
 *     HY_MQAR_IGNORE, so exactly N targets are labelled;
 *   - every other position of the query region holds a random token from [0, V) (Zoology's
 *     random_non_queries), which may by chance equal a key: it is not labelled.
 * An example is a function of (seed, split, index) alone: any order of asking gives the same data.
 * Not Zoology's bits (numpy's generator is not reproduced), but its distribution. */
#ifndef HYLA_MQAR_H
#define HYLA_MQAR_H

#include <stdint.h>

enum { HY_MQAR_IGNORE = -100 };

typedef struct {
  int64_t vocab, seq_len, pairs; /* V, T (even), N with 4 N <= T and N <= V / 2 - 1; Zoology
                                    also asks V > T, which nothing here needs */
  double power_a;                /* a, Zoology's default 0.01 */
} hy_mqar_config;

/* NULL when the configuration can make examples, else what is wrong. */
const char *hy_mqar_check(const hy_mqar_config *c);

/* inputs and targets: T tokens each. split: 0 train, 1 validation. */
void hy_mqar_example(const hy_mqar_config *c, uint64_t seed, int split, int64_t index,
                     int32_t *inputs, int32_t *targets);

#endif
