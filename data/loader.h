/* Batches for training and evaluation: windows of a token split, or MQAR examples. A batch is
 * inputs and targets, each [B, T] (targets: the next token for text; the answers, with
 * HY_MQAR_IGNORE elsewhere, for MQAR).
 *
 * Data parallel: every rank walks the same global sequence of batches of world * B rows and takes
 * rows rank * B .. rank * B + B - 1, so world ranks see together exactly what one process with
 * batch world * B sees. The position is two integers (hy_loader_state), saved in checkpoints. */
#ifndef HYLA_LOADER_H
#define HYLA_LOADER_H

#include "data/mqar.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  uint64_t draws; /* random numbers drawn so far (random windows and examples) */
  int64_t cursor; /* the next window or example (sequential) */
} hy_loader_state;

typedef struct {
  /* where the tokens come from: a split of a token dataset... */
  const uint16_t *tokens;
  int64_t n_tokens;
  /* ...or the MQAR generator (when mqar.seq_len > 0) */
  hy_mqar_config mqar;
  int64_t n_examples;
  int split;
  /* how batches are drawn */
  int64_t batch, seq_len;
  bool random; /* random windows / examples, or one after the other */
  uint64_t seed;
  int rank, world;
  hy_loader_state state;
} hy_loader;

/* inputs and targets: batch * seq_len each, row-major. */
void hy_loader_next(hy_loader *l, int32_t *inputs, int32_t *targets);

#endif
