/* The hyla command: parses argv and calls into the library. */
#include "tensor/threads.h"

#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "usage: hyla <command> [options]\n"
    "\n"
    "commands:\n"
    "  info      what this build of hyla has (dtypes, threads, backends)\n"
    "\n"
    "Run 'hyla <command> --help' for a command's options.\n";

static int cmd_info(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: hyla info\n\nPrints what this build of hyla has.\n");
    return 0;
  }
  hy_threads_set(0);
  printf("hyla: CPU backend (OpenBLAS), f32 and f64; %d threads\n", hy_threads_get());
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
  fprintf(stderr, "hyla: unknown command '%s'\n\n%s", argv[1], USAGE);
  return 2;
}
