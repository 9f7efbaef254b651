/* A run's batches: a saved loader position restores only where a run can be (a damaged
 * checkpoint's position must not index outside the split). */
#include "data/dataset.h"
#include "recipes/recipe.h"
#include "run/batches.h"
#include "tensor/arena.h"
#include "tests/support.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char dir[256], data[300];

static void init(void) {
  snprintf(dir, sizeof dir, "/tmp/hyla-batches-XXXXXX");
  cr_assert(mkdtemp(dir));
  snprintf(data, sizeof data, "%s/data.h5", dir);
  uint16_t tokens[64];
  for (int i = 0; i < 64; i++) tokens[i] = (uint16_t)i;
  hy_error err;
  cr_assert_eq(hy_dataset_write(data, tokens, 48, tokens + 48, 16, 64, "bytes", &err), 0, "%s",
               err.msg);
}

static void fini(void) {
  unlink(data);
  rmdir(dir);
  hy_arena_release();
  H5close();
}

TestSuite(batches, .init = init, .fini = fini);

static hy_batches *sequential(void) {
  char set[400];
  snprintf(set, sizeof set, "data.dataset=\"%s\"", data);
  const char *sets[] = {set, "data.sampling=\"sequential\"", "train.batch=2", "train.seq_len=8"};
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_parse("", "test", 4, sets, &r, &err), 0, "%s", err.msg);
  hy_batches *b = hy_batches_open(&r, HY_SPLIT_TRAIN, 0, 1, &err);
  cr_assert(b, "%s", err.msg);
  return b;
}

Test(batches, a_saved_position_restores) {
  hy_batches *b = sequential(), *c = sequential();
  hy_tensor *x, *y, *x2, *y2;
  for (int i = 0; i < 3; i++) hy_batches_next(b, &x, &y);
  int64_t state[2];
  hy_error err;
  cr_assert_eq(hy_batches_restore(c, state, hy_batches_save(b, state), &err), 0, "%s", err.msg);
  hy_batches_next(b, &x, &y);
  hy_batches_next(c, &x2, &y2);
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
