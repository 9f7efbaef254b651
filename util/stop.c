#include "util/stop.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

static const int stop_signals[] = {SIGINT, SIGTERM};
enum { N_SIGNALS = sizeof stop_signals / sizeof *stop_signals };

static volatile sig_atomic_t asked;
static volatile sig_atomic_t caught[N_SIGNALS]; /* which of stop_signals have on_stop */

/* Only async-signal-safe work: a sig_atomic_t store and sigaction. The signals this process
 * catches go back to their default action, so the next one ends it at once; one it was started
 * ignoring stays ignored. Both are blocked while this runs (sa_mask), so it never nests. */
static void on_stop(int sig) {
  asked = sig;
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigemptyset(&dfl.sa_mask);
  for (int i = 0; i < N_SIGNALS; i++)
    if (caught[i]) sigaction(stop_signals[i], &dfl, NULL);
}

void hy_stop_catch(void) {
  /* Blocked while the handlers go in, so a signal cannot land between the check of `asked` and
   * the install (a stop asked already keeps the default actions: the next signal kills). */
  sigset_t both, old_mask;
  sigemptyset(&both);
  for (int i = 0; i < N_SIGNALS; i++) sigaddset(&both, stop_signals[i]);
  pthread_sigmask(SIG_BLOCK, &both, &old_mask);
  /* SA_RESTART: reads and writes under way go on; the loops poll the flag where it is safe */
  struct sigaction sa = {.sa_handler = on_stop, .sa_mask = both, .sa_flags = SA_RESTART}, old;
  for (int i = 0; i < N_SIGNALS && !asked; i++)
    if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) {
      caught[i] = 1;
      sigaction(stop_signals[i], &sa, NULL);
    }
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
}

int hy_stop_asked(void) { return asked; }

int hy_stop_exit_status(void) { return 128 + asked; }

const char *hy_stop_name(void) {
  return asked == SIGINT ? "SIGINT" : asked == SIGTERM ? "SIGTERM" : "a signal";
}
