#include "data/text.h"
#include "util/fs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static bool gzipped(const char *path) {
  size_t n = strlen(path);
  return n > 3 && !strcmp(path + n - 3, ".gz");
}

static char *gunzip(const char *path, size_t *n, int (*stop)(void), hy_error *err) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    hy_fail(err, "%s: cannot open: %s", path, strerror(errno ? errno : ENOMEM));
    return NULL;
  }
  /* pieces of at most 16 MiB, stop() asked between them */
  const size_t PIECE = (size_t)1 << 24;
  size_t cap = 8 << 20, len = 0;
  char *buf = malloc(cap + 1);
  int got = 0;
  bool stopped = false;
  while (buf && !(stopped = stop && stop()) &&
         (got = gzread(f, buf + len, (unsigned)(cap - len < PIECE ? cap - len : PIECE))) > 0) {
    len += (size_t)got;
    if (len == cap) {
      char *bigger = realloc(buf, (cap *= 2) + 1);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  if (!buf || got < 0 || stopped) {
    int errnum = 0;
    if (!buf)
      hy_fail(err, "%s: out of memory", path);
    else if (stopped)
      hy_fail(err, "%s: reading stopped", path);
    else
      hy_fail(err, "%s: cannot decompress: %s", path, gzerror(f, &errnum)); /* before gzclose */
    gzclose(f);
    free(buf);
    return NULL;
  }
  gzclose(f);
  buf[len] = 0;
  *n = len;
  return buf;
}

char *hy_read_text(const char *path, size_t *n, int (*stop)(void), hy_error *err) {
  return gzipped(path) ? gunzip(path, n, stop, err) : hy_read_file_until(path, n, stop, err);
}
