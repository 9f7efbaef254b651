#include "data/builtin.h"
#include "data/dataset.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* The source tree holds the corpus: found from where this file was compiled, so any build
 * directory (and an installed binary run from the tree) finds it. */
static void source_dir(char *out, size_t n) {
  snprintf(out, n, "%s", __FILE__);
  char *slash = strrchr(out, '/');
  if (slash)
    *slash = 0; /* .../data */
  else
    snprintf(out, n, "data");
}

const char *hy_builtin_names(void) { return "shakespeare"; }

/* The whole gzip file in memory. */
static unsigned char *gunzip(const char *path, size_t *n, hy_error *err) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    hy_fail(err, "%s: cannot open the shipped corpus", path);
    return NULL;
  }
  size_t cap = 8 << 20, len = 0;
  unsigned char *buf = malloc(cap);
  int got;
  while (buf && (got = gzread(f, buf + len, (unsigned)(cap - len))) > 0) {
    len += (size_t)got;
    if (len == cap) {
      unsigned char *bigger = realloc(buf, cap *= 2);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  int errnum = 0;
  const char *why = gzerror(f, &errnum);
  gzclose(f);
  if (!buf || errnum < 0) {
    free(buf);
    hy_fail(err, "%s: cannot decompress: %s", path, buf ? why : "out of memory");
    return NULL;
  }
  *n = len;
  return buf;
}

int hy_dataset_resolve(const char *name, char *h5_path, size_t n, hy_error *err) {
  if (strcmp(name, "shakespeare") != 0) {
    if (access(name, F_OK) != 0)
      return hy_fail(err, "dataset '%s' is neither a file nor a built-in dataset (%s)", name,
                     hy_builtin_names());
    snprintf(h5_path, n, "%s", name);
    return 0;
  }
  char dir[4096], cache[4096], gz[4200];
  source_dir(dir, sizeof dir);
  const char *env = getenv("HYLA_DATA_DIR");
  snprintf(cache, sizeof cache, "%s", env && *env ? env : dir);
  if (!(env && *env)) strncat(cache, "/cache", sizeof cache - strlen(cache) - 1);
  if (snprintf(h5_path, n, "%s/shakespeare.h5", cache) >= (int)n)
    return hy_fail(err, "%s: path too long", cache);
  if (access(h5_path, R_OK) == 0) return 0;
  if (hy_mkdirs(cache, err)) return -1;
  snprintf(gz, sizeof gz, "%s/corpus/shakespeare.txt.gz", dir);
  size_t len = 0;
  unsigned char *text = gunzip(gz, &len, err);
  if (!text) return -1;
  fprintf(stderr, "preparing the shipped corpus (%zu bytes) into %s\n", len, h5_path);
  int rc = hy_data_prepare_bytes(text, len, h5_path, 0.05, err);
  free(text);
  return rc;
}
