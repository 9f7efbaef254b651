/* Training on the GPU: 100 steps of a small softmax-attention model on MQAR, and of a hybrid with
 * every mixer of the zoo, track the CPU's loss curve; in bf16 they stay near the f32 curve, and a
 * checkpoint written from the GPU resumes on it. */
#include "recipes/recipe.h"
#include "run/train.h"
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bound on |loss_gpu - loss_cpu| / loss_cpu at every step: the two devices sum in different
 * orders, and f32 rounding differences grow slowly over the steps. */
static const double CURVE_TOL = 1e-5; /* measured on an H200: 1.0e-7 */
/* The hybrid of every mixer: its linear-state layers amplify any rounding difference over the
 * steps (on the CPU alone, f32 against f64 passed 1e-5 at step 29 and reached 7e-3 at step 100),
 * so the GPU is held to CURVE_TOL for the first steps, where a wrong kernel shows at once, and
 * after that to HYBRID_SPREAD times the CPU f32's own distance from f64. */
static const int HYBRID_STRICT_STEPS = 10;
static const double HYBRID_SPREAD = 4; /* measured on an H200: GPU vs CPU 3.4e-3 at worst */
/* The bound on |loss_bf16 - loss_f32| / loss_f32 in mixed precision (bf16 activations keep 8 bits
 * of mantissa): issue 16's 1%. */
static const double BF16_CURVE_TOL = 1e-2;

TestSuite(cuda_train, .init = t_temp_init, .fini = t_temp_fini);

/* Every mixer once, in one model; blocks and chunks small enough that T = 64 spans several. */
static const char HYBRID[] = "gla, attn, linear, lightning, rat, sla, titans_mag, titans_mal, "
                             "titans_mac, sigmoid, softplus, conv";
static const char HYBRID_SETTINGS[] = "[layer.sla]\nblock = 16\n[layer.rat]\nchunk = 8\n"
                                      "[layer.titans]\nwindow = 16\nchunk = 16\nheads = 4\n"
                                      "segment = 32\n"
                                      "[layer.gla]\nchunk = 16\n[layer.lightning]\nchunk = 16\n"
                                      "[layer.linear]\nchunk = 16\n";

/* Trains `layers` (with the [layer.*] tables in `settings`) on MQAR into dir/name. */
static void train_model(const char *name, const char *device, const char *precision,
                        const char *layers, const char *settings, int64_t steps,
                        const char *resume) {
  char text[2048];
  snprintf(text, sizeof text,
           "[run]\nname = \"%s\"\nout = \"%s/%s\"\nseed = 5\n"
           "[model]\nd_model = 64\nn_heads = 4\nlayers = \"%s\"\n%s"
           "[data]\ndataset = \"mqar\"\n[data.mqar]\npairs = 8\n"
           "[train]\nbatch = 8\nseq_len = 64\nsteps = %lld\nlog_every = 1\neval_every = 50\n"
           "eval_batches = 2\ncheckpoint_every = 50\nthreads = 1\ndevice = \"%s\"\n"
           "precision = \"%s\"\n[optim]\nlr = 3e-3\nwarmup = 10\n",
           name, t_temp_path(), name, layers, settings, (long long)steps, device, precision);
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_parse(text, "test.toml", 0, NULL, &r, &err), 0, "%s", err.msg);
  hy_train_options opt = {.quiet = true, .resume = resume};
  hy_train_result res;
  cr_assert_eq(hy_train(&r, &opt, &res, &err), 0, "%s", err.msg);
}

static void train_in(const char *name, const char *device, const char *precision, int64_t steps,
                     const char *resume) {
  train_model(name, device, precision, "attn x 2", "", steps, resume);
}

/* The hybrid of every mixer, 100 steps. */
static void train_hybrid(const char *name, const char *device, const char *precision) {
  train_model(name, device, precision, HYBRID, HYBRID_SETTINGS, 100, NULL);
}

static void train(const char *name, const char *device, int64_t steps, const char *resume) {
  train_in(name, device, "f32", steps, resume);
}

static int losses(const char *name, double *out, int max) {
  char path[256], line[512];
  snprintf(path, sizeof path, "%s/%s/metrics.jsonl", t_temp_path(), name);
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s missing", path);
  int n = 0;
  while (fgets(line, sizeof line, f) && n < max) {
    char *at = strstr(line, "\"loss\":");
    if (at) out[n++] = strtod(at + 7, NULL);
  }
  fclose(f);
  return n;
}

/* Asserts run b's first n losses (of 100) are within tol of run a's, relative, at every step;
 * returns the largest gap and, in first_loss / last_loss, run a's first and last losses. */
static double largest_gap(const char *a, const char *b, int n, double tol, double *first_loss,
                          double *last_loss) {
  double la[100], lb[100];
  cr_assert_eq(losses(a, la, 100), 100);
  cr_assert_eq(losses(b, lb, 100), 100);
  double worst = 0;
  for (int i = 0; i < n; i++) {
    double rel = fabs(lb[i] - la[i]) / la[i];
    cr_assert(isfinite(lb[i]) && rel <= tol, "step %d: %s loss %.6f, %s %.6f (bound %.3g)", i + 1,
              b, lb[i], a, la[i], tol);
    if (rel > worst) worst = rel;
  }
  *first_loss = la[0];
  *last_loss = la[99];
  return worst;
}

Test(cuda_train, hundred_steps_track_the_cpu) {
  T_NEED_GPU();
  train("cpu", "cpu", 100, NULL);
  train("gpu", "cuda", 100, NULL);
  double first, last, worst = largest_gap("cpu", "gpu", 100, CURVE_TOL, &first, &last);
  cr_log_info("100 steps: largest relative loss difference GPU vs CPU %.3g", worst);
  cr_assert(last < first - 0.5, "the model learned nothing (%.3f -> %.3f)", first, last);
}

Test(cuda_train, every_mixer_tracks_the_cpu) {
  T_NEED_GPU();
  train_hybrid("hybrid-f64", "cpu", "f64");
  train_hybrid("hybrid-cpu", "cpu", "f32");
  train_hybrid("hybrid-gpu", "cuda", "f32");
  double first, last;
  double early =
      largest_gap("hybrid-cpu", "hybrid-gpu", HYBRID_STRICT_STEPS, CURVE_TOL, &first, &last);
  double cpu = largest_gap("hybrid-f64", "hybrid-cpu", 100, INFINITY, &first, &last);
  double gpu =
      largest_gap("hybrid-f64", "hybrid-gpu", 100, HYBRID_SPREAD * cpu + CURVE_TOL, &first, &last);
  cr_log_info("every mixer: GPU vs CPU over the first %d steps %.3g; over 100 steps, distance "
              "from f64 of the CPU's f32 %.3g and of the GPU's %.3g",
              HYBRID_STRICT_STEPS, early, cpu, gpu);
  cr_assert(last < first - 0.5, "the hybrid learned nothing (%.3f -> %.3f)", first, last);
}

Test(cuda_train, bf16_tracks_f32) {
  T_NEED_GPU();
  train_in("f32", "cuda", "f32", 100, NULL);
  train_in("bf16", "cuda", "bf16", 100, NULL);
  double first, last, worst = largest_gap("f32", "bf16", 100, BF16_CURVE_TOL, &first, &last);
  cr_log_info("100 steps: largest relative loss difference bf16 vs f32 %.3g", worst);
  cr_assert(last < first - 0.5, "f32 learned nothing (%.3f -> %.3f)", first, last);
}

/* Every mixer in bf16, where each meets f32 parameters (persistent tokens, memories, gains) with
 * bf16 activations: within the bf16 bound of its f32 curve over the first steps, finite over
 * 100, and learning. */
Test(cuda_train, every_mixer_trains_in_bf16) {
  T_NEED_GPU();
  train_hybrid("hybrid-f32", "cuda", "f32");
  train_hybrid("hybrid-bf16", "cuda", "bf16");
  double first, last;
  double early =
      largest_gap("hybrid-f32", "hybrid-bf16", HYBRID_STRICT_STEPS, BF16_CURVE_TOL, &first, &last);
  double all = largest_gap("hybrid-f32", "hybrid-bf16", 100, INFINITY, &first, &last);
  largest_gap("hybrid-bf16", "hybrid-f32", 100, INFINITY, &first, &last); /* bf16's own ends */
  cr_log_info("every mixer in bf16: largest relative loss difference from f32 over the first %d "
              "steps %.3g, over 100 %.3g",
              HYBRID_STRICT_STEPS, early, all);
  cr_assert(last < first - 0.5, "the hybrid learned nothing in bf16 (%.3f -> %.3f)", first, last);
}

Test(cuda_train, bf16_on_the_cpu_is_refused) {
  hy_recipe r;
  hy_error err;
  const char *text = "[train]\nprecision = \"bf16\"\n";
  cr_assert_neq(hy_recipe_parse(text, "test.toml", 0, NULL, &r, &err), 0, "accepted");
  cr_assert(strstr(err.msg, "test.toml:2: [train] precision = \"bf16\" needs device = \"cuda\""),
            "%s", err.msg);
}

Test(cuda_train, gpu_checkpoint_resumes_on_the_gpu) {
  T_NEED_GPU();
  train("whole", "cuda", 60, NULL);
  train("part", "cuda", 60, NULL); /* a checkpoint at step 50 */
  char ckpt[256];
  snprintf(ckpt, sizeof ckpt, "%s/part/ckpt-00000050.h5", t_temp_path());
  train("part", "cuda", 60, ckpt);
  double whole[60], part[80];
  cr_assert_eq(losses("whole", whole, 60), 60);
  int n = losses("part", part, 80);
  cr_assert_eq(n, 60, "50 steps kept, 10 trained again after the resume: %d losses", n);
  /* 1e-5, not bitwise: the embedding's backward adds rows with atomics, in any order */
  for (int i = 50; i < 60; i++)
    cr_assert(fabs(part[i] - whole[i]) <= 1e-5 * whole[i],
              "step %d after resume: %.7f, straight through %.7f", i + 1, part[i], whole[i]);
}

/* A checkpoint of a mixed-precision run holds the f32 parameters and AdamW moments, as any other:
 * it resumes in bf16 on the GPU (within bf16's run-to-run spread: the embedding's atomics reorder
 * sums, and bf16 storage can round such a difference up to 2^-9) and in f32 on the CPU (within
 * the bf16-f32 distance of the curves). */
Test(cuda_train, bf16_checkpoint_resumes_on_the_gpu_and_the_cpu) {
  T_NEED_GPU();
  train_in("bf-whole", "cuda", "bf16", 60, NULL);
  train_in("bf-part", "cuda", "bf16", 60, NULL);
  char ckpt[256];
  snprintf(ckpt, sizeof ckpt, "%s/bf-part/ckpt-00000050.h5", t_temp_path());
  train_in("bf-part", "cuda", "bf16", 60, ckpt);
  train_in("bf-cpu", "cpu", "f32", 60, ckpt);
  double whole[60], gpu[80], cpu[80];
  cr_assert_eq(losses("bf-whole", whole, 60), 60);
  cr_assert_eq(losses("bf-part", gpu, 80), 60);
  cr_assert_eq(losses("bf-cpu", cpu, 80), 10, "the CPU run starts at step 51");
  double worst_gpu = 0, worst_cpu = 0;
  for (int i = 50; i < 60; i++) {
    double g = fabs(gpu[i] - whole[i]) / whole[i], c = fabs(cpu[i - 50] - whole[i]) / whole[i];
    cr_assert(g <= 1e-3, "step %d, resumed in bf16 on the GPU: %.6f, straight through %.6f", i + 1,
              gpu[i], whole[i]);
    cr_assert(c <= BF16_CURVE_TOL, "step %d, resumed in f32 on the CPU: %.6f, bf16 %.6f", i + 1,
              cpu[i - 50], whole[i]);
    worst_gpu = fmax(worst_gpu, g), worst_cpu = fmax(worst_cpu, c);
  }
  cr_log_info("bf16 checkpoint resumed: largest relative loss difference on the GPU %.3g, on the "
              "CPU in f32 %.3g",
              worst_gpu, worst_cpu);
}
