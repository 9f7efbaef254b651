#include "layers/rat_reference.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>

hy_tensor *hy_rat_scan_reference(hy_tensor *a, hy_tensor *f, int64_t chunk) {
  int64_t T = a->shape[1];
  if (T == 0) return hy_copy(a);
  hy_tensor *keep = hy_add_scalar(hy_scale(f, -1.0), 1.0); /* 1 - f */
  hy_tensor *in = hy_mul(keep, a);
  hy_tensor **rows = malloc((size_t)T * sizeof *rows);
  if (!rows) hy_die("rat_reference", "out of memory");
  for (int64_t t = 0; t < T; t++) {
    hy_tensor *x = hy_slice(in, 1, t, t + 1);
    rows[t] = t % chunk == 0 ? x : hy_add(hy_mul(hy_slice(f, 1, t, t + 1), rows[t - 1]), x);
  }
  hy_tensor *h = hy_concat((int)T, rows, 1);
  free(rows);
  return h;
}

hy_tensor *hy_rat_rope_reference(hy_tensor *x, int64_t first, int64_t chunk, double theta) {
  int64_t T = x->shape[1], D = x->shape[3], half = D / 2;
  hy_tensor *cs = hy_empty(x->dtype, HY_SHAPE(1, T, 1, D));
  hy_tensor *sn = hy_empty(x->dtype, HY_SHAPE(1, T, 1, D));
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < half; i++) {
      double angle = (double)(first + t / chunk) * pow(theta, -2.0 * (double)i / (double)D);
      for (int64_t j = 0; j < 2; j++) {
        hy_set(cs, t * D + i + j * half, cos(angle));
        hy_set(sn, t * D + i + j * half, sin(angle));
      }
    }
  hy_tensor *parts[2];
  hy_split(x, 3, 2, (int64_t[]){half, half}, parts);
  hy_tensor *rotated = hy_concat(2, (hy_tensor *[]){hy_scale(parts[1], -1.0), parts[0]}, 3);
  return hy_add(hy_mul(x, cs), hy_mul(rotated, sn));
}

/* Rows (c + 1) L - 1 of x [B, T, H, D] for c < n: [B, n, H, D]. */
static hy_tensor *chunk_finals(hy_tensor *x, int64_t chunk, int64_t n) {
  hy_tensor **rows = malloc((size_t)n * sizeof *rows);
  if (!rows) hy_die("rat_reference", "out of memory");
  for (int64_t c = 0; c < n; c++) {
    int64_t e = (c + 1) * chunk - 1;
    rows[c] = hy_slice(x, 1, e, e + 1);
  }
  hy_tensor *y = hy_concat((int)n, rows, 1);
  free(rows);
  return y;
}

hy_tensor *hy_rat_chunk_ends_reference(hy_tensor *x, hy_tensor *f, int64_t chunk) {
  return chunk_finals(hy_rat_scan_reference(x, f, chunk), chunk, x->shape[1] / chunk);
}

/* [B, T, H, D] -> [B, H, T, D] */
static hy_tensor *heads_first(hy_tensor *x) { return hy_contiguous(hy_transpose(x, 1, 2)); }

hy_tensor *hy_rat_reference(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, int64_t chunk,
                            double scale, double theta) {
  return hy_rat_reference_after(q, u, k, f, NULL, NULL, chunk, scale, theta);
}

hy_tensor *hy_rat_reference_after(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f,
                                  hy_tensor *kp, hy_tensor *vp, int64_t chunk, double scale,
                                  double theta) {
  int64_t T = q->shape[1], n = T > 0 ? (T - 1) / chunk : 0, P = kp ? kp->shape[1] : 0;
  hy_tensor *xs = hy_rat_scan_reference(u, f, chunk);
  hy_tensor *ks = hy_rat_rope_reference(hy_rat_scan_reference(k, f, chunk), P, chunk, theta);
  hy_tensor *qr = hy_rat_rope_reference(q, P, chunk, theta);
  /* The own key, as rat_slow.py writes it: both sides rotated. [B, H, T, 1] */
  hy_tensor *own = heads_first(hy_scale(hy_sum(hy_mul(qr, ks), 3, true), scale));
  if (P + n == 0 && !kp) /* no query sees a finished chunk: the softmax over one key is 1 */
    return hy_mul(hy_softmax(hy_transpose(own, 1, 2)), xs);
  /* The chunk keys: the P earlier chunks' (chunk p turned by R(p)), then the slice's own. */
  hy_tensor *kc = kp ? hy_rat_rope_reference(kp, 0, 1, theta) : NULL, *vc = vp;
  if (n > 0) {
    hy_tensor *own_k = chunk_finals(ks, chunk, n), *own_v = chunk_finals(xs, chunk, n);
    kc = kc ? hy_concat(2, (hy_tensor *[]){kc, own_k}, 1) : own_k;
    vc = vc ? hy_concat(2, (hy_tensor *[]){vc, own_v}, 1) : own_v;
  }
  kc = heads_first(kc), vc = heads_first(vc);
  hy_tensor *s = hy_scale(hy_matmul(heads_first(qr), hy_transpose(kc, 2, 3)), scale);
  hy_tensor *mask = hy_zeros(q->dtype, HY_SHAPE(T, P + n + 1));
  for (int64_t t = 0; t < T; t++)
    for (int64_t c = P + t / chunk; c < P + n; c++) hy_set(mask, t * (P + n + 1) + c, -INFINITY);
  hy_tensor *p = hy_softmax(hy_add(hy_concat(2, (hy_tensor *[]){s, own}, 3), mask));
  hy_tensor *parts[2];
  hy_split(p, 3, 2, (int64_t[]){P + n, 1}, parts);
  hy_tensor *o = hy_add(hy_matmul(parts[0], vc), hy_mul(parts[1], heads_first(xs)));
  return hy_contiguous(hy_transpose(o, 1, 2));
}
