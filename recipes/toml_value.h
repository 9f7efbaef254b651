/* TOML values as hyla's recipe code sees them: what recipes/toml_read.cc hands over from the
 * parser (toml++), each with the text it was written as, and the writing of values as TOML text
 * that TOML readers (toml++ and Python's tomllib) read back to the same value. */
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
  HY_TOML_ARRAY,
  HY_TOML_TABLE,    /* no recipe key takes one: only its text is kept */
  HY_TOML_DATETIME, /* a date, a time or both: likewise */
} hy_toml_kind;

typedef struct hy_toml_value {
  hy_toml_kind kind;
  const char *src; /* the value as written (points into the parsed text), for messages */
  int src_len;
  char *str; /* STRING: decoded, valid UTF-8 without NUL, malloc'd */
  int64_t i; /* INT */
  double f;  /* FLOAT */
  bool b;    /* BOOL */
  int n;     /* ARRAY: n items, malloc'd */
  struct hy_toml_value *items;
} hy_toml_value;

void hy_toml_free(hy_toml_value *v);
/* "a string", "an integer", ... */
const char *hy_toml_kind_name(hy_toml_kind kind);

/* The shortest decimal that reads back to x, always in float form ("100.0", "0.001", "1e-08"). */
void hy_toml_format_float(double x, char *buf, size_t size);
/* s as a TOML string: "..." (escaped where needed) or '...' when that needs no escapes. Returns
 * the length of the whole quoted form, like snprintf, so callers can measure before writing. */
size_t hy_toml_quote(const char *s, size_t len, char *buf, size_t size);

#endif
