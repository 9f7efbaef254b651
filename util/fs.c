#include "util/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int hy_mkdirs(const char *path, hy_error *err) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return hy_fail(err, "%s: path too long", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return hy_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST)
    return hy_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
  struct stat st;
  if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
    return hy_fail(err, "%s: exists and is not a directory", buf);
  return 0;
}

int hy_write_file_atomic(const char *path, const char *text, hy_error *err) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return hy_fail(err, "%s: cannot write: %s", tmp, strerror(errno));
  size_t n = strlen(text);
  bool ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return hy_fail(err, "%s: cannot write: %s", path, strerror(errno));
  }
  return 0;
}

char *hy_read_file(const char *path, size_t *size, hy_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    hy_fail(err, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (n + 1 == cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  bool failed = ferror(f);
  fclose(f);
  if (!buf || failed) {
    free(buf);
    hy_fail(err, "%s: cannot read", path);
    return NULL;
  }
  buf[n] = 0;
  if (size) *size = n;
  return buf;
}
