/* The gradient checker itself: it passes a correct backward, and it catches a backward that is
 * slightly wrong, wrong in one element, wrong in one of several inputs, or that overwrites instead
 * of accumulating. It leaves its inputs, the tape and the arena as it found them, takes views and
 * persistent tensors as inputs, and refuses inputs it cannot check. */
#include "tests/support.h"

#include <math.h>
#include <string.h>

/* y = x^3 as a custom op whose backward is wrong in a chosen way. */
enum { RIGHT, OFF_BY_1E4, ONE_ELEMENT, OVERWRITES };

typedef struct {
  int mode;
} cube_args;

static void cube_backward(hy_node *n) {
  int mode = HY_NODE_ARGS(n, cube_args)->mode;
  hy_tensor *x = n->in[0], *gx = hy_grad(x), *gy = n->out->grad;
  for (int64_t i = 0; i < hy_numel(x); i++) {
    double v = hy_get(x, i), g = hy_get(gy, i) * 3 * v * v;
    if (mode == OFF_BY_1E4) g *= 1 + 1e-4;
    if (mode == ONE_ELEMENT && i == 17) g *= 1.01;
    hy_set(gx, i, mode == OVERWRITES ? g : hy_get(gx, i) + g);
  }
}

static hy_tensor *cube(hy_tensor *x, int mode) {
  hy_tensor *y = hy_empty_like(x);
  for (int64_t i = 0; i < hy_numel(x); i++) hy_set(y, i, pow(hy_get(x, i), 3));
  hy_node *n = hy_record("cube", cube_backward, y, 1, &x);
  if (n) HY_NODE_ARGS(n, cube_args)->mode = mode;
  return y;
}

/* in[0] cubed; in[1] (if given) enters through a plain op; cubed twice when mode is OVERWRITES. */
static hy_tensor *f(hy_tensor **in, void *ctx) {
  int mode = *(const int *)ctx;
  hy_tensor *y = cube(in[0], mode);
  if (mode == OVERWRITES) y = hy_add(y, hy_scale(cube(in[0], mode), 2));
  return y;
}

static hy_tensor *f2(hy_tensor **in, void *ctx) { /* in[0] [3, 5] plain, in[1] [100] cubed */
  int mode = *(const int *)ctx;
  return hy_add(hy_sum_all(hy_exp(in[0])), hy_sum_all(cube(in[1], mode)));
}

static bool check(hy_gradcheck_fn fn, int mode, int n, hy_tensor **in) {
  hy_gradcheck_opts o = {.quiet = true};
  return hy_gradcheck(fn, &mode, n, in, &o);
}

Test(gradcheck, passes_a_right_backward) {
  hy_tensor *x = t_param(t_uniform(HY_F64, HY_SHAPE(5, 6), 1, -2, 2));
  cr_assert(check(f, RIGHT, 1, &x));
  cr_assert(hy_gradcheck_last_error() <= 1e-6, "worst error %g", hy_gradcheck_last_error());
}

Test(gradcheck, catches_wrong_backwards) {
  hy_tensor *x = t_param(t_uniform(HY_F64, HY_SHAPE(5, 6), 2, 0.5, 2));
  cr_assert(!check(f, OFF_BY_1E4, 1, &x), "a relative error of 1e-4 went unnoticed");
  cr_assert(hy_gradcheck_last_error() > 5e-5 && hy_gradcheck_last_error() < 2e-4,
            "reported error %g", hy_gradcheck_last_error());
  cr_assert(!check(f, ONE_ELEMENT, 1, &x), "one wrong element of 30 went unnoticed");
  cr_assert(!check(f, OVERWRITES, 1, &x), "a backward that overwrites went unnoticed");
}

/* Large inputs are sampled, but every input that needs a gradient is checked. */
Test(gradcheck, checks_every_input_even_when_sampling) {
  hy_tensor *a = t_param(t_randn(HY_F64, HY_SHAPE(3, 5), 3));
  hy_tensor *b = t_param(t_uniform(HY_F64, HY_SHAPE(100), 4, 0.5, 2));
  cr_assert(check(f2, RIGHT, 2, (hy_tensor *[]){a, b}));
  cr_assert(!check(f2, OFF_BY_1E4, 2, (hy_tensor *[]){a, b}), "the second input was not checked");
}

Test(gradcheck, restores_inputs_tape_and_arena) {
  hy_tensor *x = t_param(t_uniform(HY_F64, HY_SHAPE(4, 3), 5, -1, 1));
  hy_tensor *before = hy_copy(x);
  int64_t nodes = hy_tape_size();
  size_t used = hy_arena_used();
  int mode = RIGHT;
  t_expect_gradcheck(f, &mode, 1, &x, "cube");
  t_expect_same_bits(x, before, "inputs after gradcheck");
  cr_assert(hy_tape_size() == nodes && hy_arena_used() == used);
  cr_assert(x->grad == NULL, "a step input's gradient is forgotten");
}

static hy_tensor *matmul_f(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_matmul(in[0], in[1]);
}

Test(gradcheck, persistent_inputs) {
  hy_tensor *w = hy_zeros_persistent(HY_F64, HY_SHAPE(5, 3));
  w->requires_grad = true;
  hy_rng r = hy_rng_new(6);
  hy_fill_normal(w, &r, 0, 1);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(4, 5), 7));
  t_expect_gradcheck(matmul_f, NULL, 2, (hy_tensor *[]){x, w}, "x w with persistent w");
  for (int64_t i = 0; w->grad && i < 15; i++) cr_assert(hy_get(w->grad, i) == 0.0);
  hy_free(w);
}

/* An input may itself be a strided view (a leaf view that requires a gradient): the checker
 * perturbs the viewed elements, and the ops take the strided tensor as it is. */
static hy_tensor *view_ops(hy_tensor **in, void *ctx) {
  (void)ctx;
  hy_tensor *v = in[0]; /* [5, 3], strided */
  hy_tensor *a = hy_matmul(v, in[1]);
  hy_tensor *b = hy_rmsnorm(v, NULL, 1e-6);
  hy_tensor *c = hy_cumsum(hy_softmax(v), 0, false);
  hy_tensor *d = hy_add(hy_mul(hy_exp(v), in[2]), hy_cross_entropy(v, in[3], -1));
  hy_tensor *e = hy_sum(hy_pow(hy_add_scalar(hy_scale(v, 0.5), 3), 1.5), 0, true);
  return hy_concat(4,
                   (hy_tensor *[]){hy_sum_all(a), hy_sum_all(b), hy_sum_all(c),
                                   hy_add(hy_sum_all(d), hy_sum_all(e))},
                   0);
}

Test(gradcheck, views_as_inputs) {
  hy_tensor *base = t_randn(HY_F64, HY_SHAPE(3, 7), 8);
  hy_tensor *v = t_param(hy_slice(hy_transpose(base, 0, 1), 0, 1, 6)); /* [5, 3] */
  cr_assert(!hy_is_contiguous(v));
  hy_tensor *w = t_param(t_randn(HY_F64, HY_SHAPE(3, 2), 9));
  hy_tensor *m = t_param(t_randn(HY_F64, HY_SHAPE(3), 10));
  hy_tensor *tg = t_ints(HY_SHAPE(5), (int32_t[]){0, 2, -1, 1, 1});
  t_expect_gradcheck(view_ops, NULL, 4, (hy_tensor *[]){v, w, m, tg}, "ops on a strided leaf");
}

static hy_tensor *exp_f(hy_tensor **in, void *ctx) {
  (void)ctx;
  return hy_exp(in[0]);
}
static void gradcheck_f32(void) {
  hy_tensor *x = t_param(hy_zeros(HY_F32, HY_SHAPE(3)));
  hy_gradcheck(exp_f, NULL, 1, &x, NULL);
}
static void gradcheck_nothing(void) {
  hy_tensor *x = hy_zeros(HY_F64, HY_SHAPE(3));
  hy_gradcheck(exp_f, NULL, 1, &x, NULL);
}

Test(gradcheck, refuses_what_it_cannot_check) {
  t_expect_abort(gradcheck_f32, 3, (const char *[]){"gradcheck", "f64", "[3] f32"});
  t_expect_abort(gradcheck_nothing, 2, (const char *[]){"gradcheck", "no input"});
}
