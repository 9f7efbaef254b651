#include "autograd/tape.h"

#include "autograd/check_finite.h"
#include "tensor/profile.h"

#include <stdlib.h>
#include <string.h>

/* The tape is an array of node pointers; nodes themselves live in the arena. */
static struct {
  hy_node **nodes;
  int64_t n, cap;
  int no_grad_depth;
  int exit_hook;
  bool in_backward; /* ops run by a backward pass count to its node's profile mark */
} T;

static void release_tape(void) {
  free(T.nodes);
  T.nodes = NULL;
  T.n = T.cap = 0;
}

static void push(hy_node *node) {
  if (T.n == T.cap) {
    T.cap = T.cap ? 2 * T.cap : 1024;
    hy_node **nodes = realloc(T.nodes, (size_t)T.cap * sizeof *nodes);
    if (!nodes) hy_die("tape", "out of memory");
    T.nodes = nodes;
    if (!T.exit_hook) {
      T.exit_hook = 1;
      atexit(release_tape);
    }
  }
  T.nodes[T.n++] = node;
}

static hy_node *record(const char *op, hy_backward_fn backward, hy_tensor *out, int n_in,
                       hy_tensor *const *in, bool always) {
  if (!T.in_backward) hy_profile_mark(op, false); /* the op's kernels were queued just before */
  if (!T.in_backward) hy_check_finite(op, "output", out, n_in, in);
  if (T.no_grad_depth > 0) return NULL;
  bool any = always;
  for (int i = 0; i < n_in; i++) any = any || (in[i] && in[i]->requires_grad);
  if (!any) return NULL;
  hy_node *node = hy_arena_calloc(sizeof *node);
  node->op = op;
  node->backward = backward;
  node->out = out;
  node->n_in = n_in;
  node->in = n_in ? hy_arena_alloc((size_t)n_in * sizeof *node->in) : NULL;
  if (n_in) memcpy(node->in, in, (size_t)n_in * sizeof *node->in);
  out->requires_grad = true;
  out->node = node;
  push(node);
  return node;
}

hy_node *hy_record(const char *op, hy_backward_fn backward, hy_tensor *out, int n_in,
                   hy_tensor *const *in) {
  return record(op, backward, out, n_in, in, false);
}

hy_node *hy_record_always(const char *op, hy_backward_fn backward, hy_tensor *out, int n_in,
                          hy_tensor *const *in) {
  return record(op, backward, out, n_in, in, true);
}

void hy_record_second(hy_node *node, hy_tensor *out2) {
  if (!node) return;
  node->out2 = out2;
  out2->requires_grad = true;
  out2->node = node;
}

hy_tensor *hy_grad_acc(hy_tensor *t, bool *accumulate) {
  *accumulate = t->grad != NULL;
  if (!t->grad)
    t->grad = t->persistent ? hy_empty_persistent_on(t->device, t->dtype, hy_shape_of(t))
                            : hy_empty_like(t);
  return t->grad;
}

hy_tensor *hy_grad(hy_tensor *t) {
  if (!t->grad) {
    t->grad = t->persistent ? hy_zeros_persistent_on(t->device, t->dtype, hy_shape_of(t))
                            : hy_zeros_like(t);
  }
  return t->grad;
}

/* Give an intermediate's gradient back to the arena (a parameter's, persistent, stays). */
static void recycle_grad(hy_tensor *t) {
  hy_tensor *g = t->grad;
  if (!g || g->persistent || t->retain_grad) return;
  hy_arena_recycle(g->device, g->data, (size_t)hy_numel(g) * hy_dtype_size(g->dtype));
  t->grad = NULL;
}

/* HYLA_CHECK_FINITE: the gradients node's backward wrote (autograd/check_finite.h). */
static void check_gradients(const hy_node *node) {
  static const char *what[] = {"gradient of input 0", "gradient of input 1", "gradient of input 2",
                               "gradient of input 3", "gradient of input 4", "gradient of input 5"};
  for (int j = 0; j < node->n_in; j++)
    if (node->in[j] && node->in[j]->grad)
      hy_check_finite(node->op, j < 6 ? what[j] : "gradient of an input", node->in[j]->grad,
                      node->n_in, node->in);
}

static void run_backward(hy_tensor *out, const hy_tensor *out_grad) {
  static int64_t pass;
  if (!out->node) hy_die("backward", "%s was not made by an op on the tape", hy_describe(out));
  int64_t last = T.n - 1;
  while (last >= 0 && T.nodes[last] != out->node) last--;
  if (last < 0)
    hy_die("backward", "the tensor %s was not made on the current tape", hy_describe(out));
  /* Mark the nodes `out` depends on, newest first, and clear their outputs' gradients. */
  pass++;
  out->node->visit = pass;
  for (int64_t i = last; i >= 0; i--) {
    hy_node *node = T.nodes[i];
    if (node->visit != pass) continue;
    node->out->grad = NULL;
    if (node->out2) node->out2->grad = NULL;
    for (int j = 0; j < node->n_in; j++)
      if (node->in[j] && node->in[j]->node) node->in[j]->node->visit = pass;
  }
  if (out_grad)
    hy_copy_into(hy_grad(out), out_grad);
  else
    hy_fill(hy_grad(out), 1.0);
  hy_no_grad_begin();
  T.in_backward = true;
  hy_profile_mark("backward start", true);
  for (int64_t i = last; i >= 0; i--) {
    hy_node *node = T.nodes[i];
    if (node->visit == pass && (node->out->grad || (node->out2 && node->out2->grad))) {
      node->backward(node);
      hy_profile_mark(node->op, true);
      if (hy_check_finite_enabled()) check_gradients(node);
      /* Every op that adds to this gradient came later on the tape and has run: it is spent. */
      if (node->out != out) recycle_grad(node->out);
      if (node->out2 && node->out2 != out) recycle_grad(node->out2);
    }
  }
  T.in_backward = false;
  hy_no_grad_end();
}

void hy_backward(hy_tensor *loss) {
  if (hy_numel(loss) != 1) hy_die("backward", "loss %s is not a scalar", hy_describe(loss));
  if (!loss->requires_grad)
    hy_die("backward", "loss %s does not depend on anything that needs a gradient",
           hy_describe(loss));
  run_backward(loss, NULL);
}

void hy_backward_with(hy_tensor *out, const hy_tensor *out_grad) {
  hy_check_same_shape("backward", out, out_grad);
  if (!out->requires_grad) hy_die("backward", "%s does not need a gradient", hy_describe(out));
  run_backward(out, out_grad);
}

void hy_retain_grad(hy_tensor *t) { t->retain_grad = true; }

void hy_no_grad_begin(void) { T.no_grad_depth++; }

void hy_no_grad_end(void) {
  if (T.no_grad_depth == 0) hy_die("no_grad", "end without a begin");
  T.no_grad_depth--;
}

bool hy_grad_enabled(void) { return T.no_grad_depth == 0; }

void hy_step_reset(void) {
  T.n = 0;
  hy_weights_changed(); /* the optimizer step that usually follows */
  hy_arena_reset();
}

hy_step_mark hy_step_get_mark(void) { return (hy_step_mark){hy_arena_get_mark(), T.n}; }

void hy_step_rewind(hy_step_mark mark) {
  if (mark.nodes > T.n) hy_die("tape", "rewind past the end of the tape");
  T.n = mark.nodes;
  hy_arena_rewind(mark.arena);
  hy_weights_changed(); /* gradcheck moves weights between evaluations */
}

int64_t hy_tape_size(void) { return T.n; }

const char *hy_tape_op(int64_t i) {
  if (i < 0 || i >= T.n)
    hy_die("tape", "node %lld of a tape of %lld", (long long)i, (long long)T.n);
  return T.nodes[i]->op;
}
