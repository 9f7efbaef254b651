#include "run/batches.h"
#include "data/builtin.h"
#include "data/dataset.h"
#include "data/loader.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)HY_IGNORE_INDEX == (int)HY_LOADER_IGNORE, "one ignored target");

struct hy_batches {
  hy_dataset ds; /* empty for MQAR */
  hy_loader loader;
  bool mqar;
};

hy_batches *hy_batches_open(const hy_recipe *r, hy_data_split split, int rank, int world,
                            hy_error *err) {
  hy_batches *b = calloc(1, sizeof *b);
  if (!b) {
    hy_fail(err, "out of memory");
    return NULL;
  }
  hy_loader *l = &b->loader;
  *l = (hy_loader){.batch = r->train.batch,
                   .seq_len = r->train.seq_len,
                   .random = split == HY_SPLIT_TRAIN && (r->data.sampling == HY_RECIPE_RANDOM),
                   .documents = (r->data.packing == HY_RECIPE_DOCUMENTS),
                   .seed = (uint64_t)r->run.seed,
                   .rank = rank,
                   .world = world,
                   .split = split == HY_SPLIT_TRAIN ? 0 : 1};
  b->mqar = !strcmp(r->data.dataset, "mqar");
  if (b->mqar) {
    l->mqar = (hy_mqar_config){r->model.vocab, r->train.seq_len, r->data.mqar.pairs,
                               r->data.mqar.power_a};
    l->n_examples =
        split == HY_SPLIT_TRAIN ? r->data.mqar.train_examples : r->data.mqar.val_examples;
    const char *why = hy_mqar_check(&l->mqar);
    if (why) {
      hy_fail(err, "[data.mqar]: %s", why);
      free(b);
      return NULL;
    }
    return b;
  }
  char path[4096];
  if (hy_dataset_resolve(r->data.dataset, path, sizeof path, err) ||
      hy_dataset_open(path, &b->ds, err)) {
    free(b);
    return NULL;
  }
  bool train = split == HY_SPLIT_TRAIN;
  l->tokens = train ? b->ds.train : b->ds.val;
  l->n_tokens = train ? b->ds.n_train : b->ds.n_val;
  l->docs = train ? b->ds.train_docs : b->ds.val_docs;
  l->n_docs = train ? b->ds.n_train_docs : b->ds.n_val_docs;
  if (l->n_tokens < r->train.seq_len + 1) {
    hy_fail(err, "%s: the %s split has %lld tokens, fewer than seq_len + 1 = %lld", path,
            split == HY_SPLIT_TRAIN ? "/train" : "/val", (long long)l->n_tokens,
            (long long)(r->train.seq_len + 1));
    hy_batches_close(b);
    return NULL;
  }
  return b;
}

void hy_batches_close(hy_batches *b) {
  if (!b) return;
  hy_dataset_close(&b->ds);
  free(b);
}

void hy_batches_next(hy_batches *b, hy_tensor **inputs, hy_tensor **targets,
                     hy_tensor **positions) {
  hy_loader_batch(&b->loader, inputs, targets, positions);
}

int64_t hy_batches_vocab(const hy_batches *b) {
  return b->mqar ? b->loader.mqar.vocab : b->ds.vocab;
}

bool hy_batches_is_mqar(const hy_batches *b) { return b->mqar; }

bool hy_batches_is_bytes(const hy_batches *b) {
  return !b->mqar && !strcmp(b->ds.tokenizer, "bytes");
}

const hy_vocab *hy_batches_table(const hy_batches *b) {
  return b->ds.table.n ? &b->ds.table : NULL;
}

int64_t hy_batches_token_bytes(const hy_batches *b, int32_t t) {
  size_t len;
  if (b->ds.table.n) return hy_vocab_token(&b->ds.table, t, &len), (int64_t)len;
  return hy_batches_is_bytes(b) ? 1 : 0;
}

int hy_batches_check_vocab(const hy_batches *b, const char *dataset, int64_t model_vocab,
                           hy_error *err) {
  int64_t have = hy_batches_vocab(b);
  if (b->ds.table.n && model_vocab != have)
    return hy_fail(err,
                   "[model] vocab = %lld, but the dataset %s has a vocabulary of %lld tokens "
                   "(tokenizer '%s'): they must be equal; leave vocab out to follow the dataset",
                   (long long)model_vocab, dataset, (long long)have, b->ds.tokenizer);
  if (model_vocab < have)
    return hy_fail(err,
                   "[model] vocab = %lld, but the dataset %s has a vocabulary of %lld tokens: "
                   "vocab must be at least that; leave it out to follow the dataset",
                   (long long)model_vocab, dataset, (long long)have);
  return 0;
}

int hy_batches_check_checkpoint(const hy_batches *b, const char *dataset, const char *ckpt,
                                hy_error *err) {
  hy_vocab kept;
  if (b->mqar || hy_checkpoint_read_vocab(ckpt, &kept, err)) return b->mqar ? 0 : -1;
  bool same = hy_vocab_equal(&kept, &b->ds.table);
  int64_t n = kept.n;
  hy_vocab_free(&kept);
  if (same) return 0;
  if (!n)
    return hy_fail(err, "%s holds no vocabulary (a byte-level model), but the dataset %s has one",
                   ckpt, dataset);
  return hy_fail(err,
                 "%s was trained with a vocabulary of %lld tokens that the dataset %s does not "
                 "have (%s): its tokens would be counted and decoded wrong",
                 ckpt, (long long)n, dataset,
                 b->ds.table.n ? "it has another" : "it has none: bytes");
}

void hy_batches_rewind(hy_batches *b) { b->loader.state = (hy_loader_state){0, 0}; }

int hy_batches_save(const hy_batches *b, int64_t *state) {
  state[0] = (int64_t)b->loader.state.draws;
  state[1] = b->loader.state.cursor;
  return 2;
}

int hy_batches_restore(hy_batches *b, const int64_t *state, int n, hy_error *err) {
  if (n != 2)
    return hy_fail(err, "the checkpoint's loader_state has %d values, this loader needs 2", n);
  /* A position no run reaches (a damaged checkpoint) would index outside the split. */
  if (state[1] < 0 || state[1] > INT64_MAX / 2)
    return hy_fail(err, "the checkpoint's loader_state has position %lld, expected 0 to 2^62",
                   (long long)state[1]);
  b->loader.state = (hy_loader_state){(uint64_t)state[0], state[1]};
  return 0;
}
