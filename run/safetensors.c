#include "run/safetensors.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const DTYPE_NAMES[] = {[HY_ST_F32] = "F32", [HY_ST_I64] = "I64"};
static const size_t DTYPE_SIZES[] = {[HY_ST_F32] = 4, [HY_ST_I64] = 8};

static int64_t numel(const hy_st_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const hy_st_tensor *const *)a)->name, (*(const hy_st_tensor *const *)b)->name);
}

static bool plain_name(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
          *s == '.' || *s == '_' || *s == '-'))
      return false;
  return true;
}

/* The sorted names: plain, and each used once. */
static int check_names(const char *path, const hy_st_tensor *const *order, int n, hy_error *err) {
  for (int i = 0; i < n; i++) {
    if (!plain_name(order[i]->name) || !strcmp(order[i]->name, "__metadata__"))
      return hy_fail(err, "%s: tensor name '%s' is not plain (letters, digits, '.', '_', '-')",
                     path, order[i]->name);
    if (i && !strcmp(order[i]->name, order[i - 1]->name))
      return hy_fail(err, "%s: two tensors named '%s'", path, order[i]->name);
  }
  return 0;
}

/* v's bytes, least significant first, whatever the host's byte order. */
static unsigned char *put_le(unsigned char *p, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; i++) *p++ = (unsigned char)(v >> (8 * i));
  return p;
}

static unsigned char *put_values(unsigned char *p, const hy_st_tensor *t) {
  int64_t n = numel(t);
  for (int64_t i = 0; i < n; i++) {
    uint64_t bits;
    if (t->dtype == HY_ST_F32) {
      uint32_t u;
      memcpy(&u, (const float *)t->data + i, 4);
      bits = u;
    } else {
      memcpy(&bits, (const int64_t *)t->data + i, 8);
    }
    p = put_le(p, bits, DTYPE_SIZES[t->dtype]);
  }
  return p;
}

/* The JSON header of the tensors in `order`, padded with spaces to a multiple of 8 bytes;
 * malloc'd, its length in *len. */
static char *header(const hy_st_tensor *const *order, int n, size_t *len) {
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  if (!f) return NULL;
  fprintf(f, "{\"__metadata__\":{\"format\":\"pt\"}");
  size_t offset = 0;
  for (int i = 0; i < n; i++) {
    const hy_st_tensor *t = order[i];
    size_t bytes = (size_t)numel(t) * DTYPE_SIZES[t->dtype];
    fprintf(f, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, DTYPE_NAMES[t->dtype]);
    for (int d = 0; d < t->ndim; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    fprintf(f, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
    offset += bytes;
  }
  fputc('}', f);
  while (ftell(f) % 8) fputc(' ', f);
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

int hy_safetensors_write(const char *path, const hy_st_tensor *ts, int n, bool replace,
                         hy_error *err) {
  const hy_st_tensor **order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
  if (!order) return hy_fail(err, "%s: out of memory", path);
  size_t data_bytes = 0;
  for (int i = 0; i < n; i++) {
    order[i] = &ts[i];
    data_bytes += (size_t)numel(&ts[i]) * DTYPE_SIZES[ts[i].dtype];
  }
  qsort(order, (size_t)n, sizeof *order, by_name);
  if (check_names(path, order, n, err)) {
    free(order);
    return -1;
  }
  size_t head_len;
  char *head = header(order, n, &head_len);
  unsigned char *file = head ? malloc(8 + head_len + data_bytes) : NULL;
  if (!file) {
    free(head);
    free(order);
    return hy_fail(err, "%s: out of memory", path);
  }
  unsigned char *p = put_le(file, head_len, 8);
  memcpy(p, head, head_len);
  p += head_len;
  for (int i = 0; i < n; i++) p = put_values(p, order[i]);
  int rc = hy_write_bytes_atomic(path, file, (size_t)(p - file), replace, err);
  free(file);
  free(head);
  free(order);
  return rc;
}
