#include "tests/fuzz/support.h"
#include "tensor/threads.h"
#include "util/fs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ASan's defaults in every target: an allocation too large for the machine returns NULL, as on a
 * machine that has no memory to lend, so a file declaring a huge size is an error that hyla must
 * report, not a report of the sanitizer. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "allocator_may_return_null=1:max_allocation_size_mb=2048";
}

/* HDF5 leaks what it had read of a damaged file when it gives up on it: its own leaks, which hyla
 * cannot free (docs/testing.md). Memory that hyla allocates is still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

static char dir[4096];
static char *tiny;

_Noreturn void fuzz_fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz: %s\n%s\n", what, detail ? detail : "");
  abort();
}

static void cleanup(void) {
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[sizeof dir + 256];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (e->d_name[0] != '.') unlink(path);
  }
  if (d) closedir(d);
  rmdir(dir);
  free(tiny);
}

/* Once per process: one thread (inputs run one at a time), the temporary folder, tiny.toml. */
static void init(void) {
  if (dir[0]) return;
  hy_threads_set(1);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/hyla-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) fuzz_fail("cannot make a temporary folder", dir);
  hy_error err;
  size_t n;
  if (!(tiny = hy_read_file(fuzz_tiny_path(), &n, &err))) fuzz_fail("tiny.toml", err.msg);
  atexit(cleanup);
}

const char *fuzz_tiny_path(void) { return HYLA_FUZZ_DIR "/tiny.toml"; }

const char *fuzz_tiny_text(void) {
  init();
  return tiny;
}

void fuzz_temp_path(const char *name, char *path, size_t size) {
  init();
  snprintf(path, size, "%s/%s", dir, name);
}

const char *fuzz_temp_file(const char *name, const uint8_t *data, size_t size) {
  static char path[sizeof dir + 64];
  fuzz_temp_path(name, path, sizeof path);
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
    fuzz_fail("cannot write", path);
  return path;
}

void fuzz_check_round_trip(const hy_recipe *r) {
  char *text = hy_recipe_to_toml(r);
  if (!text) fuzz_fail("hy_recipe_to_toml failed", NULL);
  hy_recipe *back = malloc(sizeof *back);
  hy_error err;
  if (!back) fuzz_fail("out of memory", NULL);
  if (hy_recipe_parse(text, "resolved", 0, NULL, back, &err)) fuzz_fail(err.msg, text);
  if (memcmp(r, back, sizeof *r)) fuzz_fail("the resolved recipe parses back differently", text);
  free(back);
  free(text);
}
