/* Subword tokenization for `hyla data prepare --tokenizer FILE`: hyla runs
 * scripts/tokenize-text.py of its source tree (Hugging Face's `tokenizers` package) under python3,
 * or under $HYLA_PYTHON when that is set, hands it the documents through a pipe and reads back
 * the vocabulary and each document's ids (the streams the script's header describes). Only preparing data needs Python:
 * training, evaluation and sampling decode with the vocabulary stored in the dataset. */
#ifndef HYLA_SUBWORD_H
#define HYLA_SUBWORD_H

#include "data/vocab.h"
#include "util/error.h"

#include <stddef.h>
#include <stdint.h>

enum { HY_TOKENIZER_NAME = 32 };

typedef struct {
  hy_vocab vocab;
  char kind[HY_TOKENIZER_NAME]; /* the tokenizer's kind, e.g. "byte-level-bpe" */
  hy_token *ids;
  int64_t n_ids;
  int64_t *docs; /* where each document's ids begin */
  int64_t n_docs;
} hy_subword_text;

/* The ids of a text of n_docs documents (document i begins at byte starts[i]: increasing from 0,
 * each below n), each document tokenized on its own, under the tokenizer file, checked: every id
 * below the vocabulary's size (at most HY_VOCAB_MAX), and each document's ids' bytes, one after another,
 * are its text. A stop asked (util/stop.h) ends the script (SIGTERM) and returns -1 with err.
 * Errors name the tokenizer file; the script's own messages go to standard error. */
int hy_subword_tokenize(const char *tokenizer, const unsigned char *text, size_t n,
                        const int64_t *starts, int64_t n_docs, hy_subword_text *out, hy_error *err);
void hy_subword_free(hy_subword_text *t);

/* The interpreter and the script hy_subword_tokenize runs. */
const char *hy_subword_python(void);
void hy_subword_script(char *out, size_t n);

#endif
