#include "tensor/op.h"

static const char *const NAMES[] = {
    [HY_SCALE] = "scale",       [HY_ADD_SCALAR] = "add_scalar",
    [HY_EXP] = "exp",           [HY_LOG] = "log",
    [HY_SIGMOID] = "sigmoid",   [HY_LOGSIGMOID] = "logsigmoid",
    [HY_SOFTPLUS] = "softplus", [HY_SILU] = "silu",
    [HY_TANH] = "tanh",         [HY_RELU] = "relu",
    [HY_SQRT] = "sqrt",         [HY_RSQRT] = "rsqrt",
    [HY_POW] = "pow",           [HY_ELU] = "elu",
};

/* The op and its parameter. */
typedef struct {
  hy_unary_op kind;
  double p;
} unary_args;

static void unary_backward(hy_node *n) {
  const unary_args *a = HY_NODE_ARGS(n, unary_args);
  hy_tensor *x = n->in[0], *y = n->out;
  bool accumulate;
  void *gx = hy_grad_acc(x, &accumulate)->data;
  HY_KERNEL_BF16(x, unary_backward, a->kind, a->p, hy_numel(x), x->data, y->data, y->grad->data, gx,
                 accumulate);
}

static hy_tensor *unary(hy_unary_op kind, hy_tensor *x, double p) {
  const char *op = NAMES[kind];
  hy_check_input_any(op, x);
  x = hy_contiguous(x);
  hy_tensor *y = hy_empty_like(x);
  HY_KERNEL_BF16(x, unary, kind, p, hy_numel(x), x->data, y->data);
  hy_node *n = hy_record(op, unary_backward, y, 1, &x);
  if (n) {
    *HY_NODE_ARGS(n, unary_args) = (unary_args){.kind = kind, .p = p};
  }
  return y;
}

hy_tensor *hy_scale(hy_tensor *x, double c) { return unary(HY_SCALE, x, c); }
hy_tensor *hy_add_scalar(hy_tensor *x, double c) { return unary(HY_ADD_SCALAR, x, c); }
hy_tensor *hy_exp(hy_tensor *x) { return unary(HY_EXP, x, 0); }
hy_tensor *hy_log(hy_tensor *x) { return unary(HY_LOG, x, 0); }
hy_tensor *hy_sigmoid(hy_tensor *x) { return unary(HY_SIGMOID, x, 0); }
hy_tensor *hy_logsigmoid(hy_tensor *x) { return unary(HY_LOGSIGMOID, x, 0); }
hy_tensor *hy_softplus(hy_tensor *x) { return unary(HY_SOFTPLUS, x, 0); }
hy_tensor *hy_silu(hy_tensor *x) { return unary(HY_SILU, x, 0); }
hy_tensor *hy_tanh(hy_tensor *x) { return unary(HY_TANH, x, 0); }
hy_tensor *hy_relu(hy_tensor *x) { return unary(HY_RELU, x, 0); }
hy_tensor *hy_sqrt(hy_tensor *x) { return unary(HY_SQRT, x, 0); }
hy_tensor *hy_rsqrt(hy_tensor *x) { return unary(HY_RSQRT, x, 0); }
hy_tensor *hy_pow(hy_tensor *x, double p) { return unary(HY_POW, x, p); }
hy_tensor *hy_elu(hy_tensor *x) { return unary(HY_ELU, x, 0); }
