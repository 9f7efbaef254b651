/* Sweeps: a [sweep] section expands into a grid of runs (size, order, names, each run's recipe),
 * and bad sweep keys and values are errors naming the file and line, as --set's would be. */
#include "recipes/sweep.h"
#include "tests/support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char path[128]; /* the recipe each test writes */

static void init(void) {
  t_temp_init();
  snprintf(path, sizeof path, "%s", t_in_temp("grid.toml"));
}

TestSuite(sweep, .init = init, .fini = t_temp_fini);

/* A small recipe with the given [sweep] lines (and out = <dir>/out). */
static void write_recipe(const char *sweep) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "[run]\nout = \"%s/out\"\nseed = 7\n"
          "[model]\nd_model = 32\nn_heads = 2\nlayers = \"attn\"\n"
          "[optim]\nlr = 1e-3\n"
          "[sweep]\n%s",
          t_temp_path(), sweep);
  fclose(f);
}

static void expand_ok(const char *sweep, int n_sets, const char *const *sets, hy_sweep *s) {
  write_recipe(sweep);
  hy_error err = {{0}};
  cr_assert_eq(hy_sweep_expand(path, n_sets, sets, s, &err), 0, "unexpected error: %s", err.msg);
}

/* The error of expanding; asserts it fails. */
static const char *expand_error(const char *sweep) {
  static hy_error err;
  hy_sweep s;
  write_recipe(sweep);
  cr_assert_neq(hy_sweep_expand(path, 0, NULL, &s, &err), 0, "expected an error for:\n%s", sweep);
  return err.msg;
}

static void expect_error(const char *sweep, int line, const char *needle) {
  const char *msg = expand_error(sweep);
  char where[160];
  snprintf(where, sizeof where, "%s:%d:", path, line); /* then a space, or the parser's column */
  cr_expect(!strncmp(msg, where, strlen(where)), "error does not start with %s: %s", where, msg);
  cr_expect(strstr(msg, needle), "error lacks \"%s\": %s", needle, msg);
}

/* The recipe's [sweep] header is line 10 of write_recipe's text; its first key line 11. */
enum { KEY_LINE = 11 };

Test(sweep, the_grid_is_the_product_with_the_first_axis_slowest_and_seeds_fastest) {
  hy_sweep s;
  expand_ok("seeds = [1, 2]\n\"optim.lr\" = [1e-3, 3e-3]\n"
            "\"model.layers\" = [\"attn\", \"gla,attn x 2\", \"gla\"]\n",
            0, NULL, &s);
  cr_assert_eq(s.n_runs, 12);
  cr_expect_eq(s.spec.n_axes, 3);
  cr_expect_str_eq(s.spec.axes[2].key, "seeds");
  char want[256];
  snprintf(want, sizeof want, "%s/out", t_temp_path());
  cr_expect_str_eq(s.dir, want);
  const char *names[] = {"lr=1e-3,layers=attn,seed=1", "lr=1e-3,layers=attn,seed=2",
                         "lr=1e-3,layers=gla-attn-x-2,seed=1"};
  for (int i = 0; i < 3; i++) cr_expect_str_eq(s.runs[i].name, names[i]);
  cr_expect_str_eq(s.runs[11].name, "lr=3e-3,layers=gla,seed=2");
  for (int i = 0; i < 12; i++) {
    const hy_recipe *r = &s.runs[i].recipe;
    cr_expect_eq(r->optim.lr, i < 6 ? 1e-3 : 3e-3, "run %d", i);
    cr_expect_eq(r->run.seed, 1 + i % 2, "run %d", i);
    int layers = i / 2 % 3;
    cr_expect_eq(r->model.n_layers, layers == 1 ? 4 : 1, "run %d", i);
    cr_expect_str_eq(r->model.layers[0], layers == 0 ? "attn" : "gla", "run %d", i);
    snprintf(want, sizeof want, "%s/out/%s", t_temp_path(), s.runs[i].name);
    cr_expect_str_eq(r->run.out, want);
    cr_expect_str_eq(r->run.name, s.runs[i].name);
    cr_expect_eq(r->model.d_model, 32, "the rest of the recipe is kept");
  }
  char settings[256];
  hy_sweep_settings(&s, 3, settings, sizeof settings);
  cr_expect_str_eq(settings, "optim.lr=1e-3 model.layers=\"gla,attn x 2\" seed=2");
  cr_expect_str_eq(s.shown[1][1], "gla,attn x 2");
  hy_sweep_free(&s);
}

Test(sweep, overrides_apply_to_every_run_and_swept_values_win) {
  const char *sets[] = {"model.d_model=64", "optim.lr=0.5"};
  hy_sweep s;
  expand_ok("\"optim.lr\" = [1e-3, 3e-3]\n", 2, sets, &s);
  cr_assert_eq(s.n_runs, 2);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(s.runs[i].recipe.model.d_model, 64);
    cr_expect_eq(s.runs[i].recipe.optim.lr, i ? 3e-3 : 1e-3);
    cr_expect_eq(s.runs[i].recipe.run.seed, 7, "the recipe's seed without seeds");
  }
  cr_expect_str_eq(s.runs[0].name, "lr=1e-3,seed=7");
  hy_sweep_free(&s);
}

Test(sweep, names_are_safe_and_unique) {
  hy_sweep s;
  expand_ok("\"layer.gla.chunk\" = [8, 16]\n\"layer.rat.chunk\" = [4]\n"
            "\"model.layers\" = [\"gla,attn\", \"gla, attn\"]\n\"data.dataset\" = [\"a/b c.h5\"]\n",
            0, NULL, &s);
  cr_assert_eq(s.n_runs, 4);
  cr_expect_str_eq(s.runs[0].name,
                   "layer.gla.chunk=8,layer.rat.chunk=4,layers=gla-attn,dataset=a-b-c.h5,seed=7");
  cr_expect_str_eq(s.runs[1].name,
                   "layer.gla.chunk=8,layer.rat.chunk=4,layers=gla-attn,dataset=a-b-c.h5,seed=7_2");
  for (int i = 0; i < 4; i++) cr_expect(!strchr(s.runs[i].name, '/'), "%s", s.runs[i].name);
  hy_sweep_free(&s);
}

Test(sweep, train_reads_a_recipe_with_a_sweep_and_ignores_it) {
  write_recipe("\"optim.lr\" = [\n  1e-3,  # a comment\n  3e-3,\n]\nseeds = [0]\n");
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_load(path, 0, NULL, &r, &err), 0, "%s", err.msg);
  cr_expect_eq(r.optim.lr, 1e-3);
  cr_expect_eq(r.run.seed, 7);
  hy_sweep_spec spec;
  cr_assert_eq(hy_recipe_load_sweep(path, 0, NULL, &r, &spec, &err), 0, "%s", err.msg);
  cr_expect_eq(spec.line, 10);
  cr_assert_eq(spec.n_axes, 2);
  cr_expect_str_eq(spec.axes[0].key, "optim.lr");
  cr_expect_eq(spec.axes[0].n, 2);
  cr_expect_str_eq(spec.axes[0].values[1], "3e-3");
  cr_expect_eq(spec.axes[1].line, 15);
  hy_sweep_spec_free(&spec);
  write_recipe("\"optim.lrr\" = [1e-3]\n");
  cr_expect_neq(hy_recipe_load(path, 0, NULL, &r, &err), 0, "train checks [sweep] too");
}

/* TOML names a key alike quoted or dotted, and so does [sweep]; arrays sweep as arrays of arrays,
 * and any string form spells a value. */
Test(sweep, keys_dotted_or_quoted_and_values_in_any_form) {
  hy_sweep s;
  expand_ok("optim.lr = [1e-3]\n'optim'.betas = [[0.9, 0.95], [0.8, 0.9]]\n"
            "\"model.layers\" = ['attn', \"\"\"gla,\\\n  attn\"\"\", [\"gla\", \"attn\"]]\n",
            0, NULL, &s);
  cr_assert_eq(s.n_runs, 6);
  cr_expect_str_eq(s.spec.axes[0].key, "optim.lr");
  cr_expect_str_eq(s.spec.axes[1].key, "optim.betas");
  cr_expect_str_eq(s.runs[0].name, "lr=1e-3,betas=0.9-0.95,layers=attn,seed=7");
  cr_expect_eq(s.runs[3].recipe.optim.betas[0], 0.8);
  cr_expect_eq(s.runs[4].recipe.model.n_layers, 2);
  cr_expect_str_eq(s.runs[4].recipe.model.layers[1], "attn");
  cr_expect_eq(s.runs[5].recipe.model.n_layers, 2);
  cr_expect_str_eq(s.runs[5].recipe.model.layers[0], "gla");
  hy_sweep_free(&s);
  /* [sweep.optim] is the same table as dotted keys under [sweep] */
  write_recipe("[sweep.optim]\nlr = [1e-3, 2e-3]\n");
  cr_assert_eq(hy_sweep_expand(path, 0, NULL, &s, &(hy_error){{0}}), 0);
  cr_expect_eq(s.n_runs, 2);
  cr_expect_eq(s.runs[1].recipe.optim.lr, 2e-3);
  hy_sweep_free(&s);
}

Test(sweep, the_example_recipe_expands) {
  char example[4096];
  snprintf(example, sizeof example, "%s", __FILE__);
  *strrchr(example, '/') = 0;
  *strrchr(example, '/') = 0;
  *strrchr(example, '/') = 0;
  strcat(example, "/recipes/sweep-example.toml");
  hy_sweep s;
  hy_error err;
  cr_assert_eq(hy_sweep_expand(example, 0, NULL, &s, &err), 0, "%s", err.msg);
  cr_expect_geq(s.n_runs, 2);
  hy_sweep_free(&s);
  /* Python's tomllib reads the same spelling (skipped where python3 is missing). */
  if (system("python3 -c 'import tomllib' >/dev/null 2>&1") == 0) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import tomllib,sys; t=tomllib.load(open(sys.argv[1],\"rb\"));"
             " assert \"optim.lr\" in t[\"sweep\"]' %s",
             example);
    cr_expect_eq(system(cmd), 0, "tomllib reads %s differently", example);
  }
}

/* ---- errors ---- */

Test(sweep, unknown_keys_and_sections_suggest_the_right_one) {
  expect_error("\"optim.lrr\" = [1e-3]\n", KEY_LINE,
               "unknown key 'lrr' in [optim]; did you mean 'lr'?");
  expect_error("\"optm.lr\" = [1e-3]\n", KEY_LINE, "unknown section [optm]; did you mean [optim]?");
  expect_error("\"lr\" = [1e-3]\n", KEY_LINE, "did you mean optim.lr=...?");
  expect_error("[sweeep]\n", KEY_LINE, "did you mean [sweep]?");
}

Test(sweep, values_are_checked_as_set_would) {
  expect_error("\"optim.lr\" = [1e-3, -1.0]\n", KEY_LINE,
               "[sweep] optim.lr, value 2: [optim] lr: expected a float > 0, got -1.0");
  expect_error("\"optim.lr\" = [\"fast\"]\n", KEY_LINE,
               "expected a float > 0, got \"fast\" (a string)");
  expect_error("\"train.batch\" = [1.5]\n", KEY_LINE, "expected an integer >= 1, got 1.5");
  expect_error("seeds = [0, -1]\n", KEY_LINE, "[sweep] seeds, value 2: [run] seed");
  expect_error("\"optim.schedule\" = [\"cosin\"]\n", KEY_LINE, "did you mean \"cosine\"?");
  expect_error("\"model.layers\" = [\"gla,atn\"]\n", KEY_LINE, "unknown layer kind \"atn\"");
  expect_error("\"optim.lr\" = [1e-3, 1e-3]\n", KEY_LINE, "lists 1e-3 twice");
}

Test(sweep, the_shape_of_the_section_is_checked) {
  expect_error("\"optim.lr\" = 1e-3\n", KEY_LINE, "expected an array of values, one per run");
  expect_error("\"optim.lr\" = []\n", KEY_LINE, "expected an array of values, one per run, got []");
  expect_error("optim.lr = [1e-3]\n\"optim.lr\" = [2e-3]\n", KEY_LINE + 1, "swept twice");
  expect_error("\"run.seed\" = [1]\n", KEY_LINE, "seeds = [...]");
  expect_error("\"run.out\" = [\"x\"]\n", KEY_LINE, "cannot be swept");
  expect_error("\"optim.betas\" = [0.9]\n", KEY_LINE,
               "[optim] betas: expected an array of two floats in [0, 1), got 0.9 (a float)");
  expect_error("\"optim.lr\" = [1e-3]\n\"optim.lr\" = [2e-3]\n", KEY_LINE + 1,
               "cannot redefine existing array");
  expect_error("\"optim.lr\" = [1e-3,\n", KEY_LINE, "encountered end-of-file");
  cr_expect(strstr(expand_error(""), "[sweep] is empty"));
}

Test(sweep, a_combination_that_fails_a_cross_check_names_the_run) {
  /* d_model 34 over 2 heads gives an odd head size */
  expect_error("\"model.d_model\" = [32, 34]\n", 10, "the run d_model=34,seed=7");
  cr_expect(strstr(expand_error("\"model.d_model\" = [32, 34]\n"), "is odd"));
}

Test(sweep, a_recipe_without_a_sweep_is_an_error) {
  FILE *f = fopen(path, "w");
  fputs("[optim]\nlr = 1e-3\n", f);
  fclose(f);
  hy_sweep s;
  hy_error err;
  cr_assert_neq(hy_sweep_expand(path, 0, NULL, &s, &err), 0);
  cr_expect(strstr(err.msg, "no [sweep] section"), "%s", err.msg);
}
