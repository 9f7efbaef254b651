/* The checkpoint reader on any bytes: the input as a checkpoint file, read as a resume reads it
 * (hy_checkpoint_read_meta, hy_checkpoint_load into the small model of tiny.toml and its
 * optimizer, hy_batches_restore of the loader's position, then a batch drawn from there), its
 * recipe parsed as `hyla eval` and `generate` parse it, and its vocabulary read (a subword
 * model's). */
#include "data/dataset.h"
#include "layers/model.h"
#include "run/batches.h"
#include "tensor/arena.h"
#include "tests/fuzz/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

static hy_model *model;
static hy_optimizer opt;
static hy_batches *loaders[2]; /* random and sequential sampling */

/* The model, its optimizer and loaders over a small dataset: made once, loaded into each time. */
static void init(void) {
  hy_error err;
  hy_token tokens[64];
  for (int i = 0; i < 64; i++) tokens[i] = (hy_token)(i * 37 % 256);
  char path[4200], set[4300];
  fuzz_temp_path("data.h5", path, sizeof path);
  if (hy_dataset_write(path, tokens, 48, tokens + 48, 16, 256, "bytes", &err))
    fuzz_fail("the dataset", err.msg);
  snprintf(set, sizeof set, "data.dataset=\"%s\"", path);
  for (int i = 0; i < 2; i++) {
    const char *sets[] = {set, i ? "data.sampling=\"sequential\"" : "data.sampling=\"random\""};
    hy_recipe r;
    if (hy_recipe_parse(fuzz_tiny_text(), fuzz_tiny_path(), 2, sets, &r, &err))
      fuzz_fail("tiny.toml", err.msg);
    if (!(loaders[i] = hy_batches_open(&r, HY_SPLIT_TRAIN, 0, 1, &err)))
      fuzz_fail("the loader", err.msg);
    if (i) continue;
    hy_model_config cfg = hy_recipe_model_config(&r);
    model = hy_model_new(&cfg, 0);
    /* tiny.toml trains with SGD: its checkpoints hold one state tensor per parameter */
    hy_optimizer_init(&opt, &model->params, hy_sgd_config(r.optim.momentum, r.optim.weight_decay));
  }
}

static void resume(const char *path, const hy_ckpt_meta *meta) {
  hy_error err = {{0}};
  if (hy_checkpoint_load(path, &model->params, &opt, &err)) {
    if (!err.msg[0]) fuzz_fail("hy_checkpoint_load failed without a message", NULL);
    return;
  }
  for (int i = 0; i < 2; i++) {
    if (hy_batches_restore(loaders[i], meta->loader, meta->n_loader, &err)) continue;
    hy_tensor *in, *tg, *pos;
    hy_batches_next(loaders[i], &in, &tg, &pos);
    hy_arena_reset();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!model) init();
  const char *path = fuzz_temp_file("ckpt.h5", data, size);
  hy_ckpt_meta meta;
  hy_error err = {{0}};
  if (hy_checkpoint_read_meta(path, &meta, &err)) {
    if (!err.msg[0]) fuzz_fail("hy_checkpoint_read_meta failed without a message", NULL);
    H5close();
    return 0;
  }
  hy_recipe *r = malloc(sizeof *r);
  if (!r) fuzz_fail("out of memory", NULL);
  if (hy_recipe_parse(meta.recipe, path, 0, NULL, r, &err) == 0) fuzz_check_round_trip(r);
  free(r);
  resume(path, &meta);
  hy_vocab vocab;
  hy_error why = {{0}};
  if (hy_checkpoint_read_vocab(path, &vocab, &why) == 0)
    hy_vocab_free(&vocab);
  else if (!why.msg[0])
    fuzz_fail("hy_checkpoint_read_vocab failed without a message", NULL);
  hy_ckpt_meta_free(&meta);
  H5close(); /* each input meets HDF5 afresh, as in a process of its own */
  return 0;
}
