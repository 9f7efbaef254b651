/* The recipe reader on any bytes: the input as a recipe file, read with its [sweep] section,
 * validated and completed (hy_recipe_load_sweep). A recipe it accepts must write and read back to
 * itself, and its sweep grid must expand, or be refused with a message. */
#include "recipes/sweep.h"
#include "tests/fuzz/support.h"

#include <stdlib.h>

static void expand(const char *path) {
  hy_sweep *s = malloc(sizeof *s);
  hy_error err = {{0}};
  if (!s) fuzz_fail("out of memory", NULL);
  if (hy_sweep_expand(path, 0, NULL, s, &err) == 0) {
    fuzz_check_round_trip(&s->runs[0].recipe);
    fuzz_check_round_trip(&s->runs[s->n_runs - 1].recipe);
    hy_sweep_free(s);
  } else if (!err.msg[0]) {
    fuzz_fail("hy_sweep_expand failed without a message", NULL);
  }
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_temp_file("recipe.toml", data, size);
  hy_recipe *r = malloc(sizeof *r);
  hy_sweep_spec sweep;
  hy_error err = {{0}};
  if (!r) fuzz_fail("out of memory", NULL);
  if (hy_recipe_load_sweep(path, 0, NULL, r, &sweep, &err) == 0) {
    fuzz_check_round_trip(r);
    bool grid = sweep.line && sweep.n_axes;
    hy_sweep_spec_free(&sweep);
    if (grid) expand(path);
  } else if (!err.msg[0]) {
    fuzz_fail("hy_recipe_load_sweep failed without a message", NULL);
  }
  free(r);
  return 0;
}
