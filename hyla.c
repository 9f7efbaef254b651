/* The hyla command: parses argv and calls into the library. */
#include "autograd/tape.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/clip.h"
#include "tensor/ops.h"
#include "tensor/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *USAGE =
    "usage: hyla <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo      train a tiny 2-layer model on one batch of text: the smallest end-to-end check\n"
    "  info      what this build of hyla has (dtypes, threads, backends)\n"
    "\n"
    "Run 'hyla <command> --help' for a command's options.\n";

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  return false;
}

/* Parse "--name value" as a positive integer into *out; returns the number of args used. */
static int int_option(int argc, char **argv, int i, const char *name, int *out) {
  if (strcmp(argv[i], name) != 0) return 0;
  char *end = NULL;
  long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
  if (i + 1 >= argc || *end || v <= 0 || v > 1000000) {
    fprintf(stderr, "hyla: %s needs a positive whole number, got '%s'\n", name,
            i + 1 < argc ? argv[i + 1] : "");
    exit(2);
  }
  *out = (int)v;
  return 2;
}

static int cmd_info(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla info\n\nPrints what this build of hyla has.\n");
    return 0;
  }
  hy_threads_set(0);
  printf("hyla: CPU backend (OpenBLAS), f32 and f64; %d threads\n", hy_threads_get());
  return 0;
}

static const char DEMO_TEXT[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the winter "
    "of despair.";

static int cmd_demo(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: hyla demo [--steps N] [--threads N]\n\n"
           "Trains a 2-layer softmax-attention model (d=64, byte vocabulary) on one batch of\n"
           "text with AdamW and prints the loss; succeeds when the loss falls below 0.1.\n");
    return 0;
  }
  int steps = 200, threads = 0;
  for (int i = 1; i < argc;) {
    int used = int_option(argc, argv, i, "--steps", &steps);
    if (!used) used = int_option(argc, argv, i, "--threads", &threads);
    if (!used) {
      fprintf(stderr, "hyla demo: unknown option '%s' (see hyla demo --help)\n", argv[i]);
      return 2;
    }
    i += used;
  }
  hy_threads_set(threads);
  enum { B = 4, T = 64 };
  hy_model_config cfg = hy_model_config_default();
  hy_model *m = hy_model_new(&cfg, 1);
  hy_optimizer opt;
  hy_optimizer_init(&opt, &m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  printf("demo: %lld parameters, batch %d x %d bytes, %d threads\n",
         (long long)hy_params_count(&m->params), B, T, hy_threads_get());
  double loss = 0, t0 = (double)clock();
  int step;
  for (step = 1; step <= steps; step++) {
    hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(B, T + 1));
    for (int b = 0; b < B; b++)
      for (int t = 0; t <= T; t++)
        hy_set(tokens, b * (T + 1) + t, (unsigned char)DEMO_TEXT[b * 50 + t]);
    hy_tensor *l = hy_model_loss(m, hy_slice(tokens, 1, 0, T), hy_slice(tokens, 1, 1, T + 1), -1);
    loss = hy_item(l);
    hy_params_zero_grad(&m->params);
    hy_backward(l);
    hy_clip_grad_norm(&m->params, 1.0);
    hy_optimizer_step(&opt, 3e-3);
    hy_step_reset();
    if (step == 1 || step % 20 == 0) printf("step %4d  loss %.4f\n", step, loss);
    if (loss < 0.1) break;
  }
  printf("demo: loss %.4f after %d steps (%.1f s of CPU time)\n", loss, step < steps ? step : steps,
         ((double)clock() - t0) / CLOCKS_PER_SEC);
  hy_optimizer_free(&opt);
  hy_model_free(m);
  return loss < 0.1 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
  if (!strcmp(argv[1], "demo")) return cmd_demo(argc - 1, argv + 1);
  fprintf(stderr, "hyla: unknown command '%s'\n\n%s", argv[1], USAGE);
  return 2;
}
