/* Stopping on signals (util/stop.h): the first SIGINT or SIGTERM asks for a stop and the second
 * takes its default action, even after hy_stop_catch is called again (as each run of a sweep
 * does), and a SIGINT the process was started ignoring stays ignored, before and after a stop.
 * Each test runs a child that catches, waits for a stop, then waits where nothing polls the flag,
 * as a process stuck in one long call would. */
#include "util/stop.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  pid_t pid;
  int from; /* the child's reports: 'r' once it catches, then the signal and its exit status */
} child;

static void report(int fd, int value) {
  char c = (char)value;
  if (write(fd, &c, 1) != 1) _exit(3);
}

static child start(bool ignoring_sigint) {
  int fds[2];
  cr_assert(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (ignoring_sigint) signal(SIGINT, SIG_IGN);
    alarm(10); /* where a signal fails to end it, SIGALRM does, and the test says so */
    hy_stop_catch();
    report(fds[1], 'r');
    while (!hy_stop_asked()) nanosleep(&(struct timespec){0, 1000000}, NULL);
    hy_stop_catch(); /* does nothing now: the next signal still ends the child */
    report(fds[1], hy_stop_asked());
    report(fds[1], hy_stop_exit_status());
    for (;;) pause();
  }
  close(fds[1]);
  return (child){pid, fds[0]};
}

static int next_report(child c) {
  unsigned char b = 0;
  cr_assert_eq(read(c.from, &b, 1), 1, "the child reported nothing");
  return b;
}

/* The signal that ended the child (0: it exited). */
static int ending(child c) {
  int status = 0;
  cr_assert_eq(waitpid(c.pid, &status, 0), c.pid);
  close(c.from);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

Test(stop, a_first_sigint_asks_and_a_second_kills) {
  child c = start(false);
  cr_assert_eq(next_report(c), 'r');
  kill(c.pid, SIGINT);
  cr_assert_eq(next_report(c), SIGINT);
  cr_assert_eq(next_report(c), 130);
  kill(c.pid, SIGINT);
  cr_assert_eq(ending(c), SIGINT, "the second SIGINT takes its default action");
}

Test(stop, after_sigterm_a_sigint_kills) {
  child c = start(false);
  cr_assert_eq(next_report(c), 'r');
  kill(c.pid, SIGTERM);
  cr_assert_eq(next_report(c), SIGTERM);
  cr_assert_eq(next_report(c), 143);
  kill(c.pid, SIGINT);
  cr_assert_eq(ending(c), SIGINT);
}

Test(stop, an_ignored_sigint_stays_ignored) {
  child c = start(true);
  cr_assert_eq(next_report(c), 'r');
  kill(c.pid, SIGINT); /* ignored: the stop below is SIGTERM's */
  kill(c.pid, SIGTERM);
  cr_assert_eq(next_report(c), SIGTERM);
  cr_assert_eq(next_report(c), 143);
  kill(c.pid, SIGINT); /* still ignored after the stop: SIGTERM, sent after it, ends the child */
  kill(c.pid, SIGTERM);
  cr_assert_eq(ending(c), SIGTERM);
}
