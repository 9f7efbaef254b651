/* End-to-end training throughput on the GPU: tokens/s and GPU memory of whole training steps
 * (forward, backward, gradient clipping, AdamW) of 134M-parameter language models (d = 768, 12
 * blocks, 12 heads, vocab 32000, SwiGLU; f32, and mixed precision: bf16 activations) of softmax
 * attention, a 3:1 GLA/attention hybrid and pure GLA, at B = 8, T = 2048 and at B = 2, T = 8192
 * (the same tokens per step). The median step of 5 after 2 warm-ups; MFU as layers/flops.h counts
 * it. With HYLA_PROFILE=1 one more step of each run prints its time op by op (tensor/profile.h).
 * Memory: "held" is the growth of the GPU's used memory from before the model to after the steps
 * (parameters, gradients, AdamW moments, the step arena's chunks, cuBLAS's workspace); "peak"
 * counts the arena at its peak instead of its chunks. bench/reference/lm_torch.py measures
 * PyTorch's softmax LM likewise. Usage: bench_cuda_lm [T ...] [softmax|hybrid|gla] [f32|bf16]
 *   (default: 2048 8192, every model, both precisions; a model or precision named keeps only it) */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "layers/flops.h"
#include "layers/model.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "tensor/arena.h"
#include "tensor/device.h"
#include "tensor/ops.h"
#include "tensor/profile.h"
#include "tensor/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

enum { WARMUP = 2, REPS = 5, TOKENS_PER_STEP = 8 * 2048, VOCAB = 32000 };

#ifdef HYLA_CUDA
typedef struct {
  hy_model *m;
  hy_optimizer opt;
  hy_tensor *tokens, *targets; /* persistent, on the GPU (as a graph-captured step takes them) */
  hy_cuda_graph *graph;        /* the step captured, once warm; NULL: run it op by op */
} lm_case;

static void step(void *ctx) {
  lm_case *c = ctx;
  if (c->graph) {
    hy_optimizer_prepare(&c->opt, 3e-4); /* the step's learning rate, for the replay */
    hy_cuda_graph_launch(c->graph);
    return;
  }
  hy_params_zero_grad(&c->m->params);
  hy_tensor *loss = hy_model_loss(c->m, c->tokens, c->targets, -1);
  hy_backward(loss);
  hy_step_reset();
  hy_clip_grad_norm(&c->m->params, 1.0);
  hy_optimizer_step(&c->opt, 3e-4);
}

/* The step as one CUDA graph: it must make no host synchronization and no allocation, which the
 * warm-up steps before it took care of (the arena's chunks, the weights' bf16 copies). */
static void capture(lm_case *c) {
  hy_cuda_synchronize();
  hy_optimizer_prepare(&c->opt, 3e-4);
  hy_cuda_graph_begin();
  step(c);
  c->graph = hy_cuda_graph_end();
}

static hy_tensor *random_tokens(int64_t B, int64_t T, hy_rng *rng) {
  hy_tensor *t = hy_empty_persistent_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  hy_fill_int(t, rng, 0, VOCAB);
  hy_tensor *g = hy_empty_persistent_on(HY_CUDA, HY_I32, HY_SHAPE(B, T));
  hy_copy_into(g, t);
  hy_free(t);
  return g;
}

#endif

/* One model at one length: prints a table row. */
static void run(const char *name, const char *const *pattern, int n_pattern, int64_t T,
                hy_precision precision, bool graph) {
#ifdef HYLA_CUDA
  int64_t B = TOKENS_PER_STEP / T;
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = VOCAB;
  cfg.d_model = 768;
  cfg.n_heads = 12;
  cfg.n_layers = 12;
  cfg.tied_embeddings = false; /* 134M parameters, as the reference */
  for (int i = 0; i < cfg.n_layers; i++)
    snprintf(cfg.layers[i], sizeof cfg.layers[i], "%s", pattern[i % n_pattern]);
  hy_cuda_synchronize();
  size_t before = hy_cuda_memory_in_use();
  hy_arena_peak_reset(); /* the arena is empty here: the peak is this run's alone */
  hy_set_device(HY_CPU);
  lm_case c = {.m = hy_model_new(&cfg, 1)};
  hy_set_device(HY_CUDA);
  hy_params_to(&c.m->params, HY_CUDA);
  hy_optimizer_init(&c.opt, &c.m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  hy_rng rng = hy_rng_new(3);
  c.tokens = random_tokens(B, T, &rng);
  c.targets = random_tokens(B, T, &rng);
  hy_set_precision(precision);
  hy_profile_enable(false); /* only the step after the timed ones, with HYLA_PROFILE */
  if (graph) {
    for (int i = 0; i < WARMUP; i++) step(&c);
    capture(&c);
  }
  double t = bench_gpu_median(step, &c, WARMUP, REPS);
  hy_cuda_graph_free(c.graph);
  c.graph = NULL;
  if (getenv("HYLA_PROFILE")) { /* one more step, op by op */
    hy_profile_enable(true);
    step(&c);
    hy_profile_mark("clip + optimizer", false);
    hy_profile_report(stdout, 1);
    hy_profile_enable(false);
  }
  hy_set_precision(HY_PRECISION_F32);
  hy_cuda_synchronize();
  /* held: all the GPU memory the run took; peak: the most in use, the arena counted at its peak
   * (as PyTorch's max_memory_allocated counts its caching allocator) */
  size_t held = hy_cuda_memory_in_use() - before;
  size_t peak = held - hy_arena_device_capacity() + hy_arena_device_peak();
  char label[64];
  snprintf(label, sizeof label, "hyla %s %s%s %.0fM", name, graph ? "" : "eager ",
           precision == HY_PRECISION_BF16 ? "bf16" : "f32",
           (double)hy_params_count(&c.m->params) / 1e6);
  double tokens_per_s = (double)(B * T) / t, peak_flops = hy_gpu_bf16_peak();
  double mfu = peak_flops > 0 ? tokens_per_s * hy_model_flops_per_token(c.m, T) / peak_flops : 0;
  printf("| %-34s | %5lld | %2lld | %9.1f | %8.0f | %8.1f | %8.1f | %5.1f%% |\n", label,
         (long long)T, (long long)B, t * 1e3, tokens_per_s, (double)peak / (1 << 30),
         (double)held / (1 << 30), 100 * mfu);
  fflush(stdout);
  hy_optimizer_free(&c.opt);
  hy_model_free(c.m);
  hy_free(c.tokens);
  hy_free(c.targets);
  hy_step_reset();
  hy_arena_release();
#else
  (void)name, (void)pattern, (void)n_pattern, (void)T, (void)precision, (void)graph;
#endif
}

int main(int argc, char **argv) {
  if (!hy_cuda_available()) {
    printf("bench_cuda_lm: no CUDA GPU (%s); nothing to time\n",
           hy_cuda_built() ? "none visible" : "built without -DHYLA_CUDA=ON");
    return 0;
  }
  int64_t lengths[8] = {2048, 8192};
  int n_lengths = 0;
  const char *only_model = NULL, *only_precision = NULL;
  bool graph = true;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "eager"))
      graph = false;
    else if (!strcmp(argv[i], "softmax") || !strcmp(argv[i], "hybrid") || !strcmp(argv[i], "gla"))
      only_model = argv[i];
    else if (!strcmp(argv[i], "f32") || !strcmp(argv[i], "bf16"))
      only_precision = argv[i];
    else if (atoll(argv[i]) > 0 && n_lengths < 8)
      lengths[n_lengths++] = atoll(argv[i]);
    else {
      fprintf(stderr,
              "bench_cuda_lm: unknown argument '%s' (expected a length, softmax, hybrid, "
              "gla, f32, bf16 or eager)\n",
              argv[i]);
      return 2;
    }
  }
  if (n_lengths == 0) n_lengths = 2;
  static const char *const softmax[] = {"attn"}, *const hybrid[] = {"gla", "gla", "gla", "attn"},
                           *const gla[] = {"gla"};
  hy_set_device(HY_CUDA);
  printf("device: %s\n", bench_gpu_description());
  printf("134M-parameter LM training steps, f32 or mixed bf16, %d tokens per step, median of %d "
         "after %d "
         "warm-ups\n",
         TOKENS_PER_STEP, REPS, WARMUP);
  printf("MFU: model FLOPs a second (layers/flops.h, docs/cuda.md) over the GPU's dense bf16 "
         "peak, %.0f TFLOP/s\n",
         hy_gpu_bf16_peak() / 1e12);
  printf("| %-34s | %5s | %2s | %9s | %8s | %8s | %8s | %6s |\n", "model", "T", "B", "step ms",
         "tokens/s", "peak GiB", "held GiB", "MFU");
  for (int i = 0; i < n_lengths; i++) {
    for (int p = 0; p < 2; p++) {
      hy_precision precision = p ? HY_PRECISION_BF16 : HY_PRECISION_F32;
      if (only_precision && strcmp(only_precision, p ? "bf16" : "f32")) continue;
      if (!only_model || !strcmp(only_model, "softmax"))
        run("softmax", softmax, 1, lengths[i], precision, graph);
      if (!only_model || !strcmp(only_model, "hybrid"))
        run("3:1 gla/attn", hybrid, 4, lengths[i], precision, graph);
      if (!only_model || !strcmp(only_model, "gla"))
        run("pure gla", gla, 1, lengths[i], precision, graph);
    }
  }
  hy_set_device(HY_CPU);
  return 0;
}
