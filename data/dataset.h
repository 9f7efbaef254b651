/* HDF5 token datasets, readable by h5py: 1-d datasets /train and /val of uint8 or uint16 tokens,
 * and on the root group the attributes `tokenizer` (a string; "bytes" for the byte tokenizer) and
 * `vocab` (an integer > every token). A subword dataset also holds its vocabulary, each token's
 * bytes (the group /vocab, data/vocab.h). In memory every token is a uint16. */
#ifndef HYLA_DATASET_H
#define HYLA_DATASET_H

#include "data/vocab.h"
#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint16_t *train, *val;
  int64_t n_train, n_val;
  int64_t vocab;
  char tokenizer[32];
  hy_vocab table; /* each token's bytes; table.n = 0 when the file has none (bytes) */
} hy_dataset;

/* Reads and checks a dataset: both splits present, 1-d, uint8 or uint16, at least two tokens each
 * (one input-target pair), the attributes present, every token below vocab. Errors name the file
 * and the object ("data.h5: /train has dtype float32, expected uint8 or uint16"). */
int hy_dataset_open(const char *path, hy_dataset *ds, hy_error *err);
void hy_dataset_close(hy_dataset *ds);

/* Writes path whole, replacing it (hy_write_bytes_atomic: a crash never leaves a torn file, and
 * ranks preparing one dataset at once do not clobber each other). Tokens are stored as uint8 when
 * vocab <= 256. Checks what it writes as hy_dataset_open would: vocab in [2, 65536], every token
 * below vocab, at least two tokens per split. */
int hy_dataset_write(const char *path, const uint16_t *train, int64_t n_train, const uint16_t *val,
                     int64_t n_val, int64_t vocab, const char *tokenizer, hy_error *err);

/* The same with a vocabulary (table->n tokens, the file's `vocab`) stored as /vocab. */
int hy_dataset_write_vocab(const char *path, const uint16_t *train, int64_t n_train,
                           const uint16_t *val, int64_t n_val, const hy_vocab *table,
                           const char *tokenizer, hy_error *err);

/* The byte tokenizer: each byte one token (vocab 256, tokenizer "bytes"); the last
 * floor(n * val_fraction) bytes become /val, val_fraction in (0, 0.5] (hyla data's default 0.1).
 * An existing h5_path is replaced only when `replace` is set, else it is an error. A stop asked
 * (util/stop.h) before the write begins ends it with an error and nothing written; a write once
 * begun finishes, so the file appears whole or not at all. `source` names the text in errors. */
int hy_data_prepare_bytes(const unsigned char *bytes, size_t n, const char *source,
                          const char *h5_path, double val_fraction, bool replace, hy_error *err);
/* hyla data prepare: never writes over the text (the same file under any name); an existing output
 * is replaced only with force. A text whose name ends in .gz is decompressed (data/text.h). A
 * stop asked while the text is read (polled between pieces of it) ends it as in
 * hy_data_prepare_bytes. */
int hy_data_prepare_text(const char *txt_path, const char *h5_path, double val_fraction, bool force,
                         hy_error *err);
/* The same with a subword tokenizer (data/subword.h: a tokenizer.json of byte-level BPE, through
 * Python): the last floor(tokens * val_fraction) tokens become /val, and the vocabulary is
 * stored. A stop asked while the script runs ends it and writes nothing. */
int hy_data_prepare_subword(const char *txt_path, const char *h5_path, const char *tokenizer,
                            double val_fraction, bool force, hy_error *err);

#endif
