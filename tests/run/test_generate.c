/* Generation's limits: the prompt and the tokens together are at most HY_GENERATE_MAX_LEN
 * positions (no length that overflows the decoder's position or its caches), and options out of
 * range are refused with the option named, before anything is decoded. */
#include "run/generate.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const hy_sample_options defaults = {200, 0.8, 40, 1};

static void refused(const hy_sample_options *o, const char *prompt, const char *message) {
  hy_error err;
  cr_assert_neq(hy_generate_check(o, prompt, &err), 0);
  cr_assert(strstr(err.msg, message), "%s", err.msg);
}

Test(generate, the_prompt_and_the_tokens_share_the_length_limit) {
  hy_error err;
  hy_sample_options o = defaults;
  o.tokens = HY_GENERATE_MAX_LEN - 2;
  cr_assert_eq(hy_generate_check(&o, "ab", &err), 0, "%s", err.msg);
  o.tokens = HY_GENERATE_MAX_LEN - 1; /* an empty prompt is a newline: one position */
  cr_assert_eq(hy_generate_check(&o, "", &err), 0, "%s", err.msg);
  refused(&o, "ab",
          "--tokens 1048575 with a prompt of 2 bytes: the prompt and the tokens together may be "
          "at most 1048576 positions");
  o.tokens = INT64_MAX; /* prompt + tokens would overflow */
  refused(&o, "a", "--tokens 9223372036854775807 with a prompt of 1 byte: ");
}

Test(generate, a_prompt_past_the_limit_is_refused) {
  size_t n = HY_GENERATE_MAX_LEN + 1;
  char *prompt = malloc(n + 1);
  memset(prompt, 'a', n);
  prompt[n] = 0;
  hy_sample_options o = defaults;
  o.tokens = 1;
  refused(&o, prompt, "with a prompt of 1048577 bytes");
  free(prompt);
}

Test(generate, options_out_of_range_are_named) {
  hy_sample_options o = defaults;
  o.tokens = 0;
  refused(&o, "", "--tokens 0: expected a whole number >= 1");
  o = defaults;
  o.temperature = NAN;
  refused(&o, "", "--temperature nan: expected a finite number >= 0");
  o.temperature = -1;
  refused(&o, "", "--temperature -1: expected a finite number >= 0");
  o = defaults;
  o.top_k = -3;
  refused(&o, "", "--top-k -3: expected a whole number >= 0");
}

/* A top-k past the vocabulary samples among all of it (no index past the logits). */
Test(generate, decodes_with_any_top_k) {
  hy_model_config cfg = hy_model_config_default();
  cfg.n_layers = 1;
  hy_model *m = hy_model_new(&cfg, 1);
  int64_t ks[] = {0, 1, 255, 256, INT64_MAX};
  for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
    hy_sample_options o = {5, 1.0, ks[i], 3};
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    hy_error err;
    cr_assert_eq(hy_generate(m, NULL, "hi", &o, out, &err), 5, "%s", err.msg);
    fclose(out);
    cr_assert_eq(size, 5, "top-k %lld: %zu bytes", (long long)ks[i], size);
    free(text);
  }
  hy_sample_options bad = {HY_GENERATE_MAX_LEN, 1.0, 0, 3};
  hy_error err;
  cr_assert_eq(hy_generate(m, NULL, "hi", &bad, NULL, &err), -1);
  cr_assert(strstr(err.msg, "may be at most 1048576 positions"), "%s", err.msg);
  hy_model_free(m);
}
