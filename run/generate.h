/* Sampling text from a model: temperature, top-k, a seed. Tokens go through the model one at a
 * time with each mixer's decoding state (KV caches for softmax layers), so each new token costs
 * one step, not a pass over the whole text. A model of a subword dataset reads and writes text
 * through its vocabulary (data/vocab.h); others through the byte tokenizer. */
#ifndef HYLA_GENERATE_H
#define HYLA_GENERATE_H

#include "data/vocab.h"
#include "layers/model.h"
#include "util/error.h"

#include <stdio.h>

typedef struct {
  int64_t tokens;     /* how many to generate: 1 or more */
  double temperature; /* finite, >= 0; 0: greedy */
  int64_t top_k;      /* >= 0; 0: all */
  uint64_t seed;
} hy_sample_options;

/* The most positions one generation decodes (the prompt's bytes and the tokens): the decoding
 * state (KV caches) and each token's cost grow with the length; a million positions is far past
 * the lengths hyla trains at, and keeps every position and size far from overflow. */
enum { HY_GENERATE_MAX_LEN = 1 << 20 };

/* 0 when hy_generate can take the options and the prompt; else -1 with a message naming the
 * option (as `hyla generate` spells it) and its limit. */
int hy_generate_check(const hy_sample_options *o, const char *prompt, hy_error *err);

/* The most positions hy_generate decodes: the prompt's bytes (a newline for none; with a
 * vocabulary its tokens are fewer) and the tokens. */
int64_t hy_generate_positions(const hy_sample_options *o, const char *prompt);

/* Writes each generated token's bytes to `out` as it comes (out may be NULL) and returns how many
 * tokens were generated: fewer than o->tokens when a stop was asked (util/stop.h), which ends it
 * after the token in progress. vocab (NULL or empty: bytes) has the model's vocabulary; the
 * prompt becomes its tokens greedily (hy_vocab_encode). -1 with err when the options fail
 * hy_generate_check or a byte of the prompt begins no token. An empty prompt is a newline. */
int64_t hy_generate(hy_model *m, const hy_vocab *vocab, const char *prompt,
                    const hy_sample_options *o, FILE *out, hy_error *err);

/* The token drawn from one row of logits [V] (f32 or f64) under the options and rng. */
int64_t hy_sample_token(const hy_tensor *logits, int64_t row, int64_t V, const hy_sample_options *o,
                        uint64_t *rng_counter);

#endif
