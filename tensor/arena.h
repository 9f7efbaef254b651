/* The per-step arena: bump allocation for everything a training step makes (activations, their
 * gradients, tape nodes), released all at once by a reset. No reference counts, no per-op free.
 * Device tensors' memory comes from a second arena on the GPU that marks and resets move along.
 * One exception: the backward pass hands back each intermediate's gradient once its op's
 * backward has run (hy_arena_recycle), and a later allocation of the same size takes it, so the
 * gradients of a deep model's layers share memory instead of piling up. */
#ifndef HYLA_ARENA_H
#define HYLA_ARENA_H

#include "tensor/tensor.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int chunk;
  size_t offset;
  size_t taken; /* how many given-back blocks had been handed out again */
  int device_chunk;
  size_t device_offset;
  size_t device_taken;
} hy_arena_mark;

void *hy_arena_alloc(size_t bytes); /* 64-byte aligned, uninitialized */
void *hy_arena_calloc(size_t bytes);
void *hy_arena_alloc_on(hy_device device, size_t bytes); /* host or GPU memory, uninitialized */
/* Give back a block this step allocated (of `bytes`, as asked for) for a later allocation of the
 * same size on the same device to reuse; forgotten at a reset or rewind. */
void hy_arena_recycle(hy_device device, void *p, size_t bytes);
void hy_arena_reset(void); /* forget everything; keep (and coalesce) the memory */
hy_arena_mark hy_arena_get_mark(void);
/* Forget everything allocated after the mark; given-back blocks handed out since become spare
 * again. */
void hy_arena_rewind(hy_arena_mark mark);
void hy_arena_release(void); /* give all memory back to the system */

size_t hy_arena_used(void);        /* bytes handed out since the last reset */
size_t hy_arena_peak(void);        /* most bytes in use at once since the start or the last... */
void hy_arena_peak_reset(void);    /* ...peak reset (to what is in use now) */
size_t hy_arena_capacity(void);    /* bytes held from the system */
size_t hy_arena_device_peak(void); /* the GPU arena's peak, likewise */
/* Counts the times the GPU arena gave its memory back (a reset folding chunks, a release): a CUDA
 * graph captured over arena memory is valid while this stays the same. */
uint64_t hy_arena_device_generation(void);
size_t hy_arena_device_capacity(void);
/* Fill both arenas' unused memory with 0xff bytes (NaN as a float), so that a test sees any output
 * element an op leaves unwritten; from then on recycled blocks are filled likewise. */
void hy_arena_poison_free(void);

#ifdef __cplusplus
}
#endif

#endif
