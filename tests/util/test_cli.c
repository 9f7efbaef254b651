/* The command-line parser every hyla command shares: values after a space or '=', numbers in
 * range, repeatable options in order, positional arguments counted, every mistake named. */
#include "util/cli.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  bool quiet;
  const char *prompt, *resume;
  int64_t steps;
  double frac;
  hy_cli_list sets;
  const char *pos[2];
} parsed;

/* Parses the words of line (at most 15, split at spaces) as a command taking `max` positional
 * arguments; returns hy_cli_parse's result, with its error in err. */
static int parse_line(const char *line, int max, parsed *p, hy_error *err) {
  static char buf[256];
  static char *argv[16];
  snprintf(buf, sizeof buf, "cmd %s", line);
  int argc = 0;
  for (char *w = strtok(buf, " "); w && argc < 16; w = strtok(NULL, " ")) argv[argc++] = w;
  *p = (parsed){.steps = 7, .frac = 0.1};
  const hy_cli_option opts[] = {HY_CLI_FLAG_OPTION("--quiet", &p->quiet),
                                HY_CLI_TEXT_OPTION("--prompt", &p->prompt),
                                HY_CLI_MAYBE_TEXT_OPTION("--resume", &p->resume),
                                HY_CLI_INT_OPTION("--steps", &p->steps, 1, 100),
                                HY_CLI_REAL_OPTION("--frac", &p->frac, 0, true, 0.5),
                                HY_CLI_LIST_OPTION("--set", &p->sets)};
  return hy_cli_parse(argc, argv, 1, opts, 6, (hy_cli_positional){p->pos, max, "recipe"}, err);
}

static void fails(const char *line, int max, const char *message) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line(line, max, &p, &err), -1, "'%s' was taken", line);
  cr_assert_str_eq(err.msg, message, "'%s'", line);
  free(p.sets.items);
}

Test(cli, values_after_a_space_or_an_equals_sign) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line("a.toml --steps 5 --prompt=hi --frac=0.25 --quiet", 1, &p, &err), 1, "%s",
               err.msg);
  cr_assert_str_eq(p.pos[0], "a.toml");
  cr_assert_eq(p.steps, 5);
  cr_assert_str_eq(p.prompt, "hi");
  cr_assert_float_eq(p.frac, 0.25, 0);
  cr_assert(p.quiet);
  cr_assert_null(p.resume);
  cr_assert_eq(parse_line("--steps=9 --prompt x", 1, &p, &err), 0, "%s", err.msg);
  cr_assert_eq(p.steps, 9);
  cr_assert_str_eq(p.prompt, "x");
}

Test(cli, absent_options_keep_their_defaults) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line("", 1, &p, &err), 0);
  cr_assert_eq(p.steps, 7);
  cr_assert_float_eq(p.frac, 0.1, 0);
  cr_assert(!p.quiet);
  cr_assert_eq(p.sets.n, 0);
  cr_assert_null(p.sets.items);
}

Test(cli, a_repeated_option_collects_its_values_in_order) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line("--set a=1 r.toml --set=b=2 --set c=", 1, &p, &err), 1, "%s", err.msg);
  cr_assert_eq(p.sets.n, 3);
  cr_assert_str_eq(p.sets.items[0], "a=1");
  cr_assert_str_eq(p.sets.items[1], "b=2"); /* only the first '=' ends the option's name */
  cr_assert_str_eq(p.sets.items[2], "c=");
  free(p.sets.items);
}

Test(cli, an_optional_value_is_empty_when_bare) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line("--resume", 1, &p, &err), 0);
  cr_assert_str_eq(p.resume, "");
  cr_assert_eq(parse_line("--resume=ck.h5 r", 1, &p, &err), 1);
  cr_assert_str_eq(p.resume, "ck.h5");
  cr_assert_str_eq(p.pos[0], "r", "a bare --resume does not take the next argument");
}

Test(cli, positional_arguments_are_counted) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line("x y", 2, &p, &err), 2);
  cr_assert_str_eq(p.pos[1], "y");
  fails("x y", 1, "more than one recipe ('y')");
  fails("x y z", 2, "unexpected argument 'z'");
  fails("x", 0, "unexpected argument 'x'");
}

Test(cli, every_mistake_is_named) {
  fails("--nope", 1, "unknown option '--nope'");
  fails("--quiet=1", 1, "unknown option '--quiet=1'"); /* a flag takes no value */
  fails("--stepsx 3", 1, "unknown option '--stepsx'"); /* no prefixes */
  fails("--steps", 1, "--steps needs a value");
  fails("--set", 1, "--set needs a value");
  fails("--steps 0", 1, "--steps: \"0\" is not a whole number from 1 to 100");
  fails("--steps=abc", 1, "--steps: \"abc\" is not a whole number from 1 to 100");
  fails("--frac 0", 1, "--frac: \"0\" is not a number > 0 and <= 0.5");
  fails("--frac=nan", 1, "--frac: \"nan\" is not a number > 0 and <= 0.5");
}

Test(cli, a_value_may_start_with_a_dash) {
  parsed p;
  hy_error err;
  cr_assert_eq(parse_line("--prompt -x", 1, &p, &err), 0, "%s", err.msg);
  cr_assert_str_eq(p.prompt, "-x");
}
