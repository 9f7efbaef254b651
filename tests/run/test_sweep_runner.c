/* Running sweeps: every run trains and leaves its result, a second run of the sweep skips finished
 * runs and resumes half-finished ones (to the same losses), a failed run is reported and the
 * others still train, and summary.csv holds one parseable row per run. */
#include "data/dataset.h"
#include "recipes/sweep.h"
#include "run/sweep_results.h"
#include "run/sweep_runner.h"
#include "tests/support.h"
#include "util/fs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char data[300], recipe_path[300];

static void init(void) {
  t_temp_init();
  snprintf(data, sizeof data, "%s/data.h5", t_temp_path());
  snprintf(recipe_path, sizeof recipe_path, "%s/tiny.toml", t_temp_path());
  enum { N = 8000 };
  static hy_token tokens[N];
  const char *text = "the quick brown fox jumps over the lazy dog. ";
  for (int i = 0; i < N; i++) tokens[i] = (hy_token)text[i % 45];
  hy_error err;
  cr_assert_eq(
      hy_dataset_write(data, tokens, N - 1000, tokens + N - 1000, 1000, 128, "bytes", &err), 0,
      "%s", err.msg);
}

TestSuite(sweep_runner, .init = init, .fini = t_temp_fini);

/* A tiny model of 6 steps with a checkpoint at step 3, and the given [sweep] lines. */
static void expand(const char *data_lines, const char *sweep, hy_sweep *s) {
  char dataset[400];
  snprintf(dataset, sizeof dataset, "[data]\ndataset = \"%s\"\n", data);
  FILE *f = fopen(recipe_path, "w");
  cr_assert(f);
  fprintf(f,
          "[run]\nout = \"%s/sweep\"\n"
          "[model]\nvocab = 128\nd_model = 16\nn_heads = 2\nlayers = [\"gla\", \"attn\"]\n"
          "[train]\nbatch = 2\nseq_len = 16\nsteps = 6\nlog_every = 1\neval_every = 0\n"
          "eval_batches = 2\ncheckpoint_every = 3\nkeep_checkpoints = 3\nthreads = 1\n"
          "[optim]\nlr = 1e-2\nwarmup = 1\n"
          "%s[sweep]\n%s",
          t_temp_path(), *data_lines ? data_lines : dataset, sweep);
  fclose(f);
  hy_error err;
  cr_assert_eq(hy_sweep_expand(recipe_path, 0, NULL, s, &err), 0, "%s", err.msg);
}

static int run_all(const hy_sweep *s, hy_sweep_outcome *out, hy_error *err) {
  FILE *quiet = fopen("/dev/null", "w");
  hy_sweep_options opt = {.out = quiet};
  int rc = hy_sweep_run_all(s, &opt, out, err);
  fclose(quiet);
  return rc;
}

static void remove_file(const hy_sweep *s, int run, const char *file) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", s->runs[run].recipe.run.out, file);
  cr_assert_eq(unlink(path), 0, "cannot remove %s", path);
}

static bool has_file(const hy_sweep *s, int run, const char *file) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", s->runs[run].recipe.run.out, file);
  return access(path, F_OK) == 0;
}

/* summary.csv's lines, split into fields; a quoted field (run names hold commas) loses its quotes
 * (no field of these sweeps holds a quote). */
enum { MAX_LINES = 8, MAX_FIELDS = 16 };
static int read_summary(const hy_sweep *s, char lines[MAX_LINES][512],
                        char *fields[MAX_LINES][MAX_FIELDS], int *n_fields) {
  char path[400];
  snprintf(path, sizeof path, "%s/summary.csv", s->dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s missing", path);
  int n = 0;
  while (n < MAX_LINES && fgets(lines[n], 512, f)) {
    lines[n][strcspn(lines[n], "\n")] = 0;
    int k = 0;
    char *at = lines[n];
    bool quoted = false;
    for (char *c = at;; c++) {
      if (*c == '"') quoted = !quoted;
      if ((*c == ',' && !quoted) || !*c) {
        bool end = !*c;
        *c = 0;
        if (*at == '"') at++, c[-1] = 0;
        if (k < MAX_FIELDS) fields[n][k++] = at;
        at = c + 1;
        if (end) break;
      }
    }
    n_fields[n++] = k;
  }
  fclose(f);
  return n;
}

static double number(const char *field) {
  char *end;
  double x = strtod(field, &end);
  cr_assert(*field && !*end, "not a number: '%s'", field);
  return x;
}

Test(sweep_runner, a_second_run_trains_only_what_is_missing_and_resumes_the_half_done) {
  hy_sweep s;
  expand("", "\"optim.lr\" = [5e-3, 1e-2, 2e-2]\n", &s);
  cr_assert_eq(s.n_runs, 3);
  hy_sweep_outcome out;
  hy_error err;
  cr_assert_eq(run_all(&s, &out, &err), 0, "%s", err.msg);
  cr_expect_eq(out.trained, 3);
  hy_run_result first[3];
  for (int i = 0; i < 3; i++)
    cr_assert_eq(hy_run_result_read(s.runs[i].recipe.run.out, &first[i], &err), 0, "%s", err.msg);

  /* run 2 half done: its result and last checkpoint gone, the one at step 3 kept */
  remove_file(&s, 1, "result.json");
  remove_file(&s, 1, "ckpt-00000006.h5");
  /* run 3 never ran: all its files gone */
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", s.runs[2].recipe.run.out);
  cr_assert_eq(system(cmd), 0);
  remove_file(&s, 0, "train.log"); /* run 1 must not train again: it would write its log */

  cr_assert_eq(run_all(&s, &out, &err), 0, "%s", err.msg);
  cr_expect_eq(out.skipped, 1);
  cr_expect_eq(out.resumed, 1);
  cr_expect_eq(out.trained, 1);
  cr_expect(!has_file(&s, 0, "train.log"), "the finished run trained again");
  for (int i = 0; i < 3; i++) {
    hy_run_result again;
    cr_assert_eq(hy_run_result_read(s.runs[i].recipe.run.out, &again, &err), 0, "run %d: %s", i,
                 err.msg);
    cr_expect_eq(again.steps, 6);
    /* resumed or retrained, a run gives bitwise the same losses */
    cr_expect(again.train_loss == first[i].train_loss, "run %d: %.17g != %.17g", i,
              again.train_loss, first[i].train_loss);
    cr_expect(again.val_loss == first[i].val_loss, "run %d", i);
  }
  hy_sweep_free(&s);
}

Test(sweep_runner, summary_csv_has_a_row_per_run_with_numbers) {
  hy_sweep s;
  expand("", "seeds = [1, 2]\n\"optim.lr\" = [1e-2]\n", &s);
  hy_sweep_outcome out;
  hy_error err;
  cr_assert_eq(run_all(&s, &out, &err), 0, "%s", err.msg);
  char lines[MAX_LINES][512], *fields[MAX_LINES][MAX_FIELDS];
  int n_fields[MAX_LINES];
  int n = read_summary(&s, lines, fields, n_fields);
  cr_assert_eq(n, 3, "a header and a row per run");
  const char *header[] = {"run",        "optim.lr", "seed",    "status",       "steps",
                          "train_loss", "val_loss", "val_acc", "tokens_per_s", "wall_s"};
  cr_assert_eq(n_fields[0], 10);
  for (int k = 0; k < 10; k++) cr_expect_str_eq(fields[0][k], header[k]);
  for (int i = 1; i < n; i++) {
    cr_assert_eq(n_fields[i], 10, "row %d", i);
    cr_expect_str_eq(fields[i][0], s.runs[i - 1].name);
    cr_expect_str_eq(fields[i][1], "1e-2");
    cr_expect_eq(number(fields[i][2]), i);
    cr_expect_str_eq(fields[i][3], "done");
    cr_expect_eq(number(fields[i][4]), 6);
    double train = number(fields[i][5]), val = number(fields[i][6]);
    cr_expect(train > 0 && train < 6 && val > 0 && val < 6, "losses %g %g", train, val);
    cr_expect_str_eq(fields[i][7], "", "no accuracy without MQAR");
    cr_expect_gt(number(fields[i][8]), 0);
    cr_expect_gt(number(fields[i][9]), 0);
  }
  cr_expect_neq(number(fields[1][6]), number(fields[2][6]), "the seeds differ");
  char md[400];
  snprintf(md, sizeof md, "%s/summary.md", s.dir);
  cr_expect_eq(access(md, F_OK), 0);
  hy_sweep_free(&s);
}

Test(sweep_runner, mqar_runs_report_their_accuracy) {
  hy_sweep s;
  expand("[data]\ndataset = \"mqar\"\n[data.mqar]\npairs = 2\ntrain_examples = 64\n"
         "val_examples = 8\n",
         "\"optim.lr\" = [1e-2]\n", &s);
  hy_sweep_outcome out;
  hy_error err;
  cr_assert_eq(run_all(&s, &out, &err), 0, "%s", err.msg);
  char lines[MAX_LINES][512], *fields[MAX_LINES][MAX_FIELDS];
  int n_fields[MAX_LINES];
  cr_assert_eq(read_summary(&s, lines, fields, n_fields), 2);
  double acc = number(fields[1][7]);
  cr_expect(acc >= 0 && acc <= 1, "accuracy %g", acc);
  hy_sweep_free(&s);
}

Test(sweep_runner, a_failed_run_is_reported_and_the_others_still_train) {
  hy_sweep s;
  char sweep[700];
  snprintf(sweep, sizeof sweep, "\"data.dataset\" = [\"%s/missing.h5\", \"%s\"]\n", t_temp_path(),
           data);
  expand("", sweep, &s);
  hy_sweep_outcome out;
  hy_error err;
  cr_assert_neq(run_all(&s, &out, &err), 0);
  cr_expect(strstr(err.msg, "1 run failed"), "%s", err.msg);
  cr_expect_eq(out.failed, 1);
  cr_expect_eq(out.trained, 1);
  cr_expect(has_file(&s, 0, "error.txt"));
  char lines[MAX_LINES][512], *fields[MAX_LINES][MAX_FIELDS];
  int n_fields[MAX_LINES];
  cr_assert_eq(read_summary(&s, lines, fields, n_fields), 3);
  cr_expect_str_eq(fields[1][3], "failed");
  cr_expect_str_eq(fields[2][3], "done");
  hy_sweep_free(&s);
}

/* result.json holding `text` in run 0's directory. */
static void write_result(const hy_sweep *s, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/result.json", s->runs[0].recipe.run.out);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
}

/* A result whose steps are no whole number (past 64 bits, negative, a fraction, missing) is
 * damaged: an error names the file and the field, where a cast of 1e300 to int64_t was undefined
 * and a missing one read as unfinished. */
Test(sweep_runner, a_damaged_result_is_an_error_naming_the_file_and_field) {
  hy_sweep s;
  expand("", "\"optim.lr\" = [1e-2]\n", &s);
  const char *bad[] = {"{\"steps\":1e300,\"val_loss\":2}\n",
                       "{\"steps\":nan}\n",
                       "{\"steps\":-3}\n",
                       "{\"steps\":2.5}\n",
                       "{\"val_loss\":2}\n",
                       "{\"steps\":9223372036854775808}\n"};
  char want[600];
  snprintf(want, sizeof want, "%s/result.json: field \"steps\" is ", s.runs[0].recipe.run.out);
  cr_assert_eq(hy_mkdirs(s.runs[0].recipe.run.out, NULL), 0);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_result(&s, bad[i]);
    hy_run_result res;
    hy_error err = {{0}};
    cr_expect_eq(hy_run_result_read(s.runs[0].recipe.run.out, &res, &err), -1, "%s", bad[i]);
    cr_expect(strstr(err.msg, want), "%s: '%s' lacks '%s'", bad[i], err.msg, want);
  }
  write_result(&s, "{\"steps\":9007199254740992,\"val_loss\":null}\n");
  hy_run_result res;
  hy_error err;
  cr_expect_eq(hy_run_result_read(s.runs[0].recipe.run.out, &res, &err), 0, "%s", err.msg);
  cr_expect_eq(res.steps, 9007199254740992LL);
  cr_expect(isnan(res.val_loss));
  remove_file(&s, 0, "result.json");
  cr_expect_eq(hy_run_result_read(s.runs[0].recipe.run.out, &res, &err), 1, "not there");

  /* the sweep reports the run failed and neither trusts nor trains over it */
  write_result(&s, bad[0]);
  hy_sweep_outcome out;
  cr_assert_neq(run_all(&s, &out, &err), 0);
  cr_expect_eq(out.failed, 1);
  cr_expect_eq(out.trained + out.resumed + out.skipped, 0);
  cr_expect(has_file(&s, 0, "error.txt"));
  char lines[MAX_LINES][512], *fields[MAX_LINES][MAX_FIELDS];
  int n_fields[MAX_LINES];
  cr_assert_eq(read_summary(&s, lines, fields, n_fields), 2);
  cr_expect_str_eq(fields[1][3], "failed");
  hy_sweep_free(&s);
}
