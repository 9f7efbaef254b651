/* Subword vocabularies (data/vocab.h): stored in a dataset and a checkpoint and read back the
 * same, damaged ones refused, text encoded greedily and decoded back byte for byte (invalid
 * UTF-8, NUL, emoji), a dataset without one read as bytes, and [model] vocab following the
 * dataset or refused with both sizes when it does not fit. No Python: tests/data/subword.sh runs
 * the tokenizer script. */
#include "data/dataset.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "tests/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(vocab, .init = t_temp_init, .fini = t_temp_fini);

/* A byte-level vocabulary as BPE makes one: the 256 bytes (token b is byte b), then merges,
 * among them multi-byte characters and an empty token (an id no token has). */
static const char *const MERGES[] = {"th", "the", " the", "e ", "\xf0\x9f\x98\x80", "<|end|>", ""};
enum { N_MERGES = sizeof MERGES / sizeof *MERGES, N_TOKENS = 256 + N_MERGES };

static hy_vocab make_vocab(void) {
  hy_vocab v = {N_TOKENS, malloc((N_TOKENS + 1) * sizeof(uint64_t)), malloc(4096)};
  v.offsets[0] = 0;
  for (int i = 0; i < N_TOKENS; i++) {
    size_t len = i < 256 ? 1 : strlen(MERGES[i - 256]);
    if (i < 256)
      v.bytes[v.offsets[i]] = (unsigned char)i;
    else
      memcpy(v.bytes + v.offsets[i], MERGES[i - 256], len);
    v.offsets[i + 1] = v.offsets[i] + len;
  }
  return v;
}

static const char ODD[] = "the\x00 the \xff\xfe\xe2\x82 the\xf0\x9f\x98\x80<|end|>\r\n th";
static const size_t ODD_LEN = sizeof ODD - 1;

/* The ids' bytes, in a malloc'd buffer of *n bytes. */
static char *decoded(const hy_vocab *v, const hy_token *ids, int64_t n_ids, size_t *n) {
  char *text = NULL;
  FILE *f = open_memstream(&text, n);
  int64_t counted = hy_vocab_decode(v, ids, n_ids, f);
  fclose(f);
  cr_assert_eq((size_t)counted, *n, "hy_vocab_decode counts what it writes");
  return text;
}

Test(vocab, encode_then_decode_gives_the_bytes_back) {
  hy_vocab v = make_vocab();
  int32_t ids[64];
  hy_error err;
  int64_t n = hy_vocab_encode(&v, (const unsigned char *)ODD, ODD_LEN, ids, &err);
  cr_assert_gt(n, 0, "%s", err.msg);
  cr_expect_eq(ids[0], 256 + 1, "'the' is one token, the longest match");
  cr_expect_eq(ids[1], 0, "NUL is its byte's token");
  cr_expect_eq(ids[2], 256 + 2, "' the'");
  hy_token small[64];
  for (int64_t i = 0; i < n; i++) {
    cr_assert(ids[i] >= 0 && ids[i] < N_TOKENS && ids[i] != 256 + N_MERGES - 1,
              "id %d: never the empty token", ids[i]);
    small[i] = (hy_token)ids[i];
  }
  size_t len;
  char *text = decoded(&v, small, n, &len);
  cr_assert_eq(len, ODD_LEN);
  cr_assert(!memcmp(text, ODD, ODD_LEN), "the bytes come back, invalid UTF-8 and all");
  free(text);
  hy_vocab_free(&v);
}

Test(vocab, a_byte_without_a_token_is_named) {
  hy_vocab v = make_vocab();
  v.n = 0xff; /* the bytes up to 0xfe only */
  int32_t ids[64];
  hy_error err;
  cr_assert_eq(hy_vocab_encode(&v, (const unsigned char *)"ab\xff", 3, ids, &err), -1);
  cr_assert(strstr(err.msg, "byte 2 of the text (0xff) begins no token"), "%s", err.msg);
  hy_vocab_free(&v);
}

Test(vocab, a_dataset_keeps_its_vocabulary) {
  hy_vocab v = make_vocab();
  hy_token train[] = {256 + 2, 0, 0xff, 256 + 4, 256 + 5}, val[] = {10, 256 + 1, 13};
  hy_error err;
  const char *path = t_in_temp("sub.h5");
  cr_assert_eq(hy_dataset_write_vocab(path, train, 5, val, 3, &v, "byte-level-bpe", &err), 0, "%s",
               err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_expect_eq(ds.vocab, N_TOKENS);
  cr_expect_str_eq(ds.tokenizer, "byte-level-bpe");
  cr_expect(hy_vocab_equal(&ds.table, &v), "the table read back is the one written");
  size_t len;
  char *text = decoded(&ds.table, ds.train, ds.n_train, &len);
  cr_expect_eq(len, 4 + 1 + 1 + 4 + 7);
  cr_expect(!memcmp(text, " the\x00\xff\xf0\x9f\x98\x80<|end|>", len));
  free(text);
  hy_dataset_close(&ds);
  cr_expect_eq(ds.table.n, 0, "closed, the table is freed");
  hy_vocab_free(&v);
}

/* A vocabulary of Qwen's size, 151,936 tokens: ids above 65,535 are stored in 32 bits and read
 * and decoded back as they were written. Token i >= 256 is the bytes of the number i. */
Test(vocab, a_vocabulary_past_16_bits) {
  enum { N = 151936 };
  hy_vocab v = {N, malloc((N + 1) * sizeof(uint64_t)), malloc((size_t)N * 8)};
  v.offsets[0] = 0;
  for (int i = 0; i < N; i++) {
    char word[16];
    int len = i < 256 ? 1 : snprintf(word, sizeof word, "%d ", i);
    if (i < 256)
      v.bytes[v.offsets[i]] = (unsigned char)i;
    else
      memcpy(v.bytes + v.offsets[i], word, (size_t)len);
    v.offsets[i + 1] = v.offsets[i] + (uint64_t)len;
  }
  hy_token train[] = {65536, 'a', N - 1, 70000, 65535}, val[] = {100000, 'b', 256};
  hy_error err;
  const char *path = t_in_temp("big.h5");
  cr_assert_eq(hy_dataset_write_vocab(path, train, 5, val, 3, &v, "byte-level-bpe", &err), 0, "%s",
               err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_expect_eq(ds.vocab, N);
  cr_expect(!memcmp(ds.train, train, sizeof train) && !memcmp(ds.val, val, sizeof val));
  size_t len;
  char *text = decoded(&ds.table, ds.train, ds.n_train, &len);
  const char want[] = "65536 a151935 70000 65535 ";
  cr_expect(len == sizeof want - 1 && !memcmp(text, want, len), "decoded '%.*s'", (int)len, text);
  free(text);
  hy_dataset_close(&ds);
  hy_vocab_free(&v);
}

Test(vocab, a_dataset_without_one_is_bytes) {
  hy_token t[] = {'h', 'y', 0, 0xff};
  hy_error err;
  const char *path = t_in_temp("bytes.h5");
  cr_assert_eq(hy_dataset_write(path, t, 4, t, 4, 256, "bytes", &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_expect_eq(ds.table.n, 0);
  size_t len;
  char *text = decoded(&ds.table, ds.train, ds.n_train, &len);
  cr_expect_eq(len, 4);
  cr_expect(!memcmp(text, "hy\x00\xff", 4), "each token its byte");
  free(text);
  hy_dataset_close(&ds);
}

static void put(hid_t group, const char *name, hid_t type, const void *data, hsize_t n) {
  hid_t space = H5Screate_simple(1, &n, NULL);
  hid_t set = H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  cr_assert(set >= 0 && H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  H5Dclose(set);
  H5Sclose(space);
}

/* A dataset of `vocab` tokens with /vocab written as given, checked or not. */
static const char *damaged(const char *name, int64_t vocab, const uint64_t *offsets, hsize_t n_off,
                           const char *bytes) {
  hy_token t[] = {0, 1, 2};
  hy_error err;
  const char *path = t_in_temp(name);
  cr_assert_eq(hy_dataset_write(path, t, 3, t, 3, vocab, "byte-level-bpe", &err), 0, "%s", err.msg);
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t g = H5Gcreate2(f, "/vocab", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  put(g, "offsets", H5T_NATIVE_UINT64, offsets, n_off);
  put(g, "bytes", H5T_NATIVE_UCHAR, bytes, strlen(bytes));
  H5Gclose(g);
  H5Fclose(f);
  return path;
}

Test(vocab, damaged_vocabularies_are_refused) {
  struct {
    uint64_t offsets[4];
    int64_t vocab;
    const char *message;
  } cases[] = {
      {{0, 2, 1, 3}, 3, "/vocab/offsets decreases at token 1"},
      {{1, 2, 3, 4}, 3, "/vocab/offsets starts at 1, expected 0"},
      {{0, 1, 2, 9}, 3, "/vocab/offsets ends at 9, but /vocab/bytes holds 4 bytes"},
      {{0, 1, 2, 4}, 4, "/vocab holds 3 tokens, but attribute 'vocab' = 4"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char name[32];
    snprintf(name, sizeof name, "bad%zu.h5", i);
    const char *path = damaged(name, cases[i].vocab, cases[i].offsets, 4, "abcd");
    hy_dataset ds;
    hy_error err;
    cr_expect_neq(hy_dataset_open(path, &ds, &err), 0, "case %zu opened", i);
    cr_expect(strstr(err.msg, cases[i].message), "case %zu: %s", i, err.msg);
    cr_expect(strstr(err.msg, name), "case %zu names the file: %s", i, err.msg);
  }
}

Test(vocab, a_checkpoint_keeps_the_vocabulary) {
  hy_vocab v = make_vocab(), back;
  hy_params ps = {0};
  hy_params_add(&ps, "layer", "w", HY_F32, HY_SHAPE(2, 3), true);
  hy_error err;
  const char *with = t_in_temp("with.h5"), *without = t_in_temp("without.h5");
  hy_ckpt_meta meta = {.step = 1, .recipe = "", .vocab = &v};
  cr_assert_eq(hy_checkpoint_write(with, &ps, NULL, &meta, &err), 0, "%s", err.msg);
  meta.vocab = NULL;
  cr_assert_eq(hy_checkpoint_write(without, &ps, NULL, &meta, &err), 0, "%s", err.msg);
  cr_assert_eq(hy_checkpoint_read_vocab(with, &back, &err), 0, "%s", err.msg);
  cr_expect(hy_vocab_equal(&back, &v));
  hy_vocab_free(&back);
  cr_assert_eq(hy_checkpoint_read_vocab(without, &back, &err), 0, "%s", err.msg);
  cr_expect_eq(back.n, 0, "a byte-level model's checkpoint has none");
  hy_params_free(&ps);
  hy_vocab_free(&v);
}

/* ---- [model] vocab and the dataset ---- */

static const char *recipe_file(const char *name, const char *dataset, const char *vocab_line) {
  const char *path = t_in_temp(name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f, "[model]\nd_model = 16\nn_heads = 2\n%s\n[data]\ndataset = \"%s\"\n", vocab_line,
          dataset);
  fclose(f);
  return path;
}

static const char *subword_dataset(void) {
  hy_vocab v = make_vocab();
  hy_token t[] = {256, 257, 258, 0};
  hy_error err;
  const char *path = t_in_temp("sub.h5");
  cr_assert_eq(hy_dataset_write_vocab(path, t, 4, t, 4, &v, "byte-level-bpe", &err), 0, "%s",
               err.msg);
  hy_vocab_free(&v);
  return path;
}

Test(vocab, model_vocab_follows_the_dataset) {
  char data[300];
  snprintf(data, sizeof data, "%s", subword_dataset());
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_load(recipe_file("follow.toml", data, ""), 0, NULL, &r, &err), 0, "%s",
               err.msg);
  cr_expect_eq(r.model.vocab, N_TOKENS);
  char *text = hy_recipe_to_toml(&r); /* the resolved recipe, as a checkpoint keeps it */
  char line[64];
  snprintf(line, sizeof line, "vocab = %d\n", N_TOKENS);
  cr_expect(strstr(text, line), "%s", text);
  free(text);
  cr_assert_eq(hy_recipe_load(recipe_file("same.toml", data, "vocab = 263"), 0, NULL, &r, &err), 0,
               "%s", err.msg);
  cr_assert_eq(hy_recipe_load(recipe_file("bytes.toml", "shakespeare", ""), 0, NULL, &r, &err), 0,
               "%s", err.msg);
  cr_expect_eq(r.model.vocab, 256, "a byte dataset: 256");
}

Test(vocab, a_mismatch_names_the_key_and_both_sizes) {
  char data[300], want[600];
  snprintf(data, sizeof data, "%s", subword_dataset());
  hy_recipe r;
  hy_error err;
  const char *path = recipe_file("mismatch.toml", data, "vocab = 256");
  cr_assert_neq(hy_recipe_load(path, 0, NULL, &r, &err), 0);
  snprintf(want, sizeof want,
           "%s:4: [model] vocab = 256, but the dataset %s has a vocabulary of 263 tokens (stored "
           "with it): they must be equal",
           path, data);
  cr_expect(strstr(err.msg, want), "%s", err.msg);
  const char *sets[] = {"model.vocab=300"};
  cr_assert_neq(hy_recipe_load(path, 1, sets, &r, &err), 0);
  cr_expect(strstr(err.msg, "--set model.vocab=300: [model] vocab = 300, but the dataset"), "%s",
            err.msg);
  /* without a stored vocabulary, a model's may be larger than the dataset's, not smaller */
  cr_assert_eq(
      hy_recipe_load(recipe_file("big.toml", "shakespeare", "vocab = 300"), 0, NULL, &r, &err), 0,
      "%s", err.msg);
  path = recipe_file("small.toml", "shakespeare", "vocab = 100");
  cr_assert_neq(hy_recipe_load(path, 0, NULL, &r, &err), 0);
  cr_expect(strstr(err.msg, ":4: [model] vocab = 100, but the dataset shakespeare has a vocabulary "
                            "of 256 tokens: vocab must be at least that"),
            "%s", err.msg);
}
