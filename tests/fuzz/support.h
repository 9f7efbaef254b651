/* What the fuzz targets share: the small recipe they build on (tests/fuzz/tiny.toml), a temporary
 * file for inputs that hyla reads by path, and the checks every accepted recipe must pass. */
#ifndef HYLA_FUZZ_SUPPORT_H
#define HYLA_FUZZ_SUPPORT_H

#include "recipes/recipe.h"

#include <stddef.h>
#include <stdint.h>

/* tests/fuzz/tiny.toml: its path, and its text (read once). */
const char *fuzz_tiny_path(void);
const char *fuzz_tiny_text(void);

/* Write the bytes to the file `name` ("input.h5") of this process's temporary folder (removed at
 * exit) and return its path, valid until the next call. */
const char *fuzz_temp_file(const char *name, const uint8_t *data, size_t size);
/* The path of file `name` in that folder. */
void fuzz_temp_path(const char *name, char *path, size_t size);

/* Aborts unless the recipe, written as TOML and parsed back, is the same recipe: whatever the
 * parser accepts must survive a run directory's recipe.toml and a checkpoint. */
void fuzz_check_round_trip(const hy_recipe *r);

/* Aborts with the message: an input broke a promise (the fuzzer keeps it as a crash). */
_Noreturn void fuzz_fail(const char *what, const char *detail);

#endif
