/* Reading TOML 1.0 through toml++ (recipes/toml_read.cc, hyla's one C++ file): a document becomes
 * a flat list of its tables and values, each named by its key path and placed by its line, so
 * that the recipe code stays C and every message can name the line and the key. */
#ifndef HYLA_TOML_READ_H
#define HYLA_TOML_READ_H

#include "recipes/toml_value.h"

typedef struct {
  char *key;           /* the key path, its parts joined with '.': "model", "layer.attn.naive" */
  int line, column;    /* of the key's last part (1-based; columns count characters) */
  hy_toml_value value; /* a table is kind HY_TOML_TABLE; its members are entries of their own */
  int n_tables;        /* a table: how many of its members are tables */
} hy_toml_entry;

typedef struct {
  int n;
  hy_toml_entry *entries; /* every table and every value outside arrays, in the text's order */
} hy_toml_doc;

typedef struct {
  int line, column; /* where the text stops being TOML; 0 when unknown */
  char msg[256];    /* what is wrong there, in the parser's words */
} hy_toml_error;

/* Parse text[0, len) as a TOML document. Values' src point into text, which must outlive doc. On
 * failure returns -1 with err filled (doc then needs no freeing). */
int hy_toml_read(const char *text, size_t len, hy_toml_doc *doc, hy_toml_error *err);
void hy_toml_doc_free(hy_toml_doc *doc);

/* Parse all of text (NUL-terminated) as one TOML value, as written after `key = `; src points
 * into text. On failure returns -1 with the parser's words in err (v then needs no freeing). */
int hy_toml_parse(const char *text, hy_toml_value *v, hy_toml_error *err);

#endif
