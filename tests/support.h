/* Helpers shared by the test suites. */
#ifndef HYLA_TEST_SUPPORT_H
#define HYLA_TEST_SUPPORT_H

#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <criterion/criterion.h>

/* A step tensor of normal (or uniform) values from a fixed seed. */
hy_tensor *t_randn(hy_dtype dtype, hy_shape shape, uint64_t seed);
hy_tensor *t_uniform(hy_dtype dtype, hy_shape shape, uint64_t seed, double lo, double hi);
/* The same values in another dtype (no tape). */
hy_tensor *t_cast(const hy_tensor *t, hy_dtype dtype);
/* A tensor whose gradient the test reads: it requires one, and keeps it after backward even
 * where an op made it (hy_retain_grad). */
hy_tensor *t_param(hy_tensor *t);

/* max_i |a_i - b_i| / max(|b|_inf, tiny): the error relative to the reference's scale. */
double t_max_rel_err(const hy_tensor *a, const hy_tensor *ref);
/* ||a - b|| / ||b|| */
double t_rel_norm_err(const hy_tensor *a, const hy_tensor *ref);

/* Assert a and ref have one shape and t_max_rel_err <= tol; names `what` on failure. */
void t_expect_close(const hy_tensor *a, const hy_tensor *ref, double tol, const char *what);

/* Run fn in a child process and return what it wrote to stderr; *signal gets the signal that
 * ended it (0 if it exited). For checks that bad use aborts with a clear message. */
char *t_capture_abort(void (*fn)(void), int *signal);

/* Assert that fn dies with SIGABRT and that its stderr contains each of the n strings. */
void t_expect_abort(void (*fn)(void), int n, const char *const *needles);

/* The tolerance of a check in the given dtype: `f64` for f64, `f32` for f32. */
static inline double t_tol(hy_dtype dtype, double f64, double f32) {
  return dtype == HY_F64 ? f64 : f32;
}

/* Logical multi-index access, straight through the strides (independent of hy_get). */
void t_unravel(int64_t flat, int ndim, const int64_t *shape, int64_t *idx);
double t_at(const hy_tensor *t, const int64_t *idx);

/* Assert a and b have one dtype, one shape and bitwise identical elements. */
void t_expect_same_bits(const hy_tensor *a, const hy_tensor *b, const char *what);

/* Assert hy_gradcheck passes with its default options (f64, rtol 1e-6). */
void t_expect_gradcheck(hy_gradcheck_fn f, void *ctx, int n, hy_tensor **inputs, const char *what);

/* The path of `rel` in the repository (found from this file's path: CMake compiles it by its full
 * path); a static buffer, overwritten by the next call. */
const char *t_source_path(const char *rel);

/* A suite's scratch folder: t_temp_dir makes a fresh one (/tmp/hyla-<name>-XXXXXX), t_in_temp
 * gives the path of a file in it (in one of 8 static buffers, reused in turn), and
 * t_temp_dir_remove removes it with all it holds. One at a time. */
void t_temp_dir(const char *name);
const char *t_in_temp(const char *file);
void t_temp_dir_remove(void);

/* An i32 tensor of the given shape holding `values` in row-major order. */
hy_tensor *t_ints(hy_shape shape, const int32_t *values);

/* Memory allocated from here to the end of the test is not reported as leaked (nothing without
 * LeakSanitizer). For tests that have HDF5 read damaged metadata: libhdf5 1.10 leaks the object
 * whose checksum did not match, a leak of its own; the fuzz targets check hyla's there. */
void t_ignore_leaks(void);

#endif
