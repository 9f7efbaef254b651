#include "recipes/toml_value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

void hy_toml_free(hy_toml_value *v) {
  free(v->str);
  for (int k = 0; k < v->n; k++) hy_toml_free(&v->items[k]);
  free(v->items);
  memset(v, 0, sizeof *v);
}

const char *hy_toml_kind_name(hy_toml_kind kind) {
  static const char *const names[] = {"a string", "an integer", "a float",    "a boolean",
                                      "an array", "a table",    "a date-time"};
  return names[kind];
}

/* ---- writing ---- */

void hy_toml_format_float(double x, char *buf, size_t size) {
  if (isnan(x) || isinf(x)) {
    snprintf(buf, size, "%s%s", signbit(x) ? "-" : "", isnan(x) ? "nan" : "inf");
    return;
  }
  /* The fewest significant digits that read back to x, but never fewer than the integer part
   * needs below 1e16, so 100 is "100.0" and not "1e+02". */
  int e10 = x != 0 ? (int)floor(log10(fabs(x))) : 0;
  for (int digits = 1; digits <= 17; digits++) {
    int d = e10 >= digits && e10 < 16 ? e10 + 1 : digits;
    snprintf(buf, size, "%.*g", d, x);
    if (strtod(buf, NULL) == x) break;
  }
  if (!strpbrk(buf, ".e")) strncat(buf, ".0", size - strlen(buf) - 1);
}

typedef struct {
  char *buf;
  size_t size, len;
} sink;

static void put(sink *s, const char *text, size_t n) {
  for (size_t k = 0; k < n; k++, s->len++)
    if (s->len + 1 < s->size) s->buf[s->len] = text[k];
}

size_t hy_toml_quote(const char *str, size_t len, char *buf, size_t size) {
  bool plain = true, literal_ok = true;
  for (size_t k = 0; k < len; k++) {
    unsigned char c = (unsigned char)str[k];
    /* Tabs are legal in both forms but invisible; they are written as \t. */
    if (c == '"' || c == '\\' || c == '\t' || is_control(c)) plain = false;
    if (c == '\'' || c == '\t' || is_control(c)) literal_ok = false;
  }
  sink s = {buf, size, 0};
  if (!plain && literal_ok) {
    put(&s, "'", 1);
    put(&s, str, len);
    put(&s, "'", 1);
  } else {
    put(&s, "\"", 1);
    for (size_t k = 0; k < len; k++) {
      unsigned char c = (unsigned char)str[k];
      const char *e = c == '"'    ? "\\\""
                      : c == '\\' ? "\\\\"
                      : c == '\n' ? "\\n"
                      : c == '\t' ? "\\t"
                      : c == '\r' ? "\\r"
                      : c == '\b' ? "\\b"
                      : c == '\f' ? "\\f"
                                  : NULL;
      char u[8];
      if (!e && is_control(c)) snprintf(u, sizeof u, "\\u%04X", c), e = u;
      if (e)
        put(&s, e, strlen(e));
      else
        put(&s, (const char *)&c, 1);
    }
    put(&s, "\"", 1);
  }
  if (size) buf[s.len < size ? s.len : size - 1] = 0;
  return s.len;
}
