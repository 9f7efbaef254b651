/* The dataset loader on any bytes: the input as an HDF5 token file, opened as a run's dataset
 * (hy_batches_open: hy_dataset_open's checks, then the loader's), and the first batches drawn
 * from both splits, as one stream and as packed documents. Every token a batch holds must be
 * below the dataset's vocabulary; with documents, each row's positions start at 0 and count up by
 * one but where a document starts, whose token before is exactly the one not learnt from. */
#include "run/batches.h"
#include "tensor/arena.h"
#include "tests/fuzz/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

static hy_recipe recipe; /* tiny.toml reading its data from the input's file */

static void check_rows(const int32_t *x, const int32_t *y, const int32_t *p, int64_t n, int64_t T,
                       int64_t vocab) {
  for (int64_t i = 0; i < n; i++) {
    bool ignored = p && y[i] == HY_IGNORE_INDEX;
    if (x[i] < 0 || x[i] >= vocab || ((y[i] < 0 || y[i] >= vocab) && !ignored))
      fuzz_fail("a batch holds a token outside the vocabulary", NULL);
    if (!p) continue;
    int64_t t = i % T;
    if (t == 0 ? p[i] != 0 : p[i] != 0 && p[i] != p[i - 1] + 1)
      fuzz_fail("a position is neither 0 nor one more than the one before", NULL);
    if (t + 1 < T && ignored != (p[i + 1] == 0))
      fuzz_fail("a target is ignored where no document starts, or learnt across a start", NULL);
  }
}

static void draw(hy_data_split split, hy_recipe_packing packing) {
  hy_error err = {{0}};
  recipe.data.packing = packing; /* the loader needs no model */
  hy_batches *b = hy_batches_open(&recipe, split, 0, 1, &err);
  if (!b) {
    if (!err.msg[0]) fuzz_fail("hy_batches_open failed without a message", NULL);
    return;
  }
  int64_t vocab = hy_batches_vocab(b);
  for (int k = 0; k < 2; k++) {
    hy_tensor *in, *tg, *pos;
    hy_batches_next(b, &in, &tg, &pos);
    check_rows(in->data, tg->data, pos ? pos->data : NULL, hy_numel(in), in->shape[1], vocab);
    hy_arena_reset();
  }
  hy_batches_close(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_temp_file("data.h5", data, size);
  if (!recipe.train.batch) { /* the path is the same for every input */
    char set[4200];
    snprintf(set, sizeof set, "data.dataset=\"%s\"", path);
    const char *sets[] = {set};
    hy_error err;
    if (hy_recipe_parse(fuzz_tiny_text(), fuzz_tiny_path(), 1, sets, &recipe, &err))
      fuzz_fail("tiny.toml", err.msg);
  }
  for (int documents = 0; documents < 2; documents++) {
    draw(HY_SPLIT_TRAIN, documents ? HY_RECIPE_DOCUMENTS : HY_RECIPE_STREAM);
    draw(HY_SPLIT_VAL, documents ? HY_RECIPE_DOCUMENTS : HY_RECIPE_STREAM);
  }
  H5close(); /* each input meets HDF5 afresh, as in a process of its own */
  return 0;
}
