/* metrics.jsonl, a run's log of numbers: one JSON object a line, {"step":N,...}, appended and
 * flushed as training goes. */
#ifndef HYLA_METRICS_H
#define HYLA_METRICS_H

#include "util/error.h"

#include <stdint.h>

/* Before a run resumes from `step`: keep the lines of steps up to it (and lines without a step),
 * drop those after it, which the run writes again, and drop a last line without its newline, torn
 * by a process that ended while writing it. The file is replaced whole; a missing one is fine. */
int hy_metrics_trim(const char *path, int64_t step, hy_error *err);

#endif
