/* embedding: rows of a weight picked by i32 indices, repeated indices included; forward against a
 * plain copy loop in f32 and f64; the scatter-add backward against a plain loop; gradcheck; bad
 * indices and shapes; determinism. */
#include "tests/support.h"

#include <stdio.h>

static const hy_dtype DTYPES[] = {HY_F32, HY_F64};

static hy_tensor *random_ids(hy_shape s, int64_t V, uint64_t seed) {
  hy_tensor *t = hy_empty(HY_I32, s);
  hy_rng r = hy_rng_new(seed);
  hy_fill_int(t, &r, 0, V);
  return t;
}

/* out[..., j] = weight[idx[...], j] */
static hy_tensor *ref_embedding(const hy_tensor *w, const hy_tensor *ids) {
  int64_t d = w->shape[1];
  hy_shape s = hy_shape_of(ids);
  s.d[s.ndim++] = d;
  hy_tensor *ref = hy_empty(HY_F64, s);
  for (int64_t i = 0; i < hy_numel(ids); i++)
    for (int64_t j = 0; j < d; j++) {
      int64_t wi[2] = {(int64_t)hy_get(ids, i), j};
      hy_set(ref, i * d + j, t_at(w, wi));
    }
  return ref;
}

static void expect_embedding(hy_tensor *w, hy_tensor *ids, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "embedding %s: %s, %s", what, hy_describe(w), hy_describe(ids));
  /* A copy: exact in both dtypes. */
  t_expect_close(hy_embedding(w, ids), ref_embedding(w, ids), 0.0, name);
}

Test(embedding, forward_shapes_and_repeats) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *w = t_randn_next(dt, HY_SHAPE(11, 7));
    const int32_t rep[] = {3, 3, 0, 10, 3, 0, 7, 7, 10, 1};
    expect_embedding(w, t_ints(HY_SHAPE(2, 5), rep), "repeated");
    expect_embedding(w, t_ints(HY_SHAPE(1), rep), "one index");
    expect_embedding(w, random_ids(HY_SHAPE(13), 11, t_next_seed()), "1-d");
    expect_embedding(w, random_ids(HY_SHAPE(2, 3, 5), 11, t_next_seed()), "3-d");
    expect_embedding(t_randn_next(dt, HY_SHAPE(1, 1)), t_ints(HY_SHAPE(3), (int32_t[]){0, 0, 0}),
                     "V = d = 1");
    /* Threaded: 260 x 130 = 33800 elements. */
    hy_tensor *big = t_randn_next(dt, HY_SHAPE(33, 130));
    expect_embedding(big, random_ids(HY_SHAPE(2, 130), 33, t_next_seed()), "large");
  }
}

Test(embedding, views) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *wt = hy_transpose(t_randn_next(dt, HY_SHAPE(7, 11)), 0, 1); /* [11, 7] */
    hy_tensor *ids = random_ids(HY_SHAPE(3, 8), 11, t_next_seed());
    expect_embedding(wt, ids, "transposed weight");
    expect_embedding(wt, hy_transpose(ids, 0, 1), "transposed indices");
    expect_embedding(hy_slice(t_randn_next(dt, HY_SHAPE(11, 9)), 1, 1, 8), hy_slice(ids, 1, 2, 7),
                     "sliced weight and indices");
  }
}

/* gw[v] = sum of gy rows whose index is v. */
Test(embedding, backward_scatter_adds_repeats) {
  for (int d = 0; d < 2; d++) {
    hy_dtype dt = DTYPES[d];
    hy_tensor *w = t_param(t_randn_next(dt, HY_SHAPE(11, 7)));
    hy_tensor *ids = random_ids(HY_SHAPE(4, 9), 5, t_next_seed()); /* only rows 0-4, many repeats */
    hy_tensor *y = hy_embedding(w, ids), *gy = t_randn_next(dt, hy_shape_of(y));
    hy_backward_with(y, gy);
    hy_tensor *ref = hy_zeros(HY_F64, HY_SHAPE(11, 7));
    for (int64_t i = 0; i < 36; i++)
      for (int64_t j = 0; j < 7; j++) {
        int64_t v = (int64_t)hy_get(ids, i);
        hy_set(ref, v * 7 + j, hy_get(ref, v * 7 + j) + hy_get(gy, i * 7 + j));
      }
    /* f64: the same sums in the same order. f32: sums of ~7 terms, a few ulp. */
    t_expect_close(w->grad, ref, t_tol(dt, 1e-12, 1e-5), "embedding backward");
    for (int64_t j = 0; j < 6 * 7; j++) cr_assert(hy_get(w->grad, 5 * 7 + j) == 0.0);
  }
}

typedef struct {
  hy_tensor *ids;
  bool view;
} emb_ctx;

static hy_tensor *embedding_gc(hy_tensor **in, void *ctx) {
  const emb_ctx *c = ctx;
  return hy_embedding(c->view ? hy_transpose(in[0], 0, 1) : in[0], c->ids);
}

Test(embedding, gradcheck) {
  const int32_t rep[] = {3, 3, 0, 10, 3, 0, 7, 7, 10, 1, 3, 3};
  emb_ctx c = {t_ints(HY_SHAPE(2, 6), rep), false};
  hy_tensor *w = t_param(t_randn_next(HY_F64, HY_SHAPE(11, 5)));
  t_expect_gradcheck(embedding_gc, &c, 1, &w, "embedding");
  c.view = true;
  hy_tensor *wt = t_param(t_randn_next(HY_F64, HY_SHAPE(5, 11)));
  t_expect_gradcheck(embedding_gc, &c, 1, &wt, "embedding of a transposed weight");
  c = (emb_ctx){t_ints(HY_SHAPE(2, 1, 3), rep), false};
  t_expect_gradcheck(embedding_gc, &c, 1, &w, "embedding 3-d indices");
}

Test(embedding, deterministic) {
  hy_tensor *w = t_param(t_randn(HY_F32, HY_SHAPE(33, 130), 1));
  hy_tensor *ids = random_ids(HY_SHAPE(4, 65), 33, 2);
  hy_tensor *y1 = hy_embedding(w, ids), *y2 = hy_embedding(w, ids);
  t_expect_same_bits(y1, y2, "embedding forward");
  hy_tensor *gy = t_randn(HY_F32, hy_shape_of(y1), 3);
  hy_backward_with(y1, gy);
  hy_tensor *g1 = w->grad;
  w->grad = NULL;
  hy_backward_with(y2, gy);
  t_expect_same_bits(w->grad, g1, "embedding backward");
}

static void index_too_big(void) {
  hy_embedding(hy_zeros(HY_F32, HY_SHAPE(11, 7)), t_ints(HY_SHAPE(4), (int32_t[]){1, 2, 3, 11}));
}
static void index_negative(void) {
  hy_embedding(hy_zeros(HY_F64, HY_SHAPE(11, 7)), t_ints(HY_SHAPE(2), (int32_t[]){-1, 2}));
}
static void float_indices(void) {
  hy_embedding(hy_zeros(HY_F32, HY_SHAPE(11, 7)), hy_zeros(HY_F32, HY_SHAPE(3)));
}
static void weight_3d(void) {
  hy_embedding(hy_zeros(HY_F32, HY_SHAPE(2, 11, 7)), hy_zeros(HY_I32, HY_SHAPE(3)));
}

Test(embedding, bad_use_aborts) {
  t_expect_abort(index_too_big, 4,
                 (const char *[]){"embedding", "index 11", "position 3", "[11, 7]"});
  t_expect_abort(index_negative, 3, (const char *[]){"embedding", "index -1", "[11, 7]"});
  t_expect_abort(float_indices, 3, (const char *[]){"embedding", "i32", "[3] f32"});
  t_expect_abort(weight_3d, 2, (const char *[]){"embedding", "[2, 11, 7]"});
}
