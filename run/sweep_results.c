#include "run/sweep_results.h"
#include "util/checked.h"
#include "util/fs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- result.json ---- */

/* JSON has no NaN: a missing number is null. */
static void json_number(FILE *f, const char *key, double x, bool last) {
  if (isfinite(x))
    fprintf(f, "\"%s\":%.17g%s", key, x, last ? "" : ",");
  else
    fprintf(f, "\"%s\":null%s", key, last ? "" : ",");
}

int hy_run_result_write(const char *dir, const hy_run_result *res, hy_error *err) {
  char *text = NULL, path[HY_RECIPE_STR + 32];
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) return hy_fail(err, "%s: out of memory", dir);
  fprintf(f, "{\"steps\":%lld,", (long long)res->steps);
  json_number(f, "train_loss", res->train_loss, false);
  json_number(f, "val_loss", res->val_loss, false);
  json_number(f, "val_acc", res->val_acc, false);
  json_number(f, "tokens_per_s", res->tokens_per_s, false);
  json_number(f, "wall_s", res->wall_s, true);
  fputs("}\n", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/result.json", dir);
  int rc = hy_write_file_atomic(path, text, err);
  free(text);
  return rc;
}

/* The number after "key": in a one-line JSON object; NAN for null or when missing. */
static double json_get(const char *text, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = strstr(text, pattern);
  if (!at) return NAN;
  char *end;
  double x = strtod(at + strlen(pattern), &end);
  return end == at + strlen(pattern) ? NAN : x;
}

int hy_run_result_read(const char *dir, hy_run_result *res, hy_error *err) {
  char path[HY_RECIPE_STR + 32];
  snprintf(path, sizeof path, "%s/result.json", dir);
  if (access(path, F_OK) != 0) return 1;
  char *text = hy_read_file(path, NULL, err);
  if (!text) return -1;
  double steps = json_get(text, "steps");
  int64_t whole;
  *res = (hy_run_result){.steps = 0,
                         .train_loss = json_get(text, "train_loss"),
                         .val_loss = json_get(text, "val_loss"),
                         .val_acc = json_get(text, "val_acc"),
                         .tokens_per_s = json_get(text, "tokens_per_s"),
                         .wall_s = json_get(text, "wall_s")};
  free(text);
  if (!hy_checked_trunc(steps, &whole) || whole < 0 || (double)whole != steps)
    return hy_fail(err,
                   "%s: field \"steps\" is %g, not a whole number of steps >= 0 (a damaged "
                   "file? remove it and run the sweep again to redo the run)",
                   path, steps);
  res->steps = whole;
  return 0;
}

void hy_run_error_write(const char *dir, const char *msg) {
  char path[HY_RECIPE_STR + 32], text[HY_ERROR_MAX + 2];
  hy_error err;
  snprintf(path, sizeof path, "%s/error.txt", dir);
  snprintf(text, sizeof text, "%s\n", msg);
  if (hy_mkdirs(dir, &err) == 0) hy_write_file_atomic(path, text, &err);
}

void hy_run_error_clear(const char *dir) {
  char path[HY_RECIPE_STR + 32];
  snprintf(path, sizeof path, "%s/error.txt", dir);
  unlink(path);
}

/* ---- the summary ---- */

typedef struct {
  const char *status; /* "done", "failed", "unfinished" or "not run" */
  hy_run_result res;
} row;

static row read_row(const hy_sweep_run *run) {
  row r = {"not run", {0, NAN, NAN, NAN, NAN, NAN}};
  const char *dir = run->recipe.run.out;
  char path[HY_RECIPE_STR + 32];
  snprintf(path, sizeof path, "%s/error.txt", dir);
  hy_error err;
  int got = hy_run_result_read(dir, &r.res, &err);
  if (got == 0)
    r.status = "done";
  else if (got < 0 || access(path, F_OK) == 0)
    r.status = "failed";
  else if (access(dir, F_OK) == 0)
    r.status = "unfinished";
  return r;
}

static bool is_seeds(const hy_sweep_axis *a) { return !strcmp(a->key, "seeds"); }

static void csv_field(FILE *f, const char *s, bool last) {
  if (strpbrk(s, ",\"\n")) {
    fputc('"', f);
    for (; *s; s++) {
      if (*s == '"') fputc('"', f);
      fputc(*s, f);
    }
    fputc('"', f);
  } else {
    fputs(s, f);
  }
  fputc(last ? '\n' : ',', f);
}

static void csv_number(FILE *f, const char *format, double x, bool last) {
  if (isfinite(x)) fprintf(f, format, x);
  fputc(last ? '\n' : ',', f);
}

static void write_csv(FILE *f, const hy_sweep *s, const row *rows) {
  fputs("run,", f);
  for (int a = 0; a < s->spec.n_axes; a++)
    if (!is_seeds(&s->spec.axes[a])) csv_field(f, s->spec.axes[a].key, false);
  fputs("seed,status,steps,train_loss,val_loss,val_acc,tokens_per_s,wall_s\n", f);
  for (int i = 0; i < s->n_runs; i++) {
    const hy_sweep_run *run = &s->runs[i];
    const hy_run_result *res = &rows[i].res;
    csv_field(f, run->name, false);
    for (int a = 0; a < s->spec.n_axes; a++)
      if (!is_seeds(&s->spec.axes[a])) csv_field(f, s->shown[a][run->value[a]], false);
    fprintf(f, "%lld,%s,", (long long)run->recipe.run.seed, rows[i].status);
    if (res->steps) fprintf(f, "%lld", (long long)res->steps);
    fputc(',', f);
    csv_number(f, "%.6f", res->train_loss, false);
    csv_number(f, "%.6f", res->val_loss, false);
    csv_number(f, "%.6f", res->val_acc, false);
    csv_number(f, "%.1f", res->tokens_per_s, false);
    csv_number(f, "%.2f", res->wall_s, true);
  }
}

/* A table cell: '|' would end it. */
static void md_text(FILE *f, const char *s) {
  fputs("| ", f);
  for (; *s; s++) fputs(*s == '|' ? "\\|" : (char[2]){*s, 0}, f);
  fputc(' ', f);
}

static void md_number(FILE *f, const char *format, double x) {
  fputs("| ", f);
  if (isfinite(x))
    fprintf(f, format, x);
  else
    fputc('-', f);
  fputc(' ', f);
}

/* mean and sample standard deviation of the finite xs */
static int mean_sd(const double *x, int n, double *mean, double *sd) {
  int k = 0;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; i++)
    if (isfinite(x[i])) sum += x[i], k++;
  *mean = k ? sum / k : NAN;
  for (int i = 0; i < n; i++)
    if (isfinite(x[i])) sq += (x[i] - *mean) * (x[i] - *mean);
  *sd = k > 1 ? sqrt(sq / (k - 1)) : NAN;
  return k;
}

static void md_mean(FILE *f, const double *x, int n) {
  double mean, sd;
  mean_sd(x, n, &mean, &sd);
  fputs("| ", f);
  if (!isfinite(mean))
    fputc('-', f);
  else if (isfinite(sd))
    fprintf(f, "%.4f ± %.4f", mean, sd);
  else
    fprintf(f, "%.4f", mean);
  fputc(' ', f);
}

/* Runs that differ only in their seed are consecutive (seeds is the last axis): their means. */
static void write_seed_means(FILE *f, const hy_sweep *s, const row *rows) {
  const hy_sweep_axis *last = &s->spec.axes[s->spec.n_axes - 1];
  int n_seeds = last->n;
  if (!is_seeds(last) || n_seeds < 2 || s->spec.n_axes < 2) return;
  fprintf(f, "\n## Mean ± standard deviation over the %d seeds\n\n|", n_seeds);
  for (int a = 0; a + 1 < s->spec.n_axes; a++) fprintf(f, " %s |", s->spec.axes[a].key);
  fputs(" runs done | train loss | val loss | val acc |\n|", f);
  for (int a = 0; a + 1 < s->spec.n_axes; a++) fputs("---|", f);
  fputs("---|---|---|---|\n", f);
  double train[HY_SWEEP_RUNS_MAX], val[HY_SWEEP_RUNS_MAX], acc[HY_SWEEP_RUNS_MAX];
  for (int g = 0; g < s->n_runs; g += n_seeds) {
    int done = 0;
    for (int k = 0; k < n_seeds; k++) {
      const row *r = &rows[g + k];
      bool ok = !strcmp(r->status, "done");
      done += ok;
      train[k] = ok ? r->res.train_loss : NAN;
      val[k] = ok ? r->res.val_loss : NAN;
      acc[k] = ok ? r->res.val_acc : NAN;
    }
    for (int a = 0; a + 1 < s->spec.n_axes; a++) md_text(f, s->shown[a][s->runs[g].value[a]]);
    fprintf(f, "| %d ", done);
    md_mean(f, train, n_seeds);
    md_mean(f, val, n_seeds);
    md_mean(f, acc, n_seeds);
    fputs("|\n", f);
  }
}

static void write_md(FILE *f, const hy_sweep *s, const row *rows) {
  int done = 0;
  for (int i = 0; i < s->n_runs; i++) done += !strcmp(rows[i].status, "done");
  fprintf(f, "# Sweep %s\n\nThe [sweep] of `%s`: %d runs, %d done. Losses in nats per token; ",
          s->dir, s->path, s->n_runs, done);
  fputs("tokens/s and time are those of the training that finished each run.\n\n|", f);
  fputs(" run |", f);
  for (int a = 0; a < s->spec.n_axes; a++)
    if (!is_seeds(&s->spec.axes[a])) fprintf(f, " %s |", s->spec.axes[a].key);
  fputs(" seed | status | steps | train loss | val loss | val acc | tokens/s | time (s) |\n|", f);
  for (int a = 0; a < s->spec.n_axes; a++)
    if (!is_seeds(&s->spec.axes[a])) fputs("---|", f);
  fputs("---|---|---|---|---|---|---|---|---|\n", f);
  for (int i = 0; i < s->n_runs; i++) {
    const hy_sweep_run *run = &s->runs[i];
    const hy_run_result *res = &rows[i].res;
    md_text(f, run->name);
    for (int a = 0; a < s->spec.n_axes; a++)
      if (!is_seeds(&s->spec.axes[a])) md_text(f, s->shown[a][run->value[a]]);
    fprintf(f, "| %lld | %s ", (long long)run->recipe.run.seed, rows[i].status);
    md_number(f, "%.0f", res->steps ? (double)res->steps : NAN);
    md_number(f, "%.4f", res->train_loss);
    md_number(f, "%.4f", res->val_loss);
    md_number(f, "%.4f", res->val_acc);
    md_number(f, "%.0f", res->tokens_per_s);
    md_number(f, "%.1f", res->wall_s);
    fputs("|\n", f);
  }
  write_seed_means(f, s, rows);
}

/* Write one of the summary files through a memory stream, then atomically. */
static int write_file(const hy_sweep *s, const row *rows, const char *file,
                      void (*writer)(FILE *, const hy_sweep *, const row *), hy_error *err) {
  char *text = NULL, path[HY_RECIPE_STR + 32];
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) return hy_fail(err, "%s: out of memory", file);
  writer(f, s, rows);
  fclose(f);
  snprintf(path, sizeof path, "%s/%s", s->dir, file);
  int rc = hy_write_file_atomic(path, text, err);
  free(text);
  return rc;
}

int hy_sweep_write_summary(const hy_sweep *s, hy_error *err) {
  row *rows = calloc((size_t)s->n_runs, sizeof *rows);
  if (!rows) return hy_fail(err, "out of memory");
  for (int i = 0; i < s->n_runs; i++) rows[i] = read_row(&s->runs[i]);
  int rc = hy_mkdirs(s->dir, err);
  if (!rc) rc = write_file(s, rows, "summary.csv", write_csv, err);
  if (!rc) rc = write_file(s, rows, "summary.md", write_md, err);
  free(rows);
  return rc;
}
