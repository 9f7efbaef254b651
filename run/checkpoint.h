/* Checkpoints: one HDF5 file per save, readable by h5py (docs/checkpoint.md has the layout).
 * Parameters under /params/<module path>, optimizer state under /optim/<state>/<module path>,
 * and on the root group the step, the optimizer's step, the loader's position and the resolved
 * recipe. A file is written as <path>.tmp and renamed, so a crash never leaves a torn one. */
#ifndef HYLA_CHECKPOINT_H
#define HYLA_CHECKPOINT_H

#include "optim/optimizer.h"
#include "tensor/params.h"
#include "util/error.h"

enum { HY_CKPT_STATE_MAX = 16 };

typedef struct {
  int64_t step;                      /* training steps done */
  int n_loader;                      /* how many of loader[] are used */
  int64_t loader[HY_CKPT_STATE_MAX]; /* the data loader's position, opaque here */
  char *recipe;                      /* the resolved recipe (TOML); malloc'd by reads */
} hy_ckpt_meta;

int hy_checkpoint_write(const char *path, const hy_params *ps, const hy_optimizer *opt,
                        const hy_ckpt_meta *meta, hy_error *err);
/* The root attributes only: enough to rebuild the model from the recipe before loading. */
int hy_checkpoint_read_meta(const char *path, hy_ckpt_meta *meta, hy_error *err);
void hy_ckpt_meta_free(hy_ckpt_meta *meta);
/* Fill ps (and opt's state and step, unless opt is NULL) from the file. Every parameter must be
 * there with the same shape; values convert to the parameter's dtype. */
int hy_checkpoint_load(const char *path, hy_params *ps, hy_optimizer *opt, hy_error *err);

/* <dir>/ckpt-<step, 8 digits>.h5 */
void hy_checkpoint_path(char *out, size_t n, const char *dir, int64_t step);
/* The checkpoint of the highest step in dir; -1 (with err) when there is none. */
int hy_checkpoint_latest(const char *dir, char *out, size_t n, hy_error *err);
/* Delete all but the newest `keep` checkpoints in dir. */
void hy_checkpoint_prune(const char *dir, int64_t keep);

#endif
