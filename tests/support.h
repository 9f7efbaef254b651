/* Helpers shared by the test suites. */
#ifndef HYLA_TEST_SUPPORT_H
#define HYLA_TEST_SUPPORT_H

#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "layers/model.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <criterion/criterion.h>

/* A step tensor of normal (or uniform) values from a fixed seed. */
hy_tensor *t_randn(hy_dtype dtype, hy_shape shape, uint64_t seed);
hy_tensor *t_uniform(hy_dtype dtype, hy_shape shape, uint64_t seed, double lo, double hi);

/* The seeds of a test's fresh random inputs, one after another: t_next_seed returns t_seed and
 * counts it up. t_seed starts at 1; a suite whose inputs start elsewhere sets it in its .init.
 * Criterion runs each test in a process of its own, so a test draws the same inputs however the
 * suite's tests are run. */
extern uint64_t t_seed;
uint64_t t_next_seed(void);
/* t_randn and t_uniform on the next seed. */
hy_tensor *t_randn_next(hy_dtype dtype, hy_shape shape);
hy_tensor *t_uniform_next(hy_dtype dtype, hy_shape shape, double lo, double hi);
/* A norm's gain of length d on the next seed: uniform in [0.5, 1.5], around 1 but not 1. */
hy_tensor *t_gain(hy_dtype dtype, int64_t d);
/* Host i32 values in [0, V) on the next seed, about a fraction p of them replaced by `ignore`
 * (indices, or targets some of which a loss ignores). */
hy_tensor *t_random_ints(hy_shape shape, int64_t V, int ignore, double p);

/* The same values in another dtype (no tape). */
hy_tensor *t_cast(const hy_tensor *t, hy_dtype dtype);
/* A tensor whose gradient the test reads: it requires one, and keeps it after backward even
 * where an op made it (hy_retain_grad). */
hy_tensor *t_param(hy_tensor *t);

/* q, k, v [B, T, H, D] as slices of one [B, T, 3 H D] projection: strided views read in place. */
void t_qkv_views(hy_tensor *qkv, int64_t H, int64_t D, hy_tensor **q, hy_tensor **k, hy_tensor **v);

/* max_i |a_i - b_i| / max(|b|_inf, tiny): the error relative to the reference's scale. */
double t_max_rel_err(const hy_tensor *a, const hy_tensor *ref);
/* ||a - b|| / ||b|| */
double t_rel_norm_err(const hy_tensor *a, const hy_tensor *ref);

/* Assert a and ref have one shape and t_max_rel_err <= tol; names `what` on failure. */
void t_expect_close(const hy_tensor *a, const hy_tensor *ref, double tol, const char *what);
/* t_expect_close of a[i] against ref[i] for i < n (named "what i"); the largest error. */
double t_expect_each_close(int n, hy_tensor *const *a, hy_tensor *const *ref, double tol,
                           const char *what);
/* A mixer's decoding against its forward: kind->decode_step on each token of x [B, T, d] in turn
 * equals the forward's row within tol (max relative error; "what: token t"); the largest error. */
double t_expect_decoding_matches(const hy_mixer_kind *kind, void *layer, hy_tensor *x, double tol,
                                 const char *what);

/* Every parameter of ps has a gradient with an element above 1e-8 in size after a backward: one
 * cut off from the output would pass a gradient check with its zero gradient. */
void t_expect_every_param_reached(const hy_params *ps, const char *what);

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

/* hy_gradcheck of m's loss on tokens and targets [B, T] with respect to every parameter. */
bool t_model_gradcheck(hy_model *m, hy_tensor *tokens, hy_tensor *targets);

/* The largest difference between m's logits decoded one token at a time (hy_decoder_step) and
 * its full forward on tokens [B, T], each relative to max(|full|, 1e-3). */
double t_decoding_error(hy_model *m, hy_tensor *tokens);

/* The step memory at the peak of m's forward without gradients on 2 x T random tokens (seed 1),
 * per token: flat in T where the layers' state does not grow with the sequence. */
double t_forward_bytes_per_token(hy_model *m, int64_t T);

/* AdamW (lr 1e-2, no weight decay) on m, one batch of tokens [B, T + 1] (persistent: it outlives
 * the steps) as inputs and next tokens, until the loss is below 0.05 or max_steps have run: the
 * steps run before the loss got there (max_steps if it did not), the first loss and the last. */
int t_overfit(hy_model *m, hy_tensor *tokens, int max_steps, double *first, double *last);

/* A 2-block model of `first` and softmax attention (d = 32, vocab 64, f32) memorizes one random
 * batch of 4 x 16 tokens: t_overfit's loss starts within 0.1 of log(64) and falls below 0.05
 * within max_steps. */
void t_expect_hybrid_overfits(const char *first, int max_steps);

/* The parameters a layer suite's tests make their layers in, and the suite's fini that frees
 * them and gives back the step's memory: TestSuite(name, .fini = t_params_fini). */
extern hy_params t_params;
void t_params_fini(void);

/* A scratch folder for each test of a suite that writes files: TestSuite(name, .init = t_temp_init,
 * .fini = t_temp_fini), or the two called from the suite's own init and fini. t_temp_init names a
 * fresh /tmp/hyla-<suite>-XXXXXX, made when a test first asks for it (a test that skips first
 * leaves none); t_temp_fini removes it with all it holds, and gives back the
 * memory HDF5 and the arena keep (LeakSanitizer would report it). t_temp_path is the folder,
 * t_in_temp the path of a file in it (in one of 8 static buffers, reused in turn). */
void t_temp_init(void);
void t_temp_fini(void);
const char *t_temp_path(void);
const char *t_in_temp(const char *file);

/* An i32 tensor of the given shape holding `values` in row-major order. */
hy_tensor *t_ints(hy_shape shape, const int32_t *values);

/* Memory allocated from here to the end of the test is not reported as leaked (nothing without
 * LeakSanitizer). For tests that have HDF5 read damaged metadata: libhdf5 1.10 leaks the object
 * whose checksum did not match, a leak of its own; the fuzz targets check hyla's there. */
void t_ignore_leaks(void);

#endif
