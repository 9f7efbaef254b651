#include "data/dataset.h"
#include "data/subword.h"
#include "data/text.h"
#include "util/fs.h"
#include "util/h5.h"
#include "util/stop.h"

#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- reading ---- */

/* The name h5py would give a dataset's type ("uint8", "float32", "string"), for messages. */
static const char *type_name(hid_t type, char *buf, size_t n) {
  size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
  case H5T_INTEGER:
    snprintf(buf, n, "%s%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
    return buf;
  case H5T_FLOAT: snprintf(buf, n, "float%zu", bits); return buf;
  case H5T_STRING: return "string";
  case H5T_COMPOUND: return "compound";
  case H5T_ENUM: return "enum";
  case H5T_ARRAY: return "array";
  case H5T_BITFIELD: return "bitfield";
  case H5T_OPAQUE: return "opaque";
  case H5T_REFERENCE: return "reference";
  case H5T_VLEN: return "vlen";
  default: return "unknown";
  }
}

static int check_shape(hid_t set, const char *path, const char *name, hsize_t *n, hy_error *err) {
  hid_t type = H5Dget_type(set), space = H5Dget_space(set);
  int rc = 0, ndim = H5Sget_simple_extent_ndims(space);
  char buf[32];
  if (type < 0 || space < 0) {
    rc = hy_fail(err, "%s: cannot read the type and shape of %s", path, name);
  } else if (H5Tget_class(type) != H5T_INTEGER || H5Tget_sign(type) != H5T_SGN_NONE ||
             H5Tget_size(type) > 2) {
    rc = hy_fail(err, "%s: %s has dtype %s, expected uint8 or uint16", path, name,
                 type_name(type, buf, sizeof buf));
  } else if (ndim != 1) {
    rc = hy_fail(err, "%s: %s has %d dimensions, expected 1", path, name, ndim);
  } else {
    H5Sget_simple_extent_dims(space, n, NULL);
    if (*n < 2)
      rc = hy_fail(err, "%s: %s has %llu tokens, expected at least 2 (one input and its target)",
                   path, name, (unsigned long long)*n);
  }
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  return rc;
}

/* The tokens the header declares must be in the file: a damaged header must not make hyla allocate
 * for (or read back as fill values) tokens that were never written. Compressed tokens may take
 * fewer bytes than they are, but not none. */
static int check_stored(hid_t file, hid_t set, const char *path, const char *name, hsize_t n,
                        hy_error *err) {
  hid_t type = H5Dget_type(set), dcpl = H5Dget_create_plist(set);
  int filters = dcpl < 0 ? -1 : H5Pget_nfilters(dcpl);
  size_t size = type < 0 ? 0 : H5Tget_size(type);
  hsize_t stored = H5Dget_storage_size(set), file_size = 0;
  if (type >= 0) H5Tclose(type);
  if (dcpl >= 0) H5Pclose(dcpl);
  bool damaged = filters < 0 || size == 0 || H5Fget_filesize(file, &file_size) < 0 ||
                 n > (hsize_t)PTRDIFF_MAX / sizeof(uint16_t) || stored == 0 || stored > file_size ||
                 (filters == 0 && stored / size < n);
  if (!damaged) return hy_h5_check_stored(set, path, name, err);
  return hy_fail(err,
                 "%s: %s declares %llu tokens but the file holds %llu bytes of them (truncated or "
                 "damaged file?)",
                 path, name, (unsigned long long)n, (unsigned long long)stored);
}

static int read_split(hid_t file, const char *path, const char *name, uint16_t **out, int64_t *n,
                      hy_error *err) {
  htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
  hid_t set = exists > 0 ? H5Dopen2(file, name, H5P_DEFAULT) : -1;
  if (set < 0 && hy_h5_checksum_failed()) return hy_h5_damaged(path, name, err);
  if (exists <= 0) return hy_fail(err, "%s: no dataset %s", path, name);
  if (set < 0) return hy_fail(err, "%s: %s is not a dataset", path, name);
  hsize_t dim = 0;
  int rc = check_shape(set, path, name, &dim, err);
  if (!rc) rc = check_stored(file, set, path, name, dim, err);
  if (!rc && !(*out = malloc((size_t)dim * sizeof **out)))
    rc = hy_fail(err, "%s: %s: out of memory for %llu tokens", path, name, (unsigned long long)dim);
  /* HDF5 widens uint8 storage to the uint16 we hold in memory */
  if (!rc && H5Dread(set, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
    rc = hy_h5_checksum_failed()
             ? hy_h5_damaged(path, name, err)
             : hy_fail(err, "%s: cannot read %s (truncated or damaged file?)", path, name);
  if (!rc) *n = (int64_t)dim;
  H5Dclose(set);
  return rc;
}

static int read_vocab(hid_t file, const char *path, int64_t *vocab, hy_error *err) {
  if (hy_h5_int_attr(file, path, "vocab", vocab, err)) return -1;
  if (*vocab < 2 || *vocab > 65536)
    return hy_fail(err, "%s: attribute 'vocab' = %lld, expected 2 to 65536", path,
                   (long long)*vocab);
  return 0;
}

static int read_tokenizer(hid_t file, const char *path, char *out, size_t n, hy_error *err) {
  char *s = hy_h5_string_attr(file, path, "tokenizer", err);
  if (!s) return -1;
  int len = snprintf(out, n, "%s", s);
  free(s);
  if (len < 0 || (size_t)len >= n)
    return hy_fail(err, "%s: attribute 'tokenizer' is %d bytes long, at most %zu expected", path,
                   len, n - 1);
  return 0;
}

static int check_tokens(const char *path, const char *name, const uint16_t *t, int64_t n,
                        int64_t vocab, hy_error *err) {
  for (int64_t i = 0; i < n; i++)
    if (t[i] >= vocab)
      return hy_fail(err, "%s: %s: token %d at index %lld >= vocab %lld", path, name, t[i],
                     (long long)i, (long long)vocab);
  return 0;
}

/* The vocabulary /vocab, when the file has one: one entry per token of `vocab`. */
static int read_table(hid_t file, const char *path, hy_dataset *ds, hy_error *err) {
  if (hy_vocab_read(file, path, &ds->table, err)) return -1;
  if (ds->table.n == 0 || ds->table.n == ds->vocab) return 0;
  return hy_fail(err, "%s: /vocab holds %lld tokens, but attribute 'vocab' = %lld", path,
                 (long long)ds->table.n, (long long)ds->vocab);
}

int hy_dataset_open(const char *path, hy_dataset *ds, hy_error *err) {
  memset(ds, 0, sizeof *ds);
  if (access(path, R_OK) != 0)
    return hy_fail(err, "%s: no such dataset file (or not readable): %s", path, strerror(errno));
  hid_t file = hy_h5_open(path, err);
  if (file < 0) return -1;
  int rc = read_vocab(file, path, &ds->vocab, err);
  if (!rc) rc = read_tokenizer(file, path, ds->tokenizer, sizeof ds->tokenizer, err);
  if (!rc) rc = read_split(file, path, "/train", &ds->train, &ds->n_train, err);
  if (!rc) rc = read_split(file, path, "/val", &ds->val, &ds->n_val, err);
  if (!rc) rc = read_table(file, path, ds, err);
  H5Fclose(file);
  if (!rc) rc = check_tokens(path, "/train", ds->train, ds->n_train, ds->vocab, err);
  if (!rc) rc = check_tokens(path, "/val", ds->val, ds->n_val, ds->vocab, err);
  if (rc) hy_dataset_close(ds);
  return rc;
}

void hy_dataset_close(hy_dataset *ds) {
  free(ds->train);
  free(ds->val);
  hy_vocab_free(&ds->table);
  ds->train = ds->val = NULL;
  ds->n_train = ds->n_val = 0;
}

/* ---- writing ---- */

static herr_t write_split(hid_t file, const char *name, const uint16_t *t, int64_t n, bool bytes) {
  hsize_t dim = (hsize_t)n;
  hid_t space = H5Screate_simple(1, &dim, NULL);
  if (space < 0) return -1;
  hid_t stored = bytes ? H5T_STD_U8LE : H5T_STD_U16LE;
  hid_t set = H5Dcreate2(file, name, stored, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = set < 0 ? -1 : H5Dwrite(set, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, t);
  if (set >= 0 && H5Dclose(set) < 0) st = -1;
  H5Sclose(space);
  return st;
}

enum { TOKENIZER_CAP = sizeof((hy_dataset){0}.tokenizer) };

/* What hy_dataset_open would reject is not written (uint8 storage would clip big tokens). */
static int check_write(const char *path, const uint16_t *train, int64_t n_train,
                       const uint16_t *val, int64_t n_val, int64_t vocab, const char *tokenizer,
                       hy_error *err) {
  if (vocab < 2 || vocab > 65536)
    return hy_fail(err, "%s: vocab = %lld, expected 2 to 65536", path, (long long)vocab);
  if (!tokenizer || !*tokenizer || strlen(tokenizer) >= TOKENIZER_CAP)
    return hy_fail(err, "%s: tokenizer name '%s': expected 1 to %d bytes", path,
                   tokenizer ? tokenizer : "", TOKENIZER_CAP - 1);
  if (n_train < 2 || n_val < 2)
    return hy_fail(err, "%s: %lld /train and %lld /val tokens, at least 2 of each needed", path,
                   (long long)n_train, (long long)n_val);
  if (check_tokens(path, "/train", train, n_train, vocab, err)) return -1;
  return check_tokens(path, "/val", val, n_val, vocab, err);
}

/* table (may be NULL): the vocabulary to store, of `vocab` tokens. */
static int write_file(const char *path, const uint16_t *train, int64_t n_train, const uint16_t *val,
                      int64_t n_val, int64_t vocab, const hy_vocab *table, const char *tokenizer,
                      bool replace, hy_error *err) {
  if (check_write(path, train, n_train, val, n_val, vocab, tokenizer, err)) return -1;
  if (table && table->n != vocab)
    return hy_fail(err, "%s: a vocabulary of %lld tokens for vocab = %lld", path,
                   (long long)table->n, (long long)vocab);
  if (table && hy_vocab_check(table, path, err)) return -1;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  bool bytes = vocab <= 256;
  size_t size = (size_t)(n_train + n_val) * (bytes ? 1 : 2) + (1 << 20) +
                (table ? (size_t)table->offsets[table->n] + 8 * (size_t)table->n : 0);
  hy_h5_memfile mem;
  if (hy_h5_create_in_memory(&mem, size))
    return hy_fail(err, "%s: HDF5 cannot create the file in memory", path);
  hid_t file = mem.id;
  herr_t st = write_split(file, "/train", train, n_train, bytes);
  if (st >= 0) st = write_split(file, "/val", val, n_val, bytes);
  if (st >= 0) st = hy_h5_write_int_attr(file, "vocab", vocab);
  if (st >= 0) st = hy_h5_write_string_attr(file, "tokenizer", tokenizer);
  if (st >= 0 && table) st = hy_vocab_write(file, table, false);
  if (st < 0) {
    hy_h5_discard(&mem);
    return hy_fail(err, "%s: cannot assemble the file in memory (out of memory?)", path);
  }
  return hy_h5_save(&mem, path, replace, err);
}

int hy_dataset_write(const char *path, const uint16_t *train, int64_t n_train, const uint16_t *val,
                     int64_t n_val, int64_t vocab, const char *tokenizer, hy_error *err) {
  return write_file(path, train, n_train, val, n_val, vocab, NULL, tokenizer, true, err);
}

int hy_dataset_write_vocab(const char *path, const uint16_t *train, int64_t n_train,
                           const uint16_t *val, int64_t n_val, const hy_vocab *table,
                           const char *tokenizer, hy_error *err) {
  return write_file(path, train, n_train, val, n_val, table->n, table, tokenizer, true, err);
}

/* The stop asked (util/stop.h) while preparing h5_path: nothing is written. */
static int stopped(const char *while_, const char *h5_path, hy_error *err) {
  return hy_fail(err, "stopped by %s while %s: %s not written", hy_stop_name(), while_, h5_path);
}

int hy_data_prepare_bytes(const unsigned char *bytes, size_t n, const char *source,
                          const char *h5_path, double val_fraction, bool replace, hy_error *err) {
  if (!(val_fraction > 0 && val_fraction <= 0.5))
    return hy_fail(err, "--val-fraction %g: expected a number in (0, 0.5]", val_fraction);
  int64_t n_val = (int64_t)((double)n * val_fraction), n_train = (int64_t)n - n_val;
  if (n_val < 2 || n_train < 2)
    return hy_fail(err,
                   "%s: %zu bytes of text are too few to split into /train and /val "
                   "(at least 2 tokens each)",
                   source, n);
  uint16_t *tokens = malloc((n ? n : 1) * sizeof *tokens);
  if (!tokens) return hy_fail(err, "%s: out of memory for %zu tokens", h5_path, n);
  /* in pieces of 16 Mi bytes, the stop asked between them; a write once begun finishes (the file
   * appears whole or not at all) */
  const size_t piece = (size_t)1 << 24;
  for (size_t at = 0; at < n && !hy_stop_asked(); at += piece)
    for (size_t i = at; i < n && i < at + piece; i++) tokens[i] = bytes[i];
  int rc = hy_stop_asked() ? stopped("tokenizing", h5_path, err)
                           : write_file(h5_path, tokens, n_train, tokens + n_train, n_val, 256,
                                        NULL, "bytes", replace, err);
  free(tokens);
  return rc;
}

/* The output must not be the input under any name (a hard or symbolic link to it, the same path),
 * and an existing output is replaced only when asked. */
static int check_output(const char *txt_path, const char *h5_path, bool force, hy_error *err) {
  struct stat in, out;
  if (stat(h5_path, &out) != 0) return 0;
  if (stat(txt_path, &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
    return hy_fail(err, "%s is the input %s (the same file): name another output", h5_path,
                   txt_path);
  if (!force) return hy_fail(err, "%s exists; pass --force to replace it", h5_path);
  return 0;
}

int hy_data_prepare_text(const char *txt_path, const char *h5_path, double val_fraction, bool force,
                         hy_error *err) {
  if (check_output(txt_path, h5_path, force, err)) return -1;
  size_t n = 0;
  char *text = hy_read_text(txt_path, &n, hy_stop_asked, err);
  if (!text) return hy_stop_asked() ? stopped("reading the text", h5_path, err) : -1;
  int rc = hy_data_prepare_bytes((const unsigned char *)text, n, txt_path, h5_path, val_fraction,
                                 force, err);
  free(text);
  return rc;
}

/* The text's tokens under the tokenizer, split and written with the vocabulary. */
static int write_subword(const hy_subword_text *t, const char *txt_path, const char *h5_path,
                         double val_fraction, bool replace, hy_error *err) {
  int64_t n_val = (int64_t)((double)t->n_ids * val_fraction), n_train = t->n_ids - n_val;
  if (n_val < 2 || n_train < 2)
    return hy_fail(err,
                   "%s: %lld tokens are too few to split into /train and /val (at least 2 tokens "
                   "each)",
                   txt_path, (long long)t->n_ids);
  return write_file(h5_path, t->ids, n_train, t->ids + n_train, n_val, t->vocab.n, &t->vocab,
                    t->kind, replace, err);
}

int hy_data_prepare_subword(const char *txt_path, const char *h5_path, const char *tokenizer,
                            double val_fraction, bool force, hy_error *err) {
  if (!(val_fraction > 0 && val_fraction <= 0.5))
    return hy_fail(err, "--val-fraction %g: expected a number in (0, 0.5]", val_fraction);
  if (check_output(txt_path, h5_path, force, err)) return -1;
  size_t n = 0;
  char *text = hy_read_text(txt_path, &n, hy_stop_asked, err);
  if (!text) return hy_stop_asked() ? stopped("reading the text", h5_path, err) : -1;
  hy_subword_text t;
  int rc = hy_subword_tokenize(tokenizer, (const unsigned char *)text, n, &t, err);
  free(text);
  if (rc) return hy_stop_asked() ? stopped("tokenizing", h5_path, err) : -1;
  rc = hy_stop_asked() ? stopped("tokenizing", h5_path, err)
                       : write_subword(&t, txt_path, h5_path, val_fraction, force, err);
  hy_subword_free(&t);
  return rc;
}
