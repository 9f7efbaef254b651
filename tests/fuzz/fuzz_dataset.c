/* The dataset loader on any bytes: the input as an HDF5 token file, opened as a run's dataset
 * (hy_batches_open: hy_dataset_open's checks, then the loader's), and the first batches drawn
 * from both splits. Every token a batch holds must be below the dataset's vocabulary. */
#include "run/batches.h"
#include "tensor/arena.h"
#include "tests/fuzz/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

static hy_recipe recipe; /* tiny.toml reading its data from the input's file */

static void draw(hy_data_split split) {
  hy_error err = {{0}};
  hy_batches *b = hy_batches_open(&recipe, split, 0, 1, &err);
  if (!b) {
    if (!err.msg[0]) fuzz_fail("hy_batches_open failed without a message", NULL);
    return;
  }
  int64_t vocab = hy_batches_vocab(b);
  for (int k = 0; k < 2; k++) {
    hy_tensor *in, *tg;
    hy_batches_next(b, &in, &tg);
    const int32_t *x = in->data, *y = tg->data;
    for (int64_t i = 0; i < hy_numel(in); i++)
      if (x[i] < 0 || x[i] >= vocab || y[i] < 0 || y[i] >= vocab)
        fuzz_fail("a batch holds a token outside the vocabulary", NULL);
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
  draw(HY_SPLIT_TRAIN);
  draw(HY_SPLIT_VAL);
  H5close(); /* each input meets HDF5 afresh, as in a process of its own */
  return 0;
}
