#include "run/generate.h"
#include "autograd/tape.h"
#include "tensor/ops.h"
#include "tensor/rng.h"
#include "util/stop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int by_value_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

int64_t hy_sample_token(const hy_tensor *logits, int64_t row, int64_t V, const hy_sample_options *o,
                        uint64_t *rng_counter) {
  double *p = calloc((size_t)V, sizeof *p); /* calloc checks the product */
  if (!p) hy_die("generate", "out of memory for %lld logits", (long long)V);
  for (int64_t v = 0; v < V; v++) p[v] = hy_get(logits, row * V + v);
  int64_t best = 0;
  for (int64_t v = 1; v < V; v++) best = p[v] > p[best] ? v : best;
  if (o->temperature <= 0) {
    free(p);
    return best;
  }
  /* Keep the top k logits: everything below the k-th largest is dropped. */
  double cut = -INFINITY;
  if (o->top_k > 0 && o->top_k < V) {
    double *sorted = calloc((size_t)V, sizeof *sorted);
    if (!sorted) hy_die("generate", "out of memory for %lld logits", (long long)V);
    memcpy(sorted, p, (size_t)V * sizeof *sorted);
    qsort(sorted, (size_t)V, sizeof *sorted, by_value_desc);
    cut = sorted[o->top_k - 1];
    free(sorted);
  }
  double max = p[best], sum = 0;
  for (int64_t v = 0; v < V; v++) {
    p[v] = p[v] >= cut ? exp((p[v] - max) / o->temperature) : 0.0;
    sum += p[v];
  }
  hy_rng rng = {o->seed, *rng_counter};
  double u = hy_rng_uniform(&rng) * sum;
  *rng_counter = rng.counter;
  int64_t pick = best;
  for (int64_t v = 0; v < V; v++) {
    if (p[v] == 0) continue;
    pick = v;
    if ((u -= p[v]) < 0) break;
  }
  free(p);
  return pick;
}

/* The prompt hy_generate decodes: an empty one is a newline. */
static const char *prompt_or_newline(const char *prompt) { return *prompt ? prompt : "\n"; }

int64_t hy_generate_positions(const hy_sample_options *o, const char *prompt) {
  return (int64_t)strlen(prompt_or_newline(prompt)) + o->tokens;
}

int hy_generate_check(const hy_sample_options *o, const char *prompt, hy_error *err) {
  size_t prompt_len = strlen(prompt_or_newline(prompt));
  if (o->tokens < 1)
    return hy_fail(err, "--tokens %lld: expected a whole number >= 1", (long long)o->tokens);
  if (prompt_len > HY_GENERATE_MAX_LEN || o->tokens > HY_GENERATE_MAX_LEN - (int64_t)prompt_len)
    return hy_fail(err,
                   "--tokens %lld with a prompt of %zu byte%s: the prompt and the tokens "
                   "together may be at most %d positions",
                   (long long)o->tokens, prompt_len, prompt_len == 1 ? "" : "s",
                   HY_GENERATE_MAX_LEN);
  if (!(isfinite(o->temperature) && o->temperature >= 0))
    return hy_fail(err, "--temperature %g: expected a finite number >= 0", o->temperature);
  if (o->top_k < 0)
    return hy_fail(err, "--top-k %lld: expected a whole number >= 0", (long long)o->top_k);
  return 0;
}

static const hy_vocab BYTES = {0}; /* no vocabulary: each token a byte */

/* The prompt's tokens: through the vocabulary when there is one, else its bytes. */
static int32_t *prompt_tokens(const hy_vocab *vocab, const char *prompt, int64_t *n,
                              hy_error *err) {
  size_t len = strlen(prompt);
  int32_t *t = malloc(len * sizeof *t); /* a prompt is not empty */
  if (!t) {
    hy_fail(err, "out of memory for a prompt of %zu bytes", len);
    return NULL;
  }
  if (vocab && vocab->n) {
    hy_error why;
    if ((*n = hy_vocab_encode(vocab, (const unsigned char *)prompt, len, t, &why)) < 0) {
      hy_fail(err, "--prompt: %s", why.msg);
      free(t);
      return NULL;
    }
    return t;
  }
  for (size_t i = 0; i < len; i++) t[i] = (unsigned char)prompt[i];
  *n = (int64_t)len;
  return t;
}

int64_t hy_generate(hy_model *m, const hy_vocab *vocab, const char *prompt,
                    const hy_sample_options *o, FILE *out, hy_error *err) {
  if (hy_generate_check(o, prompt, err)) return -1;
  int64_t len;
  int32_t *given = prompt_tokens(vocab, prompt_or_newline(prompt), &len, err);
  if (!given) return -1;
  int64_t V = m->cfg.vocab;
  uint64_t counter = 0;
  hy_no_grad_begin();
  hy_decoder *d = hy_decoder_new(m, 1, len + o->tokens);
  hy_tensor *logits = NULL;
  for (int64_t i = 0; i < len && !hy_stop_asked(); i++) { /* the prompt fills the decoder's state */
    hy_step_reset();
    logits = hy_decoder_step(m, d, hy_full(HY_I32, HY_SHAPE(1, 1), given[i]));
  }
  free(given);
  int64_t k = 0;
  for (; k < o->tokens && !hy_stop_asked(); k++) {
    int64_t t = hy_sample_token(logits, 0, V, o, &counter);
    if (out) { /* t below the vocabulary's size; as a byte, its low 8 bits */
      hy_token id = (hy_token)t;
      hy_vocab_decode(vocab ? vocab : &BYTES, &id, 1, out);
      fflush(out);
    }
    hy_step_reset();
    logits = hy_decoder_step(m, d, hy_full(HY_I32, HY_SHAPE(1, 1), (double)t));
  }
  hy_decoder_free(m, d);
  hy_no_grad_end();
  hy_step_reset();
  return k;
}
