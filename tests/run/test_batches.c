/* A run's batches: a saved loader position restores only where a run can be (a damaged
 * checkpoint's position must not index outside the split); packed documents from a dataset's
 * document starts, restored to the same batches. */
#include "data/dataset.h"
#include "recipes/recipe.h"
#include "run/batches.h"
#include "tensor/arena.h"
#include "tests/support.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static char data[512], docs[512];

static void init(void) {
  t_temp_init();
  snprintf(data, sizeof data, "%s", t_in_temp("data.h5"));
  hy_token tokens[64];
  for (int i = 0; i < 64; i++) tokens[i] = (hy_token)i;
  hy_error err;
  cr_assert_eq(hy_dataset_write(data, tokens, 48, tokens + 48, 16, 64, "bytes", &err), 0, "%s",
               err.msg);
  snprintf(docs, sizeof docs, "%s", t_in_temp("docs.h5"));
  int64_t train_docs[] = {0, 5, 6, 20}, val_docs[] = {0, 3};
  hy_split_tokens train = {tokens, 48, train_docs, 4}, val = {tokens + 48, 16, val_docs, 2};
  cr_assert_eq(hy_dataset_write_splits(docs, &train, &val, 64, NULL, "bytes", true, &err), 0, "%s",
               err.msg);
}

TestSuite(batches, .init = init, .fini = t_temp_fini);

/* Batches of 2 x 8 from `path`, one after the other or at random, as one stream or packed. */
static hy_batches *open_batches(const char *path, const char *sampling, bool documents,
                                hy_data_split split) {
  char set[400], sampled[64];
  snprintf(set, sizeof set, "data.dataset=\"%s\"", path);
  snprintf(sampled, sizeof sampled, "data.sampling=\"%s\"", sampling);
  const char *sets[] = {set, sampled, "train.batch=2", "train.seq_len=8"};
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_parse("", "test", 4, sets, &r, &err), 0, "%s", err.msg);
  /* past the recipe's check, which refuses documents for layers that do not keep them apart:
   * batches need no model */
  if (documents) r.data.packing = HY_RECIPE_DOCUMENTS;
  hy_batches *b = hy_batches_open(&r, split, 0, 1, &err);
  cr_assert(b, "%s", err.msg);
  return b;
}

static hy_batches *sequential(void) {
  return open_batches(data, "sequential", false, HY_SPLIT_TRAIN);
}

Test(batches, a_saved_position_restores) {
  hy_batches *b = sequential(), *c = sequential();
  hy_tensor *x, *y, *x2, *y2, *p;
  for (int i = 0; i < 3; i++) hy_batches_next(b, &x, &y, &p);
  int64_t state[2];
  hy_error err;
  cr_assert_eq(hy_batches_restore(c, state, hy_batches_save(b, state), &err), 0, "%s", err.msg);
  hy_batches_next(b, &x, &y, &p);
  hy_batches_next(c, &x2, &y2, &p);
  cr_assert_arr_eq(x->data, x2->data, 16 * sizeof(int32_t));
  hy_arena_reset();
  hy_batches_close(b);
  hy_batches_close(c);
}

Test(batches, a_position_no_run_reaches_is_refused) {
  hy_batches *b = sequential();
  hy_error err;
  int64_t negative[2] = {0, -1000000}, huge[2] = {0, INT64_MAX}, one[1] = {0};
  cr_assert_neq(hy_batches_restore(b, negative, 2, &err), 0);
  cr_assert(strstr(err.msg, "loader_state has position -1000000"), "%s", err.msg);
  cr_assert_neq(hy_batches_restore(b, huge, 2, &err), 0);
  cr_assert_neq(hy_batches_restore(b, one, 1, &err), 0);
  cr_assert(strstr(err.msg, "has 1 values, this loader needs 2"), "%s", err.msg);
  hy_batches_close(b);
}

Test(batches, packed_documents_carry_positions_and_restore) {
  hy_tensor *x, *y, *p, *x2, *y2, *p2;
  for (int random = 0; random < 2; random++) {
    const char *sampling = random ? "random" : "sequential";
    hy_batches *stream = open_batches(docs, sampling, false, HY_SPLIT_TRAIN);
    hy_batches_next(stream, &x, &y, &p);
    cr_assert_null(p, "one stream has no positions");
    hy_batches *b = open_batches(docs, sampling, true, HY_SPLIT_TRAIN);
    hy_batches_next(b, &x2, &y2, &p2);
    cr_assert(p2 && p2->dtype == HY_I32 && p2->shape[0] == 2 && p2->shape[1] == 8);
    cr_assert_arr_eq(x->data, x2->data, 16 * sizeof(int32_t), "the stream's rows");
    if (!random) { /* rows 0 .. 7 and 8 .. 15: starts at 5 and 6 */
      int32_t want[16] = {0, 1, 2, 3, 4, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7};
      cr_assert_arr_eq(p2->data, want, sizeof want);
      cr_assert_eq(((int32_t *)y2->data)[4], HY_IGNORE_INDEX);
      cr_assert_eq(((int32_t *)y2->data)[5], HY_IGNORE_INDEX, "a document of one token");
      cr_assert_eq(((int32_t *)y2->data)[6], 7);
    }
    /* a checkpoint's position gives the same batches, positions too */
    hy_batches *c = open_batches(docs, sampling, true, HY_SPLIT_TRAIN);
    int64_t state[HY_CKPT_STATE_MAX];
    hy_error err;
    cr_assert_eq(hy_batches_restore(c, state, hy_batches_save(b, state), &err), 0, "%s", err.msg);
    hy_batches_next(b, &x, &y, &p);
    hy_batches_next(c, &x2, &y2, &p2);
    cr_assert_arr_eq(x->data, x2->data, 16 * sizeof(int32_t));
    cr_assert_arr_eq(y->data, y2->data, 16 * sizeof(int32_t));
    cr_assert_arr_eq(p->data, p2->data, 16 * sizeof(int32_t));
    hy_arena_reset();
    hy_batches_close(stream);
    hy_batches_close(b);
    hy_batches_close(c);
  }
  /* the validation split's own starts; a dataset without any is one document a split */
  hy_batches *val = open_batches(docs, "sequential", true, HY_SPLIT_VAL);
  hy_batches_next(val, &x, &y, &p);
  cr_assert_eq(((int32_t *)p->data)[3], 0, "/val_docs: a document begins at 3");
  hy_batches_close(val);
  hy_batches *plain = open_batches(data, "sequential", true, HY_SPLIT_TRAIN);
  hy_batches_next(plain, &x, &y, &p);
  for (int i = 0; i < 16; i++) cr_assert_eq(((int32_t *)p->data)[i], i % 8);
  hy_arena_reset();
  hy_batches_close(plain);
}
