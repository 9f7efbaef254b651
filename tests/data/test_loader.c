/* The batch loader (text windows and MQAR examples, random and sequential, data-parallel shards,
 * saved and restored positions, packed documents) and the shipped corpus it usually reads. */
#include "data/builtin.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "tests/support.h"
#include "util/h5.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(loader, .init = t_temp_init, .fini = t_temp_fini);
TestSuite(corpus, .init = t_temp_init, .fini = t_temp_fini);

/* Token i is i: a row's first input tells its window's start. */
enum { N_TOKENS = 1000, T = 10 };
static hy_token TOKENS[N_TOKENS];

static hy_loader text_loader(int64_t batch, bool random, int rank, int world) {
  for (int i = 0; i < N_TOKENS; i++) TOKENS[i] = (hy_token)i;
  hy_loader l = {.tokens = TOKENS,
                 .n_tokens = N_TOKENS,
                 .batch = batch,
                 .seq_len = T,
                 .random = random,
                 .seed = 5,
                 .rank = rank,
                 .world = world};
  hy_error err;
  cr_assert_eq(hy_loader_check(&l, &err), 0, "%s", err.msg);
  return l;
}

static hy_mqar_config mqar_config(void) {
  return (hy_mqar_config){.vocab = 64, .seq_len = 64, .pairs = 8, .power_a = 0.01};
}

static hy_loader mqar_loader(int64_t batch, bool random, int rank, int world) {
  hy_loader l = {.mqar = mqar_config(),
                 .n_examples = 10,
                 .batch = batch,
                 .seq_len = 64,
                 .random = random,
                 .seed = 3,
                 .rank = rank,
                 .world = world};
  hy_error err;
  cr_assert_eq(hy_loader_check(&l, &err), 0, "%s", err.msg);
  return l;
}

static hy_loader any_loader(bool mqar, int64_t batch, bool random, int rank, int world) {
  return mqar ? mqar_loader(batch, random, rank, world) : text_loader(batch, random, rank, world);
}

Test(loader, targets_are_the_inputs_shifted_by_one) {
  for (int random = 0; random < 2; random++) {
    hy_loader l = text_loader(3, random, 0, 1);
    int32_t in[3 * T], tg[3 * T];
    for (int k = 0; k < 50; k++) {
      hy_loader_next(&l, in, tg, NULL);
      for (int r = 0; r < 3; r++)
        for (int t = 0; t < T; t++) {
          int32_t x = in[r * T + t], y = tg[r * T + t];
          cr_assert(t == 0 || in[r * T + t] == in[r * T + t - 1] + 1, "a contiguous window");
          cr_assert_eq(y, x + 1, "%d -> %d", x, y);
          cr_assert(y < N_TOKENS);
        }
    }
  }
}

/* Random starts reach both ends of the split: 0 and n - T - 1 (whose last target is the last
 * token). */
Test(loader, random_windows_span_the_split) {
  hy_loader l = text_loader(100, true, 0, 1);
  int32_t in[100 * T], tg[100 * T];
  int32_t lo = N_TOKENS, hi = -1;
  for (int k = 0; k < 100; k++) {
    hy_loader_next(&l, in, tg, NULL);
    for (int r = 0; r < 100; r++) {
      lo = in[r * T] < lo ? in[r * T] : lo;
      hi = in[r * T] > hi ? in[r * T] : hi;
    }
  }
  cr_assert_eq(lo, 0);
  cr_assert_eq(hi, N_TOKENS - T - 1);
  cr_assert_eq(l.state.draws, 100 * 100u, "one draw per row");
}

Test(loader, sequential_windows_cover_the_split_in_order) {
  hy_loader l = text_loader(4, false, 0, 1);
  int32_t in[4 * T], tg[4 * T];
  int64_t windows = (N_TOKENS - 1) / T; /* 99: the last target of window 98 is token 990 */
  for (int k = 0; k < 60; k++) {
    hy_loader_next(&l, in, tg, NULL);
    for (int r = 0; r < 4; r++) {
      int64_t w = (k * 4 + r) % windows; /* then around again */
      for (int t = 0; t < T; t++) {
        cr_assert_eq(in[r * T + t], w * T + t, "batch %d row %d", k, r);
        cr_assert_eq(tg[r * T + t], w * T + t + 1);
      }
    }
  }
  cr_assert_eq(l.state.draws, 0u, "sequential mode draws nothing");
  cr_assert_eq(l.state.cursor, 60 * 4);
}

Test(loader, mqar_batches_are_the_generators_examples) {
  for (int random = 0; random < 2; random++) {
    hy_loader l = mqar_loader(2, random, 0, 1);
    int32_t in[128], tg[128], ex[64], et[64];
    int seen[10] = {0};
    for (int k = 0; k < 40; k++) {
      hy_loader_next(&l, in, tg, NULL);
      for (int r = 0; r < 2; r++) {
        int64_t index = 0; /* which example is this row? */
        for (; index < 10; index++) {
          hy_mqar_example(&l.mqar, 3, 0, index, ex, et);
          if (!memcmp(in + r * 64, ex, sizeof ex)) break;
        }
        cr_assert(index < 10, "row %d of batch %d is no training example", r, k);
        cr_assert_arr_eq(tg + r * 64, et, sizeof et);
        if (!random) cr_assert_eq(index, (k * 2 + r) % 10, "examples in order");
        seen[index]++;
      }
    }
    for (int i = 0; i < 10; i++) cr_assert(seen[i] > 0, "example %d never drawn", i);
  }
}

/* Save the state, draw k batches, restore into a fresh loader: the same k batches, bitwise. */
Test(loader, restoring_the_state_replays_the_same_batches) {
  for (int mqar = 0; mqar < 2; mqar++)
    for (int random = 0; random < 2; random++) {
      int64_t n = 4 * (mqar ? 64 : T);
      int32_t *in = malloc((size_t)n * sizeof *in), *tg = malloc((size_t)n * sizeof *tg);
      int32_t *a = malloc((size_t)(10 * n) * sizeof *a), *b = malloc((size_t)(10 * n) * sizeof *b);
      hy_loader l = any_loader(mqar, 4, random, 0, 1);
      for (int k = 0; k < 3; k++) hy_loader_next(&l, in, tg, NULL);
      hy_loader_state saved = l.state; /* what a checkpoint keeps */
      for (int k = 0; k < 5; k++) hy_loader_next(&l, a + 2 * k * n, a + (2 * k + 1) * n, NULL);
      hy_loader fresh = any_loader(mqar, 4, random, 0, 1);
      fresh.state = saved;
      for (int k = 0; k < 5; k++) hy_loader_next(&fresh, b + 2 * k * n, b + (2 * k + 1) * n, NULL);
      cr_assert_arr_eq(a, b, (size_t)(10 * n) * sizeof *a, "mqar %d random %d", mqar, random);
      cr_assert_eq(fresh.state.draws, l.state.draws);
      cr_assert_eq(fresh.state.cursor, l.state.cursor);
      free(in);
      free(tg);
      free(a);
      free(b);
    }
}

/* world ranks with batch B see together, row for row, what one loader with batch world * B
 * sees. */
Test(loader, data_parallel_ranks_split_one_global_batch) {
  for (int mqar = 0; mqar < 2; mqar++)
    for (int random = 0; random < 2; random++)
      for (int world = 2; world <= 3; world++) {
        int64_t B = 3, len = mqar ? 64 : T, n = B * len;
        hy_loader one = any_loader(mqar, world * B, random, 0, 1), ranks[3];
        for (int r = 0; r < world; r++) ranks[r] = any_loader(mqar, B, random, r, world);
        int32_t *all = malloc((size_t)(world * n) * sizeof *all);
        int32_t *all_t = malloc((size_t)(world * n) * sizeof *all_t);
        int32_t *part = malloc((size_t)n * sizeof *part),
                *part_t = malloc((size_t)n * sizeof *part);
        for (int k = 0; k < 10; k++) {
          hy_loader_next(&one, all, all_t, NULL);
          for (int r = 0; r < world; r++) {
            hy_loader_next(&ranks[r], part, part_t, NULL);
            cr_assert_arr_eq(all + r * n, part, (size_t)n * sizeof *part,
                             "mqar %d random %d world %d rank %d batch %d", mqar, random, world, r,
                             k);
            cr_assert_arr_eq(all_t + r * n, part_t, (size_t)n * sizeof *part);
            cr_assert_eq(ranks[r].state.draws, one.state.draws, "one position for all ranks");
            cr_assert_eq(ranks[r].state.cursor, one.state.cursor);
          }
        }
        free(all);
        free(all_t);
        free(part);
        free(part_t);
      }
}

Test(loader, the_eval_loader_walks_the_validation_split_from_the_start) {
  hy_token val[25];
  for (int i = 0; i < 25; i++) val[i] = (hy_token)(500 + i);
  hy_loader train = text_loader(2, true, 0, 1);
  int32_t in[2 * T], tg[2 * T];
  hy_loader_next(&train, in, tg, NULL);
  hy_loader ev = hy_loader_eval(&train, val, 25, NULL, 0, 0);
  hy_error err;
  cr_assert_eq(hy_loader_check(&ev, &err), 0, "%s", err.msg);
  cr_assert(!ev.random);
  cr_assert_eq(ev.state.draws, 0u);
  cr_assert_eq(ev.state.cursor, 0);
  for (int k = 0; k < 3; k++) { /* 2 windows of 10 fit in 25 tokens: 0, 1, 0, 1, ... */
    hy_loader_next(&ev, in, tg, NULL);
    for (int r = 0; r < 2; r++) {
      cr_assert_eq(in[r * T], 500 + r * T);
      cr_assert_eq(tg[r * T + T - 1], 500 + r * T + T);
    }
  }
  /* MQAR: validation examples, in order */
  hy_loader mtrain = mqar_loader(2, true, 0, 1);
  hy_loader mev = hy_loader_eval(&mtrain, NULL, 0, NULL, 0, 3);
  int32_t min[128], mtg[128], ex[64], et[64];
  hy_loader_next(&mev, min, mtg, NULL);
  hy_loader_next(&mev, min, mtg, NULL);
  hy_mqar_example(&mev.mqar, 3, 1, 2, ex, et); /* rows 2, 0 of the second batch */
  cr_assert_arr_eq(min, ex, sizeof ex);
  hy_mqar_example(&mev.mqar, 3, 1, 0, ex, et);
  cr_assert_arr_eq(min + 64, ex, sizeof ex);
}

Test(loader, batches_as_step_tensors) {
  hy_loader a = text_loader(3, true, 0, 1), b = text_loader(3, true, 0, 1);
  hy_tensor *in, *tg, *pos;
  int32_t rin[3 * T], rtg[3 * T];
  hy_loader_batch(&a, &in, &tg, &pos);
  cr_assert_null(pos, "no positions for one stream");
  hy_loader_next(&b, rin, rtg, NULL);
  cr_assert_eq(in->dtype, HY_I32);
  cr_assert_eq(in->ndim, 2);
  cr_assert(in->shape[0] == 3 && in->shape[1] == T && tg->shape[0] == 3 && tg->shape[1] == T);
  cr_assert(!in->persistent);
  cr_assert_arr_eq(in->data, rin, sizeof rin);
  cr_assert_arr_eq(tg->data, rtg, sizeof rtg);
}

Test(loader, bad_loaders_are_named) {
  hy_loader l;
  hy_error err;
  l = text_loader(2, true, 0, 1);
  l.n_tokens = T; /* a window needs T + 1 tokens */
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "a split of 10 tokens, fewer than seq_len + 1 = 11"), "%s", err.msg);
  l = text_loader(2, true, 0, 1);
  l.rank = 2;
  l.world = 2;
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "rank 2 of a world of 2"), "%s", err.msg);
  l = text_loader(2, true, 0, 1);
  l.batch = 0;
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "batch 0"), "%s", err.msg);
  l = mqar_loader(2, true, 0, 1);
  l.n_examples = 0;
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "0 MQAR examples"), "%s", err.msg);
  l = mqar_loader(2, true, 0, 1);
  l.seq_len = 32;
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "MQAR examples of 64 tokens, batches of 32"), "%s", err.msg);
  l = mqar_loader(2, true, 0, 1);
  l.mqar.pairs = 40;
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "loader: MQAR: "), "%s", err.msg);
}

/* ---- packed documents ---- */

/* Where documents start in TOKENS. With T = 10, sequential rows begin at 0, 10, 20, ...: the row
 * at 0 holds documents of one token (3, 4) and a start at its last token (9); the row at 10 begins
 * with a start; the row at 20 ends just before one (30), whose target is then ignored; the rows at
 * 40 .. 90 lie inside one document, which began on an earlier row. */
static const int64_t DOCS[] = {0, 3, 4, 9, 10, 15, 25, 30, 100, 101, 102, 250, 600, 997};
enum { N_DOCS = sizeof DOCS / sizeof *DOCS };

static hy_loader docs_loader(int64_t batch, bool random, int rank, int world) {
  hy_loader l = text_loader(batch, random, rank, world);
  l.docs = DOCS;
  l.n_docs = N_DOCS;
  l.documents = true;
  return l;
}

static bool starts_a_document(int64_t g) {
  for (int i = 0; i < N_DOCS; i++)
    if (DOCS[i] == g) return true;
  return false;
}

/* A row from `start` against its definition, found by walking the documents one by one: each
 * token's position counts from its document's start or the row's, whichever is later, and a
 * target that begins another document is ignored. */
static void expect_row(int64_t start, const int32_t *in, const int32_t *tg, const int32_t *pos,
                       const char *where) {
  for (int64_t t = 0; t < T; t++) {
    int64_t g = start + t, begins = start;
    for (int i = 0; i < N_DOCS; i++)
      if (DOCS[i] <= g && DOCS[i] > begins) begins = DOCS[i];
    cr_assert_eq(in[t], g, "%s: a window of the split", where);
    cr_assert_eq(pos[t], g - begins, "%s: token %lld at position %d, not %lld", where, (long long)g,
                 pos[t], (long long)(g - begins));
    int32_t want = starts_a_document(g + 1) ? HY_LOADER_IGNORE : (int32_t)(g + 1);
    cr_assert_eq(tg[t], want, "%s: the target of token %lld", where, (long long)g);
  }
}

Test(loader, documents_give_positions_and_ignore_targets_across_a_start) {
  hy_loader l = docs_loader(3, false, 0, 1);
  int32_t in[3 * T], tg[3 * T], pos[3 * T];
  char where[64];
  for (int k = 0; k < 40; k++) { /* 120 rows: the 99 windows, then around again */
    hy_loader_next(&l, in, tg, pos);
    for (int r = 0; r < 3; r++) {
      snprintf(where, sizeof where, "batch %d row %d", k, r);
      expect_row(((k * 3 + r) % 99) * T, in + r * T, tg + r * T, pos + r * T, where);
    }
  }
  /* the rows the documents were placed for, by hand */
  hy_loader one = docs_loader(1, false, 0, 1);
  int32_t want_pos[4][T] = {{0, 1, 2, 0, 0, 1, 2, 3, 4, 0},
                            {0, 1, 2, 3, 4, 0, 1, 2, 3, 4},
                            {0, 1, 2, 3, 4, 0, 1, 2, 3, 4},
                            {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
  /* the tokens whose next one begins a document: 1 where the target is ignored */
  int32_t want_ignored[4][T] = {{0, 0, 1, 1, 0, 0, 0, 0, 1, 1},
                                {0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
                                {0, 0, 0, 0, 1, 0, 0, 0, 0, 1},
                                {0}};
  for (int r = 0; r < 4; r++) {
    hy_loader_next(&one, in, tg, pos);
    cr_assert_arr_eq(pos, want_pos[r], sizeof want_pos[r], "row %d", r);
    for (int t = 0; t < T; t++)
      cr_assert_eq(tg[t] == HY_LOADER_IGNORE, want_ignored[r][t], "row %d token %d", r, t);
  }
  hy_loader_next(&one, in, tg, pos); /* row 4 begins inside the document of 30 */
  for (int t = 0; t < T; t++) cr_assert_eq(pos[t], t);
}

/* Random rows, and every rank's share of them: the same definition wherever they start. */
Test(loader, documents_at_random_and_across_ranks) {
  for (int world = 1; world <= 3; world++) {
    hy_loader one = docs_loader(world * 4, true, 0, 1), ranks[3];
    for (int r = 0; r < world; r++) ranks[r] = docs_loader(4, true, r, world);
    int32_t in[12 * T], tg[12 * T], pos[12 * T], part[3][4 * T];
    char where[64];
    for (int k = 0; k < 30; k++) {
      hy_loader_next(&one, in, tg, pos);
      for (int r = 0; r < world * 4; r++) {
        snprintf(where, sizeof where, "world %d batch %d row %d", world, k, r);
        expect_row(in[r * T], in + r * T, tg + r * T, pos + r * T, where);
      }
      for (int r = 0; r < world; r++) {
        hy_loader_next(&ranks[r], part[0], part[1], part[2]);
        cr_assert_arr_eq(part[0], in + r * 4 * T, sizeof part[0], "world %d rank %d", world, r);
        cr_assert_arr_eq(part[1], tg + r * 4 * T, sizeof part[1]);
        cr_assert_arr_eq(part[2], pos + r * 4 * T, sizeof part[2]);
        cr_assert_eq(ranks[r].state.draws, one.state.draws);
      }
    }
  }
}

/* Packing changes no row: the stream's windows, its rng draws and its position in the split,
 * and its targets but the ignored ones. */
Test(loader, documents_draw_the_rows_of_the_stream) {
  for (int random = 0; random < 2; random++) {
    hy_loader stream = text_loader(5, random, 0, 1), packed = docs_loader(5, random, 0, 1);
    int32_t in[5 * T], tg[5 * T], pin[5 * T], ptg[5 * T], pos[5 * T];
    int ignored = 0;
    for (int k = 0; k < 20; k++) {
      hy_loader_next(&stream, in, tg, NULL);
      hy_loader_next(&packed, pin, ptg, pos);
      cr_assert_arr_eq(in, pin, sizeof in);
      for (int i = 0; i < 5 * T; i++) {
        cr_assert(ptg[i] == tg[i] || ptg[i] == HY_LOADER_IGNORE);
        ignored += ptg[i] == HY_LOADER_IGNORE;
      }
      cr_assert_eq(stream.state.draws, packed.state.draws);
      cr_assert_eq(stream.state.cursor, packed.state.cursor);
    }
    cr_assert_gt(ignored, 0, "random %d: no row held a boundary", random);
  }
}

/* What a checkpoint keeps of a documents run replays its batches, positions included. */
Test(loader, documents_restore_to_the_same_batches) {
  for (int random = 0; random < 2; random++) {
    hy_loader l = docs_loader(4, random, 0, 1);
    int32_t in[4 * T], tg[4 * T], pos[4 * T], a[3][4 * T], b[3][4 * T];
    for (int k = 0; k < 7; k++) hy_loader_next(&l, in, tg, pos);
    hy_loader fresh = docs_loader(4, random, 0, 1);
    fresh.state = l.state;
    for (int k = 0; k < 3; k++) {
      hy_loader_next(&l, a[0], a[1], a[2]);
      hy_loader_next(&fresh, b[0], b[1], b[2]);
      cr_assert_arr_eq(a, b, sizeof a, "random %d batch %d", random, k);
    }
  }
}

/* An MQAR example is one document; a split without starts is one too; the evaluation loader
 * walks the validation split's documents. */
Test(loader, documents_of_mqar_of_one_text_and_of_the_validation_split) {
  hy_loader stream = mqar_loader(2, true, 0, 1), packed = stream;
  packed.documents = true;
  int32_t in[128], tg[128], pin[128], ptg[128], pos[128];
  hy_loader_next(&stream, in, tg, NULL);
  hy_loader_next(&packed, pin, ptg, pos);
  cr_assert_arr_eq(in, pin, sizeof in);
  cr_assert_arr_eq(tg, ptg, sizeof tg, "MQAR's labels as they are");
  for (int i = 0; i < 128; i++) cr_assert_eq(pos[i], i % 64);
  hy_loader one = text_loader(2, true, 0, 1);
  one.documents = true;
  int32_t oin[2 * T], otg[2 * T], opos[2 * T];
  hy_loader_next(&one, oin, otg, opos);
  for (int i = 0; i < 2 * T; i++) {
    cr_assert_eq(opos[i], i % T, "a row of one document counts from its start");
    cr_assert_eq(otg[i], oin[i] + 1, "and ignores no target");
  }
  hy_token val[25];
  int64_t val_docs[] = {0, 12};
  for (int i = 0; i < 25; i++) val[i] = (hy_token)(500 + i);
  hy_loader ev = hy_loader_eval(&one, val, 25, val_docs, 2, 0);
  hy_error err;
  cr_assert_eq(hy_loader_check(&ev, &err), 0, "%s", err.msg);
  hy_loader_next(&ev, oin, otg, opos);
  cr_assert_eq(oin[T], 510, "the second window, from token 10 of /val");
  cr_assert_eq(opos[T + 1], 1);
  cr_assert_eq(otg[T + 1], HY_LOADER_IGNORE, "/val's second document begins at 12");
  cr_assert_eq(opos[T + 2], 0);
  cr_assert_eq(opos[T + 3], 1);
}

Test(loader, documents_as_step_tensors_and_bad_starts) {
  hy_loader a = docs_loader(3, true, 0, 1), b = docs_loader(3, true, 0, 1);
  hy_tensor *in, *tg, *pos;
  int32_t rin[3 * T], rtg[3 * T], rpos[3 * T];
  hy_loader_batch(&a, &in, &tg, &pos);
  hy_loader_next(&b, rin, rtg, rpos);
  cr_assert(pos && pos->dtype == HY_I32 && pos->shape[0] == 3 && pos->shape[1] == T);
  cr_assert_arr_eq(pos->data, rpos, sizeof rpos);
  cr_assert_arr_eq(tg->data, rtg, sizeof rtg);
  hy_error err;
  hy_loader l = docs_loader(3, true, 0, 1);
  l.docs = DOCS + 1; /* from 3 */
  l.n_docs = N_DOCS - 1;
  cr_assert_neq(hy_loader_check(&l, &err), 0);
  cr_assert(strstr(err.msg, "13 document starts, not from 0"), "%s", err.msg);
}

/* ---- the shipped corpus ---- */

enum { CORPUS_BYTES = 5057280 }; /* data/corpus/README.md */

Test(corpus, resolves_and_prepares_into_the_data_dir) {
  const char *cache = t_in_temp("cache/sub");
  setenv("HYLA_DATA_DIR", cache, 1);
  char path[512];
  hy_error err;
  cr_assert_eq(hy_dataset_resolve("shakespeare", path, sizeof path, &err), 0, "%s", err.msg);
  cr_assert(!strncmp(path, cache, strlen(cache)), "%s is not in %s", path, cache);
  cr_assert(strstr(path, "/shakespeare-360e8f92.h5"), "%s: named by the corpus's CRC-32", path);
  hy_dataset ds;
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.vocab, 256);
  cr_assert_str_eq(ds.tokenizer, "bytes");
  cr_assert_eq(ds.n_train + ds.n_val, CORPUS_BYTES);
  cr_assert_eq(ds.n_val, (int64_t)(CORPUS_BYTES * 0.05));
  cr_assert(!memcmp((hy_token[]){'A', 'L', 'L', '\''}, ds.train, 8), "ALL'S WELL comes first");
  cr_assert_eq(ds.val[ds.n_val - 1], '\n', "the text ends with a newline");
  /* one blank line between works */
  const char *seam = "THE END\n\nANTONY AND CLEOPATRA";
  int64_t found = 0, len = (int64_t)strlen(seam);
  for (int64_t i = 0; i + len <= ds.n_train && !found; i++) {
    int64_t j = 0;
    while (j < len && ds.train[i + j] == (hy_token)seam[j]) j++;
    found = j == len;
  }
  cr_assert(found, "no blank line between the first two works");
  hy_dataset_close(&ds);
  /* the second time, the prepared file is reused as it is */
  struct stat before, after;
  cr_assert_eq(stat(path, &before), 0);
  char again[512];
  cr_assert_eq(hy_dataset_resolve("shakespeare", again, sizeof again, &err), 0, "%s", err.msg);
  cr_assert_str_eq(path, again);
  cr_assert_eq(stat(path, &after), 0);
  cr_assert_eq(before.st_ino, after.st_ino);
  cr_assert_eq(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  /* unless an older hyla prepared it in HDF5's old layout, which is not read: prepared afresh */
  H5Fclose(H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  cr_assert_eq(hy_h5_superblock_version(path), 0);
  cr_assert_eq(hy_dataset_resolve("shakespeare", again, sizeof again, &err), 0, "%s", err.msg);
  cr_assert_eq(hy_h5_superblock_version(path), 3);
  cr_assert_eq(hy_dataset_open(path, &ds, &err), 0, "%s", err.msg);
  cr_assert_eq(ds.n_train + ds.n_val, CORPUS_BYTES);
  hy_dataset_close(&ds);
  unsetenv("HYLA_DATA_DIR");
}

Test(corpus, other_names_are_paths) {
  hy_error err;
  char path[512];
  cr_assert_neq(hy_dataset_resolve("tinystories", path, sizeof path, &err), 0);
  cr_assert(strstr(err.msg, "dataset 'tinystories' is neither a file nor a built-in dataset "
                            "(shakespeare)"),
            "%s", err.msg);
  const char *file = t_in_temp("mine.h5");
  hy_token t[] = {1, 2, 3};
  cr_assert_eq(hy_dataset_write(file, t, 3, t, 3, 4, "bytes", &err), 0, "%s", err.msg);
  cr_assert_eq(hy_dataset_resolve(file, path, sizeof path, &err), 0, "%s", err.msg);
  cr_assert_str_eq(path, file);
  char tiny[8];
  cr_assert_neq(hy_dataset_resolve(file, tiny, sizeof tiny, &err), 0);
  cr_assert(strstr(err.msg, "path too long"), "%s", err.msg);
}
