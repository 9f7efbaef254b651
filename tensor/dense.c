/* A linear layer's product as one op, so that mixed precision can keep its weight in f32: the
 * forward reads the weight's bf16 copy (made once a step), and the backward writes the weight's
 * gradient in f32 straight from the bf16 operands (cuBLASLt sums in f32), with no bf16 gradient
 * of the weight in between. */
#include "tensor/op.h"

#include "tensor/device.h"

void hy_dense_gemm(const hy_tensor *like, bool c_bf16, bool ta, bool tb, int64_t M, int64_t N,
                   int64_t K, const void *A, int64_t lda, const void *B, int64_t ldb,
                   bool accumulate, void *C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  double beta = accumulate ? 1.0 : 0.0;
  if (K == 0) {
    size_t c_size = c_bf16 ? 2 : like->dtype == HY_BF16 ? 4 : hy_dtype_size(like->dtype);
    if (!accumulate) hy_device_memset0(like->device, C, (size_t)(M * ldc) * c_size);
    return;
  }
#ifdef HYLA_CUDA
  if (like->dtype == HY_BF16) {
    cuda_gemm_bf16(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, c_bf16, ldc);
    return;
  }
#endif
  (void)c_bf16;
  HY_KERNEL(like, gemm, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

/* The rows of x [..., in]: the product of its leading dims (also when in is 0). */
static int64_t rows_of(const hy_tensor *x) {
  int64_t rows = 1;
  for (int i = 0; i < x->ndim - 1; i++) rows *= x->shape[i];
  return rows;
}

const void *hy_dense_weight(const hy_tensor *x, hy_tensor *w) {
  return x->dtype == HY_BF16 && w->dtype == HY_F32 ? hy_bf16_copy(w)->data : w->data;
}

static void linear_backward(hy_node *n) {
  hy_tensor *x = n->in[0], *w = n->in[1], *gy = n->out->grad;
  int64_t in = w->shape[1], out = w->shape[0], rows = rows_of(x);
  bool acc;
  if (x->requires_grad) { /* gx (+)= gy W */
    hy_tensor *gx = hy_grad_acc(x, &acc);
    hy_dense_gemm(x, x->dtype == HY_BF16, false, false, rows, in, out, gy->data, out,
                  hy_dense_weight(x, w), in, acc, gx->data, in);
  }
  if (w->requires_grad) { /* gW += gy^T x, in W's dtype */
    hy_tensor *gw = hy_grad(w);
    hy_dense_gemm(x, w->dtype == HY_BF16, true, false, out, in, rows, gy->data, out, x->data, in,
                  true, gw->data, in);
  }
}

void hy_dense_operands(const char *op, hy_tensor **xp, hy_tensor **weightp) {
  hy_tensor *x = *xp, *weight = *weightp;
  hy_check_input_any(op, x);
  hy_check_input_any(op, weight);
  hy_check_same_device(op, x, weight);
  if (weight->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != weight->shape[1])
    hy_die(op, "x %s does not fit weight %s (expected x [..., in], weight [out, in])",
           hy_describe(x), hy_describe(weight));
  /* bf16 activations meet an f32 weight only as a persistent parameter (through its bf16 copy);
   * any other f32 weight is cast on the tape */
  bool mixed = x->dtype == HY_BF16 && weight->dtype == HY_F32;
  if (mixed && (!weight->persistent || !hy_is_contiguous(weight))) {
    weight = hy_cast(weight, HY_BF16);
    mixed = false;
  }
  if (!mixed && x->dtype == HY_F32 && weight->dtype == HY_BF16) x = hy_cast(x, HY_BF16);
  if (!mixed) hy_check_same_dtype(op, x, weight);
  *xp = hy_contiguous(x);
  *weightp = hy_contiguous(weight);
}

hy_tensor *hy_dense(hy_tensor *x, hy_tensor *weight, hy_tensor *bias) {
  hy_dense_operands("dense", &x, &weight);
  int64_t in = weight->shape[1], out = weight->shape[0], rows = rows_of(x);
  hy_shape s = hy_shape_of(x);
  s.d[s.ndim - 1] = out;
  hy_tensor *y = hy_empty_on(x->device, x->dtype, s);
  hy_dense_gemm(x, x->dtype == HY_BF16, false, true, rows, out, in, x->data, in,
                hy_dense_weight(x, weight), in, false, y->data, out);
  hy_record("dense", linear_backward, y, 2, (hy_tensor *[]){x, weight});
  return bias ? hy_add(y, bias) : y;
}
