/* A run's claim on its directory: a lock for the run's life (a second run is refused, a killed
 * run leaves none); a fresh run does not train next to checkpoints unless it starts over
 * (--restart), which moves them aside; pruning spares the run's own newest checkpoints. */
#include "data/dataset.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "run/train.h"
#include "tests/support.h"
#include "util/fs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char data[300];

static void init(void) {
  t_temp_init();
  snprintf(data, sizeof data, "%s/data.h5", t_temp_path());
  enum { N = 4000 };
  static hy_token tokens[N];
  for (int i = 0; i < N; i++) tokens[i] = (hy_token)("hyla trains small models. "[i % 26]);
  hy_error err;
  cr_assert_eq(hy_dataset_write(data, tokens, N - 500, tokens + N - 500, 500, 128, "bytes", &err),
               0, "%s", err.msg);
}

TestSuite(run_dir, .init = init, .fini = t_temp_fini);

/* A tiny run into dir/run: 12 steps, a checkpoint every 2, the newest 2 kept; `stop` > 0 stops
 * it there. */
static int train(int64_t stop, const char *resume, bool restart, hy_error *err) {
  char text[1024], stop_after[64];
  snprintf(text, sizeof text,
           "[run]\nout = \"%s/run\"\n"
           "[model]\nvocab = 128\nd_model = 16\nn_heads = 2\nlayers = [\"attn\"]\n"
           "[train]\nbatch = 2\nseq_len = 8\nsteps = 12\nlog_every = 1\neval_every = 0\n"
           "eval_batches = 1\ncheckpoint_every = 2\nkeep_checkpoints = 2\nthreads = 1\n"
           "[data]\ndataset = \"%s\"\n",
           t_temp_path(), data);
  snprintf(stop_after, sizeof stop_after, "train.stop_after=%lld", (long long)stop);
  const char *sets[] = {stop_after};
  hy_recipe r;
  cr_assert_eq(hy_recipe_parse(text, "run.toml", 1, sets, &r, err), 0, "%s", err->msg);
  hy_train_options opt = {.resume = resume, .restart = restart, .quiet = true};
  hy_train_result res;
  return hy_train(&r, &opt, &res, err);
}

static bool exists(const char *name) { return access(t_in_temp(name), F_OK) == 0; }

Test(run_dir, a_second_run_in_a_locked_directory_is_refused) {
  hy_error err;
  hy_error lock_err;
  cr_assert_eq(hy_mkdirs(t_in_temp("run"), &err), 0, "%s", err.msg);
  int fd = hy_lock_dir(t_in_temp("run"), &lock_err);
  cr_assert_geq(fd, 0, "%s", lock_err.msg);
  cr_assert_neq(train(0, NULL, false, &err), 0, "trained in a locked directory");
  char want[512];
  snprintf(want, sizeof want,
           "%s: the run directory is in use by another hyla process (pid %ld); wait for it to "
           "end, or give this run another run.out",
           t_in_temp("run"), (long)getpid());
  cr_assert(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
  cr_assert(!exists("run/metrics.jsonl") && !exists("run/ckpt-00000002.h5"));
  hy_unlock_dir(fd);
  cr_assert_eq(train(0, NULL, false, &err), 0, "%s", err.msg);
  /* and the run released it when it ended */
  fd = hy_lock_dir(t_in_temp("run"), &err);
  cr_assert_geq(fd, 0, "%s", err.msg);
  hy_unlock_dir(fd);
}

Test(run_dir, a_killed_process_leaves_no_lock) {
  int ready[2];
  cr_assert_eq(pipe(ready), 0);
  hy_error err;
  cr_assert_eq(hy_mkdirs(t_in_temp("run"), &err), 0, "%s", err.msg);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char ok = hy_lock_dir(t_in_temp("run"), &err) >= 0;
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    pause(); /* until killed */
    _exit(0);
  }
  char ok = 0;
  cr_assert_eq(read(ready[0], &ok, 1), 1);
  cr_assert(ok, "the child could not lock");
  cr_assert_eq(hy_lock_dir(t_in_temp("run"), &err), -1);
  char pid_text[64];
  snprintf(pid_text, sizeof pid_text, "(pid %ld)", (long)pid);
  cr_assert(strstr(err.msg, pid_text), "'%s' lacks '%s'", err.msg, pid_text);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  int fd = hy_lock_dir(t_in_temp("run"), &err);
  cr_assert_geq(fd, 0, "a killed process left its lock: %s", err.msg);
  hy_unlock_dir(fd);
}

Test(run_dir, a_fresh_run_next_to_another_runs_checkpoints_is_refused_unless_it_restarts) {
  hy_error err;
  cr_assert_eq(train(4, NULL, false, &err), 0, "%s", err.msg);
  cr_assert(exists("run/ckpt-00000002.h5") && exists("run/ckpt-00000004.h5"));
  cr_assert_neq(train(0, NULL, false, &err), 0, "trained over another run's checkpoints");
  char want[512];
  snprintf(want, sizeof want,
           "%s already holds checkpoints (the newest of step 4): pass --resume to continue that "
           "run, --restart to move them into %s/previous-<n> and start over",
           t_in_temp("run"), t_in_temp("run"));
  cr_assert(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
  cr_assert(exists("run/ckpt-00000002.h5") && exists("run/ckpt-00000004.h5"), "they were lost");
  /* starting over: the old run's files move aside, the new run keeps its own newest two */
  cr_assert_eq(train(0, NULL, true, &err), 0, "%s", err.msg);
  const char *moved[] = {"ckpt-00000002.h5", "ckpt-00000004.h5", "metrics.jsonl", "train.log",
                         "recipe.toml"};
  char name[64];
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "run/previous-1/%s", moved[i]);
    cr_assert(exists(name), "%s was not moved aside", name);
  }
  cr_assert(exists("run/ckpt-00000010.h5") && exists("run/ckpt-00000012.h5"));
  cr_assert(!exists("run/ckpt-00000004.h5") && !exists("run/ckpt-00000008.h5"));
}

/* Resuming from an earlier checkpoint re-runs the steps after it; pruning keeps the resumed run's
 * newest checkpoints and leaves those past its step (another run's) alone. */
Test(run_dir, pruning_spares_the_resumed_runs_checkpoints_and_later_ones) {
  hy_error err;
  cr_assert_eq(train(0, NULL, false, &err), 0, "%s", err.msg); /* keeps 10 and 12 */
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cp %s %s", t_in_temp("run/ckpt-00000012.h5"),
           t_in_temp("run/ckpt-00000100.h5"));
  cr_assert_eq(system(cmd), 0);
  cr_assert_eq(train(0, t_in_temp("run/ckpt-00000010.h5"), false, &err), 0, "%s", err.msg);
  const char *kept[] = {"run/ckpt-00000010.h5", "run/ckpt-00000012.h5", "run/ckpt-00000100.h5"};
  for (int i = 0; i < 3; i++) cr_assert(exists(kept[i]), "%s was pruned", kept[i]);
}

/* A symlink planted where the run writes its logs fails the run; the file it points to stays. */
Test(run_dir, symlinks_planted_as_logs_are_not_followed) {
  hy_error err;
  cr_assert_eq(hy_mkdirs(t_in_temp("run"), &err), 0, "%s", err.msg);
  cr_assert_eq(hy_write_file_atomic(t_in_temp("victim.txt"), "precious", &err), 0, "%s", err.msg);
  cr_assert_eq(symlink(t_in_temp("victim.txt"), t_in_temp("run/train.log")), 0);
  cr_assert_neq(train(0, NULL, false, &err), 0, "the run wrote through a symlink");
  cr_assert(strstr(err.msg, "cannot write the run's logs"), "%s", err.msg);
  char *text = hy_read_file(t_in_temp("victim.txt"), NULL, &err);
  cr_assert_str_eq(text, "precious");
  free(text);
}
