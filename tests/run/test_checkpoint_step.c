/* A checkpoint's step is checked where it is read: a negative one (a damaged or hand-made file)
 * is an error whose message says so, on every path that reads it, and never a message left
 * unwritten (resuming took a negative step for its own failure and printed whatever the message
 * buffer held). */
#include "layers/model.h"
#include "optim/optimizer.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "run/train.h"
#include "tests/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ckpt[512];
static hy_recipe rec;

/* A checkpoint of a tiny model and its AdamW state (the recipe's optimizer), saved at `step`. */
static void write_checkpoint(int64_t step) {
  hy_model_config cfg = hy_recipe_model_config(&rec);
  hy_model *m = hy_model_new(&cfg, 1);
  hy_optimizer opt;
  hy_optimizer_init(&opt, &m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  char *text = hy_recipe_to_toml(&rec);
  hy_ckpt_meta meta = {.step = step, .n_loader = 2, .loader = {0, 0}, .recipe = text};
  hy_error err;
  cr_assert_eq(hy_checkpoint_write(ckpt, &m->params, &opt, &meta, &err), 0, "%s", err.msg);
  free(text);
  hy_optimizer_free(&opt);
  hy_model_free(m);
}

static void init(void) {
  t_temp_init();
  snprintf(ckpt, sizeof ckpt, "%s", t_in_temp("ckpt-00000001.h5"));
  char text[1024];
  snprintf(text, sizeof text,
           "[run]\nout = \"%s\"\n[model]\nvocab = 32\nd_model = 16\nn_heads = 2\n"
           "layers = [\"attn\"]\n[train]\nbatch = 2\nseq_len = 8\nsteps = 2\nthreads = 1\n"
           "[data]\ndataset = \"mqar\"\n[data.mqar]\npairs = 2\n",
           t_temp_path());
  hy_error err;
  cr_assert_eq(hy_recipe_parse(text, "test.toml", 0, NULL, &rec, &err), 0, "%s", err.msg);
}

TestSuite(checkpoint_step, .init = init, .fini = t_temp_fini);

/* A message buffer with no terminating zero: a path that fails without writing it shows. */
static void poison(hy_error *err) { memset(err->msg, 'x', sizeof err->msg); }

static void expect_message(const hy_error *err, const char *needle) {
  cr_assert(memchr(err->msg, 0, sizeof err->msg), "the error message was never written");
  cr_assert(strstr(err->msg, needle), "%s", err->msg);
}

Test(checkpoint_step, a_negative_step_is_refused_when_read) {
  write_checkpoint(-1);
  hy_ckpt_meta meta;
  hy_error err;
  poison(&err);
  cr_assert_neq(hy_checkpoint_read_meta(ckpt, &meta, &err), 0);
  expect_message(&err, "ckpt-00000001.h5: step -1, expected 0 or more");
  cr_assert_null(meta.recipe);
}

Test(checkpoint_step, resuming_from_a_negative_step_says_why) {
  write_checkpoint(-7);
  hy_train_options opt = {.resume = ckpt, .quiet = true};
  hy_train_result res;
  hy_error err;
  poison(&err);
  cr_assert_neq(hy_train(&rec, &opt, &res, &err), 0);
  expect_message(&err, "step -7, expected 0 or more");
}

Test(checkpoint_step, step_zero_is_read) {
  write_checkpoint(0);
  hy_ckpt_meta meta;
  hy_error err;
  cr_assert_eq(hy_checkpoint_read_meta(ckpt, &meta, &err), 0, "%s", err.msg);
  cr_assert_eq(meta.step, 0);
  hy_ckpt_meta_free(&meta);
}
