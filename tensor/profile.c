#include "tensor/profile.h"
#include "tensor/device.h"
#include "tensor/tensor.h"
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

typedef struct {
  const char *name;
  bool backward;
  double host_s; /* the host clock at the mark */
  void *event;   /* a CUDA event on hyla's stream, or NULL on the CPU */
} mark;

static struct {
  int enabled; /* -1: not yet read from the environment */
  mark *marks;
  int n, cap;
  void **events; /* a pool, reused from report to report */
  int n_events;
} P = {.enabled = -1};

void hy_profile_enable(bool on) { P.enabled = on; }

bool hy_profile_enabled(void) {
  if (P.enabled < 0) {
    const char *v = getenv("HYLA_PROFILE");
    P.enabled = v && *v && strcmp(v, "0") != 0;
  }
  return P.enabled;
}

void hy_profile_mark(const char *name, bool backward) {
  if (!hy_profile_enabled()) return;
  if (P.n == P.cap) {
    P.cap = P.cap ? 2 * P.cap : 4096;
    P.marks = realloc(P.marks, (size_t)P.cap * sizeof *P.marks);
    if (!P.marks) hy_die("profile", "out of memory");
  }
  mark *m = &P.marks[P.n++];
  m->name = name;
  m->backward = backward;
  m->host_s = hy_clock_s();
  m->event = NULL;
#ifdef HYLA_CUDA
  if (hy_current_device() == HY_CUDA) {
    if (P.n > P.n_events) {
      P.events = realloc(P.events, (size_t)P.cap * sizeof *P.events);
      if (!P.events) hy_die("profile", "out of memory");
      while (P.n_events < P.n) P.events[P.n_events++] = hy_cuda_event_new();
    }
    m->event = P.events[P.n - 1];
    hy_cuda_event_record(m->event);
  }
#endif
}

typedef struct {
  const char *name;
  bool backward;
  int calls;
  double s;
} row;

static int by_time(const void *a, const void *b) {
  double x = ((const row *)a)->s, y = ((const row *)b)->s;
  return (x < y) - (x > y);
}

void hy_profile_report(FILE *out, int steps) {
  if (P.n < 2) {
    P.n = 0;
    return;
  }
#ifdef HYLA_CUDA
  if (P.marks[0].event) hy_cuda_synchronize();
#endif
  row *rows = calloc((size_t)P.n, sizeof *rows);
  int n_rows = 0;
  double total = 0;
  for (int i = 1; i < P.n; i++) {
    const mark *a = &P.marks[i - 1], *b = &P.marks[i];
    double s = b->host_s - a->host_s;
#ifdef HYLA_CUDA
    if (a->event && b->event) s = hy_cuda_event_seconds(a->event, b->event);
#endif
    int r = 0;
    while (r < n_rows && (strcmp(rows[r].name, b->name) || rows[r].backward != b->backward)) r++;
    if (r == n_rows) rows[n_rows++] = (row){b->name, b->backward, 0, 0};
    rows[r].calls++;
    rows[r].s += s;
    total += s;
  }
  qsort(rows, (size_t)n_rows, sizeof *rows, by_time);
  double per = steps > 0 ? 1.0 / steps : 1.0;
  fprintf(out, "profile: %.3f ms a step over %d step(s), by op (GPU time where on the GPU)\n",
          1e3 * total * per, steps);
  fprintf(out, "| %-32s | %6s | %9s | %6s |\n", "op", "calls", "ms/step", "share");
  for (int r = 0; r < n_rows; r++) {
    char name[64];
    snprintf(name, sizeof name, "%s%s", rows[r].name, rows[r].backward ? " backward" : "");
    fprintf(out, "| %-32s | %6.0f | %9.3f | %5.1f%% |\n", name, rows[r].calls * per,
            1e3 * rows[r].s * per, total > 0 ? 100 * rows[r].s / total : 0.0);
  }
  fflush(out);
  free(rows);
  P.n = 0;
}
