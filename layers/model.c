#include "layers/model.h"
#include "tensor/device.h"
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hy_model_config hy_model_config_default(void) {
  hy_model_config c = {
      .dtype = HY_F32,
      .vocab = 256,
      .d_model = 64,
      .n_heads = 4,
      .n_layers = 2,
      .tied_embeddings = true,
      .rope_theta = 10000.0,
      .norm_eps = 1e-6,
      .init_std = 0.02,
      .scale_out_init = true,
      .gla = {.heads = 0,
              .expand_k = 0.5,
              .expand_v = 1.0,
              .gate_rank = 16,
              .gate_norm = 16.0,
              .chunk = 64,
              .norm_eps = 1e-5},
      .lightning = {.heads = 0, .chunk = 64, .norm_eps = 1e-5},
      .linear = {.heads = 0, .feature_map = "elu", .chunk = 64, .norm_eps = 1e-5},
      .conv = {.kernel = 3},
      .sigmoid =
          {.bias_log_n = true, .bias = 0.0, .seq_len = 256, .output_norm = true, .norm_eps = 1e-5},
      .softplus = {.length_scale = true, .train_len = 256, .power = 1.0, .eval_power = 1.0},
      .sla = {.block = 64, .critical = 0.05, .negligible = 0.1, .feature_map = "softmax"},
      .rat = {.chunk = 16, .n_groups = 2, .heads = 0, .rope_theta = 10000.0},
      .titans = {.chunk = 64,
                 .depth = 2,
                 .expansion = 4.0,
                 .heads = 1,
                 .head_dim = 0,
                 .lr_max = 0.0,
                 .window = 128,
                 .persistent = 4,
                 .segment = 128},
  };
  for (int i = 0; i < HY_MAX_LAYERS; i++) snprintf(c.layers[i], HY_KIND_NAME_MAX, "attn");
  return c;
}

double hy_model_out_std(const hy_model_config *cfg) {
  return cfg->scale_out_init ? cfg->init_std / sqrt(2.0 * cfg->n_layers) : cfg->init_std;
}

hy_model *hy_model_new(const hy_model_config *cfg, uint64_t seed) {
  if (cfg->n_layers < 1 || cfg->n_layers > HY_MAX_LAYERS)
    hy_die("model", "%d layers (1 to %d)", cfg->n_layers, HY_MAX_LAYERS);
  hy_model *m = calloc(1, sizeof *m);
  if (!m) hy_die("model", "out of memory");
  m->cfg = *cfg;
  hy_rng rng = hy_rng_new(seed);
  int64_t d = cfg->d_model;
  int64_t hidden = cfg->mlp_hidden ? cfg->mlp_hidden : hy_swiglu_default_hidden(d);
  hy_embedding_init(&m->embed, &m->params, "embed", cfg->vocab, d, cfg->dtype, &rng, cfg->init_std);
  m->blocks = calloc((size_t)cfg->n_layers, sizeof *m->blocks);
  if (!m->blocks) hy_die("model", "out of memory");
  char path[HY_PARAM_NAME_MAX];
  for (int l = 0; l < cfg->n_layers; l++) {
    hy_block *b = &m->blocks[l];
    b->kind = hy_mixer_find(cfg->layers[l]);
    if (!b->kind)
      hy_die("model", "layer %d: unknown mixer kind '%s' (known: %s)", l, cfg->layers[l],
             hy_mixer_names());
    snprintf(path, sizeof path, "blocks/%d/mixer_norm", l);
    hy_rmsnorm_init(&b->mixer_norm, &m->params, path, d, cfg->norm_eps, cfg->dtype);
    snprintf(path, sizeof path, "blocks/%d/mixer", l);
    b->mixer = b->kind->create(&m->params, path, cfg, l, &rng);
    snprintf(path, sizeof path, "blocks/%d/mlp_norm", l);
    hy_rmsnorm_init(&b->mlp_norm, &m->params, path, d, cfg->norm_eps, cfg->dtype);
    snprintf(path, sizeof path, "blocks/%d/mlp", l);
    hy_swiglu_init(&b->mlp, &m->params, path, d, hidden, cfg->dtype, &rng, cfg->init_std,
                   hy_model_out_std(cfg));
  }
  hy_rmsnorm_init(&m->norm, &m->params, "norm", d, cfg->norm_eps, cfg->dtype);
  if (cfg->tied_embeddings)
    m->head = (hy_linear){m->embed.weight, NULL};
  else
    hy_linear_init(&m->head, &m->params, "head", d, cfg->vocab, false, cfg->dtype, &rng,
                   cfg->init_std);
  return m;
}

void hy_model_free(hy_model *m) {
  if (!m) return;
  for (int l = 0; l < m->cfg.n_layers; l++)
    if (m->blocks[l].kind) m->blocks[l].kind->destroy(m->blocks[l].mixer);
  free(m->blocks);
  hy_params_free(&m->params);
  free(m);
}

/* Without gradients nothing of a block is needed once its outputs exist: keep the residual
 * stream x and the next layer's input h, give the rest of the block's step memory back.
 * Evaluation on long sequences then holds one block's activations at a time instead of the whole
 * model's. */
static void keep_only(hy_tensor **x, hy_tensor **h, hy_step_mark mark) {
  hy_tensor **keep[2] = {x, h};
  void *tmp[2];
  hy_shape shape[2];
  hy_dtype dtype[2];
  size_t bytes[2];
  hy_device device = (*x)->device;
  for (int i = 0; i < 2; i++) {
    hy_tensor *t = *keep[i];
    bytes[i] = (size_t)hy_numel(t) * hy_dtype_size(t->dtype);
    shape[i] = hy_shape_of(t);
    dtype[i] = t->dtype;
    tmp[i] = hy_device_malloc(device, bytes[i]);
    hy_device_copy(device, tmp[i], device, t->data, bytes[i]);
  }
  hy_step_rewind(mark);
  for (int i = 0; i < 2; i++) {
    *keep[i] = hy_empty_on(device, dtype[i], shape[i]);
    hy_device_copy(device, (*keep[i])->data, device, tmp[i], bytes[i]);
    hy_device_free(device, tmp[i]);
  }
}

/* The norm after block l: the next block's mixer norm, or the model's final norm. */
static const hy_rmsnorm_layer *norm_after(const hy_model *m, int l) {
  return l + 1 < m->cfg.n_layers ? &m->blocks[l + 1].mixer_norm : &m->norm;
}

/* Packed documents' positions, checked against the tokens, where the model runs. */
static hy_tensor *positions_on(const hy_model *m, const hy_tensor *tokens, hy_tensor *positions) {
  int64_t ranks = hy_group_size(hy_sequence_get()->group);
  if (positions->dtype != HY_I32 || positions->ndim != 2 ||
      positions->shape[0] != tokens->shape[0] || positions->shape[1] != tokens->shape[1] * ranks)
    hy_die("model", "positions must be i32 [B, T * %lld] for tokens %s, got %s", (long long)ranks,
           hy_describe(tokens), hy_describe(positions));
  return hy_to(hy_contiguous(positions), m->embed.weight->device);
}

/* The blocks as a mixed-precision pipeline: the residual stream x stays in x's dtype (f32), and
 * each residual add is fused with the norm after it (hy_add_rmsnorm), whose output h, in the
 * activation dtype (bf16 under HY_PRECISION_BF16 on the GPU), feeds the next layer. The mixers see
 * the positions (NULL: one stream) while it runs. */
static hy_tensor *hidden(hy_model *m, hy_tensor *tokens, hy_tensor *positions) {
  if (tokens->ndim != 2) hy_die("model", "tokens must be [B, T], got %s", hy_describe(tokens));
  hy_tensor *host = NULL; /* where hy_mixer_forward cuts the documents, read on the host */
  if (positions) {
    hy_tensor *on_device = positions_on(m, tokens, positions);
    host = hy_to(hy_contiguous(positions), HY_CPU);
    positions = on_device;
  }
  hy_tensor *x = hy_embedding_forward(&m->embed, hy_to(tokens, m->embed.weight->device));
  hy_dtype act = hy_activation_dtype(x);
  bool grad = hy_grad_enabled();
  hy_tensor *h = hy_add_rmsnorm_forward(&m->blocks[0].mixer_norm, x, NULL, act, &x);
  hy_mixer_set_positions(positions, host);
  for (int l = 0; l < m->cfg.n_layers; l++) {
    hy_block *b = &m->blocks[l];
    hy_step_mark mark = hy_step_get_mark();
    hy_tensor *a = hy_mixer_forward(b->kind, b->mixer, h);
    h = hy_add_rmsnorm_forward(&b->mlp_norm, x, a, act, &x);
    h = hy_add_rmsnorm_forward(norm_after(m, l), x, hy_swiglu_forward(&b->mlp, h), act, &x);
    if (!grad) keep_only(&x, &h, mark);
  }
  hy_mixer_set_positions(NULL, NULL);
  return h;
}

hy_tensor *hy_model_hidden(hy_model *m, hy_tensor *tokens) { return hidden(m, tokens, NULL); }

hy_tensor *hy_model_forward(hy_model *m, hy_tensor *tokens) {
  return hy_model_forward_packed(m, tokens, NULL);
}

hy_tensor *hy_model_forward_packed(hy_model *m, hy_tensor *tokens, hy_tensor *positions) {
  return hy_linear_forward(&m->head, hidden(m, tokens, positions));
}

hy_tensor *hy_model_loss(hy_model *m, hy_tensor *tokens, hy_tensor *targets, int ignore_index) {
  return hy_model_loss_packed(m, tokens, NULL, targets, ignore_index);
}

/* The head and the loss as one op (hy_dense_cross_entropy, no logits kept) when the head is a
 * plain linear map, as it is tied or untied. Targets on their way to the GPU are checked first,
 * once a batch, while they are still on the host: the loss there is not read back. */
hy_tensor *hy_model_loss_packed(hy_model *m, hy_tensor *tokens, hy_tensor *positions,
                                hy_tensor *targets, int ignore_index) {
  hy_device device = m->embed.weight->device;
  if (targets->device != device) {
    targets = hy_contiguous(targets);
    hy_check_targets("model_loss", targets, m->cfg.vocab, ignore_index);
    targets = hy_to(targets, device);
  }
  hy_tensor *h = hidden(m, tokens, positions);
  if (m->head.bias) return hy_cross_entropy(hy_linear_forward(&m->head, h), targets, ignore_index);
  return hy_dense_cross_entropy(hy_cast(h, hy_activation_dtype(h)), m->head.weight, targets,
                                ignore_index);
}

hy_decoder *hy_decoder_new(hy_model *m, int64_t batch, int64_t max_len) {
  hy_decoder *d = calloc(1, sizeof *d);
  if (d) d->states = calloc((size_t)m->cfg.n_layers, sizeof *d->states);
  if (!d || !d->states) hy_die("decoder", "out of memory");
  d->max_len = max_len;
  for (int l = 0; l < m->cfg.n_layers; l++)
    d->states[l] = m->blocks[l].kind->decode_new(m->blocks[l].mixer, batch, max_len);
  return d;
}

hy_tensor *hy_decoder_step(hy_model *m, hy_decoder *d, hy_tensor *tokens) {
  if (tokens->ndim != 2 || tokens->shape[1] != 1)
    hy_die("decoder", "tokens must be [B, 1], got %s", hy_describe(tokens));
  if (d->pos >= d->max_len)
    hy_die("decoder", "past the %lld tokens it was made for", (long long)d->max_len);
  hy_tensor *x = hy_embedding_forward(&m->embed, tokens);
  hy_dtype act = hy_activation_dtype(x);
  hy_tensor *h = hy_add_rmsnorm_forward(&m->blocks[0].mixer_norm, x, NULL, act, &x);
  for (int l = 0; l < m->cfg.n_layers; l++) {
    hy_block *b = &m->blocks[l];
    hy_tensor *a = b->kind->decode_step(b->mixer, d->states[l], h, d->pos);
    h = hy_add_rmsnorm_forward(&b->mlp_norm, x, a, act, &x);
    h = hy_add_rmsnorm_forward(norm_after(m, l), x, hy_swiglu_forward(&b->mlp, h), act, &x);
  }
  d->pos++;
  return hy_linear_forward(&m->head, h);
}

void hy_decoder_free(hy_model *m, hy_decoder *d) {
  if (!d) return;
  for (int l = 0; l < m->cfg.n_layers; l++) m->blocks[l].kind->decode_free(d->states[l]);
  free(d->states);
  free(d);
}
