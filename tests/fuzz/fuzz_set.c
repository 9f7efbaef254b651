/* --set on any bytes: each line of the input one `section.key=value` override (as hyla train
 * takes them) of tests/fuzz/tiny.toml. A recipe it accepts must write and read back to itself. */
#include "tests/fuzz/support.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_SETS = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  hy_recipe *r = malloc(sizeof *r);
  if (!text || !r) fuzz_fail("out of memory", NULL);
  memcpy(text, data, size);
  text[size] = 0; /* a command line's arguments end at a NUL, and so does each override */
  const char *sets[MAX_SETS];
  int n = 0;
  for (char *line = text; line && n < MAX_SETS; n++) {
    sets[n] = line;
    line = strchr(line, '\n');
    if (line) *line++ = 0;
  }
  hy_error err = {{0}};
  if (hy_recipe_parse(fuzz_tiny_text(), fuzz_tiny_path(), n, sets, r, &err) == 0)
    fuzz_check_round_trip(r);
  else if (!err.msg[0])
    fuzz_fail("hy_recipe_parse failed without a message", NULL);
  free(r);
  free(text);
  return 0;
}
