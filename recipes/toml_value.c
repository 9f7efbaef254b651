#include "recipes/toml_value.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *p;                    /* the next character */
  const char *expect, *item_expect; /* what the caller wants, for "expected X, got Y" */
  char *why;
  size_t why_size;
} lexer;

static int fail(lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(lexer *lx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(lx->why, lx->why_size, fmt, ap);
  va_end(ap);
  return -1;
}

static bool is_ws(char c) { return c == ' ' || c == '\t'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static const char *skip_ws(const char *p) {
  while (is_ws(*p)) p++;
  return p;
}

/* Messages quote at most this much of what was found: enough to recognise it. */
enum { SHOW_MAX = 60 };
static int show_len(int len) { return len > SHOW_MAX ? SHOW_MAX : len; }
static const char *show_more(int len) { return len > SHOW_MAX ? "..." : ""; }

/* ---- strings ---- */

/* TOML text is UTF-8, and tomllib refuses anything else, so strings are checked here once. */
static bool valid_utf8(const unsigned char *s) {
  while (*s) {
    int n = *s < 0x80             ? 0
            : (*s & 0xE0) == 0xC0 ? 1
            : (*s & 0xF0) == 0xE0 ? 2
            : (*s & 0xF8) == 0xF0 ? 3
                                  : -1;
    if (n < 0) return false;
    unsigned cp = n == 0 ? *s : *s & (0x3F >> n);
    for (int k = 1; k <= n; k++) {
      if ((s[k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (s[k] & 0x3F);
    }
    static const unsigned least[] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    s += n + 1;
  }
  return true;
}

static bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

/* Append code point cp as UTF-8. */
static char *put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xC0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xE0 | cp >> 12);
    *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *o++ = (char)(0xF0 | cp >> 18);
    *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
    *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
    *o++ = (char)(0x80 | (cp & 0x3F));
  }
  return o;
}

/* \uXXXX or \UXXXXXXXX after the backslash and letter at p; returns the end or NULL. */
static const char *unicode_escape(const char *p, int digits, unsigned *cp) {
  *cp = 0;
  for (int k = 0; k < digits; k++) {
    char c = p[k];
    int d = is_digit(c)            ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return NULL;
    *cp = *cp << 4 | (unsigned)d;
  }
  if (*cp == 0 || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return NULL;
  return p + digits;
}

/* A "..." or '...' string at lx->p; escapes only in the first. */
static int parse_string(lexer *lx, hy_toml_value *v) {
  const char *start = lx->p, quote = *start, *p = start + 1;
  if (p[0] == quote && p[1] == quote)
    return fail(lx, "multi-line strings (%c%c%c) are not supported", quote, quote, quote);
  char *o = v->str = malloc(strlen(p) + 1); /* decoding never lengthens */
  if (!o) return fail(lx, "out of memory");
  for (;; p++) {
    unsigned char c = (unsigned char)*p;
    if (!c)
      return fail(lx, "unterminated string %.*s%s", show_len((int)(p - start)), start,
                  show_more((int)(p - start)));
    if (c == (unsigned char)quote) break;
    if (is_control(c))
      return fail(lx, "control character 0x%02X in a string; write it as an escape such as \\n", c);
    if (c != '\\' || quote == '\'') {
      *o++ = (char)c;
      continue;
    }
    static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
    const char *e = p[1] ? strchr(from, p[1]) : NULL;
    if (e) {
      *o++ = to[e - from];
      p++;
    } else if (p[1] == 'u' || p[1] == 'U') {
      unsigned cp;
      const char *end = unicode_escape(p + 2, p[1] == 'u' ? 4 : 8, &cp);
      if (!end)
        return fail(lx, "bad escape %.*s in a string: expected a Unicode scalar value other than 0",
                    p[1] == 'u' ? 6 : 10, p);
      o = put_utf8(o, cp);
      p = end - 1;
    } else {
      return fail(
          lx, "bad escape \\%c in a string: expected one of \\\" \\\\ \\n \\t \\r \\b \\f \\uXXXX",
          p[1] ? p[1] : ' ');
    }
  }
  *o = 0;
  if (!valid_utf8((const unsigned char *)v->str))
    return fail(lx, "string %.*s is not valid UTF-8", show_len((int)(p + 1 - start)), start);
  v->kind = HY_TOML_STRING;
  lx->p = p + 1;
  return 0;
}

/* ---- numbers and booleans ---- */

/* DIGIT *( DIGIT / "_" DIGIT ) from p; the end, or NULL. */
static const char *digit_run(const char *p, const char *end) {
  if (p >= end || !is_digit(*p)) return NULL;
  for (p++; p < end; p++) {
    if (is_digit(*p)) continue;
    if (*p == '_' && p + 1 < end && is_digit(p[1])) continue;
    break;
  }
  return p;
}

/* Which TOML number [s, end) spells: HY_TOML_INT, HY_TOML_FLOAT, or -1 for none. */
static int number_kind(const char *s, const char *end) {
  const char *p = s + (*s == '+' || *s == '-');
  if (end - p == 3 && (!memcmp(p, "inf", 3) || !memcmp(p, "nan", 3))) return HY_TOML_FLOAT;
  if (p < end && *p == '0' && p + 1 < end && (is_digit(p[1]) || p[1] == '_')) return -1; /* 007 */
  int kind = HY_TOML_INT;
  if (!(p = digit_run(p, end))) return -1;
  if (p < end && *p == '.') {
    if (!(p = digit_run(p + 1, end))) return -1;
    kind = HY_TOML_FLOAT;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!(p = digit_run(p, end))) return -1;
    kind = HY_TOML_FLOAT;
  }
  return p == end ? kind : -1;
}

static bool is_token_char(char c) { return c && !is_ws(c) && !strchr(",[]{}=\"'#", c); }

/* A bare token: true, false, or a number; anything else is not a TOML value, and the message says
 * what the caller expected there. */
static int parse_token(lexer *lx, hy_toml_value *v, bool in_array) {
  const char *s = lx->p, *e = s;
  while (is_token_char(*e)) e++;
  int len = (int)(e - s);
  const char *expect = in_array && lx->item_expect ? lx->item_expect : lx->expect;
  if (len == 0) {
    if (in_array && *s == ',') return fail(lx, "malformed array: expected %s, got ','", expect);
    if (!*s || *s == ']') return fail(lx, "expected %s, got nothing", expect);
    if (*s == '{') return fail(lx, "inline tables ({...}) are not supported; use a [section]");
    return fail(lx, "expected %s, got %.*s%s", expect, show_len((int)strlen(s)), s,
                show_more((int)strlen(s)));
  }
  lx->p = e;
  if ((len == 4 && !memcmp(s, "true", 4)) || (len == 5 && !memcmp(s, "false", 5))) {
    v->kind = HY_TOML_BOOL;
    v->b = len == 4;
    return 0;
  }
  int kind = number_kind(s, e);
  if (kind < 0) {
    /* At the top, show the whole rest: "got gla attn" says more than "got gla". */
    int shown = in_array ? len : (int)strlen(s);
    while (shown > 0 && is_ws(s[shown - 1])) shown--;
    /* A bare word where a string belongs is the usual slip: show the quoted form. */
    char hint[SHOW_MAX + 32] = "";
    if ((strstr(expect, "string") || strstr(expect, "one of")) && shown == len && len <= SHOW_MAX)
      snprintf(hint, sizeof hint, " (strings are quoted: \"%.*s\")", len, s);
    return fail(lx, "expected %s, got %.*s%s%s", expect, show_len(shown), s, show_more(shown),
                hint);
  }
  char clean[80];
  if (len >= (int)sizeof clean) return fail(lx, "number %.*s... is too long", 20, s);
  int n = 0;
  for (const char *p = s; p < e; p++)
    if (*p != '_') clean[n++] = *p;
  clean[n] = 0;
  errno = 0;
  v->kind = (hy_toml_kind)kind;
  if (kind == HY_TOML_INT) {
    v->i = strtoll(clean, NULL, 10);
    if (errno == ERANGE) return fail(lx, "integer %s does not fit in 64 bits", clean);
  } else {
    const char *m = clean + (*clean == '+' || *clean == '-');
    if (!strcmp(m, "inf") || !strcmp(m, "nan"))
      v->f = (*m == 'i' ? INFINITY : NAN) * (*clean == '-' ? -1.0 : 1.0);
    else
      v->f = strtod(clean, NULL); /* overflow gives inf, which ranges then refuse */
  }
  return 0;
}

/* ---- values and arrays ---- */

static int parse_value(lexer *lx, hy_toml_value *v, bool in_array);

/* [ item, item, ... ] with an optional trailing comma; items are scalars. */
static int parse_array(lexer *lx, hy_toml_value *v) {
  v->kind = HY_TOML_ARRAY;
  lx->p = skip_ws(lx->p + 1);
  int cap = 0;
  while (*lx->p != ']') {
    if (*lx->p == '[') return fail(lx, "nested arrays are not supported");
    if (v->n == cap) {
      cap = cap ? 2 * cap : 8;
      hy_toml_value *more = realloc(v->items, (size_t)cap * sizeof *more);
      if (!more) return fail(lx, "out of memory");
      v->items = more;
    }
    hy_toml_value *item = &v->items[v->n++];
    memset(item, 0, sizeof *item);
    if (parse_value(lx, item, true)) return -1;
    lx->p = skip_ws(lx->p);
    if (*lx->p == ',') {
      lx->p = skip_ws(lx->p + 1);
      continue;
    }
    if (*lx->p == ']') break;
    if (!*lx->p)
      return fail(lx, "unterminated array: expected ',' or ']' after %.*s", show_len(item->src_len),
                  item->src);
    int rest = (int)strlen(lx->p);
    return fail(lx, "malformed array: expected ',' or ']' after %.*s, got %.*s%s",
                show_len(item->src_len), item->src, show_len(rest), lx->p, show_more(rest));
  }
  lx->p++;
  return 0;
}

static int parse_value(lexer *lx, hy_toml_value *v, bool in_array) {
  const char *start = lx->p;
  int rc;
  if (*start == '"' || *start == '\'')
    rc = parse_string(lx, v);
  else if (*start == '[')
    rc = parse_array(lx, v);
  else
    rc = parse_token(lx, v, in_array);
  v->src = start;
  v->src_len = (int)(lx->p - start);
  return rc;
}

int hy_toml_parse(const char *text, const char *expect, const char *item_expect, hy_toml_value *v,
                  char *why, size_t why_size) {
  lexer lx = {skip_ws(text), expect, item_expect, why, why_size};
  memset(v, 0, sizeof *v);
  int rc = parse_value(&lx, v, false);
  if (rc == 0) {
    lx.p = skip_ws(lx.p);
    int rest = (int)strlen(lx.p);
    if (rest)
      rc = fail(&lx, "unexpected %.*s%s after the value %.*s", show_len(rest), lx.p,
                show_more(rest), show_len(v->src_len), v->src);
  }
  if (rc) hy_toml_free(v);
  return rc;
}

void hy_toml_free(hy_toml_value *v) {
  free(v->str);
  for (int k = 0; k < v->n; k++) hy_toml_free(&v->items[k]);
  free(v->items);
  memset(v, 0, sizeof *v);
}

const char *hy_toml_kind_name(hy_toml_kind kind) {
  static const char *const names[] = {"a string", "an integer", "a float", "a boolean", "an array"};
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
