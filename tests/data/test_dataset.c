/* HDF5 token datasets: writing, reading (document starts too), and a clear error for every bad
 * file. data/prepare.h is tests/data/test_prepare.c's. */
#include "data/dataset.h"
#include "tests/support.h"
#include "util/h5.h"

#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(dataset, .init = t_temp_init, .fini = t_temp_fini);

/* How many entries of the temp dir have `part` in their name. */
static int files_with(const char *part) {
  DIR *d = opendir(t_temp_path());
  cr_assert(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
  closedir(d);
  return n;
}

static size_t stored_size(const char *path, const char *set) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, set, H5P_DEFAULT);
  hid_t t = H5Dget_type(d);
  size_t size = H5Tget_size(t);
  H5Tclose(t);
  H5Dclose(d);
  H5Fclose(f);
  return size;
}

/* ---- writing and reading ---- */

Test(dataset, round_trip_in_uint8_uint16_and_uint32) {
  hy_token train8[] = {1, 200, 3, 255, 0}, val8[] = {7, 8, 9};
  hy_token train16[] = {1, 40000, 3, 65535, 0}, val16[] = {7, 300, 9};
  hy_token train32[] = {1, 65536, 3, 151935, 0}, val32[] = {7, 100000, 9};
  struct {
    const char *name;
    const hy_token *train, *val;
    int64_t vocab;
    size_t bytes;
  } cases[] = {{"u8.h5", train8, val8, 256, 1},
               {"u16.h5", train16, val16, 65536, 2},
               {"small.h5", train8, val8, 257, 2},
               {"u32.h5", train32, val32, 151936, 4}}; /* Qwen's vocabulary */
  for (int i = 0; i < 4; i++) {
    hy_error err;
    const char *path = t_in_temp(cases[i].name);
    cr_assert_eq(
        hy_dataset_write(path, cases[i].train, 5, cases[i].val, 3, cases[i].vocab, "bytes", &err),
        0, "%s", err.msg);
    hy_dataset ds;
    cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
    cr_assert_eq(ds.n_train, 5);
    cr_assert_eq(ds.n_val, 3);
    cr_assert_eq(ds.vocab, cases[i].vocab);
    cr_assert_str_eq(ds.tokenizer, "bytes");
    cr_assert_arr_eq(ds.train, cases[i].train, 5 * sizeof(hy_token));
    cr_assert_arr_eq(ds.val, cases[i].val, 3 * sizeof(hy_token));
    hy_dataset_close(&ds);
    cr_assert_null(ds.train);
    /* the storage type follows the vocabulary */
    cr_assert_eq(stored_size(path, "/train"), cases[i].bytes, "%s", cases[i].name);
    cr_assert_eq(stored_size(path, "/val"), cases[i].bytes, "%s", cases[i].name);
  }
  cr_assert_eq(files_with(".tmp"), 0, "a .tmp file was left behind");
}

Test(dataset, writing_replaces_a_file_atomically) {
  hy_token a[] = {1, 2, 3}, b[] = {4, 5, 6, 7};
  hy_error err;
  const char *path = t_in_temp("d.h5");
  cr_assert_eq(hy_dataset_write(path, a, 3, a, 3, 10, "bytes", &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_write(path, b, 4, b, 4, 10, "other", &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 4);
  cr_assert_str_eq(ds.tokenizer, "other");
  hy_dataset_close(&ds);
  cr_assert_eq(files_with(".tmp"), 0);
  /* a failed write leaves neither the file nor its temporary */
  cr_assert_neq(hy_dataset_write(t_in_temp("nodir/x.h5"), a, 3, a, 3, 10, "bytes", &err), 0);
  cr_assert(strstr(err.msg, "nodir/x.h5.tmp."), "%s", err.msg);
  cr_assert(strstr(err.msg, "cannot create"), "%s", err.msg);
}

Test(dataset, writing_refuses_what_reading_would_reject) {
  hy_token t[] = {1, 2, 300, 4}, ok[] = {1, 2};
  hy_error err;
  const char *path = t_in_temp("w.h5");
  struct {
    const hy_token *train, *val;
    int64_t n_train, n_val, vocab;
    const char *tokenizer, *want;
  } cases[] = {
      {t, ok, 4, 2, 256, "bytes", "w.h5: /train: token 300 at index 2 >= vocab 256"},
      {ok, t, 2, 4, 256, "bytes", "w.h5: /val: token 300 at index 2 >= vocab 256"},
      {ok, ok, 2, 2, 1, "bytes", "w.h5: vocab = 1, expected 2 to 16777216"},
      {ok, ok, 2, 2, (1 << 24) + 1, "bytes", "w.h5: vocab = 16777217, expected 2 to 16777216"},
      {ok, ok, 1, 2, 256, "bytes", "w.h5: 1 /train and 2 /val tokens, at least 2 of each needed"},
      {ok, ok, 2, 2, 256, "", "w.h5: tokenizer name '': expected 1 to 31 bytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cr_assert_neq(hy_dataset_write(path, cases[i].train, cases[i].n_train, cases[i].val,
                                   cases[i].n_val, cases[i].vocab, cases[i].tokenizer, &err),
                  0, "case %zu was written", i);
    cr_assert(strstr(err.msg, cases[i].want), "'%s' lacks '%s'", err.msg, cases[i].want);
    cr_assert_eq(access(path, F_OK), -1, "case %zu left a file", i);
  }
  cr_assert_eq(files_with("w.h5"), 0);
}

/* ---- bad files ---- */

/* A file to break: /train and /val of a type and shape, a bad token, attributes or not. */
typedef struct {
  hid_t type;        /* default uint8 */
  int ndim;          /* default 1 */
  hsize_t n;         /* tokens per split; default 4 */
  int64_t token;     /* at index 2 of /train; default 4 */
  int64_t val_token; /* at index 1 of /val; default 5 */
  bool no_train, no_val, no_vocab, no_tokenizer, vocab_string, train_group;
  hsize_t unwritten; /* > 0: /train declares this many tokens (chunked) and holds none */
  hsize_t partial;   /* > 0: /train declares this many tokens, compressed in chunks of 4, and
                        holds only the first chunk */
  int vocab_values;  /* > 0: 'vocab' is an array of this many integers */
  bool tokenizers;   /* 'tokenizer' is an array of two strings */
  bool old_layout;   /* HDF5's default layout (superblock version 0), as h5py writes it */
  /* document starts, written as docs_name (default /train_docs) when n_docs > 0 or docs_ndim,
   * docs_group or docs_unwritten ask for it */
  const int64_t *docs;
  hsize_t n_docs;
  const char *docs_name;
  hid_t docs_type;        /* default int64 */
  int docs_ndim;          /* > 0: written with this many dimensions (n_docs, 1, ...) */
  bool docs_group;        /* docs_name is a group */
  hsize_t docs_unwritten; /* > 0: docs_name declares this many starts (chunked) and holds none */
} spec;

/* Where HDF5 should create a test file: the old default layout, or the checksummed one. */
static hid_t create(const char *path, bool old_layout) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (!old_layout) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  cr_assert(f >= 0, "%s", path);
  return f;
}

static void write_docs(hid_t f, const spec *s) {
  const char *name = s->docs_name ? s->docs_name : "/train_docs";
  if (s->docs_group) {
    H5Gclose(H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    return;
  }
  if (!s->n_docs && !s->docs_ndim && !s->docs_unwritten && !s->docs) return;
  hsize_t dims[3] = {s->docs_unwritten ? s->docs_unwritten : s->n_docs, 1, 1}, chunk = 1;
  hid_t space = H5Screate_simple(s->docs_ndim ? s->docs_ndim : 1, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (s->docs_unwritten) H5Pset_chunk(dcpl, 1, &chunk);
  hid_t d = H5Dcreate2(f, name, s->docs_type ? s->docs_type : H5T_STD_I64LE, space, H5P_DEFAULT,
                       dcpl, H5P_DEFAULT);
  cr_assert(d >= 0, "%s", name);
  if (s->n_docs && !s->docs_unwritten)
    cr_assert(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->docs) >= 0);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

static const char *bad_file(const char *name, spec s) {
  if (!s.type) s.type = H5T_STD_U8LE;
  if (!s.ndim) s.ndim = 1;
  if (!s.n) s.n = 4;
  if (!s.token) s.token = 4;
  if (!s.val_token) s.val_token = 5;
  const char *path = t_in_temp(name);
  hid_t f = create(path, s.old_layout);
  hsize_t dims[2] = {s.n, 2};
  hid_t space = H5Screate_simple(s.ndim, dims, NULL);
  int64_t data[8] = {1, 2, 3, 1, 2, 3, 1, 2};
  const char *sets[] = {"/train", "/val"};
  for (int i = 0; i < 2; i++) {
    if ((i == 0 && s.no_train) || (i == 1 && s.no_val)) continue;
    if (i == 0 && s.train_group) {
      H5Gclose(H5Gcreate2(f, "/train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      continue;
    }
    if (i == 0 && s.unwritten) {
      hsize_t chunk = 4, n = s.unwritten;
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), declared = H5Screate_simple(1, &n, NULL);
      H5Pset_chunk(dcpl, 1, &chunk);
      hid_t d = H5Dcreate2(f, sets[i], s.type, declared, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      cr_assert(d >= 0);
      H5Dclose(d);
      H5Sclose(declared);
      H5Pclose(dcpl);
      continue;
    }
    if (i == 0 && s.partial) {
      hsize_t chunk = 4, n = s.partial, start = 0;
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), declared = H5Screate_simple(1, &n, NULL);
      H5Pset_chunk(dcpl, 1, &chunk);
      H5Pset_deflate(dcpl, 1);
      hid_t d = H5Dcreate2(f, sets[i], s.type, declared, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      hid_t first = H5Screate_simple(1, &chunk, NULL);
      H5Sselect_hyperslab(declared, H5S_SELECT_SET, &start, NULL, &chunk, NULL);
      cr_assert(H5Dwrite(d, H5T_NATIVE_INT64, first, declared, H5P_DEFAULT, data) >= 0);
      H5Sclose(first);
      H5Dclose(d);
      H5Sclose(declared);
      H5Pclose(dcpl);
      continue;
    }
    if (s.n > 2) data[i ? 1 : 2] = i ? s.val_token : s.token;
    hid_t d = H5Dcreate2(f, sets[i], s.type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
  }
  H5Sclose(space);
  write_docs(f, &s);
  if (s.vocab_string) {
    hy_h5_write_string_attr(f, "vocab", "256");
  } else if (s.vocab_values) {
    hsize_t n = (hsize_t)s.vocab_values;
    int64_t vocab[8] = {256, 256, 256, 256, 256, 256, 256, 256};
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(f, "vocab", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(H5Awrite(a, H5T_NATIVE_INT64, vocab) >= 0);
    H5Aclose(a);
    H5Sclose(space);
  } else if (!s.no_vocab) {
    hy_h5_write_int_attr(f, "vocab", 256);
  }
  if (s.tokenizers) {
    hsize_t two = 2;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate_simple(1, &two, NULL);
    H5Tset_size(type, 6);
    hid_t a = H5Acreate2(f, "tokenizer", type, space, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(H5Awrite(a, type, "bytes\0other") >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
  } else if (!s.no_tokenizer) {
    hy_h5_write_string_attr(f, "tokenizer", "bytes");
  }
  H5Fclose(f);
  return path;
}

static void expect_open_error(const char *path, const char *want) {
  hy_dataset ds;
  hy_error err;
  cr_assert_neq(hy_dataset_open(path, &ds, &err), 0, "%s opened", path);
  cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
  cr_assert_null(ds.train);
  cr_assert_null(ds.val);
}

Test(dataset, a_well_formed_file_opens) {
  hy_dataset ds;
  hy_error err;
  cr_assert_eq(hy_dataset_open(bad_file("fine.h5", (spec){0}), &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 4);
  cr_assert_eq(ds.train[2], 4);
  cr_assert_eq(ds.val[1], 5);
  hy_dataset_close(&ds);
}

Test(dataset, missing_and_foreign_files) {
  expect_open_error(t_in_temp("missing.h5"), "missing.h5: no such dataset file");
  const char *junk = t_in_temp("junk.h5");
  FILE *f = fopen(junk, "w");
  fputs("not hdf5 at all", f);
  fclose(f);
  expect_open_error(junk, "junk.h5: not an HDF5 file");
  /* truncated: the first part of a good file */
  hy_token t[4096] = {0};
  hy_error err;
  const char *good = t_in_temp("good.h5");
  cr_assert_eq(hy_dataset_write(good, t, 4096, t, 4096, 256, "bytes", &err), 0);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "head -c 3000 %s > %s", good, t_in_temp("cut.h5"));
  cr_assert_eq(system(cmd), 0);
  expect_open_error(t_in_temp("cut.h5"), "cut.h5:");
}

Test(dataset, missing_datasets) {
  expect_open_error(bad_file("noval.h5", (spec){.no_val = true}), "noval.h5: no dataset /val");
  expect_open_error(bad_file("notrain.h5", (spec){.no_train = true}),
                    "notrain.h5: no dataset /train");
  expect_open_error(bad_file("group.h5", (spec){.train_group = true}),
                    "group.h5: /train is not a dataset");
}

Test(dataset, wrong_dtypes_and_shapes) {
  const char *want = "expected uint8, uint16 or uint32";
  expect_open_error(bad_file("float.h5", (spec){.type = H5T_IEEE_F32LE}),
                    "float.h5: /train has dtype float32");
  expect_open_error(bad_file("float.h5", (spec){.type = H5T_IEEE_F32LE}), want);
  expect_open_error(bad_file("double.h5", (spec){.type = H5T_IEEE_F64BE}),
                    "double.h5: /train has dtype float64");
  expect_open_error(bad_file("signed.h5", (spec){.type = H5T_STD_I16LE}),
                    "signed.h5: /train has dtype int16");
  expect_open_error(bad_file("u64.h5", (spec){.type = H5T_STD_U64LE}),
                    "u64.h5: /train has dtype uint64, expected uint8, uint16 or uint32");
  expect_open_error(bad_file("2d.h5", (spec){.ndim = 2}),
                    "2d.h5: /train has 2 dimensions, expected 1");
  expect_open_error(bad_file("short.h5", (spec){.n = 1}),
                    "short.h5: /train has 1 tokens, expected at least 2");
  /* big-endian uint16 is still uint16 */
  hy_dataset ds;
  hy_error err;
  cr_assert_eq(hy_dataset_open(bad_file("be.h5", (spec){.type = H5T_STD_U16BE}), &ds, &err), 0,
               "%s", err.msg);
  hy_dataset_close(&ds);
}

/* A header that declares tokens the file does not hold (damaged, or never written) is refused
 * before any memory is allocated for them: not read back as fill values, not a huge allocation. */
Test(dataset, declared_but_unstored_tokens) {
  expect_open_error(bad_file("unwritten.h5", (spec){.unwritten = 4}),
                    "unwritten.h5: /train declares 4 tokens but the file holds 0 bytes of them");
  expect_open_error(bad_file("huge.h5", (spec){.unwritten = (hsize_t)1 << 62}),
                    "huge.h5: /train declares 4611686018427387904 tokens but the file holds 0");
  /* compressed: fewer bytes than tokens is no sign, a chunk never written is */
  expect_open_error(bad_file("partial.h5", (spec){.partial = 8}),
                    "partial.h5: /train: 1 of its 2 chunks were never written");
}

Test(dataset, tokens_beyond_the_vocabulary) {
  expect_open_error(bad_file("big.h5", (spec){.type = H5T_STD_U16LE, .token = 300}),
                    "big.h5: /train: token 300 at index 2 >= vocab 256");
  expect_open_error(bad_file("bigval.h5", (spec){.type = H5T_STD_U16LE, .val_token = 256}),
                    "bigval.h5: /val: token 256 at index 1 >= vocab 256");
}

Test(dataset, missing_or_wrong_attributes) {
  expect_open_error(bad_file("novocab.h5", (spec){.no_vocab = true}),
                    "novocab.h5: missing attribute 'vocab'");
  expect_open_error(bad_file("strvocab.h5", (spec){.vocab_string = true}),
                    "strvocab.h5: attribute 'vocab' is not an integer");
  /* one value, not the first of several (nor a read past the one hyla holds) */
  expect_open_error(bad_file("vocabs.h5", (spec){.vocab_values = 3}),
                    "vocabs.h5: attribute 'vocab' is an array (of 3), expected a single value");
  expect_open_error(bad_file("vocab1.h5", (spec){.vocab_values = 1}),
                    "vocab1.h5: attribute 'vocab' is an array (of 1), expected a single value");
  expect_open_error(bad_file("toks.h5", (spec){.tokenizers = true}),
                    "toks.h5: attribute 'tokenizer' is an array (of 2), expected a single value");
  expect_open_error(bad_file("notok.h5", (spec){.no_tokenizer = true}),
                    "notok.h5: missing attribute 'tokenizer'");
}

/* ---- document starts ---- */

Test(dataset, document_starts_round_trip) {
  hy_token t[] = {1, 2, 3, 4, 5, 6, 7}, v[] = {8, 9, 10};
  int64_t td[] = {0, 2, 3, 6}, vd[] = {0, 1};
  hy_split_tokens train = {t, 7, td, 4}, val = {v, 3, vd, 2}, plain = {v, 3, NULL, 0};
  hy_error err;
  hy_dataset ds;
  const char *path = t_in_temp("docs.h5");
  cr_assert_eq(hy_dataset_write_splits(path, &train, &val, 16, NULL, "bytes", true, &err), 0, "%s",
               err.msg);
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train_docs, 4);
  cr_assert_arr_eq(ds.train_docs, td, sizeof td);
  cr_assert_eq(ds.n_val_docs, 2);
  cr_assert_arr_eq(ds.val_docs, vd, sizeof vd);
  cr_assert_arr_eq(ds.train, t, sizeof t);
  hy_dataset_close(&ds);
  cr_assert_null(ds.train_docs);
  /* each split's starts are its own: /val without them is one document */
  cr_assert_eq(hy_dataset_write_splits(path, &train, &plain, 16, NULL, "bytes", true, &err), 0,
               "%s", err.msg);
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train_docs, 4);
  cr_assert_null(ds.val_docs);
  cr_assert_eq(ds.n_val_docs, 0);
  hy_dataset_close(&ds);
  /* without any: as every file written before documents */
  cr_assert_eq(hy_dataset_write(path, t, 7, v, 3, 16, "bytes", &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert(!ds.train_docs && !ds.val_docs && !ds.n_train_docs && !ds.n_val_docs);
  hy_dataset_close(&ds);
  /* any integer type holds them (h5py's int32, uint64...) */
  cr_assert_eq(hy_dataset_open(bad_file("u32.h5", (spec){.docs = (int64_t[]){0, 3},
                                                         .n_docs = 2,
                                                         .docs_type = H5T_STD_U32BE}),
                               &ds, &err),
               0, "%s", err.msg);
  cr_assert(ds.n_train_docs == 2 && ds.train_docs[1] == 3);
  hy_dataset_close(&ds);
}

Test(dataset, bad_document_starts_are_refused) {
  /* /train and /val hold 4 tokens each */
  expect_open_error(
      bad_file("f.h5", (spec){.docs = (int64_t[]){0, 1}, .n_docs = 2, .docs_type = H5T_IEEE_F64LE}),
      "f.h5: /train_docs has dtype float64, expected int64 (document starts)");
  expect_open_error(
      bad_file("2d.h5", (spec){.docs = (int64_t[]){0, 1}, .n_docs = 2, .docs_ndim = 2}),
      "2d.h5: /train_docs has 2 dimensions, expected 1");
  expect_open_error(bad_file("empty.h5", (spec){.docs_ndim = 1}),
                    "empty.h5: /train_docs is empty, expected at least the first document's "
                    "start, 0");
  expect_open_error(bad_file("first.h5", (spec){.docs = (int64_t[]){1, 2}, .n_docs = 2}),
                    "first.h5: /train_docs[0] = 1, expected 0 (the first document starts the "
                    "split)");
  expect_open_error(bad_file("same.h5", (spec){.docs = (int64_t[]){0, 2, 2}, .n_docs = 3}),
                    "same.h5: /train_docs[2] = 2 after 2: document starts must increase");
  expect_open_error(bad_file("down.h5", (spec){.docs = (int64_t[]){0, 3, -1}, .n_docs = 3}),
                    "down.h5: /train_docs[2] = -1 after 3: document starts must increase");
  expect_open_error(bad_file("past.h5", (spec){.docs = (int64_t[]){0, 4}, .n_docs = 2}),
                    "past.h5: /train_docs[1] = 4, not below the split's 4 tokens");
  expect_open_error(
      bad_file("val.h5", (spec){.docs = (int64_t[]){0, 9}, .n_docs = 2, .docs_name = "/val_docs"}),
      "val.h5: /val_docs[1] = 9, not below the split's 4 tokens");
  expect_open_error(bad_file("many.h5", (spec){.docs = (int64_t[]){0, 1, 2, 3, 4}, .n_docs = 5}),
                    "many.h5: /train_docs holds 5 document starts, more than the split's 4 "
                    "tokens");
  /* a damaged header is refused before anything is allocated for what it declares */
  expect_open_error(bad_file("huge.h5", (spec){.docs_unwritten = (hsize_t)1 << 40}),
                    "huge.h5: /train_docs holds 1099511627776 document starts, more than");
  expect_open_error(bad_file("unwritten.h5", (spec){.docs_unwritten = 3}),
                    "unwritten.h5: /train_docs declares 3 document starts but the file holds 0 "
                    "bytes of them");
  expect_open_error(bad_file("group.h5", (spec){.docs_group = true}),
                    "group.h5: /train_docs is not a dataset");
}

Test(dataset, writing_refuses_bad_document_starts) {
  hy_token t[] = {1, 2, 3, 4};
  struct {
    int64_t docs[4];
    int64_t n;
    const char *want;
  } cases[] = {{{1}, 1, "w.h5: /train_docs[0] = 1, expected 0"},
               {{0, 2, 1}, 3, "w.h5: /train_docs[2] = 1 after 2: document starts must increase"},
               {{0, 4}, 2, "w.h5: /train_docs[1] = 4, not below the split's 4 tokens"},
               {{0}, 0, "w.h5: /train_docs: no document starts, at least the first (0) needed"}};
  hy_error err;
  const char *path = t_in_temp("w.h5");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hy_split_tokens train = {t, 4, cases[i].docs, cases[i].n}, val = {t, 4, NULL, 0};
    cr_assert_neq(hy_dataset_write_splits(path, &train, &val, 8, NULL, "bytes", true, &err), 0,
                  "case %zu was written", i);
    cr_assert(strstr(err.msg, cases[i].want), "'%s' lacks '%s'", err.msg, cases[i].want);
    cr_assert_eq(access(path, F_OK), -1, "case %zu left a file", i);
  }
  /* /val's too, and an existing file is kept unless replacing is asked */
  hy_split_tokens train = {t, 4, NULL, 0}, val = {t, 4, (int64_t[]){0, 0}, 2};
  cr_assert_neq(hy_dataset_write_splits(path, &train, &val, 8, NULL, "bytes", true, &err), 0);
  cr_assert(strstr(err.msg, "w.h5: /val_docs[1] = 0 after 0"), "%s", err.msg);
  val.docs = NULL;
  cr_assert_eq(hy_dataset_write_splits(path, &train, &val, 8, NULL, "bytes", false, &err), 0, "%s",
               err.msg);
  cr_assert_neq(hy_dataset_write_splits(path, &train, &val, 8, NULL, "bytes", false, &err), 0);
}

/* ---- the file's layout ---- */

/* HDF5's old layout (superblock version 0 or 1: h5py's default, older hyla's) has no checksums
 * on its metadata: refused before HDF5 decodes any of it, saying how to convert it. */
Test(dataset, the_old_layout_is_refused) {
  const char *old = bad_file("old.h5", (spec){.old_layout = true});
  expect_open_error(old, "old.h5: an HDF5 file in the old layout (superblock version 0), whose "
                         "metadata has no checksums, so damage to it could not be detected");
  expect_open_error(old, "Convert it with `h5repack -L -f FLET ");
  if (system("command -v h5repack >/dev/null 2>&1"))
    cr_skip_test("no h5repack (Debian's hdf5-tools) to convert it with");
  char cmd[800];
  snprintf(cmd, sizeof cmd, "h5repack -L -f FLET %s %s", old, t_in_temp("new.h5"));
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  hy_dataset ds;
  hy_error err;
  cr_assert_eq(hy_dataset_open(t_in_temp("new.h5"), &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 4);
  cr_assert_eq(ds.train[2], 4);
  cr_assert_eq(ds.val[1], 5);
  hy_dataset_close(&ds);
}

/* Every byte of a file hyla wrote, outside the tokens (which carry no checksum), flipped in turn:
 * the file is refused with a message or reads back the same, never something else. */
Test(dataset, a_flipped_byte_in_the_metadata_is_refused_or_harmless) {
  t_ignore_leaks();
  hy_token train[64], val[16];
  int64_t train_docs[] = {0, 5, 40}, val_docs[] = {0, 9};
  for (int i = 0; i < 64; i++) train[i] = (hy_token)(i * 7 % 300);
  for (int i = 0; i < 16; i++) val[i] = (hy_token)(i * 11 % 300);
  const char *path = t_in_temp("d.h5");
  hy_error err;
  hy_split_tokens t = {train, 64, train_docs, 3}, v = {val, 16, val_docs, 2};
  cr_assert_eq(hy_dataset_write_splits(path, &t, &v, 300, NULL, "bytes", true, &err), 0, "%s",
               err.msg);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  off_t tokens[4][2]; /* where each dataset's values lie: they carry no checksum */
  const char *sets[] = {"/train", "/val", "/train_docs", "/val_docs"};
  for (int i = 0; i < 4; i++) {
    hid_t d = H5Dopen2(f, sets[i], H5P_DEFAULT);
    tokens[i][0] = (off_t)H5Dget_offset(d);
    tokens[i][1] = tokens[i][0] + (off_t)H5Dget_storage_size(d);
    H5Dclose(d);
  }
  H5Fclose(f);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  int fd = open(path, O_RDWR), refused = 0;
  for (off_t at = 0; at < st.st_size; at++) {
    bool values = false;
    for (int i = 0; i < 4; i++) values = values || (at >= tokens[i][0] && at < tokens[i][1]);
    if (values) continue;
    unsigned char byte, flipped;
    cr_assert_eq(pread(fd, &byte, 1, at), 1);
    flipped = byte ^ 0x5a;
    cr_assert_eq(pwrite(fd, &flipped, 1, at), 1);
    hy_dataset ds;
    int rc = hy_dataset_open(path, &ds, &err);
    cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
    if (rc) {
      cr_assert(strstr(err.msg, "d.h5"), "byte %lld: '%s'", (long long)at, err.msg);
      refused++;
      continue;
    }
    cr_assert(ds.n_train == 64 && ds.n_val == 16 && ds.vocab == 300, "byte %lld", (long long)at);
    cr_assert_arr_eq(ds.train, train, sizeof train, "byte %lld", (long long)at);
    cr_assert_arr_eq(ds.val, val, sizeof val, "byte %lld", (long long)at);
    cr_assert_str_eq(ds.tokenizer, "bytes", "byte %lld", (long long)at);
    cr_assert(ds.n_train_docs == 3 && ds.n_val_docs == 2, "byte %lld", (long long)at);
    cr_assert_arr_eq(ds.train_docs, train_docs, sizeof train_docs, "byte %lld", (long long)at);
    cr_assert_arr_eq(ds.val_docs, val_docs, sizeof val_docs, "byte %lld", (long long)at);
    hy_dataset_close(&ds);
  }
  close(fd);
  cr_assert_gt(refused, 100, "the checksums caught only %d flips", refused);
}
