#include "tests/support.h"
#include "tests/rel_norm_err.h"
#include "optim/optimizer.h"
#include "tensor/arena.h"

#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

hy_tensor *t_randn(hy_dtype dtype, hy_shape shape, uint64_t seed) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_rng r = hy_rng_new(seed);
  hy_fill_normal(t, &r, 0.0, 1.0);
  return t;
}

hy_tensor *t_uniform(hy_dtype dtype, hy_shape shape, uint64_t seed, double lo, double hi) {
  hy_tensor *t = hy_empty(dtype, shape);
  hy_rng r = hy_rng_new(seed);
  hy_fill_uniform(t, &r, lo, hi);
  return t;
}

uint64_t t_seed = 1;

uint64_t t_next_seed(void) { return t_seed++; }

hy_tensor *t_randn_next(hy_dtype dtype, hy_shape shape) {
  return t_randn(dtype, shape, t_next_seed());
}

hy_tensor *t_uniform_next(hy_dtype dtype, hy_shape shape, double lo, double hi) {
  return t_uniform(dtype, shape, t_next_seed(), lo, hi);
}

hy_tensor *t_gain(hy_dtype dtype, int64_t d) {
  return t_uniform_next(dtype, HY_SHAPE(d), 0.5, 1.5);
}

hy_tensor *t_random_ints(hy_shape shape, int64_t V, int ignore, double p) {
  hy_tensor *t = hy_empty_on(HY_CPU, HY_I32, shape);
  hy_rng r = hy_rng_new(t_next_seed());
  for (int64_t i = 0; i < hy_numel(t); i++) {
    int64_t v = (int64_t)(hy_rng_u64(&r) % (uint64_t)V);
    hy_set(t, i, hy_rng_uniform(&r) < p ? ignore : (double)v);
  }
  return t;
}

hy_tensor *t_cast(const hy_tensor *t, hy_dtype dtype) {
  hy_tensor *c = hy_empty(dtype, hy_shape_of(t));
  for (int64_t i = 0; i < hy_numel(t); i++) hy_set(c, i, hy_get(t, i));
  return c;
}

hy_tensor *t_param(hy_tensor *t) {
  t->requires_grad = true;
  hy_retain_grad(t); /* tests read its gradient, also where an op made it */
  return t;
}

void t_qkv_views(hy_tensor *qkv, int64_t H, int64_t D, hy_tensor **q, hy_tensor **k,
                 hy_tensor **v) {
  hy_tensor *r = hy_reshape(qkv, HY_SHAPE(qkv->shape[0], qkv->shape[1], 3 * H, D));
  hy_tensor *parts[3];
  hy_split(r, 2, 3, (int64_t[]){H, H, H}, parts);
  *q = parts[0];
  *k = parts[1];
  *v = parts[2];
}

double t_max_rel_err(const hy_tensor *a, const hy_tensor *ref) {
  double scale = 1e-300, err = 0;
  for (int64_t i = 0; i < hy_numel(ref); i++) scale = fmax(scale, fabs(hy_get(ref, i)));
  for (int64_t i = 0; i < hy_numel(ref); i++) {
    double d = fabs(hy_get(a, i) - hy_get(ref, i));
    if (isnan(d)) return INFINITY;
    err = fmax(err, d);
  }
  return err / scale;
}

double t_rel_norm_err(const hy_tensor *a, const hy_tensor *ref) {
  return t_rel_norm_err_of(a, ref);
}

void t_expect_close(const hy_tensor *a, const hy_tensor *ref, double tol, const char *what) {
  cr_assert(a != NULL && ref != NULL, "%s: missing tensor", what);
  cr_assert(hy_same_shape(a, ref), "%s: shape %s, expected %s", what, hy_describe(a),
            hy_describe(ref));
  double err = t_max_rel_err(a, ref);
  cr_assert(err <= tol, "%s: max relative error %.3g > %.3g", what, err, tol);
}

double t_expect_each_close(int n, hy_tensor *const *a, hy_tensor *const *ref, double tol,
                           const char *what) {
  double worst = 0;
  for (int i = 0; i < n; i++) {
    char name[256];
    snprintf(name, sizeof name, "%s %d", what, i);
    t_expect_close(a[i], ref[i], tol, name);
    worst = fmax(worst, t_max_rel_err(a[i], ref[i]));
  }
  return worst;
}

double t_expect_decoding_matches(const hy_mixer_kind *kind, void *layer, hy_tensor *x, double tol,
                                 const char *what) {
  int64_t B = x->shape[0], T = x->shape[1];
  double worst = 0;
  hy_no_grad_begin();
  hy_tensor *full = kind->forward(layer, x);
  void *st = kind->decode_new(layer, B, T);
  for (int64_t t = 0; t < T; t++) {
    hy_tensor *row = kind->decode_step(layer, st, hy_contiguous(hy_slice(x, 1, t, t + 1)), t);
    hy_tensor *ref = hy_contiguous(hy_slice(full, 1, t, t + 1));
    char name[256];
    snprintf(name, sizeof name, "%s: token %lld", what, (long long)t);
    t_expect_close(row, ref, tol, name);
    worst = fmax(worst, t_max_rel_err(row, ref));
  }
  hy_no_grad_end();
  kind->decode_free(st);
  return worst;
}

char *t_capture_abort(void (*fn)(void), int *sig) {
  int fds[2];
  cr_assert(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    signal(SIGABRT, SIG_DFL);
    fn();
    _exit(0);
  }
  close(fds[1]);
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  ssize_t got;
  while ((got = read(fds[0], buf + len, cap - len - 1)) > 0) {
    len += (size_t)got;
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  *sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return buf;
}

void t_expect_abort(void (*fn)(void), int n, const char *const *needles) {
  int sig = 0;
  char *err = t_capture_abort(fn, &sig);
  cr_expect(sig == SIGABRT, "expected SIGABRT, got signal %d; stderr: %s", sig, err);
  for (int i = 0; i < n; i++)
    cr_expect(strstr(err, needles[i]) != NULL, "stderr lacks \"%s\": %s", needles[i], err);
  free(err);
}

void t_unravel(int64_t flat, int ndim, const int64_t *shape, int64_t *idx) {
  for (int i = ndim - 1; i >= 0; i--) {
    idx[i] = flat % shape[i];
    flat /= shape[i];
  }
}

double t_at(const hy_tensor *t, const int64_t *idx) {
  int64_t off = 0;
  for (int i = 0; i < t->ndim; i++) {
    cr_assert(idx[i] >= 0 && idx[i] < t->shape[i], "t_at: index %lld outside dim %d of %s",
              (long long)idx[i], i, hy_describe(t));
    off += idx[i] * t->stride[i];
  }
  switch (t->dtype) {
  case HY_F32: return ((const float *)t->data)[off];
  case HY_F64: return ((const double *)t->data)[off];
  case HY_I32: return ((const int32_t *)t->data)[off];
  case HY_BF16: return hy_bf16_to_float(((const hy_bf16 *)t->data)[off]);
  }
  return NAN;
}

void t_expect_same_bits(const hy_tensor *a, const hy_tensor *b, const char *what) {
  cr_assert(a->dtype == b->dtype && hy_same_shape(a, b), "%s: %s vs %s", what, hy_describe(a),
            hy_describe(b));
  int64_t idx[HY_MAX_DIMS] = {0};
  size_t es = hy_dtype_size(a->dtype);
  for (int64_t i = 0; i < hy_numel(a); i++) {
    t_unravel(i, a->ndim, a->shape, idx);
    int64_t oa = 0, ob = 0;
    for (int d = 0; d < a->ndim; d++) {
      oa += idx[d] * a->stride[d];
      ob += idx[d] * b->stride[d];
    }
    cr_assert(memcmp((const char *)a->data + oa * (int64_t)es,
                     (const char *)b->data + ob * (int64_t)es, es) == 0,
              "%s: element %lld differs: %.17g vs %.17g", what, (long long)i, hy_get(a, i),
              hy_get(b, i));
  }
}

void t_expect_gradcheck(hy_gradcheck_fn f, void *ctx, int n, hy_tensor **inputs, const char *what) {
  bool ok = hy_gradcheck(f, ctx, n, inputs, NULL);
  cr_assert(ok, "%s: gradcheck failed (worst relative error %.3g)", what,
            hy_gradcheck_last_error());
}

hy_tensor *t_ints(hy_shape shape, const int32_t *values) {
  hy_tensor *t = hy_empty(HY_I32, shape);
  for (int64_t i = 0; i < hy_numel(t); i++) hy_set(t, i, values[i]);
  return t;
}

const char *t_source_path(const char *rel) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s", __FILE__);
  char *slash = strrchr(buf, '/'); /* tests/support.c: the root is one up */
  if (slash) *slash = 0;
  slash = strrchr(buf, '/');
  if (slash)
    *slash = 0;
  else
    buf[0] = 0;
  size_t n = strlen(buf);
  snprintf(buf + n, sizeof buf - n, "%s%s", n ? "/" : "", rel);
  return buf;
}

typedef struct {
  hy_model *m;
  hy_tensor *tokens, *targets;
} model_case;

static hy_tensor *model_loss(hy_tensor **in, void *ctx) {
  (void)in; /* the parameters, which the model holds */
  model_case *c = ctx;
  return hy_model_loss(c->m, c->tokens, c->targets, -1);
}

bool t_model_gradcheck(hy_model *m, hy_tensor *tokens, hy_tensor *targets) {
  model_case c = {m, tokens, targets};
  hy_tensor **inputs = malloc((size_t)m->params.n * sizeof *inputs);
  for (int i = 0; i < m->params.n; i++) inputs[i] = m->params.items[i].t;
  bool ok = hy_gradcheck(model_loss, &c, m->params.n, inputs, NULL);
  free(inputs);
  return ok;
}

double t_decoding_error(hy_model *m, hy_tensor *tokens) {
  int64_t B = tokens->shape[0], T = tokens->shape[1];
  hy_no_grad_begin();
  hy_tensor *full = hy_model_forward(m, tokens); /* [B, T, V] */
  int64_t V = full->shape[2];
  hy_decoder *d = hy_decoder_new(m, B, T);
  double worst = 0;
  for (int64_t t = 0; t < T; t++) {
    hy_tensor *logits = hy_decoder_step(m, d, hy_contiguous(hy_slice(tokens, 1, t, t + 1)));
    for (int64_t b = 0; b < B; b++)
      for (int64_t v = 0; v < V; v++) {
        double ref = hy_get(full, (b * T + t) * V + v), got = hy_get(logits, b * V + v);
        worst = fmax(worst, fabs(got - ref) / fmax(1e-3, fabs(ref)));
      }
  }
  hy_no_grad_end();
  hy_decoder_free(m, d);
  return worst;
}

double t_forward_bytes_per_token(hy_model *m, int64_t T) {
  hy_step_reset();
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, T));
  hy_rng rng = hy_rng_new(1);
  hy_fill_int(tokens, &rng, 0, m->cfg.vocab);
  hy_arena_peak_reset();
  size_t before = hy_arena_used();
  hy_no_grad_begin();
  hy_model_forward(m, tokens);
  hy_no_grad_end();
  return (double)(hy_arena_peak() - before) / (double)(2 * T);
}

int t_overfit(hy_model *m, hy_tensor *tokens, int max_steps, double *first, double *last) {
  hy_optimizer opt;
  hy_optimizer_init(&opt, &m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.0));
  int64_t T = tokens->shape[1] - 1;
  *first = *last = 0;
  int step;
  for (step = 0; step < max_steps; step++) {
    hy_tensor *l = hy_model_loss(m, hy_slice(tokens, 1, 0, T), hy_slice(tokens, 1, 1, T + 1), -1);
    *last = hy_item(l);
    if (step == 0) *first = *last;
    if (*last < 0.05) break;
    hy_params_zero_grad(&m->params);
    hy_backward(l);
    hy_optimizer_step(&opt, 1e-2);
    hy_step_reset();
  }
  hy_optimizer_free(&opt);
  return step;
}

void t_expect_hybrid_overfits(const char *first, int max_steps) {
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 64;
  cfg.d_model = 32;
  snprintf(cfg.layers[0], HY_KIND_NAME_MAX, "%s", first);
  hy_model *m = hy_model_new(&cfg, 1);
  hy_tensor *all = hy_empty_persistent(HY_I32, HY_SHAPE(4, 17));
  hy_rng rng = hy_rng_new(2);
  hy_fill_int(all, &rng, 0, 64);
  double start, loss;
  int step = t_overfit(m, all, max_steps, &start, &loss);
  cr_log_info("%s,attn overfit: loss %.4f -> %.4f in %d steps", first, start, loss, step);
  cr_assert(fabs(start - log(64.0)) < 0.1, "initial loss %.4f should be near log(64)", start);
  cr_assert(loss < 0.05, "%s,attn: loss %.4f after %d steps", first, loss, step);
  hy_free(all);
  hy_model_free(m);
}

hy_params t_params;

void t_params_fini(void) {
  hy_params_free(&t_params);
  hy_step_reset();
}

static char temp_dir[256];
static bool temp_made;

/* The folder is made on first use: a test that skips (no GPU) before it writes leaves none. */
void t_temp_init(void) {
  snprintf(temp_dir, sizeof temp_dir, "/tmp/hyla-%s-XXXXXX", criterion_current_suite->name);
  temp_made = false;
}

void t_temp_fini(void) {
  if (temp_made) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", temp_dir);
    cr_assert(system(cmd) == 0, "%s", cmd);
    temp_made = false;
  }
  hy_arena_release();
  H5close();
}

const char *t_temp_path(void) {
  if (!temp_made) {
    cr_assert(mkdtemp(temp_dir), "cannot make %s", temp_dir);
    temp_made = true;
  }
  return temp_dir;
}

const char *t_in_temp(const char *file) {
  static char path[8][512];
  static int next;
  char *p = path[next++ % 8];
  snprintf(p, sizeof path[0], "%s/%s", t_temp_path(), file);
  return p;
}

void __lsan_disable(void) __attribute__((weak)); /* LeakSanitizer's, where it is linked in */

void t_ignore_leaks(void) {
  if (__lsan_disable) __lsan_disable();
}

void t_expect_every_param_reached(const hy_params *ps, const char *what) {
  for (int i = 0; i < ps->n; i++) {
    const hy_tensor *g = ps->items[i].t->grad;
    double largest = 0;
    for (int64_t j = 0; g && j < hy_numel(g); j++) largest = fmax(largest, fabs(hy_get(g, j)));
    cr_assert(largest > 1e-8, "%s: %s does not reach the output", what, ps->items[i].name);
  }
}
