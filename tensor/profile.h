/* Where a step's time goes, op by op (HYLA_PROFILE=1 in the environment, or hy_profile_enable):
 * each op marks the end of its work as it records its tape node, each backward node as it
 * finishes, and the training loop marks its own stages (the optimizer, the clipping); the time
 * between two marks adds to the later mark's name. On the GPU the marks are CUDA events on hyla's
 * stream, so the times are the GPU's; on the CPU they are the host clock. Marks cost a little
 * (an event each), so a profiled step is a bit slower than a plain one. */
#ifndef HYLA_PROFILE_H
#define HYLA_PROFILE_H

#include <stdbool.h>
#include <stdio.h>

void hy_profile_enable(bool on);
bool hy_profile_enabled(void); /* true after hy_profile_enable(true) or with HYLA_PROFILE=1 */
/* The work queued since the last mark ends here and counts to `name` (a string that outlives the
 * profile: ops pass their literal names); `backward` files it under the name's backward row. */
void hy_profile_mark(const char *name, bool backward);
/* The table of the marks since the last report (or the first mark), by time, as per-step
 * milliseconds over `steps` steps; then forgets them. */
void hy_profile_report(FILE *out, int steps);

#endif
