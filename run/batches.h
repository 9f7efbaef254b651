/* Where a run's batches come from: the recipe's dataset (a token file or MQAR), one split, one
 * data-parallel rank's share. Inputs and targets are i32 [B, T] step tensors; targets of ignored
 * positions are HY_IGNORE_INDEX. With data.packing = "documents" each batch also has its tokens'
 * positions in their documents, i32 [B, T] (data/loader.h says how they count), and the last
 * token of each document in a row is not trained to predict the next one. The position in the
 * split is a few integers a checkpoint saves. */
#ifndef HYLA_BATCHES_H
#define HYLA_BATCHES_H

#include "data/vocab.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "tensor/tensor.h"
#include "util/error.h"

enum { HY_IGNORE_INDEX = -100 };

typedef enum { HY_SPLIT_TRAIN, HY_SPLIT_VAL } hy_data_split;

typedef struct hy_batches hy_batches;

/* Train batches follow the recipe's sampling; val batches are sequential from the start. */
hy_batches *hy_batches_open(const hy_recipe *r, hy_data_split split, int rank, int world,
                            hy_error *err);
void hy_batches_close(hy_batches *b);

/* *positions: NULL with data.packing = "stream". */
void hy_batches_next(hy_batches *b, hy_tensor **inputs, hy_tensor **targets, hy_tensor **positions);
int64_t hy_batches_vocab(const hy_batches *b); /* the dataset's vocabulary */
bool hy_batches_is_mqar(const hy_batches *b);
bool hy_batches_is_bytes(const hy_batches *b); /* byte tokenizer: loss per token is per byte */
/* The dataset's vocabulary (each token's bytes); NULL for a dataset without one and MQAR. */
const hy_vocab *hy_batches_table(const hy_batches *b);
/* How many bytes of text token t stands for: 1 with the byte tokenizer, its length in the
 * vocabulary, 0 when unknown (MQAR, a dataset of another tokenizer without a vocabulary). */
int64_t hy_batches_token_bytes(const hy_batches *b, int32_t t);
/* A model of model_vocab tokens (the recipe's [model] vocab) fits the dataset: with a stored
 * vocabulary the two sizes are equal (every token the model samples decodes); without one the
 * model's is at least the dataset's. -1 with err naming the key and both sizes otherwise. */
int hy_batches_check_vocab(const hy_batches *b, const char *dataset, int64_t model_vocab,
                           hy_error *err);

/* The checkpoint at ckpt was trained with this dataset's vocabulary: the same tokens with the
 * same bytes, or neither has one. -1 with err otherwise (evaluating or resuming on a dataset of
 * another tokenizer would count and decode its tokens wrong). */
int hy_batches_check_checkpoint(const hy_batches *b, const char *dataset, const char *ckpt,
                                hy_error *err);

/* Back to the first batch. */
void hy_batches_rewind(hy_batches *b);
/* Position as integers (at most HY_CKPT_STATE_MAX), and back. */
int hy_batches_save(const hy_batches *b, int64_t *state);
int hy_batches_restore(hy_batches *b, const int64_t *state, int n, hy_error *err);

#endif
