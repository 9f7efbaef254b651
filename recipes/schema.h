/* The recipe's schema: every key of every section, with its type, its place in hy_recipe, its
 * default, its range and what it means. The parser, the validator, the defaults, the TOML writer
 * and docs/recipes.md all walk this one table. */
#ifndef HYLA_RECIPE_SCHEMA_H
#define HYLA_RECIPE_SCHEMA_H

#include "recipes/recipe.h"
#include "recipes/toml_value.h"

#include <stddef.h>

enum { HY_RECIPE_KEYS_MAX = 128 }; /* room for the table; schema.c checks it fits */

typedef enum {
  HY_KEY_INT,    /* int64_t */
  HY_KEY_FLOAT,  /* double; integers are taken too */
  HY_KEY_BOOL,   /* bool */
  HY_KEY_STRING, /* char[size], not empty; one of choices when it has them (a layer's name) */
  HY_KEY_ENUM,   /* a C enum (int), the index of one of choices */
  HY_KEY_LIST,   /* char[max_items][size] and an int count: an array of non-empty strings */
  HY_KEY_PAIR,   /* double[2], each in the range */
  HY_KEY_LAYERS, /* model.layers: an array of mixer kinds or a pattern string */
} hy_key_type;

typedef struct {
  const char *section, *key;
  hy_key_type type;
  size_t offset;       /* of the value in hy_recipe */
  size_t size;         /* STRING, ENUM: the buffer; LIST: one item's buffer */
  size_t count_offset; /* LIST, LAYERS: the int that counts the items */
  int max_items;       /* LIST, LAYERS */
  /* INT, FLOAT, PAIR: the bounds that apply, each inclusive unless marked open. */
  bool has_min, has_max, min_open, max_open;
  double min, max;
  const char *const *choices; /* ENUM, and STRING where given: NULL-terminated */
  const char *def;            /* the default as TOML text; NULL when computed (def_doc says how) */
  const char *def_doc;
  const char *doc; /* one line for docs/recipes.md */
} hy_key;

extern const hy_key hy_keys[];
extern const int hy_n_keys;
extern const char *const hy_sections[]; /* in the order of the table; NULL-terminated */

const hy_key *hy_key_find(const char *section, const char *key); /* NULL when unknown */
bool hy_section_known(const char *section);

/* What the key takes, for messages and docs: "an integer >= 8", "one of "f32", "f64"". */
void hy_key_expect(const hy_key *k, char *buf, size_t size);
/* The type and the range as the docs' columns show them ("integer", ">= 8"). */
const char *hy_key_type_doc(const hy_key *k);
void hy_key_range_doc(const hy_key *k, char *buf, size_t size);

/* Check v against k and store it in r. On failure returns -1 with what was
 * found and what was expected in why; r is then unchanged. */
int hy_key_set(const hy_key *k, const hy_toml_value *v, hy_recipe *r, char *why, size_t size);
/* The key's value in r as TOML text after "key = ": one line, or for arrays that would make the
 * line long, their items on the lines below. Returns the length, like snprintf. */
size_t hy_key_format(const hy_key *k, const hy_recipe *r, char *buf, size_t size);

/* Levenshtein distance with transpositions, for "did you mean". */
int hy_edit_distance(const char *a, const char *b);
/* The closest of the candidates to s when close enough to be a likely typo, else NULL. */
const char *hy_closest(const char *s, const char *const *candidates, int n);

#endif
