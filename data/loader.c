#include "data/loader.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

/* The start of the sequential window with number w: windows of T + 1 tokens (inputs and the one
 * after) step by T and wrap around at the end. */
static int64_t window_start(const hy_loader *l, int64_t w) {
  int64_t windows = (l->n_tokens - 1) / l->seq_len;
  return (w % windows) * l->seq_len;
}

static void text_row(const hy_loader *l, int64_t start, int32_t *in, int32_t *tg) {
  for (int64_t t = 0; t < l->seq_len; t++) {
    in[t] = l->tokens[start + t];
    tg[t] = l->tokens[start + t + 1];
  }
}

void hy_loader_next(hy_loader *l, int32_t *inputs, int32_t *targets) {
  if (l->world < 1 || l->rank < 0 || l->rank >= l->world || l->batch < 1)
    hy_die("loader", "rank %d of %d with batch %lld", l->rank, l->world, (long long)l->batch);
  bool mqar = l->mqar.seq_len > 0;
  int64_t rows = l->batch * l->world, first = l->batch * l->rank, T = l->seq_len;
  hy_rng rng = {l->seed, l->state.draws};
  for (int64_t r = 0; r < rows; r++) {
    /* Every rank draws every row's number, so all ranks stay on one sequence. */
    uint64_t u = l->random ? hy_rng_u64(&rng) : 0;
    if (r < first || r >= first + l->batch) continue;
    int32_t *in = inputs + (r - first) * T, *tg = targets + (r - first) * T;
    if (mqar) {
      int64_t index = l->random ? (int64_t)(u % (uint64_t)l->n_examples)
                                : (l->state.cursor + r) % l->n_examples;
      hy_mqar_example(&l->mqar, l->seed, l->split, index, in, tg);
    } else {
      int64_t span = l->n_tokens - T; /* starts 0 .. n - T - 1 leave room for the last target */
      int64_t start =
          l->random ? (int64_t)(u % (uint64_t)span) : window_start(l, l->state.cursor + r);
      text_row(l, start, in, tg);
    }
  }
  l->state.draws = rng.counter;
  l->state.cursor += rows;
}
