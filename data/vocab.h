/* A subword vocabulary: each token id's bytes, as `hyla data prepare --tokenizer` stores it in a
 * dataset and training copies it into its checkpoints, so decoding needs neither the tokenizer
 * nor Python. In an HDF5 file it is the group /vocab (h5py reads it as it is):
 *   /vocab/bytes    uint8 [total]   every token's bytes, one token after another
 *   /vocab/offsets  uint64 [n + 1]  token i is bytes[offsets[i] : offsets[i + 1]]
 * A file without /vocab is byte-level: token i < 256 is the byte i. */
#ifndef HYLA_VOCAB_H
#define HYLA_VOCAB_H

#include "util/error.h"

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Token ids in memory, and the most tokens a vocabulary may have (Llama 3's and Qwen's 128k-152k
 * fit; a bound so that a damaged file's count cannot ask for gigabytes). */
typedef uint32_t hy_token;
enum { HY_VOCAB_MAX = 1 << 24 };

typedef struct {
  int64_t n;            /* tokens; 0: none (a byte-level file) */
  uint64_t *offsets;    /* n + 1, from 0, never decreasing */
  unsigned char *bytes; /* offsets[n] of them */
} hy_vocab;

/* Token id's bytes (*len of them); none for an id outside the vocabulary. */
const unsigned char *hy_vocab_token(const hy_vocab *v, int64_t id, size_t *len);
/* Every token's bytes and lengths are consistent: offsets from 0, never decreasing, ending at the
 * bytes' count; n in [1, HY_VOCAB_MAX]. -1 with err (naming `path`) otherwise. */
int hy_vocab_check(const hy_vocab *v, const char *path, hy_error *err);

/* /vocab of an open file into v: v->n = 0 when the file has none; -1 with err (naming `path`)
 * when it is there but damaged. */
int hy_vocab_read(hid_t file, const char *path, hy_vocab *v, hy_error *err);
/* /vocab into file, each dataset with Fletcher32 checksums when `checksums` is set (checkpoints);
 * -1 when HDF5 fails. */
int hy_vocab_write(hid_t file, const hy_vocab *v, bool checksums);
void hy_vocab_free(hy_vocab *v);
/* The same tokens with the same bytes (two empty vocabularies are equal). */
bool hy_vocab_equal(const hy_vocab *a, const hy_vocab *b);

/* The bytes the ids stand for, written to out (may be NULL: only counted): through v, or each id
 * as a byte when v has no tokens. The bytes' count. */
int64_t hy_vocab_decode(const hy_vocab *v, const hy_token *ids, int64_t n, FILE *out);

/* The text as tokens, each the longest token the text goes on with (greedy; an empty token is
 * never used): the tokenizer's own segmentation needs Python, but any segmentation decodes to
 * the text. out holds n ids at most; returns how many, or -1 with err naming the first byte that
 * no token starts with. */
int64_t hy_vocab_encode(const hy_vocab *v, const unsigned char *text, size_t n, int32_t *out,
                        hy_error *err);

#endif
