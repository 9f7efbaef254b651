/* hyla export (run/export.h): model.safetensors read back with a reader of the test's own (header
 * length, JSON header, offsets that tile the data in name order, 8-byte alignment), every
 * parameter under its fla name with the checkpoint's values (and the documented changes: the
 * value projection's eps scaling, the gate padded to rank 16), config.json's settings, the logits
 * file, the refusals that name the mixer and the option, and the directory rules. */
#include "run/export.h"
#include "run/checkpoint.h"
#include "run/safetensors.h"
#include "tests/support.h"
#include "util/fs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(export, .init = t_temp_init, .fini = t_temp_fini);

/* ---- a small safetensors reader ---- */

typedef struct {
  char *blob; /* the whole file */
  size_t size;
  char *header; /* NUL-terminated copy of the JSON header */
  size_t data;  /* where the data starts in blob */
} st_file;

static st_file st_read(const char *path) {
  st_file f = {0};
  FILE *in = fopen(path, "rb");
  cr_assert(in, "%s", path);
  fseek(in, 0, SEEK_END);
  f.size = (size_t)ftell(in);
  rewind(in);
  f.blob = malloc(f.size);
  cr_assert_eq(fread(f.blob, 1, f.size, in), f.size);
  fclose(in);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | (unsigned char)f.blob[i];
  cr_assert_leq(8 + n, f.size);
  cr_assert_eq((8 + n) % 8, 0, "the data starts 8-byte aligned");
  f.header = strndup(f.blob + 8, n);
  f.data = 8 + n;
  return f;
}

static void st_free(st_file *f) {
  free(f->blob);
  free(f->header);
}

typedef struct {
  char dtype[8];
  int ndim;
  int64_t shape[4];
  size_t begin, end;
} st_entry;

/* The header's entry of `name`; false when there is none. */
static bool st_find(const st_file *f, const char *name, st_entry *e) {
  char key[160];
  snprintf(key, sizeof key, "\"%s\":{", name);
  const char *p = strstr(f->header, key);
  if (!p) return false;
  p += strlen(key);
  *e = (st_entry){0};
  const char *dt = strstr(p, "\"dtype\":\""), *sh = strstr(p, "\"shape\":["),
             *off = strstr(p, "\"data_offsets\":[");
  cr_assert(dt && sh && off, "entry of %s", name);
  sscanf(dt + 9, "%7[^\"]", e->dtype);
  for (const char *s = sh + 9; *s != ']'; e->ndim++) {
    char *end;
    e->shape[e->ndim] = strtoll(s, &end, 10);
    s = *end == ',' ? end + 1 : end;
  }
  cr_assert_eq(sscanf(off + 16, "%zu,%zu", &e->begin, &e->end), 2);
  return true;
}

static int count_entries(const st_file *f) {
  int n = 0;
  for (const char *p = f->header; (p = strstr(p, "\"data_offsets\"")); p++) n++;
  return n;
}

/* The entries, in the order of their names, tile the data exactly. */
static void expect_tiled(const st_file *f) {
  size_t at = 0;
  char last[160] = "";
  int n = 0;
  for (const char *p = f->header; (p = strstr(p, "\":{\"dtype\"")); p++, n++) {
    const char *start = p;
    while (start[-1] != '"') start--;
    char name[160];
    snprintf(name, sizeof name, "%.*s", (int)(p - start), start);
    cr_assert_gt(strcmp(name, last), 0, "%s comes after %s", name, last);
    st_entry e;
    cr_assert(st_find(f, name, &e));
    cr_assert_eq(e.begin, at, "%s starts where the tensor before it ends", name);
    at = e.end;
    snprintf(last, sizeof last, "%s", name);
  }
  cr_assert_gt(n, 0);
  cr_assert_eq(f->data + at, f->size, "the tensors end where the file does");
}

static float st_f32(const st_file *f, const st_entry *e, int64_t i) {
  const unsigned char *p = (const unsigned char *)f->blob + f->data + e->begin + 4 * i;
  uint32_t bits =
      (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  float v;
  memcpy(&v, &bits, 4);
  return v;
}

static int64_t st_i64(const st_file *f, const st_entry *e, int64_t i) {
  const unsigned char *p = (const unsigned char *)f->blob + f->data + e->begin + 8 * i;
  uint64_t bits = 0;
  for (int b = 7; b >= 0; b--) bits = bits << 8 | p[b];
  return (int64_t)bits;
}

/* ---- models ---- */

/* A 3:1 GLA/attention hybrid of d = 16 (2 heads), its gate of rank 4, every parameter random
 * (norm gains and biases too, so that none is mistaken for another or for its default). */
static hy_model *hybrid(bool tied) {
  hy_model_config c = hy_model_config_default();
  c.vocab = 40;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 4;
  for (int l = 0; l < 4; l++) snprintf(c.layers[l], HY_KIND_NAME_MAX, l == 3 ? "attn" : "gla");
  c.gla.gate_rank = 4;
  c.tied_embeddings = tied;
  hy_model *m = hy_model_new(&c, 7);
  hy_rng rng = hy_rng_new(3);
  for (int i = 0; i < m->params.n; i++) hy_fill_normal(m->params.items[i].t, &rng, 0.0, 0.5);
  return m;
}

static hy_tensor *param(hy_model *m, const char *name) {
  hy_param *p = hy_params_find(&m->params, name);
  cr_assert(p, "%s", name);
  return p->t;
}

/* fla's tensor `name` is hyla's `t` times scale, padded with zeros to rows x cols. */
static void expect_tensor(const st_file *f, const char *name, const hy_tensor *t, int64_t rows,
                          int64_t cols, double scale) {
  st_entry e;
  cr_assert(st_find(f, name, &e), "no %s", name);
  cr_assert_str_eq(e.dtype, "F32");
  cr_assert_eq(e.ndim, t->ndim, "%s", name);
  cr_assert_eq(e.shape[e.ndim - 1], cols, "%s", name);
  if (t->ndim == 2) cr_assert_eq(e.shape[0], rows, "%s", name);
  int64_t t_cols = t->shape[t->ndim - 1], t_rows = hy_numel(t) / t_cols;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      double want = r < t_rows && c < t_cols ? (float)(hy_get(t, r * t_cols + c) * scale) : 0.0;
      cr_assert_eq(st_f32(f, &e, r * cols + c), (float)want, "%s[%lld, %lld]", name, (long long)r,
                   (long long)c);
    }
}

static void export_ok(hy_model *m, const char *to, hy_export_options o) {
  hy_error err;
  cr_assert_eq(hy_export(m, to, &o, &err), 0, "%s", err.msg);
}

Test(export, every_parameter_under_its_fla_name_with_its_values) {
  hy_model *m = hybrid(true);
  export_ok(m, t_in_temp("out"), (hy_export_options){.max_positions = 64});
  st_file f = st_read(t_in_temp("out/model.safetensors"));
  expect_tiled(&f);
  cr_assert(strstr(f.header, "\"__metadata__\":{\"format\":\"pt\"}"));
  cr_assert_eq(count_entries(&f), m->params.n, "one tensor per parameter (the head is tied)");
  cr_assert(!strstr(f.header, "lm_head"));
  expect_tensor(&f, "model.embeddings.weight", param(m, "embed/weight"), 40, 16, 1);
  expect_tensor(&f, "model.norm.weight", param(m, "norm/weight"), 1, 16, 1);
  double v_scale = sqrt(1e-6 / 1e-5); /* model norm_eps over [layer.gla] norm_eps */
  for (int l = 0; l < 4; l++) {
    char h[96], fl[96];
#define EXPECT(hyla, fla, rows, cols, scale)                                                       \
  snprintf(h, sizeof h, "blocks/%d/%s", l, hyla);                                                  \
  snprintf(fl, sizeof fl, "model.layers.%d.%s", l, fla);                                           \
  expect_tensor(&f, fl, param(m, h), rows, cols, scale)
    EXPECT("mixer_norm/weight", "attn_norm.weight", 1, 16, 1);
    EXPECT("mlp_norm/weight", "mlp_norm.weight", 1, 16, 1);
    EXPECT("mlp/gate_proj/weight", "mlp.gate_proj.weight", 64, 16, 1);
    EXPECT("mlp/up_proj/weight", "mlp.up_proj.weight", 64, 16, 1);
    EXPECT("mlp/down_proj/weight", "mlp.down_proj.weight", 16, 64, 1);
    EXPECT("mixer/q_proj/weight", "attn.q_proj.weight", l < 3 ? 8 : 16, 16, 1);
    EXPECT("mixer/k_proj/weight", "attn.k_proj.weight", l < 3 ? 8 : 16, 16, 1);
    EXPECT("mixer/v_proj/weight", "attn.v_proj.weight", 16, 16, l < 3 ? v_scale : 1);
    EXPECT("mixer/o_proj/weight", "attn.o_proj.weight", 16, 16, 1);
    if (l < 3) {
      EXPECT("mixer/g_proj/weight", "attn.g_proj.weight", 16, 16, 1);
      EXPECT("mixer/gk_proj/0/weight", "attn.gk_proj.0.weight", 16, 16, 1); /* 4 rows + 12 of 0 */
      EXPECT("mixer/gk_proj/1/weight", "attn.gk_proj.1.weight", 8, 16, 1);  /* 4 cols + 12 of 0 */
      EXPECT("mixer/gk_proj/1/bias", "attn.gk_proj.1.bias", 1, 8, 1);
      EXPECT("mixer/g_norm/weight", "attn.g_norm_swish_gate.weight", 1, 8, 1);
    }
#undef EXPECT
  }
  st_free(&f);
  hy_model_free(m);
}

/* Through a checkpoint, as `hyla export` reads one: a model built anew (other values) and loaded
 * from the checkpoint exports the saved values. */
Test(export, a_checkpoints_values_are_exported) {
  hy_model *saved = hybrid(false);
  hy_error err;
  hy_ckpt_meta meta = {.step = 1, .recipe = ""};
  cr_assert_eq(hy_checkpoint_write(t_in_temp("ckpt.h5"), &saved->params, NULL, &meta, &err), 0,
               "%s", err.msg);
  hy_model *loaded = hy_model_new(&saved->cfg, 99);
  cr_assert_eq(hy_checkpoint_load(t_in_temp("ckpt.h5"), &loaded->params, NULL, &err), 0, "%s",
               err.msg);
  export_ok(loaded, t_in_temp("out"), (hy_export_options){.max_positions = 64});
  st_file f = st_read(t_in_temp("out/model.safetensors"));
  cr_assert_eq(count_entries(&f), saved->params.n);
  expect_tensor(&f, "model.embeddings.weight", param(saved, "embed/weight"), 40, 16, 1);
  expect_tensor(&f, "lm_head.weight", param(saved, "head/weight"), 40, 16, 1);
  expect_tensor(&f, "model.layers.2.attn.gk_proj.1.bias",
                param(saved, "blocks/2/mixer/gk_proj/1/bias"), 1, 8, 1);
  expect_tensor(&f, "model.layers.3.attn.k_proj.weight",
                param(saved, "blocks/3/mixer/k_proj/weight"), 16, 16, 1);
  expect_tensor(&f, "model.layers.1.mlp_norm.weight", param(saved, "blocks/1/mlp_norm/weight"), 1,
                16, 1);
  st_free(&f);
  hy_model_free(loaded);
  hy_model_free(saved);
}

Test(export, an_untied_head_is_lm_head) {
  hy_model *m = hybrid(false);
  export_ok(m, t_in_temp("out"), (hy_export_options){.max_positions = 64});
  st_file f = st_read(t_in_temp("out/model.safetensors"));
  expect_tensor(&f, "lm_head.weight", param(m, "head/weight"), 40, 16, 1);
  st_free(&f);
  char *config = hy_read_file(t_in_temp("out/config.json"), NULL, &(hy_error){0});
  cr_assert(strstr(config, "\"tie_word_embeddings\": false"));
  free(config);
  hy_model_free(m);
}

static void expect_config(const char *config, const char *const *lines, int n) {
  for (int i = 0; i < n; i++) cr_assert(strstr(config, lines[i]), "no %s in\n%s", lines[i], config);
}

Test(export, the_config_names_the_class_and_its_settings) {
  hy_model *m = hybrid(true);
  export_ok(m, t_in_temp("out"), (hy_export_options){.max_positions = 64});
  char *config = hy_read_file(t_in_temp("out/config.json"), NULL, &(hy_error){0});
  const char *want[] = {"\"architectures\": [\"GLAForCausalLM\"]",
                        "\"model_type\": \"gla\"",
                        "\"vocab_size\": 40,",
                        "\"hidden_size\": 16,",
                        "\"num_hidden_layers\": 4,",
                        "\"intermediate_size\": 64,",
                        "\"norm_eps\": 1e-06,",
                        "\"tie_word_embeddings\": true,",
                        "\"max_position_embeddings\": 64,",
                        "\"num_heads\": 2,",
                        "\"expand_k\": 0.5,",
                        "\"expand_v\": 1.0,",
                        "\"use_output_gate\": true,",
                        ("\"attn\": {\"layers\": [3], \"num_heads\": 2, \"num_kv_heads\": 2, "
                         "\"qkv_bias\": false, \"window_size\": null, \"rope_theta\": 10000.0}")};
  expect_config(config, want, sizeof want / sizeof *want);
  free(config);
  hy_model_free(m);
}

/* The other two classes: linear layers (relu, 1 head of 16) with windowed attention, and
 * softmax attention alone. */
Test(export, linear_and_softmax_models_take_their_own_classes) {
  hy_model_config c = hy_model_config_default();
  c.d_model = 16;
  c.n_heads = 2;
  c.attn_window = 8;
  c.linear.heads = 1;
  snprintf(c.linear.feature_map, sizeof c.linear.feature_map, "relu");
  snprintf(c.layers[0], HY_KIND_NAME_MAX, "linear");
  hy_model *m = hy_model_new(&c, 1);
  export_ok(m, t_in_temp("linear"), (hy_export_options){.max_positions = 32});
  char *config = hy_read_file(t_in_temp("linear/config.json"), NULL, &(hy_error){0});
  const char *linear[] = {"\"model_type\": \"linear_attn\"", "\"num_heads\": 1,",
                          "\"feature_map\": \"relu\"", "\"window_size\": 8,",
                          "\"attn\": {\"layers\": [1],"};
  expect_config(config, linear, 5);
  free(config);
  st_file f = st_read(t_in_temp("linear/model.safetensors"));
  expect_tensor(&f, "model.layers.0.attn.norm.weight", param(m, "blocks/0/mixer/norm/weight"), 1,
                16, 1);
  st_free(&f);
  hy_model_free(m);

  snprintf(c.layers[0], HY_KIND_NAME_MAX, "attn");
  m = hy_model_new(&c, 1);
  export_ok(m, t_in_temp("attn"), (hy_export_options){.max_positions = 32});
  config = hy_read_file(t_in_temp("attn/config.json"), NULL, &(hy_error){0});
  const char *attn[] = {"\"model_type\": \"transformer\"", "\"window_size\": 8,",
                        "\"rope_theta\": 10000.0"};
  expect_config(config, attn, 3);
  cr_assert(!strstr(config, "\"attn\""));
  free(config);
  hy_model_free(m);
}

Test(export, the_logits_file_holds_hylas_logits_on_its_tokens) {
  hy_model *m = hybrid(true);
  export_ok(m, t_in_temp("out"), (hy_export_options){.logits_tokens = 5, .max_positions = 64});
  st_file f = st_read(t_in_temp("out/" HY_EXPORT_LOGITS));
  expect_tiled(&f);
  st_entry ids, logits;
  cr_assert(st_find(&f, "input_ids", &ids) && st_find(&f, "logits", &logits));
  cr_assert_str_eq(ids.dtype, "I64");
  cr_assert(ids.ndim == 2 && ids.shape[0] == 2 && ids.shape[1] == 5);
  cr_assert(logits.ndim == 3 && logits.shape[0] == 2 && logits.shape[1] == 5 &&
            logits.shape[2] == 40);
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, 5));
  for (int64_t i = 0; i < 10; i++) {
    int64_t id = st_i64(&f, &ids, i);
    cr_assert(0 <= id && id < 40);
    hy_set(tokens, i, (double)id);
  }
  hy_tensor *want = hy_model_forward(m, tokens);
  for (int64_t i = 0; i < 2 * 5 * 40; i++)
    cr_assert_eq(st_f32(&f, &logits, i), (float)hy_get(want, i), "logit %lld", (long long)i);
  st_free(&f);
  hy_model_free(m);
}

static void refused(const char *kind, const char *second, void (*change)(hy_model_config *),
                    const char *message) {
  hy_model_config c = hy_model_config_default();
  snprintf(c.layers[0], HY_KIND_NAME_MAX, "%s", kind);
  snprintf(c.layers[1], HY_KIND_NAME_MAX, "%s", second);
  if (change) change(&c);
  hy_error err;
  cr_assert_neq(hy_export_check(&c, &err), 0, "%s, %s", kind, second);
  cr_assert(strstr(err.msg, message), "%s", err.msg);
}

static void gate_norm_8(hy_model_config *c) { c->gla.gate_norm = 8; }
static void gate_rank_32(hy_model_config *c) { c->gla.gate_rank = 32; }

Test(export, what_fla_has_no_counterpart_for_is_refused_by_name) {
  refused("lightning", "attn", NULL, "layer 0: mixer 'lightning' has no counterpart");
  refused("attn", "sigmoid", NULL, "layer 1: mixer 'sigmoid' has no counterpart");
  refused("rat", "attn", NULL, "layer 0: mixer 'rat' has no counterpart");
  refused("gla", "linear", NULL,
          "layers 0 ('gla') and 1 ('linear'): a flash-linear-attention model has one kind");
  refused("gla", "attn", gate_norm_8, "[layer.gla] gate_norm = 8 (mixer gla)");
  refused("gla", "attn", gate_rank_32, "[layer.gla] gate_rank = 32 (mixer gla)");
  /* what fla's classes do have */
  hy_error err;
  hy_model_config c = hy_model_config_default();
  cr_assert_eq(hy_export_check(&c, &err), 0, "%s", err.msg);
  gate_norm_8(&c); /* not a gla model: the gla options do not matter */
  cr_assert_eq(hy_export_check(&c, &err), 0, "%s", err.msg);
}

Test(export, a_refused_model_writes_nothing) {
  hy_model_config c = hy_model_config_default();
  snprintf(c.layers[0], HY_KIND_NAME_MAX, "lightning");
  hy_model *m = hy_model_new(&c, 1);
  hy_error err;
  cr_assert_neq(hy_export(m, t_in_temp("out"), &(hy_export_options){0}, &err), 0);
  struct stat st;
  cr_assert_neq(stat(t_in_temp("out"), &st), 0, "no directory made");
  hy_model_free(m);
}

Test(export, a_directory_with_files_needs_force) {
  hy_model *m = hybrid(true);
  FILE *other = fopen(t_in_temp("notes.txt"), "w");
  fputs("mine\n", other);
  fclose(other);
  hy_error err;
  cr_assert_neq(hy_export(m, t_temp_path(), &(hy_export_options){.max_positions = 8}, &err), 0);
  cr_assert(strstr(err.msg, "is not empty (it holds notes.txt)"), "%s", err.msg);
  cr_assert(strstr(err.msg, "--force"), "%s", err.msg);
  struct stat st;
  cr_assert_neq(stat(t_in_temp("model.safetensors"), &st), 0, "nothing written");
  export_ok(m, t_temp_path(), (hy_export_options){.force = true, .max_positions = 8});
  export_ok(m, t_temp_path(),
            (hy_export_options){.force = true, .max_positions = 8}); /* over itself */
  cr_assert_eq(stat(t_in_temp("model.safetensors"), &st), 0);
  cr_assert_eq(stat(t_in_temp("notes.txt"), &st), 0, "other files stay");
  /* a file in the directory's place */
  cr_assert_neq(hy_export(m, t_in_temp("notes.txt"), &(hy_export_options){.force = true}, &err), 0);
  hy_model_free(m);
}

Test(export, the_writer_refuses_names_it_cannot_write) {
  float v[2] = {1, 2};
  hy_st_tensor ts[2] = {{.name = "a", .dtype = HY_ST_F32, .ndim = 1, .shape = {2}, .data = v},
                        {.name = "a", .dtype = HY_ST_F32, .ndim = 1, .shape = {2}, .data = v}};
  hy_error err;
  cr_assert_neq(hy_safetensors_write(t_in_temp("x"), ts, 2, false, &err), 0);
  cr_assert(strstr(err.msg, "two tensors named 'a'"), "%s", err.msg);
  ts[1].name = "b\"c";
  cr_assert_neq(hy_safetensors_write(t_in_temp("x"), ts, 2, false, &err), 0);
  cr_assert(strstr(err.msg, "tensor name 'b\"c' is not plain"), "%s", err.msg);
  struct stat st;
  cr_assert_neq(stat(t_in_temp("x"), &st), 0, "nothing written");
  ts[1].name = "b";
  cr_assert_eq(hy_safetensors_write(t_in_temp("x"), ts, 2, false, &err), 0, "%s", err.msg);
  cr_assert_neq(hy_safetensors_write(t_in_temp("x"), ts, 2, false, &err), 0, "no replacing");
  st_file f = st_read(t_in_temp("x"));
  expect_tiled(&f);
  st_entry e;
  cr_assert(st_find(&f, "b", &e) && e.begin == 8 && e.end == 16);
  cr_assert_eq(st_f32(&f, &e, 1), 2.0f);
  st_free(&f);
}
