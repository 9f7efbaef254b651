/* Elementwise ops: add, sub, mul, div with broadcasting, and every unary op. Forward against
 * plain loops in double, in f32 and f64, including sizes past the threading threshold; backward of
 * large tensors against a plain loop over the derivative; gradcheck; bad shapes; determinism. */
#include "tests/support.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

/* ---- binary ops ---- */

typedef hy_tensor *(*binary_fn)(hy_tensor *, hy_tensor *);
static const binary_fn BINARY[] = {hy_add, hy_sub, hy_mul, hy_div};
static const char *const BINARY_NAME[] = {"add", "sub", "mul", "div"};

static double apply(int op, double a, double b) {
  switch (op) {
  case 0: return a + b;
  case 1: return a - b;
  case 2: return a * b;
  default: return a / b;
  }
}

/* d op / da and d op / db at (a, b). */
static double d_a(int op, double a, double b) {
  (void)a;
  return op == 2 ? b : op == 3 ? 1 / b : 1;
}

static double d_b(int op, double a, double b) {
  switch (op) {
  case 0: return 1;
  case 1: return -1;
  case 2: return a;
  default: return -a / (b * b);
  }
}

/* The broadcast output shape, and the operand index that feeds output index idx. */
static hy_shape bcast_shape(const hy_tensor *a, const hy_tensor *b) {
  hy_shape s = {.ndim = a->ndim > b->ndim ? a->ndim : b->ndim};
  for (int i = 0; i < s.ndim; i++) {
    int ia = i - (s.ndim - a->ndim), ib = i - (s.ndim - b->ndim);
    int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
    s.d[i] = da == 1 ? db : da;
  }
  return s;
}

static void source_index(const hy_tensor *x, int nd, const int64_t *idx, int64_t *ix) {
  for (int i = 0; i < x->ndim; i++) {
    int k = i + nd - x->ndim;
    ix[i] = x->shape[i] == 1 ? 0 : idx[k];
  }
}

static hy_tensor *ref_binary(int op, const hy_tensor *a, const hy_tensor *b) {
  hy_tensor *ref = hy_empty(HY_F64, bcast_shape(a, b));
  int64_t idx[HY_MAX_DIMS], ia[HY_MAX_DIMS], ib[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(ref); f++) {
    t_unravel(f, ref->ndim, ref->shape, idx);
    source_index(a, ref->ndim, idx, ia);
    source_index(b, ref->ndim, idx, ib);
    hy_set(ref, f, apply(op, t_at(a, ia), t_at(b, ib)));
  }
  return ref;
}

/* Pairs of shapes; each is tried in both orders. The last two are past PAR_MIN (32768). */
static const hy_shape PAIRS[][2] = {
    {HY_SHAPE(3, 7), HY_SHAPE(3, 7)},
    {HY_SHAPE(2, 3, 5, 7), HY_SHAPE(2, 3, 5, 7)},
    {HY_SHAPE(2, 3, 7), HY_SHAPE(7)},
    {HY_SHAPE(2, 3, 1), HY_SHAPE(2, 3, 7)},
    {HY_SHAPE(1, 3, 7), HY_SHAPE(2, 3, 7)},
    {HY_SHAPE(1), HY_SHAPE(3, 5)},
    {HY_SHAPE(1), HY_SHAPE(1)},
    {HY_SHAPE(3, 1), HY_SHAPE(1, 5)},
    {HY_SHAPE(2, 1, 3, 1), HY_SHAPE(5, 1, 4)},
    {HY_SHAPE(13, 1, 33), HY_SHAPE(13, 33)},
    {HY_SHAPE(2, 129, 130), HY_SHAPE(130)},
    {HY_SHAPE(2, 129, 130), HY_SHAPE(2, 129, 130)},
};
enum { N_PAIRS = sizeof PAIRS / sizeof *PAIRS };

/* The first operand is normal; the second is in [0.5, 2] so that it can divide. */
static hy_tensor *lhs(hy_dtype dt, hy_shape s) { return t_randn_next(dt, s); }
static hy_tensor *rhs(hy_dtype dt, hy_shape s) { return t_uniform_next(dt, s, 0.5, 2.0); }

static void expect_binary(int op, hy_tensor *a, hy_tensor *b, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "%s %s: %s, %s", BINARY_NAME[op], what, hy_describe(a),
           hy_describe(b));
  /* One correctly rounded operation per element: exact in f64 against the double loop, within
   * half an ulp in f32. */
  t_expect_close(BINARY[op](a, b), ref_binary(op, a, b), t_tol(a->dtype, 1e-12, 1e-5), name);
}

Test(binary, forward_broadcast_both_orders) {
  for (int d = 0; d < 2; d++)
    for (int op = 0; op < 4; op++)
      for (int p = 0; p < N_PAIRS; p++)
        for (int order = 0; order < 2; order++) {
          hy_shape sa = PAIRS[p][order], sb = PAIRS[p][1 - order];
          expect_binary(op, lhs(DTYPES[d], sa), rhs(DTYPES[d], sb), "broadcast");
        }
}

Test(binary, forward_views) {
  for (int d = 0; d < 2; d++)
    for (int op = 0; op < 4; op++) {
      hy_dtype dt = DTYPES[d];
      hy_tensor *at = hy_transpose(lhs(dt, HY_SHAPE(7, 3)), 0, 1); /* [3, 7] */
      hy_tensor *bs = hy_slice(rhs(dt, HY_SHAPE(3, 9)), 1, 1, 8);  /* [3, 7] */
      hy_tensor *bt = hy_transpose(rhs(dt, HY_SHAPE(7, 1, 3)), 0, 2);
      expect_binary(op, at, bs, "transposed, sliced");
      expect_binary(op, bs, at, "sliced, transposed");
      expect_binary(op, at, bt, "transposed, transposed [3, 1, 7]");
      expect_binary(op, hy_slice(lhs(dt, HY_SHAPE(2, 5, 7)), 1, 2, 3), rhs(dt, HY_SHAPE(7)),
                    "sliced [2, 1, 7] with [7]");
    }
}

/* Gradients of a large broadcast product against a plain loop: ga[ia] += gy * d op/da, and the
 * same for b. Sizes past PAR_MIN take the threaded paths. */
Test(binary, backward_against_loop) {
  static const hy_shape shapes[][2] = {
      {HY_SHAPE(2, 129, 130), HY_SHAPE(130)},
      {HY_SHAPE(2, 129, 1), HY_SHAPE(2, 129, 130)},
      {HY_SHAPE(2, 129, 130), HY_SHAPE(2, 129, 130)},
      {HY_SHAPE(3, 1, 5), HY_SHAPE(4, 1)},
  };
  for (int d = 0; d < 2; d++)
    for (int op = 0; op < 4; op++)
      for (int p = 0; p < 4; p++) {
        hy_dtype dt = DTYPES[d];
        hy_tensor *a = t_param(lhs(dt, shapes[p][0])), *b = t_param(rhs(dt, shapes[p][1]));
        hy_tensor *y = BINARY[op](a, b);
        hy_tensor *gy = t_randn_next(dt, hy_shape_of(y));
        hy_backward_with(y, gy);
        hy_tensor *ga = hy_zeros(HY_F64, hy_shape_of(a)), *gb = hy_zeros(HY_F64, hy_shape_of(b));
        int64_t idx[HY_MAX_DIMS], ia[HY_MAX_DIMS], ib[HY_MAX_DIMS];
        for (int64_t f = 0; f < hy_numel(y); f++) {
          t_unravel(f, y->ndim, y->shape, idx);
          source_index(a, y->ndim, idx, ia);
          source_index(b, y->ndim, idx, ib);
          double va = t_at(a, ia), vb = t_at(b, ib), g = hy_get(gy, f);
          double *pa = (double *)ga->data, *pb = (double *)gb->data;
          int64_t oa = 0, ob = 0;
          for (int i = 0; i < a->ndim; i++) oa += ia[i] * ga->stride[i];
          for (int i = 0; i < b->ndim; i++) ob += ib[i] * gb->stride[i];
          pa[oa] += g * d_a(op, va, vb);
          pb[ob] += g * d_b(op, va, vb);
        }
        char name[160];
        snprintf(name, sizeof name, "%s backward %s, %s", BINARY_NAME[op], hy_describe(a),
                 hy_describe(b));
        /* f64: a stretched operand sums up to 258 terms, in another order than the loop.
         * f32: such a sum of random-signed terms errs by ~sqrt(n) ulp of its terms. */
        t_expect_close(a->grad, ga, t_tol(dt, 1e-12, 1e-5), name);
        t_expect_close(b->grad, gb, t_tol(dt, 1e-12, 1e-5), name);
      }
}

typedef struct {
  binary_fn f;
  int view; /* 1: the first input enters transposed */
} binary_ctx;

static hy_tensor *binary_gc(hy_tensor **in, void *ctx) {
  const binary_ctx *c = ctx;
  return c->f(c->view ? hy_transpose(in[0], 0, 1) : in[0], in[1]);
}

static void gc_binary(int op, hy_shape sa, hy_shape sb, int view) {
  binary_ctx c = {BINARY[op], view};
  hy_tensor *a = t_param(lhs(HY_F64, sa)), *b = t_param(rhs(HY_F64, sb));
  char name[160];
  snprintf(name, sizeof name, "%s gradcheck %s, %s%s", BINARY_NAME[op], hy_describe(a),
           hy_describe(b), view ? " (a transposed)" : "");
  t_expect_gradcheck(binary_gc, &c, 2, (hy_tensor *[]){a, b}, name);
}

Test(binary, gradcheck) {
  for (int op = 0; op < 4; op++) {
    gc_binary(op, HY_SHAPE(3, 7), HY_SHAPE(3, 7), 0);
    gc_binary(op, HY_SHAPE(2, 3, 7), HY_SHAPE(7), 0);
    gc_binary(op, HY_SHAPE(7), HY_SHAPE(2, 3, 7), 0);
    gc_binary(op, HY_SHAPE(2, 3, 1), HY_SHAPE(2, 3, 7), 0);
    gc_binary(op, HY_SHAPE(2, 3, 7), HY_SHAPE(2, 3, 1), 0);
    gc_binary(op, HY_SHAPE(1, 3, 7), HY_SHAPE(2, 3, 7), 0);
    gc_binary(op, HY_SHAPE(2, 3, 7), HY_SHAPE(1, 3, 7), 0);
    gc_binary(op, HY_SHAPE(3, 1), HY_SHAPE(1, 5), 0);
    gc_binary(op, HY_SHAPE(2, 1, 3, 1), HY_SHAPE(5, 1, 4), 0);
    gc_binary(op, HY_SHAPE(1), HY_SHAPE(3, 5), 0);
    gc_binary(op, HY_SHAPE(7, 3), HY_SHAPE(3, 7), 1);
    gc_binary(op, HY_SHAPE(7, 3), HY_SHAPE(7), 1);
  }
}

static hy_tensor *square_plus_self(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_add(hy_mul(in[0], in[0]), hy_div(in[0], hy_add_scalar(in[0], 3.0)));
}

Test(binary, gradcheck_same_tensor_on_both_sides) {
  hy_tensor *x = t_param(t_uniform(HY_F64, HY_SHAPE(3, 5), 9, 0.5, 2.0));
  t_expect_gradcheck(square_plus_self, NULL, 1, &x, "x x + x / (x + 3)");
}

/* ---- unary ops ---- */

typedef struct {
  const char *name;
  hy_tensor *(*op)(hy_tensor *x, double p);
  double p, lo, hi; /* the argument, and the input range of the tests */
  double (*ref)(double x, double p);
  double (*dref)(double x, double p); /* the derivative */
} unary_case;

#define WRAP(name)                                                                                 \
  static hy_tensor *op_##name(hy_tensor *x, double p) {                                            \
    (void)p;                                                                                       \
    return hy_##name(x);                                                                           \
  }
WRAP(exp)
WRAP(log)
WRAP(sigmoid)
WRAP(logsigmoid)
WRAP(softplus)
WRAP(silu)
WRAP(tanh)
WRAP(relu)
WRAP(sqrt)
WRAP(rsqrt)
WRAP(elu)
static hy_tensor *op_scale(hy_tensor *x, double p) { return hy_scale(x, p); }
static hy_tensor *op_add_scalar(hy_tensor *x, double p) { return hy_add_scalar(x, p); }
static hy_tensor *op_pow(hy_tensor *x, double p) { return hy_pow(x, p); }

/* The definitions, written directly (valid in double over the tested ranges). */
static double sig(double x) { return 1 / (1 + exp(-x)); }
static double r_scale(double x, double p) { return p * x; }
static double d_scale(double x, double p) { return (void)x, p; }
static double r_add_scalar(double x, double p) { return x + p; }
static double d_one(double x, double p) { return (void)x, (void)p, 1; }
static double r_exp(double x, double p) { return (void)p, exp(x); }
static double r_log(double x, double p) { return (void)p, log(x); }
static double d_log(double x, double p) { return (void)p, 1 / x; }
static double r_sigmoid(double x, double p) { return (void)p, sig(x); }
static double d_sigmoid(double x, double p) { return (void)p, sig(x) * (1 - sig(x)); }
static double r_logsigmoid(double x, double p) { return (void)p, -log1p(exp(-x)); }
static double d_logsigmoid(double x, double p) { return (void)p, 1 - sig(x); }
static double r_softplus(double x, double p) { return (void)p, log1p(exp(x)); }
static double d_softplus(double x, double p) { return (void)p, sig(x); }
static double r_silu(double x, double p) { return (void)p, x * sig(x); }
static double d_silu(double x, double p) { return (void)p, sig(x) + x * sig(x) * (1 - sig(x)); }
static double r_tanh(double x, double p) { return (void)p, tanh(x); }
static double d_tanh(double x, double p) { return (void)p, 1 - tanh(x) * tanh(x); }
static double r_relu(double x, double p) { return (void)p, x > 0 ? x : 0; }
static double d_relu(double x, double p) { return (void)p, x > 0 ? 1 : 0; }
static double r_sqrt(double x, double p) { return (void)p, sqrt(x); }
static double d_sqrt(double x, double p) { return (void)p, 0.5 / sqrt(x); }
static double r_rsqrt(double x, double p) { return (void)p, 1 / sqrt(x); }
static double d_rsqrt(double x, double p) { return (void)p, -0.5 / (x * sqrt(x)); }
static double r_elu(double x, double p) { return (void)p, x > 0 ? x : expm1(x); }
static double d_elu(double x, double p) { return (void)p, x > 0 ? 1 : exp(x); }
static double r_pow(double x, double p) { return pow(x, p); }
static double d_pow(double x, double p) { return p * pow(x, p - 1); }

/* Ranges keep away from points where a function or its derivative is not smooth (relu at 0,
 * log, sqrt, rsqrt and pow at x <= 0). relu's range is checked by gradcheck well away from 0. */
static const unary_case UNARY[] = {
    {"scale", op_scale, -1.75, -3, 3, r_scale, d_scale},
    {"add_scalar", op_add_scalar, 0.3, -3, 3, r_add_scalar, d_one},
    {"exp", op_exp, 0, -6, 6, r_exp, r_exp},
    {"log", op_log, 0, 0.05, 20, r_log, d_log},
    {"sigmoid", op_sigmoid, 0, -12, 12, r_sigmoid, d_sigmoid},
    {"logsigmoid", op_logsigmoid, 0, -12, 12, r_logsigmoid, d_logsigmoid},
    {"softplus", op_softplus, 0, -12, 12, r_softplus, d_softplus},
    {"silu", op_silu, 0, -12, 12, r_silu, d_silu},
    {"tanh", op_tanh, 0, -4, 4, r_tanh, d_tanh},
    {"relu", op_relu, 0, -3, 3, r_relu, d_relu},
    {"sqrt", op_sqrt, 0, 0.01, 9, r_sqrt, d_sqrt},
    {"rsqrt", op_rsqrt, 0, 0.05, 9, r_rsqrt, d_rsqrt},
    {"pow 2", op_pow, 2, 0.1, 4, r_pow, d_pow},
    {"pow 3", op_pow, 3, -3, 3, r_pow, d_pow},
    {"pow 0.5", op_pow, 0.5, 0.1, 4, r_pow, d_pow},
    {"pow -1.5", op_pow, -1.5, 0.1, 4, r_pow, d_pow},
    {"elu", op_elu, 0, -4, 4, r_elu, d_elu},
};
enum { N_UNARY = sizeof UNARY / sizeof *UNARY };

static hy_tensor *ref_unary(const unary_case *c, const hy_tensor *x) {
  hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
  int64_t idx[HY_MAX_DIMS];
  for (int64_t f = 0; f < hy_numel(x); f++) {
    t_unravel(f, x->ndim, x->shape, idx);
    hy_set(ref, f, c->ref(t_at(x, idx), c->p));
  }
  return ref;
}

/* f64: libm in the op against libm in the loop, a few ulp. f32: a few ulp of f32 (real_exp is
 * within 3 ulp of expf), far under 1e-5 of the largest output. */
static void expect_unary(const unary_case *c, hy_tensor *x, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "%s %s: %s", c->name, what, hy_describe(x));
  hy_tensor *y = c->op(x, c->p);
  t_expect_close(y, ref_unary(c, x), t_tol(x->dtype, 1e-12, 1e-5), name);
}

Test(unary, forward_shapes) {
  /* The last shape (33540 elements) is past PAR_MIN, so the threaded loop runs. */
  static const hy_shape shapes[] = {HY_SHAPE(1),          HY_SHAPE(7),
                                    HY_SHAPE(3, 13),      HY_SHAPE(2, 3, 33),
                                    HY_SHAPE(2, 1, 3, 5), HY_SHAPE(2, 129, 130)};
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < N_UNARY; i++)
      for (int s = 0; s < 6; s++) {
        const unary_case *c = &UNARY[i];
        expect_unary(c, t_uniform_next(DTYPES[d], shapes[s], c->lo, c->hi), "range");
      }
}

Test(unary, forward_views) {
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < N_UNARY; i++) {
      const unary_case *c = &UNARY[i];
      hy_tensor *x = t_uniform_next(DTYPES[d], HY_SHAPE(13, 3), c->lo, c->hi);
      expect_unary(c, hy_transpose(x, 0, 1), "transposed");
      expect_unary(c, hy_slice(x, 0, 2, 9), "sliced");
    }
}

/* Large |x|: no overflow, no NaN, and the right limits. The reference is in long double, where
 * the direct formulas do not overflow; the error is per element, relative to |ref| (the outputs
 * span many orders of magnitude, so a tolerance relative to the largest would hide the small ones).
 * f32: silu(-100) is a denormal, so values under 1e-35 are compared absolutely. */
Test(unary, extreme_inputs_are_stable) {
  static const double xs[] = {-1000, -100, -40, -30, -1e-3, 0, 1e-3, 30, 40, 100, 1000};
  enum { N = sizeof xs / sizeof *xs };
  static const char *const names[] = {"sigmoid", "logsigmoid", "softplus", "silu", "tanh"};
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *x = hy_empty(dt, HY_SHAPE(N));
    for (int i = 0; i < N; i++) hy_set(x, i, xs[i]);
    hy_tensor *ys[] = {hy_sigmoid(x), hy_logsigmoid(x), hy_softplus(x), hy_silu(x), hy_tanh(x)};
    for (int k = 0; k < 5; k++)
      for (int i = 0; i < N; i++) {
        long double v = xs[i], e = expl(-v), ref;
        switch (k) {
        case 0: ref = 1 / (1 + e); break;
        case 1: ref = -log1pl(e); break;
        case 2: ref = log1pl(expl(v)); break;
        case 3: ref = v / (1 + e); break;
        default: ref = tanhl(v); break;
        }
        double got = hy_get(ys[k], i), err = fabs(got - (double)ref);
        double bound = t_tol(dt, 1e-12, 1e-5) * fabs((double)ref) + t_tol(dt, 1e-300, 1e-35);
        cr_expect(err <= bound, "%s %s(%g) = %.17g, expected %.17Lg", hy_dtype_name(dt), names[k],
                  xs[i], got, ref);
      }
    /* exp: 0 far below, inf far above, never NaN. */
    hy_tensor *e = hy_exp(x);
    cr_expect(hy_get(e, 0) == 0.0 && hy_get(e, N - 1) == INFINITY, "%s exp limits",
              hy_dtype_name(dt));
  }
}

/* exp over its whole finite range, element by element: f32's real_exp promises 3 ulp (3.6e-7)
 * from e^-87.3 up to the overflow threshold 88.72, f64 is libm's. */
Test(unary, exp_accurate_over_its_whole_range) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    double lo = dt == HY_F32 ? -87.3 : -708, hi = dt == HY_F32 ? 88.72 : 709;
    int64_t n = 20001;
    hy_tensor *x = hy_empty(dt, HY_SHAPE(n));
    for (int64_t i = 0; i < n; i++) hy_set(x, i, lo + (hi - lo) * (double)i / (double)(n - 1));
    for (int64_t i = 0; i < 200; i++) hy_set(x, i, hi - 0.03 * (double)i / 200); /* the top edge */
    hy_tensor *y = hy_exp(x);
    for (int64_t i = 0; i < n; i++) {
      double v = hy_get(x, i), ref = exp(v), got = hy_get(y, i);
      cr_assert(fabs(got - ref) <= t_tol(dt, 1e-15, 1e-6) * ref, "%s exp(%.9g) = %.9g, not %.9g",
                hy_dtype_name(dt), v, got, ref);
    }
  }
}

/* Gradients of every unary op on a large tensor (the threaded loop) against gy * f'(x). */
Test(unary, backward_against_derivative) {
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < N_UNARY; i++) {
      const unary_case *c = &UNARY[i];
      hy_dtype dt = DTYPES[d];
      hy_tensor *x = t_param(t_uniform_next(dt, HY_SHAPE(2, 129, 130), c->lo, c->hi));
      hy_tensor *y = c->op(x, c->p), *gy = t_randn_next(dt, hy_shape_of(y));
      hy_backward_with(y, gy);
      hy_tensor *ref = hy_empty(HY_F64, hy_shape_of(x));
      for (int64_t f = 0; f < hy_numel(x); f++)
        hy_set(ref, f, hy_get(gy, f) * c->dref(hy_get(x, f), c->p));
      char name[96];
      snprintf(name, sizeof name, "%s %s backward", hy_dtype_name(dt), c->name);
      t_expect_close(x->grad, ref, t_tol(dt, 1e-12, 1e-5), name);
    }
}

static hy_tensor *unary_gc(hy_tensor **in, void *ctx) {
  const unary_case *c = ctx;
  return c->op(in[0], c->p);
}

static hy_tensor *unary_gc_view(hy_tensor **in, void *ctx) {
  const unary_case *c = ctx;
  return c->op(hy_transpose(in[0], 0, 1), c->p);
}

Test(unary, gradcheck) {
  for (int i = 0; i < N_UNARY; i++) {
    const unary_case *c = &UNARY[i];
    double lo = c->lo, hi = c->hi;
    if (c->op == op_relu) lo = 0.1; /* positive inputs here, negative ones below; none near 0 */
    hy_tensor *x = t_param(t_uniform_next(HY_F64, HY_SHAPE(3, 5), lo, hi));
    t_expect_gradcheck(unary_gc, (void *)c, 1, &x, c->name);
    hy_tensor *xt = t_param(t_uniform_next(HY_F64, HY_SHAPE(5, 3), lo, hi));
    t_expect_gradcheck(unary_gc_view, (void *)c, 1, &xt, c->name);
  }
  /* relu on negative inputs (zero gradient) away from 0 */
  hy_tensor *x = t_param(t_uniform(HY_F64, HY_SHAPE(4, 3), 7, -3.0, -0.1));
  t_expect_gradcheck(unary_gc, (void *)&UNARY[9], 1, &x, "relu negative");
}

/* ---- determinism and bad use ---- */

Test(elementwise, deterministic) {
  hy_tensor *a = t_randn(HY_F32, HY_SHAPE(2, 129, 130), 1), *b = t_randn(HY_F32, HY_SHAPE(130), 2);
  for (int op = 0; op < 4; op++) t_expect_same_bits(BINARY[op](a, b), BINARY[op](a, b), "binary");
  hy_tensor *x = t_uniform(HY_F32, HY_SHAPE(2, 129, 130), 4, 0.1, 3.0);
  for (int i = 0; i < N_UNARY; i++)
    t_expect_same_bits(UNARY[i].op(x, UNARY[i].p), UNARY[i].op(x, UNARY[i].p), UNARY[i].name);
  /* Gradients of a stretched operand are sums; they must not depend on the run either. */
  hy_tensor *gy = t_randn(HY_F32, HY_SHAPE(2, 129, 130), 3);
  t_param(b);
  hy_tensor *g[2];
  for (int r = 0; r < 2; r++) {
    b->grad = NULL;
    hy_backward_with(hy_mul(a, b), gy);
    g[r] = b->grad;
  }
  t_expect_same_bits(g[0], g[1], "broadcast gradient");
}

static void add_no_broadcast(void) {
  hy_add(hy_zeros(HY_F64, HY_SHAPE(2, 3)), hy_zeros(HY_F64, HY_SHAPE(4, 5)));
}
static void mul_no_broadcast(void) {
  hy_mul(hy_zeros(HY_F32, HY_SHAPE(2, 3, 4)), hy_zeros(HY_F32, HY_SHAPE(3, 3)));
}
static void sub_dtypes(void) {
  hy_sub(hy_zeros(HY_F32, HY_SHAPE(3)), hy_zeros(HY_F64, HY_SHAPE(3)));
}
static void div_ints(void) { hy_div(hy_zeros(HY_I32, HY_SHAPE(3)), hy_zeros(HY_I32, HY_SHAPE(3))); }
static void exp_ints(void) { hy_exp(hy_zeros(HY_I32, HY_SHAPE(2, 5))); }

Test(elementwise, bad_use_aborts_naming_op_and_shapes) {
  t_expect_abort(add_no_broadcast, 3, (const char *[]){"add", "[2, 3]", "[4, 5]"});
  t_expect_abort(mul_no_broadcast, 3, (const char *[]){"mul", "[2, 3, 4]", "[3, 3]"});
  t_expect_abort(sub_dtypes, 3, (const char *[]){"sub", "[3] f32", "[3] f64"});
  t_expect_abort(div_ints, 2, (const char *[]){"div", "[3] i32"});
  t_expect_abort(exp_ints, 2, (const char *[]){"exp", "[2, 5] i32"});
}
