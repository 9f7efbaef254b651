/* Trimming metrics.jsonl when a run resumes (run/metrics.h): the lines of later steps go, the
 * complete lines up to the step stay as they were, and a last line cut off before its newline (a
 * process killed while writing it) goes whatever step it names. */
#include "run/metrics.h"
#include "tests/support.h"
#include "util/fs.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[512]; /* the file each test trims */

static void init(void) {
  t_temp_init();
  snprintf(path, sizeof path, "%s", t_in_temp("metrics.jsonl"));
}

TestSuite(metrics, .init = init, .fini = t_temp_fini);

/* The file holding `before`, trimmed at `step`, must hold `after`. */
static void expect_trim(const char *before, int64_t step, const char *after) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  fputs(before, f);
  fclose(f);
  hy_error err;
  cr_assert_eq(hy_metrics_trim(path, step, &err), 0, "%s", err.msg);
  char *text = hy_read_file(path, NULL, &err);
  cr_assert(text, "%s", err.msg);
  cr_expect_str_eq(text, after);
  free(text);
}

#define S1 "{\"step\":1,\"loss\":5.5}\n"
#define S2 "{\"step\":2,\"loss\":5.1}\n"
#define E2 "{\"step\":2,\"val_loss\":5.2}\n"
#define S3 "{\"step\":3,\"loss\":4.9}\n"

Test(metrics, later_steps_go) { expect_trim(S1 S2 E2 S3, 2, S1 S2 E2); }

Test(metrics, a_torn_last_line_goes) {
  expect_trim(S1 S2 "{\"step\":3,\"lo", 2, S1 S2);
  expect_trim(S1 S2 "{\"step\":2,\"val_lo", 2, S1 S2); /* of a kept step, too */
  expect_trim(S1 "{\"st", 5, S1);
  expect_trim("{\"step\":1,\"loss\":5.5}", 5, ""); /* complete JSON, but no newline */
}

Test(metrics, complete_lines_stay_whole) {
  expect_trim(S1 S2, 2, S1 S2);
  expect_trim(S1 "\n" S2, 9, S1 S2); /* an empty line goes */
  expect_trim("", 3, "");
}

Test(metrics, a_missing_file_is_fine) {
  hy_error err;
  cr_expect_eq(hy_metrics_trim(path, 3, &err), 0);
  cr_expect_neq(access(path, F_OK), 0, "created");
}
