/* Training runs end to end: exact resume (of packed documents too), stop_after, clean stops on
 * SIGTERM, the NaN policies, gradient accumulation, checkpoint pruning, and bad checkpoints. */
#include "data/dataset.h"
#include "layers/model.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "run/train.h"
#include "tests/support.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char data[300], docs[300];

/* A small token dataset of a repeating text with some noise, so a model has something to learn. */
static void init(void) {
  t_temp_init();
  snprintf(data, sizeof data, "%s/data.h5", t_temp_path());
  enum { N = 20000 };
  static hy_token tokens[N];
  hy_rng rng = hy_rng_new(1);
  const char *text = "the quick brown fox jumps over the lazy dog. ";
  for (int i = 0; i < N; i++)
    tokens[i] = hy_rng_u64(&rng) % 10 ? (hy_token)text[i % 45] : (hy_token)(hy_rng_u64(&rng) % 64);
  hy_error err;
  cr_assert_eq(
      hy_dataset_write(data, tokens, N - 2000, tokens + N - 2000, 2000, 128, "bytes", &err), 0,
      "%s", err.msg);
  /* the same tokens as documents of 1 to 40 tokens */
  static int64_t train_starts[N], val_starts[N];
  int64_t n_train = 0, n_val = 0;
  for (int i = 0; i < N - 2000; i += 1 + (int)(hy_rng_u64(&rng) % 40)) train_starts[n_train++] = i;
  for (int i = 0; i < 2000; i += 1 + (int)(hy_rng_u64(&rng) % 40)) val_starts[n_val++] = i;
  snprintf(docs, sizeof docs, "%s/docs.h5", t_temp_path());
  hy_split_tokens train = {tokens, N - 2000, train_starts, n_train},
                  val = {tokens + N - 2000, 2000, val_starts, n_val};
  cr_assert_eq(hy_dataset_write_splits(docs, &train, &val, 128, NULL, "bytes", true, &err), 0, "%s",
               err.msg);
}

TestSuite(train, .init = init, .fini = t_temp_fini);

/* A tiny hybrid recipe for run `name`, with extra "section.key=value" settings. */
static hy_recipe recipe(const char *name, int n, const char *const *sets) {
  char text[2048];
  snprintf(text, sizeof text,
           "[run]\nname = \"%s\"\nout = \"%s/%s\"\nseed = 3\n"
           "[model]\nvocab = 128\nd_model = 16\nn_heads = 2\nlayers = [\"gla\", \"attn\"]\n"
           "[train]\nbatch = 4\nseq_len = 16\nsteps = 12\nlog_every = 1\neval_every = 4\n"
           "eval_batches = 2\ncheckpoint_every = 0\nthreads = 1\n"
           "[optim]\nlr = 1e-2\nwarmup = 2\n"
           "[data]\ndataset = \"%s\"\n",
           name, t_temp_path(), name, data);
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_parse(text, "test.toml", n, sets, &r, &err), 0, "%s", err.msg);
  return r;
}

static int train(const hy_recipe *r, const char *resume, hy_train_result *res, hy_error *err) {
  hy_train_options opt = {.resume = resume, .quiet = true};
  return hy_train(r, &opt, res, err);
}

/* The loss of every logged step of a run, as printed (17 digits: the exact double). */
static int losses(const char *run, char out[][32], int max) {
  char path[400], line[512];
  snprintf(path, sizeof path, "%s/%s/metrics.jsonl", t_temp_path(), run);
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s missing", path);
  int n = 0;
  while (fgets(line, sizeof line, f) && n < max) {
    char *at = strstr(line, "\"loss\":");
    if (!at) continue;
    sscanf(at + 7, "%31[^,]", out[n++]);
  }
  fclose(f);
  return n;
}

static bool exists(const char *run, const char *file) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s/%s", t_temp_path(), run, file);
  return access(path, F_OK) == 0;
}

typedef hy_recipe (*recipe_fn)(const char *name, int n, const char *const *sets);

/* Run `name` of 12 steps straight, then as run name-halves stopped after 6 and resumed: the loss
 * of every step, the last and the validation loss come out bitwise the same. */
static void expect_resumed_the_same(recipe_fn make, const char *name, hy_train_result *a) {
  hy_train_result b;
  hy_error err;
  char halves[64];
  snprintf(halves, sizeof halves, "%s-halves", name);
  hy_recipe straight = make(name, 0, NULL);
  cr_assert_eq(train(&straight, NULL, a, &err), 0, "%s", err.msg);
  const char *half[] = {"train.stop_after=6"};
  hy_recipe first = make(halves, 1, half);
  cr_assert_eq(train(&first, NULL, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(b.steps_done, 6);
  hy_recipe second = make(halves, 0, NULL);
  cr_assert_eq(train(&second, "", &b, &err), 0, "%s", err.msg);
  cr_assert_eq(b.steps_done, 12);
  char la[16][32], lb[16][32];
  int na = losses(name, la, 16), nb = losses(halves, lb, 16);
  cr_assert_eq(na, 12);
  cr_assert_eq(nb, 12);
  for (int i = 0; i < 12; i++) cr_assert_str_eq(la[i], lb[i], "%s: step %d", name, i + 1);
  cr_assert(a->last_loss == b.last_loss && a->val_loss == b.val_loss);
}

Test(train, resuming_gives_bitwise_the_same_losses) {
  hy_train_result a;
  expect_resumed_the_same(recipe, "straight", &a);
  cr_assert(a.last_loss < 4.3, "the model learns: loss %.3f", a.last_loss); /* log 128 = 4.85 */
}

/* A packed-documents run on a dataset of many documents: its batches reach the model with their
 * positions, no target crosses a boundary (so it is not the stream's run), and a resumed run
 * continues the same batches. */
static hy_recipe documents(const char *name, int n, const char *const *sets) {
  char set[400];
  snprintf(set, sizeof set, "data.dataset=\"%s\"", docs);
  const char *all[4] = {set};
  for (int i = 0; i < n; i++) all[i + 1] = sets[i];
  hy_recipe r = recipe(name, n + 1, all);
  r.data.packing = HY_RECIPE_DOCUMENTS;
  return r;
}

Test(train, packed_documents_resume_to_the_same_batches) {
  hy_train_result a, stream;
  hy_error err;
  expect_resumed_the_same(documents, "docs", &a);
  hy_recipe s = documents("docs-stream", 0, NULL);
  s.data.packing = HY_RECIPE_STREAM;
  cr_assert_eq(train(&s, NULL, &stream, &err), 0, "%s", err.msg);
  char la[16][32], ls[16][32];
  cr_assert_eq(losses("docs", la, 16), 12);
  cr_assert_eq(losses("docs-stream", ls, 16), 12);
  cr_assert_str_neq(la[0], ls[0], "the first step learns no target across a boundary");
}

Test(train, stop_after_keeps_the_schedule_and_checkpoints) {
  const char *sets[] = {"train.stop_after=5", "optim.schedule=\"linear\""};
  hy_recipe r = recipe("stop", 2, sets);
  hy_train_result res;
  hy_error err;
  cr_assert_eq(train(&r, NULL, &res, &err), 0, "%s", err.msg);
  cr_assert_eq(res.steps_done, 5);
  cr_assert(exists("stop", "ckpt-00000005.h5"));
  cr_assert(exists("stop", "recipe.toml") && exists("stop", "train.log"));
  /* lr at step 5 of 12 with 2 warmup steps, linear to 0.1 lr: 1e-2 (1 - 0.9 * 3/10) */
  char path[400], line[512];
  snprintf(path, sizeof path, "%s/stop/metrics.jsonl", t_temp_path());
  FILE *f = fopen(path, "r");
  double lr = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "{\"step\":5,\"loss\"")) sscanf(strstr(line, "\"lr\":") + 5, "%lf", &lr);
  fclose(f);
  cr_assert(fabs(lr - 1e-2 * (1 - 0.9 * 0.3)) < 1e-9, "lr %.9g", lr);
}

Test(train, sigterm_finishes_the_step_and_checkpoints) {
  const char *sets[] = {"train.steps=1000000", "train.eval_every=0"};
  hy_recipe r = recipe("signal", 2, sets);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    hy_train_result res;
    hy_error err;
    _exit(train(&r, NULL, &res, &err) == 0 ? 0 : 1);
  }
  /* Signal once training has logged a step (the handlers are in place by then), not before. */
  char metrics[400];
  snprintf(metrics, sizeof metrics, "%s/signal/metrics.jsonl", t_temp_path());
  for (int i = 0; i < 1200; i++) {
    FILE *f = fopen(metrics, "r");
    int c = f ? fgetc(f) : EOF;
    if (f) fclose(f);
    if (c != EOF) break;
    nanosleep(&(struct timespec){0, 50000000}, NULL);
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
  char latest[512];
  char run[400];
  snprintf(run, sizeof run, "%s/signal", t_temp_path());
  hy_error err;
  cr_assert_eq(hy_checkpoint_latest(run, latest, sizeof latest, &err), 0, "%s", err.msg);
  hy_ckpt_meta meta;
  cr_assert_eq(hy_checkpoint_read_meta(latest, &meta, &err), 0, "%s", err.msg);
  cr_assert(meta.step > 0 && meta.step < 1000000, "stopped at step %lld", (long long)meta.step);
  hy_ckpt_meta_free(&meta);
}

Test(train, nan_stops_with_a_checkpoint_or_is_skipped) {
  const char *stop[] = {"optim.name=\"sgd\"", "optim.lr=1e12", "train.grad_clip=0",
                        "optim.warmup=0"};
  hy_recipe r = recipe("nan", 4, stop);
  hy_train_result res;
  hy_error err;
  cr_assert_neq(train(&r, NULL, &res, &err), 0, "a lr of 1e12 should diverge");
  cr_assert(strstr(err.msg, "training diverged at step"), "%s", err.msg);
  char latest[512], run[400];
  snprintf(run, sizeof run, "%s/nan", t_temp_path());
  cr_assert_eq(hy_checkpoint_latest(run, latest, sizeof latest, &err), 0, "%s", err.msg);
  const char *skip[] = {"optim.name=\"sgd\"", "optim.lr=1e12",         "train.grad_clip=0",
                        "optim.warmup=0",     "train.on_nan=\"skip\"", "run.name=\"nan_skip\""};
  hy_recipe s = recipe("nan_skip", 6, skip);
  cr_assert_eq(train(&s, NULL, &res, &err), 0, "%s", err.msg);
  cr_assert_eq(res.steps_done, 12);
}

/* Two micro-batches of 4 make the step one batch of 8 makes (sequential windows: the same rows). */
Test(train, gradient_accumulation_matches_a_larger_batch) {
  const char *big[] = {"train.batch=8", "data.sampling=\"sequential\""};
  const char *acc[] = {"train.batch=4", "train.grad_accum=2", "data.sampling=\"sequential\""};
  hy_recipe rb = recipe("big", 2, big), ra = recipe("accum", 3, acc);
  hy_train_result b, a;
  hy_error err;
  cr_assert_eq(train(&rb, NULL, &b, &err), 0, "%s", err.msg);
  cr_assert_eq(train(&ra, NULL, &a, &err), 0, "%s", err.msg);
  char lb[16][32], la[16][32];
  losses("big", lb, 16);
  losses("accum", la, 16);
  for (int i = 0; i < 12; i++) {
    double x = atof(lb[i]), y = atof(la[i]);
    cr_assert(fabs(x - y) <= 1e-5 * fabs(x), "step %d: %.9g vs %.9g", i + 1, x, y);
  }
}

Test(train, only_the_newest_checkpoints_are_kept) {
  const char *sets[] = {"train.checkpoint_every=2", "train.keep_checkpoints=2"};
  hy_recipe r = recipe("keep", 2, sets);
  hy_train_result res;
  hy_error err;
  cr_assert_eq(train(&r, NULL, &res, &err), 0, "%s", err.msg);
  cr_assert(exists("keep", "ckpt-00000012.h5") && exists("keep", "ckpt-00000010.h5"));
  cr_assert(!exists("keep", "ckpt-00000008.h5") && !exists("keep", "ckpt-00000002.h5"));
}

Test(train, bad_checkpoints_give_clear_errors) {
  const char *sets[] = {"train.stop_after=2"};
  hy_recipe r = recipe("bad", 1, sets);
  hy_train_result res;
  hy_error err;
  cr_assert_eq(train(&r, NULL, &res, &err), 0, "%s", err.msg);
  char good[400], cut[400], cmd[900];
  snprintf(good, sizeof good, "%s/bad/ckpt-00000002.h5", t_temp_path());
  snprintf(cut, sizeof cut, "%s/cut.h5", t_temp_path());
  snprintf(cmd, sizeof cmd, "head -c 5000 %s > %s", good, cut);
  cr_assert_eq(system(cmd), 0);
  hy_recipe again = recipe("bad", 0, NULL);
  cr_assert_neq(train(&again, cut, &res, &err), 0);
  cr_assert(strstr(err.msg, "cut.h5: not a readable HDF5 file (truncated or corrupt?)"), "%s",
            err.msg);
  const char *wider[] = {"model.d_model=32"};
  hy_recipe other = recipe("bad", 1, wider);
  cr_assert_neq(train(&other, good, &res, &err), 0);
  cr_assert(strstr(err.msg, "/params/embed/weight has shape [128, 16], the recipe's model needs "
                            "[128, 32]"),
            "%s", err.msg);
  hy_recipe fresh = recipe("nothing_here", 0, NULL);
  cr_assert_neq(train(&fresh, "", &res, &err), 0);
  cr_assert(strstr(err.msg, "nothing_here: no checkpoint (ckpt-*.h5) to resume from"), "%s",
            err.msg);
}
