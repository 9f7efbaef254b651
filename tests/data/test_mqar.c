/* MQAR (Zoology's multi-query associative recall): the structure of every example, determinism,
 * and the power-law placement of the queries. */
#include "data/mqar.h"
#include "tests/support.h"

#include <stdlib.h>
#include <string.h>

TestSuite(mqar);

/* Every property an example must have (see data/mqar.h). */
static void check_example(const hy_mqar_config *c, const int32_t *in, const int32_t *tg) {
  int64_t V = c->vocab, T = c->seq_len, N = c->pairs, ctx = 2 * N;
  int *asked = calloc((size_t)N, sizeof *asked);
  for (int64_t i = 0; i < N; i++) {
    int32_t k = in[2 * i], v = in[2 * i + 1];
    cr_assert(k >= 1 && k < V / 2, "key %d outside [1, %lld)", k, (long long)(V / 2));
    cr_assert(v >= V / 2 && v < V, "value %d outside [%lld, %lld)", v, (long long)(V / 2),
              (long long)V);
    for (int64_t j = 0; j < i; j++) {
      cr_assert_neq(k, in[2 * j], "keys are distinct");
      cr_assert_neq(v, in[2 * j + 1], "values are distinct");
    }
    cr_assert_eq(tg[2 * i], HY_MQAR_IGNORE, "no label in the context");
    cr_assert_eq(tg[2 * i + 1], HY_MQAR_IGNORE, "no label in the context");
  }
  int64_t labelled = 0;
  for (int64_t t = ctx; t < T; t++) {
    cr_assert(in[t] >= 0 && in[t] < V, "token %d at %lld", in[t], (long long)t);
    if (tg[t] == HY_MQAR_IGNORE) continue;
    labelled++;
    cr_assert_eq(t % 2, 0, "queries sit on even slots");
    int64_t i = 0;
    while (i < N && in[2 * i] != in[t]) i++;
    cr_assert(i < N, "query %d at %lld is not a key of the context", in[t], (long long)t);
    cr_assert_eq(tg[t], in[2 * i + 1], "the label at the key's position is its value");
    asked[i]++;
  }
  cr_assert_eq(labelled, N, "N labels");
  for (int64_t i = 0; i < N; i++) cr_assert_eq(asked[i], 1, "each key is asked once");
  free(asked);
}

Test(mqar, every_example_is_well_formed) {
  hy_mqar_config configs[] = {
      {.vocab = 64, .seq_len = 64, .pairs = 8, .power_a = 0.01},
      {.vocab = 8192, .seq_len = 256, .pairs = 64, .power_a = 0.01}, /* every slot a query */
      {.vocab = 4, .seq_len = 4, .pairs = 1, .power_a = 0.01},       /* the smallest */
      {.vocab = 20, .seq_len = 100, .pairs = 9, .power_a = 1},       /* all keys, uniform */
  };
  for (int k = 0; k < 4; k++) {
    hy_mqar_config *c = &configs[k];
    cr_assert_null(hy_mqar_check(c), "%s", hy_mqar_check(c));
    int32_t *in = malloc((size_t)c->seq_len * sizeof *in);
    int32_t *tg = malloc((size_t)c->seq_len * sizeof *tg);
    for (int64_t e = 0; e < 200; e++) {
      hy_mqar_example(c, 7, (int)(e % 2), e, in, tg);
      check_example(c, in, tg);
    }
    free(in);
    free(tg);
  }
}

Test(mqar, same_seed_same_data_in_any_order) {
  hy_mqar_config c = {.vocab = 64, .seq_len = 64, .pairs = 8, .power_a = 0.01};
  int32_t a[64], b[64], ta[64], tb[64];
  hy_mqar_example(&c, 3, 0, 41, a, ta);
  hy_mqar_example(&c, 3, 0, 5, b, tb); /* another example in between */
  hy_mqar_example(&c, 3, 0, 41, b, tb);
  cr_assert_arr_eq(a, b, sizeof a);
  cr_assert_arr_eq(ta, tb, sizeof ta);
  hy_mqar_example(&c, 4, 0, 41, b, tb);
  cr_assert(memcmp(a, b, sizeof a) != 0, "another seed gives other data");
  hy_mqar_example(&c, 3, 1, 41, b, tb);
  cr_assert(memcmp(a, b, sizeof a) != 0, "the validation split is not the training split");
  hy_mqar_example(&c, 3, 0, 42, b, tb);
  cr_assert(memcmp(a, b, sizeof a) != 0, "the next example differs");
}

/* Over many examples: the mean query slot with a = 0.01 (the power law) against a = 1 (uniform),
 * and the share of the first and last quarters of the region. */
static void slot_stats(double a, double *mean, int64_t *first, int64_t *last) {
  hy_mqar_config c = {.vocab = 512, .seq_len = 256, .pairs = 8, .power_a = a};
  int32_t in[256], tg[256];
  int64_t slots = (256 - 16) / 2, sum = 0, n = 0;
  *first = *last = 0;
  for (int64_t e = 0; e < 1000; e++) {
    hy_mqar_example(&c, 1, 0, e, in, tg);
    for (int t = 16; t < 256; t++)
      if (tg[t] != HY_MQAR_IGNORE) {
        int64_t g = (t - 16) / 2;
        sum += g;
        n++;
        *first += g < slots / 4;
        *last += g >= 3 * slots / 4;
      }
  }
  *mean = (double)sum / (double)n;
}

Test(mqar, queries_follow_the_power_law) {
  double mean_pow, mean_uni;
  int64_t first, last, ufirst, ulast;
  slot_stats(0.01, &mean_pow, &first, &last);
  slot_stats(1.0, &mean_uni, &ufirst, &ulast);
  cr_assert(first > 2 * last, "first quarter %lld, last quarter %lld", (long long)first,
            (long long)last);
  cr_assert(mean_pow < 0.8 * mean_uni, "mean slot %g (a = 0.01) vs %g (uniform)", mean_pow,
            mean_uni);
  /* uniform: about 60 on average over 120 slots, quarters alike */
  cr_assert(mean_uni > 55 && mean_uni < 65, "%g", mean_uni);
  cr_assert(ufirst < 1.2 * ulast && ulast < 1.2 * ufirst, "%lld %lld", (long long)ufirst,
            (long long)ulast);
}

/* The query region's other positions are random tokens from the whole vocabulary. */
Test(mqar, the_rest_of_the_region_is_random) {
  hy_mqar_config c = {.vocab = 64, .seq_len = 64, .pairs = 4, .power_a = 0.01};
  int32_t in[64], tg[64];
  int seen[64] = {0};
  for (int64_t e = 0; e < 200; e++) {
    hy_mqar_example(&c, 9, 0, e, in, tg);
    for (int t = 8; t < 64; t++)
      if (tg[t] == HY_MQAR_IGNORE) seen[in[t]]++;
  }
  for (int v = 0; v < 64; v++) cr_assert(seen[v] > 0, "token %d never drawn", v);
}

Test(mqar, bad_configurations_are_named) {
  struct {
    hy_mqar_config c;
    const char *want;
  } cases[] = {
      {{64, 63, 8, 0.01}, "even"},          {{64, 64, 0, 0.01}, "at least one"},
      {{16, 64, 8, 0.01}, "vocab / 2 - 1"}, {{512, 64, 17, 0.01}, "4 * pairs"},
      {{64, 64, 8, 0}, "power_a"},          {{(int64_t)1 << 40, 64, 8, 0.01}, "int32"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *why = hy_mqar_check(&cases[i].c);
    cr_assert_not_null(why, "case %zu passed", i);
    cr_assert(strstr(why, cases[i].want), "'%s' lacks '%s'", why, cases[i].want);
  }
}
