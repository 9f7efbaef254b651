/* Files and directories for run outputs. */
#ifndef HYLA_FS_H
#define HYLA_FS_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* mkdir -p */
int hy_mkdirs(const char *path, hy_error *err);

/* Write n bytes to path so that a crash leaves either the old file or the new one whole: into a
 * temporary file created exclusively next to it (O_CREAT | O_EXCL | O_NOFOLLOW under a random
 * name: a symlink planted in the directory is never followed), fsync'd, renamed over path (with
 * replace false, linked in its place instead: an existing path is an error, never replaced), then
 * the directory fsync'd. Errors name path and the failed call; no temporary is left behind. */
int hy_write_bytes_atomic(const char *path, const void *data, size_t n, bool replace,
                          hy_error *err);
/* hy_write_bytes_atomic of a string, replacing path. */
int hy_write_file_atomic(const char *path, const char *text, hy_error *err);
/* path opened for writing as fopen would (appending, or else from empty), but never through a
 * symlink: one planted in a run directory fails the open (errno ELOOP) instead of redirecting
 * hyla's writes to another file. */
FILE *hy_open_for_writing(const char *path, bool append);
/* The whole file, NUL-terminated and malloc'd; NULL with err on failure. */
char *hy_read_file(const char *path, size_t *size, hy_error *err);
/* The same, asking stop() (may be NULL) before each piece it reads (at most 16 MiB) and every
 * 0.1 s while a pipe has nothing to read: when it answers non-zero the read ends, NULL with err
 * ("reading stopped"). */
char *hy_read_file_until(const char *path, size_t *size, int (*stop)(void), hy_error *err);

/* Lock a run directory for this process (flock on <dir>/.lock, which records the pid): returns
 * the lock's descriptor, or -1 with an error naming dir and, when known, the pid of the process
 * that holds it. The lock ends with hy_unlock_dir or with the process, however it ends. */
int hy_lock_dir(const char *dir, hy_error *err);
void hy_unlock_dir(int fd);

#endif
