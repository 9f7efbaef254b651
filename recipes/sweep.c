#include "recipes/sweep.h"
#include "recipes/toml_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_seeds(const hy_sweep_axis *a) { return !strcmp(a->key, "seeds"); }

/* The recipe key an axis sets: "run.seed" for seeds. */
static const char *target(const hy_sweep_axis *a) { return is_seeds(a) ? "run.seed" : a->key; }

/* A value as a summary shows it: a string's text without quotes, anything else as written. */
static char *shown_value(const char *toml) {
  if (toml[0] != '"' && toml[0] != '\'') return strdup(toml);
  hy_toml_value v;
  hy_toml_error e;
  if (hy_toml_parse(toml, &v, &e) || v.kind != HY_TOML_STRING) {
    hy_toml_free(&v);
    return strdup(toml);
  }
  char *s = strdup(v.str);
  hy_toml_free(&v);
  return s;
}

/* An axis's part of run names: the key's last part ("lr"), or all of it when another axis has
 * the same last part (layer.gla.chunk and layer.rat.chunk). */
static const char *short_key(const hy_sweep *s, int a) {
  if (is_seeds(&s->spec.axes[a])) return "seed";
  const char *key = s->spec.axes[a].key, *last = strrchr(key, '.') + 1;
  for (int b = 0; b < s->spec.n_axes; b++) {
    const char *other = strrchr(s->spec.axes[b].key, '.');
    if (b != a && other && !strcmp(other + 1, last)) return key;
  }
  return last;
}

/* Append "key=value" to a run's name, keeping only characters safe in a file name. */
static void name_part(char *name, size_t size, const char *key, const char *value) {
  size_t n = strlen(name);
  n += (size_t)snprintf(name + n, n < size ? size - n : 0, "%s%s=", n ? "," : "", key);
  size_t start = n;
  for (const char *c = value; *c && n + 1 < size; c++) {
    bool safe = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                *c == '.' || *c == '_' || *c == '+' || *c == '-';
    if (safe)
      name[n++] = *c;
    else if (n > start && name[n - 1] != '-')
      name[n++] = '-';
  }
  while (n > start && name[n - 1] == '-') n--;
  if (n == start && n + 1 < size) name[n++] = '_';
  if (n < size) name[n] = 0;
}

static void make_names(hy_sweep *s, int64_t base_seed) {
  for (int i = 0; i < s->n_runs; i++) {
    hy_sweep_run *run = &s->runs[i];
    char name[HY_SWEEP_NAME - 12] = ""; /* room for a "_<n>" */
    bool seeded = false;
    for (int a = 0; a < s->spec.n_axes; a++) {
      name_part(name, sizeof name, short_key(s, a), s->shown[a][run->value[a]]);
      seeded = seeded || is_seeds(&s->spec.axes[a]);
    }
    if (!seeded) {
      char seed[32];
      snprintf(seed, sizeof seed, "%lld", (long long)base_seed);
      name_part(name, sizeof name, "seed", seed);
    }
    /* Values that differ only in unsafe characters, or names cut at the limit, could meet. */
    snprintf(run->name, sizeof run->name, "%s", name);
    for (int k = 2, j = 0; j < i; j++)
      if (!strcmp(s->runs[j].name, run->name)) {
        snprintf(run->name, sizeof run->name, "%s_%d", name, k++);
        j = -1;
      }
  }
}

/* "section.key=value" overrides of run i: the command line's, then its settings, its name and its
 * directory. */
static int run_recipe(hy_sweep *s, int i, int n_overrides, const char *const *overrides,
                      hy_error *err) {
  hy_sweep_run *run = &s->runs[i];
  int n = 0;
  const char **sets = calloc((size_t)n_overrides + HY_SWEEP_AXES_MAX + 2, sizeof *sets);
  char **owned = calloc(HY_SWEEP_AXES_MAX + 2, sizeof *owned);
  int rc = -1;
  if (!sets || !owned) {
    hy_fail(err, "out of memory");
    goto done;
  }
  for (int k = 0; k < n_overrides; k++) sets[n++] = overrides[k];
  int n_owned = 0;
  for (int a = 0; a < s->spec.n_axes; a++) {
    const hy_sweep_axis *axis = &s->spec.axes[a];
    const char *value = axis->values[run->value[a]];
    size_t len = strlen(target(axis)) + strlen(value) + 2;
    if (!(owned[n_owned] = malloc(len))) goto oom;
    snprintf(owned[n_owned], len, "%s=%s", target(axis), value);
    sets[n++] = owned[n_owned++];
  }
  char text[2 * HY_RECIPE_STR + HY_SWEEP_NAME];
  snprintf(text, sizeof text, "%.*s", HY_RECIPE_NAME - 1, run->name);
  size_t len = hy_toml_quote(text, strlen(text), NULL, 0) + 16;
  if (!(owned[n_owned] = malloc(len))) goto oom;
  memcpy(owned[n_owned], "run.name=", 9);
  hy_toml_quote(text, strlen(text), owned[n_owned] + 9, len - 9);
  sets[n++] = owned[n_owned++];
  snprintf(text, sizeof text, "%s/%s", s->dir, run->name);
  len = hy_toml_quote(text, strlen(text), NULL, 0) + 16;
  if (!(owned[n_owned] = malloc(len))) goto oom;
  memcpy(owned[n_owned], "run.out=", 8);
  hy_toml_quote(text, strlen(text), owned[n_owned] + 8, len - 8);
  sets[n++] = owned[n_owned++];
  hy_error why;
  if (hy_recipe_load(s->path, n, sets, &run->recipe, &why))
    hy_fail(err, "%s:%d: [sweep] the run %s: %s", s->path, s->sweep_line, run->name, why.msg);
  else
    rc = 0;
  goto done;
oom:
  hy_fail(err, "out of memory");
done:
  if (owned)
    for (int k = 0; k < HY_SWEEP_AXES_MAX + 2; k++) free(owned[k]);
  free(owned);
  free(sets);
  return rc;
}

int hy_sweep_expand(const char *path, int n_overrides, const char *const *overrides, hy_sweep *s,
                    hy_error *err) {
  memset(s, 0, sizeof *s);
  hy_recipe *base = malloc(sizeof *base);
  if (!base) return hy_fail(err, "out of memory");
  if (hy_recipe_load_sweep(path, n_overrides, overrides, base, &s->spec, err)) {
    free(base); /* unspecified when the load failed: not read */
    return -1;
  }
  int64_t base_seed = base->run.seed;
  snprintf(s->dir, sizeof s->dir, "%s", base->run.out);
  free(base);
  snprintf(s->path, sizeof s->path, "%s", path);
  s->sweep_line = s->spec.line;
  if (!s->spec.line || !s->spec.n_axes) {
    hy_fail(err,
            "%s: %s; a sweep lists values to try, e.g. [sweep] \"optim.lr\" = [1e-3, 3e-3] "
            "(docs/sweeps.md)",
            path, s->spec.line ? "[sweep] is empty" : "no [sweep] section");
    goto fail;
  }
  /* seeds last, so that runs differing only in their seed sit side by side */
  for (int a = 0; a + 1 < s->spec.n_axes; a++)
    if (is_seeds(&s->spec.axes[a])) {
      hy_sweep_axis seeds = s->spec.axes[a];
      memmove(&s->spec.axes[a], &s->spec.axes[a + 1],
              (size_t)(s->spec.n_axes - a - 1) * sizeof seeds);
      s->spec.axes[s->spec.n_axes - 1] = seeds;
      break;
    }
  int64_t total = 1;
  for (int a = 0; a < s->spec.n_axes; a++) {
    total *= s->spec.axes[a].n;
    if (total > HY_SWEEP_RUNS_MAX) {
      hy_fail(err, "%s:%d: [sweep] the grid has more than %d runs", path, s->spec.line,
              HY_SWEEP_RUNS_MAX);
      goto fail;
    }
    if (!(s->shown[a] = calloc((size_t)s->spec.axes[a].n, sizeof *s->shown[a]))) goto oom;
    for (int v = 0; v < s->spec.axes[a].n; v++)
      if (!(s->shown[a][v] = shown_value(s->spec.axes[a].values[v]))) goto oom;
  }
  s->n_runs = (int)total;
  if (!(s->runs = calloc((size_t)total, sizeof *s->runs))) goto oom;
  for (int i = 0; i < s->n_runs; i++)
    for (int a = s->spec.n_axes - 1, rest = i; a >= 0; a--) {
      s->runs[i].value[a] = rest % s->spec.axes[a].n;
      rest /= s->spec.axes[a].n;
    }
  make_names(s, base_seed);
  for (int i = 0; i < s->n_runs; i++)
    if (run_recipe(s, i, n_overrides, overrides, err)) goto fail;
  return 0;
oom:
  hy_fail(err, "out of memory");
fail:
  hy_sweep_free(s);
  return -1;
}

void hy_sweep_free(hy_sweep *s) {
  for (int a = 0; a < s->spec.n_axes; a++) {
    if (s->shown[a])
      for (int v = 0; v < s->spec.axes[a].n; v++) free(s->shown[a][v]);
    free(s->shown[a]);
  }
  hy_sweep_spec_free(&s->spec);
  free(s->runs);
  memset(s, 0, sizeof *s);
}

void hy_sweep_settings(const hy_sweep *s, int i, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (int a = 0; a < s->spec.n_axes && n < size; a++) {
    const hy_sweep_axis *axis = &s->spec.axes[a];
    n += (size_t)snprintf(buf + n, size - n, "%s%s=%s", a ? " " : "",
                          is_seeds(axis) ? "seed" : axis->key, axis->values[s->runs[i].value[a]]);
  }
}
