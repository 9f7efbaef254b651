/* hy_matmul: forward against the definition of the product, on 2-d, N-d x 2-d and batched
 * operands, transposed and sliced views, sizes with a 1 in them, in f32 and f64; gradcheck of each
 * form; bad shapes; determinism. */
#include "tests/support.h"

#include <stdio.h>
#include <string.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

static void init(void) { t_seed = 1000; } /* the inputs this suite was written on */
TestSuite(matmul, .init = init);

/* out[..., i, j] = sum_k a[..., i, k] b[(...,) k, j], in double, by logical indices. */
static hy_tensor *ref_matmul(const hy_tensor *a, const hy_tensor *b) {
  int nd = a->ndim;
  int64_t K = a->shape[nd - 1], N = b->shape[b->ndim - 1];
  hy_shape s = hy_shape_of(a);
  s.d[nd - 1] = N;
  hy_tensor *ref = hy_empty(HY_F64, s);
  int64_t idx[HY_MAX_DIMS], ia[HY_MAX_DIMS], ib[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(ref); f++) {
    t_unravel(f, nd, ref->shape, idx);
    memcpy(ia, idx, sizeof ia);
    memcpy(ib, idx, sizeof ib);
    double sum = 0;
    for (int64_t k = 0; k < K; k++) {
      ia[nd - 1] = k;
      if (b->ndim == 2) {
        ib[0] = k;
        ib[1] = idx[nd - 1];
      } else {
        ib[nd - 2] = k;
        ib[nd - 1] = idx[nd - 1];
      }
      sum += t_at(a, ia) * t_at(b, ib);
    }
    hy_set(ref, f, sum);
  }
  return ref;
}

/* f64: BLAS sums the same K products in another order, a few ulp of the largest partial sum.
 * f32: K <= 70 products of unit-normal numbers; the rounding error of a K-term dot product grows
 * like sqrt(K) ulp of the terms, far under 1e-5 of the largest output (~sqrt(K)). */
static void expect_matmul(hy_tensor *a, hy_tensor *b, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "%s: %s x %s", what, hy_describe(a), hy_describe(b));
  hy_tensor *y = hy_matmul(a, b);
  cr_assert(hy_is_contiguous(y), "%s: output not contiguous", name);
  t_expect_close(y, ref_matmul(a, b), t_tol(a->dtype, 1e-12, 1e-5), name);
}

Test(matmul, two_d_shapes) {
  /* {M, K, N}: odd sizes, sizes of 1, and two products over GEMM_PAR_MIN multiply-adds that go
   * through the threaded split, once by rows (M >= N) and once by columns (M small, N large). */
  static const int64_t sizes[][3] = {{1, 1, 1},   {1, 7, 1},      {3, 1, 5},    {7, 13, 3},
                                     {13, 33, 7}, {33, 3, 1},     {1, 13, 33},  {5, 64, 9},
                                     {65, 3, 66}, {130, 70, 120}, {20, 70, 800}};
  for (int d = 0; d < 2; d++)
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      const int64_t *s = sizes[i];
      hy_tensor *a = t_randn(DTYPES[d], HY_SHAPE(s[0], s[1]), 10 + i);
      hy_tensor *b = t_randn(DTYPES[d], HY_SHAPE(s[1], s[2]), 100 + i);
      expect_matmul(a, b, "2-d");
    }
}

Test(matmul, nd_times_2d) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    expect_matmul(t_randn(dt, HY_SHAPE(2, 3, 5), 1), t_randn(dt, HY_SHAPE(5, 4), 2), "3-d x 2-d");
    expect_matmul(t_randn(dt, HY_SHAPE(2, 3, 5, 7), 3), t_randn(dt, HY_SHAPE(7, 3), 4),
                  "4-d x 2-d");
    expect_matmul(t_randn(dt, HY_SHAPE(1, 1, 7), 5), t_randn(dt, HY_SHAPE(7, 13), 6), "ones x 2-d");
    expect_matmul(t_randn(dt, HY_SHAPE(3, 1, 5), 7), t_randn(dt, HY_SHAPE(5, 1), 8), "M = N = 1");
    expect_matmul(t_randn(dt, HY_SHAPE(2, 7, 1), 9), t_randn(dt, HY_SHAPE(1, 3), 10), "K = 1");
  }
}

Test(matmul, batched_equal_batch_dims) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    expect_matmul(t_randn(dt, HY_SHAPE(2, 3, 5), 1), t_randn(dt, HY_SHAPE(2, 5, 4), 2), "3-d");
    expect_matmul(t_randn(dt, HY_SHAPE(2, 3, 4, 5), 3), t_randn(dt, HY_SHAPE(2, 3, 5, 7), 4),
                  "4-d");
    expect_matmul(t_randn(dt, HY_SHAPE(3, 1, 5), 5), t_randn(dt, HY_SHAPE(3, 5, 1), 6),
                  "M = N = 1");
    expect_matmul(t_randn(dt, HY_SHAPE(1, 7, 13), 7), t_randn(dt, HY_SHAPE(1, 13, 3), 8),
                  "batch 1");
    expect_matmul(t_randn(dt, HY_SHAPE(4, 7, 1), 9), t_randn(dt, HY_SHAPE(4, 1, 3), 10), "K = 1");
  }
}

Test(matmul, transposed_views) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    static const int64_t sizes[][3] = {{7, 5, 3}, {1, 5, 3}, {7, 1, 3}, {7, 5, 1}, {13, 33, 7}};
    for (int i = 0; i < 5; i++) {
      int64_t M = sizes[i][0], K = sizes[i][1], N = sizes[i][2];
      hy_tensor *at = hy_transpose(t_randn(dt, HY_SHAPE(K, M), 1 + i), 0, 1);
      hy_tensor *bt = hy_transpose(t_randn(dt, HY_SHAPE(N, K), 2 + i), -1, -2);
      hy_tensor *a = t_randn(dt, HY_SHAPE(M, K), 3 + i), *b = t_randn(dt, HY_SHAPE(K, N), 4 + i);
      expect_matmul(at, b, "a^T b");
      expect_matmul(a, bt, "a b^T");
      expect_matmul(at, bt, "a^T b^T");
    }
    /* Batched, each matrix transposed. */
    hy_tensor *at = hy_transpose(t_randn(dt, HY_SHAPE(2, 5, 3), 5), -1, -2);
    hy_tensor *bt = hy_transpose(t_randn(dt, HY_SHAPE(2, 4, 5), 6), 1, 2);
    expect_matmul(at, bt, "batched a^T b^T");
    expect_matmul(at, t_randn(dt, HY_SHAPE(5, 4), 7), "batched a^T x 2-d");
    expect_matmul(t_randn(dt, HY_SHAPE(2, 3, 5), 8), bt, "batched a x b^T");
    /* The batch axis swapped with the rows: the matrices do not fold into one. */
    hy_tensor *ab = hy_transpose(t_randn(dt, HY_SHAPE(3, 2, 5), 9), 0, 1);
    expect_matmul(ab, t_randn(dt, HY_SHAPE(5, 4), 10), "batch-transposed x 2-d");
    expect_matmul(ab, t_randn(dt, HY_SHAPE(2, 5, 4), 11), "batch-transposed x batched");
    /* Neither of the last two strides is 1: BLAS cannot take it, hyla copies it first. */
    hy_tensor *bad = hy_transpose(t_randn(dt, HY_SHAPE(5, 3, 2), 12), 0, 2);
    cr_assert(bad->stride[1] != 1 && bad->stride[2] != 1);
    expect_matmul(bad, t_randn(dt, HY_SHAPE(5, 4), 13), "no BLAS layout x 2-d");
    expect_matmul(bad, t_randn(dt, HY_SHAPE(2, 5, 4), 14), "no BLAS layout x batched");
  }
}

Test(matmul, sliced_operands) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *a = hy_slice(t_randn(dt, HY_SHAPE(7, 9), 1), 1, 2, 7);  /* [7, 5], row stride 9 */
    hy_tensor *b = hy_slice(t_randn(dt, HY_SHAPE(5, 11), 2), 1, 3, 6); /* [5, 3], row stride 11 */
    cr_assert(!hy_is_contiguous(a) && !hy_is_contiguous(b));
    expect_matmul(a, b, "sliced columns");
    expect_matmul(a, hy_slice(t_randn(dt, HY_SHAPE(8, 3), 3), 0, 2, 7), "sliced rows");
    expect_matmul(hy_slice(t_randn(dt, HY_SHAPE(7, 9), 4), 1, 4, 5),
                  hy_slice(t_randn(dt, HY_SHAPE(3, 6), 5), 0, 1, 2), "K = 1 slices");
    /* A column slice of a transposed view. */
    hy_tensor *ts = hy_slice(hy_transpose(t_randn(dt, HY_SHAPE(8, 7), 6), 0, 1), 1, 2, 7);
    expect_matmul(ts, b, "slice of a transpose");
    /* Batched: sliced last axis (each matrix strided), sliced rows (batch stride not M K). */
    hy_tensor *a3 = hy_slice(t_randn(dt, HY_SHAPE(2, 3, 7), 7), 2, 1, 6);
    hy_tensor *r3 = hy_slice(t_randn(dt, HY_SHAPE(2, 6, 5), 8), 1, 2, 5);
    hy_tensor *b3 = hy_slice(t_randn(dt, HY_SHAPE(2, 5, 6), 9), 2, 1, 5);
    expect_matmul(a3, b, "3-d sliced x 2-d");
    expect_matmul(r3, b, "3-d row-sliced x 2-d");
    expect_matmul(a3, b3, "3-d sliced x sliced");
    expect_matmul(r3, hy_slice(t_randn(dt, HY_SHAPE(3, 5, 4), 10), 0, 1, 3), "batch slice");
  }
}

/* Products past GEMM_PAR_MIN with transposed operands (the threaded split of a BLAS transpose),
 * and the gradients of large products, which are such products, against plain loops:
 * ga[i, k] = sum_j gc[i, j] b[k, j], gb[k, j] = sum_i a[i, k] gc[i, j]. */
Test(matmul, large_transposed_and_backward) {
  static const int64_t sizes[][3] = {{130, 70, 120}, {20, 70, 800}};
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < 2; i++) {
      hy_dtype dt = DTYPES[d];
      int64_t M = sizes[i][0], K = sizes[i][1], N = sizes[i][2];
      hy_tensor *at = t_param(t_randn(dt, HY_SHAPE(K, M), 20 + i));
      hy_tensor *bt = t_param(t_randn(dt, HY_SHAPE(N, K), 30 + i));
      hy_tensor *a = hy_transpose(at, 0, 1), *b = hy_transpose(bt, 0, 1);
      expect_matmul(a, b, "large a^T b^T");
      hy_tensor *c = hy_matmul(a, b), *gc = t_randn(dt, HY_SHAPE(M, N), 40 + i);
      hy_backward_with(c, gc);
      hy_tensor *ga = hy_empty(HY_F64, HY_SHAPE(K, M)), *gb = hy_empty(HY_F64, HY_SHAPE(N, K));
      for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
          double s = 0;
          for (int64_t n = 0; n < N; n++) s += hy_get(gc, m * N + n) * hy_get(bt, n * K + k);
          hy_set(ga, k * M + m, s); /* the gradient of at = a^T */
        }
      for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
          double s = 0;
          for (int64_t m = 0; m < M; m++) s += hy_get(at, k * M + m) * hy_get(gc, m * N + n);
          hy_set(gb, n * K + k, s);
        }
      /* f32: sums of up to 800 products of unit normals, ~sqrt(n) ulp of the terms, which is
       * ~1e-6 of the largest result. */
      t_expect_close(at->grad, ga, t_tol(dt, 1e-12, 1e-5), "large matmul grad a");
      t_expect_close(bt->grad, gb, t_tol(dt, 1e-12, 1e-5), "large matmul grad b");
    }
}

Test(matmul, deterministic) {
  /* Large enough for the threaded split. */
  hy_tensor *a = t_param(t_randn(HY_F32, HY_SHAPE(2, 65, 70), 1));
  hy_tensor *b = t_param(t_randn(HY_F32, HY_SHAPE(70, 129), 2));
  hy_tensor *y1 = hy_matmul(a, b), *y2 = hy_matmul(a, b);
  t_expect_same_bits(y1, y2, "matmul forward");
  hy_tensor *gy = t_randn(HY_F32, hy_shape_of(y1), 3);
  hy_backward_with(y1, gy);
  hy_tensor *ga = hy_copy(a->grad), *gb = hy_copy(b->grad);
  a->grad = b->grad = NULL;
  hy_backward_with(y2, gy);
  t_expect_same_bits(a->grad, ga, "matmul grad a");
  t_expect_same_bits(b->grad, gb, "matmul grad b");
}

/* ---- gradients ---- */

static hy_tensor *mm(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(in[0], in[1]);
}

static hy_tensor *mm_at(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(hy_transpose(in[0], -1, -2), in[1]);
}

static hy_tensor *mm_bt(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(in[0], hy_transpose(in[1], -1, -2));
}

static hy_tensor *mm_atbt(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(hy_transpose(in[0], -1, -2), hy_transpose(in[1], -1, -2));
}

static hy_tensor *mm_batch_swapped(hy_tensor **in, void *ctx) { /* in[0] [M, B, K] */
  (void)ctx;
  return hy_matmul(hy_transpose(in[0], 0, 1), in[1]);
}

static hy_tensor *mm_no_blas_layout(hy_tensor **in, void *ctx) { /* in[0] [K, M, B] */
  (void)ctx;
  return hy_matmul(hy_transpose(in[0], 0, 2), in[1]);
}

static hy_tensor *mm_sliced(hy_tensor **in, void *ctx) { /* last axes sliced [1, end - 1) */
  (void)ctx;
  hy_tensor *a = in[0], *b = in[1];
  return hy_matmul(hy_slice(a, -1, 1, a->shape[a->ndim - 1] - 1),
                   hy_slice(b, -1, 1, b->shape[b->ndim - 1] - 1));
}

static hy_tensor *mm_self(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(in[0], in[0]);
}

#define P(...)      t_param(t_randn_next(HY_F64, HY_SHAPE(__VA_ARGS__)))
#define GC(f, a, b) t_expect_gradcheck(f, NULL, 2, (hy_tensor *[]){a, b}, #f " " #a " " #b)

Test(matmul, gradcheck_plain) {
  GC(mm, P(5, 7), P(7, 3));
  GC(mm, P(1, 5), P(5, 1));
  GC(mm, P(3, 1), P(1, 4));
  GC(mm, P(2, 3, 5), P(5, 4)); /* N-d x 2-d: b's gradient sums over the batch */
  GC(mm, P(2, 1, 3, 5), P(5, 3));
  GC(mm, P(2, 3, 5), P(2, 5, 4)); /* batched */
  GC(mm, P(2, 2, 3, 4), P(2, 2, 4, 3));
  GC(mm, P(3, 1, 5), P(3, 5, 1));
  GC(mm, t_randn(HY_F64, HY_SHAPE(4, 5), 1), P(5, 3)); /* only one side needs a gradient */
  GC(mm, P(4, 5), t_randn(HY_F64, HY_SHAPE(5, 3), 2));
  t_expect_gradcheck(mm_self, NULL, 1, (hy_tensor *[]){P(5, 5)}, "x x");
}

Test(matmul, gradcheck_views) {
  GC(mm_at, P(7, 5), P(7, 3));
  GC(mm_bt, P(5, 7), P(3, 7));
  GC(mm_atbt, P(7, 5), P(3, 7));
  GC(mm_at, P(1, 5), P(1, 3)); /* K = 1 */
  GC(mm_bt, P(5, 1), P(3, 1));
  GC(mm_at, P(2, 5, 3), P(5, 4)); /* batched transposes */
  GC(mm_bt, P(2, 3, 5), P(2, 4, 5));
  GC(mm_atbt, P(2, 5, 3), P(2, 4, 5));
  GC(mm_batch_swapped, P(3, 2, 5), P(5, 4));
  GC(mm_batch_swapped, P(3, 2, 5), P(2, 5, 4));
  GC(mm_no_blas_layout, P(5, 3, 2), P(5, 4));
  GC(mm_sliced, P(5, 9), P(7, 5));
  GC(mm_sliced, P(2, 3, 9), P(7, 5));
  GC(mm_sliced, P(2, 3, 9), P(2, 7, 5));
}

/* ---- bad use ---- */

static void mm_inner_mismatch(void) {
  hy_matmul(hy_zeros(HY_F32, HY_SHAPE(2, 3)), hy_zeros(HY_F32, HY_SHAPE(4, 5)));
}

static void mm_batch_mismatch(void) {
  hy_matmul(hy_zeros(HY_F64, HY_SHAPE(2, 3, 4)), hy_zeros(HY_F64, HY_SHAPE(3, 4, 5)));
}

static void mm_vector(void) {
  hy_matmul(hy_zeros(HY_F64, HY_SHAPE(3)), hy_zeros(HY_F64, HY_SHAPE(3, 5)));
}

static void mm_dtypes(void) {
  hy_matmul(hy_zeros(HY_F64, HY_SHAPE(2, 3)), hy_zeros(HY_F32, HY_SHAPE(3, 5)));
}

Test(matmul, bad_shapes_abort_naming_op_and_shapes) {
  t_expect_abort(mm_inner_mismatch, 3, (const char *[]){"matmul", "[2, 3]", "[4, 5]"});
  t_expect_abort(mm_batch_mismatch, 3, (const char *[]){"matmul", "[2, 3, 4]", "[3, 4, 5]"});
  t_expect_abort(mm_vector, 3, (const char *[]){"matmul", "[3]", "[3, 5]"});
  t_expect_abort(mm_dtypes, 3, (const char *[]){"matmul", "f64", "f32"});
}
