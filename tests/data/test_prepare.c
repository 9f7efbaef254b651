/* hyla data prepare's library side: a text file, a folder of documents and a file cut at a
 * separator into a dataset, byte by byte; where /val begins; the separator's escapes; the errors.
 * The subword path runs the tokenizer script: tests/data/subword.sh. */
#include "data/dataset.h"
#include "data/documents.h"
#include "data/prepare.h"
#include "tests/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

TestSuite(prepare, .init = t_temp_init, .fini = t_temp_fini);

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

static void write_text(const char *path, int n) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < n; i++) fputc('a' + i % 26, f);
  fclose(f);
}

/* hy_data_prepare byte by byte, with a separator of C escapes (NULL: none). */
static int prepare(const char *in, const char *h5, double val_fraction, const char *separator,
                   bool force, hy_error *err) {
  char sep[64];
  hy_prepare_options o = {.val_fraction = val_fraction, .force = force};
  if (separator) {
    cr_assert_eq(hy_unescape(separator, sep, &o.separator_len, err), 0, "%s", err->msg);
    o.separator = sep;
  }
  return hy_data_prepare(in, h5, &o, err);
}

/* The dataset's split as text: its tokens are bytes. */
static void expect_split(const hy_token *t, int64_t n, const char *want, const char *name) {
  cr_assert_eq(n, (int64_t)strlen(want), "%s: %lld tokens, '%s' expected", name, (long long)n,
               want);
  for (int64_t i = 0; i < n; i++)
    cr_assert_eq(t[i], (unsigned char)want[i], "%s[%lld]", name, (long long)i);
}

static void expect_docs(const int64_t *docs, int64_t n, const int64_t *want, int64_t n_want,
                        const char *name) {
  cr_assert_eq(n, n_want, "%s: %lld document starts, %lld expected", name, (long long)n,
               (long long)n_want);
  for (int64_t i = 0; i < n; i++) cr_assert_eq(docs[i], want[i], "%s[%lld]", name, (long long)i);
}

/* What a prepared dataset of bytes holds: each split's text and document starts. */
typedef struct {
  const char *train, *val;
  const int64_t *train_docs, *val_docs;
  int64_t n_train_docs, n_val_docs;
} prepared;

static void expect_prepared(const char *h5, prepared want) {
  hy_dataset ds;
  hy_error err;
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  expect_split(ds.train, ds.n_train, want.train, "/train");
  expect_split(ds.val, ds.n_val, want.val, "/val");
  expect_docs(ds.train_docs, ds.n_train_docs, want.train_docs, want.n_train_docs, "/train_docs");
  expect_docs(ds.val_docs, ds.n_val_docs, want.val_docs, want.n_val_docs, "/val_docs");
  hy_dataset_close(&ds);
}

/* ---- one text ---- */

Test(prepare, a_text_file_is_one_document_cut_at_the_token) {
  const char *txt = t_in_temp("a.txt"), *h5 = t_in_temp("a.h5");
  write_text(txt, 100);
  hy_error err;
  cr_assert_eq(prepare(txt, h5, 0.2, NULL, false, &err), 0, "%s", err.msg);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 80);
  cr_assert_eq(ds.n_val, 20);
  cr_assert_eq(ds.vocab, 256);
  cr_assert_str_eq(ds.tokenizer, "bytes");
  for (int i = 0; i < 80; i++) cr_assert_eq(ds.train[i], 'a' + i % 26);
  for (int i = 0; i < 20; i++) cr_assert_eq(ds.val[i], 'a' + (80 + i) % 26, "the last 20%");
  cr_assert_null(ds.train_docs, "one text records no documents");
  cr_assert_null(ds.val_docs);
  hy_dataset_close(&ds);
  /* 0.1 of 1000 bytes; every byte value survives */
  FILE *f = fopen(txt, "wb");
  for (int i = 0; i < 1000; i++) fputc(255 - i % 256, f);
  fclose(f);
  cr_assert_eq(prepare(txt, h5, 0.1, NULL, true, &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train, 900);
  cr_assert_eq(ds.n_val, 100);
  cr_assert_eq(ds.train[0], 255);
  cr_assert_eq(ds.val[99], 255 - 999 % 256);
  hy_dataset_close(&ds);
}

Test(prepare, errors) {
  const char *txt = t_in_temp("a.txt"), *h5 = t_in_temp("a.h5");
  write_text(txt, 100);
  hy_error err;
  double bad[] = {0, -0.1, 0.51, 0.7, 1};
  for (int i = 0; i < 5; i++) {
    cr_assert_neq(prepare(txt, h5, bad[i], NULL, false, &err), 0);
    cr_assert(strstr(err.msg, "expected a number in (0, 0.5]"), "%s", err.msg);
  }
  cr_assert_eq(prepare(txt, h5, 0.5, NULL, false, &err), 0, "%s", err.msg);
  cr_assert_neq(prepare(txt, h5, 0.5, NULL, false, &err), 0);
  cr_assert(strstr(err.msg, "a.h5 exists; pass --force to replace it"), "%s", err.msg);
  cr_assert_neq(prepare(t_in_temp("nope.txt"), h5, 0.1, NULL, true, &err), 0);
  cr_assert(strstr(err.msg, "nope.txt: cannot open"), "%s", err.msg);
  write_text(txt, 10); /* 10% of 10 bytes is one token: no input-target pair */
  cr_assert_neq(prepare(txt, t_in_temp("b.h5"), 0.1, NULL, false, &err), 0);
  cr_assert(strstr(err.msg, "10 bytes of text are too few"), "%s", err.msg);
  cr_assert_eq(access(t_in_temp("b.h5"), F_OK), -1);
  /* documents too short to leave two tokens on either side of a start */
  write_file(txt, "a|bcdef|g");
  cr_assert_neq(prepare(txt, t_in_temp("b.h5"), 0.1, "|", false, &err), 0);
  cr_assert(strstr(err.msg, "none of its 3 documents starts where /train and /val would each"),
            "%s", err.msg);
  write_file(txt, "|||");
  cr_assert_neq(prepare(txt, t_in_temp("b.h5"), 0.1, "|", false, &err), 0);
  cr_assert(strstr(err.msg, "0 bytes of text are too few"), "%s", err.msg);
}

/* ---- many documents ---- */

/* Cut at the separator, which is dropped (empty documents too); /val begins at the document start
 * nearest the last val_fraction of the tokens, and each split's starts count from its own 0. */
Test(prepare, a_file_cut_at_a_separator) {
  const char *txt = t_in_temp("s.txt"), *h5 = t_in_temp("s.h5");
  /* documents of 10, 3, 1, 6 and 4 bytes: 24 tokens */
  write_file(txt, "0123456789\n\n\nabc\n\n\n\n\n\nZ\n\n\nqwerty\n\n\nlast\n\n\n");
  hy_error err;
  cr_assert_eq(prepare(txt, h5, 0.25, "\\n\\n\\n", false, &err), 0, "%s", err.msg);
  /* the cut at 24 - 6 = 18 tokens: the starts are 0, 10, 13, 14 and 20, and 20 is nearest */
  expect_prepared(h5, (prepared){"0123456789abcZqwerty", "last", (int64_t[]){0, 10, 13, 14},
                                 (int64_t[]){0}, 4, 1});
  /* a larger share: the cut at 24 - 12 = 12 tokens, nearest 13 */
  cr_assert_eq(prepare(txt, h5, 0.5, "\\n\\n\\n", true, &err), 0, "%s", err.msg);
  expect_prepared(h5, (prepared){"0123456789abc", "Zqwertylast", (int64_t[]){0, 10},
                                 (int64_t[]){0, 1, 7}, 2, 3});
  hy_dataset ds;
  /* a separator that never occurs: one document, recorded, cut at the token */
  cr_assert_eq(prepare(txt, h5, 0.25, "\\x00", true, &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_val, 10);
  expect_docs(ds.train_docs, ds.n_train_docs, (int64_t[]){0}, 1, "/train_docs");
  expect_docs(ds.val_docs, ds.n_val_docs, (int64_t[]){0}, 1, "/val_docs");
  hy_dataset_close(&ds);
}

static void write_gz(const char *path, const char *text) {
  gzFile f = gzopen(path, "wb");
  cr_assert(f);
  gzputs(f, text);
  gzclose(f);
}

/* A folder's files are its documents, in the byte order of their names; a .gz file is
 * decompressed; empty files, subfolders and names starting with '.' are left out. */
Test(prepare, a_folder_of_documents) {
  const char *docs = t_in_temp("docs"), *h5 = t_in_temp("f.h5");
  cr_assert_eq(mkdir(docs, 0755), 0);
  char path[400];
  const char *files[][2] = {{"b.txt", "second"}, {"a.txt", "first"}, {"B.txt", "zeroth"},
                            {"e.txt", ""},       {".x", "hidden"},   {"f.txt", "last one"}};
  for (int i = 0; i < 6; i++) {
    snprintf(path, sizeof path, "%s/%s", docs, files[i][0]);
    write_file(path, files[i][1]);
  }
  snprintf(path, sizeof path, "%s/c.txt.gz", docs);
  write_gz(path, "third, gzipped");
  snprintf(path, sizeof path, "%s/sub", docs);
  cr_assert_eq(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/sub/z.txt", docs);
  write_file(path, "in a subfolder");
  hy_error err;
  cr_assert_eq(prepare(docs, h5, 0.2, NULL, false, &err), 0, "%s", err.msg);
  /* 6 + 5 + 6 + 14 + 8 = 39 tokens, the cut at 39 - 7 = 32: the start 31 is nearest */
  expect_prepared(h5, (prepared){"zerothfirstsecondthird, gzipped", "last one",
                                 (int64_t[]){0, 6, 11, 17}, (int64_t[]){0}, 4, 1});
  hy_dataset ds;
  /* with a separator, each file is cut too */
  cr_assert_eq(prepare(docs, h5, 0.2, " ", true, &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_open(h5, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train_docs + ds.n_val_docs, 7, "third, | gzipped and last | one");
  hy_dataset_close(&ds);
  /* the output inside the folder is never read as a document */
  snprintf(path, sizeof path, "%s/out.h5", docs);
  cr_assert_eq(prepare(docs, path, 0.2, NULL, false, &err), 0, "%s", err.msg);
  cr_assert_neq(prepare(docs, path, 0.2, NULL, true, &err), 0);
  cr_assert(strstr(err.msg, "out.h5 is the output"), "%s", err.msg);
  /* a folder without files */
  const char *none = t_in_temp("none");
  cr_assert_eq(mkdir(none, 0755), 0);
  cr_assert_neq(prepare(none, t_in_temp("n.h5"), 0.2, NULL, false, &err), 0);
  cr_assert(strstr(err.msg, "none: a folder without files: no documents"), "%s", err.msg);
}

/* The documents of a text as hy_documents_read gives them. */
Test(prepare, documents_read) {
  const char *txt = t_in_temp("d.txt");
  write_file(txt, "--a----bb--");
  hy_documents d;
  hy_error err;
  cr_assert_eq(hy_documents_read(txt, "--", 2, NULL, &d, &err), 0, "%s", err.msg);
  cr_assert_eq(d.n, 3);
  cr_assert_eq(memcmp(d.text, "abb", 3), 0);
  cr_assert_eq(d.n_docs, 2);
  cr_assert(d.starts[0] == 0 && d.starts[1] == 1);
  hy_documents_free(&d);
  cr_assert_eq(hy_documents_read(txt, NULL, 0, NULL, &d, &err), 0, "%s", err.msg);
  cr_assert(d.n == 11 && d.n_docs == 1 && d.starts[0] == 0);
  hy_documents_free(&d);
  /* a separator longer than the text, and one that overlaps itself */
  cr_assert_eq(hy_documents_read(txt, "-------------", 13, NULL, &d, &err), 0, "%s", err.msg);
  cr_assert_eq(d.n_docs, 1);
  hy_documents_free(&d);
  cr_assert_eq(hy_documents_read(txt, "---", 3, NULL, &d, &err), 0, "%s", err.msg);
  cr_assert(d.n == 8 && d.n_docs == 2 && d.starts[1] == 3, "--a, then -bb--: cut once");
  hy_documents_free(&d);
}

Test(prepare, separators_take_c_escapes) {
  struct {
    const char *text, *want;
    size_t n;
  } good[] = {{"\\n\\n\\n", "\n\n\n", 3},
              {"<|endoftext|>", "<|endoftext|>", 13},
              {"\\t\\r\\\\\\\"\\'\\?", "\t\r\\\"'?", 6},
              {"a\\0b", "a\0b", 3},
              {"\\x0a\\x41B\\101",
               "\nAB"
               "A",
               4},
              {"\\a\\b\\f\\v", "\a\b\f\v", 4}};
  char out[64];
  size_t n;
  hy_error err;
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    cr_assert_eq(hy_unescape(good[i].text, out, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, good[i].n, "'%s'", good[i].text);
    cr_assert_eq(memcmp(out, good[i].want, n), 0, "'%s'", good[i].text);
  }
  struct {
    const char *text, *want;
  } bad[] = {{"", "'': an empty separator"},
             {"\\q", "'\\q': unknown escape \\q"},
             {"ab\\", "'ab\\': unknown escape \\;"},
             {"\\xg", "unknown escape \\x"},
             {"\\777", "'\\777': \\777 is above \\377, not a byte"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cr_assert_neq(hy_unescape(bad[i].text, out, &n, &err), 0, "'%s' taken", bad[i].text);
    cr_assert(strstr(err.msg, bad[i].want), "'%s' lacks '%s'", err.msg, bad[i].want);
  }
}
