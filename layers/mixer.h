/* The mixer interface: what a block's token-mixing layer (softmax, sigmoid and softplus attention,
 * SLA, GLA, lightning and linear attention, RAT, the Titans blocks, the short convolution)
 * provides. Each kind lives in its own file; hy_mixer_find looks one up by the name a recipe
 * uses. */
#ifndef HYLA_MIXER_H
#define HYLA_MIXER_H

#include "tensor/params.h"
#include "tensor/rng.h"

typedef struct hy_model_config hy_model_config;

typedef struct {
  const char *name;
  /* Registers the mixer's parameters under prefix; `layer` is the block index. */
  void *(*create)(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                  hy_rng *rng);
  hy_tensor *(*forward)(void *self, hy_tensor *x); /* [B, T, d] -> [B, T, d], causal */
  void (*destroy)(void *self);
  /* Decoding one token at a time: a state for `batch` sequences of up to max_len tokens (a KV
   * cache for softmax layers, a fixed-size memory for linear ones); step maps x [B, 1, d] at
   * position pos (0, 1, 2, ... in order) to the mixer's output there, as forward would give. */
  void *(*decode_new)(void *self, int64_t batch, int64_t max_len);
  hy_tensor *(*decode_step)(void *self, void *state, hy_tensor *x, int64_t pos);
  void (*decode_free)(void *state);
  /* The forward handles a sequence split over ranks itself (LASP-2, LASP-2H). Kinds without it
   * get every rank's input gathered and run on the whole sequence (hy_mixer_forward). */
  bool sequence_parallel;
} hy_mixer_kind;

const hy_mixer_kind *hy_mixer_find(const char *name); /* NULL when unknown */

/* Whether the kind's forward keeps packed documents apart itself (hy_mixer_positions): no token
 * sees another document's, forward and backward. For a kind without it, hy_mixer_forward runs
 * each document as a sequence of its own. No kind has it yet: layers/mixer.c's list of kinds says
 * it, beside each (not a member of hy_mixer_kind, whose positional initializers in every kind's
 * file would all change). */
bool hy_mixer_documents(const hy_mixer_kind *kind);

/* Packed documents, as the forward in progress runs on them: each token's position in its
 * document (0 where a document starts, at each row's first token too: run/batches.h), i32
 * [B, T_all] on the model's device, for the whole rows of the batch; NULL when the rows are one
 * stream. Under sequence parallelism a rank's tokens are columns offset .. offset + T - 1 of
 * them (hy_sequence_get), and the columns before are the earlier ranks': a boundary anywhere
 * in the row is known to every rank without a word sent; in hy_mixer_forward's gathered form,
 * offset is 0 and the mixer sees all of them. The model sets them for its forward only
 * (hy_model_loss_packed): a mixer that needs them in its backward keeps the tensor, which lives
 * as long as the step. One context rather than an argument of forward: every kind keeps its
 * signature until it honours documents, and they travel as the sequence context does. */
const hy_tensor *hy_mixer_positions(void);
/* The same positions in host memory (where the documents are cut). */
const hy_tensor *hy_mixer_positions_host(void);
void hy_mixer_set_positions(const hy_tensor *positions, const hy_tensor *host);

/* kind->forward, also under sequence parallelism for kinds without their own (hy_sequence_get):
 * those see the whole sequence gathered from every rank and return this rank's rows. With packed
 * documents (hy_mixer_positions) and a kind that does not keep them apart itself, each document
 * runs as a sequence of its own (documents of one length together, as one batch; on the GPU,
 * padded to a few lengths), the whole sequence gathered first under sequence parallelism: exact,
 * at the price of a forward per distinct document length and, under sequence parallelism, of the
 * gather. */
hy_tensor *hy_mixer_forward(const hy_mixer_kind *kind, void *mixer, hy_tensor *x);
/* Whether documents are padded to power-of-two lengths in hy_mixer_forward (layers/mixer.c): -1
 * by device (on the GPU; the default), 0 never, 1 always (tests: both ways on the CPU). */
void hy_mixer_pad_documents(int pad);
const char *hy_mixer_names(void); /* "attn, ..." for error messages */

#endif
