/* bf16 on the GPU for the elementwise ops, the ops that compute bf16 in f32, views and copies,
 * casts and hy_dense. Each op runs with bf16 inputs on the GPU against the CPU in f64 on the same
 * bf16-rounded values (t_expect_bf16_matches_f64: fresh random inputs, the GPU arena poisoned,
 * forward and every gradient), so only the GPU's own rounding counts. Data movement (views,
 * copies, conversions) must match the CPU bit for bit.
 *
 * Tolerances (relative norm error): one bf16 rounding of a result measured 1.5e-3 to 1.8e-3 on
 * these inputs (the kernels' arithmetic simulated on the CPU), so ONE = 4e-3 for results stored
 * once. TWO = 6e-3 where a result carries two roundings: an f32 operand rounded to bf16 before
 * use, or a bf16 gradient that adds a second term onto a stored first; THREE = 7e-3 for three
 * (about sqrt(3) times one). */
#include "tensor/op.h" /* hy_convert_into, private to tensor/ */
#include "tests/gpu.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

static const double ONE = 4e-3, TWO = 6e-3, THREE = 7e-3;
/* The slopes of sigmoid, tanh and rsqrt are formed from the stored (bf16) output, as on the CPU
 * and in PyTorch: 1 - y^2 and y (1 - y) lose relative precision as |y| nears 1, and y^3 triples
 * y's error. Simulated: 7.0e-3, 5.2e-3 and 5.8e-3 on these inputs. */
static const double OUTPUT_SLOPE = 1e-2;

static void init(void) { t_seed = 16000; } /* the inputs its tolerances were measured on */
TestSuite(cuda_elementwise_bf16, .init = init);

static const unsigned ALL = ~0u; /* every input in bf16 */

/* ---- binary ops ---- */

/* Every op on a [sa] and b [sb] (b away from 0: it divides); mask: which operands are bf16 (the
 * others f32). */
static void check_binary(hy_shape sa, hy_shape sb, unsigned mask, double tol, const char *pattern) {
  for (int op = 0; op < 4; op++) {
    hy_tensor *in[2] = {t_randn_leaf(sa, 1),
                        op == 3 ? t_uniform_leaf(sb, 0.5, 2.0) : t_randn_leaf(sb, 1)};
    char what[200];
    snprintf(what, sizeof what, "bf16 %s, %s (a %s, b %s)", T_BINARY_NAME[op], pattern,
             mask & 1 ? "bf16" : "f32", mask & 2 ? "bf16" : "f32");
    t_binary_fn fn = T_BINARY[op];
    t_expect_bf16_matches_f64(t_binary, &fn, 2, in, mask, HY_BF16, tol, what);
  }
}

Test(cuda_elementwise_bf16, binary_packed) {
  T_NEED_GPU();
  check_binary(HY_SHAPE(4, 33, 64), HY_SHAPE(4, 33, 64), ALL, ONE, "packed, 4 a thread");
  check_binary(HY_SHAPE(3, 5, 7), HY_SHAPE(3, 5, 7), ALL, ONE, "packed, 105 = 4 * 26 + 1");
  check_binary(HY_SHAPE(100003), HY_SHAPE(100003), ALL, ONE, "packed, a tail of 3");
  check_binary(HY_SHAPE(2), HY_SHAPE(2), ALL, ONE, "packed, tail only");
}

/* Operands that start 1 element (2 bytes) into their buffer: too unaligned for 4 a thread. */
static hy_tensor *binary_unaligned(hy_tensor **in, void *ctx) {
  int64_t n = in[0]->shape[0] - 1;
  return (*(t_binary_fn *)ctx)(hy_slice(in[0], 0, 1, n + 1), hy_slice(in[1], 0, 0, n));
}

Test(cuda_elementwise_bf16, binary_unaligned) {
  T_NEED_GPU();
  for (int op = 0; op < 4; op++) {
    hy_tensor *in[2] = {t_randn_leaf(HY_SHAPE(1001), 1), t_uniform_leaf(HY_SHAPE(1001), 0.5, 2.0)};
    t_binary_fn fn = T_BINARY[op];
    char what[160];
    snprintf(what, sizeof what, "bf16 %s of operands offset by one element", T_BINARY_NAME[op]);
    t_expect_bf16_matches_f64(binary_unaligned, &fn, 2, in, ALL, HY_BF16, ONE, what);
  }
}

Test(cuda_elementwise_bf16, binary_bias_over_rows) {
  T_NEED_GPU();
  check_binary(HY_SHAPE(2, 17, 64), HY_SHAPE(64), ALL, ONE, "a [64] bias over [2, 17, 64]");
  check_binary(HY_SHAPE(2, 17, 30), HY_SHAPE(30), ALL, ONE, "a [30] bias (rows not of 4)");
  /* enough rows that the bias gradient splits into chunks added in order */
  check_binary(HY_SHAPE(6000, 72), HY_SHAPE(72), ALL, ONE, "a [72] bias over 6000 rows");
  check_binary(HY_SHAPE(3), HY_SHAPE(5, 3), ALL, ONE, "a row vector on the left");
}

Test(cuda_elementwise_bf16, binary_middle_and_last_dims_stretched) {
  T_NEED_GPU();
  check_binary(HY_SHAPE(4, 1, 40), HY_SHAPE(4, 9, 40), ALL, ONE, "a middle dim stretched");
  check_binary(HY_SHAPE(3, 7, 8), HY_SHAPE(3, 1, 8), ALL, ONE, "a middle dim stretched (b)");
  check_binary(HY_SHAPE(6, 64), HY_SHAPE(6, 1), ALL, ONE, "a column over rows of 64");
  check_binary(HY_SHAPE(5, 9, 33), HY_SHAPE(5, 9, 1), ALL, ONE, "a column over rows of 33");
  check_binary(HY_SHAPE(7, 5000), HY_SHAPE(7, 1), ALL, ONE, "a column of long rows");
  check_binary(HY_SHAPE(5, 37), HY_SHAPE(1), ALL, ONE, "scalar-like [1]");
  check_binary(HY_SHAPE(3, 1, 8), HY_SHAPE(1, 5, 1), ALL, ONE, "both stretched");
  check_binary(HY_SHAPE(2, 3, 5, 8), HY_SHAPE(5, 8), ALL, ONE, "leading dims missing");
}

/* Strided operands (copied to packed ones first): a transpose and a column slice. */
static hy_tensor *binary_strided(hy_tensor **in, void *ctx) {
  return (*(t_binary_fn *)ctx)(hy_transpose(in[0], 0, 1), hy_slice(in[1], 1, 3, 40));
}

Test(cuda_elementwise_bf16, binary_strided) {
  T_NEED_GPU();
  for (int op = 0; op < 4; op++) {
    hy_tensor *in[2] = {t_randn_leaf(HY_SHAPE(37, 21), 1),
                        t_uniform_leaf(HY_SHAPE(21, 45), 0.5, 2.0)};
    t_binary_fn fn = T_BINARY[op];
    char what[160];
    snprintf(what, sizeof what, "bf16 %s of a transpose and a column slice", T_BINARY_NAME[op]);
    t_expect_bf16_matches_f64(binary_strided, &fn, 2, in, ALL, HY_BF16, ONE, what);
  }
}

/* A bf16 activation with an f32 parameter: the parameter is rounded to bf16 on the tape (a second
 * rounding in the output and in the activation's gradient); the parameter's gradient comes back
 * in f32 (t_expect_bf16_matches_f64 checks each gradient's dtype), rounded once. */
Test(cuda_elementwise_bf16, binary_bf16_with_f32_parameter) {
  T_NEED_GPU();
  check_binary(HY_SHAPE(2, 17, 64), HY_SHAPE(64), 1, TWO, "bf16 activations, f32 [64] bias");
  check_binary(HY_SHAPE(2, 17, 30), HY_SHAPE(2, 17, 30), 1, TWO, "bf16 and f32 of one shape");
  check_binary(HY_SHAPE(64), HY_SHAPE(3, 5, 64), 2, TWO, "f32 [64] on the left of bf16");
}

Test(cuda_elementwise_bf16, binary_operand_used_twice) {
  T_NEED_GPU();
  hy_tensor *x = t_randn_leaf(HY_SHAPE(9, 13), 1);
  t_expect_bf16_matches_f64(t_square, NULL, 1, &x, ALL, HY_BF16, TWO, "bf16 x * x");
}

/* Every gradient kernel first overwrites a fresh gradient, then adds into it on a later use
 * (the backward runs the products in reverse): b + c (b: column sums, c: row sums, both fresh),
 * d * c (d: broadcast map, fresh; c: row sums, adding), a * b (a: broadcast map, fresh; b: column
 * sums, adding), a * d (packed map, both adding). The concat is exact, so each output is rounded
 * once and each gradient twice. */
static hy_tensor *every_kernel_twice(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *a = in[0], *b = in[1], *c = in[2], *d = in[3];
  hy_tensor *parts[4] = {hy_mul(a, d), hy_mul(a, b), hy_mul(d, c), hy_add(b, c)};
  return hy_concat(4, parts, 0);
}

Test(cuda_elementwise_bf16, gradients_overwrite_then_accumulate) {
  T_NEED_GPU();
  for (int bf16 = 0; bf16 < 2; bf16++) {
    hy_tensor *in[4] = {t_randn_leaf(HY_SHAPE(3, 17, 64), 1), t_randn_leaf(HY_SHAPE(64), 1),
                        t_randn_leaf(HY_SHAPE(3, 17, 1), 1), t_randn_leaf(HY_SHAPE(3, 17, 64), 1)};
    if (bf16)
      t_expect_bf16_matches_f64(every_kernel_twice, NULL, 4, in, ALL, HY_BF16, TWO,
                                "bf16 gradients of several uses");
    else /* the f32 twins of the same kernels */
      t_expect_gpu_matches_f64(every_kernel_twice, NULL, 4, in, 1e-5,
                               "f32 gradients of several uses");
  }
}

/* ---- unary ops ---- */

typedef struct {
  const char *name;
  hy_tensor *(*plain)(hy_tensor *);
  hy_tensor *(*with_p)(hy_tensor *, double);
  double p, lo, hi; /* the parameter, and the input range: the op's domain */
  double tol;
} unary_case;

static hy_tensor *apply_unary(const unary_case *c, hy_tensor *x) {
  return c->plain ? c->plain(x) : c->with_p(x, c->p);
}

static hy_tensor *unary(hy_tensor **in, void *ctx) { return apply_unary(ctx, in[0]); }

static hy_tensor *unary_unaligned(hy_tensor **in, void *ctx) {
  return apply_unary(ctx, hy_slice(in[0], 0, 1, in[0]->shape[0]));
}

/* x used twice: the second use adds into the gradient the first wrote. */
static hy_tensor *unary_twice(hy_tensor **in, void *ctx) {
  return hy_add(apply_unary(ctx, in[0]), hy_scale(apply_unary(ctx, in[0]), 0.5));
}

static const unary_case UNARY[] = {
    {"scale", NULL, hy_scale, -1.3, -4, 4, ONE},
    {"add_scalar", NULL, hy_add_scalar, 0.7, -4, 4, ONE},
    {"exp", hy_exp, NULL, 0, -6, 6, ONE},
    {"log", hy_log, NULL, 0, 0.05, 5, ONE},
    {"sigmoid", hy_sigmoid, NULL, 0, -12, 12, OUTPUT_SLOPE},
    {"logsigmoid", hy_logsigmoid, NULL, 0, -12, 12, ONE},
    {"softplus", hy_softplus, NULL, 0, -12, 12, ONE},
    {"silu", hy_silu, NULL, 0, -8, 8, ONE},
    {"tanh", hy_tanh, NULL, 0, -4, 4, OUTPUT_SLOPE},
    {"relu", hy_relu, NULL, 0, -3, 3, ONE},
    {"sqrt", hy_sqrt, NULL, 0, 0.05, 5, ONE},
    {"rsqrt", hy_rsqrt, NULL, 0, 0.05, 5, OUTPUT_SLOPE},
    {"pow 2.5", NULL, hy_pow, 2.5, 0.05, 3, ONE},
    {"pow -0.5", NULL, hy_pow, -0.5, 0.1, 3, ONE},
    {"elu", hy_elu, NULL, 0, -5, 3, ONE},
};

Test(cuda_elementwise_bf16, unary_ops) {
  T_NEED_GPU();
  /* 4 a thread without a tail, with tails of 1 and 3, tail only */
  const hy_shape shapes[] = {HY_SHAPE(4, 64), HY_SHAPE(5, 333), HY_SHAPE(3, 101, 97), HY_SHAPE(3)};
  for (size_t i = 0; i < sizeof UNARY / sizeof *UNARY; i++) {
    const unary_case *c = &UNARY[i];
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      hy_tensor *x = t_uniform_leaf(shapes[s], c->lo, c->hi);
      char what[160];
      snprintf(what, sizeof what, "bf16 %s on %s", c->name, hy_describe(x));
      t_expect_bf16_matches_f64(unary, (void *)c, 1, &x, ALL, HY_BF16, c->tol, what);
    }
    hy_tensor *x = t_uniform_leaf(HY_SHAPE(1002), c->lo, c->hi);
    char what[160];
    snprintf(what, sizeof what, "bf16 %s, offset by one element", c->name);
    t_expect_bf16_matches_f64(unary_unaligned, (void *)c, 1, &x, ALL, HY_BF16, c->tol, what);
    x = t_uniform_leaf(HY_SHAPE(7, 45), c->lo, c->hi);
    snprintf(what, sizeof what, "bf16 %s of x used twice", c->name);
    t_expect_bf16_matches_f64(unary_twice, (void *)c, 1, &x, ALL, HY_BF16, c->tol + ONE, what);
  }
}

/* ---- ops computed in f32 (no bf16 kernels): one small case each, output in bf16 ---- */

Test(cuda_elementwise_bf16, reductions_in_f32) {
  T_NEED_GPU();
  const t_reduce_case cases[] = {{hy_sum, 1, false}, {hy_mean, -1, true}, {hy_max, 0, false}};
  for (size_t i = 0; i < 3; i++) {
    hy_tensor *x = t_randn_leaf(HY_SHAPE(4, 37, 5), 1);
    t_expect_bf16_matches_f64(t_reduce, (void *)&cases[i], 1, &x, ALL, HY_BF16, ONE,
                              i == 0   ? "bf16 sum"
                              : i == 1 ? "bf16 mean"
                                       : "bf16 max");
  }
  hy_tensor *x = t_randn_leaf(HY_SHAPE(7, 31), 1);
  t_expect_bf16_matches_f64(t_sum_all, NULL, 1, &x, ALL, HY_BF16, ONE, "bf16 sum_all");
}

static hy_tensor *cumsum(hy_tensor **in, void *ctx) {
  return hy_cumsum(in[0], 1, *(const bool *)ctx);
}

Test(cuda_elementwise_bf16, softmax_logsumexp_cumsum_in_f32) {
  T_NEED_GPU();
  hy_tensor *x = t_uniform_leaf(HY_SHAPE(3, 5, 77), -8, 8);
  t_expect_bf16_matches_f64(t_softmax, NULL, 1, &x, ALL, HY_BF16, ONE, "bf16 softmax");
  x = t_uniform_leaf(HY_SHAPE(3, 5, 77), -8, 8);
  t_expect_bf16_matches_f64(t_logsumexp, NULL, 1, &x, ALL, HY_BF16, ONE, "bf16 logsumexp");
  for (int rev = 0; rev < 2; rev++) {
    bool reverse = rev;
    x = t_randn_leaf(HY_SHAPE(3, 41, 6), 1);
    t_expect_bf16_matches_f64(cumsum, &reverse, 1, &x, ALL, HY_BF16, ONE,
                              reverse ? "bf16 reverse cumsum" : "bf16 cumsum");
  }
}

static hy_tensor *embedding(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_embedding(in[0], in[1]);
}

Test(cuda_elementwise_bf16, embedding_of_a_bf16_weight) {
  T_NEED_GPU();
  hy_tensor *idx = t_ints(HY_SHAPE(2, 5), (int32_t[]){3, 0, 6, 3, 1, 5, 5, 2, 0, 6});
  hy_tensor *in[2] = {t_randn_leaf(HY_SHAPE(7, 24), 1), idx};
  t_expect_bf16_matches_f64(embedding, NULL, 2, in, 1, HY_BF16, ONE, "bf16 embedding");
}

typedef struct {
  int kind; /* 0 sigmoid, 1 softplus */
} variant;

static hy_tensor *softmax_variant(hy_tensor **in, void *ctx) {
  const variant *v = ctx;
  double scale = 1 / sqrt((double)in[0]->shape[3]);
  return v->kind == 0 ? hy_sigmoid_attention(in[0], in[1], in[2], scale, -2.0)
                      : hy_softplus_attention(in[0], in[1], in[2], scale, 16, 2.0, 0);
}

Test(cuda_elementwise_bf16, sigmoid_and_softplus_attention_in_f32) {
  T_NEED_GPU();
  for (int kind = 0; kind < 2; kind++) {
    variant v = {kind};
    hy_tensor *in[3] = {t_randn_leaf(HY_SHAPE(2, 19, 2, 16), 1),
                        t_randn_leaf(HY_SHAPE(2, 19, 2, 16), 1),
                        t_randn_leaf(HY_SHAPE(2, 19, 2, 16), 1)};
    t_expect_bf16_matches_f64(softmax_variant, &v, 3, in, ALL, HY_BF16, ONE,
                              kind ? "bf16 softplus attention" : "bf16 sigmoid attention");
  }
}

static const int64_t SLA_BLOCK = 4;

static hy_tensor *sla(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_sla(in[0], in[1], in[2], 0.25, 0.5, 0.25, HY_SLA_PHI_SOFTMAX, SLA_BLOCK, NULL);
}

Test(cuda_elementwise_bf16, sla_in_f32) {
  T_NEED_GPU();
  hy_tensor *in[3] = {t_randn_leaf(HY_SHAPE(2, 19, 2, 16), 1),
                      t_randn_leaf(HY_SHAPE(2, 19, 2, 16), 1),
                      t_randn_leaf(HY_SHAPE(2, 19, 2, 16), 1)};
  /* the selection from bf16 q, k: the CPU's classes on the same values */
  hy_tensor *q = t_cast(t_cast(in[0], HY_BF16), HY_F64),
            *k = t_cast(t_cast(in[1], HY_BF16), HY_F64);
  hy_tensor *want = hy_sla_select(q, k, SLA_BLOCK, 0.5, 0.25, NULL);
  hy_tensor *qg = t_to_gpu(t_cast(in[0], HY_BF16)), *kg = t_to_gpu(t_cast(in[1], HY_BF16));
  t_poison();
  hy_tensor *got = t_to_cpu(hy_sla_select(qg, kg, SLA_BLOCK, 0.5, 0.25, NULL));
  cr_assert(hy_same_shape(got, want) && got->dtype == HY_I32, "bf16 sla_select: %s",
            hy_describe(got));
  for (int64_t i = 0; i < hy_numel(want); i++)
    cr_assert(hy_get(got, i) == hy_get(want, i), "bf16 sla_select: class %lld", (long long)i);
  t_expect_bf16_matches_f64(sla, NULL, 3, in, ALL, HY_BF16, ONE, "bf16 sla");
}

static hy_tensor *rat(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_rat(in[0], in[1], in[2], in[3], 5, 0.25, 10000.0);
}

Test(cuda_elementwise_bf16, rat_in_f32) {
  T_NEED_GPU();
  hy_shape s = HY_SHAPE(2, 23, 2, 16);
  hy_tensor *in[4] = {t_randn_leaf(s, 1), t_randn_leaf(s, 1), t_randn_leaf(s, 1),
                      t_uniform_leaf(s, 0.05, 0.95)};
  t_expect_bf16_matches_f64(rat, NULL, 4, in, ALL, HY_BF16, ONE, "bf16 rat");
}

static hy_tensor *titans(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_titans_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], 4);
}

/* bf16 activations (q, k, v, theta, eta, keep) with the memory's f32 weights (w1, w2): all in f32,
 * y bf16; the weights' gradients come back in f32. */
Test(cuda_elementwise_bf16, titans_scan_in_f32) {
  T_NEED_GPU();
  int64_t B = 2, H = 2, T = 13, D = 8, F = 16, N = T / 4;
  double a = sqrt(3.0 / (double)D), wb = sqrt(6.0 / (double)(D + F));
  hy_shape rows = HY_SHAPE(B, H, T, D), gate = HY_SHAPE(B, H, N, 1);
  hy_tensor *in[8] = {t_uniform_leaf(rows, -a, a),
                      t_uniform_leaf(rows, -a, a),
                      t_randn_leaf(rows, 1),
                      t_uniform_leaf(HY_SHAPE(B, H, T, 1), 0.1 / (double)D, 1.0 / (double)D),
                      t_uniform_leaf(gate, 0.2, 0.95),
                      t_uniform_leaf(gate, 0.6, 0.99),
                      t_uniform_leaf(HY_SHAPE(H, D, F), -wb, wb),
                      t_uniform_leaf(HY_SHAPE(H, F, D), -wb, wb)};
  t_expect_bf16_matches_f64(titans, NULL, 8, in, 0x3f, HY_BF16, ONE,
                            "bf16 titans scan with f32 weights");
}

/* ---- views and copies ---- */

/* Transpose, split, slice, reshape (views), contiguous, copy and concat (copies) of x [6, 10, 8];
 * x's elements reach the output twice, so its gradient adds two terms. */
static hy_tensor *views_and_copies(hy_tensor *x) {
  hy_tensor *t = hy_transpose(x, 0, 2); /* [8, 10, 6] */
  hy_tensor *parts[2];
  hy_split(t, 1, 2, (int64_t[]){3, 7}, parts);
  hy_tensor *c = hy_concat(2, (hy_tensor *[]){parts[1], hy_contiguous(parts[0])}, 1);
  hy_tensor *r = hy_reshape(hy_slice(c, 0, 1, 7), HY_SHAPE(-1, 6)); /* [60, 6] */
  return hy_concat(
      2, (hy_tensor *[]){hy_copy(r), hy_reshape(hy_transpose(x, 1, 2), HY_SHAPE(-1, 6))}, 0);
}

/* Only data moves (and bf16 sums of two bf16 values, exact in f32 and in double alike), so the
 * GPU's output and gradient equal the CPU's bf16 ones bit for bit. */
Test(cuda_elementwise_bf16, views_and_copies_match_the_cpu_bit_for_bit) {
  T_NEED_GPU();
  hy_tensor *x = t_cast(t_randn_next(HY_F32, HY_SHAPE(6, 10, 8)), HY_BF16);
  x->requires_grad = true;
  hy_tensor *xg = t_to_gpu(x);
  t_poison();
  hy_tensor *y = views_and_copies(x), *yg = views_and_copies(xg);
  cr_assert(yg->dtype == HY_BF16 && yg->device == HY_CUDA);
  t_expect_same_bits(t_to_cpu(yg), y, "bf16 views and copies: forward");
  hy_tensor *gy = t_cast(t_randn_next(HY_F32, hy_shape_of(y)), HY_BF16);
  hy_backward_with(y, gy);
  hy_backward_with(yg, t_to_gpu(gy));
  t_expect_same_bits(t_to_cpu(xg->grad), x->grad, "bf16 views and copies: gradient");
}

/* ---- casts and conversions ---- */

/* The layouts of the conversion check: 0 and 1 packed (48 elements: 4 a thread; 42: not), 2 a
 * packed source into a destination sliced out of a wider tensor, 3 a transposed source too. */
static hy_tensor *src_view(hy_tensor *base, int layout) {
  return layout < 2    ? hy_reshape(base, HY_SHAPE(-1))
         : layout == 2 ? base
                       : hy_transpose(base, 0, 1);
}

static hy_tensor *dst_view(hy_tensor *wide, int layout, int64_t rows, int64_t cols) {
  return layout < 2 ? hy_slice(hy_reshape(wide, HY_SHAPE(-1)), 0, 0, rows * cols)
                    : hy_slice(wide, 1, cols, 2 * cols);
}

/* dst (+)= src between f32 and bf16 in every pairing and layout, overwriting and accumulating:
 * the GPU equals the CPU bit for bit (both round the f32 sum once to nearest even; the CPU's
 * double sum of two such values rounds to the same f32). */
Test(cuda_elementwise_bf16, conversions_match_the_cpu_bit_for_bit) {
  T_NEED_GPU();
  const hy_dtype dtypes[] = {HY_F32, HY_BF16};
  for (int s = 0; s < 2; s++)
    for (int d = 0; d < 2; d++)
      for (int acc = 0; acc < 2; acc++)
        for (int layout = 0; layout < 4; layout++) {
          int64_t rows = 6, cols = layout == 1 ? 7 : 8;
          hy_shape base = layout == 3 ? HY_SHAPE(cols, rows) : HY_SHAPE(rows, cols);
          hy_tensor *src = t_cast(t_randn_next(HY_F32, base), dtypes[s]);
          hy_tensor *wide = t_cast(t_randn_next(HY_F32, HY_SHAPE(rows, 3 * cols)), dtypes[d]);
          hy_tensor *wide_g = t_to_gpu(wide);
          hy_convert_into(dst_view(wide, layout, rows, cols), src_view(src, layout), acc);
          hy_convert_into(dst_view(wide_g, layout, rows, cols), src_view(t_to_gpu(src), layout),
                          acc);
          char what[160];
          snprintf(what, sizeof what, "%s into %s, layout %d%s", hy_dtype_name(dtypes[s]),
                   hy_dtype_name(dtypes[d]), layout, acc ? ", accumulating" : "");
          t_expect_same_bits(t_to_cpu(wide_g), wide, what);
        }
}

/* f32 -> bf16 -> f32 and bf16 -> f32 -> bf16 on the tape: values and gradients equal the CPU's
 * bit for bit, and each gradient has its input's dtype. */
static hy_tensor *round_trip(hy_tensor *x) {
  hy_dtype other = x->dtype == HY_F32 ? HY_BF16 : HY_F32;
  return hy_cast(hy_cast(x, other), x->dtype);
}

Test(cuda_elementwise_bf16, cast_and_its_gradient) {
  T_NEED_GPU();
  const hy_dtype dtypes[] = {HY_F32, HY_BF16};
  for (int i = 0; i < 2; i++) {
    hy_tensor *x = t_cast(t_randn_next(HY_F32, HY_SHAPE(5, 77)), dtypes[i]);
    x->requires_grad = true;
    hy_tensor *xg = t_to_gpu(x);
    t_poison();
    hy_tensor *y = round_trip(x), *yg = round_trip(xg);
    t_expect_same_bits(t_to_cpu(yg), y, "cast round trip: forward");
    hy_tensor *gy = t_cast(t_randn_next(HY_F32, hy_shape_of(y)), dtypes[i]);
    hy_backward_with(y, gy);
    hy_backward_with(yg, t_to_gpu(gy));
    cr_assert(xg->grad->dtype == dtypes[i], "cast: gradient %s", hy_describe(xg->grad));
    t_expect_same_bits(t_to_cpu(xg->grad), x->grad, "cast round trip: gradient");
  }
}

/* ---- hy_dense ---- */

static hy_tensor *dense(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_dense(in[0], in[1], in[2]);
}

/* The product rounds once, the bias add once more (TWO); each gradient rounds once. */
Test(cuda_elementwise_bf16, dense_all_bf16) {
  T_NEED_GPU();
  hy_tensor *in[3] = {t_randn_leaf(HY_SHAPE(2, 17, 40), 1), t_randn_leaf(HY_SHAPE(24, 40), 1),
                      t_randn_leaf(HY_SHAPE(24), 1)};
  t_expect_bf16_matches_f64(dense, NULL, 3, in, ALL, HY_BF16, TWO, "dense, x, W, b in bf16");
  hy_tensor *plain[3] = {t_randn_leaf(HY_SHAPE(3, 40), 1), t_randn_leaf(HY_SHAPE(24, 40), 1), NULL};
  t_expect_bf16_matches_f64(dense, NULL, 3, plain, ALL, HY_BF16, ONE, "dense, x, W in bf16");
}

/* An f32 weight that is not a persistent parameter is rounded to bf16 on the tape (TWO for the
 * output and x's gradient); its gradient comes back in f32, rounded once in bf16. */
Test(cuda_elementwise_bf16, dense_bf16_x_with_f32_step_weight) {
  T_NEED_GPU();
  hy_tensor *in[3] = {t_randn_leaf(HY_SHAPE(2, 17, 40), 1), t_randn_leaf(HY_SHAPE(24, 40), 1),
                      NULL};
  t_expect_bf16_matches_f64(dense, NULL, 3, in, 1, HY_BF16, TWO,
                            "dense, bf16 x with an f32 step weight");
}

/* The mixed-precision linear layer: a persistent f32 weight read through its bf16 copy, its
 * gradient summed in f32 from the bf16 operands. The output carries the weight's rounding, the
 * product's and the bias add's (THREE), x's gradient the weight's and its own (TWO); the weight's
 * gradient sums exact products of bf16 values in f32, so it must be far closer than one bf16
 * rounding (3e-4, where a bf16 store shows about 1.5e-3); the bias (also a persistent f32
 * parameter) is rounded on the tape and its gradient once. */
Test(cuda_elementwise_bf16, dense_bf16_x_with_f32_parameter) {
  T_NEED_GPU();
  hy_tensor *x = t_cast(t_randn_next(HY_F32, HY_SHAPE(2, 17, 40)), HY_BF16);
  hy_tensor *w = t_randn_next(HY_F32, HY_SHAPE(24, 40));
  hy_tensor *b = t_randn_next(HY_F32, HY_SHAPE(24));
  hy_tensor *xr = t_param(t_cast(x, HY_F64)), *wr = t_param(t_cast(w, HY_F64));
  hy_tensor *br = t_param(t_cast(b, HY_F64));
  hy_tensor *xg = t_to_gpu(x);
  xg->requires_grad = true;
  hy_tensor *wg = hy_empty_persistent_on(HY_CUDA, HY_F32, hy_shape_of(w));
  hy_tensor *bg = hy_empty_persistent_on(HY_CUDA, HY_F32, hy_shape_of(b));
  hy_copy_into(wg, w);
  hy_copy_into(bg, b);
  wg->requires_grad = bg->requires_grad = true;
  t_poison();
  hy_tensor *ref = hy_dense(xr, wr, br), *y = hy_dense(xg, wg, bg);
  cr_assert(y->dtype == HY_BF16, "dense: output %s", hy_describe(y));
  cr_assert(wg->bf16_copy != NULL, "dense: the weight's bf16 copy was not used");
  t_expect_gpu_close(y, ref, THREE, "dense with an f32 parameter: forward");
  hy_tensor *gy = t_cast(t_cast(t_randn_next(HY_F32, hy_shape_of(ref)), HY_BF16), HY_F64);
  hy_backward_with(ref, gy);
  hy_backward_with(y, t_to_gpu(t_cast(gy, HY_BF16)));
  cr_assert(xg->grad->dtype == HY_BF16 && wg->grad->dtype == HY_F32 && bg->grad->dtype == HY_F32,
            "dense: gradients %s, %s, %s", hy_describe(xg->grad), hy_describe(wg->grad),
            hy_describe(bg->grad));
  t_expect_gpu_close(xg->grad, xr->grad, TWO, "dense with an f32 parameter: gradient of x");
  t_expect_gpu_close(wg->grad, wr->grad, 3e-4, "dense with an f32 parameter: gradient of W");
  t_expect_gpu_close(bg->grad, br->grad, ONE, "dense with an f32 parameter: gradient of b");
  hy_free(wg);
  hy_free(bg);
}
