/* HDF5 token datasets: writing, reading, preparing text, and a clear error for every bad file. */
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

static char dir[256];

static void init(void) {
  snprintf(dir, sizeof dir, "/tmp/hyla-dataset-XXXXXX");
  cr_assert(mkdtemp(dir));
}

static void fini(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert(system(cmd) == 0);
  H5close(); /* HDF5 holds some memory until then; LeakSanitizer would report it */
}

TestSuite(dataset, .init = init, .fini = fini);

static const char *in_dir(const char *name) {
  static char path[8][300];
  static int next;
  char *p = path[next++ % 8];
  snprintf(p, 300, "%s/%s", dir, name);
  return p;
}

/* How many entries of the temp dir have `part` in their name. */
static int files_with(const char *part) {
  DIR *d = opendir(dir);
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

Test(dataset, round_trip_in_uint8_and_uint16) {
  uint16_t train8[] = {1, 200, 3, 255, 0}, val8[] = {7, 8, 9};
  uint16_t train16[] = {1, 40000, 3, 65535, 0}, val16[] = {7, 300, 9};
  struct {
    const char *name;
    const uint16_t *train, *val;
    int64_t vocab;
    size_t bytes;
  } cases[] = {{"u8.h5", train8, val8, 256, 1},
               {"u16.h5", train16, val16, 65536, 2},
               {"small.h5", train8, val8, 257, 2}};
  for (int i = 0; i < 3; i++) {
    hy_error err;
    const char *path = in_dir(cases[i].name);
    cr_assert_eq(
        hy_dataset_write(path, cases[i].train, 5, cases[i].val, 3, cases[i].vocab, "bytes", &err),
        0, "%s", err.msg);
    hy_dataset ds;
    cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
    cr_assert_eq(ds.n_train, 5);
    cr_assert_eq(ds.n_val, 3);
    cr_assert_eq(ds.vocab, cases[i].vocab);
    cr_assert_str_eq(ds.tokenizer, "bytes");
    cr_assert_arr_eq(ds.train, cases[i].train, 5 * sizeof(uint16_t));
    cr_assert_arr_eq(ds.val, cases[i].val, 3 * sizeof(uint16_t));
    hy_dataset_close(&ds);
    cr_assert_null(ds.train);
    /* the storage type follows the vocabulary */
    cr_assert_eq(stored_size(path, "/train"), cases[i].bytes, "%s", cases[i].name);
    cr_assert_eq(stored_size(path, "/val"), cases[i].bytes, "%s", cases[i].name);
  }
  cr_assert_eq(files_with(".tmp"), 0, "a .tmp file was left behind");
}

Test(dataset, writing_replaces_a_file_atomically) {
  uint16_t a[] = {1, 2, 3}, b[] = {4, 5, 6, 7};
  hy_error err;
  const char *path = in_dir("d.h5");
  cr_assert_eq(hy_dataset_write(path, a, 3, a, 3, 10, "bytes", &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_write(path, b, 4, b, 4, 10, "other", &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 4);
  cr_assert_str_eq(ds.tokenizer, "other");
  hy_dataset_close(&ds);
  cr_assert_eq(files_with(".tmp"), 0);
  /* a failed write leaves neither the file nor its temporary */
  cr_assert_neq(hy_dataset_write(in_dir("nodir/x.h5"), a, 3, a, 3, 10, "bytes", &err), 0);
  cr_assert(strstr(err.msg, "nodir/x.h5.tmp."), "%s", err.msg);
  cr_assert(strstr(err.msg, "cannot create"), "%s", err.msg);
}

Test(dataset, writing_refuses_what_reading_would_reject) {
  uint16_t t[] = {1, 2, 300, 4}, ok[] = {1, 2};
  hy_error err;
  const char *path = in_dir("w.h5");
  struct {
    const uint16_t *train, *val;
    int64_t n_train, n_val, vocab;
    const char *tokenizer, *want;
  } cases[] = {
      {t, ok, 4, 2, 256, "bytes", "w.h5: /train: token 300 at index 2 >= vocab 256"},
      {ok, t, 2, 4, 256, "bytes", "w.h5: /val: token 300 at index 2 >= vocab 256"},
      {ok, ok, 2, 2, 1, "bytes", "w.h5: vocab = 1, expected 2 to 65536"},
      {ok, ok, 2, 2, 70000, "bytes", "w.h5: vocab = 70000, expected 2 to 65536"},
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

/* ---- preparing text ---- */

static void write_text(const char *path, int n) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < n; i++) fputc('a' + i % 26, f);
  fclose(f);
}

Test(dataset, prepare_from_text) {
  const char *txt = in_dir("a.txt"), *h5 = in_dir("a.h5");
  write_text(txt, 100);
  hy_error err;
  cr_assert_eq(hy_data_prepare_text(txt, h5, 0.2, false, &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 80);
  cr_assert_eq(ds.n_val, 20);
  cr_assert_eq(ds.vocab, 256);
  cr_assert_str_eq(ds.tokenizer, "bytes");
  for (int i = 0; i < 80; i++) cr_assert_eq(ds.train[i], 'a' + i % 26);
  for (int i = 0; i < 20; i++) cr_assert_eq(ds.val[i], 'a' + (80 + i) % 26, "the last 20%");
  hy_dataset_close(&ds);
  cr_assert_eq(stored_size(h5, "/train"), 1u);
  /* 0.1 of 1000 bytes; every byte value survives */
  FILE *f = fopen(txt, "wb");
  for (int i = 0; i < 1000; i++) fputc(255 - i % 256, f);
  fclose(f);
  cr_assert_eq(hy_data_prepare_text(txt, h5, 0.1, true, &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 900);
  cr_assert_eq(ds.n_val, 100);
  cr_assert_eq(ds.train[0], 255);
  cr_assert_eq(ds.val[99], 255 - 999 % 256);
  hy_dataset_close(&ds);
}

Test(dataset, prepare_errors) {
  const char *txt = in_dir("a.txt"), *h5 = in_dir("a.h5");
  write_text(txt, 100);
  hy_error err;
  double bad[] = {0, -0.1, 0.51, 0.7, 1};
  for (int i = 0; i < 5; i++) {
    cr_assert_neq(hy_data_prepare_text(txt, h5, bad[i], false, &err), 0);
    cr_assert(strstr(err.msg, "expected a number in (0, 0.5]"), "%s", err.msg);
  }
  cr_assert_eq(hy_data_prepare_text(txt, h5, 0.5, false, &err), 0, "%s", err.msg);
  cr_assert_neq(hy_data_prepare_text(in_dir("nope.txt"), h5, 0.1, true, &err), 0);
  cr_assert(strstr(err.msg, "nope.txt: cannot open"), "%s", err.msg);
  write_text(txt, 10); /* 10% of 10 bytes is one token: no input-target pair */
  cr_assert_neq(hy_data_prepare_text(txt, in_dir("b.h5"), 0.1, false, &err), 0);
  cr_assert(strstr(err.msg, "10 bytes of text are too few"), "%s", err.msg);
  cr_assert_eq(access(in_dir("b.h5"), F_OK), -1);
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

static const char *bad_file(const char *name, spec s) {
  if (!s.type) s.type = H5T_STD_U8LE;
  if (!s.ndim) s.ndim = 1;
  if (!s.n) s.n = 4;
  if (!s.token) s.token = 4;
  if (!s.val_token) s.val_token = 5;
  const char *path = in_dir(name);
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
  expect_open_error(in_dir("missing.h5"), "missing.h5: no such dataset file");
  const char *junk = in_dir("junk.h5");
  FILE *f = fopen(junk, "w");
  fputs("not hdf5 at all", f);
  fclose(f);
  expect_open_error(junk, "junk.h5: not an HDF5 file");
  /* truncated: the first part of a good file */
  uint16_t t[4096] = {0};
  hy_error err;
  const char *good = in_dir("good.h5");
  cr_assert_eq(hy_dataset_write(good, t, 4096, t, 4096, 256, "bytes", &err), 0);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "head -c 3000 %s > %s", good, in_dir("cut.h5"));
  cr_assert_eq(system(cmd), 0);
  expect_open_error(in_dir("cut.h5"), "cut.h5:");
}

Test(dataset, missing_datasets) {
  expect_open_error(bad_file("noval.h5", (spec){.no_val = true}), "noval.h5: no dataset /val");
  expect_open_error(bad_file("notrain.h5", (spec){.no_train = true}),
                    "notrain.h5: no dataset /train");
  expect_open_error(bad_file("group.h5", (spec){.train_group = true}),
                    "group.h5: /train is not a dataset");
}

Test(dataset, wrong_dtypes_and_shapes) {
  expect_open_error(bad_file("float.h5", (spec){.type = H5T_IEEE_F32LE}),
                    "float.h5: /train has dtype float32, expected uint8 or uint16");
  expect_open_error(bad_file("double.h5", (spec){.type = H5T_IEEE_F64BE}),
                    "double.h5: /train has dtype float64, expected uint8 or uint16");
  expect_open_error(bad_file("signed.h5", (spec){.type = H5T_STD_I16LE}),
                    "signed.h5: /train has dtype int16, expected uint8 or uint16");
  expect_open_error(bad_file("u32.h5", (spec){.type = H5T_STD_U32LE}),
                    "u32.h5: /train has dtype uint32, expected uint8 or uint16");
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
  snprintf(cmd, sizeof cmd, "h5repack -L -f FLET %s %s", old, in_dir("new.h5"));
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  hy_dataset ds;
  hy_error err;
  cr_assert_eq(hy_dataset_open(in_dir("new.h5"), &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 4);
  cr_assert_eq(ds.train[2], 4);
  cr_assert_eq(ds.val[1], 5);
  hy_dataset_close(&ds);
}

/* Every byte of a file hyla wrote, outside the tokens (which carry no checksum), flipped in turn:
 * the file is refused with a message or reads back the same, never something else. */
Test(dataset, a_flipped_byte_in_the_metadata_is_refused_or_harmless) {
  t_ignore_leaks();
  uint16_t train[64], val[16];
  for (int i = 0; i < 64; i++) train[i] = (uint16_t)(i * 7 % 300);
  for (int i = 0; i < 16; i++) val[i] = (uint16_t)(i * 11 % 300);
  const char *path = in_dir("d.h5");
  hy_error err;
  cr_assert_eq(hy_dataset_write(path, train, 64, val, 16, 300, "bytes", &err), 0, "%s", err.msg);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  off_t tokens[2][2];
  const char *sets[] = {"/train", "/val"};
  for (int i = 0; i < 2; i++) {
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
    if ((at >= tokens[0][0] && at < tokens[0][1]) || (at >= tokens[1][0] && at < tokens[1][1]))
      continue;
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
    hy_dataset_close(&ds);
  }
  close(fd);
  cr_assert_gt(refused, 100, "the checksums caught only %d flips", refused);
}
