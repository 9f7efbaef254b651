/* Validation equals construction: every condition that building a model (hy_model_new and each
 * mixer's create) or a training step asserts with hy_die is checked when the recipe is validated,
 * so a recipe that breaks one is refused with a message naming its key and place, and a recipe
 * that is accepted builds and steps. Each refused recipe below breaks one such condition (the
 * comment says which layer asserts it); the accepted ones sit at the edges of the conditions,
 * and random recipes drawn from edge values are built and stepped whenever they are accepted. */
#include "layers/model.h"
#include "recipes/recipe.h"
#include "recipes/sizes.h"
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void expect_refused(const char *text, int n, const char *const *sets, const char *want) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse(text, "recipes/bad.toml", n, sets, &r, &err), -1,
               "accepted; expected an error containing:\n  %s", want);
  cr_expect(strstr(err.msg, want), "the message\n  %s\ndoes not contain\n  %s", err.msg, want);
}

#define REFUSED(name, text, want)                                                                  \
  Test(refused, name) { expect_refused(text, 0, NULL, want); }

/* layers/model.c: 1 to 64 layers of known kinds */
REFUSED(no_layers, "[model]\nlayers = []\n",
        "recipes/bad.toml:2: [model] layers: expected at least")
REFUSED(too_many_layers, "[model]\nlayers = \"attn x 65\"\n", "65 layers, at most 64")
REFUSED(unknown_kind, "[model]\nlayers = \"mamba\"\n", "unknown layer kind \"mamba\"")
/* layers/attention.c (attn, sigmoid, softplus, sla and titans build on it): heads split d_model
 * into an even head size */
REFUSED(attention_heads, "[model]\nlayers = \"sigmoid\"\nn_heads = 3\n",
        "recipes/bad.toml:3: [model] n_heads = 3 does not divide d_model = 128")
REFUSED(attention_odd_head, "[model]\nlayers = \"softplus\"\nd_model = 24\nn_heads = 8\n",
        "recipes/bad.toml:4: [model] the head size d_model / n_heads = 24 / 8 = 3 is odd")
/* layers/gla.c: its key and value widths split into its heads */
REFUSED(gla_key_width, "[model]\nlayers = \"gla\"\n[layer.gla]\nexpand_k = 0.3\n",
        "recipes/bad.toml:4: [layer.gla] the key width expand_k * d_model = 38")
REFUSED(gla_no_key, "[model]\nlayers = \"gla\"\n[layer.gla]\nexpand_k = 0.01\n",
        "[layer.gla] the key width expand_k * d_model = 1 ")
REFUSED(gla_value_width, "[model]\nlayers = \"gla\"\n[layer.gla]\nheads = 3\nexpand_v = 0.75\n",
        "recipes/bad.toml:5: [layer.gla] the key width")
REFUSED(
    gla_width_beyond_64_bits, "[model]\nlayers = \"gla\"\n[layer.gla]\nexpand_k = 1e300\n",
    "recipes/bad.toml:4: [layer.gla] the key width expand_k * d_model = 1e+300 * 128 or the value "
    "width expand_v * d_model = 1 * 128 is too large")
/* layers/lightning.c and layers/linear_attention.c: heads divide d_model */
REFUSED(lightning_heads, "[model]\nlayers = \"lightning\"\n[layer.lightning]\nheads = 3\n",
        "recipes/bad.toml:4: [layer.lightning] 3 heads do not divide d_model = 128")
REFUSED(linear_heads, "[model]\nlayers = \"linear\"\n[layer.linear]\nheads = 5\n",
        "recipes/bad.toml:4: [layer.linear] 5 heads do not divide d_model = 128")
REFUSED(linear_feature_map, "[layer.linear]\nfeature_map = \"tanh\"\n",
        "[layer.linear] feature_map: expected one of \"identity\", \"elu\", \"relu\"")
/* layers/sigmoid_attention.c: the bias -log(n) needs n = seq_len >= 1 */
REFUSED(sigmoid_length, "[model]\nlayers = \"sigmoid\"\n[train]\nseq_len = 0\n",
        "recipes/bad.toml:4: [train] seq_len: expected an integer >= 1, got 0")
/* layers/softplus_attention.c: power > 0 and finite; length scaling needs a length >= 2 */
REFUSED(softplus_power, "[layer.softplus]\npower = 0\n",
        "[layer.softplus] power: expected a float > 0, got 0")
REFUSED(softplus_infinite_power, "[layer.softplus]\npower = inf\n",
        "[layer.softplus] power: expected a float > 0, got inf")
REFUSED(softplus_short_seq_len, "[model]\nlayers = \"softplus\"\n[train]\nseq_len = 1\n",
        "recipes/bad.toml:4: [layer.softplus] length_scale = true scales by log(t + 1) / "
        "log(train_len), which needs a training length of at least 2, got 1 (train_len = 0: "
        "[train] seq_len)")
REFUSED(softplus_train_len, "[model]\nlayers = \"softplus\"\n[layer.softplus]\ntrain_len = 1\n",
        "recipes/bad.toml:4: [layer.softplus] length_scale = true")
/* layers/sla.c: block >= 1, fractions in [0, 1] */
REFUSED(sla_block, "[layer.sla]\nblock = 0\n", "[layer.sla] block: expected an integer >= 1")
REFUSED(sla_fraction, "[layer.sla]\ncritical = 1.5\n",
        "[layer.sla] critical: expected a float in [0, 1], got 1.5")
/* layers/rat.c: heads split d_model into an even head size, groups split the heads, chunk >= 1,
 * rope_theta > 0 */
REFUSED(rat_heads, "[model]\nlayers = \"rat\"\n[layer.rat]\nheads = 5\n",
        "[layer.rat] 5 heads do not divide d_model = 128")
REFUSED(rat_odd_head, "[model]\nlayers = \"rat\"\n[layer.rat]\nheads = 128\nn_groups = 1\n",
        "recipes/bad.toml:4: [layer.rat] the head size d_model / heads = 128 / 128 = 1 is odd")
REFUSED(rat_groups, "[model]\nlayers = \"rat\"\n[layer.rat]\nn_groups = 3\n",
        "[layer.rat] n_groups = 3 does not divide the 4 heads")
REFUSED(rat_chunk, "[layer.rat]\nchunk = 0\n", "[layer.rat] chunk: expected an integer >= 1")
REFUSED(rat_theta, "[layer.rat]\nrope_theta = 0\n", "[layer.rat] rope_theta: expected a float > 0")
/* layers/titans.c and layers/titans_memory.c: window, persistent >= 0; memory heads >= 1 that
 * split d_model when head_dim = 0; depth 1 or 2; chunk >= 1; a hidden width >= 1 */
REFUSED(titans_window, "[layer.titans]\nwindow = -1\n",
        "[layer.titans] window: expected an integer")
REFUSED(titans_persistent, "[layer.titans]\npersistent = -1\n", "[layer.titans] persistent")
REFUSED(titans_no_heads, "[layer.titans]\nheads = 0\n", "[layer.titans] heads: expected an integer")
REFUSED(titans_heads, "[model]\nlayers = \"titans_mal\"\n[layer.titans]\nheads = 3\n",
        "recipes/bad.toml:4: [layer.titans] heads = 3 does not divide d_model = 128 (head_dim = 0 "
        "makes the memory's heads d_model / heads wide); set head_dim")
REFUSED(titans_depth, "[layer.titans]\ndepth = 3\n", "[layer.titans] depth: expected an integer in")
REFUSED(titans_chunk, "[layer.titans]\nchunk = 0\n", "[layer.titans] chunk: expected an integer")
REFUSED(titans_hidden, "[model]\nlayers = \"titans_mag\"\n[layer.titans]\nexpansion = 1e-9\n",
        "recipes/bad.toml:4: [layer.titans] the memory's hidden width expansion * head width = "
        "1e-09 * 128 is below 1")
REFUSED(titans_hidden_beyond_64_bits,
        "[model]\nlayers = \"titans_mal\"\n[layer.titans]\nexpansion = 1e300\n",
        "[layer.titans] the memory's hidden width expansion * head width = 1e+300 * 128 is too "
        "large")
/* layers/titans.c under sequence parallelism: whole chunks per rank, not the reference form */
REFUSED(titans_slice_chunks,
        "[model]\nlayers = \"titans_mag\"\n[train]\nseq_len = 256\n[layer.titans]\nchunk = 48\n"
        "[dist]\nsp = 2\n",
        "recipes/bad.toml:8: [layer.titans] chunk = 48 must divide each sequence-parallel rank's "
        "slice, [train] seq_len / [dist] sp = 256 / 2 = 128 tokens: the ranks exchange whole "
        "chunks")
REFUSED(titans_slice_reference,
        "[model]\nlayers = \"titans_mal\"\n[layer.titans]\nreference = true\n[dist]\nsp = 2\n",
        "recipes/bad.toml:6: [layer.titans] reference = true has no sequence-parallel form")
/* layers/titans_mac.c: segments of whole chunks; under sequence parallelism, slices of whole
 * segments */
REFUSED(titans_mac_segment,
        "[model]\nlayers = \"titans_mac\"\n[layer.titans]\nchunk = 16\nsegment = 40\n",
        "recipes/bad.toml:5: [layer.titans] segment = 40 must be a multiple of [layer.titans] "
        "chunk = 16: titans_mac hands the memory from segment to segment after a complete chunk")
REFUSED(titans_mac_slice_segments,
        "[model]\nlayers = \"titans_mac\"\n[layer.titans]\nchunk = 16\nsegment = 96\n"
        "[dist]\nsp = 2\n",
        "recipes/bad.toml:7: [layer.titans] segment = 96 must divide each sequence-parallel rank's "
        "slice, [train] seq_len / [dist] sp = 256 / 2 = 128 tokens: the ranks exchange whole "
        "segments")
/* layers/swiglu.c through model.c: an MLP width that fits the kernels */
REFUSED(mlp_width, "[model]\nmlp_ratio = 1e8\n",
        "[model] the MLP width, mlp_ratio * d_model = 1.28e+10 rounded up to a multiple of "
        "mlp_multiple = 64, is too large (at most 2147483647)")
REFUSED(mlp_multiple, "[model]\nmlp_multiple = 9223372036854775807\n",
        "[model] the MLP width, mlp_ratio * d_model = 341.333 rounded up to a multiple of "
        "mlp_multiple = 9223372036854775807, is too large")
/* data/mqar.c and data/loader.c: MQAR's shapes, 32-bit tokens */
REFUSED(mqar_length, "[data]\ndataset = \"mqar\"\n[train]\nseq_len = 63\n",
        "recipes/bad.toml:4: [data.mqar] pairs = 16 needs 4 * pairs <= [train] seq_len = 63, even")
REFUSED(mqar_pairs_beyond_64_bits,
        "[data]\ndataset = \"mqar\"\n[data.mqar]\npairs = 4611686018427387904\n",
        "[data.mqar] pairs = 4611686018427387904 needs 4 * pairs <= [train] seq_len = 256")
REFUSED(mqar_vocab, "[data]\ndataset = \"mqar\"\n[model]\nvocab = 16\n",
        "[data.mqar] pairs = 16 must be at most [model] vocab / 2 - 1 = 7")
REFUSED(vocab_beyond_32_bits, "[model]\nvocab = 2147483648\n",
        "recipes/bad.toml:2: [model] vocab = 2147483648: tokens are 32-bit, so at most 2147483647")
/* dist/dist.c: the ranks an int */
REFUSED(ranks, "[dist]\ndp = 65536\nsp = 65536\n",
        "recipes/bad.toml:3: [dist] dp x sp = 65536 x 65536 ranks: at most 2147483647")
/* tensor/threads.c: an int of threads that OpenMP can start */
REFUSED(threads, "[train]\nthreads = 4294967296\n",
        "recipes/bad.toml:2: [train] threads: expected an integer in [0, 4096], got 4294967296")
/* tensor/tensor.c and the step arena: every element count fits in 64 bits */
REFUSED(batch_beyond_64_bits, "[train]\nbatch = 9223372036854775807\n",
        "recipes/bad.toml:2: a micro-batch's tokens, 9223372036854775807 (train.batch) x 256 "
        "(train.seq_len): more than 2^63 - 1")

/* ---- accepted recipes build and step ---- */

/* The model built on the CPU and one forward and backward pass on a micro-batch of the recipe's
 * shape: whatever a layer or an op aborts on, the recipe should have been refused for. */
static void build_and_step(const hy_recipe *r) {
  hy_recipe_sizes s;
  hy_size_term fault;
  cr_assert_eq(hy_recipe_sizes_of(r, &s, &fault), 0, "%s", fault.what);
  hy_model_config cfg = hy_recipe_model_config(r);
  hy_model *m = hy_model_new(&cfg, 1);
  cr_expect_eq(hy_params_count(&m->params), s.params);
  int64_t B = r->train.batch, T = r->train.seq_len;
  hy_tensor *x = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  hy_tensor *y = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  for (int64_t i = 0; i < B * T; i++) {
    ((int32_t *)x->data)[i] = (int32_t)(i * 5 % r->model.vocab);
    ((int32_t *)y->data)[i] = (int32_t)(i * 3 % r->model.vocab);
  }
  hy_tensor *loss = hy_model_loss(m, x, y, -100);
  cr_expect(isfinite(hy_item(loss)));
  hy_backward(loss);
  hy_step_reset();
  hy_model_free(m);
}

static void expect_builds(const char *text) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse(text, "recipes/edge.toml", 0, NULL, &r, &err), 0, "%s\n%s", err.msg,
               text);
  build_and_step(&r);
}

#define SMALL "[train]\nbatch = 2\nseq_len = 5\n"
#define ACCEPTED(name, text)                                                                       \
  Test(accepted, name) { expect_builds(text); }

ACCEPTED(gla_one_key_per_head, SMALL "[model]\nlayers = \"gla\"\n[layer.gla]\nexpand_k = 0.03125\n")
ACCEPTED(titans_hidden_width_one,
         SMALL "[model]\nlayers = \"titans_mal\"\n[layer.titans]\nexpansion = 0.0078125\n")
ACCEPTED(titans_heads_with_a_head_dim,
         SMALL "[model]\nlayers = \"titans_mag\"\n[layer.titans]\nheads = 3\nhead_dim = 4\n")
ACCEPTED(titans_mac_segment_of_one_chunk,
         SMALL "[model]\nlayers = \"titans_mac\"\n[layer.titans]\nchunk = 2\nsegment = 2\n")
ACCEPTED(softplus_train_len_two, "[train]\nbatch = 2\nseq_len = 1\n[model]\nlayers = "
                                 "\"softplus\"\n[layer.softplus]\ntrain_len = 2\n")
ACCEPTED(softplus_unscaled_single_token, "[train]\nbatch = 2\nseq_len = 1\n[model]\nlayers = "
                                         "\"softplus\"\n[layer.softplus]\nlength_scale = false\n")
ACCEPTED(rat_groups_equal_heads, SMALL "[model]\nlayers = \"rat\"\n[layer.rat]\nn_groups = 4\n")
ACCEPTED(smallest_model,
         "[train]\nbatch = 1\nseq_len = 1\n[model]\nvocab = 2\nd_model = 8\n"
         "n_heads = 4\nlayers = \"attn,gla,lightning,linear,sigmoid,sla,rat,"
         "titans_mal,titans_mag,titans_mac,conv\"\n[layer.softplus]\nlength_scale = "
         "false\n")

/* A width above 0 is at least one multiple: a tiny ratio gives one multiple of 64, not the
 * default width. */
Test(accepted, a_tiny_mlp_ratio_makes_one_multiple) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse("[model]\nmlp_ratio = 1e-12\n", "x.toml", 0, NULL, &r, &err), 0);
  cr_expect_eq(hy_recipe_model_config(&r).mlp_hidden, 64);
}

/* Random recipes from edge values of the model's keys: each accepted one builds and steps, and
 * counts the parameters the model has. */
Test(accepted, random_edge_recipes_build_and_step) {
  static const char *const kinds[] = {"attn",       "gla",        "lightning",  "linear",
                                      "sigmoid",    "softplus",   "sla",        "rat",
                                      "titans_mal", "titans_mag", "titans_mac", "conv"};
  static const char *const choices[][7] = {
      {"model.d_model", "8", "12", "16", "24", "32"},
      {"model.n_heads", "1", "2", "3", "4", "8"},
      {"model.vocab", "2", "3", "50"},
      {"model.mlp_ratio", "1e-9", "0.5", "2.6666666666666665"},
      {"model.mlp_multiple", "1", "3", "64"},
      {"model.tied_embeddings", "true", "false"},
      {"train.batch", "1", "2"},
      {"train.seq_len", "1", "2", "3", "5", "8", "17"},
      {"layer.attn.window", "0", "1", "2"},
      {"layer.attn.naive", "true", "false"},
      {"layer.gla.heads", "0", "1", "2", "3", "4"},
      {"layer.gla.expand_k", "0.05", "0.25", "0.5", "1", "1.5"},
      {"layer.gla.expand_v", "0.05", "0.25", "0.5", "1", "1.5"},
      {"layer.gla.gate_rank", "1", "2"},
      {"layer.gla.chunk", "1", "2", "3", "64"},
      {"layer.gla.recurrent", "true", "false"},
      {"layer.lightning.heads", "0", "1", "2", "3"},
      {"layer.lightning.chunk", "1", "3", "64"},
      {"layer.linear.heads", "0", "1", "2", "3"},
      {"layer.linear.feature_map", "\"identity\"", "\"elu\"", "\"relu\""},
      {"layer.linear.recurrent", "true", "false"},
      {"layer.conv.kernel", "1", "2", "3", "64"},
      {"layer.sigmoid.bias_log_n", "true", "false"},
      {"layer.sigmoid.output_norm", "true", "false"},
      {"layer.softplus.length_scale", "true", "false"},
      {"layer.softplus.train_len", "0", "1", "2", "3"},
      {"layer.softplus.naive", "true", "false"},
      {"layer.sla.block", "1", "2", "3", "64"},
      {"layer.sla.critical", "0", "0.5", "1"},
      {"layer.sla.negligible", "0", "0.5", "1"},
      {"layer.sla.feature_map", "\"softmax\"", "\"elu\"", "\"relu\""},
      {"layer.rat.chunk", "1", "2", "3", "16"},
      {"layer.rat.n_groups", "1", "2", "3"},
      {"layer.rat.heads", "0", "1", "2", "4"},
      {"layer.titans.chunk", "1", "2", "3", "64"},
      {"layer.titans.depth", "1", "2"},
      {"layer.titans.expansion", "0.01", "0.5", "1", "4"},
      {"layer.titans.heads", "1", "2", "3"},
      {"layer.titans.head_dim", "0", "2", "3", "4"},
      {"layer.titans.window", "0", "1", "2", "128"},
      {"layer.titans.persistent", "0", "1", "4"},
      {"layer.titans.reference", "true", "false"},
      {"layer.titans.segment", "1", "2", "3", "4", "64", "128"},
  };
  enum { N_CHOICES = sizeof choices / sizeof *choices, TRIES = 300 };
  hy_rng rng = hy_rng_new(18);
  int accepted = 0;
  for (int t = 0; t < TRIES; t++) {
    char sets[N_CHOICES + 1][96];
    const char *ptrs[N_CHOICES + 1];
    int n = 0;
    int n_layers = 1 + (int)(hy_rng_u64(&rng) % 3);
    int len = snprintf(sets[n], sizeof sets[n], "model.layers=[");
    for (int l = 0; l < n_layers; l++)
      len += snprintf(sets[n] + len, sizeof sets[n] - (size_t)len, "%s\"%s\"", l ? "," : "",
                      kinds[hy_rng_u64(&rng) % (sizeof kinds / sizeof *kinds)]);
    snprintf(sets[n] + len, sizeof sets[n] - (size_t)len, "]");
    n++;
    for (int c = 0; c < N_CHOICES; c++) {
      int k = 0;
      while (k < 6 && choices[c][k + 1]) k++;
      snprintf(sets[n++], sizeof sets[0], "%s=%s", choices[c][0],
               choices[c][1 + hy_rng_u64(&rng) % (uint64_t)k]);
    }
    for (int i = 0; i < n; i++) ptrs[i] = sets[i];
    hy_recipe r;
    hy_error err;
    if (hy_recipe_parse("", "random.toml", n, ptrs, &r, &err)) continue;
    accepted++;
    build_and_step(&r);
  }
  cr_log_info("%d of %d random recipes accepted, built and stepped", accepted, TRIES);
  cr_expect(accepted >= TRIES / 10, "only %d of %d accepted: the draws test too little", accepted,
            TRIES);
}
