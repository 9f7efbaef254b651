/* The decoder-only model: embedding -> blocks (pre-norm, residual: h = x + mixer(norm(x)),
 * y = h + mlp(norm(h))) -> RMSNorm -> LM head (tied to the embedding or its own). Each residual
 * add runs fused with the norm after it (hy_add_rmsnorm); the residual stream stays in the
 * parameters' dtype, the layers' inputs and outputs take the activation dtype. */
#ifndef HYLA_MODEL_H
#define HYLA_MODEL_H

#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/mixer.h"
#include "layers/rmsnorm.h"
#include "layers/swiglu.h"

enum { HY_MAX_LAYERS = 64, HY_KIND_NAME_MAX = 24 };

/* Gated linear attention ("gla"), as flash-linear-attention's GLA layer. */
typedef struct {
  int64_t heads;     /* 0: the model's n_heads */
  double expand_k;   /* key width (all heads) over d_model; 0.5 */
  double expand_v;   /* value width over d_model; 1 */
  int64_t gate_rank; /* rank of the forget-gate projection; 16 */
  double gate_norm;  /* log gate = logsigmoid(.) / gate_norm; 16 */
  int64_t chunk;     /* tokens per chunk of the fused op; 64 */
  double norm_eps;   /* of the per-head output RMSNorm; 1e-5 */
  bool recurrent;    /* use the step-by-step reference instead of the fused op (tests) */
} hy_gla_config;

/* Lightning attention ("lightning", TransNormerLLM): linear attention with a constant decay per
 * head, log lambda_h = -(8 / H)(1 - l / L) h in block l of L. */
typedef struct {
  int64_t heads;   /* 0: the model's n_heads */
  int64_t chunk;   /* 64 */
  double norm_eps; /* of the output SRMSNorm; 1e-5 */
  bool recurrent;
} hy_lightning_config;

/* Plain causal linear attention ("linear"): no decay, a feature map on q and k. */
typedef struct {
  int64_t heads;        /* 0: the model's n_heads */
  char feature_map[16]; /* "identity", "elu" (elu + 1) or "relu"; "elu" */
  int64_t chunk;        /* 64 */
  double norm_eps;      /* of the per-head output RMSNorm; 1e-5 */
  bool recurrent;
} hy_linear_attn_config;

/* A short causal convolution gating a projection ("conv"; layers/conv.h). */
typedef struct {
  int64_t kernel; /* K, the tokens each output sees (itself and K - 1 before); 3 */
} hy_conv_config;

/* Sigmoid attention ("sigmoid"): sigmoid(q.k / sqrt(d_h) + b) without normalization. */
typedef struct {
  bool bias_log_n;  /* b = -log(n) with n = seq_len (the training length); else `bias` */
  double bias;      /* used when bias_log_n is false */
  int64_t seq_len;  /* n of the bias rule: the training length (set from the recipe) */
  bool output_norm; /* RMSNorm per head on the output before W_o (stabilizes training) */
  double norm_eps;
  bool naive;
} hy_sigmoid_config;

/* Softplus attention ("softplus"; LSSA / LSSAR): weights softplus(c_t q.k / sqrt(d_h))^p,
 * normalized per row; c_t = log(t + 1) / log(train_len) when length_scale. */
typedef struct {
  bool length_scale; /* the invariance-entropy scale c_t; else c_t = 1 */
  int64_t train_len; /* the training length c_t is relative to (set from the recipe) */
  double power;      /* p while training: 1 is plain LSSA */
  double eval_power; /* p when evaluating (the re-weighting of LSSAR); `hyla eval` uses it */
  bool naive;
} hy_softplus_config;

/* Sparse-linear attention ("sla"): critical key blocks exact, marginal ones linear. */
typedef struct {
  int64_t block;        /* query and key block size; 64 */
  double critical;      /* fraction of the earlier key blocks computed exactly; 0.05 */
  double negligible;    /* fraction of the earlier key blocks skipped; 0.1 */
  char feature_map[16]; /* of the linear branch: "softmax", "elu", "relu" */
  bool naive;
} hy_sla_config;

/* RAT ("rat"): a gated recurrence inside chunks, softmax attention across them (layers/rat.h). */
typedef struct {
  int64_t chunk;    /* L, tokens per chunk; 16 (the paper's experiments; rat_slow.py's own is 64) */
  int64_t n_groups; /* G, q/k groups shared by the heads; 2 */
  int64_t heads;    /* 0: the model's n_heads */
  double rope_theta; /* base of the chunk-level RoPE; 10000 */
  bool naive;        /* use the plain form (layers/rat_reference.h) instead of hy_rat (tests) */
} hy_rat_config;

/* Titans ("titans_mal", "titans_mag", "titans_mac"; layers/titans.h) settings (defaults in
 * brackets, from titans-pytorch unless said). */
typedef struct hy_titans_config {
  int64_t chunk;      /* tokens per memory update (NeuralMemory chunk_size; README 64) [64] */
  int64_t depth;      /* L_M, layers of the memory MLP: 1 (a matrix) or 2 [2] */
  double expansion;   /* hidden width of a 2-layer memory over its head width [4] */
  int64_t heads;      /* memory heads (NeuralMemory heads) [1] */
  int64_t head_dim;   /* memory head width; 0: d_model / heads (NeuralMemory dim_head) [0] */
  double lr_max;      /* theta = lr_max * sigmoid(.); 0: 1 / head width, titans-pytorch's max lr 1
                       * on its mean-over-width loss (ours sums over the width) [0] */
  int64_t window;     /* sliding window of the attention, in tokens; 0: all (README) [128] */
  int64_t persistent; /* persistent key/value pairs per attention head (README) [4] */
  bool reference;     /* use the token-by-token reference form of the memory (tests) [false] */
  int64_t segment;    /* titans_mac: tokens per segment, a multiple of chunk (README) [128] */
} hy_titans_config;

struct hy_model_config {
  hy_dtype dtype;
  int64_t vocab, d_model, n_heads;
  int64_t mlp_hidden; /* 0: hy_swiglu_default_hidden(d_model) */
  int n_layers;
  char layers[HY_MAX_LAYERS][HY_KIND_NAME_MAX]; /* the mixer kind of each block */
  bool tied_embeddings;
  double rope_theta, norm_eps, init_std;
  bool scale_out_init;  /* output projections start at init_std / sqrt(2 n_layers) */
  bool naive_attention; /* softmax layers use the naive reference form */
  int64_t attn_window;  /* softmax layers attend to the last `attn_window` tokens; 0: all */
  hy_gla_config gla;
  hy_lightning_config lightning;
  hy_linear_attn_config linear;
  hy_conv_config conv;
  hy_sigmoid_config sigmoid;
  hy_softplus_config softplus;
  hy_sla_config sla;
  hy_rat_config rat;
  hy_titans_config titans;
};

/* A small all-"attn" configuration with the usual defaults (theta 1e4, eps 1e-6, std 0.02). */
hy_model_config hy_model_config_default(void);
/* The std of a block's output projections under cfg. */
double hy_model_out_std(const hy_model_config *cfg);

typedef struct {
  const hy_mixer_kind *kind;
  void *mixer;
  hy_rmsnorm_layer mixer_norm, mlp_norm;
  hy_swiglu_layer mlp;
} hy_block;

typedef struct {
  hy_model_config cfg;
  hy_params params;
  hy_embedding_layer embed;
  hy_block *blocks;
  hy_rmsnorm_layer norm;
  hy_linear head; /* head.weight is the embedding when tied */
} hy_model;

/* Aborts on an unknown mixer kind or bad sizes: callers validate user input first. */
hy_model *hy_model_new(const hy_model_config *cfg, uint64_t seed);
void hy_model_free(hy_model *m);

/* [B, T] i32 -> the final RMSNorm's output [B, T, d], in the activation dtype
 * (hy_activation_dtype: bf16 under mixed precision on the GPU): the LM head's input. */
hy_tensor *hy_model_hidden(hy_model *m, hy_tensor *tokens);
hy_tensor *hy_model_forward(hy_model *m, hy_tensor *tokens); /* [B, T] i32 -> logits [B, T, V] */
/* Mean cross-entropy of the logits against targets [B, T] (i32; ignore_index skipped). */
hy_tensor *hy_model_loss(hy_model *m, hy_tensor *tokens, hy_tensor *targets, int ignore_index);

/* The same over rows of packed documents: positions, i32 [B, T * sp] (the whole rows, as
 * run/batches.h makes them; sp: the ranks of the sequence, hy_sequence_get), each token's position
 * in its document, which the mixers read through hy_mixer_positions while the forward runs. NULL:
 * one stream, as the forms above. */
hy_tensor *hy_model_forward_packed(hy_model *m, hy_tensor *tokens, hy_tensor *positions);
hy_tensor *hy_model_loss_packed(hy_model *m, hy_tensor *tokens, hy_tensor *positions,
                                hy_tensor *targets, int ignore_index);

/* Decoding one token at a time, each mixer carrying its state (KV cache, memory). */
typedef struct {
  void **states; /* one per block */
  int64_t pos;   /* tokens decoded so far */
  int64_t max_len;
} hy_decoder;

hy_decoder *hy_decoder_new(hy_model *m, int64_t batch, int64_t max_len);
/* tokens [B, 1] i32 at position d->pos -> logits [B, 1, V]; the same as hy_model_forward's row. */
hy_tensor *hy_decoder_step(hy_model *m, hy_decoder *d, hy_tensor *tokens);
void hy_decoder_free(hy_model *m, hy_decoder *d);

#endif
