/* Running a sweep: its runs one after another in this process, or under mpirun -np N with
 * [dist] dp = sp = 1, N at a time (rank i trains runs i, i + N, ..., each alone). A run with a
 * result.json is skipped and one with a checkpoint resumes from it, so running a sweep again
 * finishes it. Rank 0 then writes summary.csv and summary.md. */
#ifndef HYLA_SWEEP_RUNNER_H
#define HYLA_SWEEP_RUNNER_H

#include "recipes/sweep.h"
#include "util/error.h"

#include <stdio.h>

typedef struct {
  bool dry_run; /* say what each run would do, train none, write no summary */
  bool verbose; /* the trainer's own lines too (else only a line per run start and end) */
  FILE *out;    /* progress lines; NULL: stdout */
} hy_sweep_options;

/* What this process did with its share of the runs. */
typedef struct {
  int trained, resumed, skipped, failed;
  bool interrupted; /* a signal stopped a run; the rest were not started */
} hy_sweep_outcome;

/* 0 when every run of this process finished (or had finished before); -1 with err when one
 * failed (the others still ran; its error.txt says why) or the sweep cannot run here. */
int hy_sweep_run_all(const hy_sweep *s, const hy_sweep_options *opt, hy_sweep_outcome *outcome,
                     hy_error *err);

#endif
