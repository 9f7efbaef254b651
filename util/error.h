/* Errors about what a user gave hyla (recipes, datasets, checkpoints, command lines). Functions
 * that read user input return 0 on success, or -1 with a message in a hy_error that names the
 * file, the line or dataset path, what was found and what was expected. They never abort. */
#ifndef HYLA_ERROR_H
#define HYLA_ERROR_H

enum { HY_ERROR_MAX = 1024 };

typedef struct {
  char msg[HY_ERROR_MAX];
} hy_error;

/* Format the message into err (if not NULL) and return -1. */
int hy_fail(hy_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
