#include "run/export.h"
#include "autograd/tape.h"
#include "layers/gla.h"
#include "layers/linear_attention.h"
#include "run/safetensors.h"
#include "tensor/ops.h"
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fla's GLA layer has these two fixed (its model config has no key for them). */
enum { FLA_GATE_RANK = 16 };
static const double FLA_GATE_NORM = 16.0;

typedef enum { FLA_TRANSFORMER, FLA_GLA, FLA_LINEAR } fla_class;

static const struct {
  const char *model_type, *architecture;
} FLA_CLASSES[] = {
    [FLA_TRANSFORMER] = {"transformer", "TransformerForCausalLM"},
    [FLA_GLA] = {"gla", "GLAForCausalLM"},
    [FLA_LINEAR] = {"linear_attn", "LinearAttentionForCausalLM"},
};

/* ---- which fla class, or why none ---- */

static int pick_class(const hy_model_config *c, fla_class *cls, hy_error *err) {
  const char *kind = NULL; /* the model's one linear-attention kind */
  int first = -1;
  for (int l = 0; l < c->n_layers; l++) {
    const char *k = c->layers[l];
    if (!strcmp(k, "attn")) continue;
    if (!strcmp(k, "lightning"))
      return hy_fail(err,
                     "layer %d: mixer 'lightning' has no counterpart in flash-linear-attention: it "
                     "has lightning attention's kernel, but no layer or model class with its "
                     "decays, SRMSNorm and output gate",
                     l);
    if (strcmp(k, "gla") && strcmp(k, "linear"))
      return hy_fail(err,
                     "layer %d: mixer '%s' has no counterpart in flash-linear-attention's model "
                     "classes (export takes attn, gla and linear)",
                     l, k);
    if (kind && strcmp(kind, k))
      return hy_fail(err,
                     "layers %d ('%s') and %d ('%s'): a flash-linear-attention model has one kind "
                     "of linear-attention layer (softmax attention may stand at any layers)",
                     first, kind, l, k);
    if (!kind) kind = k, first = l;
  }
  *cls = !kind ? FLA_TRANSFORMER : !strcmp(kind, "gla") ? FLA_GLA : FLA_LINEAR;
  if (*cls == FLA_GLA && c->gla.gate_norm != FLA_GATE_NORM)
    return hy_fail(err,
                   "[layer.gla] gate_norm = %g (mixer gla): flash-linear-attention's GLA model "
                   "divides the log forget gate by 16 (its gate_logit_normalizer, which its "
                   "config does not set)",
                   c->gla.gate_norm);
  if (*cls == FLA_GLA && c->gla.gate_rank > FLA_GATE_RANK)
    return hy_fail(err,
                   "[layer.gla] gate_rank = %lld (mixer gla): flash-linear-attention's GLA model "
                   "has a forget gate of rank 16 (its gate_low_rank_dim, which its config does "
                   "not set); ranks up to 16 export padded with zeros",
                   (long long)c->gla.gate_rank);
  return 0;
}

int hy_export_check(const hy_model_config *cfg, hy_error *err) {
  fla_class cls;
  return pick_class(cfg, &cls, err);
}

/* ---- the parameters under fla's names ---- */

/* hyla's path components renamed to fla's; `first`: only as the first component. */
static const struct {
  const char *hyla, *fla;
  bool first;
} RENAMES[] = {
    {"embed", "model.embeddings", true},
    {"norm", "model.norm", true},
    {"head", "lm_head", true},
    {"blocks", "model.layers", true},
    {"mixer_norm", "attn_norm", false},
    {"mixer", "attn", false},
    {"g_norm", "g_norm_swish_gate", false},
};

/* fla's name of hyla's parameter `name`: each '/'-separated component renamed, joined by '.'. */
static void fla_name(const char *name, char *out, size_t n) {
  char buf[HY_PARAM_NAME_MAX];
  snprintf(buf, sizeof buf, "%s", name);
  size_t used = 0;
  out[0] = 0;
  int i = 0;
  for (char *save = NULL, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save), i++) {
    const char *to = c;
    for (size_t r = 0; r < sizeof RENAMES / sizeof *RENAMES; r++)
      if (!strcmp(c, RENAMES[r].hyla) && (i == 0 || !RENAMES[r].first)) to = RENAMES[r].fla;
    used += (size_t)snprintf(out + used, n - used, "%s%s", i ? "." : "", to);
  }
}

/* How a parameter is written: its values as a rows x cols matrix (a vector is 1 x n), placed in
 * the top-left corner of an out_rows x out_cols one of zeros, times scale. */
typedef struct {
  int64_t out_rows, out_cols;
  double scale;
} placement;

/* The mixer-specific changes (docs/export.md): a GLA forget gate of rank r < 16 padded with
 * zeros to 16; the value projection of gla and linear layers scaled by sqrt(model eps / layer
 * eps), so that fla's per-head RMSNorm, which takes the model's norm_eps, gives hyla's. */
static placement place(const hy_model *m, const char *name, const hy_tensor *t) {
  placement p = {t->ndim == 2 ? t->shape[0] : 1, t->shape[t->ndim - 1], 1.0};
  int l, used = 0;
  if (sscanf(name, "blocks/%d/mixer/%n", &l, &used) != 1 || !used) return p;
  const char *kind = m->blocks[l].kind->name, *rest = name + used;
  const hy_model_config *c = &m->cfg;
  double layer_eps = !strcmp(kind, "gla") ? c->gla.norm_eps : c->linear.norm_eps;
  if ((!strcmp(kind, "gla") || !strcmp(kind, "linear")) && !strcmp(rest, "v_proj/weight"))
    p.scale = sqrt(c->norm_eps / layer_eps);
  if (!strcmp(kind, "gla") && !strcmp(rest, "gk_proj/0/weight")) p.out_rows = FLA_GATE_RANK;
  if (!strcmp(kind, "gla") && !strcmp(rest, "gk_proj/1/weight")) p.out_cols = FLA_GATE_RANK;
  return p;
}

static float *placed_values(const hy_tensor *t, placement p) {
  int64_t cols = t->shape[t->ndim - 1], n = hy_numel(t);
  float *v = calloc((size_t)(p.out_rows * p.out_cols), sizeof *v);
  if (!v) return NULL;
  hy_tensor *c = hy_contiguous((hy_tensor *)t);
  for (int64_t i = 0; i < n; i++)
    v[(i / cols) * p.out_cols + i % cols] = (float)(hy_get(c, i) * p.scale);
  return v;
}

/* Every parameter under its fla name (the tied head is the embedding: written once). */
static int write_weights(const hy_model *m, const char *path, bool replace, hy_error *err) {
  const hy_params *ps = &m->params;
  hy_st_tensor *ts = calloc((size_t)ps->n, sizeof *ts);
  char(*names)[2 * HY_PARAM_NAME_MAX] = calloc((size_t)ps->n, sizeof *names);
  int rc = ts && names ? 0 : hy_fail(err, "%s: out of memory", path);
  for (int i = 0; i < ps->n && !rc; i++) {
    const hy_tensor *t = ps->items[i].t;
    placement p = place(m, ps->items[i].name, t);
    fla_name(ps->items[i].name, names[i], sizeof names[i]);
    ts[i] = (hy_st_tensor){.name = names[i], .dtype = HY_ST_F32, .ndim = t->ndim};
    ts[i].shape[0] = t->ndim == 2 ? p.out_rows : p.out_cols;
    ts[i].shape[1] = p.out_cols;
    if (!(ts[i].data = placed_values(t, p))) rc = hy_fail(err, "%s: out of memory", path);
  }
  if (!rc) rc = hy_safetensors_write(path, ts, ps->n, replace, err);
  for (int i = 0; ts && i < ps->n; i++) free((void *)ts[i].data);
  free(ts);
  free(names);
  hy_step_reset();
  return rc;
}

/* ---- config.json ---- */

/* The shortest decimal form of x that reads back as x; a whole number as "10000.0", so that JSON
 * readers take it as a float. */
static void put_number(FILE *f, double x) {
  char buf[32];
  if (x == floor(x) && fabs(x) < 1e15) {
    fprintf(f, "%.1f", x);
    return;
  }
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, x);
    if (strtod(buf, NULL) == x) break;
  }
  fputs(buf, f);
}

static void key_number(FILE *f, const char *key, double x) {
  fprintf(f, ",\n  \"%s\": ", key);
  put_number(f, x);
}

static void key_int(FILE *f, const char *key, int64_t x) {
  fprintf(f, ",\n  \"%s\": %lld", key, (long long)x);
}

static void key_text(FILE *f, const char *key, const char *raw) {
  fprintf(f, ",\n  \"%s\": %s", key, raw);
}

/* The index of the first layer of mixer `kind`. */
static int first_layer(const hy_model *m, const char *kind) {
  for (int l = 0; l < m->cfg.n_layers; l++)
    if (!strcmp(m->blocks[l].kind->name, kind)) return l;
  return -1;
}

/* fla's `attn` list: the softmax-attention layers of a gla or linear model. */
static void attn_list(FILE *f, const hy_model *m) {
  const hy_model_config *c = &m->cfg;
  if (first_layer(m, "attn") < 0) {
    key_text(f, "attn", "null");
    return;
  }
  fprintf(f, ",\n  \"attn\": {\"layers\": [");
  for (int l = 0, n = 0; l < c->n_layers; l++)
    if (!strcmp(c->layers[l], "attn")) fprintf(f, "%s%d", n++ ? ", " : "", l);
  fprintf(f, "], \"num_heads\": %lld, \"num_kv_heads\": %lld, \"qkv_bias\": false, ",
          (long long)c->n_heads, (long long)c->n_heads);
  if (c->attn_window > 0)
    fprintf(f, "\"window_size\": %lld, ", (long long)c->attn_window);
  else
    fprintf(f, "\"window_size\": null, ");
  fprintf(f, "\"rope_theta\": ");
  put_number(f, c->rope_theta);
  fprintf(f, "}");
}

static char *config_json(const hy_model *m, fla_class cls, const hy_export_options *o) {
  const hy_model_config *c = &m->cfg;
  char *text = NULL;
  size_t size;
  FILE *f = open_memstream(&text, &size);
  if (!f) return NULL;
  fprintf(f, "{\n  \"architectures\": [\"%s\"]", FLA_CLASSES[cls].architecture);
  fprintf(f, ",\n  \"model_type\": \"%s\"", FLA_CLASSES[cls].model_type);
  key_int(f, "vocab_size", c->vocab);
  key_int(f, "hidden_size", c->d_model);
  key_int(f, "num_hidden_layers", c->n_layers);
  key_int(f, "intermediate_size", m->blocks[0].mlp.gate.weight->shape[0]);
  key_text(f, "hidden_act", "\"swish\"");
  key_number(f, "norm_eps", c->norm_eps);
  key_text(f, "elementwise_affine", "true");
  key_text(f, "tie_word_embeddings", c->tied_embeddings ? "true" : "false");
  key_int(f, "max_position_embeddings", o->max_positions);
  key_number(f, "initializer_range", c->init_std);
  key_text(f, "fuse_norm", "true");
  key_text(f, "fuse_swiglu", "true");
  if (cls == FLA_TRANSFORMER) {
    key_int(f, "num_heads", c->n_heads);
    key_text(f, "num_kv_heads", "null");
    key_text(f, "qkv_bias", "false");
    key_text(f, "qk_norm", "false");
    if (c->attn_window > 0)
      key_int(f, "window_size", c->attn_window);
    else
      key_text(f, "window_size", "null");
    key_number(f, "rope_theta", c->rope_theta);
  } else if (cls == FLA_GLA) {
    const hy_gla_layer *g = m->blocks[first_layer(m, "gla")].mixer;
    key_text(f, "attn_mode", "\"chunk\"");
    key_int(f, "num_heads", g->heads);
    key_text(f, "num_kv_heads", "null");
    key_number(f, "expand_k", (double)(g->heads * g->dk) / (double)c->d_model);
    key_number(f, "expand_v", (double)(g->heads * g->dv) / (double)c->d_model);
    key_text(f, "feature_map", "null");
    key_text(f, "use_short_conv", "false");
    key_text(f, "use_output_gate", "true");
    key_text(f, "clamp_min", "null");
    attn_list(f, m);
  } else {
    const hy_linear_attn_layer *a = m->blocks[first_layer(m, "linear")].mixer;
    key_text(f, "attn_mode", "\"chunk\"");
    key_int(f, "num_heads", a->heads);
    key_text(f, "num_kv_heads", "null");
    key_int(f, "expand_k", 1);
    key_int(f, "expand_v", 1);
    fprintf(f, ",\n  \"feature_map\": \"%s\"", c->linear.feature_map);
    key_text(f, "tie_feature_map_qk", "false");
    key_text(f, "norm_q", "false");
    key_text(f, "norm_k", "false");
    key_text(f, "norm_feature_map", "false");
    attn_list(f, m);
  }
  /* A byte or subword vocabulary of hyla's has no special tokens. */
  key_text(f, "pad_token_id", "null");
  key_text(f, "bos_token_id", "null");
  key_text(f, "eos_token_id", "null");
  key_text(f, "use_cache", "true");
  key_text(f, "dtype", "\"float32\"");
  fprintf(f, "\n}\n");
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

/* ---- hyla's logits on fixed tokens ---- */

static int write_logits(hy_model *m, const char *path, int64_t T, bool replace, hy_error *err) {
  int64_t B = HY_EXPORT_LOGITS_BATCH, V = m->cfg.vocab;
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(B, T));
  hy_rng rng = hy_rng_new(HY_EXPORT_LOGITS_SEED);
  hy_fill_int(tokens, &rng, 0, V);
  hy_no_grad_begin();
  hy_tensor *logits = hy_contiguous(hy_model_forward(m, tokens));
  hy_no_grad_end();
  int64_t *ids = malloc((size_t)(B * T) * sizeof *ids);
  float *values = malloc((size_t)(B * T * V) * sizeof *values);
  int rc = ids && values ? 0 : hy_fail(err, "%s: out of memory", path);
  for (int64_t i = 0; !rc && i < B * T; i++) ids[i] = (int64_t)hy_get(tokens, i);
  for (int64_t i = 0; !rc && i < B * T * V; i++) values[i] = (float)hy_get(logits, i);
  hy_st_tensor ts[] = {
      {.name = "input_ids", .dtype = HY_ST_I64, .ndim = 2, .shape = {B, T}, .data = ids},
      {.name = "logits", .dtype = HY_ST_F32, .ndim = 3, .shape = {B, T, V}, .data = values}};
  if (!rc) rc = hy_safetensors_write(path, ts, 2, replace, err);
  free(ids);
  free(values);
  hy_step_reset();
  return rc;
}

/* ---- the directory ---- */

/* 0 when dir is missing or empty, or holds files and force is set. */
static int check_dir(const char *dir, bool force, hy_error *err) {
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    return hy_fail(err, "%s: cannot open the directory: %s", dir, strerror(errno));
  }
  const char *found = NULL;
  for (struct dirent *e; !found && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) found = e->d_name;
  int rc = found && !force ? hy_fail(err,
                                     "%s is not empty (it holds %s): export into a new or empty "
                                     "directory, or give --force to write over its files",
                                     dir, found)
                           : 0;
  closedir(d);
  return rc;
}

int hy_export(hy_model *m, const char *dir, const hy_export_options *o, hy_error *err) {
  fla_class cls;
  if (pick_class(&m->cfg, &cls, err) || check_dir(dir, o->force, err) || hy_mkdirs(dir, err))
    return -1;
  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if (write_weights(m, path, o->force, err)) return -1;
  char *config = config_json(m, cls, o);
  snprintf(path, sizeof path, "%s/config.json", dir);
  int rc = config ? hy_write_bytes_atomic(path, config, strlen(config), o->force, err)
                  : hy_fail(err, "%s: out of memory", path);
  free(config);
  if (rc || o->logits_tokens <= 0) return rc;
  snprintf(path, sizeof path, "%s/%s", dir, HY_EXPORT_LOGITS);
  return write_logits(m, path, o->logits_tokens, o->force, err);
}
