/* Batches for training and evaluation: windows of a token split, or MQAR examples. A batch is
 * inputs and targets, each [B, T] (targets: the next token for text; the answers, with
 * HY_LOADER_IGNORE elsewhere, for MQAR).
 *
 * Packed documents (`documents`): the same rows, and with them each token's position in its
 * document, [B, T]: 0 at a row's first token and at each document start inside the row, one more
 * than the token before otherwise (a row that starts inside a document counts from its start, as
 * the model sees nothing before it). A document's last token in a row, whose next token starts
 * another document, has the target HY_LOADER_IGNORE: nothing is learnt across a boundary. Where a
 * split records no document starts it is one document; an MQAR example is one document
 * (positions 0 .. T - 1, its targets as they are).
 *
 * Random mode draws window starts (or example indices) from a counter-based rng; sequential mode
 * takes non-overlapping windows of T tokens one after the other (the last target of a window is
 * the first input of the next), wrapping to the start at the end of the split, or examples 0, 1,
 * 2, ... modulo the number of examples.
 *
 * Data parallel: every rank walks the same global sequence of batches of world * B rows and takes
 * rows rank * B .. rank * B + B - 1, so world ranks see together exactly what one process with
 * batch world * B sees. The position is two integers (hy_loader_state), saved in checkpoints: a
 * loader given back a saved state draws bitwise the batches the original would have drawn. */
#ifndef HYLA_LOADER_H
#define HYLA_LOADER_H

#include "data/mqar.h"
#include "data/vocab.h"
#include "tensor/tensor.h"
#include "util/error.h"

#include <stdbool.h>
#include <stdint.h>

/* The target of a position not learnt from (run/batches.h's HY_IGNORE_INDEX). */
enum { HY_LOADER_IGNORE = HY_MQAR_IGNORE };

typedef struct {
  uint64_t draws; /* random numbers drawn so far (the rng counter; random mode) */
  int64_t cursor; /* global rows served so far: the next window or example (sequential mode) */
} hy_loader_state;

/* Filled in by the caller (designated initializers), then checked with hy_loader_check. */
typedef struct {
  /* where the tokens come from: a split of a token dataset (borrowed, not copied)... */
  const hy_token *tokens;
  int64_t n_tokens;
  const int64_t *docs; /* where its documents start (data/dataset.h); NULL, 0: one document */
  int64_t n_docs;
  /* ...or the MQAR generator (when mqar.seq_len > 0; then mqar.seq_len == seq_len) */
  hy_mqar_config mqar;
  int64_t n_examples;
  int split; /* 0 train, 1 validation: which MQAR examples */
  /* how batches are drawn */
  int64_t batch, seq_len; /* B rows of T tokens per rank */
  bool random;            /* random windows / examples, or one after the other */
  bool documents;         /* packed documents: positions, no target across a boundary */
  uint64_t seed;
  int rank, world;
  hy_loader_state state;
} hy_loader;

/* 0 when the loader can draw batches; else -1 and what is wrong (a split shorter than T + 1
 * tokens, no MQAR examples, a rank outside the world...). */
int hy_loader_check(const hy_loader *l, hy_error *err);

/* The evaluation twin of a training loader: same batch, length, seed, ranks and packing, over the
 * validation split (tokens and document starts for text, n_examples MQAR examples of split 1),
 * sequential from the start. */
hy_loader hy_loader_eval(const hy_loader *train, const hy_token *val_tokens, int64_t n_val_tokens,
                         const int64_t *val_docs, int64_t n_val_docs, int64_t n_val_examples);

/* The next batch into inputs and targets, and with documents into positions (NULL otherwise):
 * batch * seq_len each, row-major. Aborts if hy_loader_check fails (checking is the caller's
 * job). */
void hy_loader_next(hy_loader *l, int32_t *inputs, int32_t *targets, int32_t *positions);

/* The same as step tensors: i32 [B, T] each, from the step arena (hy_empty); *positions NULL
 * without documents. */
void hy_loader_batch(hy_loader *l, hy_tensor **inputs, hy_tensor **targets, hy_tensor **positions);

#endif
