/* Every mixer kind of the registry (hy_mixer_names: present and future kinds alike) on the GPU
 * against the CPU, through the mixer interface: one layer built from one seed on the GPU in f32
 * and on the CPU in f64 with the GPU's values exactly (and in f32, for expect_on_gpu's bound);
 * forward, the input's gradient and every parameter's gradient within 1e-5 (relative norm
 * error). Once on rows of one stream and once on rows of packed documents (boundaries inside a
 * chunk, on a chunk edge, one token apart); then the settings a kind's defaults leave out
 * (VARIANTS), on a length that is no multiple of a chunk and a width that is no power of two. */
#include "layers/mixer.h"
#include "layers/model.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const double TOL = 1e-5;

enum { B = 2, DOC_T = 64 };

static hy_model_config config(void) {
  hy_model_config c = hy_model_config_default();
  c.d_model = 64;
  c.n_heads = 4;
  c.init_std = 0.1; /* large enough that gates, memories and softmaxes are far from linear */
  c.gla.chunk = c.lightning.chunk = c.linear.chunk = 16;
  c.rat.chunk = 8;
  c.sla.block = 16;
  c.titans.chunk = 16;
  c.titans.window = 16;
  c.titans.segment = 32;
  c.titans.heads = 2;
  return c;
}

/* Documents start at 0, 5 (inside a chunk), 16 (a chunk edge), 17 (one token after) and 40 in
 * row 0; row 1 is one document. */
static hy_tensor *positions(void) {
  static const int starts[] = {0, 5, 16, 17, 40, -1};
  hy_tensor *p = hy_empty_persistent_on(HY_CPU, HY_I32, HY_SHAPE(B, DOC_T));
  for (int t = 0, pos = 0, next = 1; t < DOC_T; t++) {
    if (starts[next] == t) pos = 0, next++;
    ((int32_t *)p->data)[t] = pos++;
    ((int32_t *)p->data)[DOC_T + t] = t;
  }
  return p;
}

/* The GPU's result within 1e-5 of the CPU's in f64, or within 4 times the CPU's own f32 distance
 * from f64 where that is larger: a gradient that is a sum which cancels (a gate bias's, summed
 * over every token and memory weight) loses digits in any f32. */
static void expect_on_gpu(const hy_tensor *gpu, const hy_tensor *f64, const hy_tensor *f32,
                          const char *what) {
  t_expect_gpu_close(gpu, f64, fmax(TOL, 4 * t_rel_norm_err(f32, f64)), what);
}

/* One kind, configured by `base`, on rows of T tokens (packed documents: T = 64); `label` names
 * the setting in the failure message. */
static void expect_kind(const char *name, hy_model_config base, int64_t T, bool documents,
                        const char *label) {
  const hy_mixer_kind *kind = hy_mixer_find(name);
  cr_assert(kind, "no kind %s", name);
  enum { CPU64, GPU, CPU32 };
  hy_params ps[3] = {{0}, {0}, {0}};
  void *layer[3];
  for (int dev = CPU32; dev >= CPU64; dev--) {
    hy_model_config cfg = base;
    cfg.dtype = dev == CPU64 ? HY_F64 : HY_F32;
    hy_rng rng = hy_rng_new(17);
    layer[dev] = kind->create(&ps[dev], "mixer", &cfg, 1, &rng);
    for (int i = 0; i < ps[dev].n; i++) { /* gains, biases, persistent tokens off their inits */
      const char *p = ps[dev].items[i].name;
      if (strstr(p, "norm") || strstr(p, "bias") || strstr(p, "persistent"))
        hy_fill_normal(ps[dev].items[i].t, &rng, 0.5, 0.3);
    }
  }
  cr_assert(ps[CPU64].n == ps[GPU].n && ps[GPU].n == ps[CPU32].n);
  for (int i = 0; i < ps[CPU64].n; i++) /* the GPU's f32 values, exactly */
    hy_copy_into(ps[CPU64].items[i].t, t_cast(ps[GPU].items[i].t, HY_F64));
  hy_params_to(&ps[GPU], HY_CUDA);
  cr_assert(!documents || T == DOC_T);
  hy_shape shape = HY_SHAPE(B, T, base.d_model);
  hy_tensor *x32 = t_param(t_randn(HY_F32, shape, 18)), *gy = t_randn(HY_F32, shape, 19);
  hy_tensor *xg = t_to_gpu(t_param(t_randn(HY_F32, shape, 18))), *gyg = t_to_gpu(gy);
  hy_tensor *x = t_param(t_cast(t_randn(HY_F32, shape, 18), HY_F64)); /* apart from x32's tape */
  hy_tensor *pos = documents ? positions() : NULL;
  hy_tensor *pos_gpu = pos ? hy_empty_persistent_on(HY_CUDA, HY_I32, HY_SHAPE(B, T)) : NULL;
  if (pos) hy_copy_into(pos_gpu, pos);

  hy_mixer_set_positions(pos, pos);
  t_poison();
  hy_tensor *y = hy_mixer_forward(kind, layer[CPU64], x);
  hy_backward_with(y, t_cast(gy, HY_F64));
  hy_tensor *y32 = hy_mixer_forward(kind, layer[CPU32], x32);
  hy_backward_with(y32, gy);
  hy_mixer_set_positions(pos_gpu, pos);
  hy_set_device(HY_CUDA); /* the tensors a layer makes (masks, zeros) go to the GPU */
  t_poison();
  hy_tensor *yg = hy_mixer_forward(kind, layer[GPU], xg);
  hy_backward_with(yg, gyg);
  hy_set_device(HY_CPU);
  hy_mixer_set_positions(NULL, NULL);

  char what[240];
  snprintf(what, sizeof what, "%s (%s): forward", name, label);
  expect_on_gpu(yg, y, y32, what);
  snprintf(what, sizeof what, "%s (%s): gradient of x", name, label);
  expect_on_gpu(xg->grad, x->grad, x32->grad, what);
  for (int i = 0; i < ps[CPU64].n; i++) {
    const hy_tensor *g64 = ps[CPU64].items[i].t->grad, *g = ps[GPU].items[i].t->grad;
    snprintf(what, sizeof what, "%s (%s): gradient of %s", name, label, ps[CPU64].items[i].name);
    cr_assert((g64 == NULL) == (g == NULL), "%s: on one device only", what);
    if (g64) expect_on_gpu(g, g64, ps[CPU32].items[i].t->grad, what);
  }
  for (int dev = CPU64; dev <= CPU32; dev++) {
    kind->destroy(layer[dev]);
    hy_params_free(&ps[dev]);
  }
  hy_free(pos);
  hy_free(pos_gpu);
  hy_step_reset();
}

static void every_kind(bool documents) {
  char names[256];
  snprintf(names, sizeof names, "%s", hy_mixer_names());
  for (char *save = NULL, *k = strtok_r(names, ", ", &save); k; k = strtok_r(NULL, ", ", &save))
    expect_kind(k, config(), DOC_T, documents, documents ? "documents" : "one stream");
}

/* Settings the defaults above leave out, each on d_model 96 in 2 heads and T 70 (partial chunks
 * and blocks). */
static void rat_one_group(hy_model_config *c) { c->rat.n_groups = 1; }
static void rat_long_chunks(hy_model_config *c) { c->rat.chunk = 64; }
static void sla_elu(hy_model_config *c) { snprintf(c->sla.feature_map, 16, "elu"); }
static void sla_relu_blocks_of_20(hy_model_config *c) {
  snprintf(c->sla.feature_map, 16, "relu");
  c->sla.block = 20;
}
static void softplus_power(hy_model_config *c) {
  c->softplus.power = 1.7;
  c->softplus.train_len = 32;
}
static void sigmoid_fixed_bias(hy_model_config *c) {
  c->sigmoid.bias_log_n = false;
  c->sigmoid.bias = -2.5;
  c->sigmoid.output_norm = false;
}
static void linear_relu(hy_model_config *c) { snprintf(c->linear.feature_map, 16, "relu"); }
static void linear_identity(hy_model_config *c) { snprintf(c->linear.feature_map, 16, "identity"); }
static void titans_one_layer_memory(hy_model_config *c) {
  c->titans.depth = 1;
  c->titans.window = 0;
}
static void titans_matrix_memory_in_4_heads(hy_model_config *c) {
  c->titans.depth = 1;
  c->titans.heads = 4;
}
/* one head of 96: the memory's P = 73,728 parameters a head, sums that f32 must carry */
static void titans_one_head_chunks_of_8(hy_model_config *c) {
  c->titans.heads = 1;
  c->titans.chunk = 8;
  c->titans.segment = 16;
}
static void titans_matrix_memory_chunks_of_8(hy_model_config *c) {
  titans_one_head_chunks_of_8(c);
  c->titans.depth = 1;
}

static const struct {
  const char *kind, *what;
  void (*set)(hy_model_config *);
} VARIANTS[] = {
    {"attn", "d 96", NULL},
    {"gla", "d 96", NULL},
    {"lightning", "d 96", NULL},
    {"rat", "one group", rat_one_group},
    {"rat", "chunks of 64", rat_long_chunks},
    {"sla", "elu linear branch", sla_elu},
    {"sla", "relu linear branch, blocks of 20", sla_relu_blocks_of_20},
    {"softplus", "power 1.7, relative to 32 tokens", softplus_power},
    {"sigmoid", "bias -2.5, no output norm", sigmoid_fixed_bias},
    {"linear", "relu", linear_relu},
    {"linear", "identity", linear_identity},
    {"titans_mal", "one-layer memory, no window", titans_one_layer_memory},
    {"titans_mal", "one-layer memory in 4 heads", titans_matrix_memory_in_4_heads},
    {"titans_mal", "one memory head, chunks of 8", titans_one_head_chunks_of_8},
    {"titans_mal", "one-layer memory, one head, chunks of 8", titans_matrix_memory_chunks_of_8},
    {"titans_mag", "one-layer memory in 4 heads", titans_matrix_memory_in_4_heads},
    {"titans_mag", "one memory head, chunks of 8", titans_one_head_chunks_of_8},
    {"titans_mag", "one-layer memory, one head, chunks of 8", titans_matrix_memory_chunks_of_8},
    {"titans_mac", "one-layer memory in 4 heads", titans_matrix_memory_in_4_heads},
    {"titans_mac", "one memory head, chunks of 8", titans_one_head_chunks_of_8},
    {"titans_mac", "one-layer memory, one head, chunks of 8", titans_matrix_memory_chunks_of_8},
};

Test(cuda_mixers, every_kind_matches_the_cpu) {
  T_NEED_GPU();
  every_kind(false);
}

Test(cuda_mixers, every_kind_keeps_documents_apart_as_the_cpu) {
  T_NEED_GPU();
  every_kind(true);
}

Test(cuda_mixers, each_kinds_other_settings_match_the_cpu) {
  T_NEED_GPU();
  for (size_t i = 0; i < sizeof VARIANTS / sizeof *VARIANTS; i++) {
    hy_model_config c = config();
    c.d_model = 96;
    c.n_heads = 2;
    if (VARIANTS[i].set) VARIANTS[i].set(&c);
    char label[120];
    snprintf(label, sizeof label, "%s, d 96, 2 heads, T 70", VARIANTS[i].what);
    expect_kind(VARIANTS[i].kind, c, 70, false, label);
  }
}
