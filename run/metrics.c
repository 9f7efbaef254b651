#include "run/metrics.h"
#include "util/fs.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hy_metrics_trim(const char *path, int64_t step, hy_error *err) {
  if (access(path, F_OK) != 0) return 0;
  size_t size;
  char *text = hy_read_file(path, &size, err);
  if (!text) return -1;
  char *kept = malloc(size + 1);
  if (!kept) {
    free(text);
    return hy_fail(err, "%s: out of memory for %zu bytes", path, size);
  }
  size_t k = 0;
  /* complete lines only: what follows the last newline is torn */
  for (char *line = text, *end; (end = memchr(line, '\n', size - (size_t)(line - text)));
       line = end + 1) {
    *end = 0;
    long long s;
    bool later = sscanf(line, "{\"step\":%lld", &s) == 1 && s > step;
    if (later || end == line) continue;
    memcpy(kept + k, line, (size_t)(end - line));
    k += (size_t)(end - line);
    kept[k++] = '\n';
  }
  kept[k] = 0;
  int rc = hy_write_file_atomic(path, kept, err);
  free(kept);
  free(text);
  return rc;
}
