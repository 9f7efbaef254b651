#include "recipes/recipe.h"
#include "data/builtin.h"
#include "recipes/check.h"
#include "recipes/gpu_limits.h"
#include "recipes/schema.h"
#include "recipes/sizes.h"
#include "recipes/toml_read.h"
#include "util/checked.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Where a key's value came from: a line of the text, an override, or the default. */
typedef struct {
  int line;        /* > 0: this line of the text */
  const char *set; /* else this --set, or NULL for the default */
  int order;       /* 1, 2, ... in the order keys were set; 0 for the default */
} origin;

typedef struct {
  hy_recipe *r;
  hy_error *err;
  bool failed;
  const char *name; /* names the text in messages: a path, or what the caller gave */
  origin from[HY_RECIPE_KEYS_MAX];
  int n_set;
  hy_sweep_spec *sweep; /* the [sweep] section's axes, read so far */
} parser;

/* The section of a recipe that lists values to sweep (hyla sweep); not a part of hy_recipe. */
static const char SWEEP[] = "sweep";

static int key_index(const hy_key *k) { return (int)(k - hy_keys); }
static bool is_ws(char c) { return c == ' ' || c == '\t'; }

/* ---- errors ---- */

static int fail(parser *p, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(parser *p, const char *where, const char *fmt, ...) {
  char msg[HY_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!p->failed) hy_fail(p->err, "%s: %s", where, msg); /* the first error is the one to fix */
  p->failed = true;
  return -1;
}

/* "recipes/x.toml:7", or the text's name alone for line 0. */
static void where_line(const parser *p, int line, char *buf, size_t size) {
  if (line > 0)
    snprintf(buf, size, "%s:%d", p->name, line);
  else
    snprintf(buf, size, "%s", p->name);
}

/* "--set optim.lr=3e-4", shortened when long. */
static void where_set(const char *set, char *buf, size_t size) {
  snprintf(buf, size, "--set %.100s%s", set, strlen(set) > 100 ? "..." : "");
}

/* Where key k was last set; the text's name alone when it kept its default. */
static void where_key(const parser *p, const hy_key *k, char *buf, size_t size) {
  const origin *o = &p->from[key_index(k)];
  if (o->set)
    where_set(o->set, buf, size);
  else
    where_line(p, o->line, buf, size);
}

/* A list of names for messages: "'a', 'b'" or "[a], [b]". */
static void list_names(const char *const *names, int n, const char *open, const char *close,
                       char *buf, size_t size) {
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < n && used < size; i++)
    used +=
        (size_t)snprintf(buf + used, size - used, "%s%s%s%s", i ? ", " : "", open, names[i], close);
}

static int fail_unknown_section(parser *p, const char *where, const char *section) {
  const char *names[HY_RECIPE_KEYS_MAX];
  int n = 0;
  while (hy_sections[n]) names[n] = hy_sections[n], n++;
  names[n++] = SWEEP;
  const char *close = hy_closest(section, names, n);
  if (close) return fail(p, where, "unknown section [%s]; did you mean [%s]?", section, close);
  char all[320];
  list_names(names, n, "[", "]", all, sizeof all);
  return fail(p, where, "unknown section [%s]; the sections are %s", section, all);
}

/* The section's keys in table order; returns how many. */
static int section_keys(const char *section, const char **keys) {
  int n = 0;
  for (int i = 0; i < hy_n_keys; i++)
    if (!strcmp(hy_keys[i].section, section)) keys[n++] = hy_keys[i].key;
  return n;
}

/* The sections that have this key, for a key put in the wrong place: "[run] or [optim]", or with
 * `dotted`, "run.name=... or optim.name=...". Returns how many. */
static int homes(const char *key, bool dotted, char *buf, size_t size) {
  int n = 0;
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < hy_n_keys && used < size; i++) {
    if (strcmp(hy_keys[i].key, key)) continue;
    const char * or = n++ ? " or " : "";
    if (dotted)
      used += (size_t)snprintf(buf + used, size - used, "%s%s.%s=...", or, hy_keys[i].section, key);
    else
      used += (size_t)snprintf(buf + used, size - used, "%s[%s]", or, hy_keys[i].section);
  }
  return n;
}

static int fail_unknown_key(parser *p, const char *where, const char *section, const char *key) {
  const char *keys[HY_RECIPE_KEYS_MAX] = {0};
  int n = section_keys(section, keys);
  const char *close = hy_closest(key, keys, n);
  char home[256];
  if (close)
    return fail(p, where, "unknown key '%s' in [%s]; did you mean '%s'?", key, section, close);
  if (homes(key, false, home, sizeof home))
    return fail(p, where, "unknown key '%s' in [%s]; it belongs in %s", key, section, home);
  char all[512];
  list_names(keys, n, "'", "'", all, sizeof all);
  return fail(p, where, "unknown key '%s' in [%s]; the keys are %s", key, section, all);
}

/* The parser stopped: say where, and on which key when the line starts with one ("lr = ..."). A
 * bare word where the value starts is most often a string that lacks its quotes, and a stop at
 * the end of a line a missing closing quote or bracket. */
static int fail_syntax(parser *p, const char *text, const hy_toml_error *e) {
  char where[HY_ERROR_MAX / 2], key[64] = "", hint[96] = "";
  if (e->line > 0)
    snprintf(where, sizeof where, "%s:%d:%d", p->name, e->line, e->column);
  else
    where_line(p, 0, where, sizeof where);
  const char *line = text;
  for (int l = 1; l < e->line && line; l++)
    if ((line = strchr(line, '\n'))) line++;
  size_t len = line ? strcspn(line, "\n") : 0, k = 0, eq;
  while (k < len && is_ws(line[k])) k++;
  for (eq = k; eq < len && (isalnum((unsigned char)line[eq]) || strchr("_-.\"' \t", line[eq]));)
    eq++;
  /* The key part is ASCII, so up to the '=' a column is a byte. */
  if (eq < len && line[eq] == '=' && eq > k && e->column > (int)eq + 1) {
    size_t end = eq;
    while (end > k && is_ws(line[end - 1])) end--;
    snprintf(key, sizeof key, "%.*s: ", (int)(end - k > 40 ? 40 : end - k), line + k);
    size_t v = eq + 1;
    while (v < len && is_ws(line[v])) v++;
    size_t word = v;
    while (word < len && !is_ws(line[word]) && line[word] != '#') word++;
    if (v < len && isalpha((unsigned char)line[v]) && e->column == (int)v + 1 && word - v <= 40)
      snprintf(hint, sizeof hint, " (strings are quoted: \"%.*s\")", (int)(word - v), line + v);
  }
  int chars = 0; /* columns count characters, not bytes */
  for (size_t i = 0; i < len; i++) chars += (line[i] & 0xC0) != 0x80 && line[i] != '\r';
  if (!hint[0] && e->line > 0 && e->column > chars)
    snprintf(hint, sizeof hint, " (at the end of the line)");
  return fail(p, where, "%s%s%s", key, e->msg, hint);
}

/* ---- values ---- */

/* Check v as the value of k and store it; names `where` on failure. */
static int set_value(parser *p, const hy_key *k, const hy_toml_value *v, const char *where,
                     origin from) {
  char why[HY_ERROR_MAX / 2];
  if (hy_key_set(k, v, p->r, why, sizeof why))
    return fail(p, where, "[%s] %s: %s", k->section, k->key, why);
  from.order = ++p->n_set;
  p->from[key_index(k)] = from;
  return 0;
}

/* ---- the text: each of its tables and values, in the order of the text ---- */

/* Whether a section's name continues this one: "layer" (layer.gla), "data" (data.mqar). */
static bool section_prefix(const char *name) {
  size_t n = strlen(name);
  for (int i = 0; hy_sections[i]; i++)
    if (!strncmp(hy_sections[i], name, n) && hy_sections[i][n] == '.') return true;
  return false;
}

/* The key that a path names or runs through ("optim.betas", "optim.betas.a"), else NULL; *exact
 * says which. A section's name holds dots and a key's does not, so each dot is tried in turn. */
static const hy_key *key_on_path(const char *path, bool *exact) {
  for (const char *dot = strchr(path, '.'); dot; dot = strchr(dot + 1, '.')) {
    char section[HY_SWEEP_KEY], key[HY_SWEEP_KEY];
    const char *rest = dot + 1;
    size_t n = strcspn(rest, ".");
    if ((size_t)(dot - path) >= sizeof section || n >= sizeof key) return NULL;
    snprintf(section, sizeof section, "%.*s", (int)(dot - path), path);
    snprintf(key, sizeof key, "%.*s", (int)n, rest);
    const hy_key *k = hy_key_find(section, key);
    if (k) {
      *exact = !rest[n];
      return k;
    }
  }
  return NULL;
}

static int sweep_entry(parser *p, const hy_toml_entry *e, const char *where);

static int read_entry(parser *p, const hy_toml_entry *e) {
  char where[HY_ERROR_MAX / 2];
  where_line(p, e->line, where, sizeof where);
  const char *path = e->key;
  if (!strcmp(path, SWEEP) || !strncmp(path, "sweep.", 6)) return sweep_entry(p, e, where);
  bool exact = false;
  const hy_key *k = key_on_path(path, &exact);
  if (k && !exact) /* the members of a table given to a key: the table itself failed first */
    return fail(p, where, "[%s] %s: a key holds a value, not a table", k->section, k->key);
  if (k) {
    const origin *before = &p->from[key_index(k)];
    if (before->line) /* "optim.lr" at the top and lr in [optim]: two TOML keys, one recipe key */
      return fail(p, where, "duplicate key '%s' in [%s] (first set at line %d)", k->key, k->section,
                  before->line);
    return set_value(p, k, &e->value, where, (origin){.line = e->line});
  }
  bool section = hy_section_known(path) || section_prefix(path);
  if (e->value.kind == HY_TOML_TABLE)
    /* A table with tables in it is checked through them, so an error names the whole path. */
    return section || e->n_tables ? 0 : fail_unknown_section(p, where, path);
  if (section)
    return fail(p, where, "[%s] is a section: expected a table of its keys, got %.*s", path,
                e->value.src_len > 60 ? 60 : e->value.src_len, e->value.src);
  const char *dot = strrchr(path, '.');
  if (!dot) {
    char home[256];
    if (homes(path, false, home, sizeof home))
      return fail(p, where, "key '%s' is outside any section; did you mean to put it under %s?",
                  path, home);
    return fail(p, where, "key '%s' is outside any section; keys go under a [section]", path);
  }
  char name[HY_SWEEP_KEY];
  snprintf(name, sizeof name, "%.*s", (int)(dot - path), path);
  if (hy_section_known(name)) return fail_unknown_key(p, where, name, dot + 1);
  return fail_unknown_section(p, where, name);
}

static int read_text(parser *p, const char *text) {
  hy_toml_doc doc;
  hy_toml_error e;
  if (hy_toml_read(text, strlen(text), &doc, &e)) return fail_syntax(p, text, &e);
  for (int i = 0; i < doc.n && !p->failed; i++) read_entry(p, &doc.entries[i]);
  hy_toml_doc_free(&doc);
  return p->failed ? -1 : 0;
}

/* ---- overrides: "section.key=value" ---- */

/* A --set value as TOML text, malloc'd: as written; or, for a key that takes a string, bare text
 * made that string (run.out=/tmp/x), and for an array of strings, bare comma-separated items
 * made that array (optim.no_decay=norm,bias). Quotes and '[' keep TOML's meaning. */
static char *override_toml(const hy_key *k, const char *text, size_t len) {
  bool array = k->type == HY_KEY_LIST || k->type == HY_KEY_LAYERS;
  bool strings = array || k->type == HY_KEY_STRING || k->type == HY_KEY_ENUM;
  bool bare = len && *text != '"' && *text != '\'' && !(array && *text == '[');
  if (!strings || !bare) return strndup(text, len);
  bool list = k->type == HY_KEY_LIST;
  size_t size = 10 * len + 8; /* a byte quotes to at most 6 ("\u001F"); an item adds 4 more */
  char *toml = malloc(size);
  if (!toml) return NULL;
  size_t n = 0;
  if (list) toml[n++] = '[';
  for (const char *item = text, *end = text + len; item <= end;) {
    const char *stop = list ? memchr(item, ',', (size_t)(end - item)) : NULL;
    if (!stop) stop = end;
    const char *a = item, *b = stop;
    while (list && a < b && is_ws(*a)) a++;
    while (list && b > a && is_ws(b[-1])) b--;
    if (n > 1) n += (size_t)snprintf(toml + n, size - n, ", ");
    n += hy_toml_quote(a, (size_t)(b - a), toml + n, size - n);
    item = stop + 1;
  }
  snprintf(toml + n, size - n, "%s", list ? "]" : "");
  return toml;
}

static int apply_override(parser *p, const char *set) {
  char where[160];
  where_set(set, where, sizeof where);
  const char *eq = strchr(set, '=');
  if (!eq) return fail(p, where, "expected section.key=value (e.g. optim.lr=3e-4)");
  const char *a = set, *b = eq;
  while (a < b && is_ws(*a)) a++;
  while (b > a && is_ws(b[-1])) b--;
  char name[128];
  snprintf(name, sizeof name, "%.*s", (int)(b - a), a);
  char *dot = strrchr(name, '.');
  if (!dot) {
    char home[256];
    if (homes(name, true, home, sizeof home))
      return fail(p, where, "expected section.key=value; did you mean %s?", home);
    return fail(p, where, "expected section.key=value (e.g. optim.lr=3e-4)");
  }
  *dot = 0;
  if (!hy_section_known(name)) return fail_unknown_section(p, where, name);
  const hy_key *k = hy_key_find(name, dot + 1);
  if (!k) return fail_unknown_key(p, where, name, dot + 1);
  const char *text = eq + 1, *end = text + strlen(text);
  while (is_ws(*text)) text++;
  while (end > text && is_ws(end[-1])) end--;
  char *toml = override_toml(k, text, (size_t)(end - text));
  if (!toml) return fail(p, where, "out of memory");
  hy_toml_value v;
  hy_toml_error e;
  int rc;
  if (hy_toml_parse(toml, &v, &e) == 0) {
    rc = set_value(p, k, &v, where, (origin){.set = set});
    hy_toml_free(&v);
  } else {
    char expect[256];
    hy_key_expect(k, expect, sizeof expect);
    int len = (int)(end - text);
    rc =
        fail(p, where, "[%s] %s: expected %s, got %.*s%s (%s)", k->section, k->key, expect,
             len ? (len > 60 ? 60 : len) : 7, len ? text : "nothing", len > 60 ? "..." : "", e.msg);
  }
  free(toml);
  return rc;
}

/* ---- [sweep]: each key a recipe key, each value an array of that key's values ---- */

/* The recipe key a [sweep] key names: "seeds" is run.seed; else "section.key" as for --set. */
static const hy_key *sweep_target(parser *p, const char *name, const char *where) {
  if (!strcmp(name, "seeds")) return hy_key_find("run", "seed");
  char section[HY_SWEEP_KEY];
  snprintf(section, sizeof section, "%s", name);
  char *dot = strrchr(section, '.');
  if (!dot) {
    char home[256];
    if (homes(name, true, home, sizeof home))
      return fail(p, where,
                  "[sweep] '%s': a sweep key is \"section.key\" or seeds; did you mean %s?", name,
                  home),
             NULL;
    return fail(p, where,
                "[sweep] '%s': a sweep key is \"section.key\" (e.g. \"optim.lr\") or seeds", name),
           NULL;
  }
  *dot = 0;
  if (!hy_section_known(section)) return fail_unknown_section(p, where, section), NULL;
  const hy_key *k = hy_key_find(section, dot + 1);
  if (!k) return fail_unknown_key(p, where, section, dot + 1), NULL;
  if (!strcmp(name, "run.seed"))
    return fail(p, where, "[sweep] sweep run.seed with seeds = [...]"), NULL;
  if (!strcmp(section, "run"))
    return fail(p, where,
                "[sweep] %s cannot be swept: the sweep names each run and puts it under run.out",
                name),
           NULL;
  return k;
}

/* One axis: check every value of the array against the key, as --set would, and keep their text
 * as written: each becomes a "section.key=value" override of one run. */
static int sweep_axis(parser *p, const char *name, int line, const hy_toml_value *v,
                      const char *where) {
  hy_sweep_spec *s = p->sweep;
  const hy_key *k = sweep_target(p, name, where);
  if (!k) return -1;
  if (strlen(name) >= HY_SWEEP_KEY) return fail(p, where, "[sweep] %.60s...: too long", name);
  for (int a = 0; a < s->n_axes; a++)
    if (!strcmp(s->axes[a].key, name))
      return fail(p, where, "[sweep] %s is swept twice (first at line %d)", name, s->axes[a].line);
  if (s->n_axes == HY_SWEEP_AXES_MAX)
    return fail(p, where, "[sweep] more than %d keys", HY_SWEEP_AXES_MAX);
  if (v->kind != HY_TOML_ARRAY || v->n == 0)
    return fail(p, where, "[sweep] %s: expected an array of values, one per run, got %.*s", name,
                v->src_len > 60 ? 60 : v->src_len, v->src);
  hy_recipe *scratch = malloc(sizeof *scratch); /* the values are checked, not kept */
  if (!scratch) return fail(p, where, "out of memory");
  char why[HY_ERROR_MAX / 2];
  int rc = 0;
  for (int i = 0; i < v->n && !rc; i++) {
    const hy_toml_value *x = &v->items[i];
    *scratch = *p->r;
    if (hy_key_set(k, x, scratch, why, sizeof why))
      rc =
          fail(p, where, "[sweep] %s, value %d: [%s] %s: %s", name, i + 1, k->section, k->key, why);
    for (int j = 0; j < i && !rc; j++)
      if (v->items[j].src_len == x->src_len && !memcmp(v->items[j].src, x->src, (size_t)x->src_len))
        rc = fail(p, where, "[sweep] %s lists %.*s twice", name, x->src_len, x->src);
  }
  free(scratch);
  if (rc) return rc;
  hy_sweep_axis *axis = &s->axes[s->n_axes];
  axis->values = calloc((size_t)v->n, sizeof *axis->values);
  if (!axis->values) return fail(p, where, "out of memory");
  s->n_axes++;
  snprintf(axis->key, sizeof axis->key, "%s", name);
  axis->line = line;
  for (int i = 0; i < v->n; i++, axis->n++)
    if (!(axis->values[i] = strndup(v->items[i].src, (size_t)v->items[i].src_len)))
      return fail(p, where, "out of memory");
  return 0;
}

/* [sweep] itself, and what lies under it: its keys name recipe keys, quoted ("optim.lr") or
 * dotted (optim.lr) alike. */
static int sweep_entry(parser *p, const hy_toml_entry *e, const char *where) {
  if (!strcmp(e->key, SWEEP)) {
    if (e->value.kind != HY_TOML_TABLE)
      return fail(p, where, "[sweep] is a section: expected a table of its keys, got %.*s",
                  e->value.src_len > 60 ? 60 : e->value.src_len, e->value.src);
    p->sweep->line = e->line;
    return 0;
  }
  if (e->value.kind == HY_TOML_TABLE) return 0; /* [sweep.optim], or a dotted key's tables */
  return sweep_axis(p, e->key + strlen(SWEEP) + 1, e->line, &e->value, where);
}

void hy_sweep_spec_free(hy_sweep_spec *s) {
  for (int a = 0; a < s->n_axes; a++) {
    for (int i = 0; i < s->axes[a].n; i++) free(s->axes[a].values[i]);
    free(s->axes[a].values);
  }
  memset(s, 0, sizeof *s);
}

/* ---- defaults ---- */

/* Every key's default, parsed once: each recipe starts from a copy. */
static hy_recipe default_recipe;

static void parse_defaults(void) {
  for (int i = 0; i < hy_n_keys; i++) {
    const hy_key *k = &hy_keys[i];
    if (!k->def) continue;
    hy_toml_value v;
    hy_toml_error e;
    char why[HY_ERROR_MAX / 2] = "";
    if (hy_toml_parse(k->def, &v, &e) || hy_key_set(k, &v, &default_recipe, why, sizeof why)) {
      /* A default that fails its own checks is a bug in schema.c, not a user's mistake. */
      fprintf(stderr, "hyla: recipes/schema.c: [%s] %s: %s\n", k->section, k->key,
              why[0] ? why : e.msg);
      abort();
    }
    hy_toml_free(&v);
  }
}

static void apply_defaults(hy_recipe *r) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, parse_defaults);
  memcpy(r, &default_recipe, sizeof *r); /* padding too: equal recipes compare equal */
}

/* run.name from the file's name without .toml, then run.out = "runs/<name>", unless set. */
static int computed_defaults(parser *p, bool from_file) {
  const hy_key *name = hy_key_find("run", "name"), *out = hy_key_find("run", "out");
  size_t n = strlen(p->name);
  bool toml = n >= 5 && !strcmp(p->name + n - 5, ".toml");
  char text[HY_RECIPE_STR + 16], why[HY_ERROR_MAX / 2];
  if (!p->from[key_index(name)].order) {
    const char *base = strrchr(p->name, '/');
    base = base ? base + 1 : p->name;
    int len = (int)strlen(base) - (toml ? 5 : 0);
    if (!from_file && !toml) base = "recipe", len = 6;
    snprintf(text, sizeof text, "%.*s", len, base);
    hy_toml_value v = {.kind = HY_TOML_STRING, .str = text, .src = text, .src_len = len};
    if (hy_key_set(name, &v, p->r, why, sizeof why))
      return fail(p, p->name, "[run] name: the default, the file's name \"%s\": %s; set [run] name",
                  text, why);
  }
  if (!p->from[key_index(out)].order) {
    snprintf(text, sizeof text, "runs/%s", p->r->run.name);
    hy_toml_value v = {
        .kind = HY_TOML_STRING, .str = text, .src = text, .src_len = (int)strlen(text)};
    if (hy_key_set(out, &v, p->r, why, sizeof why))
      return fail(p, p->name, "[run] out: the default \"%s\": %s; set [run] out", text, why);
  }
  return 0;
}

/* ---- checks across keys ---- */

static double mlp_hidden(const hy_recipe *r) {
  double units = r->model.mlp_ratio * (double)r->model.d_model / (double)r->model.mlp_multiple;
  /* A hair of slack: 2.2 * 1600 / 64 is 55.00000000000001 in doubles, and a rounding error must
   * not add a whole multiple; but a width above 0 is at least one multiple. */
  return fmax(ceil(units - 1e-9), 1.0) * (double)r->model.mlp_multiple;
}

static int heads_divide(const hy_recipe *r, char *why, size_t size) {
  if (r->model.d_model % r->model.n_heads == 0) return 0;
  return snprintf(why, size, "[model] n_heads = %lld does not divide d_model = %lld",
                  (long long)r->model.n_heads, (long long)r->model.d_model),
         -1;
}

static int head_size_even(const hy_recipe *r, char *why, size_t size) {
  int64_t head = r->model.d_model / r->model.n_heads;
  if (head % 2 == 0) return 0;
  return snprintf(why, size,
                  "[model] the head size d_model / n_heads = %lld / %lld = %lld is odd; RoPE "
                  "rotates pairs of features, so it must be even",
                  (long long)r->model.d_model, (long long)r->model.n_heads, (long long)head),
         -1;
}

static int mlp_fits(const hy_recipe *r, char *why, size_t size) {
  if (mlp_hidden(r) <= INT32_MAX) return 0;
  return snprintf(why, size,
                  "[model] the MLP width, mlp_ratio * d_model = %g rounded up to a multiple of "
                  "mlp_multiple = %lld, is too large (at most %d)",
                  r->model.mlp_ratio * (double)r->model.d_model, (long long)r->model.mlp_multiple,
                  INT32_MAX),
         -1;
}

static bool is_mqar(const hy_recipe *r) { return !strcmp(r->data.dataset, "mqar"); }

static int mqar_fits_seq(const hy_recipe *r, char *why, size_t size) {
  if (!is_mqar(r) || (r->data.mqar.pairs <= r->train.seq_len / 4 && r->train.seq_len % 2 == 0))
    return 0;
  return snprintf(why, size,
                  "[data.mqar] pairs = %lld needs 4 * pairs <= [train] seq_len = %lld, even "
                  "(the context and a query slot for each key)",
                  (long long)r->data.mqar.pairs, (long long)r->train.seq_len),
         -1;
}

static int mqar_fits_vocab(const hy_recipe *r, char *why, size_t size) {
  if (!is_mqar(r) || r->data.mqar.pairs <= r->model.vocab / 2 - 1) return 0;
  return snprintf(why, size,
                  "[data.mqar] pairs = %lld must be at most [model] vocab / 2 - 1 = %lld (keys "
                  "and values come from separate halves of the vocabulary)",
                  (long long)r->data.mqar.pairs, (long long)(r->model.vocab / 2 - 1)),
         -1;
}

int hy_recipe_count_layers(const hy_recipe *r, const char *kind) {
  int n = 0;
  for (int i = 0; i < r->model.n_layers; i++) n += !strcmp(r->model.layers[i], kind);
  return n;
}

static bool uses(const hy_recipe *r, const char *kind) { return hy_recipe_count_layers(r, kind); }

/* A kind's heads split d_model (lightning, linear). */
static int heads_split(const hy_recipe *r, const char *kind, int64_t heads, char *why,
                       size_t size) {
  if (!uses(r, kind)) return 0;
  int64_t h = heads ? heads : r->model.n_heads;
  if (r->model.d_model % h == 0) return 0;
  return snprintf(why, size, "[layer.%s] %lld heads do not divide d_model = %lld", kind,
                  (long long)h, (long long)r->model.d_model),
         -1;
}

static int lightning_heads(const hy_recipe *r, char *why, size_t size) {
  return heads_split(r, "lightning", r->layer_lightning.heads, why, size);
}

static int linear_heads(const hy_recipe *r, char *why, size_t size) {
  return heads_split(r, "linear", r->layer_linear.heads, why, size);
}

static int gla_heads_divide(const hy_recipe *r, char *why, size_t size) {
  if (!uses(r, "gla")) return 0;
  const hy_gla_config *g = &r->layer_gla;
  int64_t heads, key, value;
  if (!hy_recipe_gla_widths(r, &heads, &key, &value))
    return snprintf(why, size,
                    "[layer.gla] the key width expand_k * d_model = %g * %lld or the value width "
                    "expand_v * d_model = %g * %lld is too large",
                    g->expand_k, (long long)r->model.d_model, g->expand_v,
                    (long long)r->model.d_model),
           -1;
  if (key >= heads && value >= heads && key % heads == 0 && value % heads == 0) return 0;
  return snprintf(why, size,
                  "[layer.gla] the key width expand_k * d_model = %lld and the value width "
                  "expand_v * d_model = %lld must be multiples of the %lld heads",
                  (long long)key, (long long)value, (long long)heads),
         -1;
}

/* RAT's heads (its own count, or the model's) split d_model into an even head size (its RoPE
 * turns pairs of features), and its query/key groups split the heads: checked here so that a
 * recipe gets an error rather than the layer's abort. */
static int rat_heads(const hy_recipe *r, char *why, size_t size) {
  if (!uses(r, "rat")) return 0;
  int64_t d = r->model.d_model, h = r->layer_rat.heads ? r->layer_rat.heads : r->model.n_heads;
  if (d % h)
    return snprintf(why, size, "[layer.rat] %lld heads do not divide d_model = %lld", (long long)h,
                    (long long)d),
           -1;
  if ((d / h) % 2 == 0) return 0;
  return snprintf(why, size,
                  "[layer.rat] the head size d_model / heads = %lld / %lld = %lld is odd; RoPE "
                  "rotates pairs of features, so it must be even",
                  (long long)d, (long long)h, (long long)(d / h)),
         -1;
}

static int rat_groups(const hy_recipe *r, char *why, size_t size) {
  if (!uses(r, "rat")) return 0;
  int64_t h = r->layer_rat.heads ? r->layer_rat.heads : r->model.n_heads;
  if (h % r->layer_rat.n_groups == 0) return 0;
  return snprintf(why, size, "[layer.rat] n_groups = %lld does not divide the %lld heads",
                  (long long)r->layer_rat.n_groups, (long long)h),
         -1;
}

/* Each sequence-parallel rank holds seq_len / sp tokens of every sequence. */
static int sp_splits(const hy_recipe *r, char *why, size_t size) {
  if (r->train.seq_len % r->dist.sp == 0) return 0;
  return snprintf(why, size,
                  "[train] seq_len = %lld does not split evenly over [dist] sp = %lld ranks",
                  (long long)r->train.seq_len, (long long)r->dist.sp),
         -1;
}

/* A sequence-parallel form that exchanges whole units (RAT's chunks, layers/rat.c; SLA's blocks,
 * layers/sla.h; the Titans memory's chunks, layers/titans.c; titans_mac's segments,
 * layers/titans_mac.c) needs each rank's slice of seq_len / sp tokens to be whole units (a
 * seq_len that does not split over sp at all is sp_splits' error). */
static int whole_units(const hy_recipe *r, bool used, const char *kind, const char *key,
                       int64_t unit, const char *units, char *why, size_t size) {
  int64_t T = r->train.seq_len, sp = r->dist.sp;
  if (!used || sp < 2 || T % sp || (T / sp) % unit == 0) return 0;
  return snprintf(why, size,
                  "[layer.%s] %s = %lld must divide each sequence-parallel rank's slice, "
                  "[train] seq_len / [dist] sp = %lld / %lld = %lld tokens: the ranks exchange "
                  "whole %s",
                  kind, key, (long long)unit, (long long)T, (long long)sp, (long long)(T / sp),
                  units),
         -1;
}

static int rat_slices(const hy_recipe *r, char *why, size_t size) {
  return whole_units(r, uses(r, "rat"), "rat", "chunk", r->layer_rat.chunk, "chunks", why, size);
}

static bool uses_titans(const hy_recipe *r) {
  return uses(r, "titans_mal") || uses(r, "titans_mag") || uses(r, "titans_mac");
}

static int titans_heads(const hy_recipe *r, char *why, size_t size) {
  const hy_titans_config *t = &r->layer_titans;
  if (!uses_titans(r) || t->head_dim || r->model.d_model % t->heads == 0) return 0;
  return snprintf(why, size,
                  "[layer.titans] heads = %lld does not divide d_model = %lld (head_dim = 0 makes "
                  "the memory's heads d_model / heads wide); set head_dim",
                  (long long)t->heads, (long long)r->model.d_model),
         -1;
}

static int titans_hidden(const hy_recipe *r, char *why, size_t size) {
  const hy_titans_config *t = &r->layer_titans;
  int64_t heads, dim, hidden;
  if (!uses_titans(r) || t->depth != 2) return 0;
  bool fits = hy_recipe_titans_widths(r, &heads, &dim, &hidden);
  if (fits && hidden >= 1) return 0;
  return snprintf(why, size,
                  "[layer.titans] the memory's hidden width expansion * head width = %g * %lld is "
                  "%s",
                  t->expansion, (long long)dim, fits ? "below 1" : "too large"),
         -1;
}

/* titans_mac hands the memory from segment to segment after a complete chunk
 * (layers/titans_mac.c). */
static int titans_segment(const hy_recipe *r, char *why, size_t size) {
  const hy_titans_config *t = &r->layer_titans;
  if (!uses(r, "titans_mac") || t->segment % t->chunk == 0) return 0;
  return snprintf(why, size,
                  "[layer.titans] segment = %lld must be a multiple of [layer.titans] chunk = "
                  "%lld: titans_mac hands the memory from segment to segment after a complete "
                  "chunk",
                  (long long)t->segment, (long long)t->chunk),
         -1;
}

/* Under sequence parallelism titans_mac's memory crosses ranks at segment boundaries. */
static int titans_segment_slices(const hy_recipe *r, char *why, size_t size) {
  const hy_titans_config *t = &r->layer_titans;
  return whole_units(r, uses(r, "titans_mac"), "titans", "segment", t->segment, "segments", why,
                     size);
}

/* Sequence parallelism hands the Titans memory from rank to rank between chunks (layers/titans.c),
 * which the token-by-token reference has no form for. */
static int titans_slices(const hy_recipe *r, char *why, size_t size) {
  const hy_titans_config *t = &r->layer_titans;
  if (uses_titans(r) && r->dist.sp > 1 && t->reference)
    return snprintf(why, size,
                    "[layer.titans] reference = true has no sequence-parallel form: with [dist] "
                    "sp = %lld it must be false",
                    (long long)r->dist.sp),
           -1;
  return whole_units(r, uses_titans(r), "titans", "chunk", t->chunk, "chunks", why, size);
}

static int softplus_length(const hy_recipe *r, char *why, size_t size) {
  const hy_softplus_config *s = &r->layer_softplus;
  int64_t len = s->train_len ? s->train_len : r->train.seq_len;
  if (!uses(r, "softplus") || !s->length_scale || len >= 2) return 0;
  return snprintf(why, size,
                  "[layer.softplus] length_scale = true scales by log(t + 1) / log(train_len), "
                  "which needs a training length of at least 2, got %lld (%s); set train_len or "
                  "length_scale = false",
                  (long long)len, s->train_len ? "train_len" : "train_len = 0: [train] seq_len"),
         -1;
}

static int sla_slices(const hy_recipe *r, char *why, size_t size) {
  return whole_units(r, uses(r, "sla"), "sla", "block", r->layer_sla.block, "blocks", why, size);
}

static int vocab_fits(const hy_recipe *r, char *why, size_t size) {
  if (r->model.vocab <= INT32_MAX) return 0;
  return snprintf(why, size, "[model] vocab = %lld: tokens are 32-bit, so at most %d",
                  (long long)r->model.vocab, INT32_MAX),
         -1;
}

static int ranks_fit(const hy_recipe *r, char *why, size_t size) {
  int64_t ranks;
  if (hy_checked_mul(r->dist.dp, r->dist.sp, &ranks) && ranks <= INT32_MAX) return 0;
  return snprintf(why, size, "[dist] dp x sp = %lld x %lld ranks: at most %d",
                  (long long)r->dist.dp, (long long)r->dist.sp, INT32_MAX),
         -1;
}

static const hy_cross_check CHECKS[] = {
    {"`model.n_heads` divides `model.d_model`.",
     {{"model", "d_model"}, {"model", "n_heads"}},
     heads_divide},
    {"The head size `d_model / n_heads` is even (RoPE rotates pairs of features).",
     {{"model", "d_model"}, {"model", "n_heads"}},
     head_size_even},
    {"The MLP width, `mlp_ratio * d_model` rounded up to `mlp_multiple`, is below 2^31.",
     {{"model", "mlp_ratio"}, {"model", "d_model"}, {"model", "mlp_multiple"}},
     mlp_fits},
    {"With `data.dataset = \"mqar\"`: `4 * data.mqar.pairs <= train.seq_len`, which is even.",
     {{"data.mqar", "pairs"}, {"train", "seq_len"}, {"data", "dataset"}},
     mqar_fits_seq},
    {"With `data.dataset = \"mqar\"`: `data.mqar.pairs <= model.vocab / 2 - 1`.",
     {{"data.mqar", "pairs"}, {"model", "vocab"}, {"data", "dataset"}},
     mqar_fits_vocab},
    {"With a `gla` layer: its key and value widths split evenly into its heads.",
     {{"layer.gla", "expand_k"},
      {"layer.gla", "expand_v"},
      {"layer.gla", "heads"},
      {"model", "d_model"}},
     gla_heads_divide},
    {"With a `lightning` layer: its heads divide `model.d_model`.",
     {{"layer.lightning", "heads"}, {"model", "d_model"}, {"model", "n_heads"}},
     lightning_heads},
    {"With a `linear` layer: its heads divide `model.d_model`.",
     {{"layer.linear", "heads"}, {"model", "d_model"}, {"model", "n_heads"}},
     linear_heads},
    {"With a `rat` layer: its heads split `model.d_model` into an even head size.",
     {{"layer.rat", "heads"}, {"model", "d_model"}, {"model", "n_heads"}},
     rat_heads},
    {"With a `rat` layer: `layer.rat.n_groups` divides its heads.",
     {{"layer.rat", "n_groups"}, {"layer.rat", "heads"}, {"model", "n_heads"}},
     rat_groups},
    {"With a `rat` layer and `dist.sp > 1`: each rank's slice of the sequence, "
     "`train.seq_len / dist.sp` tokens, is a multiple of `layer.rat.chunk`.",
     {{"layer.rat", "chunk"}, {"train", "seq_len"}, {"dist", "sp"}},
     rat_slices},
    {"With a `titans_mal`, `titans_mag` or `titans_mac` layer and `layer.titans.head_dim = 0`: "
     "`layer.titans.heads` divides `model.d_model`.",
     {{"layer.titans", "heads"}, {"layer.titans", "head_dim"}, {"model", "d_model"}},
     titans_heads},
    {"With a `titans_mal`, `titans_mag` or `titans_mac` layer of `depth = 2`: the memory's "
     "hidden width, `expansion` times the head width, is at least 1.",
     {{"layer.titans", "expansion"},
      {"layer.titans", "depth"},
      {"layer.titans", "head_dim"},
      {"layer.titans", "heads"}},
     titans_hidden},
    {"With a `titans_mac` layer: `layer.titans.segment` is a multiple of `layer.titans.chunk`.",
     {{"layer.titans", "segment"}, {"layer.titans", "chunk"}, {"model", "layers"}},
     titans_segment},
    {"With a `titans_mac` layer and `dist.sp > 1`: each rank's slice, `train.seq_len / dist.sp`, "
     "is a whole number of `layer.titans.segment` (the memory crosses ranks between segments).",
     {{"layer.titans", "segment"}, {"train", "seq_len"}, {"dist", "sp"}, {"model", "layers"}},
     titans_segment_slices},
    {"With a `titans_mal`, `titans_mag` or `titans_mac` layer and `dist.sp > 1`: each rank's "
     "slice, `train.seq_len / dist.sp`, is a whole number of `layer.titans.chunk`, and "
     "`layer.titans.reference = false`.",
     {{"layer.titans", "chunk"},
      {"layer.titans", "reference"},
      {"train", "seq_len"},
      {"dist", "sp"}},
     titans_slices},
    {"With a `softplus` layer and `length_scale = true`: its training length (`train_len`, or "
     "`train.seq_len`) is at least 2.",
     {{"layer.softplus", "length_scale"}, {"layer.softplus", "train_len"}, {"train", "seq_len"}},
     softplus_length},
    {"With an `sla` layer and `dist.sp > 1`: `train.seq_len / dist.sp` is a multiple of "
     "`layer.sla.block` (each sequence-parallel rank holds whole blocks).",
     {{"layer.sla", "block"}, {"train", "seq_len"}, {"dist", "sp"}},
     sla_slices},
    {"`model.vocab` is at most 2^31 - 1 (tokens are 32-bit).", {{"model", "vocab"}}, vocab_fits},
    {"`dist.dp * dist.sp` is at most 2^31 - 1 ranks.", {{"dist", "dp"}, {"dist", "sp"}}, ranks_fit},
    {"`dist.sp` divides `train.seq_len` (each rank holds `seq_len / sp` tokens of a sequence).",
     {{"train", "seq_len"}, {"dist", "sp"}},
     sp_splits},
};

/* The later set of two keys (either may be NULL). */
static const hy_key *later(const parser *p, const hy_key *a, const hy_key *b) {
  if (!a || !b) return a ? a : b;
  return p->from[key_index(b)].order > p->from[key_index(a)].order ? b : a;
}

/* The recipe's checks across keys, then the GPU's (recipes/gpu_limits.h), in one order. */
static const hy_cross_check *check_at(size_t i) {
  size_t n = sizeof CHECKS / sizeof *CHECKS;
  return i < n ? &CHECKS[i] : i < n + hy_n_gpu_checks ? &hy_gpu_checks[i - n] : NULL;
}

/* The first check the recipe fails, with why; NULL when it passes them all. */
static const hy_cross_check *failed_check(const hy_recipe *r, char *why, size_t size) {
  const hy_cross_check *c;
  for (size_t i = 0; (c = check_at(i)); i++)
    if (c->check(r, why, size)) return c;
  return NULL;
}

/* A failed check names where the last of its keys was set: that is the change that broke it. */
static int cross_checks(parser *p) {
  char why[HY_ERROR_MAX / 2], where[HY_ERROR_MAX / 2];
  const hy_cross_check *c = failed_check(p->r, why, sizeof why);
  if (!c) return 0;
  const hy_key *latest = NULL;
  for (int i = 0; i < HY_CHECK_KEYS && c->keys[i][0]; i++)
    latest = later(p, latest, hy_key_find(c->keys[i][0], c->keys[i][1]));
  where_key(p, latest, where, sizeof where);
  return fail(p, where, "%s", why);
}

/* The sizes the recipe makes fit in 64 bits, and its parameters in this machine's memory; a
 * failure names where the last of the keys that make the size was set. */
static int sizes_fit(parser *p) {
  hy_recipe_sizes s;
  hy_size_term fault;
  if (!hy_recipe_sizes_of(p->r, &s, &fault) &&
      !hy_recipe_sizes_fit(&s, false, hy_memory_limit(), &fault))
    return 0;
  const hy_key *latest = NULL;
  char keys[sizeof fault.keys], where[HY_ERROR_MAX / 2];
  snprintf(keys, sizeof keys, "%s", fault.keys);
  char *save = NULL;
  for (char *k = strtok_r(keys, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
    char *dot = strrchr(k, '.');
    if (!dot) continue;
    *dot = 0;
    latest = later(p, latest, hy_key_find(k, dot + 1));
  }
  if (latest)
    where_key(p, latest, where, sizeof where);
  else
    where_line(p, 0, where, sizeof where);
  return fail(p, where, "%s", fault.what);
}

/* ---- the dataset's vocabulary ---- */

/* [model] vocab follows the dataset's vocabulary when the recipe leaves it out; set, it must fit
 * it (hy_batches_check_vocab's rule: equal to a stored vocabulary, else at least the dataset's).
 * A dataset that cannot be read is left to the run, which says why. */
static int dataset_vocab(parser *p) {
  hy_recipe *r = p->r;
  const hy_key *key = hy_key_find("model", "vocab");
  int64_t have;
  bool table;
  if (!strcmp(r->data.dataset, "mqar") || hy_dataset_peek(r->data.dataset, &have, &table)) return 0;
  if (!p->from[key_index(key)].order) {
    r->model.vocab = have;
    return 0;
  }
  if (table ? r->model.vocab == have : r->model.vocab >= have) return 0;
  char where[HY_ERROR_MAX / 2];
  where_key(p, key, where, sizeof where);
  return fail(p, where,
              "[model] vocab = %lld, but the dataset %s has a vocabulary of %lld tokens%s; "
              "leave vocab out to follow the dataset",
              (long long)r->model.vocab, r->data.dataset, (long long)have,
              table ? " (stored with it): they must be equal" : ": vocab must be at least that");
}

/* ---- entry points ---- */

static int parse(const char *text, const char *name, bool from_file, int n_overrides,
                 const char *const *overrides, hy_recipe *r, hy_sweep_spec *sweep, hy_error *err) {
  hy_sweep_spec ignored; /* [sweep] is checked even when the caller does not want it */
  parser p = {
      .r = r, .err = err, .name = name ? name : "recipe", .sweep = sweep ? sweep : &ignored};
  memset(p.sweep, 0, sizeof *p.sweep);
  apply_defaults(r);
  read_text(&p, text ? text : "");
  for (int i = 0; i < n_overrides && !p.failed; i++) apply_override(&p, overrides[i]);
  if (!p.failed) computed_defaults(&p, from_file);
  if (!p.failed && from_file) dataset_vocab(&p);
  if (!p.failed) cross_checks(&p);
  if (!p.failed) sizes_fit(&p);
  if (p.failed || !sweep) hy_sweep_spec_free(p.sweep);
  return p.failed ? -1 : 0;
}

int hy_recipe_check(const hy_recipe *r, hy_error *err) {
  char why[HY_ERROR_MAX / 2];
  hy_recipe_sizes s;
  hy_size_term fault;
  if (failed_check(r, why, sizeof why)) return hy_fail(err, "%s", why);
  if (hy_recipe_sizes_of(r, &s, &fault) ||
      hy_recipe_sizes_fit(&s, false, hy_memory_limit(), &fault))
    return hy_fail(err, "%s", fault.what);
  return 0;
}

int hy_recipe_parse(const char *text, const char *origin, int n_overrides,
                    const char *const *overrides, hy_recipe *r, hy_error *err) {
  return parse(text, origin, false, n_overrides, overrides, r, NULL, err);
}

int hy_recipe_load(const char *path, int n_overrides, const char *const *overrides, hy_recipe *r,
                   hy_error *err) {
  return hy_recipe_load_sweep(path, n_overrides, overrides, r, NULL, err);
}

/* A recipe is a short text: reading stops past this many bytes, so that a device such as /dev/zero
 * or a large file given by mistake is refused instead of read until memory runs out. */
enum { RECIPE_MAX_BYTES = 1 << 20 };

int hy_recipe_load_sweep(const char *path, int n_overrides, const char *const *overrides,
                         hy_recipe *r, hy_sweep_spec *sweep, hy_error *err) {
  if (sweep) memset(sweep, 0, sizeof *sweep);
  FILE *f = fopen(path, "rb");
  if (!f) return hy_fail(err, "%s: cannot open: %s", path, strerror(errno));
  size_t size = 0, cap = 4096;
  char *text = malloc(cap);
  int read_errno = 0;
  while (text) {
    size += fread(text + size, 1, cap - size - 1, f);
    if (ferror(f)) {
      read_errno = errno ? errno : EIO;
      break;
    }
    if (feof(f)) break;
    if (size > RECIPE_MAX_BYTES) {
      fclose(f);
      free(text);
      return hy_fail(err, "%s: more than %d MiB: not a recipe (a short text file)", path,
                     RECIPE_MAX_BYTES >> 20);
    }
    char *more = realloc(text, cap *= 2);
    if (!more) free(text);
    text = more;
  }
  fclose(f);
  if (!text) return hy_fail(err, "%s: cannot read: %s", path, strerror(ENOMEM));
  if (read_errno) {
    free(text);
    return hy_fail(err, "%s: cannot read: %s", path, strerror(read_errno));
  }
  text[size] = 0;
  int rc;
  if (strlen(text) < size) {
    int line = 1;
    for (const char *c = text; *c; c++) line += *c == '\n';
    rc = hy_fail(err, "%s:%d: a NUL byte; a recipe is UTF-8 text", path, line);
  } else {
    rc = parse(text, path, true, n_overrides, overrides, r, sweep, err);
  }
  free(text);
  return rc;
}

char *hy_recipe_to_toml(const hy_recipe *r) {
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) return NULL;
  fputs(HY_RECIPE_RESOLVED_HEADER, f);
  for (int s = 0; hy_sections[s]; s++) {
    fprintf(f, "\n[%s]\n", hy_sections[s]);
    for (int i = 0; i < hy_n_keys; i++) {
      const hy_key *k = &hy_keys[i];
      if (strcmp(k->section, hy_sections[s])) continue;
      size_t n = hy_key_format(k, r, NULL, 0);
      char *value = malloc(n + 1);
      if (!value) continue;
      hy_key_format(k, r, value, n + 1);
      fprintf(f, "%s = %s\n", k->key, value);
      free(value);
    }
  }
  fclose(f);
  return text;
}

void hy_recipe_write_docs(FILE *f) {
  fprintf(
      f,
      "# Recipes\n\n"
      "<!-- Written by hy_recipe_write_docs (recipes/recipe.c) from the schema in "
      "recipes/schema.c; tests/recipes/test_recipe.c checks that it is current. -->\n\n"
      "A recipe is a TOML file that says everything about a run: the model, the training, the "
      "optimizer, the data and the distribution. Every key has a default, so an empty file is "
      "a recipe. `recipes/quickstart.toml` is a small one.\n\n"
      "    hyla train recipes/quickstart.toml --set optim.lr=3e-4 --set data.dataset=mqar\n\n"
      "## Format\n\n"
      "- A recipe is TOML 1.0, read with toml++. A section is a table, written alike as a "
      "`[model]` header over `key = value` lines, as dotted keys (`model.d_model = 64`) or as an "
      "inline table (`run = { name = \"t\" }`); `[layer.gla]` is the table `gla` in `layer`.\n"
      "- Values are TOML: every string form (`\"...\"` with escapes, `'...'`, and the multi-line "
      "`\"\"\"...\"\"\"` and `'''...'''`), integers (`1_000`, `0x1F`, `0o17`, `0b101`), floats "
      "(`3e-4`, `0.5`, `1_000.0`), `true` and `false`, and arrays. An integer is taken where a "
      "float is expected, not the reverse. No key takes `inf` or `nan`, a date, a table where a "
      "value goes, or a string holding U+0000. A recipe file is at most %d MiB.\n"
      "- `--set section.key=value` overrides a key after the file, with the same checks; the "
      "section is everything before the last dot (`--set layer.attn.naive=true`). The value is "
      "TOML (`--set 'optim.betas=[0.9, 0.99]'`), except that a key taking a string takes bare "
      "text as that string (`--set run.out=/tmp/x`, `--set 'model.layers=gla,attn x 2'`) and "
      "`optim.no_decay` bare comma-separated items (`--set optim.no_decay=norm,bias`). A value "
      "starting with a quote is read as TOML (`--set 'run.out=\"/tmp/x\"'`), and so is one "
      "starting with `[` for `model.layers` and `optim.no_decay`.\n"
      "- Every error names the file and line (or the `--set`), the section and key, what was "
      "found and what was expected; text that is not TOML is refused with the line, the column "
      "and the parser's words. Unknown keys and sections are refused.\n"
      "- A run writes its resolved recipe, every key included, to `<out>/recipe.toml`.\n"
      "- `hyla train RECIPE --check` (with any `--set`) trains nothing: it validates the recipe, "
      "prints its parameter count, the memory training holds and an estimate of a step's "
      "activations, and exits 0, or 1 with the error.\n"
      "- A `[sweep]` section lists values to try, each key a recipe key written `\"section.key\"` "
      "or dotted (`\"optim.lr\" = [1e-3, 3e-3]`), plus `seeds = [0, 1, 2]`; `hyla sweep` trains "
      "the grid of their combinations, and `hyla train` checks the section and trains the recipe "
      "without it (docs/sweeps.md).\n",
      RECIPE_MAX_BYTES >> 20);
  for (int s = 0; hy_sections[s]; s++) {
    fprintf(f, "\n## [%s]\n\n| key | type | default | range | meaning |\n|---|---|---|---|---|\n",
            hy_sections[s]);
    for (int i = 0; i < hy_n_keys; i++) {
      const hy_key *k = &hy_keys[i];
      if (strcmp(k->section, hy_sections[s])) continue;
      char range[256];
      hy_key_range_doc(k, range, sizeof range);
      if (k->def)
        fprintf(f, "| `%s` | %s | `%s` | %s | %s |\n", k->key, hy_key_type_doc(k), k->def, range,
                k->doc);
      else
        fprintf(f, "| `%s` | %s | %s | %s | %s |\n", k->key, hy_key_type_doc(k), k->def_doc, range,
                k->doc);
    }
  }
  fprintf(f, "\n## Checks across keys\n\n");
  const hy_cross_check *c;
  for (size_t i = 0; (c = check_at(i)); i++) fprintf(f, "- %s\n", c->doc);
  fprintf(f, "- Every size the recipe makes fits in 64 bits: the element count of each parameter "
             "and activation, their bytes, a run's and an evaluation's tokens "
             "(`steps x grad_accum x batch x seq_len x dist.dp`); an error names the product and "
             "its keys.\n"
             "- The parameters fit in the memory this process may use (the machine's, or less "
             "under a ulimit). `hyla train` also refuses a CPU run whose parameters, gradients, "
             "optimizer state and estimated step activations do not fit; `hyla train --check` "
             "prints these sizes.\n");
  fprintf(f,
          "- Every name in `model.layers` is a known mixer kind (today: %s), and there are at "
          "most %d layers.\n",
          hy_mixer_names(), HY_MAX_LAYERS);
}

hy_model_config hy_recipe_model_config(const hy_recipe *r) {
  hy_model_config c;
  memset(&c, 0, sizeof c);
  c.dtype = (r->train.precision == HY_RECIPE_F64) ? HY_F64 : HY_F32;
  c.vocab = r->model.vocab;
  c.d_model = r->model.d_model;
  c.n_heads = r->model.n_heads;
  c.mlp_hidden = (int64_t)mlp_hidden(r);
  c.n_layers = r->model.n_layers;
  memcpy(c.layers, r->model.layers, sizeof c.layers);
  c.tied_embeddings = r->model.tied_embeddings;
  c.rope_theta = r->model.rope_theta;
  c.norm_eps = r->model.norm_eps;
  c.init_std = r->model.init_std;
  c.scale_out_init = r->model.scale_out_init;
  c.naive_attention = r->layer_attn.naive;
  c.attn_window = r->layer_attn.window;
  c.gla = r->layer_gla;
  c.lightning = r->layer_lightning;
  c.linear = r->layer_linear;
  c.conv = r->layer_conv;
  c.sigmoid = r->layer_sigmoid;
  c.sigmoid.seq_len = r->train.seq_len;
  c.softplus = r->layer_softplus;
  if (!c.softplus.train_len) c.softplus.train_len = r->train.seq_len;
  c.sla = r->layer_sla;
  c.rat = r->layer_rat;
  c.titans = r->layer_titans;
  return c;
}
