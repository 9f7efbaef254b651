/* The text `hyla data prepare` reads: a plain file, or one compressed with gzip (its name ends in
 * .gz), as the shipped corpus is. */
#ifndef HYLA_TEXT_H
#define HYLA_TEXT_H

#include "util/error.h"

#include <stddef.h>

/* The whole text (decompressed), NUL-terminated and malloc'd, its length in *n; NULL with err.
 * stop (may be NULL) is asked between pieces of it, as in hy_read_file_until: when it answers
 * non-zero the read ends, NULL with err. */
char *hy_read_text(const char *path, size_t *n, int (*stop)(void), hy_error *err);

#endif
