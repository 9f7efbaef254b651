/* HYLA_CHECK_FINITE: the first op whose output or gradient holds a NaN or an infinity ends hyla
 * with its name, the tensor and the element, and its inputs' state; finite steps pass untouched. */
#include "autograd/check_finite.h"
#include "autograd/tape.h"
#include "tests/support.h"
#include "tensor/ops.h"

#include <criterion/criterion.h>
#include <math.h>

static hy_tensor *leaf(double a, double b, double c) {
  hy_tensor *x = hy_empty(HY_F64, HY_SHAPE(3));
  hy_set(x, 0, a);
  hy_set(x, 1, b);
  hy_set(x, 2, c);
  x->requires_grad = true;
  return x;
}

static void forward_nan(void) {
  hy_check_finite_enable(true);
  hy_tensor *x = leaf(1.0, -2.0, 3.0);
  hy_sum_all(hy_log(hy_scale(x, 2.0))); /* log of -4: NaN at element 1 */
}

static void backward_inf(void) {
  hy_check_finite_enable(true);
  hy_tensor *x = leaf(1.0, 0.0, 3.0);
  hy_backward(hy_sum_all(hy_sqrt(x))); /* sqrt(0) is finite, its slope 1 / (2 sqrt(0)) is not */
}

Test(check_finite, an_op_that_makes_a_nan_is_named) {
  t_expect_abort(forward_nan, 4, (const char *[]){"check_finite", "log", "output", "element 1"});
}

Test(check_finite, a_backward_that_makes_an_infinity_is_named) {
  t_expect_abort(backward_inf, 4,
                 (const char *[]){"check_finite", "sqrt", "gradient of input 0", "element 1"});
}

Test(check_finite, finite_steps_pass_and_the_inputs_are_told_apart) {
  hy_check_finite_enable(true);
  hy_tensor *x = leaf(1.0, 2.0, 3.0);
  hy_tensor *loss = hy_sum_all(hy_log(x));
  hy_backward(loss);
  cr_assert_float_eq(hy_item(loss), log(6.0), 1e-12);
  cr_assert_float_eq(hy_get(x->grad, 1), 0.5, 1e-12);
  hy_check_finite_enable(false);
  hy_tensor *y = leaf(NAN, 1.0, 1.0);
  hy_sum_all(hy_scale(y, 2.0)); /* off: nothing checked */
}

static void nan_input(void) {
  hy_check_finite_enable(true);
  hy_scale(leaf(1.0, NAN, 3.0), 2.0); /* the NaN came in: the input is said to be non-finite */
}

Test(check_finite, a_non_finite_input_is_said_so) {
  t_expect_abort(nan_input, 3, (const char *[]){"scale", "element 1", "NOT finite"});
}
