#include "run/sweep_runner.h"
#include "dist/dist.h"
#include "run/checkpoint.h"
#include "run/parallel.h"
#include "run/sweep_results.h"
#include "run/train.h"
#include "util/fs.h"
#include "util/stop.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  const hy_sweep *s;
  const hy_sweep_options *opt;
  int world, rank;
  bool alone; /* each rank trains its own runs; else every rank trains every run together */
  bool lead;  /* prints and writes the run's files: each rank alone, rank 0 together */
} runner;

static void say(const runner *R, int i, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(const runner *R, int i, const char *what, const char *fmt, ...) {
  if (!R->lead) return;
  FILE *f = R->opt->out ? R->opt->out : stdout;
  char settings[1024];
  hy_sweep_settings(R->s, i, settings, sizeof settings);
  if (R->alone) fprintf(f, "rank %d: ", R->rank);
  fprintf(f, "sweep [%d/%d] %-7s %s", i + 1, R->s->n_runs, what, settings);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fflush(f);
}

/* Under mpirun: N runs at a time when every run takes one process, or every run on all ranks when
 * each takes them all. */
static int choose_mode(runner *R, hy_error *err) {
  R->world = hy_dist_world_size();
  R->rank = hy_dist_world_rank();
  R->alone = false;
  if (R->world == 1) return 0;
  int ones = 0, wholes = 0;
  for (int i = 0; i < R->s->n_runs; i++) {
    int64_t ranks = R->s->runs[i].recipe.dist.dp * R->s->runs[i].recipe.dist.sp;
    ones += ranks == 1;
    wholes += ranks == R->world;
  }
  if (ones == R->s->n_runs) {
    R->alone = true;
    return 0;
  }
  if (wholes == R->s->n_runs) return 0;
  return hy_fail(err,
                 "%s: under mpirun -np %d a sweep trains %d runs at a time when every run has "
                 "[dist] dp = sp = 1, or each run on all %d ranks when every run has dp * sp = %d",
                 R->s->path, R->world, R->world, R->world, R->world);
}

/* Ranks training their own runs share them out as they go: a rank takes the next run that no
 * rank has taken by creating the run's claim file, which only one process can do (O_EXCL), so a
 * rank that finishes early starts another run instead of idling behind a fixed share. Claims live
 * for one launch of the sweep: rank 0 clears those an interrupted launch left before any rank
 * claims, and each rank removes its own once every rank is done. */
static void claim_path(const hy_sweep *s, int i, char *path, size_t cap) {
  snprintf(path, cap, "%s/.sweep-claim", s->runs[i].recipe.run.out);
}

static bool claim(const runner *R, int i) {
  if (!R->alone) return true;
  char path[HY_RECIPE_STR + 32];
  hy_error err;
  if (hy_mkdirs(R->s->runs[i].recipe.run.out, &err)) return i % R->world == R->rank;
  claim_path(R->s, i, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd >= 0) close(fd);
  /* Where no claim can be made at all, the rank a fixed share gives run i tries it and reports. */
  return fd >= 0 || (errno != EEXIST && i % R->world == R->rank);
}

/* A stop asked (SIGINT, SIGTERM) before the next run: each rank alone decides for itself; ranks
 * training every run together decide together, or one would wait for the others in a run. */
static bool stop_asked(const runner *R, const hy_dist *world) {
  return R->alone || R->world == 1 ? hy_stop_asked() != 0 : hy_parallel_stop_asked(world);
}

static void clear_claims(const runner *R, const bool *mine) {
  char path[HY_RECIPE_STR + 32];
  for (int i = 0; i < R->s->n_runs; i++) {
    if (mine && !mine[i]) continue;
    claim_path(R->s, i, path, sizeof path);
    unlink(path);
  }
}

/* The directory of the run in progress, for an abort's last word. */
static const char *aborting_run_dir;

static void note_abort(const char *message) {
  char text[HY_ERROR_MAX];
  snprintf(text, sizeof text, "%s (the process aborted)", message);
  hy_run_error_write(aborting_run_dir, text);
}

/* Train run i (resuming it when it has a checkpoint); returns 0, 1 when a signal stopped it, -1
 * when it failed. */
static int train_one(runner *R, int i, hy_sweep_outcome *outcome) {
  const hy_sweep_run *run = &R->s->runs[i];
  const char *dir = run->recipe.run.out;
  char ckpt[HY_RECIPE_STR + 64];
  hy_error err;
  bool resume = hy_checkpoint_latest(dir, ckpt, sizeof ckpt, &err) == 0;
  if (R->opt->dry_run) {
    say(R, i, resume ? "resume" : "train", " -> %s", dir);
    return 0;
  }
  if (R->lead) hy_run_error_clear(dir);
  if (resume)
    say(R, i, "resume", " from %s", ckpt);
  else
    say(R, i, "start", " -> %s", dir);
  hy_train_options topt = {
      .resume = resume ? "" : NULL, .quiet = !R->opt->verbose, .alone = R->alone};
  hy_train_result res;
  aborting_run_dir = dir;
  if (R->lead) hy_on_die(note_abort);
  int failed = hy_train(&run->recipe, &topt, &res, &err);
  hy_on_die(NULL);
  if (failed) {
    say(R, i, "failed", ": %s", err.msg);
    if (R->lead) hy_run_error_write(dir, err.msg);
    outcome->failed++;
    return -1;
  }
  if (res.stopped) {
    say(R, i, "stopped", " at step %lld by a signal; run the sweep again to resume it",
        (long long)res.steps_done);
    return 1;
  }
  hy_run_result out = {res.steps_done, res.last_loss,    res.val_loss,
                       res.val_acc,    res.tokens_per_s, res.wall_s};
  if (R->lead && hy_run_result_write(dir, &out, &err)) {
    say(R, i, "failed", ": %s", err.msg);
    outcome->failed++;
    return -1;
  }
  char acc[48] = "";
  if (isfinite(res.val_acc)) snprintf(acc, sizeof acc, ", accuracy %.4f", res.val_acc);
  say(R, i, "done", ": train loss %.4f, val loss %.4f%s, %.0f tok/s, %.1f s", res.last_loss,
      res.val_loss, acc, res.tokens_per_s, res.wall_s);
  resume ? outcome->resumed++ : outcome->trained++;
  return 0;
}

int hy_sweep_run_all(const hy_sweep *s, const hy_sweep_options *opt, hy_sweep_outcome *outcome,
                     hy_error *err) {
  static const hy_sweep_options defaults = {0};
  runner R = {.s = s, .opt = opt ? opt : &defaults};
  *outcome = (hy_sweep_outcome){0};
  if (choose_mode(&R, err)) return -1;
  R.lead = R.alone || R.rank == 0;
  hy_stop_catch(); /* a signal ends the run in progress cleanly and starts no other */
  hy_dist world = {0};
  if (R.world > 1 && hy_dist_grid(&world, R.world, 1, err)) return -1;
  bool *mine = calloc((size_t)s->n_runs + 1, sizeof *mine);
  if (!mine) hy_die("sweep", "out of memory");
  if (R.alone && !R.opt->dry_run) {
    if (R.rank == 0) clear_claims(&R, NULL);
    hy_barrier(world.all);
  }
  for (int i = 0; i < s->n_runs; i++) {
    if (!R.opt->dry_run && stop_asked(&R, &world)) {
      outcome->interrupted = true;
      break;
    }
    if (R.alone && R.opt->dry_run && i % R.world != R.rank) continue;
    if (R.alone && !R.opt->dry_run && !(mine[i] = claim(&R, i))) continue;
    hy_run_result done;
    hy_error why;
    int got = hy_run_result_read(s->runs[i].recipe.run.out, &done, &why);
    if (got == 0) {
      say(&R, i, "skip", ": finished before (val loss %.4f)", done.val_loss);
      outcome->skipped++;
      continue;
    }
    if (got < 0) { /* finished, but its result is damaged: neither trusted nor trained over */
      say(&R, i, "failed", ": %s", why.msg);
      if (R.lead) hy_run_error_write(s->runs[i].recipe.run.out, why.msg);
      outcome->failed++;
      continue;
    }
    if (train_one(&R, i, outcome) == 1) {
      outcome->interrupted = true;
      break;
    }
  }
  if (R.world > 1 && !R.opt->dry_run) /* every rank's runs are over before rank 0 reads them */
    hy_barrier(world.all);
  if (R.alone) clear_claims(&R, mine);
  free(mine);
  if (R.world > 1) hy_dist_free(&world);
  if (R.opt->dry_run) return 0;
  if (R.rank == 0 && hy_sweep_write_summary(s, err)) return -1;
  if (outcome->failed)
    return hy_fail(err, "%d run%s failed (their error.txt says why)", outcome->failed,
                   outcome->failed == 1 ? "" : "s");
  return 0;
}
