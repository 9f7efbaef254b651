/* The tape: ops append a node when grad mode is on and an input needs a gradient; hy_backward
 * walks the nodes in reverse and each node adds its inputs' gradients (+=). */
#ifndef HYLA_TAPE_H
#define HYLA_TAPE_H

#include "tensor/arena.h"
#include "tensor/tensor.h"

typedef void (*hy_backward_fn)(hy_node *node);

enum { HY_NODE_ARGS_BYTES = 48 };

struct hy_node {
  const char *op;
  hy_backward_fn backward;
  hy_tensor *out;
  hy_tensor *out2; /* an op's second output (hy_record_second), or NULL */
  int n_in;
  hy_tensor **in;
  /* The arguments the backward needs, as a struct of the op's own (HY_NODE_ARGS). */
  _Alignas(16) unsigned char args[HY_NODE_ARGS_BYTES];
  void *saved;   /* op-specific saved data, in the arena */
  int64_t visit; /* the backward pass that last reached this node */
};

/* node's arguments as the op's struct T: `attn_args *a = HY_NODE_ARGS(n, attn_args);`. A struct
 * larger than the room fails to compile (a negative array size). */
#define HY_NODE_ARGS(node, T)                                                                      \
  ((void)sizeof(char[sizeof(T) <= HY_NODE_ARGS_BYTES ? 1 : -1]), (T *)(void *)(node)->args)

/* Record a node for `out` if grad mode is on and any input requires a gradient; returns NULL
 * otherwise (the op then saves nothing). Marks `out` as requiring a gradient. */
hy_node *hy_record(const char *op, hy_backward_fn backward, hy_tensor *out, int n_in,
                   hy_tensor *const *in);

/* The same whenever grad mode is on, even when no input needs a gradient (or there are none): a
 * point-to-point exchange, whose backward must run on both ranks for either to finish. */
hy_node *hy_record_always(const char *op, hy_backward_fn backward, hy_tensor *out, int n_in,
                          hy_tensor *const *in);

/* A second output of the op whose node is `node` (a fused op that makes two tensors): its
 * gradient reaches the same backward, in node->out2->grad, which like out->grad may be NULL when
 * nothing used that output. */
void hy_record_second(hy_node *node, hy_tensor *out2);

/* The gradient buffer of t, allocated zeroed on first use (persistent for persistent tensors). */
hy_tensor *hy_grad(hy_tensor *t);
/* t's gradient for a backward that writes every element of it: when t has none yet, a new buffer
 * left unset and *accumulate = false (overwrite it), else the buffer there and *accumulate = true
 * (add into it). Spares the zero fill and the read of a fresh gradient. */
hy_tensor *hy_grad_acc(hy_tensor *t, bool *accumulate);

/* Backward from a scalar (d loss = 1), or from any tensor with a given output gradient. Only the
 * nodes the output depends on run; their outputs' gradients start from zero on every pass, while
 * leaves (parameters, inputs) keep accumulating across passes. An intermediate's gradient (a
 * tensor made by an op) goes back to the arena as soon as its op's backward has run, unless
 * hy_retain_grad asked to keep it: a deep model's gradients then take the memory of about one
 * layer's, not all of them. */
void hy_backward(hy_tensor *loss);
void hy_backward_with(hy_tensor *out, const hy_tensor *out_grad);
/* Keep t's gradient after the backward pass (for inspecting an intermediate). */
void hy_retain_grad(hy_tensor *t);

/* No-grad scopes nest; inside one, ops record nothing. */
void hy_no_grad_begin(void);
void hy_no_grad_end(void);
bool hy_grad_enabled(void);

/* End of a step: forget the tape and reset the arena. Persistent tensors' grads survive. */
void hy_step_reset(void);

/* Marks for undoing part of a step (gradcheck evaluates a function many times). */
typedef struct {
  hy_arena_mark arena;
  int64_t nodes;
} hy_step_mark;
hy_step_mark hy_step_get_mark(void);
void hy_step_rewind(hy_step_mark mark);

int64_t hy_tape_size(void);
/* The op of the tape's node i (0 <= i < hy_tape_size()), in the order recorded: for tests that
 * check what runs before what. */
const char *hy_tape_op(int64_t i);

#endif
