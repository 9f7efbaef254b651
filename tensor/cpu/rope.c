#include "tensor/cpu/real.h"

/* Rotate-half RoPE on x [B, T, H, D] into y packed: channel i < D/2 pairs with i + D/2 and both
 * turn by the angle (t + pos_offset) * theta^(-2i/D); `inverse` turns the other way (the
 * backward). x's rows sit at strides xs[0..2] over b, t and h (its channels contiguous), so
 * q and k sliced from one projection need no copy. Angles are computed in double so that f32 and
 * f64 see the same rotation up to their own rounding. */
void K(cpu_rope)(int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos_offset, double theta,
                 bool inverse, bool accumulate, const int64_t *xs, const real *x, real *y) {
  int64_t half = D / 2;
#pragma omp parallel for if (B * T * H * D > PAR_MIN) schedule(static)
  for (int64_t t = 0; t < T; t++) {
    for (int64_t i = 0; i < half; i++) {
      double angle = (double)(t + pos_offset) * pow(theta, -2.0 * (double)i / (double)D);
      real c = (real)cos(angle), s = (real)(inverse ? -sin(angle) : sin(angle));
      for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
          const real *xr = x + b * xs[0] + t * xs[1] + h * xs[2];
          real *yr = y + ((b * T + t) * H + h) * D;
          real x1 = xr[i], x2 = xr[i + half];
          real y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
          if (accumulate) {
            yr[i] += y1;
            yr[i + half] += y2;
          } else {
            yr[i] = y1;
            yr[i + half] = y2;
          }
        }
    }
  }
}
