/* Evaluation: mean loss over the labelled positions of some batches and, for MQAR, how many of
 * them the model predicts exactly (argmax): its accuracy. */
#ifndef HYLA_EVALUATE_H
#define HYLA_EVALUATE_H

#include "layers/model.h"
#include "dist/dist.h"
#include "run/batches.h"

typedef struct {
  double loss;    /* mean cross-entropy per labelled position (nats) */
  double acc;     /* MQAR: fraction of labelled positions whose argmax is the target; else 0 */
  int64_t tokens; /* labelled positions seen */
  int64_t
      bytes; /* the bytes of text their targets stand for; 0: unknown (hy_batches_token_bytes) */
  int64_t batches; /* batches evaluated: fewer than asked when a stop was asked (util/stop.h) */
} hy_eval_result;

/* Runs in no-grad mode and leaves the step arena as it found it. With d (may be NULL), each rank
 * evaluates its share (its dp shard, its sp slice) and the results are summed over every rank.
 * A stop asked on any rank ends it after the batch in progress, on every rank; the result is then
 * that of the batches done. */
hy_eval_result hy_evaluate(hy_model *m, hy_batches *b, int64_t batches, const hy_dist *d);

/* The loss in bits per byte of text: the targets' nats over ln 2 and their bytes (with the byte
 * tokenizer, the loss in bits); NAN when their bytes are unknown. */
double hy_eval_bits_per_byte(const hy_eval_result *e);

/* The model configuration `hyla eval` builds from a trained one: softplus layers use eval_power in
 * place of power (LSSAR's re-weighting, no retraining). Lengths stay the training ones (softplus
 * train_len, the sigmoid bias's n), so evaluating longer sequences rescales as trained. */
hy_model_config hy_eval_model_config(const hy_model_config *trained);

#endif
