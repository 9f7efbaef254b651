/* hyla export: a model as flash-linear-attention's (fla's) Hugging Face classes load it, into a
 * directory: model.safetensors (the parameters under fla's names, f32) and config.json (the fla
 * model class and its settings), and on request hyla's own logits on fixed tokens
 * (hyla-logits.safetensors) to check the export against. docs/export.md gives the mapping,
 * parameter by parameter. Models of softmax attention ("attn") become fla's Transformer; of gla
 * (or linear) layers, with softmax attention at some layers or none, fla's GLA (or
 * LinearAttention) model with those layers in its `attn` list. Any other mixer, a mix of gla and
 * linear, or an option fla's class has no setting for is refused, naming the mixer and the option.
 */
#ifndef HYLA_EXPORT_H
#define HYLA_EXPORT_H

#include "layers/model.h"
#include "util/error.h"

/* The logits file's name and the tokens it is computed on: two sequences of pseudo-random token
 * ids in [0, vocab), from this seed. */
#define HY_EXPORT_LOGITS "hyla-logits.safetensors"
enum { HY_EXPORT_LOGITS_BATCH = 2, HY_EXPORT_LOGITS_SEED = 19 };

typedef struct {
  bool force;            /* write into a directory that holds files (same names replaced) */
  int64_t logits_tokens; /* > 0: also write HY_EXPORT_LOGITS over sequences of this length */
  int64_t max_positions; /* config.json's max_position_embeddings: the training length */
} hy_export_options;

/* 0 when fla has a counterpart of cfg's every layer and option; else -1 with err naming the
 * layer, the mixer and the recipe key. */
int hy_export_check(const hy_model_config *cfg, hy_error *err);

/* Writes the files into dir (created if missing). A dir that holds files is refused unless
 * o->force. The model's parameters are on the CPU. Nothing is written when hy_export_check
 * fails. */
int hy_export(hy_model *m, const char *dir, const hy_export_options *o, hy_error *err);

#endif
