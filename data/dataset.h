/* HDF5 token datasets, readable by h5py: 1-d datasets /train and /val of uint8, uint16 or uint32
 * tokens (the narrowest the vocabulary fits),
 * and on the root group the attributes `tokenizer` (a string; "bytes" for the byte tokenizer) and
 * `vocab` (an integer > every token). A subword dataset also holds its vocabulary, each token's
 * bytes (the group /vocab, data/vocab.h). A dataset of many documents records where each starts:
 * /train_docs and /val_docs, 1-d int64, the index of each document's first token in its split,
 * increasing from 0 (without them a split is one document). In memory every token is a hy_token
 * (uint32). */
#ifndef HYLA_DATASET_H
#define HYLA_DATASET_H

#include "data/vocab.h"
#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  hy_token *train, *val;
  int64_t n_train, n_val;
  /* where each document of a split starts (/train_docs, /val_docs): NULL and 0 when the file
   * records none, and the split is one document */
  int64_t *train_docs, *val_docs;
  int64_t n_train_docs, n_val_docs;
  int64_t vocab;
  char tokenizer[32];
  hy_vocab table; /* each token's bytes; table.n = 0 when the file has none (bytes) */
} hy_dataset;

/* Reads and checks a dataset: both splits present, 1-d, uint8, uint16 or uint32, at least two
 * tokens each
 * (one input-target pair), the attributes present, every token below vocab; document starts, where
 * present, 1-d integers, the first 0, each above the one before and below the split's length.
 * Errors name the file and the object ("data.h5: /train has dtype float32, expected uint8, uint16
 * or uint32"). */
int hy_dataset_open(const char *path, hy_dataset *ds, hy_error *err);
void hy_dataset_close(hy_dataset *ds);

/* A split to write: its tokens, and where its documents start (docs NULL: no /..._docs). */
typedef struct {
  const hy_token *tokens;
  int64_t n;
  const int64_t *docs;
  int64_t n_docs;
} hy_split_tokens;

/* Writes path whole (hy_write_bytes_atomic: a crash never leaves a torn file, and ranks preparing
 * one dataset at once do not clobber each other), replacing it only when `replace` is set. Tokens
 * are stored as uint8 when vocab <= 256, uint16 up to 65536, else uint32; table (NULL: none) is the
 * vocabulary of `vocab` tokens, stored as /vocab. Checks what it writes as hy_dataset_open would:
 * vocab in [2, HY_VOCAB_MAX], every
 * token below vocab, at least two tokens per split, document starts as it reads them. */
int hy_dataset_write_splits(const char *path, const hy_split_tokens *train,
                            const hy_split_tokens *val, int64_t vocab, const hy_vocab *table,
                            const char *tokenizer, bool replace, hy_error *err);

/* Its common forms: each split one document, replacing path; with a vocabulary (table->n tokens,
 * the file's `vocab`) stored as /vocab. */
int hy_dataset_write(const char *path, const hy_token *train, int64_t n_train, const hy_token *val,
                     int64_t n_val, int64_t vocab, const char *tokenizer, hy_error *err);
int hy_dataset_write_vocab(const char *path, const hy_token *train, int64_t n_train,
                           const hy_token *val, int64_t n_val, const hy_vocab *table,
                           const char *tokenizer, hy_error *err);

#endif
