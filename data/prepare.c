#include "data/prepare.h"
#include "data/dataset.h"
#include "data/documents.h"
#include "data/subword.h"
#include "util/stop.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

/* A text's tokens, where each document's begin, and how to store them. */
typedef struct {
  const hy_token *tokens;
  int64_t n;
  const int64_t *starts;
  int64_t n_docs;
  bool record; /* write the document starts (/train_docs, /val_docs) */
  int64_t vocab;
  const hy_vocab *table; /* NULL: bytes */
  const char *tokenizer;
} tokenized;

/* The stop asked (util/stop.h) while preparing h5_path: nothing is written. */
static int stopped(const char *while_, const char *h5_path, hy_error *err) {
  return hy_fail(err, "stopped by %s while %s: %s not written", hy_stop_name(), while_, h5_path);
}

static int check_fraction(double val_fraction, hy_error *err) {
  if (val_fraction > 0 && val_fraction <= 0.5) return 0;
  return hy_fail(err, "--val-fraction %g: expected a number in (0, 0.5]", val_fraction);
}

/* Where /val begins: the last floor(n * val_fraction) tokens of one document; with many, the
 * document start nearest that cut. -1 when no such cut leaves 2 tokens to each split. */
static int64_t val_begins(const tokenized *t, double val_fraction) {
  int64_t cut = t->n - (int64_t)((double)t->n * val_fraction), best = -1;
  if (t->n_docs <= 1) return cut >= 2 && t->n - cut >= 2 ? cut : -1;
  for (int64_t i = 1; i < t->n_docs; i++) {
    int64_t s = t->starts[i];
    if (s >= 2 && t->n - s >= 2 && (best < 0 || llabs(s - cut) < llabs(best - cut))) best = s;
  }
  return best;
}

/* The tokens split into /train and /val and written to h5_path. */
static int write_split(const tokenized *t, const char *source, const char *h5_path,
                       double val_fraction, bool replace, hy_error *err) {
  int64_t at = val_begins(t, val_fraction);
  if (at < 0 && t->n_docs > 1 && t->n >= 4)
    return hy_fail(err,
                   "%s: none of its %lld documents starts where /train and /val would each keep "
                   "2 tokens or more",
                   source, (long long)t->n_docs);
  if (at < 0)
    return hy_fail(err,
                   "%s: %lld %s are too few to split into /train and /val (at least 2 tokens "
                   "each)",
                   source, (long long)t->n, t->table ? "tokens" : "bytes of text");
  int64_t k = 0; /* the documents that start in /train */
  while (k < t->n_docs && t->starts[k] < at) k++;
  /* /val's starts from 0: the split cuts a text of one document at a token */
  int64_t n_val_docs = t->n_docs - k + (k < t->n_docs && t->starts[k] == at ? 0 : 1);
  int64_t *val_docs = malloc((size_t)(n_val_docs ? n_val_docs : 1) * sizeof *val_docs);
  if (!val_docs) return hy_fail(err, "%s: out of memory for the document starts", h5_path);
  val_docs[0] = 0;
  for (int64_t i = t->n_docs - 1, j = n_val_docs - 1; i >= k; i--, j--)
    val_docs[j] = t->starts[i] - at;
  bool r = t->record;
  hy_split_tokens train = {t->tokens, at, r ? t->starts : NULL, r ? k : 0},
                  val = {t->tokens + at, t->n - at, r ? val_docs : NULL, r ? n_val_docs : 0};
  int rc = hy_dataset_write_splits(h5_path, &train, &val, t->vocab, t->table, t->tokenizer, replace,
                                   err);
  free(val_docs);
  return rc;
}

/* The byte tokenizer: each byte one token. */
static int write_bytes(const unsigned char *bytes, size_t n, const int64_t *starts, int64_t n_docs,
                       bool record, const char *source, const char *h5_path, double val_fraction,
                       bool replace, hy_error *err) {
  hy_token *tokens = malloc((n ? n : 1) * sizeof *tokens);
  if (!tokens) return hy_fail(err, "%s: out of memory for %zu tokens", h5_path, n);
  /* in pieces of 16 Mi bytes, the stop asked between them; a write once begun finishes (the file
   * appears whole or not at all) */
  const size_t piece = (size_t)1 << 24;
  for (size_t at = 0; at < n && !hy_stop_asked(); at += piece)
    for (size_t i = at; i < n && i < at + piece; i++) tokens[i] = bytes[i];
  tokenized t = {tokens, (int64_t)n, starts, n_docs, record, 256, NULL, "bytes"};
  int rc = hy_stop_asked() ? stopped("tokenizing", h5_path, err)
                           : write_split(&t, source, h5_path, val_fraction, replace, err);
  free(tokens);
  return rc;
}

int hy_data_prepare_bytes(const unsigned char *bytes, size_t n, const char *source,
                          const char *h5_path, double val_fraction, bool replace, hy_error *err) {
  if (check_fraction(val_fraction, err)) return -1;
  return write_bytes(bytes, n, NULL, 0, false, source, h5_path, val_fraction, replace, err);
}

/* Each document tokenized on its own by the subword tokenizer, written with its vocabulary. */
static int write_subword(const hy_documents *d, bool record, const char *in, const char *h5_path,
                         const hy_prepare_options *o, hy_error *err) {
  hy_subword_text s;
  if (hy_subword_tokenize(o->tokenizer, d->text, d->n, d->starts, d->n_docs, &s, err))
    return hy_stop_asked() ? stopped("tokenizing", h5_path, err) : -1;
  tokenized t = {s.ids, s.n_ids, s.docs, s.n_docs, record, s.vocab.n, &s.vocab, s.kind};
  int rc = hy_stop_asked() ? stopped("tokenizing", h5_path, err)
                           : write_split(&t, in, h5_path, o->val_fraction, o->force, err);
  hy_subword_free(&s);
  return rc;
}

/* The output must not be the input under any name (a hard or symbolic link to it, the same path),
 * and an existing output is replaced only when asked. */
static int check_output(const char *in_path, const char *h5_path, bool force, hy_error *err) {
  struct stat in, out;
  if (stat(h5_path, &out) != 0) return 0;
  if (stat(in_path, &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
    return hy_fail(err, "%s is the input %s (the same file): name another output", h5_path,
                   in_path);
  if (!force) return hy_fail(err, "%s exists; pass --force to replace it", h5_path);
  return 0;
}

int hy_data_prepare(const char *in, const char *h5_path, const hy_prepare_options *o,
                    hy_error *err) {
  if (check_fraction(o->val_fraction, err) || check_output(in, h5_path, o->force, err)) return -1;
  struct stat st;
  bool record = (o->separator && o->separator_len) || (stat(in, &st) == 0 && S_ISDIR(st.st_mode));
  hy_documents d;
  if (hy_documents_read(in, o->separator, o->separator ? o->separator_len : 0, h5_path, &d, err))
    return hy_stop_asked() ? stopped("reading the text", h5_path, err) : -1;
  int rc = o->tokenizer ? write_subword(&d, record, in, h5_path, o, err)
                        : write_bytes(d.text, d.n, d.starts, d.n_docs, record, in, h5_path,
                                      o->val_fraction, o->force, err);
  hy_documents_free(&d);
  return rc;
}
