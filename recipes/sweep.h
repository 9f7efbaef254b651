/* A sweep: the grid of runs a recipe's [sweep] section describes (docs/sweeps.md). Every
 * combination of the swept keys' values is one run, with its own recipe and its own directory
 * under the recipe's run.out, named by its settings. */
#ifndef HYLA_SWEEP_H
#define HYLA_SWEEP_H

#include "recipes/recipe.h"

enum { HY_SWEEP_RUNS_MAX = 1000, HY_SWEEP_NAME = 160 };

typedef struct {
  /* Its directory's name in the sweep's: "lr=3e-3,layers=gla-attn-x-2,seed=0" (characters other
   * than letters, digits and . _ + - become '-'; "_2", "_3" keep names unique). */
  char name[HY_SWEEP_NAME];
  int value[HY_SWEEP_AXES_MAX]; /* which value of each axis it takes */
  hy_recipe recipe;             /* resolved: the file, the overrides, then its settings */
} hy_sweep_run;

typedef struct {
  char path[HY_RECIPE_STR]; /* the recipe file */
  int sweep_line;           /* its [sweep] header's line */
  char dir[HY_RECIPE_STR];  /* the recipe's run.out: the runs are directories in it */
  hy_sweep_spec spec;       /* the axes, `seeds` (when given) moved last */
  /* Each value as a summary shows it: strings unquoted, numbers as written. */
  char **shown[HY_SWEEP_AXES_MAX];
  int n_runs;
  hy_sweep_run *runs; /* the grid, the first axis slowest and seeds fastest */
} hy_sweep;

/* Read the recipe at path with the overrides (as --set), and expand its [sweep] section. Every
 * run's recipe is resolved and checked here, before any trains; a run whose combination fails a
 * check across keys is an error naming the [sweep] line and the run. */
int hy_sweep_expand(const char *path, int n_overrides, const char *const *overrides, hy_sweep *s,
                    hy_error *err);
void hy_sweep_free(hy_sweep *s);

/* The settings of run i as "optim.lr=3e-3 model.layers="gla,attn x 2" seed=0", for progress. */
void hy_sweep_settings(const hy_sweep *s, int i, char *buf, size_t size);

#endif
