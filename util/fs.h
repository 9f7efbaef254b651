/* Files and directories for run outputs. */
#ifndef HYLA_FS_H
#define HYLA_FS_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>

/* mkdir -p */
int hy_mkdirs(const char *path, hy_error *err);
/* Write text to path.tmp, flush it to disk, rename it to path. */
int hy_write_file_atomic(const char *path, const char *text, hy_error *err);
/* The whole file, NUL-terminated and malloc'd; NULL with err on failure. */
char *hy_read_file(const char *path, size_t *size, hy_error *err);

#endif
