/* Recipes: every key read as written, defaults, overrides, the TOML writer (round trip and
 * Python's tomllib), docs/recipes.md kept current, and bad recipes with their exact messages. */
#include "recipes/recipe.h"
#include "recipes/schema.h"
#include "tests/support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static hy_recipe parse_ok(const char *text, int n_sets, const char *const *sets) {
  hy_recipe r;
  hy_error err = {{0}};
  int rc = hy_recipe_parse(text, "recipes/test.toml", n_sets, sets, &r, &err);
  cr_assert_eq(rc, 0, "unexpected error: %s", err.msg);
  return r;
}

/* ---- good recipes ---- */

Test(recipe, a_full_recipe_reads_every_value_as_written) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load(t_source_path("tests/recipes/good.toml"), 0, NULL, &r, &err), 0, "%s",
               err.msg);
  cr_expect_str_eq(r.run.name, "good-run");
  cr_expect_eq(r.run.seed, 1234);
  cr_expect_str_eq(r.run.out, "runs/elsewhere");
  cr_expect_eq(r.model.vocab, 512);
  cr_expect_eq(r.model.d_model, 96);
  cr_expect_eq(r.model.n_heads, 6);
  cr_expect_eq(r.model.n_layers, 3);
  for (int i = 0; i < 3; i++) cr_expect_str_eq(r.model.layers[i], "attn");
  cr_expect_eq(r.model.mlp_ratio, 3.5);
  cr_expect_eq(r.model.mlp_multiple, 32);
  cr_expect_eq(r.model.tied_embeddings, false);
  cr_expect_eq(r.model.rope_theta, 500000.0);
  cr_expect_eq(r.model.norm_eps, 1e-5);
  cr_expect_eq(r.model.init_std, 0.01);
  cr_expect_eq(r.model.scale_out_init, false);
  cr_expect_eq(r.layer_attn.naive, true);
  cr_expect_eq(r.train.batch, 4);
  cr_expect_eq(r.train.seq_len, 64);
  cr_expect_eq(r.train.steps, 2000);
  cr_expect_eq(r.train.stop_after, 500);
  cr_expect_eq(r.train.grad_accum, 2);
  cr_expect_eq(r.train.grad_clip, 0.5);
  cr_expect_eq(r.train.log_every, 5);
  cr_expect_eq(r.train.eval_every, 0);
  cr_expect_eq(r.train.eval_batches, 4);
  cr_expect_eq(r.train.checkpoint_every, 0);
  cr_expect_eq(r.train.keep_checkpoints, 3);
  cr_expect_eq(r.train.precision, HY_RECIPE_F64);
  cr_expect_eq(r.train.on_nan, HY_RECIPE_SKIP);
  cr_expect_eq(r.train.threads, 2);
  cr_expect_eq(r.optim.name, HY_RECIPE_SGD);
  cr_expect_eq(r.optim.lr, 3e-4);
  cr_expect_eq(r.optim.min_lr_ratio, 0.0);
  cr_expect_eq(r.optim.betas[0], 0.8);
  cr_expect_eq(r.optim.betas[1], 0.99);
  cr_expect_eq(r.optim.eps, 1e-10);
  cr_expect_eq(r.optim.weight_decay, 0.0);
  cr_expect_eq(r.optim.momentum, 0.5);
  cr_expect_eq(r.optim.n_no_decay, 2);
  cr_expect_str_eq(r.optim.no_decay[0], "norm");
  cr_expect_str_eq(r.optim.no_decay[1], "bias; not # a comment");
  cr_expect_eq(r.optim.warmup, 0);
  cr_expect_eq(r.optim.schedule, HY_WSD);
  cr_expect_eq(r.optim.decay_fraction, 1.0);
  cr_expect_str_eq(r.data.dataset, "data/tiny#1.h5");
  cr_expect_eq(r.data.sampling, HY_RECIPE_SEQUENTIAL);
  cr_expect_eq(r.data.mqar.pairs, 8);
  cr_expect_eq(r.data.mqar.power_a, 0.5);
  cr_expect_eq(r.data.mqar.train_examples, 1000);
  cr_expect_eq(r.data.mqar.val_examples, 100);
  cr_expect_eq(r.dist.dp, 2);
  cr_expect_eq(r.dist.sp, 4);
}

Test(recipe, an_empty_recipe_gives_every_default) {
  hy_recipe r = parse_ok("", 0, NULL);
  cr_expect_str_eq(r.run.name, "test"); /* recipes/test.toml */
  cr_expect_eq(r.run.seed, 0);
  cr_expect_str_eq(r.run.out, "runs/test");
  cr_expect_eq(r.model.vocab, 256);
  cr_expect_eq(r.model.d_model, 128);
  cr_expect_eq(r.model.n_heads, 4);
  cr_expect_eq(r.model.n_layers, 2);
  cr_expect_str_eq(r.model.layers[0], "attn");
  cr_expect_str_eq(r.model.layers[1], "attn");
  cr_expect_eq(r.model.mlp_ratio, 8.0 / 3.0);
  cr_expect_eq(r.model.mlp_multiple, 64);
  cr_expect_eq(r.model.tied_embeddings, true);
  cr_expect_eq(r.model.rope_theta, 10000.0);
  cr_expect_eq(r.model.norm_eps, 1e-6);
  cr_expect_eq(r.model.init_std, 0.02);
  cr_expect_eq(r.model.scale_out_init, true);
  cr_expect_eq(r.layer_attn.naive, false);
  cr_expect_eq(r.train.batch, 8);
  cr_expect_eq(r.train.seq_len, 256);
  cr_expect_eq(r.train.steps, 1000);
  cr_expect_eq(r.train.stop_after, 0);
  cr_expect_eq(r.train.grad_accum, 1);
  cr_expect_eq(r.train.grad_clip, 1.0);
  cr_expect_eq(r.train.log_every, 10);
  cr_expect_eq(r.train.eval_every, 200);
  cr_expect_eq(r.train.eval_batches, 16);
  cr_expect_eq(r.train.checkpoint_every, 500);
  cr_expect_eq(r.train.keep_checkpoints, 2);
  cr_expect_eq(r.train.precision, HY_RECIPE_F32);
  cr_expect_eq(r.train.on_nan, HY_RECIPE_STOP);
  cr_expect_eq(r.train.threads, 0);
  cr_expect_eq(r.optim.name, HY_RECIPE_ADAMW);
  cr_expect_eq(r.optim.lr, 1e-3);
  cr_expect_eq(r.optim.min_lr_ratio, 0.1);
  cr_expect_eq(r.optim.betas[0], 0.9);
  cr_expect_eq(r.optim.betas[1], 0.95);
  cr_expect_eq(r.optim.eps, 1e-8);
  cr_expect_eq(r.optim.weight_decay, 0.1);
  cr_expect_eq(r.optim.momentum, 0.9);
  cr_expect_eq(r.optim.n_no_decay, 3);
  cr_expect_str_eq(r.optim.no_decay[0], "norm");
  cr_expect_str_eq(r.optim.no_decay[1], "bias");
  cr_expect_str_eq(r.optim.no_decay[2], "embed");
  cr_expect_eq(r.optim.warmup, 100);
  cr_expect_eq(r.optim.schedule, HY_COSINE);
  cr_expect_eq(r.optim.decay_fraction, 0.2);
  cr_expect_str_eq(r.data.dataset, "shakespeare");
  cr_expect_eq(r.data.sampling, HY_RECIPE_RANDOM);
  cr_expect_eq(r.data.mqar.pairs, 16);
  cr_expect_eq(r.data.mqar.power_a, 0.01);
  cr_expect_eq(r.data.mqar.train_examples, 100000);
  cr_expect_eq(r.data.mqar.val_examples, 3000);
  cr_expect_eq(r.dist.dp, 1);
  cr_expect_eq(r.dist.sp, 1);
}

Test(recipe, the_run_name_defaults_to_the_file_name) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse("", NULL, 0, NULL, &r, &err), 0, "%s", err.msg);
  cr_expect_str_eq(r.run.name, "recipe");
  cr_expect_str_eq(r.run.out, "runs/recipe");
  cr_assert_eq(hy_recipe_parse("", "runs/x/ckpt_100.h5", 0, NULL, &r, &err), 0, "%s", err.msg);
  cr_expect_str_eq(r.run.name, "recipe");
  cr_assert_eq(hy_recipe_parse("[run]\nname = \"mine\"\n", "a/b.toml", 0, NULL, &r, &err), 0);
  cr_expect_str_eq(r.run.out, "runs/mine"); /* out follows the name it ends up with */
  cr_assert_eq(hy_recipe_load(t_source_path("recipes/quickstart.toml"), 0, NULL, &r, &err), 0, "%s",
               err.msg);
  cr_expect_str_eq(r.run.name, "quickstart");
  cr_expect_str_eq(r.run.out, "runs/quickstart");
}

Test(recipe, the_quickstart_recipe_says_what_it_should) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load(t_source_path("recipes/quickstart.toml"), 0, NULL, &r, &err), 0, "%s",
               err.msg);
  cr_expect_eq(r.model.d_model, 128);
  cr_expect_eq(r.model.n_heads, 4);
  cr_expect_eq(r.model.n_layers, 4); /* the 3:1 hybrid the README describes */
  const char *kinds[] = {"gla", "gla", "gla", "attn"};
  for (int i = 0; i < 4; i++) cr_expect_str_eq(r.model.layers[i], kinds[i]);
  cr_expect_eq(r.train.batch, 16);
  cr_expect_eq(r.train.seq_len, 256);
  cr_expect_eq(r.train.steps, 1500);
  cr_expect_eq(r.optim.lr, 2e-3);
  cr_expect_str_eq(r.data.dataset, "shakespeare");
}

/* Every recipe that ships with hyla loads. */
Test(recipe, every_shipped_recipe_loads) {
  const char *names[] = {"quickstart",      "softmax-tiny",          "gla-tiny",
                         "lightning-tiny",  "linear-tiny",           "hybrid-3to1-tiny",
                         "sigmoid-tiny",    "softplus-tiny",         "sla-tiny",
                         "rat-tiny",        "rat-local-hybrid-tiny", "titans-mal-tiny",
                         "titans-mag-tiny", "titans-mac-tiny"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "recipes/%s.toml", names[i]);
    hy_recipe r;
    hy_error err = {{0}};
    cr_expect_eq(hy_recipe_load(t_source_path(rel), 0, NULL, &r, &err), 0, "%s: %s", rel, err.msg);
    cr_expect_str_eq(r.run.name, names[i]);
  }
}

Test(recipe, a_layer_pattern_expands_in_order) {
  hy_recipe r = parse_ok("[model]\nlayers = \"attn,attn x 3\"\n", 0, NULL);
  cr_assert_eq(r.model.n_layers, 6);
  for (int i = 0; i < 6; i++) cr_expect_str_eq(r.model.layers[i], "attn");
  cr_expect_eq(r.model.layers[6][0], 0);
  r = parse_ok("[model]\nlayers = \" attn , attn \"\n", 0, NULL);
  cr_expect_eq(r.model.n_layers, 2);
  r = parse_ok("[model]\nlayers = \"attn x64\"\n", 0, NULL);
  cr_expect_eq(r.model.n_layers, HY_MAX_LAYERS);
}

Test(recipe, overrides_apply_in_order_after_the_file) {
  const char *sets[] = {"optim.lr=3e-4",         "model.layers=[\"attn\"]",
                        "layer.attn.naive=true", " data.dataset = \"mqar\" ",
                        "optim.lr=5e-4",         "optim.no_decay=[\"norm\"]"};
  hy_recipe r = parse_ok("[model]\nlayers = \"attn x 4\"\n[optim]\nlr = 1e-2\n", 6, sets);
  cr_expect_eq(r.optim.lr, 5e-4);
  cr_expect_eq(r.model.n_layers, 1);
  cr_expect_eq(r.model.layers[1][0], 0, "the list is replaced, not overwritten in place");
  cr_expect_eq(r.layer_attn.naive, true);
  cr_expect_str_eq(r.data.dataset, "mqar");
  cr_expect_eq(r.optim.n_no_decay, 1);
  /* The same recipe written out in full compares equal, bytes and all. */
  hy_recipe same = parse_ok("[model]\nlayers = [\"attn\"]\n[layer.attn]\nnaive = true\n[optim]\n"
                            "lr = 5e-4\nno_decay = [\"norm\"]\n[data]\ndataset = \"mqar\"\n",
                            0, NULL);
  cr_expect(!memcmp(&r, &same, sizeof r));
}

Test(recipe, toml_details) {
  /* Comments, ';' and '#' inside strings, escapes, literal strings, underscores, arrays over
   * lines, CRLF, and an integer where a float goes. */
  hy_recipe r = parse_ok(
      "# top\r\n[run] # c\r\nname = \"a;b ;c#d\\t\\\"q\\\"\\\\\\u00e9\"\r\n"
      "out = 'C:\\runs\\x' # c\n[model]\nlayers = [ # c\n\n  \"attn\" ,\n  # c\n  \"attn\",\n"
      "]\nrope_theta = 1_000\n[ optim ]\nbetas = [0, 0.5]\n",
      0, NULL);
  cr_expect_str_eq(r.run.name, "a;b ;c#d\t\"q\"\\\xc3\xa9");
  cr_expect_str_eq(r.run.out, "C:\\runs\\x");
  cr_expect_eq(r.model.n_layers, 2);
  cr_expect_eq(r.model.rope_theta, 1000.0);
  cr_expect_eq(r.optim.betas[0], 0.0);
  cr_expect_eq(r.optim.betas[1], 0.5);
}

Test(recipe, the_model_config_follows_the_recipe) {
  const char *sets[] = {"train.precision=\"f64\"", "layer.attn.naive=true"};
  hy_recipe r = parse_ok("[model]\nd_model = 96\nn_heads = 3\nlayers = \"attn x 3\"\n"
                         "tied_embeddings = false\n",
                         2, sets);
  hy_model_config c = hy_recipe_model_config(&r);
  cr_expect_eq(c.dtype, HY_F64);
  cr_expect_eq(c.vocab, 256);
  cr_expect_eq(c.d_model, 96);
  cr_expect_eq(c.n_heads, 3);
  cr_expect_eq(c.mlp_hidden, 256, "8/3 * 96 = 256 exactly: no extra multiple of 64");
  cr_expect_eq(c.n_layers, 3);
  cr_expect_str_eq(c.layers[2], "attn");
  cr_expect_eq(c.tied_embeddings, false);
  cr_expect_eq(c.rope_theta, 10000.0);
  cr_expect_eq(c.norm_eps, 1e-6);
  cr_expect_eq(c.init_std, 0.02);
  cr_expect_eq(c.scale_out_init, true);
  cr_expect_eq(c.naive_attention, true);
  r = parse_ok("", 0, NULL);
  c = hy_recipe_model_config(&r);
  cr_expect_eq(c.dtype, HY_F32);
  cr_expect_eq(c.mlp_hidden, 384, "8/3 * 128 = 341.3, up to a multiple of 64");
  cr_expect_eq(c.naive_attention, false);
  r = parse_ok("[model]\nmlp_ratio = 4\nmlp_multiple = 1\n", 0, NULL);
  cr_expect_eq(hy_recipe_model_config(&r).mlp_hidden, 512);
  r = parse_ok("[model]\nmlp_ratio = 2.2\nd_model = 1600\n", 0, NULL);
  cr_expect_eq(hy_recipe_model_config(&r).mlp_hidden, 3520, "2.2 * 1600 / 64 is 55 + 1e-14");
}

/* ---- the writer ---- */

/* Python's tomllib reads text; skipped, with a warning, where python3 is missing. */
static void expect_tomllib_reads(const char *text) {
  if (system("python3 -c 'import tomllib' >/dev/null 2>&1") != 0) {
    cr_log_warn("python3 with tomllib not found: the TOML is not checked against it");
    return;
  }
  char path[] = "/tmp/hyla_recipe_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs(text, f);
  fclose(f);
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import tomllib,sys; tomllib.load(open(sys.argv[1],\"rb\"))' %s", path);
  int rc = system(cmd);
  unlink(path);
  cr_expect_eq(rc, 0, "tomllib refuses:\n%s", text);
}

/* to_toml -> parse gives the same bytes, and tomllib reads the text. */
static void expect_round_trip(const hy_recipe *r) {
  char *text = hy_recipe_to_toml(r);
  cr_assert(text);
  hy_recipe back;
  memset(&back, 0, sizeof back);
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse(text, "resolved.toml", 0, NULL, &back, &err), 0, "%s\n%s", err.msg,
               text);
  cr_expect(!memcmp(r, &back, sizeof back), "the recipe read back differs:\n%s", text);
  char *again = hy_recipe_to_toml(&back);
  cr_expect_str_eq(again, text);
  expect_tomllib_reads(text);
  free(again);
  free(text);
}

Test(recipe, the_written_recipe_reads_back_the_same) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load(t_source_path("tests/recipes/good.toml"), 0, NULL, &r, &err), 0);
  expect_round_trip(&r);
  r = parse_ok("", 0, NULL);
  expect_round_trip(&r);
}

Test(recipe, the_writer_copes_with_the_longest_values) {
  /* 64 layers and 16 long list items need arrays spread over lines; the longest dataset path and
   * strings with quotes, backslashes, tabs and non-ASCII need the right quoting; extreme numbers
   * need every digit. */
  char text[8192], path[256];
  memset(path, 'p', 185);
  path[185] = 0;
  int n = snprintf(text, sizeof text,
                   "[run]\nname = \"it's \\\"q\\\" \\\\ \\t \\u00e9\"\nseed = 9223372036854775807\n"
                   "[model]\nlayers = \"attn x 64\"\nmlp_ratio = 0.1\nnorm_eps = 5e-324\n"
                   "rope_theta = 1.7976931348623157e308\n[train]\ngrad_clip = -0.0\n"
                   "[data]\ndataset = \"%s\"\n[optim]\nno_decay = [\n",
                   path);
  for (int i = 0; i < HY_RECIPE_LIST_MAX; i++)
    n += snprintf(text + n, sizeof text - (size_t)n,
                  "  'item %02d with \"quotes\" and \\backslashes\\ to fill its line...',\n", i);
  snprintf(text + n, sizeof text - (size_t)n, "]\n");
  hy_recipe r = parse_ok(text, 0, NULL);
  cr_expect_eq(r.model.n_layers, 64);
  cr_expect_eq(r.optim.n_no_decay, HY_RECIPE_LIST_MAX);
  cr_expect_eq(r.run.seed, INT64_MAX);
  cr_expect(signbit(r.train.grad_clip));
  expect_round_trip(&r);
}

/* ---- TOML 1.0 and --set ---- */

/* TOML 1.0 in full: a section written as a header, as dotted keys or as an inline table is the
 * same section. */
Test(recipe, sections_read_alike_in_every_form) {
  hy_recipe a = parse_ok("run = { name = \"t\", seed = 3 }\nmodel.d_model = 64\n"
                         "model . layers = [\"attn\"]\nlayer.attn = { naive = true }\n"
                         "data = { mqar = { pairs = 4 } }\n'optim'.\"lr\" = 3e-4\n",
                         0, NULL);
  hy_recipe b = parse_ok("[run]\nname = \"t\"\nseed = 3\n[model]\nd_model = 64\n"
                         "layers = [\"attn\"]\n[layer.attn]\nnaive = true\n[data.mqar]\npairs = 4\n"
                         "[optim]\nlr = 3e-4\n",
                         0, NULL);
  cr_expect_str_eq(a.run.name, "t");
  cr_expect_eq(a.model.d_model, 64);
  cr_expect_eq(a.layer_attn.naive, true);
  cr_expect_eq(a.data.mqar.pairs, 4);
  cr_expect_eq(a.optim.lr, 3e-4);
  cr_expect(!memcmp(&a, &b, sizeof a));
}

Test(recipe, every_string_form) {
  hy_recipe r =
      parse_ok("[run]\n"
               "name = \"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u00e9\\U0001F600\"\n"
               "out = 'C:\\runs\\\"x\"'\n"
               "[data]\n"
               "dataset = \"\"\"\nmulti\\\n    line \"quoted\" \"\"text\"\"\"\"\n"
               "[optim]\n"
               "no_decay = ['''\nraw\\n 'lines'\n''', \"\"\"two\nlines\"\"\", ''''q''']\n",
               0, NULL);
  cr_expect_str_eq(r.run.name, "a\"b\\c\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  cr_expect_str_eq(r.run.out, "C:\\runs\\\"x\"");
  /* The newline after the opening quotes goes; a backslash at a line's end joins the lines. */
  cr_expect_str_eq(r.data.dataset, "multiline \"quoted\" \"\"text\"");
  cr_expect_eq(r.optim.n_no_decay, 3);
  cr_expect_str_eq(r.optim.no_decay[0], "raw\\n 'lines'\n");
  cr_expect_str_eq(r.optim.no_decay[1], "two\nlines");
  cr_expect_str_eq(r.optim.no_decay[2], "'q");
  expect_round_trip(&r);
}

Test(recipe, every_number_form) {
  hy_recipe r = parse_ok("[train]\nsteps = 0x1F\nbatch = 0o17\nseq_len = 0b100_0000\n"
                         "eval_batches = 1_000\nlog_every = +7\ngrad_clip = -0.0\n"
                         "[run]\nseed = 0xdead_BEEF\n"
                         "[optim]\nlr = 3E-4\nweight_decay = 1_0.5e-0_3\neps = 1e+2\n"
                         "[model]\nmlp_ratio = 4\nrope_theta = 5_000.25\n",
                         0, NULL);
  cr_expect_eq(r.train.steps, 31);
  cr_expect_eq(r.train.batch, 15);
  cr_expect_eq(r.train.seq_len, 64);
  cr_expect_eq(r.train.eval_batches, 1000);
  cr_expect_eq(r.train.log_every, 7);
  cr_expect(r.train.grad_clip == 0 && signbit(r.train.grad_clip));
  cr_expect_eq(r.run.seed, 0xdeadbeef);
  cr_expect_eq(r.optim.lr, 3e-4);
  cr_expect_eq(r.optim.weight_decay, 10.5e-3);
  cr_expect_eq(r.optim.eps, 100.0);
  cr_expect_eq(r.model.mlp_ratio, 4.0);
  cr_expect_eq(r.model.rope_theta, 5000.25);
}

/* --set: TOML, but bare text for keys that take strings. */
Test(recipe, overrides_take_bare_strings) {
  const char *bare[] = {"run.out=/tmp/x",         "run.name= my run ",
                        "optim.schedule=wsd",     "model.layers=attn x 3",
                        "optim.no_decay=norm, b", "data.dataset=it's \"q\" \\ \xc3\xa9",
                        "train.precision=f64"};
  const char *toml[] = {"run.out=\"/tmp/x\"",
                        "run.name='my run'",
                        "optim.schedule=\"wsd\"",
                        "model.layers=[\"attn\", 'attn', \"\"\"attn\"\"\"]",
                        "optim.no_decay=[\"norm\", \"b\"]",
                        "data.dataset=\"it's \\\"q\\\" \\\\ \\u00e9\"",
                        "train.precision='f64'"};
  hy_recipe a = parse_ok("", 7, bare), b = parse_ok("", 7, toml);
  cr_expect_str_eq(a.run.out, "/tmp/x");
  cr_expect_str_eq(a.run.name, "my run");
  cr_expect_eq(a.optim.schedule, HY_WSD);
  cr_expect_eq(a.model.n_layers, 3);
  cr_expect_eq(a.optim.n_no_decay, 2);
  cr_expect_str_eq(a.optim.no_decay[1], "b");
  cr_expect_str_eq(a.data.dataset, "it's \"q\" \\ \xc3\xa9");
  cr_expect_eq(a.train.precision, HY_RECIPE_F64);
  cr_expect(!memcmp(&a, &b, sizeof a));
  /* A value that is TOML stays TOML: an array, an empty one; bare digits are a string's text. */
  const char *more[] = {"optim.no_decay=[]", "run.name=123", "model.layers=[\"attn\"]"};
  a = parse_ok("", 3, more);
  cr_expect_eq(a.optim.n_no_decay, 0);
  cr_expect_str_eq(a.run.name, "123");
  cr_expect_eq(a.model.n_layers, 1);
}

/* ---- docs/recipes.md ---- */

Test(recipe, docs_recipes_md_is_current) {
  char *want = NULL;
  size_t size = 0;
  FILE *mem = open_memstream(&want, &size);
  hy_recipe_write_docs(mem);
  fclose(mem);
  const char *path = t_source_path("docs/recipes.md");
  if (getenv("HYLA_UPDATE_DOCS")) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(want, f);
    fclose(f);
  }
  FILE *f = fopen(path, "rb");
  cr_assert(f, "cannot open %s", path);
  char *have = calloc(1, size + 2);
  size_t got = fread(have, 1, size + 1, f);
  fclose(f);
  cr_expect(got == size && !memcmp(have, want, size),
            "%s differs from what hy_recipe_write_docs writes; rewrite it with "
            "HYLA_UPDATE_DOCS=1 test_recipe --filter 'recipe/docs*'",
            path);
  free(have);
  free(want);
}

/* ---- bad recipes: each message names the place, what was found and what was expected ---- */

static void expect_failure(const char *text, int n_sets, const char *const *sets,
                           const char *want) {
  hy_recipe r;
  hy_error err = {{0}};
  int rc = hy_recipe_parse(text, "recipes/bad.toml", n_sets, sets, &r, &err);
  cr_assert_eq(rc, -1, "accepted; expected an error containing:\n  %s", want);
  cr_expect(strstr(err.msg, want), "the message\n  %s\ndoes not contain\n  %s", err.msg, want);
}

#define BAD(name, text, want)                                                                      \
  Test(bad_recipe, name) { expect_failure(text, 0, NULL, want); }
#define BAD_SET(name, set, want)                                                                   \
  Test(bad_recipe, name) {                                                                         \
    const char *sets[] = {set};                                                                    \
    expect_failure("", 1, sets, want);                                                             \
  }

BAD(unknown_key, "[optim]\nlrr = 1e-3\n",
    "recipes/bad.toml:2: unknown key 'lrr' in [optim]; did you mean 'lr'?")
BAD(key_in_the_wrong_section, "[train]\nlr = 1e-3\n",
    "recipes/bad.toml:2: unknown key 'lr' in [train]; it belongs in [optim]")
BAD(key_of_two_other_sections, "[model]\nname = \"x\"\n",
    "recipes/bad.toml:2: unknown key 'name' in [model]; it belongs in [run] or [optim]")
BAD(junk_after_a_section_header, "[optim] lr = 1\n",
    "recipes/bad.toml:1:9: error while parsing table header: expected a comment or whitespace, "
    "saw 'l'")
BAD(nested_array, "[model]\nlayers = [\n  [\"attn\"],\n]\n",
    "recipes/bad.toml:2: [model] layers: expected a quoted layer kind, got [\"attn\"] (an array)")
BAD(semicolon_is_not_a_comment, "[optim]\nlr = 1e-3 ; not TOML\n",
    "recipes/bad.toml:2:11: lr: error while parsing key-value pair: expected a comment or "
    "whitespace, saw ';'")
BAD(unknown_key_far_from_any, "[dist]\nfoo = 1\n",
    "recipes/bad.toml:2: unknown key 'foo' in [dist]; the keys are 'dp', 'sp'")
BAD(unknown_section, "[run]\n[optm]\nlr = 1e-3\n",
    "recipes/bad.toml:2: unknown section [optm]; did you mean [optim]?")
BAD(string_for_int, "[model]\nd_model = \"128\"\n",
    "recipes/bad.toml:2: [model] d_model: expected an integer >= 8, got \"128\" (a string)")
BAD(int_for_bool, "[model]\ntied_embeddings = 1\n",
    "recipes/bad.toml:2: [model] tied_embeddings: expected true or false, got 1 (an integer)")
BAD(float_for_int, "[train]\nsteps = 1.5\n",
    "recipes/bad.toml:2: [train] steps: expected an integer >= 1, got 1.5 (a float)")
BAD(bare_word_for_string, "[data]\ndataset = shakespeare\n",
    "recipes/bad.toml:2:11: dataset: error while parsing value: could not determine value type "
    "(strings are quoted: \"shakespeare\")")
BAD(negative_lr, "[optim]\nlr = -3e-4\n",
    "recipes/bad.toml:2: [optim] lr: expected a float > 0, got -3e-4")
BAD(nan_lr, "[optim]\nlr = nan\n",
    "recipes/bad.toml:2: [optim] lr: expected a float > 0, got nan (recipe floats are finite)")
BAD(inf_bias, "[layer.sigmoid]\nbias = -inf\n",
    "recipes/bad.toml:2: [layer.sigmoid] bias: expected a float, got -inf (recipe floats are "
    "finite)")
BAD(conv_kernel_zero, "[layer.conv]\nkernel = 0\n",
    "recipes/bad.toml:2: [layer.conv] kernel: expected an integer in [1, 64], got 0")
BAD(conv_kernel_too_long, "[model]\nlayers = \"conv,attn x 2\"\n[layer.conv]\nkernel = 65\n",
    "recipes/bad.toml:4: [layer.conv] kernel: expected an integer in [1, 64], got 65")
BAD(zero_d_model, "[model]\nd_model = 0\n",
    "recipes/bad.toml:2: [model] d_model: expected an integer >= 8, got 0")
BAD(beta_above_one, "[optim]\nbetas = [0.9, 1.5]\n",
    "recipes/bad.toml:2: [optim] betas: expected an array of two floats in [0, 1), got [0.9, 1.5]")
BAD(integer_too_large, "[run]\nseed = 99999999999999999999\n",
    "recipes/bad.toml:2:28: seed: error while parsing decimal integer: '99999999999999999999' is "
    "not representable in 64 bits")
BAD(bad_enum, "[optim]\nschedule = \"cosin\"\n",
    "recipes/bad.toml:2: [optim] schedule: expected one of \"cosine\", \"linear\", \"constant\", "
    "\"wsd\", got \"cosin\"; did you mean \"cosine\"?")
BAD(heads_do_not_divide, "[model]\nd_model = 100\nn_heads = 3\n",
    "recipes/bad.toml:3: [model] n_heads = 3 does not divide d_model = 100")
BAD(odd_head_size, "[model]\nn_heads = 2\nd_model = 130\n",
    "recipes/bad.toml:3: [model] the head size d_model / n_heads = 130 / 2 = 65 is odd")
BAD(unknown_layer_kind, "[model]\nlayers = [\"attn\", \"mamba\"]\n",
    "recipes/bad.toml:2: [model] layers: unknown layer kind \"mamba\"; known kinds: attn, ")
BAD(unknown_layer_kind_in_a_pattern, "[model]\nlayers = \"mamba,attn x 3\"\n",
    "recipes/bad.toml:2: [model] layers: unknown layer kind \"mamba\"; known kinds: attn, ")
BAD(malformed_pattern, "[model]\nlayers = \"attn,,attn\"\n",
    "recipes/bad.toml:2: [model] layers: malformed layer pattern \"attn,,attn\"")
BAD(no_layers, "[model]\nlayers = []\n",
    "recipes/bad.toml:2: [model] layers: expected at least one layer, got []")
BAD(too_many_layers, "[model]\nlayers = \"attn x 65\"\n",
    "recipes/bad.toml:2: [model] layers: 65 layers, at most 64")
BAD(malformed_array, "[model]\nlayers = [\"attn\" \"attn\"]\n",
    "recipes/bad.toml:2:18: layers: error while parsing array: expected comma or closing ']', saw "
    "'\"'")
BAD(unterminated_array, "[model]\nlayers = [\"attn\",\n\"attn\"\n",
    "recipes/bad.toml:3:8: error while parsing array: encountered end-of-file")
BAD(unterminated_string, "[run]\nname = \"abc\n",
    "recipes/bad.toml:2:12: name: error while parsing string: unescaped control characters other "
    "than TAB (U+0009) are explicitly prohibited (at the end of the line)")
BAD(bad_escape, "[run]\nname = \"a\\qb\"\n",
    "recipes/bad.toml:2:11: name: error while parsing string: unknown escape sequence '\\q'")
BAD(nul_in_a_string, "[run]\nname = \"a\\u0000b\"\n",
    "recipes/bad.toml:2:8: name: a string holds U+0000 (NUL), which hyla's strings cannot")
BAD(a_date, "[run]\nname = 1979-05-27\n",
    "recipes/bad.toml:2: [run] name: expected a quoted string, got 1979-05-27 (a date-time)")
BAD(string_too_long_for_its_buffer,
    "[run]\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
    "recipes/bad.toml:2: [run] name: the string is too long: 72 bytes, at most 63")
BAD(too_many_list_items,
    "[optim]\nno_decay = "
    "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\","
    "\"n\",\"o\",\"p\",\"q\"]\n",
    "recipes/bad.toml:2: [optim] no_decay: 17 items, at most 16")
BAD(duplicate_key, "[optim]\nlr = 1e-3\n\nlr = 2e-3\n",
    "recipes/bad.toml:4:6: lr: error while parsing key-value pair: cannot redefine existing "
    "floating-point 'lr'")
BAD(duplicate_section, "[optim]\n[train]\n[optim]\n",
    "recipes/bad.toml:3:1: error while parsing table header: cannot redefine existing table "
    "'optim'")
/* Two TOML keys, one recipe key. */
BAD(duplicate_key_through_a_quoted_dot, "\"optim.lr\" = 1e-3\n[optim]\nlr = 2e-3\n",
    "recipes/bad.toml:3: duplicate key 'lr' in [optim] (first set at line 1)")
BAD(key_with_a_table, "[optim.betas]\n",
    "recipes/bad.toml:1: [optim] betas: expected an array of two floats in [0, 1), got "
    "[optim.betas] (a table)")
BAD(section_with_a_value, "model = 4\n",
    "recipes/bad.toml:1: [model] is a section: expected a table of its keys, got 4")
BAD(key_before_any_section, "lr = 1e-3\n[optim]\n",
    "recipes/bad.toml:1: key 'lr' is outside any section; did you mean to put it under [optim]?")
BAD(header_starting_badly, "[model]\n[\xc3\xa9t\xc3\xa9]\n",
    "recipes/bad.toml:2:2: error while parsing table header: expected a key after '['")
BAD(no_equals_sign, "[run]\nname \"x\"\n",
    "recipes/bad.toml:2:6: error while parsing key-value pair: expected '=', saw '\"'")
BAD(dotted_key_into_an_unknown_section, "[model]\nattn.naive = true\n",
    "recipes/bad.toml:2: unknown section [model.attn]")
BAD(dotted_key_with_a_typo, "optim.lrr = 1e-3\n",
    "recipes/bad.toml:1: unknown key 'lrr' in [optim]; did you mean 'lr'?")
BAD(inline_table_for_a_value, "[optim]\nbetas = {a = 1}\n",
    "recipes/bad.toml:2: [optim] betas: expected an array of two floats in [0, 1), got {a = 1} "
    "(a table)")
BAD(inline_table_with_an_unknown_key, "run = { name = \"t\", nmae = \"u\" }\n",
    "recipes/bad.toml:1: unknown key 'nmae' in [run]; did you mean 'name'?")
BAD(text_after_the_value, "[optim]\nlr = 1e-3 2e-3\n",
    "recipes/bad.toml:2:11: lr: error while parsing key-value pair: expected a comment or "
    "whitespace, saw '2'")
BAD(mqar_pairs_too_many_for_seq_len,
    "[train]\nseq_len = 64\n[data]\ndataset = \"mqar\"\n[data.mqar]\npairs = 17\n",
    "recipes/bad.toml:6: [data.mqar] pairs = 17 needs 4 * pairs <= [train] seq_len = 64, even")
BAD(mqar_pairs_too_many_for_vocab,
    "[data.mqar]\npairs = 32\n[data]\ndataset = \"mqar\"\n[model]\nvocab = 64\n",
    "recipes/bad.toml:6: [data.mqar] pairs = 32 must be at most [model] vocab / 2 - 1 = 31")

BAD(rat_groups_do_not_divide_the_heads,
    "[model]\nlayers = \"rat,attn\"\n[layer.rat]\nn_groups = 3\n",
    "recipes/bad.toml:4: [layer.rat] n_groups = 3 does not divide the 4 heads")
BAD(rat_heads_do_not_divide_d_model, "[model]\nlayers = \"rat x 2\"\n[layer.rat]\nheads = 5\n",
    "recipes/bad.toml:4: [layer.rat] 5 heads do not divide d_model = 128")
BAD(rat_slices_not_whole_chunks,
    "[model]\nlayers = \"rat,attn\"\n[layer.rat]\nchunk = 16\n[train]\nseq_len = 96\n"
    "[dist]\nsp = 4\n",
    "recipes/bad.toml:8: [layer.rat] chunk = 16 must divide each sequence-parallel rank's slice, "
    "[train] seq_len / [dist] sp = 96 / 4 = 24 tokens: the ranks exchange whole chunks")
BAD(rat_chunk_longer_than_a_slice,
    "[dist]\nsp = 2\n[model]\nlayers = \"rat\"\n[layer.rat]\nchunk = 192\n",
    "recipes/bad.toml:6: [layer.rat] chunk = 192 must divide each sequence-parallel rank's slice, "
    "[train] seq_len / [dist] sp = 256 / 2 = 128 tokens")
BAD(sequence_that_does_not_split_over_sp, "[train]\nseq_len = 100\n[dist]\nsp = 3\n",
    "recipes/bad.toml:4: [train] seq_len = 100 does not split evenly over [dist] sp = 3 ranks")
BAD_SET(sp_that_does_not_split_the_sequence, "dist.sp=3",
        "--set dist.sp=3: [train] seq_len = 256 does not split evenly over [dist] sp = 3 ranks")
BAD(rat_odd_head_size, "[model]\nlayers = \"rat\"\nd_model = 96\n[layer.rat]\nheads = 32\n",
    "recipes/bad.toml:5: [layer.rat] the head size d_model / heads = 96 / 32 = 3 is odd")

BAD(sla_slice_not_whole_blocks,
    "[model]\nlayers = \"sla,attn\"\n[train]\nseq_len = 192\n[dist]\nsp = 2\n",
    "recipes/bad.toml:6: [layer.sla] block = 64 must divide each sequence-parallel rank's "
    "slice, [train] seq_len / [dist] sp = 192 / 2 = 96 tokens: the ranks exchange whole blocks")
/* The check names the last of its keys set: here the block, on the command line. */
Test(bad_recipe, sla_block_set_last) {
  const char *sets[] = {"layer.sla.block=48"};
  expect_failure("[model]\nlayers = \"sla\"\n[dist]\nsp = 4\n", 1, sets,
                 "--set layer.sla.block=48: [layer.sla] block = 48 must divide each "
                 "sequence-parallel rank's slice, [train] seq_len / [dist] sp = 256 / 4 = 64 "
                 "tokens");
}

/* titans_mac's segments are whole chunks, and under sequence parallelism each rank's slice whole
 * segments; each message names both keys. */
BAD(titans_mac_segment_not_whole_chunks,
    "[model]\nlayers = \"titans_mac x 2\"\n[layer.titans]\nchunk = 16\nsegment = 24\n",
    "recipes/bad.toml:5: [layer.titans] segment = 24 must be a multiple of [layer.titans] chunk = "
    "16")
Test(bad_recipe, titans_mac_chunk_set_last) {
  const char *sets[] = {"layer.titans.chunk=24"};
  expect_failure("[model]\nlayers = \"titans_mal,titans_mac\"\n[layer.titans]\nsegment = 32\n", 1,
                 sets,
                 "--set layer.titans.chunk=24: [layer.titans] segment = 32 must be a multiple of "
                 "[layer.titans] chunk = 24");
}
BAD(titans_mac_slice_not_whole_segments,
    "[model]\nlayers = \"titans_mac,attn\"\n[layer.titans]\nchunk = 32\nsegment = 64\n[train]\n"
    "seq_len = 192\n[dist]\nsp = 2\n",
    "recipes/bad.toml:9: [layer.titans] segment = 64 must divide each sequence-parallel rank's "
    "slice, [train] seq_len / [dist] sp = 192 / 2 = 96 tokens: the ranks exchange whole segments")

/* The segment matters only to titans_mac; slices of whole segments pass. */
Test(recipe, titans_mac_segments_are_checked_only_with_titans_mac) {
  parse_ok("[model]\nlayers = \"titans_mal,titans_mag\"\n[layer.titans]\nchunk = 16\n"
           "segment = 24\n[dist]\nsp = 2\n",
           0, NULL);
  parse_ok("[model]\nlayers = \"titans_mac\"\n[layer.titans]\nchunk = 16\nsegment = 48\n", 0, NULL);
  parse_ok("[model]\nlayers = \"titans_mac\"\n[layer.titans]\nchunk = 16\nsegment = 32\n"
           "[dist]\nsp = 4\n",
           0, NULL);
}

/* Without an sla layer, or without sequence parallelism, the block may cut the slices. */
Test(recipe, sla_slices_are_checked_only_with_sla_under_sp) {
  parse_ok("[model]\nlayers = \"attn\"\n[train]\nseq_len = 192\n[dist]\nsp = 2\n", 0, NULL);
  parse_ok("[model]\nlayers = \"sla\"\n[train]\nseq_len = 96\n", 0, NULL);
  parse_ok("[model]\nlayers = \"sla\"\n[train]\nseq_len = 256\n[dist]\nsp = 4\n", 0, NULL);
}

/* [layer.rat] settings matter only to a model with a rat layer. */
Test(recipe, rat_settings_are_checked_only_with_a_rat_layer) {
  hy_recipe r = parse_ok("[model]\nlayers = \"attn x 2\"\n[layer.rat]\nn_groups = 3\n", 0, NULL);
  cr_expect_eq(r.layer_rat.n_groups, 3);
  r = parse_ok("[model]\nlayers = \"attn\"\n[layer.rat]\nchunk = 48\n[dist]\nsp = 2\n", 0, NULL);
  cr_expect_eq(r.layer_rat.chunk, 48);
}

/* Slices of whole chunks, and one process whatever the chunk. */
Test(recipe, rat_slices_of_whole_chunks_pass) {
  const char *ok[] = {
      "[model]\nlayers = \"rat\"\n[layer.rat]\nchunk = 16\n[train]\nseq_len = 128\n"
      "[dist]\nsp = 4\n",
      "[model]\nlayers = \"rat\"\n[layer.rat]\nchunk = 48\n[train]\nseq_len = 128\n"};
  for (int i = 0; i < 2; i++) parse_ok(ok[i], 0, NULL);
}

/* A line may be as long as it likes: only a string's buffer limits it. */
Test(recipe, lines_have_no_length_limit) {
  char text[1200], want[300];
  int n = snprintf(text, sizeof text, "[run]\n  out = \"");
  memset(text + n, 'x', 250);
  memcpy(want, text + n, 250);
  want[250] = 0;
  n += 250;
  n += snprintf(text + n, sizeof text - (size_t)n, "\"  # a comment\n[optim]\nno_decay = [");
  for (int i = 0; i < HY_RECIPE_LIST_MAX; i++)
    n += snprintf(text + n, sizeof text - (size_t)n, "\"item %02d, long enough\", ", i);
  snprintf(text + n, sizeof text - (size_t)n, "]\n");
  hy_recipe r = parse_ok(text, 0, NULL);
  cr_expect_str_eq(r.run.out, want);
  cr_expect_eq(r.optim.n_no_decay, HY_RECIPE_LIST_MAX);
  expect_round_trip(&r);
}

Test(bad_recipe, a_string_longer_than_its_buffer) {
  char set[300];
  int n = snprintf(set, sizeof set, "data.dataset=");
  memset(set + n, 'd', 256);
  set[n + 256] = 0;
  const char *sets[] = {set};
  expect_failure("", 1, sets, "[data] dataset: the string is too long: 256 bytes, at most 255");
}

BAD_SET(override_without_equals, "optim.lr",
        "--set optim.lr: expected section.key=value (e.g. optim.lr=3e-4)")
BAD_SET(override_without_section, "lr=1e-3",
        "--set lr=1e-3: expected section.key=value; did you mean optim.lr=...?")
BAD_SET(override_of_an_unknown_key, "optim.lrr=1e-3",
        "--set optim.lrr=1e-3: unknown key 'lrr' in [optim]; did you mean 'lr'?")
BAD_SET(override_of_an_unknown_section, "optm.lr=1e-3",
        "--set optm.lr=1e-3: unknown section [optm]; did you mean [optim]?")
BAD_SET(override_with_a_bad_value, "optim.lr=abc",
        "--set optim.lr=abc: [optim] lr: expected a float > 0, got abc")
BAD_SET(override_with_a_bare_word_for_an_int, "model.d_model=abc",
        "--set model.d_model=abc: [model] d_model: expected an integer >= 8, got abc (error while "
        "parsing value: could not determine value type)")
BAD_SET(override_with_nothing, "model.d_model=",
        "--set model.d_model=: [model] d_model: expected an integer >= 8, got nothing")
BAD_SET(override_with_two_values, "optim.lr=1e-3\noptim = 1",
        "--set optim.lr=1e-3\noptim = 1: [optim] lr: expected a float > 0, got 1e-3\noptim = 1 "
        "(more than one value)")
BAD_SET(override_with_a_bad_quoted_string, "run.name=\"a\\qb\"",
        "[run] name: expected a quoted string, got \"a\\qb\" (error while parsing string: unknown "
        "escape sequence '\\q')")
BAD_SET(override_with_a_bare_string_not_utf8,
        "run.name=a\xff"
        "b",
        "--set run.name=a\xff"
        "b: [run] name: expected a quoted string, got a\xff"
        "b")
BAD_SET(override_with_a_bare_enum, "optim.schedule=cosin",
        "--set optim.schedule=cosin: [optim] schedule: expected one of \"cosine\", \"linear\", "
        "\"constant\", \"wsd\", got \"cosin\"; did you mean \"cosine\"?")
BAD_SET(override_with_an_empty_bare_item, "optim.no_decay=norm,,bias",
        "--set optim.no_decay=norm,,bias: [optim] no_decay: item 2 must not be empty")
BAD_SET(override_with_a_bad_layer, "model.layers=[\"mamba\",\"attn\"]",
        "--set model.layers=[\"mamba\",\"attn\"]: [model] layers: unknown layer kind \"mamba\"")

Test(bad_recipe, a_cross_check_names_the_override_that_broke_it) {
  const char *sets[] = {"model.n_heads=3"};
  expect_failure("[model]\nd_model = 100\n", 1, sets,
                 "--set model.n_heads=3: [model] n_heads = 3 does not divide d_model = 100");
}

/* Every kind keeps packed documents apart (hy_mixer_forward): any layers take them. */
Test(recipe, documents_with_every_kind) {
  const char *sets[] = {"data.packing=documents"};
  hy_recipe r = parse_ok("[model]\nlayers = \"gla,attn,rat,titans_mac\"\n[layer.titans]\n"
                         "segment = 64\n",
                         1, sets);
  cr_expect_eq(r.data.packing, HY_RECIPE_DOCUMENTS);
}
BAD_SET(packing_of_another_kind, "data.packing=\"docs\"",
        "--set data.packing=\"docs\": [data] packing: expected one of \"stream\", \"documents\", "
        "got \"docs\"")

Test(recipe, packing_defaults_to_the_stream) {
  hy_recipe r = parse_ok("", 0, NULL);
  cr_expect_eq(r.data.packing, HY_RECIPE_STREAM);
}

Test(bad_recipe, a_file_names_its_path_and_line) {
  const char *path = t_source_path("tests/recipes/bad_key.toml");
  char want[4200];
  snprintf(want, sizeof want, "%s:6: unknown key 'lrr' in [optim]; did you mean 'lr'?", path);
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load(path, 0, NULL, &r, &err), -1);
  cr_expect_str_eq(err.msg, want);
}

Test(bad_recipe, a_missing_file) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load("recipes/no_such_recipe.toml", 0, NULL, &r, &err), -1);
  cr_expect_str_eq(err.msg, "recipes/no_such_recipe.toml: cannot open: No such file or directory");
}

Test(bad_recipe, a_directory_is_not_a_recipe) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load("/", 0, NULL, &r, &err), -1);
  cr_expect_str_eq(err.msg, "/: cannot read: Is a directory");
}

Test(bad_recipe, an_endless_file_is_refused_once_past_a_mebibyte) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_load("/dev/zero", 0, NULL, &r, &err), -1);
  cr_expect_str_eq(err.msg, "/dev/zero: more than 1 MiB: not a recipe (a short text file)");
}

/* The layers' settings have one set of defaults: those of hy_model_config_default (layers/model.c,
 * for a model built without a recipe) are the schema's, key by key. */
Test(recipe, layer_defaults_are_the_schemas) {
  hy_recipe r = parse_ok("", 0, NULL), m = r;
  hy_model_config c = hy_model_config_default();
  m.layer_gla = c.gla, m.layer_lightning = c.lightning, m.layer_linear = c.linear;
  m.layer_sigmoid = c.sigmoid, m.layer_softplus = c.softplus, m.layer_sla = c.sla;
  m.layer_rat = c.rat, m.layer_titans = c.titans;
  int compared = 0;
  for (int i = 0; i < hy_n_keys; i++) {
    const hy_key *k = &hy_keys[i];
    if (strncmp(k->section, "layer.", 6) || !strcmp(k->section, "layer.attn")) continue;
    /* 0 in a recipe: train.seq_len, which a model without a recipe does not have */
    if (!strcmp(k->section, "layer.softplus") && !strcmp(k->key, "train_len")) continue;
    char schema[256], model[256];
    hy_key_format(k, &r, schema, sizeof schema);
    hy_key_format(k, &m, model, sizeof model);
    cr_expect_str_eq(model, schema, "[%s] %s: hy_model_config_default has %s, the schema %s",
                     k->section, k->key, model, schema);
    compared++;
  }
  cr_expect_geq(compared, 40);
}
