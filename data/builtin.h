/* Datasets by name: "shakespeare" is the corpus shipped in data/corpus/, prepared into an HDF5
 * token dataset the first time it is asked for; anything else is a path to an .h5 file. */
#ifndef HYLA_BUILTIN_H
#define HYLA_BUILTIN_H

#include "util/error.h"

#include <stddef.h>

/* The HDF5 file for a dataset name or path, prepared if it is a built-in one. Prepared files go to
 * $HYLA_DATA_DIR, or data/cache/ in the source tree. */
int hy_dataset_resolve(const char *name_or_path, char *h5_path, size_t n, hy_error *err);
const char *hy_builtin_names(void); /* "shakespeare" */

#endif
