/* Checkpoints: one HDF5 file per save, readable by h5py (docs/checkpoint.md has the layout).
 * Parameters under /params/<module path>, optimizer state under /optim/<state>/<module path>,
 * and on the root group the step, the optimizer's step, the loader's position and the resolved
 * recipe; a model trained on a subword dataset keeps its vocabulary too (/vocab), so sampling and
 * evaluating decode without the dataset. Every dataset carries Fletcher32 checksums, checked at
 * load. A file is written whole
 * (hy_write_bytes_atomic: temporary, fsync, rename), so a crash never leaves a torn one. */
#ifndef HYLA_CHECKPOINT_H
#define HYLA_CHECKPOINT_H

#include "data/vocab.h"
#include "optim/optimizer.h"
#include "tensor/params.h"
#include "util/error.h"

enum { HY_CKPT_STATE_MAX = 16 };

typedef struct {
  int64_t step;                      /* training steps done */
  int n_loader;                      /* how many of loader[] are used */
  int64_t loader[HY_CKPT_STATE_MAX]; /* the data loader's position, opaque here */
  char *recipe;                      /* the resolved recipe (TOML); malloc'd by reads */
  const hy_vocab *vocab;             /* written (as /vocab) when not NULL; reads leave it NULL */
} hy_ckpt_meta;

int hy_checkpoint_write(const char *path, const hy_params *ps, const hy_optimizer *opt,
                        const hy_ckpt_meta *meta, hy_error *err);
/* The root attributes only: enough to rebuild the model from the recipe before loading. */
int hy_checkpoint_read_meta(const char *path, hy_ckpt_meta *meta, hy_error *err);
void hy_ckpt_meta_free(hy_ckpt_meta *meta);
/* The vocabulary the model was trained with (a subword dataset's, data/vocab.h): v->n = 0 for a
 * checkpoint without one (the byte tokenizer). */
int hy_checkpoint_read_vocab(const char *path, hy_vocab *v, hy_error *err);
/* Fill ps (and opt's state and step, unless opt is NULL) from the file. Every parameter must be
 * there with the same shape, match its checksum and hold finite values; values convert to the
 * parameter's dtype. A file without checksums (of an older hyla) loads with a warning. */
int hy_checkpoint_load(const char *path, hy_params *ps, hy_optimizer *opt, hy_error *err);

/* <dir>/ckpt-<step, 8 digits>.h5 */
void hy_checkpoint_path(char *out, size_t n, const char *dir, int64_t step);
/* The highest step of the checkpoints in dir; -1 when there is none. */
int64_t hy_checkpoint_newest(const char *dir);
/* The checkpoint of the highest step in dir; -1 (with err) when there is none. */
int hy_checkpoint_latest(const char *dir, char *out, size_t n, hy_error *err);
/* Delete all but the newest `keep` checkpoints in dir up to `step` (the run's, which holds dir's
 * lock: those past its step are another run's and stay), and the temporaries of unfinished
 * writes. */
void hy_checkpoint_prune(const char *dir, int64_t keep, int64_t step);
/* Move every checkpoint in dir, and the files named in `also` (NULL-terminated) that are there,
 * into a new directory dir/previous-<n> (its path into moved). */
int hy_checkpoint_set_aside(const char *dir, const char *const *also, char *moved, size_t n,
                            hy_error *err);

#endif
