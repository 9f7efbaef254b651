/* The sizes a recipe makes, counted from the recipe alone before anything is allocated, each with
 * checked arithmetic (util/checked.h): the parameters exactly as hy_model_new makes them, the
 * memory a training run holds, an estimate of a step's activations, and the tokens a run and an
 * evaluation walk through. Validation (hy_recipe_load) refuses a recipe whose sizes do not fit
 * in 64 bits or whose parameters do not fit in this machine's memory; hy_train also refuses a
 * CPU run whose training memory does not fit. */
#ifndef HYLA_RECIPE_SIZES_H
#define HYLA_RECIPE_SIZES_H

#include "recipes/recipe.h"

/* A product of recipe values, for messages: what it is, the product written out, and the keys it
 * comes from (space-separated "section.key"s, for finding where the recipe sets them). */
typedef struct {
  char what[HY_ERROR_MAX / 2]; /* "the embedding, 50257 (model.vocab) x 768 (model.d_model)" */
  char keys[256];              /* "model.vocab model.d_model" */
} hy_size_term;

typedef struct {
  int64_t params;      /* parameter elements: hy_params_count of the model */
  int64_t param_bytes; /* the parameters in their dtype (f64, or f32) */
  /* What training holds from start to end: the parameters, their gradients, the optimizer's state
   * (AdamW 2 tensors like the parameters, SGD 1) and, in bf16, a bf16 copy of each. */
  int64_t held_bytes;
  /* An estimate of one micro-batch's forward and backward pass (the step arena's peak): measured
   * on the CPU in f32 and within a quarter of it for every mixer kind and form
   * (tests/recipes/test_sizes.c); f64 takes twice as much, and bf16 is counted at 2 bytes an
   * element (its residual stream and statistics stay f32: a lower estimate). */
  int64_t step_bytes;
  /* An estimate of a micro-batch's forward pass alone, without gradients (an evaluation): 2/5 of
   * the step's activations (measured: 0.28 to 0.43 of the step estimate, as no backward needs
   * them kept), and all of what the forward allocates either way (Titans' memory weights at each
   * update); checked on the CPU against the measured peak by tests/recipes/test_sizes.c. */
  int64_t forward_bytes;
  int64_t run_tokens;               /* train.steps x grad_accum x batch x seq_len x dist.dp */
  int64_t eval_tokens;              /* train.eval_batches x batch x seq_len x dist.dp */
  hy_size_term param_top, step_top; /* the largest term of the parameters and of the step */
} hy_recipe_sizes;

/* 0 with the sizes, or -1 with `fault` naming the product that does not fit in 64 bits. Expects
 * a recipe that passed the checks across keys (head counts divide widths...). */
int hy_recipe_sizes_of(const hy_recipe *r, hy_recipe_sizes *s, hy_size_term *fault);

/* The bytes of memory this process may use: the machine's physical memory, or less under a
 * ulimit (RLIMIT_AS, RLIMIT_DATA); 0 when unknown. */
int64_t hy_memory_limit(void);

/* 0 when what must be in memory fits in `memory` bytes (0: unknown, anything fits), else -1 with
 * the message in fault->what and the keys of its largest part in fault->keys. Training: the held
 * bytes and a step (a run on the CPU); else the parameters alone. */
int hy_recipe_sizes_fit(const hy_recipe_sizes *s, bool training, int64_t memory,
                        hy_size_term *fault);

/* The widths a recipe's layers take, computed as the layers compute them from their float
 * settings; false when one is not a 64-bit integer. GLA: its heads and the key and value widths of
 * all heads; Titans' memory: its heads, the width of a head and the hidden width of its MLP. */
bool hy_recipe_gla_widths(const hy_recipe *r, int64_t *heads, int64_t *key, int64_t *value);
bool hy_recipe_titans_widths(const hy_recipe *r, int64_t *heads, int64_t *dim, int64_t *hidden);

/* hy_train's check before it builds anything: a run on the CPU (train.device = "cpu") fits in
 * this process's memory (hy_recipe_sizes_fit, training); -1 with the message in err otherwise. */
int hy_recipe_check_memory(const hy_recipe *r, hy_error *err);

/* hyla eval's check of the recipe it evaluates with (its --seq-len and --batches in place), as
 * the evaluation runs it: one process on the CPU, bf16 computed in f32. hy_recipe_check, then
 * the parameters and a batch's forward pass (forward_bytes) fit in this process's memory. -1 with
 * err otherwise. */
int hy_recipe_check_eval(const hy_recipe *r, hy_error *err);

/* hyla generate's: the parameters and what decoding `positions` positions of one sequence keeps
 * (every layer's decoding state, and the forward pass over the prefix of the layers decoded that
 * way: sigmoid, softplus and sla) fit in this process's memory. -1 with err otherwise. */
int hy_recipe_check_decode(const hy_recipe *r, int64_t positions, hy_error *err);

/* "1.5 GiB", "512 KiB", "12 bytes" */
void hy_format_bytes(int64_t bytes, char *buf, size_t size);

#endif
