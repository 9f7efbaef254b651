#include "tensor/op.h"

#include "tensor/device.h"

/* A matrix as BLAS sees it: where it starts, whether it is stored transposed, its leading dim. */
typedef struct {
  void *p;
  bool trans;
  int64_t ld;
} mat;

/* The last two dims of t, starting `off` elements into its data, as a BLAS matrix, if the strides
 * allow it (one of the two strides must be 1). */
static bool as_mat(const hy_tensor *t, int64_t off, mat *m) {
  int64_t R = t->shape[t->ndim - 2], C = t->shape[t->ndim - 1];
  int64_t sr = t->stride[t->ndim - 2], sc = t->stride[t->ndim - 1];
  m->p = (char *)t->data + off * (int64_t)hy_dtype_size(t->dtype);
  if (sc == 1 || C == 1) {
    m->trans = false;
    m->ld = R == 1 ? (C > 1 ? C : 1) : sr;
    if (R == 1 || sr >= C) return true;
  }
  if (sr == 1 || R == 1) {
    m->trans = true;
    m->ld = C == 1 ? (R > 1 ? R : 1) : sc;
    if (C == 1 || sc >= R) return true;
  }
  return false;
}

static int64_t batch_count(const hy_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim - 2; i++) n *= t->shape[i];
  return n;
}

/* Element offset of the i-th matrix of t (0 for a 2-d tensor). */
static int64_t batch_offset(const hy_tensor *t, int64_t i) {
  int64_t off = 0;
  for (int d = t->ndim - 3; d >= 0; d--) {
    off += (i % t->shape[d]) * t->stride[d];
    i /= t->shape[d];
  }
  return off;
}

/* Whether t's rows fold into one row-major matrix [prod(leading) * R, C]: t is contiguous, or a
 * 2-d matrix stored by rows. */
static bool rows_fold(const hy_tensor *t) {
  if (hy_is_contiguous(t)) return true;
  int64_t R = t->shape[0], C = t->shape[1];
  return t->ndim == 2 && t->stride[1] == 1 && (R == 1 || t->stride[0] >= C);
}

static mat folded(const hy_tensor *t) {
  int64_t C = t->shape[t->ndim - 1];
  int64_t ld = hy_is_contiguous(t) || t->shape[0] == 1 ? C : t->stride[0];
  return (mat){t->data, false, ld > 1 ? ld : 1};
}

static mat flip(mat m) {
  m.trans = !m.trans;
  return m;
}

/* C (+)= op(A) op(B) with op(A) M x K, op(B) K x N, C row-major with leading dim ldc. */
static void gemm(const hy_tensor *like, int64_t M, int64_t N, int64_t K, mat A, mat B, double beta,
                 void *C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0) {
      size_t es = hy_dtype_size(like->dtype);
      for (int64_t i = 0; i < M; i++)
        hy_device_memset0(like->device, (char *)C + (size_t)(i * ldc) * es, (size_t)N * es);
    }
    return;
  }
#ifdef HYLA_CUDA
  if (like->dtype == HY_BF16) {
    cuda_gemm_bf16(A.trans, B.trans, M, N, K, 1.0, A.p, A.ld, B.p, B.ld, beta, C, true, ldc);
    return;
  }
#endif
  HY_KERNEL(like, gemm, A.trans, B.trans, M, N, K, 1.0, A.p, A.ld, B.p, B.ld, beta, C, ldc);
}

static mat need_mat(const hy_tensor *t, int64_t i) {
  mat m;
  if (!as_mat(t, batch_offset(t, i), &m))
    hy_die("matmul", "internal: %s has no BLAS layout", hy_describe(t));
  return m;
}

/* c (+)= a b over the batch; c is contiguous [..., M, N]; b is 2-d or has a's batch dims. */
static void product(hy_tensor *a, hy_tensor *b, hy_tensor *c, double beta) {
  int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
  int64_t batch = batch_count(a);
  if (b->ndim == 2 && rows_fold(a)) {
    gemm(a, batch * M, N, K, folded(a), need_mat(b, 0), beta, c->data, N);
    return;
  }
  size_t es = hy_dtype_size(a->dtype);
  for (int64_t i = 0; i < batch; i++)
    gemm(a, M, N, K, need_mat(a, i), need_mat(b, b->ndim == 2 ? 0 : i), beta,
         (char *)c->data + (size_t)(i * M * N) * es, N);
}

/* gb += sum over the batch of a_i^T gc_i, for a 2-d b. */
static void product_reduced(hy_tensor *a, hy_tensor *gc, hy_tensor *gb) {
  int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = gc->shape[gc->ndim - 1];
  int64_t batch = batch_count(a);
  if (rows_fold(a)) {
    gemm(a, K, N, batch * M, flip(folded(a)), folded(gc), 1.0, gb->data, N);
    return;
  }
  size_t es = hy_dtype_size(a->dtype);
  for (int64_t i = 0; i < batch; i++) {
    mat G = {(char *)gc->data + (size_t)(i * M * N) * es, false, N > 1 ? N : 1};
    gemm(a, K, N, M, flip(need_mat(a, i)), G, 1.0, gb->data, N);
  }
}

static void matmul_backward(hy_node *n) {
  hy_tensor *a = n->in[0], *b = n->in[1], *gc = n->out->grad;
  if (a->requires_grad) /* ga += gc b^T */
    product(gc, hy_transpose(b, -1, -2), hy_grad(a), 1.0);
  if (b->requires_grad) {
    if (b->ndim == 2)
      product_reduced(a, gc, hy_grad(b));
    else /* gb += a^T gc */
      product(hy_transpose(a, -1, -2), gc, hy_grad(b), 1.0);
  }
}

/* Inputs whose strides BLAS cannot take are copied first; a batched one with leading dims that
 * do not fold is fine as long as each matrix has a BLAS layout. */
static hy_tensor *blas_ready(hy_tensor *t) {
  mat m;
  for (int64_t i = 0; i < batch_count(t); i++)
    if (!as_mat(t, batch_offset(t, i), &m)) return hy_contiguous(t);
  return t;
}

hy_tensor *hy_matmul(hy_tensor *a, hy_tensor *b) {
  const char *op = "matmul";
  hy_check_input_any(op, a);
  hy_check_input_any(op, b);
  hy_check_same_device(op, a, b);
  /* bf16 against f32 (mixed precision): the product runs in bf16 */
  if (a->dtype == HY_BF16 && b->dtype == HY_F32) b = hy_cast(b, HY_BF16);
  if (b->dtype == HY_BF16 && a->dtype == HY_F32) a = hy_cast(a, HY_BF16);
  hy_check_same_dtype(op, a, b);
  if (a->ndim < 2 || b->ndim < 2)
    hy_die(op, "needs matrices, got %s and %s", hy_describe(a), hy_describe(b));
  if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
    hy_die(op, "inner dims differ: %s and %s", hy_describe(a), hy_describe(b));
  if (b->ndim > 2) {
    bool same = b->ndim == a->ndim;
    for (int i = 0; same && i < a->ndim - 2; i++) same = a->shape[i] == b->shape[i];
    if (!same)
      hy_die(op, "batch dims differ: %s and %s (b must be 2-d or share a's batch dims)",
             hy_describe(a), hy_describe(b));
  }
  a = blas_ready(a);
  b = blas_ready(b);
  hy_shape s = hy_shape_of(a);
  s.d[s.ndim - 1] = b->shape[b->ndim - 1];
  hy_tensor *c = hy_empty_on(a->device, a->dtype, s);
  product(a, b, c, 0.0);
  hy_record(op, matmul_backward, c, 2, (hy_tensor *[]){a, b});
  return c;
}
