/* The mixer interface: what a block's token-mixing layer (softmax, sigmoid and softplus attention,
 * SLA, GLA, lightning and linear attention, RAT, the Titans blocks) provides. Each kind lives in
 * its own file; hy_mixer_find looks one up by the name a recipe uses. */
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
/* kind->forward, also under sequence parallelism for kinds without their own (hy_sequence_get):
 * those see the whole sequence gathered from every rank and return this rank's rows. */
hy_tensor *hy_mixer_forward(const hy_mixer_kind *kind, void *mixer, hy_tensor *x);
const char *hy_mixer_names(void); /* "attn, ..." for error messages */

#endif
