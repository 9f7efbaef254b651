#include "util/cli.h"
#include "util/parse_number.h"

#include <stdlib.h>
#include <string.h>

/* The option arg names: "--steps" or "--steps=..."; *value is what follows '=' (NULL: none). */
static const hy_cli_option *find(const char *arg, const hy_cli_option *opts, int n_opts,
                                 const char **value) {
  for (int i = 0; i < n_opts; i++) {
    size_t len = strlen(opts[i].name);
    if (strncmp(arg, opts[i].name, len)) continue;
    if (arg[len] == '\0') {
      *value = NULL;
      return &opts[i];
    }
    if (arg[len] == '=' && opts[i].kind != HY_CLI_FLAG) {
      *value = arg + len + 1;
      return &opts[i];
    }
  }
  return NULL;
}

static int add_to_list(hy_cli_list *list, const char *value, int capacity, hy_error *err) {
  if (!list->items && !(list->items = calloc((size_t)capacity, sizeof *list->items)))
    return hy_fail(err, "out of memory");
  list->items[list->n++] = value;
  return 0;
}

int hy_cli_parse(int argc, char **argv, int first, const hy_cli_option *opts, int n_opts,
                 hy_cli_positional p, hy_error *err) {
  int given = 0;
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i], *value;
    if (arg[0] != '-') {
      if (given == p.max) {
        if (p.max == 1 && p.one) return hy_fail(err, "more than one %s ('%s')", p.one, arg);
        return hy_fail(err, "unexpected argument '%s'", arg);
      }
      p.pos[given++] = arg;
      continue;
    }
    const hy_cli_option *o = find(arg, opts, n_opts, &value);
    if (!o) return hy_fail(err, "unknown option '%s'", arg);
    if (o->kind == HY_CLI_FLAG) {
      *(bool *)o->to = true;
      continue;
    }
    if (o->kind == HY_CLI_MAYBE_TEXT) {
      *(const char **)o->to = value ? value : "";
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) return hy_fail(err, "%s needs a value", o->name);
      value = argv[++i];
    }
    hy_error why;
    switch (o->kind) {
    case HY_CLI_TEXT: *(const char **)o->to = value; break;
    case HY_CLI_LIST:
      if (add_to_list(o->to, value, argc, err)) return -1;
      break;
    case HY_CLI_INT:
      if (hy_parse_int(value, o->min, o->max, o->to, &why))
        return hy_fail(err, "%s: %s", o->name, why.msg);
      break;
    case HY_CLI_REAL:
      if (hy_parse_real(value, o->low, o->above_low, o->high, o->to, &why))
        return hy_fail(err, "%s: %s", o->name, why.msg);
      break;
    default: return hy_fail(err, "internal: option %s of kind %d", o->name, (int)o->kind);
    }
  }
  return given;
}
