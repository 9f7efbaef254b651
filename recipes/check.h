/* A check across a recipe's keys: a rule that no key's own range can state (a head count divides
 * a width, a size fits a kernel). Validation runs every check on the complete recipe; a failure
 * names where the last of the check's keys was set, the change that broke it. */
#ifndef HYLA_RECIPE_CHECK_H
#define HYLA_RECIPE_CHECK_H

#include "recipes/recipe.h"

#include <stddef.h>

enum { HY_CHECK_KEYS = 6 };

typedef struct {
  const char *doc;                                          /* its line in docs/recipes.md */
  const char *keys[HY_CHECK_KEYS][2];                       /* section, key; unused entries NULL */
  int (*check)(const hy_recipe *r, char *why, size_t size); /* 0, or -1 with why */
} hy_cross_check;

#endif
