#include "tensor/op.h"

static const char *const NAMES[] = {"add", "sub", "mul", "div"};

/* Right-aligned numpy broadcasting of two shapes into a 4-d output. */
static hy_bcast broadcast(const char *op, const hy_tensor *a, const hy_tensor *b, hy_shape *out) {
  hy_bcast bc = {.a_full = true, .b_full = true};
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  out->ndim = nd;
  int64_t stride_a = 1, stride_b = 1;
  for (int i = HY_MAX_DIMS - 1; i >= 0; i--) {
    int k = i - (HY_MAX_DIMS - nd); /* index into the output's dims, negative when padded */
    int ka = k - (nd - a->ndim), kb = k - (nd - b->ndim);
    int64_t da = ka >= 0 ? a->shape[ka] : 1, db = kb >= 0 ? b->shape[kb] : 1;
    if (da != db && da != 1 && db != 1)
      hy_die(op, "shapes do not broadcast: %s and %s", hy_describe(a), hy_describe(b));
    int64_t d = da > db ? da : db;
    if (da == 1 && db == 0) d = 0;
    if (db == 1 && da == 0) d = 0;
    bc.shape[i] = d;
    bc.sa[i] = da == d ? stride_a : 0;
    bc.sb[i] = db == d ? stride_b : 0;
    if (da != d) bc.a_full = false;
    if (db != d) bc.b_full = false;
    stride_a *= da;
    stride_b *= db;
    if (k >= 0) out->d[k] = d;
  }
  return bc;
}

typedef struct {
  hy_binary_op kind;
} binary_args;

static void binary_backward(hy_node *n) {
  hy_binary_op kind = HY_NODE_ARGS(n, binary_args)->kind;
  hy_tensor *a = n->in[0], *b = n->in[1];
  const hy_bcast *bc = n->saved;
  if (hy_numel(n->out) == 0) { /* nothing flows back: each operand's gradient stays zero */
    if (a->requires_grad) hy_grad(a);
    if (b->requires_grad) hy_grad(b);
    return;
  }
  /* fresh gradients are overwritten; for x op x the second adds onto the first */
  bool acc_a = true, acc_b = true;
  void *ga = a->requires_grad ? hy_grad_acc(a, &acc_a)->data : NULL;
  void *gb = b->requires_grad ? hy_grad_acc(b, &acc_b)->data : NULL;
  HY_KERNEL_BF16(a, binary_backward, kind, bc, a->data, b->data, n->out->grad->data, ga, gb, acc_a,
                 acc_b);
}

/* A bf16 operand with an f32 one: the f32 one in bf16, on the tape (its gradient comes back to it
 * in f32). Any other pair must have one dtype. */
static void match_dtypes(const char *op, hy_tensor **a, hy_tensor **b) {
  if ((*a)->dtype == HY_BF16 && (*b)->dtype == HY_F32)
    *b = hy_cast(*b, HY_BF16);
  else if ((*a)->dtype == HY_F32 && (*b)->dtype == HY_BF16)
    *a = hy_cast(*a, HY_BF16);
  hy_check_same_dtype(op, *a, *b);
}

static hy_tensor *binary(hy_binary_op kind, hy_tensor *a, hy_tensor *b) {
  const char *op = NAMES[kind];
  hy_check_input_any(op, a);
  hy_check_input_any(op, b);
  hy_check_same_device(op, a, b);
  match_dtypes(op, &a, &b);
  a = hy_contiguous(a);
  b = hy_contiguous(b);
  hy_shape s;
  hy_bcast bc = broadcast(op, a, b, &s);
  hy_tensor *y = hy_empty_on(a->device, a->dtype, s);
  HY_KERNEL_BF16(a, binary, kind, &bc, a->data, b->data, y->data);
  hy_node *n = hy_record(op, binary_backward, y, 2, (hy_tensor *[]){a, b});
  if (n) {
    HY_NODE_ARGS(n, binary_args)->kind = kind;
    hy_bcast *saved = hy_arena_alloc(sizeof bc); /* sizes, read on the host by either kernel */
    *saved = bc;
    n->saved = saved;
  }
  return y;
}

hy_tensor *hy_add(hy_tensor *a, hy_tensor *b) { return binary(HY_ADD, a, b); }

hy_tensor *hy_sub(hy_tensor *a, hy_tensor *b) { return binary(HY_SUB, a, b); }

hy_tensor *hy_mul(hy_tensor *a, hy_tensor *b) { return binary(HY_MUL, a, b); }

hy_tensor *hy_div(hy_tensor *a, hy_tensor *b) { return binary(HY_DIV, a, b); }
