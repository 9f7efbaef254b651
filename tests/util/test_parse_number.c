/* Command-line numbers: only text that is a number and nothing else, within the range asked for;
 * text past 64 bits is refused, never clamped; every message quotes the text and the range. */
#include "util/parse_number.h"

#include <criterion/criterion.h>
#include <float.h>
#include <stdint.h>
#include <string.h>

static void int_fails(const char *text, int64_t lo, int64_t hi, const char *message) {
  int64_t v = 42;
  hy_error err;
  cr_assert_neq(hy_parse_int(text, lo, hi, &v, &err), 0, "\"%s\" was taken", text);
  cr_assert_str_eq(err.msg, message);
  cr_assert_eq(v, 42, "a refused number is not stored");
}

static void int_reads(const char *text, int64_t lo, int64_t hi, int64_t want) {
  int64_t v;
  hy_error err;
  cr_assert_eq(hy_parse_int(text, lo, hi, &v, &err), 0, "%s", err.msg);
  cr_assert_eq(v, want, "\"%s\" read as %lld", text, (long long)v);
}

Test(parse_int, whole_numbers_in_range) {
  int_reads("1", 1, INT64_MAX, 1);
  int_reads("+17", 0, 100, 17);
  int_reads("-5", -10, 10, -5);
  int_reads("0", 0, 0, 0);
  int_reads("9223372036854775807", 0, INT64_MAX, INT64_MAX);
  int_reads("-9223372036854775808", INT64_MIN, 0, INT64_MIN);
  int_reads("007", 0, 10, 7); /* decimal, not octal */
}

Test(parse_int, anything_else_names_the_text_and_the_range) {
  int_fails("-1", 1, INT64_MAX, "\"-1\" is not a whole number >= 1");
  int_fails("", 1, INT64_MAX, "\"\" is not a whole number >= 1");
  int_fails("abc", 0, INT64_MAX, "\"abc\" is not a whole number >= 0");
  int_fails("12abc", 0, INT64_MAX, "\"12abc\" is not a whole number >= 0");
  int_fails(" 5", 0, INT64_MAX, "\" 5\" is not a whole number >= 0");
  int_fails("5 ", 0, INT64_MAX, "\"5 \" is not a whole number >= 0");
  int_fails("1.5", 0, INT64_MAX, "\"1.5\" is not a whole number >= 0");
  int_fails("1e3", 0, INT64_MAX, "\"1e3\" is not a whole number >= 0");
  int_fails("0x10", 0, INT64_MAX, "\"0x10\" is not a whole number >= 0");
  int_fails("-", 0, INT64_MAX, "\"-\" is not a whole number >= 0");
  int_fails("2000", 0, 1024, "\"2000\" is not a whole number from 0 to 1024");
  int_fails("-1", 0, 1024, "\"-1\" is not a whole number from 0 to 1024");
}

Test(parse_int, past_64_bits_is_refused_not_clamped) {
  int_fails("9223372036854775808", 1, INT64_MAX,
            "\"9223372036854775808\" is not a whole number from 1 to 9223372036854775807");
  int_fails("99999999999999999999", 0, 10,
            "\"99999999999999999999\" is not a whole number from 0 to 10");
  int_fails("-9223372036854775809", INT64_MIN, INT64_MAX,
            "\"-9223372036854775809\" is not a whole number from -9223372036854775808 to "
            "9223372036854775807");
}

Test(parse_int, long_text_is_quoted_in_part) {
  char text[200];
  memset(text, '9', sizeof text - 1);
  text[sizeof text - 1] = 0;
  int_fails(text, 0, 10,
            "\"9999999999999999999999999999999999999999...\" is not a whole number from 0 to 10");
}

static void real_fails(const char *text, double lo, bool above_lo, double hi, const char *message) {
  double v = 42;
  hy_error err;
  cr_assert_neq(hy_parse_real(text, lo, above_lo, hi, &v, &err), 0, "\"%s\" was taken", text);
  cr_assert_str_eq(err.msg, message);
  cr_assert_eq(v, 42, "a refused number is not stored");
}

static void real_reads(const char *text, double lo, bool above_lo, double hi, double want) {
  double v;
  hy_error err;
  cr_assert_eq(hy_parse_real(text, lo, above_lo, hi, &v, &err), 0, "%s", err.msg);
  cr_assert_eq(v, want, "\"%s\" read as %g", text, v);
}

Test(parse_real, finite_numbers_in_range) {
  real_reads("0.8", 0, false, DBL_MAX, 0.8);
  real_reads("0", 0, false, DBL_MAX, 0);
  real_reads("1e-3", 0, true, 0.5, 1e-3);
  real_reads("0.5", 0, true, 0.5, 0.5);
  real_reads("1e-400", 0, false, DBL_MAX, 0); /* an underflow rounds, as any decimal does */
}

Test(parse_real, anything_else_names_the_text_and_the_range) {
  real_fails("-1", 0, false, DBL_MAX, "\"-1\" is not a finite number >= 0");
  real_fails("", 0, false, DBL_MAX, "\"\" is not a finite number >= 0");
  real_fails("x", 0, false, DBL_MAX, "\"x\" is not a finite number >= 0");
  real_fails("0.5x", 0, false, DBL_MAX, "\"0.5x\" is not a finite number >= 0");
  real_fails(" 1", 0, false, DBL_MAX, "\" 1\" is not a finite number >= 0");
  real_fails("nan", 0, false, DBL_MAX, "\"nan\" is not a finite number >= 0");
  real_fails("inf", 0, false, DBL_MAX, "\"inf\" is not a finite number >= 0");
  real_fails("1e999", 0, false, DBL_MAX, "\"1e999\" is not a finite number >= 0");
  real_fails("0", 0, true, 0.5, "\"0\" is not a number > 0 and <= 0.5");
  real_fails("0.6", 0, true, 0.5, "\"0.6\" is not a number > 0 and <= 0.5");
  real_fails("-inf", 0, true, 0.5, "\"-inf\" is not a number > 0 and <= 0.5");
}
