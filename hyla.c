/* The hyla command: parses argv and calls into the library. */
#include "tensor/arena.h"
#include "tensor/blas_kernels.h"
#include "data/dataset.h"
#include "data/documents.h"
#include "data/prepare.h"
#include "dist/dist.h"
#include "layers/model.h"
#include "recipes/recipe.h"
#include "recipes/sizes.h"
#include "recipes/sweep.h"
#include "run/batches.h"
#include "run/checkpoint.h"
#include "run/demo.h"
#include "run/evaluate.h"
#include "run/export.h"
#include "run/generate.h"
#include "run/sweep_runner.h"
#include "run/train.h"
#include "tensor/device.h"
#include "tensor/ops.h"
#include "tensor/threads.h"
#include "util/cli.h"
#include "util/stop.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: hyla <command> [options]\n"
    "\n"
    "commands:\n"
    "  train     train a model from a recipe (recipes/*.toml)\n"
    "  sweep     train every run of a recipe's [sweep] grid and summarize them\n"
    "  eval      evaluate a checkpoint: loss, perplexity, bits per byte, MQAR accuracy\n"
    "  generate  sample text from a checkpoint\n"
    "  data      prepare a token dataset from text: a file, or a folder of documents\n"
    "  export    write a checkpoint's model for flash-linear-attention / Hugging Face\n"
    "  info      what a checkpoint holds, or what this build has\n"
    "  demo      train a tiny model on one batch of text: the smallest end-to-end check\n"
    "\n"
    "Run 'hyla <command> --help' for a command's options.\n";

/* ---- argument helpers ---- */

static bool is(const char *arg, const char *name) { return !strcmp(arg, name); }

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (is(argv[i], "--help") || is(argv[i], "-h")) return true;
  return false;
}

static _Noreturn void usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static _Noreturn void usage_error(const char *cmd, const char *fmt, ...) {
  fprintf(stderr, "hyla %s: ", cmd);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see 'hyla %s --help')\n", cmd);
  exit(2);
}

/* cmd's options and positional arguments (util/cli.h), or a usage error; returns how many
 * positional arguments came. */
#define PARSE(cmd, argc, argv, first, opts, ...)                                                   \
  parse(cmd, argc, argv, first, opts, (int)(sizeof opts / sizeof *opts),                           \
        (hy_cli_positional){__VA_ARGS__})
static int parse(const char *cmd, int argc, char **argv, int first, const hy_cli_option *opts,
                 int n_opts, hy_cli_positional p) {
  hy_error err;
  int given = hy_cli_parse(argc, argv, first, opts, n_opts, p, &err);
  if (given < 0) usage_error(cmd, "%s", err.msg);
  return given;
}

static int run_command(int argc, char **argv);
static int world_rank; /* under mpirun: only rank 0 reports errors (every rank has the same) */

static int fail(const char *cmd, const hy_error *err) {
  if (world_rank == 0) fprintf(stderr, "hyla %s: %s\n", cmd, err->msg);
  return 1;
}

/* A model with its parameters (and the recipe it was trained with) from a checkpoint, with this
 * process's CPU threads chosen as the recipe says (train.threads, 0: HYLA_THREADS or every core).
 * sets (or NULL): --set overrides of that recipe; evaluating: the model as `hyla eval` runs it
 * (hy_eval_model_config). */
static hy_model *load_model(const char *path, bool evaluating, const hy_cli_list *sets,
                            hy_recipe *r, int64_t *step, hy_error *err) {
  hy_ckpt_meta meta;
  if (hy_checkpoint_read_meta(path, &meta, err)) return NULL;
  int rc =
      hy_recipe_parse(meta.recipe, path, sets ? sets->n : 0, sets ? sets->items : NULL, r, err);
  *step = meta.step;
  hy_ckpt_meta_free(&meta);
  if (rc || hy_threads_choose((int)r->train.threads, err)) return NULL;
  hy_model_config cfg = hy_recipe_model_config(r);
  if (evaluating) cfg = hy_eval_model_config(&cfg);
  hy_model *m = hy_model_new(&cfg, (uint64_t)r->run.seed);
  if (hy_checkpoint_load(path, &m->params, NULL, err)) {
    hy_model_free(m);
    return NULL;
  }
  return m;
}

/* The vocabulary m was trained with, from its checkpoint: v->n = 0 for bytes. */
static int read_vocab(const char *path, const hy_model *m, hy_vocab *v, hy_error *err) {
  if (hy_checkpoint_read_vocab(path, v, err)) return -1;
  if (!v->n || v->n == m->cfg.vocab) return 0;
  int64_t n = v->n;
  hy_vocab_free(v);
  return hy_fail(err, "%s: /vocab holds %lld tokens, but the recipe's [model] vocab = %lld", path,
                 (long long)n, (long long)m->cfg.vocab);
}

/* ---- hyla train ---- */

/* --check builds the model on the CPU (and frees it) when its parameters take at most this. */
#define CHECK_BUILD_BYTES ((int64_t)256 << 20)

/* hyla train --check: the recipe is valid (hy_recipe_load checked it); print what it makes and
 * whether a CPU run fits, and build the model's shapes when that is cheap. */
static int check_recipe(const char *path, const hy_recipe *r) {
  hy_recipe_sizes s;
  hy_size_term fault;
  hy_error err;
  if (hy_recipe_sizes_of(r, &s, &fault)) { /* validation counted them already */
    hy_fail(&err, "%s", fault.what);
    return fail("train", &err);
  }
  if (hy_recipe_check_memory(r, &err)) return fail("train", &err);
  if (world_rank != 0) return 0;
  char param[32], held[32], step[32], memory[32];
  hy_format_bytes(s.param_bytes, param, sizeof param);
  hy_format_bytes(s.held_bytes, held, sizeof held);
  hy_format_bytes(s.step_bytes, step, sizeof step);
  hy_format_bytes(hy_memory_limit(), memory, sizeof memory);
  printf("%s: a valid recipe\n", path);
  printf("parameters  %lld (%s)\n", (long long)s.params, param);
  printf("training    holds %s: the parameters, their gradients and %s\n", held,
         (r->optim.name != HY_RECIPE_SGD) ? "AdamW's two moments" : "SGD's momentum");
  printf("a step      about %s of activations for a micro-batch of %lld x %lld tokens "
         "(an estimate)\n",
         step, (long long)r->train.batch, (long long)r->train.seq_len);
  printf("the run     %lld tokens in %lld steps\n", (long long)s.run_tokens,
         (long long)r->train.steps);
  if (r->train.device == HY_RECIPE_CPU)
    printf("memory      fits in the %s this process may use\n", memory);
  else
    printf("memory      the GPU's is not checked here (train.device = \"cuda\")\n");
  if (s.param_bytes > CHECK_BUILD_BYTES) {
    printf("model       not built: its parameters take more than %lld MiB\n",
           (long long)(CHECK_BUILD_BYTES >> 20));
    return 0;
  }
  hy_model_config cfg = hy_recipe_model_config(r);
  hy_model *m = hy_model_new(&cfg, (uint64_t)r->run.seed);
  int64_t built = hy_params_count(&m->params);
  hy_model_free(m);
  if (built != s.params)
    hy_die("train", "internal: the recipe counts %lld parameters, the model has %lld",
           (long long)s.params, (long long)built);
  printf("model       built on the CPU: %lld parameters\n", (long long)built);
  return 0;
}

static int cmd_train(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla train RECIPE.toml [--set section.key=value]... [--resume[=CKPT]] "
           "[--restart] [--quiet] [--check]\n\n"
           "Trains the model the recipe describes (docs/recipes.md lists every key). Writes the\n"
           "resolved recipe, metrics.jsonl, train.log and checkpoints into the recipe's run.out,\n"
           "which it locks while it runs. A run directory that already holds checkpoints is\n"
           "refused unless the run continues them (--resume) or starts over (--restart).\n"
           "Ctrl-C (SIGINT) or SIGTERM finishes the step (or cuts an evaluation short, not\n"
           "recorded), writes a checkpoint and exits 130 (SIGINT) or 143 (SIGTERM); --resume\n"
           "goes on from it. A second one ends hyla at once.\n\n"
           "  --set k=v       override a recipe key (repeatable); the value is TOML\n"
           "                  (--set optim.lr=3e-4, --set 'optim.betas=[0.9, 0.99]'), but a key\n"
           "                  that takes a string takes bare text too (--set run.out=/tmp/x,\n"
           "                  --set 'model.layers=gla,attn x 2', --set optim.no_decay=norm,bias)\n"
           "  --resume        continue from the latest checkpoint in the run directory\n"
           "  --resume=CKPT   continue from that checkpoint\n"
           "  --restart       start over: first move the run directory's checkpoints and logs\n"
           "                  into RUN_DIR/previous-<n>\n"
           "  --quiet         print nothing but errors\n"
           "  --check         train nothing: validate the recipe, print its parameter count, the\n"
           "                  memory training holds, an estimate of a step's activations and\n"
           "                  whether a CPU run fits in memory, and build the model on the CPU\n"
           "                  when its parameters take at most 256 MiB; exits 0 if the recipe\n"
           "                  would train, else 1 with the error. Reads no tokens: of a\n"
           "                  dataset file, only its vocabulary's size, which [model] vocab\n"
           "                  follows when the recipe leaves it out (docs/data.md).\n");
    return 0;
  }
  const char *path = NULL;
  hy_cli_list sets = {0};
  hy_train_options opt = {0};
  bool check = false;
  const hy_cli_option opts[] = {
      HY_CLI_LIST_OPTION("--set", &sets), HY_CLI_MAYBE_TEXT_OPTION("--resume", &opt.resume),
      HY_CLI_FLAG_OPTION("--restart", &opt.restart), HY_CLI_FLAG_OPTION("--quiet", &opt.quiet),
      HY_CLI_FLAG_OPTION("--check", &check)};
  if (!PARSE("train", argc, argv, 1, opts, &path, 1, "recipe"))
    usage_error("train", "%s", "needs a recipe");
  if (opt.restart && opt.resume)
    usage_error("train", "%s", "--resume continues a run, --restart starts one over: pick one");
  hy_recipe r;
  hy_error err;
  int rc = 0;
  if (hy_recipe_load(path, sets.n, sets.items, &r, &err)) {
    rc = fail("train", &err);
  } else if (check) {
    rc = check_recipe(path, &r);
  } else {
    hy_train_result res;
    if (hy_train(&r, &opt, &res, &err))
      rc = fail("train", &err);
    else if (res.stopped)
      rc = hy_stop_exit_status();
  }
  free(sets.items);
  return rc;
}

/* ---- hyla sweep ---- */

static int cmd_sweep(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla sweep RECIPE.toml [--set section.key=value]... [--dry-run] [--verbose]\n\n"
           "Trains every run of the recipe's [sweep] grid (docs/sweeps.md), each in its own\n"
           "directory under the recipe's run.out, named by its settings, then writes\n"
           "summary.csv and summary.md there. Runs that finished before are skipped and runs\n"
           "with a checkpoint resume, so running a sweep again completes it. Under\n"
           "mpirun -np N, with [dist] dp = sp = 1, N runs train at a time (one per rank).\n"
           "Ctrl-C (SIGINT) or SIGTERM stops the run in progress as 'hyla train' does (with a\n"
           "checkpoint), starts no other, writes the summary and exits 130 (SIGINT) or 143\n"
           "(SIGTERM); a second one ends hyla at once.\n\n"
           "  --set k=v    override a recipe key in every run (repeatable); a swept key's\n"
           "               values still win. The value is TOML (--set optim.lr=3e-4), but a\n"
           "               key that takes a string takes bare text too (--set run.out=/tmp/x)\n"
           "  --dry-run    list the runs and what each would do; train nothing\n"
           "  --verbose    print the trainer's lines too, not only a line per run\n\n"
           "scripts/report.sh DIR draws the sweep's plots and writes DIR/report.md.\n");
    return 0;
  }
  const char *path = NULL;
  hy_cli_list sets = {0};
  hy_sweep_options opt = {0};
  const hy_cli_option opts[] = {HY_CLI_LIST_OPTION("--set", &sets),
                                HY_CLI_FLAG_OPTION("--dry-run", &opt.dry_run),
                                HY_CLI_FLAG_OPTION("--verbose", &opt.verbose)};
  if (!PARSE("sweep", argc, argv, 1, opts, &path, 1, "recipe"))
    usage_error("sweep", "%s", "needs a recipe");
  hy_sweep *s = malloc(sizeof *s);
  hy_error err;
  int rc = 0;
  if (!s || hy_sweep_expand(path, sets.n, sets.items, s, &err)) {
    if (!s) hy_fail(&err, "out of memory");
    free(sets.items);
    free(s);
    return fail("sweep", &err);
  }
  if (world_rank == 0) printf("sweep %s: %d runs in %s\n", path, s->n_runs, s->dir);
  hy_sweep_outcome out;
  if (hy_sweep_run_all(s, &opt, &out, &err)) {
    fprintf(stderr, "hyla sweep: %s\n", err.msg); /* this rank's runs: every rank says its own */
    rc = 1;
  }
  if (!opt.dry_run && world_rank == 0)
    printf("sweep%s: %d trained, %d resumed, %d skipped, %d failed%s; summary in %s/summary.md\n",
           hy_dist_world_size() > 1 ? " (rank 0's runs)" : "", out.trained, out.resumed,
           out.skipped, out.failed, out.interrupted ? ", stopped by a signal" : "", s->dir);
  if (rc == 0 && out.interrupted) rc = hy_stop_exit_status();
  hy_sweep_free(s);
  free(s);
  free(sets.items);
  return rc;
}

/* ---- hyla eval ---- */

/* Whether the evaluation's counts fit in 64 bits: each batch reads batch x (seq_len + 1) tokens
 * and the labelled positions of all batches are summed. */
static bool eval_counts_fit(const hy_recipe *r) {
  int64_t per_batch, all;
  return !__builtin_add_overflow(r->train.seq_len, 1, &all) &&
         !__builtin_mul_overflow(r->train.batch, all, &per_batch) &&
         !__builtin_mul_overflow(r->train.eval_batches, per_batch, &all);
}

static int cmd_eval(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla eval CKPT [--batches N] [--seq-len T] [--set section.key=value]...\n\n"
           "Evaluates a checkpoint on the validation split of its recipe's dataset: loss,\n"
           "perplexity and bits per byte, or accuracy for MQAR.\n\n"
           "  --batches N   how many validation batches (default: the recipe's eval_batches)\n"
           "  --seq-len T   evaluate on sequences of T tokens instead of the training length\n"
           "                (length extrapolation; layers that scale with the training length\n"
           "                keep using the one they were trained at)\n"
           "  --set k=v     override a key of the checkpoint's recipe (repeatable), one that\n"
           "                evaluation reads (--set layer.softplus.eval_power=2, --set\n"
           "                data.mqar.pairs=32); one that changes a parameter's shape fails\n"
           "                as the checkpoint loads\n\n"
           "The recipe with these in place is checked as a recipe is (docs/recipes.md), and the\n"
           "parameters and a batch's forward pass must fit in this process's memory.\n"
           "Softplus layers evaluate with [layer.softplus] eval_power in place of power and keep\n"
           "train_len at the training length, so `--seq-len 4096` on a model trained at 256\n"
           "applies LSSAR's re-weighting and length scaling without retraining.\n\n"
           "Ctrl-C (SIGINT) or SIGTERM stops after the batch in progress: the numbers printed\n"
           "are over the batches done, and the exit status is 130 (SIGINT) or 143 (SIGTERM).\n"
           "A second one ends hyla at once.\n");
    return 0;
  }
  const char *path = NULL;
  int64_t batches = 0, seq_len = 0;
  hy_cli_list sets = {0};
  const hy_cli_option opts[] = {HY_CLI_INT_OPTION("--batches", &batches, 1, INT64_MAX),
                                HY_CLI_INT_OPTION("--seq-len", &seq_len, 1, INT64_MAX),
                                HY_CLI_LIST_OPTION("--set", &sets)};
  if (!PARSE("eval", argc, argv, 1, opts, &path, 1, "checkpoint"))
    usage_error("eval", "%s", "needs a checkpoint");
  hy_recipe r;
  hy_error err;
  int64_t step;
  hy_model *m = load_model(path, true, &sets, &r, &step, &err);
  free(sets.items);
  if (!m) return fail("eval", &err);
  if (seq_len) r.train.seq_len = seq_len;
  if (batches) r.train.eval_batches = batches;
  const char *given = seq_len && batches ? "--seq-len and --batches"
                      : seq_len          ? "--seq-len"
                      : batches          ? "--batches"
                                         : "the recipe's [train] eval_batches and seq_len";
  if (!eval_counts_fit(&r)) {
    fprintf(stderr,
            "hyla eval: %s: %lld x %lld x (%lld + 1) tokens (batches x batch x (seq_len + 1)) "
            "overflow a 64-bit count\n",
            given, (long long)r.train.eval_batches, (long long)r.train.batch,
            (long long)r.train.seq_len);
    hy_model_free(m);
    return 2;
  }
  if (hy_recipe_check_eval(&r, &err)) { /* what --seq-len makes is checked as a recipe's is */
    fprintf(stderr, "hyla eval: %s: %s\n", given, err.msg);
    hy_model_free(m);
    return seq_len || batches ? 2 : 1;
  }
  hy_batches *val = hy_batches_open(&r, HY_SPLIT_VAL, 0, 1, &err);
  if (!val || hy_batches_check_vocab(val, r.data.dataset, r.model.vocab, &err) ||
      hy_batches_check_checkpoint(val, r.data.dataset, path, &err)) {
    hy_batches_close(val);
    hy_model_free(m);
    return fail("eval", &err);
  }
  hy_stop_catch();
  hy_eval_result e = hy_evaluate(m, val, r.train.eval_batches, NULL);
  int rc = 0;
  if (e.batches < r.train.eval_batches) {
    fprintf(stderr, "hyla eval: stopped by %s after %lld of %lld batches%s\n", hy_stop_name(),
            (long long)e.batches, (long long)r.train.eval_batches,
            e.batches ? "; the numbers are over those" : "");
    rc = hy_stop_exit_status();
  }
  if (e.batches == 0) {
    hy_batches_close(val);
    hy_model_free(m);
    return rc;
  }
  printf("checkpoint %s (step %lld), %lld labelled tokens of sequences of %lld\n", path,
         (long long)step, (long long)e.tokens, (long long)r.train.seq_len);
  printf("memory      %.1f MiB of step memory at most, %.1f KiB per token of a batch\n",
         (double)hy_arena_peak() / (1 << 20),
         (double)hy_arena_peak() / 1024.0 / (double)(r.train.batch * r.train.seq_len));
  printf("loss        %.4f\n", e.loss);
  if (hy_batches_is_mqar(val)) {
    printf("accuracy    %.4f\n", e.acc);
  } else {
    printf("perplexity  %.3f\n", exp(e.loss));
    double bpb = hy_eval_bits_per_byte(&e);
    if (!hy_batches_is_bytes(val)) printf("bits/tok    %.4f\n", e.loss / log(2.0));
    if (!isnan(bpb) && hy_batches_is_bytes(val))
      printf("bits/byte   %.4f\n", bpb);
    else if (!isnan(bpb)) /* nats over ln 2 and the bytes the targets decode to */
      printf("bits/byte   %.4f (%lld bytes of text, %.2f per token)\n", bpb, (long long)e.bytes,
             (double)e.bytes / (double)e.tokens);
  }
  hy_batches_close(val);
  hy_model_free(m);
  return rc;
}

/* ---- hyla generate ---- */

static int cmd_generate(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf(
        "usage: hyla generate CKPT [--prompt TEXT] [--tokens N] [--temperature T] "
        "[--top-k K] [--seed S]\n\n"
        "Samples text from a checkpoint's model, continuing the prompt: bytes, or the\n"
        "tokens of the subword vocabulary the checkpoint keeps (its bytes printed as they\n"
        "come). With a vocabulary the prompt is cut into its longest tokens, left to right.\n\n"
        "  --prompt TEXT     text to continue (default: a newline)\n"
        "  --tokens N        how many tokens to generate (default 200); N and the prompt's bytes\n"
        "                    together are at most %d, and what decoding them keeps (KV\n"
        "                    caches, the prefix of sigmoid, softplus and sla layers) must\n"
        "                    fit in this process's memory\n"
        "  --temperature T   softmax temperature, finite, >= 0; 0 is greedy (default 0.8)\n"
        "  --top-k K         sample among the K likeliest; 0 is all (default 40)\n"
        "  --seed S          the sampler's seed, >= 0 (default 1)\n\n"
        "Ctrl-C (SIGINT) or SIGTERM stops after the token in progress: what was generated\n"
        "stays printed, and the exit status is 130 (SIGINT) or 143 (SIGTERM). A second one\n"
        "ends hyla at once.\n",
        HY_GENERATE_MAX_LEN);
    return 0;
  }
  const char *path = NULL, *prompt = "";
  hy_sample_options o = {200, 0.8, 40, 1};
  int64_t seed = 1;
  const hy_cli_option opts[] = {
      HY_CLI_TEXT_OPTION("--prompt", &prompt),
      HY_CLI_INT_OPTION("--tokens", &o.tokens, 1, HY_GENERATE_MAX_LEN - 1),
      HY_CLI_REAL_OPTION("--temperature", &o.temperature, 0, false, DBL_MAX),
      HY_CLI_INT_OPTION("--top-k", &o.top_k, 0, INT64_MAX),
      HY_CLI_INT_OPTION("--seed", &seed, 0, INT64_MAX)};
  if (!PARSE("generate", argc, argv, 1, opts, &path, 1, "checkpoint"))
    usage_error("generate", "%s", "needs a checkpoint");
  o.seed = (uint64_t)seed;
  hy_error err;
  if (hy_generate_check(&o, prompt, &err)) usage_error("generate", "%s", err.msg);
  hy_recipe r;
  int64_t step;
  hy_model *m = load_model(path, false, NULL, &r, &step, &err);
  if (!m) return fail("generate", &err);
  hy_vocab vocab;
  if (read_vocab(path, m, &vocab, &err)) {
    hy_model_free(m);
    return fail("generate", &err);
  }
  int64_t positions = hy_generate_positions(&o, prompt);
  if (hy_recipe_check_decode(&r, positions, &err)) {
    hy_model_free(m);
    hy_vocab_free(&vocab);
    long long prompt_len = (long long)(positions - o.tokens);
    usage_error("generate", "--tokens %lld with a prompt of %lld byte%s: %s", (long long)o.tokens,
                prompt_len, prompt_len == 1 ? "" : "s", err.msg);
  }
  fputs(prompt, stdout);
  hy_stop_catch();
  int64_t made = hy_generate(m, &vocab, prompt, &o, stdout, &err);
  fputc('\n', stdout);
  hy_model_free(m);
  hy_vocab_free(&vocab);
  if (made < 0) return fail("generate", &err);
  if (made == o.tokens) return 0;
  fflush(stdout);
  fprintf(stderr, "hyla generate: stopped by %s after %lld of %lld tokens\n", hy_stop_name(),
          (long long)made, (long long)o.tokens);
  return hy_stop_exit_status();
}

/* ---- hyla data ---- */

/* hyla data prepare: the text into a dataset, then what it holds. */
static int data_prepare(int argc, char **argv) {
  const char *files[2] = {NULL, NULL}, *in, *out, *separator = NULL;
  hy_prepare_options o = {.val_fraction = 0.1};
  const hy_cli_option opts[] = {HY_CLI_REAL_OPTION("--val-fraction", &o.val_fraction, 0, true, 0.5),
                                HY_CLI_TEXT_OPTION("--tokenizer", &o.tokenizer),
                                HY_CLI_TEXT_OPTION("--doc-separator", &separator),
                                HY_CLI_FLAG_OPTION("--force", &o.force)};
  if (PARSE("data", argc, argv, 2, opts, files, 2, NULL) < 2)
    usage_error("data", "%s", "prepare needs IN (a text file or a folder) and OUT.h5");
  in = files[0], out = files[1];
  hy_error err;
  char *sep = separator ? malloc(strlen(separator) + 1) : NULL; /* its escapes decoded */
  if (separator && !sep) {
    hy_fail(&err, "out of memory");
    return fail("data", &err);
  }
  if (separator && hy_unescape(separator, sep, &o.separator_len, &err)) {
    free(sep);
    usage_error("data", "--doc-separator %s", err.msg);
  }
  o.separator = sep;
  hy_stop_catch();
  int rc = hy_data_prepare(in, out, &o, &err);
  free(sep);
  if (rc) {
    fail("data", &err);
    return hy_stop_asked() ? hy_stop_exit_status() : 1;
  }
  hy_dataset ds;
  if (hy_dataset_open(out, &ds, &err)) return fail("data", &err);
  int64_t bytes = ds.table.n ? hy_vocab_decode(&ds.table, ds.train, ds.n_train, NULL) +
                                   hy_vocab_decode(&ds.table, ds.val, ds.n_val, NULL)
                             : 0;
  printf("wrote %s: %lld tokens (%lld /train, %lld /val), vocabulary %lld (%s)", out,
         (long long)(ds.n_train + ds.n_val), (long long)ds.n_train, (long long)ds.n_val,
         (long long)ds.vocab, ds.tokenizer);
  if (bytes) printf(", %.2f bytes per token", (double)bytes / (double)(ds.n_train + ds.n_val));
  if (ds.train_docs)
    printf("\ndocuments: %lld in /train, %lld in /val\n", (long long)ds.n_train_docs,
           (long long)ds.n_val_docs);
  else
    printf("\ndocuments: not recorded (one text: each split is one document)\n");
  hy_dataset_close(&ds);
  return 0;
}

/* hyla data decode: a split's tokens as the text they stand for. */
static int data_decode(int argc, char **argv) {
  const char *path = NULL, *split = "both";
  const hy_cli_option opts[] = {HY_CLI_TEXT_OPTION("--split", &split)};
  if (!PARSE("data", argc, argv, 2, opts, &path, 1, NULL))
    usage_error("data", "%s", "decode needs DATA.h5");
  if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "both"))
    usage_error("data", "--split %s: expected train, val or both", split);
  hy_dataset ds;
  hy_error err;
  if (hy_dataset_open(path, &ds, &err)) return fail("data", &err);
  if (!ds.table.n && strcmp(ds.tokenizer, "bytes")) {
    hy_fail(&err, "%s: tokenizer '%s' without a stored vocabulary: its tokens are not bytes", path,
            ds.tokenizer);
    hy_dataset_close(&ds);
    return fail("data", &err);
  }
  if (strcmp(split, "val")) hy_vocab_decode(&ds.table, ds.train, ds.n_train, stdout);
  if (strcmp(split, "train")) hy_vocab_decode(&ds.table, ds.val, ds.n_val, stdout);
  hy_dataset_close(&ds);
  return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

static int cmd_data(int argc, char **argv) {
  if (argc < 2 || wants_help(argc, argv)) {
    printf("usage: hyla data prepare IN OUT.h5 [--tokenizer FILE] [--doc-separator TEXT]\n"
           "                         [--val-fraction F] [--force]\n"
           "       hyla data decode DATA.h5 [--split train|val|both]\n\n"
           "prepare tokenizes text into an HDF5 dataset with /train and /val, byte by byte or\n"
           "with a subword tokenizer. IN is a text file (gzip-compressed when its name ends in\n"
           ".gz) or a folder, whose files (not subfolders, nor names starting with '.') are\n"
           "documents, read in name order. A folder, or a file with --doc-separator, is many\n"
           "documents: the dataset records where each starts (/train_docs, /val_docs), for\n"
           "training with data.packing = \"documents\" (docs/data.md). /val is about the last F\n"
           "of the tokens (0 < F <= 0.5, default 0.1): exactly that of one text, the last whole\n"
           "documents of many. OUT.h5 is never the input, under any name.\n\n"
           "  --tokenizer FILE  a Hugging Face tokenizer.json of byte-level BPE (up to 2^24\n"
           "                    tokens; scripts/train-bpe.py trains one): the text goes through\n"
           "                    scripts/tokenize-text.py under python3 (HYLA_PYTHON names\n"
           "                    another) with the tokenizers package, each document on its own,\n"
           "                    and the dataset keeps each token's bytes, so training, eval and\n"
           "                    generate decode without Python.\n"
           "                    The tokens must decode to the text, byte for byte.\n"
           "  --doc-separator TEXT  documents end at each occurrence of TEXT, which is dropped\n"
           "                    (in every file of a folder too); C escapes are decoded, so\n"
           "                    '\\n\\n\\n' is two blank lines. Empty documents are left out.\n"
           "  --force           replace OUT.h5 if it exists (whole: a new file renamed over it)\n\n"
           "prepare prints the tokens and documents of each split.\n"
           "decode writes the text a dataset's tokens stand for (both splits: the text again,\n"
           "without the separators).\n\n"
           "Ctrl-C (SIGINT) or SIGTERM while the text is read or tokenized writes nothing and\n"
           "exits 130 (SIGINT) or 143 (SIGTERM); once writing has begun, the file is finished\n"
           "(never left in part). A second one ends hyla at once.\n");
    return argc < 2 ? 2 : 0;
  }
  if (is(argv[1], "prepare")) return data_prepare(argc, argv);
  if (is(argv[1], "decode")) return data_decode(argc, argv);
  usage_error("data", "unknown subcommand '%s'", argv[1]);
}

/* ---- hyla export ---- */

static int cmd_export(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla export CKPT DIR [--force] [--logits T]\n\n"
           "Writes the checkpoint's model into DIR as flash-linear-attention's Hugging Face\n"
           "classes load it: model.safetensors (f32) and config.json. Softmax attention alone\n"
           "becomes fla's Transformer; gla or linear layers, with softmax attention at any\n"
           "layers, fla's GLA or LinearAttention model with those layers in its attn list.\n"
           "A model fla has no counterpart for (another mixer, gla mixed with linear, a gla\n"
           "gate_norm other than 16 or gate_rank over 16) is refused, the mixer and the option\n"
           "named. docs/export.md gives the mapping, parameter by parameter. With\n"
           "transformers and fla installed:\n"
           "  import fla, transformers\n"
           "  model = transformers.AutoModelForCausalLM.from_pretrained(DIR)\n\n"
           "  --force      write into a DIR that already holds files (files of the same names\n"
           "               are replaced; others stay)\n"
           "  --logits T   also write %s: hyla's logits (f32) on %d sequences of T\n"
           "               pseudo-random tokens (1 <= T <= 65536), to check a loaded export\n"
           "               against (scripts/export-parity.py)\n",
           HY_EXPORT_LOGITS, HY_EXPORT_LOGITS_BATCH);
    return 0;
  }
  const char *paths[2] = {NULL, NULL}, *ckpt, *dir;
  hy_export_options o = {0};
  const hy_cli_option opts[] = {HY_CLI_FLAG_OPTION("--force", &o.force),
                                HY_CLI_INT_OPTION("--logits", &o.logits_tokens, 1, 1 << 16)};
  if (PARSE("export", argc, argv, 1, opts, paths, 2, NULL) < 2)
    usage_error("export", "%s", "needs a checkpoint and a directory");
  ckpt = paths[0], dir = paths[1];
  hy_recipe r;
  hy_error err;
  int64_t step;
  hy_model *m = load_model(ckpt, false, NULL, &r, &step, &err);
  if (!m) return fail("export", &err);
  o.max_positions = r.train.seq_len;
  int rc = hy_export(m, dir, &o, &err);
  hy_model_free(m);
  if (rc) return fail("export", &err);
  printf("wrote %s: model.safetensors, config.json%s%s (the model of %s, step %lld)\n", dir,
         o.logits_tokens ? ", " : "", o.logits_tokens ? HY_EXPORT_LOGITS : "", ckpt,
         (long long)step);
  return 0;
}

/* ---- hyla info ---- */

/* The backends and distribution this build has, and what this process sees of them. */
static void print_build(void) {
  printf("CPU   OpenBLAS, f32 and f64; %d thread%s\n", hy_threads_get(),
         hy_threads_get() == 1 ? "" : "s");
#ifdef HYLA_CUDA
  if (hy_cuda_available())
    printf("CUDA  f32 and bf16; %s (GPUs visible: %d)\n", hy_cuda_device_description(),
           hy_gpu_count());
  else
    printf("CUDA  f32 and bf16; no GPU visible to this process\n");
#else
  printf("CUDA  not built (cmake -DHYLA_CUDA=ON)\n");
#endif
#if defined(HYLA_MPI) && defined(HYLA_NCCL)
  const char *dist = "MPI for host buffers, NCCL for GPU buffers";
#elif defined(HYLA_MPI)
  const char *dist = "MPI";
#else
  const char *dist = NULL;
#endif
  if (dist)
    printf("dist  %s; %d process%s\n", dist, hy_dist_world_size(),
           hy_dist_world_size() == 1 ? "" : "es");
  else
    printf("dist  not built (one process)\n");
}

static int cmd_info(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla info [CKPT]\n\n"
           "With a checkpoint: its step, parameter count, vocabulary and recipe. Without: this\n"
           "build's backends (CPU, CUDA and the GPU this process sees) and distribution (MPI,\n"
           "NCCL).\n");
    return 0;
  }
  const char *path = NULL;
  const hy_cli_option *none = NULL;
  parse("info", argc, argv, 1, none, 0, (hy_cli_positional){&path, 1, "checkpoint"});
  hy_error err;
  if (!path) {
    if (hy_threads_choose(0, &err)) return fail("info", &err);
    print_build();
    return 0;
  }
  hy_recipe r;
  int64_t step;
  hy_model *m = load_model(path, false, NULL, &r, &step, &err);
  if (!m) return fail("info", &err);
  hy_vocab vocab;
  if (read_vocab(path, m, &vocab, &err)) {
    hy_model_free(m);
    return fail("info", &err);
  }
  char *text = hy_recipe_to_toml(&r);
  printf("checkpoint %s\nstep %lld\nparameters %lld\n", path, (long long)step,
         (long long)hy_params_count(&m->params));
  if (vocab.n)
    printf("vocabulary %lld tokens, their bytes kept in the checkpoint\n", (long long)vocab.n);
  else
    printf("vocabulary bytes\n");
  printf("\n%s", text);
  free(text);
  hy_vocab_free(&vocab);
  hy_model_free(m);
  return 0;
}

/* ---- hyla demo ---- */

static int cmd_demo(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla demo [--steps N] [--threads N]\n\n"
           "Trains a 2-layer softmax-attention model (d=64, byte vocabulary) on one batch of\n"
           "text with AdamW and prints the loss; succeeds when the loss falls below 0.1.\n\n"
           "  --steps N     at most N steps (default 200)\n"
           "  --threads N   CPU threads, 0 to %d; 0: HYLA_THREADS or all cores (default 0)\n",
           HY_THREADS_MAX);
    return 0;
  }
  int64_t steps = 200, threads = 0;
  const hy_cli_option opts[] = {HY_CLI_INT_OPTION("--steps", &steps, 1, INT64_MAX),
                                HY_CLI_INT_OPTION("--threads", &threads, 0, HY_THREADS_MAX)};
  PARSE("demo", argc, argv, 1, opts, NULL, 0, NULL);
  hy_error err;
  if (hy_threads_choose((int)threads, &err)) return fail("demo", &err);
  return hy_demo(steps, stdout) < HY_DEMO_LOSS ? 0 : 1;
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  hy_dist_start(&argc, &argv);
  world_rank = hy_dist_world_rank();
  int rc = run_command(argc, argv);
  hy_dist_stop();
  return rc;
}

static int run_command(int argc, char **argv) {
  if (argc < 2 || is(argv[1], "--help") || is(argv[1], "-h")) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  static const struct {
    const char *name;
    int (*run)(int, char **);
  } commands[] = {{"train", cmd_train},       {"sweep", cmd_sweep}, {"eval", cmd_eval},
                  {"generate", cmd_generate}, {"data", cmd_data},   {"export", cmd_export},
                  {"info", cmd_info},         {"demo", cmd_demo}};
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (is(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "hyla: unknown command '%s'\n\n%s", argv[1], USAGE);
  return 2;
}
