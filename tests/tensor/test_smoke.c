#include "tests/support.h"

Test(smoke, matmul_small) {
  hy_tensor *a = t_randn(HY_F64, HY_SHAPE(3, 4), 1);
  hy_tensor *b = t_randn(HY_F64, HY_SHAPE(4, 5), 2);
  hy_tensor *c = hy_matmul(a, b);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 5; j++) {
      double s = 0;
      for (int k = 0; k < 4; k++) s += hy_get(a, i * 4 + k) * hy_get(b, k * 5 + j);
      cr_assert_float_eq(hy_get(c, i * 5 + j), s, 1e-12);
    }
}
