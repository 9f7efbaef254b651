#include "run/train.h"
#include "layers/flops.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "recipes/sizes.h"
#include "run/batches.h"
#include "run/checkpoint.h"
#include "tensor/device.h"
#include "run/parallel.h"
#include "run/evaluate.h"
#include "run/metrics.h"
#include "tensor/ops.h"
#include "tensor/threads.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/stop.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  const hy_recipe *r;
  const hy_train_options *opt;
  char *recipe_text;
  hy_model *model;
  hy_optimizer optim;
  hy_schedule sched;
  hy_batches *train, *val;
  hy_dist dist;
  bool lead; /* rank 0: the one that prints, logs and writes checkpoints */
  /* On the GPU a step reads nothing back: the micro-batches' losses and the gradient norm wait
   * on the device for the steps that log them. */
  bool gpu;
  hy_tensor *losses; /* [grad_accum] f32 on the GPU */
  hy_tensor *gnorm;  /* the last hy_clip_grad_norm */
  int64_t nonfinite; /* the clips with a non-finite norm seen so far (hy_clip_nonfinite) */
  /* A step of one micro-batch captured as a CUDA graph (train.cuda_graph): replayed while the
   * batch's shape, its loss weight and the GPU arena's memory stay those of the capture. The
   * batch goes to the GPU into tokens and targets first, outside the graph; packed documents'
   * positions stay on the host, where the model cuts the documents (it copies them to the GPU
   * itself), so they make no round trip. */
  hy_tensor *tokens, *targets, *positions;
  struct hy_cuda_graph *graph; /* tensor/cuda/runtime.h */
  double graph_weight;
  uint64_t graph_arena;
  int64_t plain_gpu_steps; /* steps run op by op, which size the arena before a capture */
  FILE *metrics, *log;
  int lock; /* the run directory's (hy_lock_dir), -1 when not held */
  bool tty;
  double t_start, t_last_log;
  int64_t step_at_last_log;
  double flops_per_token, peak_flops; /* for MFU on a GPU (layers/flops.h); peak 0: none */
} run;

/* A line for the user: on stdout (unless quiet) and in the run's log. */
static void say(run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run *R, const char *fmt, ...) {
  va_list ap;
  if (!R->lead) return;
  if (!R->opt->quiet) {
    if (R->tty) fputs("\r\033[K", stdout); /* clear the progress line */
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
  }
  if (R->log) {
    va_start(ap, fmt);
    vfprintf(R->log, fmt, ap);
    va_end(ap);
    fputc('\n', R->log);
    fflush(R->log);
  }
}

static void format_duration(double s, char *buf, size_t n) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else
    snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static void metric(run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metric(run *R, const char *fmt, ...) {
  if (!R->metrics) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(R->metrics, fmt, ap);
  va_end(ap);
  fputc('\n', R->metrics);
  fflush(R->metrics);
}

/* ---- set-up ---- */

static void apply_no_decay(hy_params *ps, const hy_recipe *r) {
  for (int i = 0; i < ps->n; i++) {
    bool decay = true;
    for (int k = 0; k < r->optim.n_no_decay; k++)
      if (strstr(ps->items[i].name, r->optim.no_decay[k])) decay = false;
    ps->items[i].decay = decay;
  }
}

static hy_optimizer_config optimizer_config(const hy_recipe *r) {
  if (r->optim.name == HY_RECIPE_SGD)
    return hy_sgd_config(r->optim.momentum, r->optim.weight_decay);
  return hy_adamw_config(r->optim.betas[0], r->optim.betas[1], r->optim.eps, r->optim.weight_decay);
}

/* A recipe.toml in the run directory that hyla did not write (a recipe trained with run.out set to
 * its own folder) is the user's: it is not replaced by the resolved one. */
static int check_recipe_is_ours(const char *path, hy_error *err) {
  if (access(path, F_OK) != 0) return 0;
  char *text = hy_read_file(path, NULL, err);
  if (!text) return -1;
  bool ours = !strncmp(text, HY_RECIPE_RESOLVED_HEADER, strlen(HY_RECIPE_RESOLVED_HEADER));
  free(text);
  if (ours) return 0;
  return hy_fail(err,
                 "%s is not a recipe a run wrote, and a run writes its resolved recipe there: "
                 "move it, or set run.out to another directory",
                 path);
}

static int open_outputs(run *R, int64_t start, hy_error *err) {
  const char *dir = R->r->run.out;
  char path[4096];
  if (hy_mkdirs(dir, err)) return -1;
  snprintf(path, sizeof path, "%s/recipe.toml", dir);
  if (check_recipe_is_ours(path, err) || hy_write_file_atomic(path, R->recipe_text, err)) return -1;
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  if (start > 0 ? hy_metrics_trim(path, start, err) : (unlink(path), 0)) return -1;
  R->metrics = hy_open_for_writing(path, true);
  snprintf(path, sizeof path, "%s/train.log", dir);
  R->log = hy_open_for_writing(path, start > 0);
  if (!R->metrics || !R->log)
    return hy_fail(err, "%s: cannot write the run's logs: %s", dir, strerror(errno));
  return 0;
}

/* ---- the run directory ---- */

/* What a run leaves in its directory besides checkpoints: --restart moves these aside too. */
static const char *const RUN_FILES[] = {"recipe.toml", "metrics.jsonl", "train.log",
                                        "result.json", "error.txt",     NULL};

/* Move the directory's checkpoints and logs into a new RUN_DIR/previous-<n>. */
static int set_aside(const char *dir, hy_error *err) {
  char moved[4096];
  if (hy_checkpoint_set_aside(dir, RUN_FILES, moved, sizeof moved, err)) return -1;
  fprintf(stderr, "restart: the earlier checkpoints and logs are now in %s\n", moved);
  return 0;
}

/* Lock the run directory for this run, and refuse a fresh run (no --resume) next to checkpoints:
 * its own would overwrite theirs step for step and prune theirs. --restart moves them aside
 * instead. A resumed run continues the checkpoints there, from the newest or the one it names. */
static int claim_dir(run *R, hy_error *err) {
  const char *dir = R->r->run.out;
  if (hy_mkdirs(dir, err) || (R->lock = hy_lock_dir(dir, err)) < 0) return -1;
  int64_t newest = hy_checkpoint_newest(dir);
  if (R->opt->resume || newest < 0) return 0;
  if (R->opt->restart) return set_aside(dir, err);
  return hy_fail(err,
                 "%s already holds checkpoints (the newest of step %lld): pass --resume to "
                 "continue that run, --restart to move them into %s/previous-<n> and start over, "
                 "or set run.out to another directory",
                 dir, (long long)newest, dir);
}

static int save(run *R, int64_t step, const int64_t *loader, int n_loader, hy_error *err) {
  if (!R->lead) return 0; /* the parameters are the same on every rank */
  char path[4096];
  hy_checkpoint_path(path, sizeof path, R->r->run.out, step);
  hy_ckpt_meta meta = {.step = step,
                       .n_loader = n_loader,
                       .recipe = R->recipe_text,
                       .vocab = hy_batches_table(R->train)};
  memcpy(meta.loader, loader, (size_t)n_loader * sizeof *loader);
  if (hy_checkpoint_write(path, &R->model->params, &R->optim, &meta, err)) return -1;
  hy_checkpoint_prune(R->r->run.out, R->r->train.keep_checkpoints, step);
  say(R, "checkpoint %s", path);
  return 0;
}

/* Resume from a checkpoint: parameters, optimizer, loader position; returns the step. */
static int64_t resume(run *R, hy_error *err) {
  char path[4096];
  if (R->opt->resume[0])
    snprintf(path, sizeof path, "%s", R->opt->resume);
  else if (hy_checkpoint_latest(R->r->run.out, path, sizeof path, err))
    return -1;
  hy_ckpt_meta meta;
  if (hy_checkpoint_read_meta(path, &meta, err)) return -1;
  hy_ckpt_meta_free(&meta); /* the recipe in it is not needed: the run's recipe is given */
  if (hy_batches_check_checkpoint(R->train, R->r->data.dataset, path, err)) return -1;
  if (hy_checkpoint_load(path, &R->model->params, &R->optim, err)) return -1;
  if (hy_batches_restore(R->train, meta.loader, meta.n_loader, err)) return -1;
  if (R->lead) fprintf(stderr, "resuming from %s at step %lld\n", path, (long long)meta.step);
  return meta.step;
}

/* ---- the steps ---- */

/* Returns false when a stop cut the evaluation short: then nothing of it is recorded. */
static bool evaluate(run *R, int64_t step, hy_train_result *res) {
  hy_batches *val = R->val;
  hy_eval_result e = hy_evaluate(R->model, val, R->r->train.eval_batches, &R->dist);
  hy_batches_rewind(val); /* every evaluation sees the same batches */
  if (e.batches < R->r->train.eval_batches) {
    say(R, "eval step %lld: stopped by a signal after %lld of %lld batches; not recorded",
        (long long)step, (long long)e.batches, (long long)R->r->train.eval_batches);
    return false;
  }
  res->val_loss = e.loss;
  bool mqar = hy_batches_is_mqar(val);
  res->val_acc = mqar ? e.acc : NAN;
  double bpb = hy_eval_bits_per_byte(&e);
  bool per_byte = !isnan(bpb);
  if (!per_byte) bpb = e.loss / log(2.0); /* bits per token, where a token's bytes are unknown */
  if (mqar) {
    say(R, "eval step %lld: val loss %.4f, accuracy %.4f (%lld labelled tokens)", (long long)step,
        e.loss, e.acc, (long long)e.tokens);
    metric(R, "{\"step\":%lld,\"val_loss\":%.6f,\"val_acc\":%.6f}", (long long)step, e.loss, e.acc);
  } else {
    say(R, "eval step %lld: val loss %.4f, perplexity %.3f, %.4f bits per %s", (long long)step,
        e.loss, exp(e.loss), bpb, per_byte ? "byte" : "token");
    metric(R, "{\"step\":%lld,\"val_loss\":%.6f,\"val_ppl\":%.6f,\"val_bpb\":%.6f}",
           (long long)step, e.loss, exp(e.loss), bpb);
  }
  return true;
}

static bool logs_at(const run *R, int64_t step, int64_t end) {
  return step % R->r->train.log_every == 0 || step == end;
}

/* The step's line; loss NAN: not read back (a GPU step that does not log). */
static void report(run *R, int64_t step, int64_t end, double loss, double lr, double gnorm) {
  const hy_recipe *r = R->r;
  double t = hy_clock_s(), dt = t - R->t_last_log;
  int64_t steps = step - R->step_at_last_log;
  double tokens = (double)(steps * r->train.batch * r->train.seq_len * r->train.grad_accum);
  double tps = dt > 0 ? tokens / dt : 0, per_step = dt / (double)(steps ? steps : 1);
  char eta[32];
  format_duration(per_step * (double)(end - step), eta, sizeof eta);
  /* model FLOPs a second per GPU over its bf16 peak: a data-parallel group's tokens/s, its sp
   * GPUs sharing each sequence (flops_per_token is divided by sp) */
  double mfu = R->peak_flops > 0 ? tps * R->flops_per_token / R->peak_flops : 0;
  char mfu_text[32] = "";
  if (mfu > 0) snprintf(mfu_text, sizeof mfu_text, "  MFU %.1f%%", 100 * mfu);
  if (logs_at(R, step, end)) {
    /* dist.collectives = "timed": this rank's seconds a step in collectives, and by kind */
    char comm_text[48] = "", comm_json[256] = "";
    if (r->dist.collectives == HY_RECIPE_COLL_TIMED) {
      double by_kind[HY_COLL_KINDS], per = 1.0 / (double)(steps ? steps : 1);
      double comm = hy_dist_take_seconds(by_kind) * per;
      snprintf(comm_text, sizeof comm_text, "  comm %.1f ms (%.0f%%)", 1e3 * comm,
               per_step > 0 ? 100 * comm / per_step : 0);
      int at = snprintf(comm_json, sizeof comm_json, ",\"comm_s\":%.6f,\"comm_s_by\":{", comm);
      for (int k = 0; k < HY_COLL_KINDS; k++)
        at += snprintf(comm_json + at, sizeof comm_json - (size_t)at, "%s\"%s\":%.6f", k ? "," : "",
                       hy_coll_name((hy_coll_kind)k), by_kind[k] * per);
      snprintf(comm_json + at, sizeof comm_json - (size_t)at, "}");
    }
    say(R, "step %lld/%lld  loss %.4f  lr %.3g  grad norm %.3f  %.0f tok/s%s%s  ETA %s",
        (long long)step, (long long)end, loss, lr, gnorm, tps, mfu_text, comm_text, eta);
    metric(R,
           "{\"step\":%lld,\"loss\":%.17g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens_per_s\":%.1f,"
           "\"mfu\":%.4f,\"elapsed_s\":%.3f%s}",
           (long long)step, loss, lr, gnorm, tps, mfu, t - R->t_start, comm_json);
    R->t_last_log = t;
    R->step_at_last_log = step;
  } else if (R->lead && R->tty && !R->opt->quiet) {
    char shown[32] = "";
    if (!isnan(loss)) snprintf(shown, sizeof shown, "  loss %.4f", loss);
    printf("\r\033[Kstep %lld/%lld%s  %.0f tok/s  ETA %s", (long long)step, (long long)end, shown,
           tps, eta);
    fflush(stdout);
  }
}

static double labelled(const hy_tensor *targets) {
  const int32_t *t = targets->data;
  int64_t n = 0;
  for (int64_t i = 0; i < hy_numel(targets); i++) n += t[i] != HY_IGNORE_INDEX;
  return (double)n;
}

/* One optimizer step over grad_accum micro-batches on the CPU. Returns the mean loss and sets
 * *gnorm; a non-finite loss or gradient norm is returned as is, with no update made. A stop asked
 * between micro-batches abandons the step (*abandoned, no update): a step of many micro-batches
 * would keep a signal waiting for minutes. */
static double train_step(run *R, int64_t step, double *gnorm, bool *abandoned) {
  const hy_recipe *r = R->r;
  hy_params *ps = &R->model->params;
  hy_params_zero_grad(ps);
  double loss = 0;
  bool finite = true;
  for (int64_t micro = 0; micro < r->train.grad_accum; micro++) {
    hy_tensor *x, *y, *p; /* p: the whole rows' positions, NULL for one stream */
    hy_batches_next(R->train, &x, &y, &p);
    x = hy_parallel_slice(&R->dist, x);
    y = hy_parallel_slice(&R->dist, y);
    /* Each rank's mean, weighted by its share of the labelled positions of all ranks: summed over
     * the ranks, the losses and gradients are those of the mean over every position. */
    double mine = labelled(y), all = hy_parallel_sum(&R->dist, mine);
    double weight = (all > 0 ? mine / all : 0) / (double)r->train.grad_accum;
    hy_tensor *l = hy_scale(hy_model_loss_packed(R->model, x, p, y, HY_IGNORE_INDEX), weight);
    double v = hy_parallel_sum(&R->dist, hy_item(l));
    loss += v;
    finite = finite && isfinite(v);
    if (finite) hy_backward(l);
    hy_parallel_end_slice();
    hy_step_reset();
    /* every rank asks at the same micro-batch, as at a step */
    if (micro + 1 < r->train.grad_accum && hy_parallel_stop_asked(&R->dist)) {
      *abandoned = true;
      return NAN;
    }
  }
  if (finite) hy_parallel_reduce_grads(&R->dist, ps);
  *gnorm = finite ? hy_item(hy_clip_grad_norm(ps, r->train.grad_clip)) : NAN;
  if (!finite || !isfinite(*gnorm)) return isfinite(loss) ? NAN : loss;
  hy_optimizer_step(&R->optim, hy_schedule_lr(&R->sched, step));
  return loss;
}

#ifdef HYLA_CUDA
/* The next micro-batch for the GPU: its targets checked on the host (the GPU's loss is not read
 * back), then both copied into the run's GPU buffers, outside any graph; returns its loss weight
 * (as train_step's). The sequence-parallel slice stays open until hy_parallel_end_slice. */
static double next_gpu_batch(run *R) {
  hy_tensor *x, *y, *p;
  hy_batches_next(R->train, &x, &y, &p);
  x = hy_contiguous(hy_parallel_slice(&R->dist, x));
  y = hy_contiguous(hy_parallel_slice(&R->dist, y));
  hy_check_targets("train", y, R->r->model.vocab, HY_IGNORE_INDEX);
  double mine = labelled(y), all = hy_parallel_sum(&R->dist, mine);
  if (!R->tokens || !hy_same_shape(R->tokens, x)) { /* a batch of another shape */
    hy_cuda_graph_free(R->graph);
    R->graph = NULL;
    hy_free(R->tokens);
    hy_free(R->targets);
    hy_free(R->positions);
    R->tokens = hy_empty_persistent_on(HY_CUDA, HY_I32, hy_shape_of(x));
    R->targets = hy_empty_persistent_on(HY_CUDA, HY_I32, hy_shape_of(y));
    R->positions = p ? hy_empty_persistent_on(HY_CPU, HY_I32, hy_shape_of(p)) : NULL;
  }
  hy_copy_into(R->tokens, x);
  hy_copy_into(R->targets, y);
  if (p) hy_copy_into(R->positions, p);
  return (all > 0 ? mine / all : 0) / (double)R->r->train.grad_accum;
}

/* The GPU work of one micro-batch: its weighted loss into R->losses[micro], its gradients. */
static void gpu_micro_batch(run *R, int64_t micro, double weight) {
  hy_tensor *l = hy_scale(
      hy_model_loss_packed(R->model, R->tokens, R->positions, R->targets, HY_IGNORE_INDEX), weight);
  hy_tensor *v = l->dtype == HY_F32 ? l : hy_cast(l, HY_F32);
  hy_device_copy(HY_CUDA, (float *)R->losses->data + micro, v->device, v->data, sizeof(float));
  hy_backward(l);
  hy_parallel_end_slice();
  hy_step_reset();
}

/* Gradients summed over the ranks, clipped, and the update (which leaves out a step whose norm is
 * not finite, on the device). */
static void gpu_update(run *R, double lr) {
  hy_params *ps = &R->model->params;
  hy_parallel_reduce_grads(&R->dist, ps);
  R->gnorm = hy_clip_grad_norm(ps, R->r->train.grad_clip);
  hy_optimizer_step(&R->optim, lr);
}

/* One optimizer step on the GPU, queued: nothing is read back (read_gpu_step does that for the
 * steps that log). With train.cuda_graph and one micro-batch a step, the third step with the
 * same batch shape is captured as a CUDA graph (the two before size the arena and make the
 * weights' bf16 copies and the optimizer's table, none of which a capture may allocate), and
 * later steps replay it while their loss weight and the arena's memory are the captured ones.
 * Packed documents change the step's launches from batch to batch (hy_mixer_forward): no graph. */
static void gpu_step(run *R, int64_t step) {
  const hy_recipe *r = R->r;
  hy_params *ps = &R->model->params;
  double lr = hy_schedule_lr(&R->sched, step);
  bool documents = (r->data.packing == HY_RECIPE_DOCUMENTS);
  bool timed = (r->dist.collectives == HY_RECIPE_COLL_TIMED); /* events cannot be captured */
  if (!r->train.cuda_graph || r->train.grad_accum > 1 || documents || timed) {
    hy_params_zero_grad(ps);
    for (int64_t micro = 0; micro < r->train.grad_accum; micro++)
      gpu_micro_batch(R, micro, next_gpu_batch(R));
    gpu_update(R, lr);
    return;
  }
  double weight = next_gpu_batch(R);
  if (R->graph && (weight != R->graph_weight || R->graph_arena != hy_arena_device_generation())) {
    hy_cuda_graph_free(R->graph);
    R->graph = NULL;
  }
  bool capture = !R->graph && R->plain_gpu_steps >= 2;
  if (R->graph || capture) hy_optimizer_prepare(&R->optim, lr);
  if (R->graph) {
    hy_cuda_graph_launch(R->graph);
    hy_parallel_end_slice();
    return;
  }
  if (capture) hy_cuda_graph_begin();
  hy_params_zero_grad(ps);
  gpu_micro_batch(R, 0, weight);
  gpu_update(R, lr);
  if (capture) {
    R->graph = hy_cuda_graph_end();
    R->graph_weight = weight;
    R->graph_arena = hy_arena_device_generation();
    hy_cuda_graph_launch(R->graph);
  } else {
    R->plain_gpu_steps++;
  }
}
#else
static void gpu_step(run *R, int64_t step) {
  (void)R, (void)step;
  hy_die("train", "internal: a GPU step in a build without CUDA");
}
#endif

/* The last GPU step's mean loss and gradient norm, read back, as the CPU's train_step gives them;
 * *left_out: the steps since the last read that the optimizer left out for a non-finite norm. */
static double read_gpu_step(run *R, double *gnorm, int64_t *left_out) {
  int64_t n = R->r->train.grad_accum;
  float *v = malloc(sizeof *v * (size_t)n);
  if (!v) hy_die("train", "out of memory");
  hy_device_copy(HY_CPU, v, HY_CUDA, R->losses->data, sizeof *v * (size_t)n);
  double loss = 0;
  for (int64_t i = 0; i < n; i++) loss += hy_parallel_sum(&R->dist, v[i]);
  free(v);
  *gnorm = hy_item(R->gnorm);
  int64_t seen = hy_clip_nonfinite(&R->model->params);
  *left_out = seen - R->nonfinite;
  R->nonfinite = seen;
  return loss;
}

static int train_loop(run *R, int64_t start, hy_train_result *res, hy_error *err) {
  const hy_recipe *r = R->r;
  int64_t end = r->train.steps;
  if (r->train.stop_after > 0 && r->train.stop_after < end) end = r->train.stop_after;
  int64_t loader[HY_CKPT_STATE_MAX], before[HY_CKPT_STATE_MAX];
  int n_loader = 0, n_before = 0;
  int64_t step = start, skipped = 0, saved = -1;
  R->t_start = R->t_last_log = hy_clock_s();
  R->step_at_last_log = start;
  bool stop = false, last_read = true; /* last_read: the last step's loss is on the host */
  while (step < end) {
    /* every rank stops at the same step, or a rank would wait for the others in a collective */
    if ((stop = hy_parallel_stop_asked(&R->dist))) break;
    n_before = hy_batches_save(R->train, before);
    double gnorm = NAN, loss = NAN;
    bool abandoned = false;
    if (R->gpu)
      gpu_step(R, step + 1);
    else
      loss = train_step(R, step + 1, &gnorm, &abandoned);
    if (abandoned) { /* the parameters are those after `step`: the loader goes back there too */
      if (hy_batches_restore(R->train, before, n_before, err)) return -1;
      stop = true;
      break;
    }
    bool known = !R->gpu || logs_at(R, step + 1, end); /* the loss and the norm are on the host */
    int64_t left_out = 0;
    if (R->gpu && known) loss = read_gpu_step(R, &gnorm, &left_out);
    if (R->gpu && (left_out > 0 || (known && !(isfinite(loss) && isfinite(gnorm))))) {
      /* The optimizer made no update from a non-finite norm; the parameters are good as they are.
       */
      bool skip = (r->train.on_nan == HY_RECIPE_SKIP);
      say(R,
          "step %lld: loss %g, grad norm %g (%lld steps since step %lld left out for a "
          "non-finite gradient norm): %s (on_nan = \"%s\")",
          (long long)(step + 1), loss, gnorm, (long long)left_out, (long long)R->step_at_last_log,
          skip ? "going on" : "stopping", skip ? "skip" : "stop");
      step++;
      if (skip) {
        skipped += left_out;
        continue;
      }
      n_loader = hy_batches_save(R->train, loader);
      if (save(R, step, loader, n_loader, err)) return -1;
      return hy_fail(err, "training diverged by step %lld (loss %g); the last good state is in %s",
                     (long long)step, loss, r->run.out);
    }
    if (!R->gpu && !isfinite(loss)) {
      if (r->train.on_nan == HY_RECIPE_SKIP) {
        skipped++;
        say(R, "step %lld: loss %g, grad norm %g: step skipped (on_nan = \"skip\")",
            (long long)(step + 1), loss, gnorm);
        step++;
        continue;
      }
      /* The parameters are still those after `step`; save them with the loader as it was. */
      say(R, "step %lld: loss %g, grad norm %g: stopping (on_nan = \"stop\")",
          (long long)(step + 1), loss, gnorm);
      if (save(R, step, before, n_before, err)) return -1;
      return hy_fail(err, "training diverged at step %lld (loss %g); the last good state is in %s",
                     (long long)(step + 1), loss, r->run.out);
    }
    step++;
    last_read = known;
    if (known) res->last_loss = loss;
    report(R, step, end, loss, hy_schedule_lr(&R->sched, step), gnorm);
    if (r->train.eval_every > 0 && step % r->train.eval_every == 0 && step < end)
      evaluate(R, step, res);
    if (r->train.checkpoint_every > 0 && step % r->train.checkpoint_every == 0 && step < end) {
      n_loader = hy_batches_save(R->train, loader);
      if (save(R, step, loader, n_loader, err)) return -1;
      saved = step;
    }
  }
  double trained_s = hy_clock_s() - R->t_start;
  double tokens =
      (double)((step - start) * r->train.batch * r->train.seq_len * r->train.grad_accum);
  res->tokens_per_s = trained_s > 0 ? tokens / trained_s : NAN;
  res->steps_done = step;
  if (stop && step == start) { /* nothing trained: the state is the checkpoint resumed, or none */
    say(R, "signal: stopping before the first step; no checkpoint written");
    res->stopped = true;
    return 0;
  }
  if (stop) say(R, "signal: stopping after step %lld", (long long)step);
  if (R->gpu && !last_read) { /* a stop after a step that did not log: its loss, for the end */
    double gnorm;
    int64_t left_out;
    res->last_loss = read_gpu_step(R, &gnorm, &left_out);
  }
  if (!stop) stop = !evaluate(R, step, res); /* a stop during it: the checkpoint still follows */
  res->stopped = stop;
  n_loader = hy_batches_save(R->train, loader);
  if (saved != step && save(R, step, loader, n_loader, err)) return -1; /* once a step */
  res->wall_s = hy_clock_s() - R->t_start;
  char took[32];
  format_duration(res->wall_s, took, sizeof took);
  char val[48] = "not evaluated (stopped by a signal)";
  if (!stop) snprintf(val, sizeof val, "%.4f", res->val_loss);
  say(R, "done: step %lld, loss %.4f, val loss %s, %lld skipped steps, %s", (long long)step,
      res->last_loss, val, (long long)skipped, took);
  if (R->dist.world > 1)
    for (int k = 0; k < HY_COLL_KINDS; k++)
      say(R, "rank 0 sent %.3f MiB by %s", (double)hy_dist_bytes((hy_coll_kind)k) / (1 << 20),
          hy_coll_name((hy_coll_kind)k));
  return 0;
}

int hy_train(const hy_recipe *r, const hy_train_options *opt, hy_train_result *res, hy_error *err) {
  static const hy_train_options defaults = {0};
  run R = {.r = r, .opt = opt ? opt : &defaults, .lock = -1, .tty = isatty(STDOUT_FILENO)};
  *res = (hy_train_result){0, NAN, NAN, NAN, NAN, NAN, false};
  hy_stop_catch(); /* a signal during the set-up stops the run before its first step */
  if (R.opt->alone && r->dist.dp * r->dist.sp != 1)
    return hy_fail(err, "[dist] dp = %lld x sp = %lld: a run trained alone takes one process",
                   (long long)r->dist.dp, (long long)r->dist.sp);
  if (R.opt->alone)
    hy_dist_alone(&R.dist);
  else if (hy_dist_grid(&R.dist, r->dist.dp, r->dist.sp, err))
    return -1;
  R.lead = R.dist.rank == 0;
  int rc = -1;
  if (r->train.seq_len % r->dist.sp != 0) { /* validation says so with the line; a recipe made in
                                               * code reaches here */
    hy_fail(err, "[train] seq_len = %lld does not split evenly over [dist] sp = %lld ranks",
            (long long)r->train.seq_len, (long long)r->dist.sp);
    goto done;
  }
  /* before anything is allocated */
  if (hy_recipe_check_memory(r, err) || hy_threads_choose((int)r->train.threads, err)) goto done;
  /* every rank stops here when rank 0 cannot claim the run directory */
  bool refused = R.lead && claim_dir(&R, err);
  if (hy_parallel_sum(&R.dist, refused ? 1.0 : 0.0) > 0) {
    if (!refused) hy_fail(err, "rank 0 cannot use the run directory %s", r->run.out);
    goto done;
  }
  R.recipe_text = hy_recipe_to_toml(r);
  R.train = hy_batches_open(r, HY_SPLIT_TRAIN, R.dist.dp_rank, R.dist.dp, err);
  if (!R.train) goto done;
  R.val = hy_batches_open(r, HY_SPLIT_VAL, R.dist.dp_rank, R.dist.dp, err);
  if (!R.val) goto done;
  if (hy_batches_check_vocab(R.train, r->data.dataset, r->model.vocab, err)) goto done;
  hy_model_config cfg = hy_recipe_model_config(r);
  R.model = hy_model_new(&cfg, (uint64_t)r->run.seed);
  if (r->train.device == HY_RECIPE_CUDA) { /* built on the CPU, then moved */
    if (!hy_cuda_available()) {
      hy_fail(err, "[train] device = \"cuda\": %s",
              hy_cuda_built() ? "no CUDA GPU is visible to this process"
                              : "this hyla was built without CUDA (configure with -DHYLA_CUDA=ON)");
      goto done;
    }
    if (R.dist.world > 1 && hy_dist_local_size() > hy_gpu_count()) {
      hy_fail(
          err,
          "[train] device = \"cuda\": %d ranks on this machine share %d GPUs (one GPU per rank)",
          hy_dist_local_size(), hy_gpu_count());
      goto done;
    }
    hy_select_gpu(hy_dist_local_rank()); /* one GPU per rank */
    hy_set_device(HY_CUDA);
    hy_params_to(&R.model->params, HY_CUDA);
    if (r->train.precision == HY_RECIPE_BF16) hy_set_precision(HY_PRECISION_BF16);
    /* each rank trains seq_len / sp of every sequence, and the model FLOPs are the whole's */
    R.flops_per_token = hy_model_flops_per_token(R.model, r->train.seq_len) / (double)R.dist.sp;
    R.peak_flops = hy_gpu_bf16_peak();
    R.gpu = true;
    R.losses = hy_zeros_persistent_on(HY_CUDA, HY_F32, HY_SHAPE(r->train.grad_accum));
  }
  apply_no_decay(&R.model->params, r);
  hy_optimizer_init(&R.optim, &R.model->params, optimizer_config(r));
  R.sched = (hy_schedule){r->optim.schedule, r->optim.lr,    r->optim.lr * r->optim.min_lr_ratio,
                          r->optim.warmup,   r->train.steps, r->optim.decay_fraction};
  int64_t start = 0;
  if (R.opt->resume && (start = resume(&R, err)) < 0) goto done;
  if (R.lead && open_outputs(&R, start, err)) goto done;
  say(&R, "run %s: %lld parameters, %d layers, %lld steps of %lld x %lld tokens, %d threads",
      r->run.name, (long long)hy_params_count(&R.model->params), cfg.n_layers,
      (long long)r->train.steps, (long long)r->train.batch, (long long)r->train.seq_len,
      hy_threads_get());
  if (R.dist.world > 1)
    say(&R, "%d ranks: data parallel %d x sequence parallel %d (global batch %lld)", R.dist.world,
        R.dist.dp, R.dist.sp, (long long)(r->train.batch * R.dist.dp));
  if (R.dist.world > 1 && r->dist.collectives != HY_RECIPE_COLL_ON)
    say(&R, "collectives %s (dist.collectives)%s",
        r->dist.collectives == HY_RECIPE_COLL_TIMED ? "timed" : "skipped: the results are wrong",
        r->dist.collectives == HY_RECIPE_COLL_TIMED && R.gpu ? "; no CUDA graph" : "");
  _Static_assert((int)HY_RECIPE_COLL_TIMED == (int)HY_COLLECTIVES_TIMED &&
                     (int)HY_RECIPE_COLL_SKIPPED == (int)HY_COLLECTIVES_SKIPPED,
                 "dist.collectives follows hy_collectives");
  hy_dist_set_collectives((hy_collectives)r->dist.collectives);
  hy_sequence_set_overlap(r->dist.overlap);
  hy_dist_take_seconds(NULL); /* from the first step on */
  rc = train_loop(&R, start, res, err);
  hy_dist_set_collectives(HY_COLLECTIVES_ON);
  hy_sequence_set_overlap(true);
done:
  if (R.metrics) fclose(R.metrics);
  if (R.log) fclose(R.log);
  hy_free(R.losses);
  hy_free(R.tokens);
  hy_free(R.targets);
  hy_free(R.positions);
#ifdef HYLA_CUDA
  hy_cuda_graph_free(R.graph);
#endif
  if (R.model) {
    hy_optimizer_free(&R.optim);
    hy_model_free(R.model);
  }
  hy_batches_close(R.train);
  hy_batches_close(R.val);
  hy_dist_free(&R.dist);
  free(R.recipe_text);
  hy_unlock_dir(R.lock);
  hy_step_reset();
  hy_set_device(HY_CPU); /* a sweep trains its next run where its recipe says */
  hy_set_precision(HY_PRECISION_F32);
  return rc;
}
