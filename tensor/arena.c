#include "tensor/arena.h"
#include "tensor/device.h"
#include "tensor/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64, MAX_CHUNKS = 128 };
#define FIRST_CHUNK_BYTES ((size_t)64 << 20)
/* Chunks double up to this size, then stay there: the first step of a large model holds at most
 * this much more than it needs, and the reset after it folds everything into one chunk of the
 * most the step used. */
#define LARGEST_GROWTH ((size_t)2 << 30)

/* Chunks are filled in order; a reset folds them into one chunk of their total size, so after the
 * first step every step bump-allocates from a single block and memory stays flat. One arena holds
 * host memory and one device memory; marks, rewinds and resets move both together. */
/* A block given back by hy_arena_recycle, `need` bytes (rounded as alloc_in rounds). */
typedef struct {
  void *p;
  size_t need;
} recycled;

typedef struct {
  hy_device device;
  recycled *spare; /* blocks to reuse before bumping; a step's backward gives back thousands */
  size_t n_spare, cap_spare;
  /* The spare blocks handed out again, in order: a rewind gives back those taken after its mark
   * (scratch between a mark and its rewind would otherwise keep them till the step's reset). */
  recycled *taken;
  size_t n_taken, cap_taken;
  char *base[MAX_CHUNKS];
  size_t size[MAX_CHUNKS];
  int n_chunks;
  int current;
  size_t offset;
  size_t used_before_current; /* the sizes of the chunks before `current` */
  size_t peak;
  size_t most; /* the most used at once since the start or the last release */
} arena;

static arena HOST = {.device = HY_CPU}, DEVICE = {.device = HY_CUDA};
static uint64_t device_generation; /* hy_arena_device_generation */
static int exit_hook;
static bool poisoning; /* hy_arena_poison_free was called: recycled blocks are poisoned too */

static void add_chunk(arena *A, size_t at_least) {
  if (A->n_chunks == MAX_CHUNKS) hy_die("arena", "more than %d chunks", MAX_CHUNKS);
  size_t size = A->n_chunks ? A->size[A->n_chunks - 1] * 2 : FIRST_CHUNK_BYTES;
  if (size > LARGEST_GROWTH) size = LARGEST_GROWTH;
  if (size < at_least) size = at_least;
  A->base[A->n_chunks] = hy_device_malloc(A->device, size);
  A->size[A->n_chunks] = size;
  A->n_chunks++;
  if (!exit_hook) {
    exit_hook = 1;
    atexit(hy_arena_release);
  }
}

static size_t used(const arena *A) { return A->used_before_current + A->offset; }

static size_t rounded(size_t bytes) {
  size_t need = (bytes + ALIGN - 1) / ALIGN * ALIGN;
  return need ? need : ALIGN;
}

static void push(recycled **list, size_t *n, size_t *cap, recycled block) {
  if (*n == *cap) {
    size_t grown = *cap ? 2 * *cap : 256;
    recycled *more = realloc(*list, grown * sizeof *more);
    if (!more) hy_die("arena", "out of memory");
    *list = more;
    *cap = grown;
  }
  (*list)[(*n)++] = block;
}

/* The most recently given back block of exactly `need` bytes, taken off the list; NULL if none.
 * Newest first: a backward pass frees and asks for the same sizes layer after layer. */
static void *take_spare(arena *A, size_t need) {
  for (size_t i = A->n_spare; i-- > 0;)
    if (A->spare[i].need == need) {
      recycled block = A->spare[i];
      A->spare[i] = A->spare[--A->n_spare];
      push(&A->taken, &A->n_taken, &A->cap_taken, block);
      return block.p;
    }
  return NULL;
}

static void give_back(arena *A, recycled block) {
  if (poisoning) hy_device_memset(A->device, block.p, 0xff, block.need);
  push(&A->spare, &A->n_spare, &A->cap_spare, block);
}

static void *alloc_in(arena *A, size_t bytes) {
  size_t need = rounded(bytes);
  void *spare = take_spare(A, need);
  if (spare) return spare;
  while (A->current >= A->n_chunks || A->offset + need > A->size[A->current]) {
    if (A->current < A->n_chunks) {
      A->used_before_current += A->size[A->current]; /* the unused tail counts as used */
      A->current++;
      A->offset = 0;
    }
    if (A->current >= A->n_chunks) add_chunk(A, need);
  }
  void *p = A->base[A->current] + A->offset;
  A->offset += need;
  if (used(A) > A->peak) A->peak = used(A);
  if (used(A) > A->most) A->most = used(A);
  return p;
}

void *hy_arena_alloc(size_t bytes) { return alloc_in(&HOST, bytes); }

void *hy_arena_alloc_on(hy_device device, size_t bytes) {
  return alloc_in(device == HY_CPU ? &HOST : &DEVICE, bytes);
}

void hy_arena_recycle(hy_device device, void *p, size_t bytes) {
  give_back(device == HY_CPU ? &HOST : &DEVICE, (recycled){p, rounded(bytes)});
}

void *hy_arena_calloc(size_t bytes) {
  void *p = hy_arena_alloc(bytes);
  memset(p, 0, bytes);
  return p;
}

static void free_chunks(arena *A) {
  for (int i = 0; i < A->n_chunks; i++) hy_device_free(A->device, A->base[i]);
  if (A->n_chunks && A->device == HY_CUDA) device_generation++;
  A->n_chunks = 0;
}

/* Several chunks become one that holds the most any step has used (the unused tails of chunks
 * counted as used), so the same step fits in it again. */
static void reset(arena *A) {
  A->n_spare = A->n_taken = 0;
  if (A->n_chunks > 1) {
    free_chunks(A);
    add_chunk(A, A->most);
  }
  A->current = 0;
  A->offset = 0;
  A->used_before_current = 0;
}

void hy_arena_reset(void) {
  reset(&HOST);
  reset(&DEVICE);
}

hy_arena_mark hy_arena_get_mark(void) {
  return (hy_arena_mark){HOST.current,   HOST.offset,   HOST.n_taken,
                         DEVICE.current, DEVICE.offset, DEVICE.n_taken};
}

/* p lies in a chunk before `chunk`, or in it before `offset`. */
static bool before_mark(const arena *A, const void *p, int chunk, size_t offset) {
  for (int i = 0; i <= chunk && i < A->n_chunks; i++) {
    const char *b = A->base[i];
    if ((const char *)p >= b && (const char *)p < b + A->size[i])
      return i < chunk || (size_t)((const char *)p - b) < offset;
  }
  return false;
}

static bool is_spare(const arena *A, const void *p) {
  for (size_t i = 0; i < A->n_spare; i++)
    if (A->spare[i].p == p) return true;
  return false;
}

static void rewind_to(arena *A, int chunk, size_t offset, size_t n_taken) {
  if (chunk > A->current || (chunk == A->current && offset > A->offset) || n_taken > A->n_taken)
    hy_die("arena", "rewind to a mark that is not behind the current position");
  /* Given-back blocks past the mark are forgotten with it; those before it stay (a backward pass
   * that marks and rewinds around an op keeps reusing the gradients spent before), and so do the
   * ones before it that were handed out since: what was allocated after the mark is dead. A block
   * taken, given back and taken again is on both lists once each: it goes back once. */
  size_t kept = 0;
  for (size_t i = 0; i < A->n_spare; i++)
    if (before_mark(A, A->spare[i].p, chunk, offset)) A->spare[kept++] = A->spare[i];
  A->n_spare = kept;
  for (size_t i = n_taken; i < A->n_taken; i++)
    if (before_mark(A, A->taken[i].p, chunk, offset) && !is_spare(A, A->taken[i].p))
      give_back(A, A->taken[i]);
  A->n_taken = n_taken;
  A->current = chunk;
  A->offset = offset;
  A->used_before_current = 0;
  for (int i = 0; i < A->current; i++) A->used_before_current += A->size[i];
}

void hy_arena_rewind(hy_arena_mark mark) {
  rewind_to(&HOST, mark.chunk, mark.offset, mark.taken);
  rewind_to(&DEVICE, mark.device_chunk, mark.device_offset, mark.device_taken);
}

static void release(arena *A) {
  free_chunks(A);
  free(A->spare);
  free(A->taken);
  A->spare = A->taken = NULL;
  A->n_spare = A->cap_spare = A->n_taken = A->cap_taken = 0;
  A->most = 0;
  A->current = 0;
  A->offset = 0;
  A->used_before_current = 0;
}

void hy_arena_release(void) {
  release(&HOST);
  release(&DEVICE);
}

size_t hy_arena_used(void) { return used(&HOST); }

size_t hy_arena_peak(void) { return HOST.peak; }

void hy_arena_peak_reset(void) {
  HOST.peak = used(&HOST);
  DEVICE.peak = used(&DEVICE);
}

static size_t capacity(const arena *A) {
  size_t total = 0;
  for (int i = 0; i < A->n_chunks; i++) total += A->size[i];
  return total;
}

size_t hy_arena_capacity(void) { return capacity(&HOST); }

size_t hy_arena_device_capacity(void) { return capacity(&DEVICE); }

size_t hy_arena_device_peak(void) { return DEVICE.peak; }

uint64_t hy_arena_device_generation(void) { return device_generation; }

static void poison(arena *A) {
  for (int i = A->current; i < A->n_chunks; i++) {
    size_t from = i == A->current ? A->offset : 0;
    hy_device_memset(A->device, A->base[i] + from, 0xff, A->size[i] - from);
  }
}

void hy_arena_poison_free(void) {
  poisoning = true;
  poison(&HOST);
  poison(&DEVICE);
}
