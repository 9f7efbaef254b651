/* Token datasets, the shipped corpus, MQAR and the loader. */
#include "data/builtin.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mqar.h"
#include "tests/support.h"
#include "util/h5.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void init(void) {
  snprintf(dir, sizeof dir, "/tmp/hyla-data-XXXXXX");
  cr_assert(mkdtemp(dir));
}

static void fini(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert(system(cmd) == 0);
  H5close();
}

TestSuite(dataset, .init = init, .fini = fini);
TestSuite(mqar);
TestSuite(loader, .init = init, .fini = fini);

static const char *in_dir(const char *name) {
  static char path[8][300];
  static int next;
  char *p = path[next++ % 8];
  snprintf(p, 300, "%s/%s", dir, name);
  return p;
}

/* ---- datasets ---- */

Test(dataset, round_trip_in_uint8_and_uint16) {
  uint16_t train[] = {1, 200, 3, 255, 0}, val[] = {7, 8, 9};
  int64_t vocabs[] = {256, 1000};
  for (int i = 0; i < 2; i++) {
    hy_error err;
    const char *path = in_dir(i ? "u16.h5" : "u8.h5");
    cr_assert_eq(hy_dataset_write(path, train, 5, val, 3, vocabs[i], "bytes", &err), 0, "%s",
                 err.msg);
    hy_dataset ds;
    cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
    cr_assert_eq(ds.n_train, 5);
    cr_assert_eq(ds.n_val, 3);
    cr_assert_eq(ds.vocab, vocabs[i]);
    cr_assert_str_eq(ds.tokenizer, "bytes");
    cr_assert_arr_eq(ds.train, train, sizeof train);
    cr_assert_arr_eq(ds.val, val, sizeof val);
    hy_dataset_close(&ds);
    /* the storage type follows the vocabulary */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/train", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    cr_assert_eq(H5Tget_size(t), i ? 2u : 1u);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
  }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
  cr_assert_neq(system(cmd), 0, "a .tmp file was left behind");
}

Test(dataset, prepare_from_text) {
  const char *txt = in_dir("a.txt"), *h5 = in_dir("a.h5");
  FILE *f = fopen(txt, "w");
  for (int i = 0; i < 100; i++) fputc('a' + i % 26, f);
  fclose(f);
  hy_error err;
  cr_assert_eq(hy_data_prepare_text(txt, h5, 0.2, &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 80);
  cr_assert_eq(ds.n_val, 20);
  cr_assert_eq(ds.train[0], 'a');
  cr_assert_eq(ds.val[0], 'a' + 80 % 26);
  hy_dataset_close(&ds);
  cr_assert_neq(hy_data_prepare_text(txt, h5, 0.7, &err), 0);
  cr_assert(strstr(err.msg, "--val-fraction 0.7: expected a number in (0, 0.5]"), "%s", err.msg);
  cr_assert_neq(hy_data_prepare_text(in_dir("nope.txt"), h5, 0.1, &err), 0);
  cr_assert(strstr(err.msg, "nope.txt: cannot open"), "%s", err.msg);
}

/* A file with the given /train dataset type and attributes, for the bad cases. */
static const char *bad_file(const char *name, hid_t type, int64_t token, bool val, bool vocab,
                            bool tokenizer) {
  const char *path = in_dir(name);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t n = 4;
  hid_t space = H5Screate_simple(1, &n, NULL);
  int64_t data[4] = {1, 2, token, 3};
  const char *sets[] = {"/train", "/val"};
  for (int i = 0; i < (val ? 2 : 1); i++) {
    hid_t d = H5Dcreate2(f, sets[i], type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
  }
  H5Sclose(space);
  if (vocab) hy_h5_write_int_attr(f, "vocab", 256);
  if (tokenizer) hy_h5_write_string_attr(f, "tokenizer", "bytes");
  H5Fclose(f);
  return path;
}

static void expect_open_error(const char *path, const char *want) {
  hy_dataset ds;
  hy_error err;
  cr_assert_neq(hy_dataset_open(path, &ds, &err), 0, "%s opened", path);
  cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

Test(dataset, bad_datasets_give_clear_errors) {
  expect_open_error(in_dir("missing.h5"), "missing.h5: no such dataset file");
  const char *junk = in_dir("junk.h5");
  FILE *f = fopen(junk, "w");
  fputs("not hdf5 at all", f);
  fclose(f);
  expect_open_error(junk, "junk.h5: not an HDF5 file");
  expect_open_error(bad_file("noval.h5", H5T_STD_U8LE, 4, false, true, true),
                    "noval.h5: no dataset /val");
  expect_open_error(bad_file("float.h5", H5T_IEEE_F32LE, 4, true, true, true),
                    "float.h5: /train has non-integer 4-byte elements, expected uint8 or uint16");
  expect_open_error(bad_file("signed.h5", H5T_STD_I32LE, 4, true, true, true),
                    "/train has integer 4-byte elements, expected uint8 or uint16");
  expect_open_error(bad_file("big.h5", H5T_STD_U16LE, 300, true, true, true),
                    "big.h5: /train: token 300 at index 2 >= vocab 256");
  expect_open_error(bad_file("novocab.h5", H5T_STD_U8LE, 4, true, false, true),
                    "novocab.h5: missing attribute 'vocab'");
  expect_open_error(bad_file("notok.h5", H5T_STD_U8LE, 4, true, true, false),
                    "notok.h5: missing attribute 'tokenizer'");
  /* truncated: the first half of a good file */
  uint16_t t[64] = {0};
  hy_error err;
  const char *good = in_dir("good.h5");
  cr_assert_eq(hy_dataset_write(good, t, 64, t, 64, 256, "bytes", &err), 0);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "head -c 1000 %s > %s", good, in_dir("cut.h5"));
  cr_assert_eq(system(cmd), 0);
  expect_open_error(in_dir("cut.h5"), "cut.h5:");
}

Test(dataset, unknown_names_are_errors) {
  char path[512];
  hy_error err;
  cr_assert_neq(hy_dataset_resolve("tinystories", path, sizeof path, &err), 0);
  cr_assert(strstr(err.msg, "dataset 'tinystories' is neither a file nor a built-in dataset "
                            "(shakespeare)"),
            "%s", err.msg);
}

Test(dataset, the_shipped_corpus_prepares_on_first_use) {
  setenv("HYLA_DATA_DIR", in_dir("cache"), 1);
  char path[512];
  hy_error err;
  cr_assert_eq(hy_dataset_resolve("shakespeare", path, sizeof path, &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.vocab, 256);
  cr_assert_eq(ds.n_train + ds.n_val, 5057239); /* data/corpus/README.md */
  cr_assert_eq(ds.n_val, (int64_t)(5057239 * 0.05));
  cr_assert(ds.train[0] == 'A' && ds.train[1] == 'L' && ds.train[2] == 'L'); /* ALL'S WELL */
  hy_dataset_close(&ds);
  /* the second time, the prepared file is reused */
  char again[512];
  cr_assert_eq(hy_dataset_resolve("shakespeare", again, sizeof again, &err), 0);
  cr_assert_str_eq(path, again);
  unsetenv("HYLA_DATA_DIR");
}

/* ---- MQAR ---- */

static hy_mqar_config mqar_config(void) {
  return (hy_mqar_config){.vocab = 64, .seq_len = 64, .pairs = 8, .power_a = 0.01};
}

Test(mqar, every_answer_is_in_the_context) {
  hy_mqar_config c = mqar_config();
  int32_t in[64], tg[64];
  for (int64_t e = 0; e < 200; e++) {
    hy_mqar_example(&c, 7, 0, e, in, tg);
    int labelled = 0;
    for (int i = 0; i < 8; i++) { /* keys in [1, V/2), values in [V/2, V), each distinct */
      cr_assert(in[2 * i] >= 1 && in[2 * i] < 32 && in[2 * i + 1] >= 32 && in[2 * i + 1] < 64);
      for (int j = 0; j < i; j++)
        cr_assert(in[2 * i] != in[2 * j] && in[2 * i + 1] != in[2 * j + 1]);
      cr_assert_eq(tg[2 * i], HY_MQAR_IGNORE);
      cr_assert_eq(tg[2 * i + 1], HY_MQAR_IGNORE);
    }
    for (int t = 16; t < 64; t++) {
      cr_assert(in[t] >= 0 && in[t] < 64);
      if (tg[t] == HY_MQAR_IGNORE) continue;
      labelled++;
      cr_assert_eq(t % 2, 0, "queries sit on even slots");
      int i = 0;
      while (i < 8 && in[2 * i] != in[t]) i++;
      cr_assert(i < 8, "query %d at %d is not a key of the context", in[t], t);
      cr_assert_eq(tg[t], in[2 * i + 1], "the answer is the key's value");
    }
    cr_assert_eq(labelled, 8, "each key is asked once");
  }
}

Test(mqar, same_seed_same_data_in_any_order) {
  hy_mqar_config c = mqar_config();
  int32_t a[64], b[64], ta[64], tb[64];
  hy_mqar_example(&c, 3, 0, 41, a, ta);
  hy_mqar_example(&c, 3, 0, 5, b, tb); /* another example in between */
  hy_mqar_example(&c, 3, 0, 41, b, tb);
  cr_assert_arr_eq(a, b, sizeof a);
  cr_assert_arr_eq(ta, tb, sizeof ta);
  hy_mqar_example(&c, 4, 0, 41, b, tb);
  cr_assert(memcmp(a, b, sizeof a) != 0, "another seed gives other data");
  hy_mqar_example(&c, 3, 1, 41, b, tb);
  cr_assert(memcmp(a, b, sizeof a) != 0, "the validation split is not the training split");
}

/* With a = 0.01 the queries crowd near the start of the region: over many examples, the first
 * quarter of the slots holds far more queries than the last quarter. */
Test(mqar, queries_follow_the_power_law) {
  hy_mqar_config c = {.vocab = 512, .seq_len = 256, .pairs = 8, .power_a = 0.01};
  int32_t in[256], tg[256];
  int64_t first = 0, last = 0, slots = (256 - 16) / 2;
  for (int64_t e = 0; e < 500; e++) {
    hy_mqar_example(&c, 1, 0, e, in, tg);
    for (int t = 16; t < 256; t++)
      if (tg[t] != HY_MQAR_IGNORE) {
        int64_t g = (t - 16) / 2;
        first += g < slots / 4;
        last += g >= 3 * slots / 4;
      }
  }
  cr_assert(first > 2 * last, "first quarter %lld, last quarter %lld", (long long)first,
            (long long)last);
  cr_assert_null(hy_mqar_check(&c));
  c.pairs = 65;
  cr_assert_not_null(hy_mqar_check(&c));
}

/* ---- loader ---- */

static uint16_t TOKENS[1000];

static hy_loader text_loader(int64_t batch, bool random, int rank, int world) {
  for (int i = 0; i < 1000; i++) TOKENS[i] = (uint16_t)(i % 251);
  return (hy_loader){.tokens = TOKENS,
                     .n_tokens = 1000,
                     .batch = batch,
                     .seq_len = 10,
                     .random = random,
                     .seed = 5,
                     .rank = rank,
                     .world = world};
}

Test(loader, targets_are_the_next_tokens) {
  hy_loader l = text_loader(3, true, 0, 1);
  int32_t in[30], tg[30];
  for (int k = 0; k < 20; k++) {
    hy_loader_next(&l, in, tg);
    for (int r = 0; r < 3; r++)
      for (int t = 0; t < 10; t++) {
        int32_t x = in[r * 10 + t], y = tg[r * 10 + t];
        cr_assert(t == 9 || in[r * 10 + t + 1] == y);
        cr_assert_eq(y, (x + 1) % 251, "%d -> %d", x, y);
      }
  }
}

Test(loader, sequential_windows_cover_the_split_in_order) {
  hy_loader l = text_loader(4, false, 0, 1);
  int32_t in[40], tg[40];
  for (int k = 0; k < 30; k++) {
    hy_loader_next(&l, in, tg);
    for (int r = 0; r < 4; r++) {
      int64_t w = (k * 4 + r) % (999 / 10); /* 99 windows, then around again */
      cr_assert_eq(in[r * 10], TOKENS[w * 10], "batch %d row %d", k, r);
    }
  }
}

Test(loader, restoring_the_state_replays_the_same_batches) {
  for (int random = 0; random < 2; random++) {
    hy_loader l = text_loader(4, random, 0, 1);
    int32_t in[40], tg[40], a[5][40], b[5][40];
    for (int k = 0; k < 3; k++) hy_loader_next(&l, in, tg);
    hy_loader_state saved = l.state;
    for (int k = 0; k < 5; k++) hy_loader_next(&l, a[k], tg);
    hy_loader fresh = text_loader(4, random, 0, 1);
    fresh.state = saved;
    for (int k = 0; k < 5; k++) hy_loader_next(&fresh, b[k], tg);
    cr_assert_arr_eq(a, b, sizeof a);
  }
}

/* Two data-parallel ranks with batch B see together what one loader with batch 2B sees. */
Test(loader, data_parallel_ranks_split_one_global_batch) {
  for (int random = 0; random < 2; random++) {
    hy_loader one = text_loader(6, random, 0, 1), r0 = text_loader(3, random, 0, 2),
              r1 = text_loader(3, random, 1, 2);
    for (int k = 0; k < 10; k++) {
      int32_t all[60], t60[60], half0[30], half1[30], t30[30];
      hy_loader_next(&one, all, t60);
      hy_loader_next(&r0, half0, t30);
      hy_loader_next(&r1, half1, t30);
      cr_assert_arr_eq(all, half0, sizeof half0);
      cr_assert_arr_eq(all + 30, half1, sizeof half1);
    }
  }
}

Test(loader, mqar_batches) {
  hy_loader l = {.mqar = mqar_config(),
                 .n_examples = 10,
                 .batch = 2,
                 .seq_len = 64,
                 .random = false,
                 .seed = 3,
                 .world = 1};
  int32_t in[128], tg[128], ex[64], et[64];
  for (int k = 0; k < 7; k++) {
    hy_loader_next(&l, in, tg);
    for (int r = 0; r < 2; r++) {
      hy_mqar_example(&l.mqar, 3, 0, (k * 2 + r) % 10, ex, et);
      cr_assert_arr_eq(in + r * 64, ex, sizeof ex);
      cr_assert_arr_eq(tg + r * 64, et, sizeof et);
    }
  }
}
