/* One parser for the options of every hyla command, so that all follow the same rules:
 *   - an option's value is the next argument or follows '=' (--steps 5, --steps=5);
 *   - numbers are whole or finite as the option asks, inside its range (util/parse_number.h);
 *   - a repeatable option (--set) collects its values in order;
 *   - every other argument not starting with '-' is positional, up to the command's count;
 *   - anything else is a usage error (unknown option, missing value, bad number, extra argument).
 * Errors come back in an hy_error; the command prints them as usage errors (exit status 2). */
#ifndef HYLA_CLI_H
#define HYLA_CLI_H

#include "util/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
  HY_CLI_FLAG,      /* bool: set when present */
  HY_CLI_TEXT,      /* const char *: the value */
  HY_CLI_INT,       /* int64_t in [min, max] */
  HY_CLI_REAL,      /* double in [low, high], or (low, high] with above_low */
  HY_CLI_LIST,      /* hy_cli_list: every value, in order (repeatable) */
  HY_CLI_MAYBE_TEXT /* const char *: "" when given bare, the value after '=' (--resume[=CKPT]) */
} hy_cli_kind;

typedef struct {
  const char *name; /* with its dashes: "--steps" */
  hy_cli_kind kind;
  void *to; /* where the value goes: bool *, const char **, int64_t *, double *, hy_cli_list * */
  int64_t min, max;
  double low, high;
  bool above_low;
} hy_cli_option;

#define HY_CLI_FLAG_OPTION(n, p)                                                                   \
  { .name = (n), .kind = HY_CLI_FLAG, .to = (p) }
#define HY_CLI_TEXT_OPTION(n, p)                                                                   \
  { .name = (n), .kind = HY_CLI_TEXT, .to = (p) }
#define HY_CLI_MAYBE_TEXT_OPTION(n, p)                                                             \
  { .name = (n), .kind = HY_CLI_MAYBE_TEXT, .to = (p) }
#define HY_CLI_LIST_OPTION(n, p)                                                                   \
  { .name = (n), .kind = HY_CLI_LIST, .to = (p) }
#define HY_CLI_INT_OPTION(n, p, lo, hi)                                                            \
  { .name = (n), .kind = HY_CLI_INT, .to = (p), .min = (lo), .max = (hi) }
#define HY_CLI_REAL_OPTION(n, p, lo, above, hi)                                                    \
  { .name = (n), .kind = HY_CLI_REAL, .to = (p), .low = (lo), .above_low = (above), .high = (hi) }

/* A repeatable option's values (pointers into argv); free(items) when done. */
typedef struct {
  const char **items;
  int n;
} hy_cli_list;

/* The positional arguments a command takes: up to max of them into pos[]. With max = 1, `one`
 * names the thing for the error on a second ("more than one recipe ('b.toml')"); otherwise an
 * extra one is an "unexpected argument". */
typedef struct {
  const char **pos;
  int max;
  const char *one;
} hy_cli_positional;

/* Parses argv[first .. argc) into opts[0 .. n_opts) and p; returns how many positional arguments
 * were given, or -1 with err set. Values already in the targets stay where an option is absent
 * (the defaults). */
int hy_cli_parse(int argc, char **argv, int first, const hy_cli_option *opts, int n_opts,
                 hy_cli_positional p, hy_error *err);

#endif
