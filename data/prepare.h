/* hyla data prepare: text into a token dataset (data/dataset.h), byte by byte or with a subword
 * tokenizer, split into /train and /val, with where each document starts when the text is many
 * documents (a folder of files, or a file cut at a separator: data/documents.h). */
#ifndef HYLA_PREPARE_H
#define HYLA_PREPARE_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  double val_fraction;   /* in (0, 0.5]: about this share of the tokens becomes /val */
  const char *tokenizer; /* a tokenizer.json of byte-level BPE (data/subword.h); NULL: bytes */
  const char *separator; /* cut the text into documents at each occurrence; NULL: none */
  size_t separator_len;
  bool force; /* replace an existing output */
} hy_prepare_options;

/* The text at `in` (a file, .gz decompressed, or a folder of them: hy_documents_read) into the
 * dataset h5_path. /val is the last floor(tokens * val_fraction) tokens of a text of one document;
 * of many, it begins at the document start nearest that cut (each split keeps at least 2 tokens),
 * so that no document spans both. A folder or a separator records each split's document starts
 * (/train_docs, /val_docs, from 0 in each); a file without a separator records none (one
 * document). With a tokenizer each document is tokenized on its own: no token straddles two.
 * Never writes over its input (the same file under any name); an existing output is replaced only
 * with force. A stop asked (util/stop.h) while the text is read or tokenized ends it with an error
 * and nothing written; a write once begun finishes, so the file appears whole or not at all. */
int hy_data_prepare(const char *in, const char *h5_path, const hy_prepare_options *o,
                    hy_error *err);

/* Bytes already in memory, one document, each byte one token (vocab 256, tokenizer "bytes"), as
 * hy_data_prepare would write them; an existing h5_path is replaced only when `replace` is set.
 * `source` names the text in errors. The shipped corpus is prepared so (data/builtin.h). */
int hy_data_prepare_bytes(const unsigned char *bytes, size_t n, const char *source,
                          const char *h5_path, double val_fraction, bool replace, hy_error *err);

#endif
