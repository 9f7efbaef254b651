#include "data/mqar.h"
#include "tensor/rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

const char *hy_mqar_check(const hy_mqar_config *c) {
  if (c->seq_len % 2) return "the sequence length must be even";
  if (c->vocab > INT32_MAX) return "vocab must fit int32 tokens";
  if (c->pairs < 1) return "at least one key-value pair is needed";
  if (c->pairs > c->vocab / 2 - 1) return "pairs must be at most vocab / 2 - 1";
  if (4 * c->pairs > c->seq_len) return "4 * pairs must be <= seq_len (a query slot per key)";
  if (!(c->power_a > 0)) return "power_a must be > 0";
  return NULL;
}

/* One stream per example, whatever order examples are asked for in. */
static hy_rng example_rng(uint64_t seed, int split, int64_t index) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)split << 62) ^ (uint64_t)index;
  hy_rng r = hy_rng_new(s);
  hy_rng_u64(&r); /* decorrelate nearby seeds */
  r.seed = hy_rng_u64(&r);
  r.counter = 0;
  return r;
}

/* n distinct values from [lo, hi), in draw order (rejection: n is small against the range). */
static void distinct(hy_rng *r, int64_t lo, int64_t hi, int64_t n, int32_t *out) {
  for (int64_t i = 0; i < n;) {
    int32_t v = (int32_t)(lo + (int64_t)(hy_rng_u64(r) % (uint64_t)(hi - lo)));
    bool seen = false;
    for (int64_t j = 0; j < i && !seen; j++) seen = out[j] == v;
    if (!seen) out[i++] = v;
  }
}

void hy_mqar_example(const hy_mqar_config *c, uint64_t seed, int split, int64_t index,
                     int32_t *inputs, int32_t *targets) {
  int64_t T = c->seq_len, N = c->pairs, V = c->vocab, ctx = 2 * N, slots = (T - ctx) / 2;
  hy_rng r = example_rng(seed, split, index);
  int32_t *keys = malloc((size_t)N * sizeof *keys), *values = malloc((size_t)N * sizeof *values);
  double *w = malloc((size_t)slots * sizeof *w);
  if (!keys || !values || !w) hy_die("mqar", "out of memory for T = %lld", (long long)T);
  distinct(&r, 1, V / 2, N, keys);
  distinct(&r, V / 2, V, N, values);
  for (int64_t t = 0; t < T; t++) {
    inputs[t] = 0;
    targets[t] = HY_MQAR_IGNORE;
  }
  for (int64_t i = 0; i < N; i++) {
    inputs[2 * i] = keys[i];
    inputs[2 * i + 1] = values[i];
  }
  /* Query slots: weights a g^(a-1), drawn one at a time without replacement (numpy's choice
   * with p and replace=False has the same distribution). Inputs still 0 are free: keys are >= 1. */
  double total = 0;
  for (int64_t g = 0; g < slots; g++)
    total += w[g] = c->power_a * pow((double)(g + 1), c->power_a - 1);
  for (int64_t i = 0; i < N; i++) {
    double u = hy_rng_uniform(&r) * total;
    int64_t g = 0;
    while (g < slots - 1 && (w[g] == 0 || (u -= w[g]) >= 0)) g++;
    while (w[g] == 0) g--; /* rounding at the end: the last slot still free */
    total -= w[g];
    w[g] = 0;
    int64_t pos = ctx + 2 * g;
    inputs[pos] = keys[i];
    targets[pos] = values[i];
  }
  for (int64_t t = ctx; t < T; t++)
    if (inputs[t] == 0) inputs[t] = (int32_t)(hy_rng_u64(&r) % (uint64_t)V);
  free(keys);
  free(values);
  free(w);
}
