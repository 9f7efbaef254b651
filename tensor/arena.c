#include "tensor/arena.h"
#include "tensor/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64, MAX_CHUNKS = 64 };
#define FIRST_CHUNK_BYTES ((size_t)64 << 20)

/* Chunks are filled in order; a reset folds them into one chunk of their total size, so after the
 * first step every step bump-allocates from a single block and memory stays flat. */
static struct {
  char *base[MAX_CHUNKS];
  size_t size[MAX_CHUNKS];
  int n_chunks;
  int current;
  size_t offset;
  size_t used_before_current; /* the sizes of the chunks before `current` */
  size_t peak;
  int exit_hook;
} A;

static void *alloc_aligned(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, ALIGN, bytes) != 0)
    hy_die("arena", "out of memory asking for %zu bytes", bytes);
  return p;
}

static void add_chunk(size_t at_least) {
  if (A.n_chunks == MAX_CHUNKS) hy_die("arena", "more than %d chunks", MAX_CHUNKS);
  size_t size = A.n_chunks ? A.size[A.n_chunks - 1] * 2 : FIRST_CHUNK_BYTES;
  if (size < at_least) size = at_least;
  A.base[A.n_chunks] = alloc_aligned(size);
  A.size[A.n_chunks] = size;
  A.n_chunks++;
  if (!A.exit_hook) {
    A.exit_hook = 1;
    atexit(hy_arena_release);
  }
}

void *hy_arena_alloc(size_t bytes) {
  size_t need = (bytes + ALIGN - 1) / ALIGN * ALIGN;
  if (need == 0) need = ALIGN;
  while (A.current >= A.n_chunks || A.offset + need > A.size[A.current]) {
    if (A.current < A.n_chunks) {
      A.used_before_current += A.size[A.current]; /* the unused tail counts as used */
      A.current++;
      A.offset = 0;
    }
    if (A.current >= A.n_chunks) add_chunk(need);
  }
  void *p = A.base[A.current] + A.offset;
  A.offset += need;
  size_t used = hy_arena_used();
  if (used > A.peak) A.peak = used;
  return p;
}

void *hy_arena_calloc(size_t bytes) {
  void *p = hy_arena_alloc(bytes);
  memset(p, 0, bytes);
  return p;
}

void hy_arena_reset(void) {
  if (A.n_chunks > 1) {
    size_t total = 0;
    for (int i = 0; i < A.n_chunks; i++) {
      total += A.size[i];
      free(A.base[i]);
    }
    A.n_chunks = 0;
    add_chunk(total);
  }
  A.current = 0;
  A.offset = 0;
  A.used_before_current = 0;
}

hy_arena_mark hy_arena_get_mark(void) { return (hy_arena_mark){A.current, A.offset}; }

void hy_arena_rewind(hy_arena_mark mark) {
  if (mark.chunk > A.current || (mark.chunk == A.current && mark.offset > A.offset))
    hy_die("arena", "rewind to a mark that is not behind the current position");
  A.current = mark.chunk;
  A.offset = mark.offset;
  A.used_before_current = 0;
  for (int i = 0; i < A.current; i++) A.used_before_current += A.size[i];
}

void hy_arena_release(void) {
  for (int i = 0; i < A.n_chunks; i++) free(A.base[i]);
  A.n_chunks = 0;
  A.current = 0;
  A.offset = 0;
  A.used_before_current = 0;
}

size_t hy_arena_used(void) { return A.used_before_current + A.offset; }

size_t hy_arena_peak(void) { return A.peak; }

void hy_arena_peak_reset(void) { A.peak = hy_arena_used(); }

size_t hy_arena_capacity(void) {
  size_t total = 0;
  for (int i = 0; i < A.n_chunks; i++) total += A.size[i];
  return total;
}
