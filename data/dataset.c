#include "data/dataset.h"
#include "util/h5.h"

#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* A split's tokens: uint8, uint16 or uint32, at least one input and its target. Its document
 * starts: any integer type (read as int64), at least the first. */
static int check_shape(hid_t set, const char *path, const char *name, bool tokens, hsize_t *n,
                       hy_error *err) {
  hid_t type = H5Dget_type(set), space = H5Dget_space(set);
  int rc = 0, ndim = H5Sget_simple_extent_ndims(space);
  char buf[32];
  bool integer = type >= 0 && H5Tget_class(type) == H5T_INTEGER;
  if (type < 0 || space < 0) {
    rc = hy_fail(err, "%s: cannot read the type and shape of %s", path, name);
  } else if (tokens && (!integer || H5Tget_sign(type) != H5T_SGN_NONE || H5Tget_size(type) > 4)) {
    rc = hy_fail(err, "%s: %s has dtype %s, expected uint8, uint16 or uint32", path, name,
                 type_name(type, buf, sizeof buf));
  } else if (!tokens && (!integer || H5Tget_size(type) > 8)) {
    rc = hy_fail(err, "%s: %s has dtype %s, expected int64 (document starts)", path, name,
                 type_name(type, buf, sizeof buf));
  } else if (ndim != 1) {
    rc = hy_fail(err, "%s: %s has %d dimensions, expected 1", path, name, ndim);
  } else {
    H5Sget_simple_extent_dims(space, n, NULL);
    if (tokens && *n < 2)
      rc = hy_fail(err, "%s: %s has %llu tokens, expected at least 2 (one input and its target)",
                   path, name, (unsigned long long)*n);
    if (!tokens && *n < 1)
      rc = hy_fail(err, "%s: %s is empty, expected at least the first document's start, 0", path,
                   name);
  }
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  return rc;
}

/* The elements the header declares must be in the file: a damaged header must not make hyla
 * allocate for (or read back as fill values) data that was never written. Compressed data may
 * take fewer bytes than it is, but not none. `held`: bytes per element in memory; `unit` names
 * the elements in the message. */
static int check_stored(hid_t file, hid_t set, const char *path, const char *name, hsize_t n,
                        size_t held, const char *unit, hy_error *err) {
  hid_t type = H5Dget_type(set), dcpl = H5Dget_create_plist(set);
  int filters = dcpl < 0 ? -1 : H5Pget_nfilters(dcpl);
  size_t size = type < 0 ? 0 : H5Tget_size(type);
  hsize_t stored = H5Dget_storage_size(set), file_size = 0;
  if (type >= 0) H5Tclose(type);
  if (dcpl >= 0) H5Pclose(dcpl);
  bool damaged = filters < 0 || size == 0 || H5Fget_filesize(file, &file_size) < 0 ||
                 n > (hsize_t)PTRDIFF_MAX / held || stored == 0 || stored > file_size ||
                 (filters == 0 && stored / size < n);
  if (!damaged) return hy_h5_check_stored(set, path, name, err);
  return hy_fail(err,
                 "%s: %s declares %llu %s but the file holds %llu bytes of them (truncated or "
                 "damaged file?)",
                 path, name, (unsigned long long)n, unit, (unsigned long long)stored);
}

/* The dataset `name`, open; -1 with err when it is damaged or not a dataset. */
static hid_t open_set(hid_t file, const char *path, const char *name, hy_error *err) {
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set >= 0) return set;
  if (hy_h5_checksum_failed()) return hy_h5_damaged(path, name, err);
  return hy_fail(err, "%s: %s is not a dataset", path, name);
}

/* The whole of a checked dataset of n elements, read as mem_type into malloc'd memory; NULL with
 * err when it cannot be read. */
static void *read_all(hid_t set, const char *path, const char *name, hid_t mem_type, hsize_t n,
                      hy_error *err) {
  void *out = malloc(n ? (size_t)n * H5Tget_size(mem_type) : 1);
  if (!out) {
    hy_fail(err, "%s: %s: out of memory for %llu values", path, name, (unsigned long long)n);
  } else if (H5Dread(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    if (hy_h5_checksum_failed())
      hy_h5_damaged(path, name, err);
    else
      hy_fail(err, "%s: cannot read %s (truncated or damaged file?)", path, name);
    free(out);
    out = NULL;
  }
  return out;
}

static int read_split(hid_t file, const char *path, const char *name, hy_token **out, int64_t *n,
                      hy_error *err) {
  htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
  if (exists <= 0 && hy_h5_checksum_failed()) return hy_h5_damaged(path, name, err);
  if (exists <= 0) return hy_fail(err, "%s: no dataset %s", path, name);
  hid_t set = open_set(file, path, name, err);
  if (set < 0) return -1;
  hsize_t dim = 0;
  int rc = check_shape(set, path, name, true, &dim, err);
  if (!rc) rc = check_stored(file, set, path, name, dim, sizeof **out, "tokens", err);
  /* HDF5 widens uint8 and uint16 storage to the uint32 we hold in memory */
  if (!rc && !(*out = read_all(set, path, name, H5T_NATIVE_UINT32, dim, err))) rc = -1;
  if (!rc) *n = (int64_t)dim;
  H5Dclose(set);
  return rc;
}

static int check_docs(const char *path, const char *name, const int64_t *docs, int64_t n_docs,
                      int64_t n_tokens, hy_error *err) {
  if (n_docs > n_tokens)
    return hy_fail(err, "%s: %s holds %lld document starts, more than the split's %lld tokens",
                   path, name, (long long)n_docs, (long long)n_tokens);
  if (n_docs > 0 && docs[0] != 0)
    return hy_fail(err, "%s: %s[0] = %lld, expected 0 (the first document starts the split)", path,
                   name, (long long)docs[0]);
  for (int64_t i = 1; i < n_docs; i++)
    if (docs[i] <= docs[i - 1])
      return hy_fail(err, "%s: %s[%lld] = %lld after %lld: document starts must increase", path,
                     name, (long long)i, (long long)docs[i], (long long)docs[i - 1]);
  if (n_docs > 0 && docs[n_docs - 1] >= n_tokens)
    return hy_fail(err, "%s: %s[%lld] = %lld, not below the split's %lld tokens", path, name,
                   (long long)(n_docs - 1), (long long)docs[n_docs - 1], (long long)n_tokens);
  return 0;
}

/* A split's document starts (name: /train_docs), when the file has them. */
static int read_docs(hid_t file, const char *path, const char *name, int64_t n_tokens,
                     int64_t **out, int64_t *n, hy_error *err) {
  htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
  if (exists <= 0) return hy_h5_checksum_failed() ? hy_h5_damaged(path, name, err) : 0;
  hid_t set = open_set(file, path, name, err);
  if (set < 0) return -1;
  hsize_t dim = 0;
  int rc = check_shape(set, path, name, false, &dim, err);
  if (!rc && dim > (hsize_t)n_tokens) /* before anything is allocated for them */
    rc = check_docs(path, name, NULL, (int64_t)dim, n_tokens, err);
  if (!rc) rc = check_stored(file, set, path, name, dim, sizeof **out, "document starts", err);
  if (!rc && !(*out = read_all(set, path, name, H5T_NATIVE_INT64, dim, err))) rc = -1;
  if (!rc) rc = check_docs(path, name, *out, (int64_t)dim, n_tokens, err);
  if (!rc) *n = (int64_t)dim;
  H5Dclose(set);
  return rc;
}

static int read_vocab(hid_t file, const char *path, int64_t *vocab, hy_error *err) {
  if (hy_h5_int_attr(file, path, "vocab", vocab, err)) return -1;
  if (*vocab < 2 || *vocab > HY_VOCAB_MAX)
    return hy_fail(err, "%s: attribute 'vocab' = %lld, expected 2 to %d", path, (long long)*vocab,
                   HY_VOCAB_MAX);
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

static int check_tokens(const char *path, const char *name, const hy_token *t, int64_t n,
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
  if (!rc)
    rc = read_docs(file, path, "/train_docs", ds->n_train, &ds->train_docs, &ds->n_train_docs, err);
  if (!rc) rc = read_docs(file, path, "/val_docs", ds->n_val, &ds->val_docs, &ds->n_val_docs, err);
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
  free(ds->train_docs);
  free(ds->val_docs);
  hy_vocab_free(&ds->table);
  ds->train = ds->val = NULL;
  ds->train_docs = ds->val_docs = NULL;
  ds->n_train = ds->n_val = ds->n_train_docs = ds->n_val_docs = 0;
}

/* ---- writing ---- */

/* A 1-d dataset of n values from memory (mem_type), stored as `stored`. */
static herr_t write_set(hid_t file, const char *name, hid_t stored, hid_t mem_type, const void *v,
                        int64_t n) {
  hsize_t dim = (hsize_t)n;
  hid_t space = H5Screate_simple(1, &dim, NULL);
  if (space < 0) return -1;
  hid_t set = H5Dcreate2(file, name, stored, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = set < 0 ? -1 : H5Dwrite(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  if (set >= 0 && H5Dclose(set) < 0) st = -1;
  H5Sclose(space);
  return st;
}

/* A split's tokens under `name`, its document starts (if any) under name_docs. */
static herr_t write_split(hid_t file, const char *name, const hy_split_tokens *s, hid_t stored) {
  char docs[32];
  snprintf(docs, sizeof docs, "%s_docs", name);
  herr_t st = write_set(file, name, stored, H5T_NATIVE_UINT32, s->tokens, s->n);
  if (st >= 0 && s->docs)
    st = write_set(file, docs, H5T_STD_I64LE, H5T_NATIVE_INT64, s->docs, s->n_docs);
  return st;
}

enum { TOKENIZER_CAP = sizeof((hy_dataset){0}.tokenizer) };

/* What hy_dataset_open would reject is not written (uint8 storage would clip big tokens). */
static int check_write(const char *path, const hy_split_tokens *train, const hy_split_tokens *val,
                       int64_t vocab, const char *tokenizer, hy_error *err) {
  if (vocab < 2 || vocab > HY_VOCAB_MAX)
    return hy_fail(err, "%s: vocab = %lld, expected 2 to %d", path, (long long)vocab, HY_VOCAB_MAX);
  if (!tokenizer || !*tokenizer || strlen(tokenizer) >= TOKENIZER_CAP)
    return hy_fail(err, "%s: tokenizer name '%s': expected 1 to %d bytes", path,
                   tokenizer ? tokenizer : "", TOKENIZER_CAP - 1);
  if (train->n < 2 || val->n < 2)
    return hy_fail(err, "%s: %lld /train and %lld /val tokens, at least 2 of each needed", path,
                   (long long)train->n, (long long)val->n);
  if (train->docs && train->n_docs < 1)
    return hy_fail(err, "%s: /train_docs: no document starts, at least the first (0) needed", path);
  if (val->docs && val->n_docs < 1)
    return hy_fail(err, "%s: /val_docs: no document starts, at least the first (0) needed", path);
  if (check_tokens(path, "/train", train->tokens, train->n, vocab, err) ||
      check_tokens(path, "/val", val->tokens, val->n, vocab, err))
    return -1;
  if (train->docs && check_docs(path, "/train_docs", train->docs, train->n_docs, train->n, err))
    return -1;
  return val->docs ? check_docs(path, "/val_docs", val->docs, val->n_docs, val->n, err) : 0;
}

int hy_dataset_write_splits(const char *path, const hy_split_tokens *train,
                            const hy_split_tokens *val, int64_t vocab, const hy_vocab *table,
                            const char *tokenizer, bool replace, hy_error *err) {
  if (check_write(path, train, val, vocab, tokenizer, err)) return -1;
  if (table && table->n != vocab)
    return hy_fail(err, "%s: a vocabulary of %lld tokens for vocab = %lld", path,
                   (long long)table->n, (long long)vocab);
  if (table && hy_vocab_check(table, path, err)) return -1;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* the narrowest storage the vocabulary fits */
  size_t width = vocab <= 256 ? 1 : vocab <= 65536 ? 2 : 4;
  hid_t stored = width == 1 ? H5T_STD_U8LE : width == 2 ? H5T_STD_U16LE : H5T_STD_U32LE;
  size_t size = (size_t)(train->n + val->n) * width + 8 * (size_t)(train->n_docs + val->n_docs) +
                (1 << 20) + (table ? (size_t)table->offsets[table->n] + 8 * (size_t)table->n : 0);
  hy_h5_memfile mem;
  if (hy_h5_create_in_memory(&mem, size))
    return hy_fail(err, "%s: HDF5 cannot create the file in memory", path);
  hid_t file = mem.id;
  herr_t st = write_split(file, "/train", train, stored);
  if (st >= 0) st = write_split(file, "/val", val, stored);
  if (st >= 0) st = hy_h5_write_int_attr(file, "vocab", vocab);
  if (st >= 0) st = hy_h5_write_string_attr(file, "tokenizer", tokenizer);
  if (st >= 0 && table) st = hy_vocab_write(file, table, false);
  if (st < 0) {
    hy_h5_discard(&mem);
    return hy_fail(err, "%s: cannot assemble the file in memory (out of memory?)", path);
  }
  return hy_h5_save(&mem, path, replace, err);
}

int hy_dataset_write(const char *path, const hy_token *train, int64_t n_train, const hy_token *val,
                     int64_t n_val, int64_t vocab, const char *tokenizer, hy_error *err) {
  hy_split_tokens t = {train, n_train, NULL, 0}, v = {val, n_val, NULL, 0};
  return hy_dataset_write_splits(path, &t, &v, vocab, NULL, tokenizer, true, err);
}

int hy_dataset_write_vocab(const char *path, const hy_token *train, int64_t n_train,
                           const hy_token *val, int64_t n_val, const hy_vocab *table,
                           const char *tokenizer, hy_error *err) {
  hy_split_tokens t = {train, n_train, NULL, 0}, v = {val, n_val, NULL, 0};
  return hy_dataset_write_splits(path, &t, &v, table->n, table, tokenizer, true, err);
}
