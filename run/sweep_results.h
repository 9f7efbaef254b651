/* The results of a sweep: each finished run's result.json, and summary.csv and summary.md in the
 * sweep's directory with one row per run. */
#ifndef HYLA_SWEEP_RESULTS_H
#define HYLA_SWEEP_RESULTS_H

#include "recipes/sweep.h"
#include "util/error.h"

#include <stdint.h>

/* A run's numbers at its end; NAN where there is none (val_acc without MQAR). */
typedef struct {
  int64_t steps;
  double train_loss, val_loss, val_acc;
  double tokens_per_s; /* of the training that finished the run */
  double wall_s;       /* of the training that finished the run */
} hy_run_result;

/* <dir>/result.json: its presence marks a finished run. */
int hy_run_result_write(const char *dir, const hy_run_result *res, hy_error *err);
/* 0 and *res when <dir>/result.json is there and reads; 1 when it is not there; -1 with err,
 * naming the file and the field, when it is there but damaged. */
int hy_run_result_read(const char *dir, hy_run_result *res, hy_error *err);

/* <dir>/error.txt: why a run failed, for the summary; removed when the run starts again. */
void hy_run_error_write(const char *dir, const char *msg);
void hy_run_error_clear(const char *dir);

/* summary.csv and summary.md in s->dir, from what the runs' directories hold now. */
int hy_sweep_write_summary(const hy_sweep *s, hy_error *err);

#endif
