/* TOML values as recipes write them: strings ("..." with escapes, or '...'), integers, floats,
 * booleans, and arrays of those. Parsing is strict TOML 1.0 for this subset; writing gives text
 * that TOML readers (ours and Python's tomllib) read back to the same value. */
#ifndef HYLA_TOML_VALUE_H
#define HYLA_TOML_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  HY_TOML_STRING,
  HY_TOML_INT,
  HY_TOML_FLOAT,
  HY_TOML_BOOL,
  HY_TOML_ARRAY
} hy_toml_kind;

typedef struct hy_toml_value {
  hy_toml_kind kind;
  const char *src; /* the value as written (points into the parsed text), for messages */
  int src_len;
  char *str; /* STRING: decoded, valid UTF-8, malloc'd */
  int64_t i; /* INT */
  double f;  /* FLOAT */
  bool b;    /* BOOL */
  int n;     /* ARRAY: n items of scalars, malloc'd */
  struct hy_toml_value *items;
} hy_toml_value;

/* Parse all of text as one value. `expect` and `item_expect` say what the caller wants at the top
 * and inside an array (e.g. "an integer >= 1", "a quoted string"); they complete the message when
 * the text holds no TOML value there ("expected a quoted string, got gla"). On failure returns -1
 * with the message in why (v then needs no freeing). */
int hy_toml_parse(const char *text, const char *expect, const char *item_expect, hy_toml_value *v,
                  char *why, size_t why_size);
void hy_toml_free(hy_toml_value *v);
/* "a string", "an integer", ... */
const char *hy_toml_kind_name(hy_toml_kind kind);

/* The shortest decimal that reads back to x, always in float form ("100.0", "0.001", "1e-08"). */
void hy_toml_format_float(double x, char *buf, size_t size);
/* s as a TOML string: "..." (escaped where needed) or '...' when that needs no escapes. Returns
 * the length of the whole quoted form, like snprintf, so callers can measure before writing. */
size_t hy_toml_quote(const char *s, size_t len, char *buf, size_t size);

#endif
