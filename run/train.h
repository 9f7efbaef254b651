/* The training run: recipe -> model, data, optimizer -> steps with logging, evaluation and
 * checkpoints, until the schedule ends, `stop_after`, or SIGINT/SIGTERM (util/stop.h; caught from
 * the start of hy_train). A signal during a step finishes the step, during an evaluation ends the
 * evaluation (not recorded); either way a checkpoint is written and hy_train returns success. The
 * run holds its directory's lock all the while; a fresh run refuses a directory that holds
 * checkpoints (unless restart). */
#ifndef HYLA_TRAIN_H
#define HYLA_TRAIN_H

#include "recipes/recipe.h"
#include "util/error.h"

typedef struct {
  const char *resume; /* NULL: fresh run; "" : latest checkpoint in the run dir; else a file */
  bool restart;       /* fresh run: first move the run dir's checkpoints and logs aside */
  bool quiet;         /* no progress output (tests) */
  bool alone;         /* train on this process alone, even under mpirun (hyla sweep) */
} hy_train_options;

typedef struct {
  int64_t steps_done;  /* the step the run stopped at */
  double last_loss;    /* training loss of the last step */
  double val_loss;     /* of the last evaluation (NAN if none) */
  double val_acc;      /* MQAR accuracy of the last evaluation (NAN if not MQAR) */
  double tokens_per_s; /* training tokens per second of this call's steps (per rank) */
  double wall_s;       /* seconds of this call's training, evaluations and checkpoints */
  bool stopped;        /* a signal stopped the run (perhaps in its last evaluation) */
} hy_train_result;

/* Trains a recipe that passed validation (hy_recipe_load or _parse: its checks across keys,
 * the GPU's limits included, are not repeated here). Returns 0 when the run ended as planned (or
 * was stopped cleanly), -1 with err otherwise. */
int hy_train(const hy_recipe *r, const hy_train_options *opt, hy_train_result *result,
             hy_error *err);

#endif
