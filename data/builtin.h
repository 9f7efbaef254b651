/* Datasets by name: "shakespeare" is the corpus shipped in data/corpus/, prepared into an HDF5
 * token dataset the first time it is asked for; anything else is a path to an .h5 file. */
#ifndef HYLA_BUILTIN_H
#define HYLA_BUILTIN_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The HDF5 file for a dataset name or path, prepared if it is a built-in one (byte tokenizer, the
 * last 5% of the bytes as /val). Prepared files go to $HYLA_DATA_DIR, or data/cache/ in the
 * source tree, under a name that carries the corpus's CRC-32 (a changed corpus is prepared
 * afresh), written atomically; later calls reuse them. A name that is neither built in nor an
 * existing file is an error that lists the built-in names. */
int hy_dataset_resolve(const char *name_or_path, char *h5_path, size_t n, hy_error *err);
const char *hy_builtin_names(void); /* "shakespeare" */

/* A dataset's vocabulary size (its `vocab`) by name or path, and whether it stores its tokens'
 * bytes (*table: a subword dataset), without reading its tokens or preparing a built-in one.
 * -1 when it is neither built in nor a readable HDF5 file with a `vocab` attribute: opening it as
 * a run's dataset then says why. */
int hy_dataset_peek(const char *name_or_path, int64_t *vocab, bool *table);

#endif
