/* Stopping on SIGINT or SIGTERM. A command calls hy_stop_catch() once; its long loops poll
 * hy_stop_asked() and wind down at their next safe point (training finishes the step and writes a
 * checkpoint, evaluation and generation keep what they have done). The first signal also puts
 * both signals back to their default action, so a second one ends the process at once, even one
 * stuck where no loop polls. */
#ifndef HYLA_STOP_H
#define HYLA_STOP_H

/* SIGINT and SIGTERM ask for a stop from now on. A signal the process was started ignoring (a
 * shell's background job ignores SIGINT) stays ignored; after a stop was asked this does nothing,
 * so the next signal still kills. */
void hy_stop_catch(void);

/* The signal that asked for a stop (SIGINT or SIGTERM), or 0. */
int hy_stop_asked(void);

/* The exit status for a stop by that signal: 128 + its number (130 for SIGINT, 143 for SIGTERM),
 * what a shell reports for a process the signal ended. */
int hy_stop_exit_status(void);

/* "SIGINT", "SIGTERM", or "a signal". */
const char *hy_stop_name(void);

#endif
