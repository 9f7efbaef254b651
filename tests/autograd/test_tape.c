/* The tape: a tensor used twice, a diamond, no-grad scopes, gradients accumulating in leaves
 * across backward calls and steps, only the output's dependencies running, spent intermediate
 * gradients' memory reused (also across a rewind), a flat arena over 1000 training-like steps,
 * step marks and rewinds, and bad use. */
#include "tests/support.h"

#include <math.h>
#include <stdlib.h>

TestSuite(tape, .fini = hy_step_reset);

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* y = x * x + x: dy/dx = 2x + 1, from three uses of x. */
Test(tape, tensor_used_twice_gets_both_contributions) {
  for (int d = 0; d < 2; d++) {
    hy_tensor *x = t_param(t_randn(DTYPES[d], HY_SHAPE(3, 5), 1));
    hy_backward(hy_sum_all(hy_add(hy_mul(x, x), x)));
    hy_tensor *ref = hy_empty(HY_F64, HY_SHAPE(3, 5));
    for (int i = 0; i < 15; i++) hy_set(ref, i, 2 * hy_get(x, i) + 1);
    /* (1 + x) + x against 2x + 1: one rounding apart. */
    t_expect_close(x->grad, ref, t_tol(DTYPES[d], 1e-15, 1e-6), "2x + 1");
  }
}

/* a -> b = exp(a), a -> c = 3a, (b, c) -> d = b c: dd/da = 3 e^a (a + 1). The intermediate
 * gradients are dd/db = c and dd/dc = b. */
Test(tape, diamond) {
  hy_tensor *a = t_param(t_randn(HY_F64, HY_SHAPE(2, 7), 2));
  hy_tensor *b = hy_exp(a), *c = hy_scale(a, 3), *d = hy_mul(b, c);
  hy_retain_grad(b);
  hy_retain_grad(c);
  hy_backward(hy_sum_all(d));
  hy_tensor *ga = hy_empty(HY_F64, HY_SHAPE(2, 7));
  for (int i = 0; i < 14; i++) {
    double v = hy_get(a, i);
    hy_set(ga, i, 3 * exp(v) * (v + 1));
  }
  t_expect_close(a->grad, ga, 1e-15, "diamond da");
  t_expect_close(b->grad, c, 0.0, "diamond db = c");
  t_expect_close(c->grad, b, 0.0, "diamond dc = b");
}

Test(tape, no_grad_scope_records_nothing) {
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(3, 4), 3));
  hy_tensor *w = t_param(t_randn(HY_F64, HY_SHAPE(4, 2), 4));
  int64_t before = hy_tape_size();
  cr_assert(hy_grad_enabled());
  hy_no_grad_begin();
  cr_assert(!hy_grad_enabled());
  hy_tensor *y = hy_softmax(hy_matmul(hy_exp(x), w));
  hy_tensor *z = hy_sum_all(hy_transpose(y, 0, 1));
  hy_no_grad_begin(); /* scopes nest */
  hy_tensor *u = hy_mul(x, x);
  hy_no_grad_end();
  cr_assert(!hy_grad_enabled(), "the outer scope is still open");
  hy_tensor *v = hy_rmsnorm(x, NULL, 1e-6);
  hy_no_grad_end();
  cr_assert(hy_grad_enabled());
  cr_assert(hy_tape_size() == before, "tape grew from %lld to %lld", (long long)before,
            (long long)hy_tape_size());
  hy_tensor *outs[] = {y, z, u, v};
  for (int i = 0; i < 4; i++)
    cr_assert(!outs[i]->requires_grad && outs[i]->node == NULL, "output %d recorded", i);
  /* Recording resumes after the scope: one node per op. */
  hy_tensor *r = hy_exp(x);
  cr_assert(hy_tape_size() == before + 1 && r->requires_grad && r->node != NULL);
  /* Ops on tensors that need no gradient record nothing either. */
  hy_tensor *plain = t_randn(HY_F64, HY_SHAPE(3, 4), 5);
  hy_tensor *q = hy_mul(plain, plain);
  cr_assert(hy_tape_size() == before + 1 && !q->requires_grad);
}

/* A persistent leaf keeps accumulating: across two backward calls on one graph, and across a
 * step reset, while the intermediate gradients start from zero on every pass. */
Test(tape, gradients_accumulate_in_persistent_leaf) {
  hy_tensor *w = hy_zeros_persistent(HY_F64, HY_SHAPE(2, 3));
  w->requires_grad = true;
  hy_rng rng = hy_rng_new(6);
  hy_fill_normal(w, &rng, 0, 1);
  hy_tensor *x = t_randn(HY_F64, HY_SHAPE(2, 3), 7);
  hy_tensor *y = hy_mul(w, x), *loss = hy_sum_all(y);
  hy_retain_grad(y);
  hy_backward(loss);
  cr_assert(w->grad && w->grad->persistent, "a persistent tensor's gradient is persistent");
  hy_backward(loss);
  for (int i = 0; i < 6; i++) {
    cr_expect(hy_get(w->grad, i) == 2 * hy_get(x, i), "two passes: grad[%d]", i);
    cr_expect(hy_get(y->grad, i) == 1.0, "the intermediate gradient restarts each pass");
  }
  /* The next step: new activations, the same leaf. */
  double xs[6];
  for (int i = 0; i < 6; i++) xs[i] = hy_get(x, i);
  hy_step_reset();
  hy_tensor *x2 = t_randn(HY_F64, HY_SHAPE(2, 3), 8);
  hy_backward(hy_sum_all(hy_mul(w, x2)));
  for (int i = 0; i < 6; i++)
    cr_expect(fabs(hy_get(w->grad, i) - (2 * xs[i] + hy_get(x2, i))) <= 1e-15 * (2 + fabs(xs[i])),
              "after a reset: grad[%d]", i);
  hy_free(w);
}

/* Backward runs only the nodes the output depends on. */
Test(tape, backward_runs_only_dependencies) {
  hy_tensor *a = t_param(t_randn(HY_F64, HY_SHAPE(4), 9));
  hy_tensor *b = t_param(t_randn(HY_F64, HY_SHAPE(4), 10));
  hy_tensor *la = hy_sum_all(hy_exp(a));
  hy_tensor *lb = hy_sum_all(hy_mul(b, b));
  (void)lb;
  hy_backward(la);
  cr_assert(a->grad != NULL && b->grad == NULL, "b's graph ran");
  for (int i = 0; i < 4; i++) cr_expect(hy_get(a->grad, i) == exp(hy_get(a, i)));
}

Test(tape, backward_with_an_output_gradient) {
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(3, 2), 11));
  hy_tensor *y = hy_scale(x, -2.5), *gy = t_randn(HY_F64, HY_SHAPE(3, 2), 12);
  hy_backward_with(y, gy);
  for (int i = 0; i < 6; i++) cr_expect(hy_get(x->grad, i) == -2.5 * hy_get(gy, i));
}

/* A chain of 12 tanh over a 1 MB tensor, backward with and without keeping the intermediates'
 * gradients: the same leaf gradient to the bit, the kept ones there, and without keeping them the
 * backward pass reuses the spent gradients' memory (at least 9 of the 12 blocks saved). */
static size_t chain_backward(bool keep, hy_tensor *x, hy_tensor **links) {
  hy_step_reset();
  hy_tensor *y = x;
  for (int i = 0; i < 12; i++) {
    y = links[i] = hy_tanh(y);
    if (keep) hy_retain_grad(y);
  }
  hy_tensor *loss = hy_sum_all(y);
  size_t forward = hy_arena_used();
  if (x->grad) hy_fill(x->grad, 0);
  hy_backward(loss);
  return hy_arena_used() - forward;
}

Test(tape, spent_gradients_share_memory) {
  hy_tensor *x = hy_empty_persistent(HY_F64, HY_SHAPE(128, 1024));
  hy_rng rng = hy_rng_new(21);
  hy_fill_normal(x, &rng, 0, 1);
  x->requires_grad = true;
  size_t block = sizeof(double) * 128 * 1024;
  hy_tensor *links[12];
  size_t kept = chain_backward(true, x, links);
  for (int i = 0; i < 12; i++) cr_assert(links[i]->grad, "link %d lost its kept gradient", i);
  double kept_grad = hy_get(x->grad, 5);
  size_t spent = chain_backward(false, x, links);
  for (int i = 0; i < 12; i++) cr_assert(!links[i]->grad, "link %d kept its gradient", i);
  cr_assert(hy_get(x->grad, 5) == kept_grad, "the leaf gradient changed: %.17g vs %.17g", kept_grad,
            hy_get(x->grad, 5));
  cr_assert(kept >= spent + 9 * block, "backward took %zu bytes keeping, %zu not (block %zu)", kept,
            spent, block);
  hy_free(x);
}

/* A fresh step's first block of `bytes`, given back at once. */
static char *given_back(size_t bytes) {
  hy_step_reset();
  char *x = hy_arena_alloc(bytes);
  hy_arena_recycle(HY_CPU, x, bytes);
  return x;
}

/* A rewind keeps the blocks given back before its mark and forgets those past it, whose memory the
 * bump allocator hands out again. */
Test(tape, rewind_keeps_recycled_blocks_before_the_mark) {
  size_t mb = (size_t)1 << 20;
  char *x = given_back(mb);
  hy_arena_mark mark = hy_arena_get_mark();
  char *z = hy_arena_alloc(2 * mb);
  hy_arena_recycle(HY_CPU, z, 2 * mb);
  hy_arena_rewind(mark);
  char *w = hy_arena_alloc(3 * mb); /* bumps over z's memory */
  char *again = hy_arena_alloc(2 * mb);
  cr_assert(again >= w + 3 * mb || again + 2 * mb <= w, "a block past the mark was reused");
  cr_assert(hy_arena_alloc(mb) == x, "the block given back before the mark was not reused");
  hy_step_reset();
}

/* Scratch between a mark and its rewind that reused a block given back before the mark hands it
 * back at the rewind (else each op's scratch would keep a gradient's block till the reset), once
 * even when the scratch gave it back and took it again itself. */
Test(tape, rewind_gives_back_the_blocks_its_scratch_reused) {
  size_t mb = (size_t)1 << 20;
  char *x = given_back(mb);
  hy_arena_mark mark = hy_arena_get_mark();
  cr_assert(hy_arena_alloc(mb) == x, "the scratch did not reuse the block");
  hy_arena_rewind(mark);
  size_t used = hy_arena_used();
  cr_assert(hy_arena_alloc(mb) == x, "the rewind kept the block the scratch reused");
  cr_assert(hy_arena_used() == used, "the allocation after the rewind bumped");
  hy_arena_recycle(HY_CPU, x, mb);
  mark = hy_arena_get_mark();
  cr_assert(hy_arena_alloc(mb) == x);
  hy_arena_recycle(HY_CPU, x, mb); /* given back and taken again inside the scratch */
  cr_assert(hy_arena_alloc(mb) == x);
  hy_arena_rewind(mark);
  cr_assert(hy_arena_alloc(mb) == x, "the block was not given back");
  char *next = hy_arena_alloc(mb);
  cr_assert(next != x, "the block was given back twice");
  hy_arena_mark inner = hy_arena_get_mark(); /* a block taken before a mark stays taken */
  hy_arena_rewind(inner);
  cr_assert(hy_arena_alloc(mb) != x, "a block taken before the mark was given back");
  hy_step_reset();
}

/* 1000 steps of forward, backward, an update and a reset: after the first step the arena holds
 * the same memory (one coalesced chunk) and every step uses exactly as much as the second (the
 * first is the same work spread over two chunks). A large activation makes the first step
 * outgrow the first chunk. */
Test(tape, arena_flat_over_1000_steps) {
  hy_tensor *W = hy_zeros_persistent(HY_F32, HY_SHAPE(16, 11));
  hy_tensor *g = hy_zeros_persistent(HY_F32, HY_SHAPE(16));
  W->requires_grad = g->requires_grad = true;
  hy_rng rng = hy_rng_new(13);
  hy_fill_normal(W, &rng, 0, 0.3);
  hy_fill(g, 1.0);
  size_t capacity = 0, used = 0, first_used = 0;
  int64_t tape = 0;
  double first_loss = 0, loss_now = 0;
  for (int step = 0; step < 1000; step++) {
    hy_tensor *x = t_randn(HY_F32, HY_SHAPE(4, 16), 14); /* one fixed batch */
    hy_tensor *t = t_ints(HY_SHAPE(4), (int32_t[]){1, 5, 10, 3});
    hy_empty(HY_F32, HY_SHAPE(20, 1024, 1024)); /* 80 MB: more than the first chunk */
    hy_tensor *h = hy_matmul(hy_rmsnorm(x, g, 1e-6), W);
    hy_tensor *loss = hy_cross_entropy(hy_silu(h), t, -100);
    hy_backward(loss);
    loss_now = hy_item(loss);
    if (step == 0) first_loss = loss_now;
    hy_no_grad_begin(); /* SGD, then zero the gradients */
    for (int64_t i = 0; i < hy_numel(W); i++) hy_set(W, i, hy_get(W, i) - 0.1 * hy_get(W->grad, i));
    for (int64_t i = 0; i < hy_numel(g); i++) hy_set(g, i, hy_get(g, i) - 0.1 * hy_get(g->grad, i));
    hy_fill(W->grad, 0);
    hy_fill(g->grad, 0);
    hy_no_grad_end();
    if (step == 0) {
      /* The first step's unused tail of the first chunk counts as used, so it may use more. */
      first_used = hy_arena_used();
      tape = hy_tape_size();
      cr_assert(first_used > ((size_t)64 << 20), "the first step should outgrow one chunk");
    } else if (step == 1) {
      /* The reset folded the two chunks into one: no chunk's tail is wasted any more. */
      used = hy_arena_used();
      cr_assert(used < first_used && hy_tape_size() == tape, "used %zu, first step %zu", used,
                first_used);
    } else {
      cr_assert(hy_arena_used() == used, "step %d used %zu bytes, the first %zu", step,
                hy_arena_used(), used);
      cr_assert(hy_tape_size() == tape, "step %d tape %lld", step, (long long)hy_tape_size());
    }
    hy_step_reset();
    cr_assert(hy_tape_size() == 0 && hy_arena_used() == 0);
    if (step == 0) capacity = hy_arena_capacity();
    cr_assert(hy_arena_capacity() == capacity, "step %d: capacity %zu, after the first %zu", step,
              hy_arena_capacity(), capacity);
  }
  cr_assert(capacity >= first_used && hy_arena_peak() == first_used);
  cr_assert(loss_now < first_loss, "training did not lower the loss: %g -> %g", first_loss,
            loss_now);
  hy_free(W);
  hy_free(g);
}

Test(tape, step_mark_and_rewind) {
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(5), 15));
  hy_step_mark m = hy_step_get_mark();
  size_t used = hy_arena_used();
  int64_t nodes = hy_tape_size();
  hy_tensor *first = hy_exp(x);
  hy_mul(first, x);
  cr_assert(hy_tape_size() == nodes + 2 && hy_arena_used() > used);
  hy_step_rewind(m);
  cr_assert(hy_tape_size() == nodes && hy_arena_used() == used);
  /* The memory is reused, and the tape works after the rewind. */
  hy_tensor *again = hy_exp(x);
  cr_assert(again == first, "the first allocation after a rewind reuses the same memory");
  hy_backward(hy_sum_all(hy_mul(again, x))); /* d/dx x e^x = e^x (1 + x) */
  for (int i = 0; i < 5; i++) {
    double v = hy_get(x, i);
    cr_expect(fabs(hy_get(x->grad, i) - exp(v) * (1 + v)) <= 1e-15 * exp(v) * (1 + fabs(v)));
  }
  /* A rewind across a chunk boundary. */
  hy_step_mark m2 = hy_step_get_mark();
  size_t used2 = hy_arena_used();
  hy_empty(HY_F64, HY_SHAPE(10, 1024, 1024)); /* 80 MB, past the first chunk */
  cr_assert(hy_arena_used() > used2 + ((size_t)80 << 20) - 1);
  hy_step_rewind(m2);
  cr_assert(hy_arena_used() == used2);
  /* Marks nest: an inner rewind, then an outer one. */
  hy_step_mark outer = hy_step_get_mark();
  hy_exp(x);
  hy_step_mark inner = hy_step_get_mark();
  hy_exp(x);
  hy_step_rewind(inner);
  cr_assert(hy_tape_size() == outer.nodes + 1);
  hy_step_rewind(outer);
  cr_assert(hy_tape_size() == outer.nodes && hy_arena_used() == used2);
}

/* ---- bad use ---- */

static void backward_of_vector(void) {
  hy_tensor *x = t_param(hy_zeros(HY_F64, HY_SHAPE(3)));
  hy_backward(hy_exp(x));
}
static void backward_without_grad(void) { hy_backward(hy_zeros(HY_F64, HY_SHAPE(1))); }
static void backward_with_wrong_shape(void) {
  hy_tensor *x = t_param(hy_zeros(HY_F64, HY_SHAPE(3)));
  hy_backward_with(hy_exp(x), hy_zeros(HY_F64, HY_SHAPE(4)));
}
static void unbalanced_no_grad(void) { hy_no_grad_end(); }
static void rewind_forward(void) {
  hy_step_mark m = hy_step_get_mark();
  hy_empty(HY_F64, HY_SHAPE(3));
  hy_step_mark ahead = hy_step_get_mark();
  hy_step_rewind(m);
  hy_step_rewind(ahead);
}

Test(tape, bad_use_aborts) {
  t_expect_abort(backward_of_vector, 2, (const char *[]){"backward", "[3]"});
  t_expect_abort(backward_without_grad, 2, (const char *[]){"backward", "[1]"});
  t_expect_abort(backward_with_wrong_shape, 3, (const char *[]){"backward", "[3]", "[4]"});
  t_expect_abort(unbalanced_no_grad, 1, (const char *[]){"no_grad"});
  t_expect_abort(rewind_forward, 1, (const char *[]){"rewind"});
}
