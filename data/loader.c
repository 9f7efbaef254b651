#include "data/loader.h"
#include "tensor/rng.h"

static bool is_mqar(const hy_loader *l) { return l->mqar.seq_len > 0; }

int hy_loader_check(const hy_loader *l, hy_error *err) {
  if (l->world < 1 || l->rank < 0 || l->rank >= l->world)
    return hy_fail(err, "loader: rank %d of a world of %d", l->rank, l->world);
  if (l->batch < 1 || l->seq_len < 1)
    return hy_fail(err, "loader: batch %lld and seq_len %lld, expected both >= 1",
                   (long long)l->batch, (long long)l->seq_len);
  if (is_mqar(l)) {
    const char *why = hy_mqar_check(&l->mqar);
    if (why) return hy_fail(err, "loader: MQAR: %s", why);
    if (l->mqar.seq_len != l->seq_len)
      return hy_fail(err, "loader: MQAR examples of %lld tokens, batches of %lld",
                     (long long)l->mqar.seq_len, (long long)l->seq_len);
    if (l->n_examples < 1)
      return hy_fail(err, "loader: %lld MQAR examples, expected >= 1", (long long)l->n_examples);
    return 0;
  }
  if (!l->tokens || l->n_tokens < l->seq_len + 1)
    return hy_fail(err, "loader: a split of %lld tokens, fewer than seq_len + 1 = %lld",
                   (long long)l->n_tokens, (long long)(l->seq_len + 1));
  if (l->n_docs < 0 || (l->n_docs > 0 && (!l->docs || l->docs[0] != 0)))
    return hy_fail(err, "loader: %lld document starts, not from 0", (long long)l->n_docs);
  return 0;
}

hy_loader hy_loader_eval(const hy_loader *train, const hy_token *val_tokens, int64_t n_val_tokens,
                         const int64_t *val_docs, int64_t n_val_docs, int64_t n_val_examples) {
  hy_loader l = *train;
  l.tokens = val_tokens;
  l.n_tokens = n_val_tokens;
  l.docs = val_docs;
  l.n_docs = n_val_docs;
  l.n_examples = n_val_examples;
  l.split = 1;
  l.random = false;
  l.state = (hy_loader_state){0, 0};
  return l;
}

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

/* The first document start after token `at` (INT64_MAX: none), *k its index in docs. */
static int64_t next_start(const hy_loader *l, int64_t at, int64_t *k) {
  int64_t lo = 0, hi = l->n_docs;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (l->docs[mid] <= at)
      lo = mid + 1;
    else
      hi = mid;
  }
  *k = lo;
  return lo < l->n_docs ? l->docs[lo] : INT64_MAX;
}

/* The positions of a row of text from `start`, and its targets that cross into another document
 * ignored. */
static void text_positions(const hy_loader *l, int64_t start, int32_t *tg, int32_t *pos) {
  int64_t k, next = next_start(l, start, &k);
  int32_t p = 0;
  for (int64_t t = 0; t < l->seq_len; t++) {
    if (start + t == next) { /* a document starts here */
      p = 0;
      next = ++k < l->n_docs ? l->docs[k] : INT64_MAX;
    }
    pos[t] = p++;
    if (start + t + 1 == next) tg[t] = HY_LOADER_IGNORE;
  }
}

void hy_loader_next(hy_loader *l, int32_t *inputs, int32_t *targets, int32_t *positions) {
  hy_error err;
  if (hy_loader_check(l, &err)) hy_die("loader", "%s", err.msg);
  if (l->documents && !positions) hy_die("loader", "packed documents need room for positions");
  bool mqar = is_mqar(l);
  int64_t rows = l->batch * l->world, first = l->batch * l->rank, T = l->seq_len;
  hy_rng rng = {l->seed, l->state.draws};
  for (int64_t r = 0; r < rows; r++) {
    /* Every rank draws every row's number, so all ranks stay on one sequence. */
    uint64_t u = l->random ? hy_rng_u64(&rng) : 0;
    if (r < first || r >= first + l->batch) continue;
    int32_t *in = inputs + (r - first) * T, *tg = targets + (r - first) * T;
    int32_t *pos = l->documents ? positions + (r - first) * T : NULL;
    if (mqar) {
      int64_t index = l->random ? (int64_t)(u % (uint64_t)l->n_examples)
                                : (l->state.cursor + r) % l->n_examples;
      hy_mqar_example(&l->mqar, l->seed, l->split, index, in, tg);
      for (int64_t t = 0; pos && t < T; t++) pos[t] = (int32_t)t; /* one document */
    } else {
      int64_t span = l->n_tokens - T; /* starts 0 .. n - T - 1 leave room for the last target */
      int64_t start =
          l->random ? (int64_t)(u % (uint64_t)span) : window_start(l, l->state.cursor + r);
      text_row(l, start, in, tg);
      if (pos) text_positions(l, start, tg, pos);
    }
  }
  l->state.draws = rng.counter;
  l->state.cursor += rows;
}

void hy_loader_batch(hy_loader *l, hy_tensor **inputs, hy_tensor **targets, hy_tensor **positions) {
  hy_shape s = HY_SHAPE(l->batch, l->seq_len);
  *inputs = hy_empty_on(HY_CPU, HY_I32, s); /* filled on the host */
  *targets = hy_empty_on(HY_CPU, HY_I32, s);
  *positions = l->documents ? hy_empty_on(HY_CPU, HY_I32, s) : NULL;
  hy_loader_next(l, (*inputs)->data, (*targets)->data,
                 *positions ? (int32_t *)(*positions)->data : NULL);
}
