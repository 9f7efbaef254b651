#include "data/documents.h"
#include "data/text.h"
#include "util/stop.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- collecting documents ---- */

static int add_document(hy_documents *d, const unsigned char *bytes, size_t n, size_t *cap,
                        int64_t *cap_docs, hy_error *err) {
  if (n == 0) return 0;  /* an empty document has no token to start at */
  if (d->n + n > *cap) { /* a file's own size first: one text of n bytes takes n */
    size_t more = 2 * *cap > d->n + n ? 2 * *cap : d->n + n;
    unsigned char *t = realloc(d->text, more);
    if (!t) return hy_fail(err, "out of memory for %zu bytes of documents", more);
    d->text = t;
    *cap = more;
  }
  if (d->n_docs == *cap_docs) {
    int64_t more = *cap_docs ? 2 * *cap_docs : 64;
    int64_t *s = realloc(d->starts, (size_t)more * sizeof *s);
    if (!s) return hy_fail(err, "out of memory for %lld documents", (long long)more);
    d->starts = s;
    *cap_docs = more;
  }
  memcpy(d->text + d->n, bytes, n);
  d->starts[d->n_docs++] = (int64_t)d->n;
  d->n += n;
  return 0;
}

/* Where sep first occurs in s[0 .. n), or NULL. */
static const unsigned char *find(const unsigned char *s, size_t n, const char *sep, size_t len) {
  for (const unsigned char *p = s; (size_t)(s + n - p) >= len;) {
    p = memchr(p, (unsigned char)sep[0], (size_t)(s + n - p) - len + 1);
    if (!p || !memcmp(p, sep, len)) return p;
    p++;
  }
  return NULL;
}

typedef struct {
  hy_documents *d;
  const char *sep;
  size_t sep_len, cap;
  int64_t cap_docs;
} collector;

/* A file's text: one document, or one between each two separators. */
static int add_text(collector *c, const unsigned char *text, size_t n, hy_error *err) {
  const unsigned char *at = text, *end = text + n, *next;
  while (c->sep_len && (next = find(at, (size_t)(end - at), c->sep, c->sep_len))) {
    if (add_document(c->d, at, (size_t)(next - at), &c->cap, &c->cap_docs, err)) return -1;
    at = next + c->sep_len;
  }
  return add_document(c->d, at, (size_t)(end - at), &c->cap, &c->cap_docs, err);
}

static int add_file(collector *c, const char *path, hy_error *err) {
  size_t n = 0;
  char *text = hy_read_text(path, &n, hy_stop_asked, err);
  if (!text) return -1;
  int rc = add_text(c, (const unsigned char *)text, n, err);
  free(text);
  return rc;
}

/* ---- a folder ---- */

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A copy of name at the end of names (*n of them, room for *cap); false when memory runs out. */
static bool add_name(char ***names, int64_t *n, int64_t *cap, const char *name) {
  if (*n == *cap) {
    int64_t more = *cap ? 2 * *cap : 64;
    char **bigger = realloc(*names, (size_t)more * sizeof *bigger);
    if (!bigger) return false;
    *names = bigger;
    *cap = more;
  }
  if (!((*names)[*n] = strdup(name))) return false;
  ++*n;
  return true;
}

/* The names of the folder's files, sorted; *n of them. */
static char **list_files(const char *dir, const char *output, int64_t *n, hy_error *err) {
  DIR *d = opendir(dir);
  if (!d) {
    hy_fail(err, "%s: cannot read the folder: %s", dir, strerror(errno));
    return NULL;
  }
  struct stat out, st;
  bool have_out = output && stat(output, &out) == 0;
  char **names = NULL, path[4096];
  int64_t cap = 0;
  int rc = 0;
  *n = 0;
  for (struct dirent *e; !rc && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
      rc = hy_fail(err, "%s/%s: path too long", dir, e->d_name);
    } else if (stat(path, &st) != 0) {
      rc = hy_fail(err, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
      continue;
    } else if (have_out && st.st_dev == out.st_dev && st.st_ino == out.st_ino) {
      rc = hy_fail(err, "%s is the output %s (the same file): name an output outside the folder",
                   path, output);
    } else if (!add_name(&names, n, &cap, e->d_name)) {
      rc = hy_fail(err, "%s: out of memory for the names of its files", dir);
    }
  }
  closedir(d);
  if (!rc && *n == 0) rc = hy_fail(err, "%s: a folder without files: no documents", dir);
  if (!rc) {
    qsort(names, (size_t)*n, sizeof *names, by_name);
    return names;
  }
  for (int64_t i = 0; names && i < *n; i++) free(names[i]);
  free(names);
  return NULL;
}

static int add_folder(collector *c, const char *dir, const char *output, hy_error *err) {
  int64_t n;
  char **names = list_files(dir, output, &n, err), path[4096];
  if (!names) return -1;
  int rc = 0;
  for (int64_t i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    if (!rc) rc = add_file(c, path, err);
    free(names[i]);
  }
  free(names);
  return rc;
}

int hy_documents_read(const char *path, const char *sep, size_t sep_len, const char *output,
                      hy_documents *d, hy_error *err) {
  *d = (hy_documents){0};
  collector c = {d, sep, sep_len, 0, 0};
  struct stat st;
  bool folder = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
  int rc = folder ? add_folder(&c, path, output, err) : add_file(&c, path, err);
  if (rc) hy_documents_free(d);
  return rc;
}

void hy_documents_free(hy_documents *d) {
  free(d->text);
  free(d->starts);
  *d = (hy_documents){0};
}

/* ---- the separator ---- */

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The byte an escape letter stands for (\n: newline), or -1. */
static int letter_escape(char c) {
  switch (c) {
  case 'n': return '\n';
  case 't': return '\t';
  case 'r': return '\r';
  case 'a': return '\a';
  case 'b': return '\b';
  case 'f': return '\f';
  case 'v': return '\v';
  case '\\':
  case '"':
  case '\'':
  case '?': return c;
  default: return -1;
  }
}

int hy_unescape(const char *text, char *out, size_t *n, hy_error *err) {
  size_t k = 0;
  for (const char *p = text; *p; p++) {
    if (*p != '\\') {
      out[k++] = *p;
      continue;
    }
    const char *esc = p++;
    if (letter_escape(*p) >= 0) {
      out[k++] = (char)letter_escape(*p);
    } else if (*p >= '0' && *p <= '7') { /* up to three octal digits: \0, \012 */
      int v = 0;
      for (int i = 0; i < 3 && *p >= '0' && *p <= '7'; i++, p++) v = 8 * v + (*p - '0');
      p--;
      if (v > 255) return hy_fail(err, "'%s': \\%.3s is above \\377, not a byte", text, esc + 1);
      out[k++] = (char)v;
    } else if (*p == 'x' && hex_digit(p[1]) >= 0) { /* one or two hex digits: \x0a */
      int v = hex_digit(*++p);
      if (hex_digit(p[1]) >= 0) v = 16 * v + hex_digit(*++p);
      out[k++] = (char)v;
    } else {
      return hy_fail(err,
                     "'%s': unknown escape \\%.1s; C's escapes are taken (\\n, \\t, \\r, \\\\, "
                     "\\0, \\xHH, ...)",
                     text, *p ? p : "");
    }
  }
  if (k == 0) return hy_fail(err, "'%s': an empty separator", text);
  *n = k;
  return 0;
}
