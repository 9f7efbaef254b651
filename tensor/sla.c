/* hy_sla: causal sparse-linear attention, and its block selection hy_sla_select. The kernels are
 * in tensor/cpu/sla.c and tensor/cuda/sla.cu; the plain reference built from ops in
 * layers/sla_reference.c. */
#include "tensor/op.h"

#include <math.h>

/* What the backward needs besides the inputs and the output: classes, lse and states on the
 * inputs' device, the counts in host memory. */
typedef struct {
  int32_t *classes;                         /* [B, H, nb, nb] */
  void *lse;                                /* [B, H, T] in the inputs' dtype */
  void *states;                             /* [B, H, nb, D (D + 1)]: the linear branch's */
  const int64_t *n_critical, *n_negligible; /* [nb] */
} sla_saved;

/* ceil(f n) and floor(f n), forgiving the rounding of f n (0.3 * 10 is 3.0000000000000004). */
static int64_t count_ceil(double f, int64_t n) { return (int64_t)ceil(f * (double)n - 1e-9); }
static int64_t count_floor(double f, int64_t n) { return (int64_t)floor(f * (double)n + 1e-9); }

/* The kernels' sizes, without the counts. */
static hy_sla_dims dims_of(const hy_tensor *q, const hy_tensor *k, const hy_tensor *v, double scale,
                           int feature_map, int64_t block) {
  /* A block longer than the sequence (a recipe may ask for any) is the whole sequence: the same
   * selection, and no size computed from the block outgrows the sequence's. */
  if (block > q->shape[1] && q->shape[1] > 0) block = q->shape[1];
  hy_sla_dims d = {.a = {.B = q->shape[0],
                         .T = q->shape[1],
                         .H = q->shape[2],
                         .D = q->shape[3],
                         .Tk = q->shape[1],
                         .scale = scale},
                   .block = block,
                   .n_blocks = (q->shape[1] + block - 1) / block,
                   .feature_map = feature_map};
  for (int i = 0; i < 3; i++) {
    d.a.q_stride[i] = q->stride[i];
    d.a.k_stride[i] = k->stride[i];
    d.a.v_stride[i] = v->stride[i];
  }
  return d;
}

/* Of query block i's i earlier key blocks, ceil(critical i) are critical and floor(negligible i)
 * negligible, never more than the blocks left (counts in the arena). */
static void set_counts(hy_sla_dims *d, double critical, double negligible) {
  int64_t nb = d->n_blocks;
  int64_t *nc = hy_arena_alloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
  int64_t *nn = hy_arena_alloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
  for (int64_t i = 0; i < nb; i++) {
    int64_t c = count_ceil(critical, i), n = count_floor(negligible, i);
    nc[i] = c < 0 ? 0 : c > i ? i : c;
    nn[i] = n < 0 ? 0 : n > i - nc[i] ? i - nc[i] : n;
  }
  d->n_critical = nc;
  d->n_negligible = nn;
}

static void check_args(const char *op, const hy_tensor *q, const hy_tensor *k, int64_t block,
                       double critical, double negligible) {
  hy_check_input_any(op, q);
  hy_check_input_any(op, k);
  hy_check_same_device(op, q, k);
  hy_check_same_dtype(op, q, k);
  if (q->ndim != 4 || !hy_same_shape(q, k))
    hy_die(op, "needs q, k, v of one shape [B, T, H, D], got %s, %s", hy_describe(q),
           hy_describe(k));
  if (block < 1) hy_die(op, "block %lld (>= 1)", (long long)block);
  if (!(critical >= 0 && critical <= 1) || !(negligible >= 0 && negligible <= 1))
    hy_die(op, "fractions critical %g, negligible %g (each in [0, 1])", critical, negligible);
}

/* Each head's rows must be dense and at least a row apart: the tile GEMMs read them with the
 * time stride as leading dim. */
static hy_tensor *rows_dense(hy_tensor *t) {
  bool ok = (t->stride[3] == 1 || t->shape[3] == 1) && t->stride[1] >= t->shape[3];
  return ok ? t : hy_contiguous(t);
}

static void fill_stats(const hy_sla_dims *d, hy_sla_stats *stats) {
  if (!stats) return;
  double causal = 0, exact = 0, marginal = 0;
  for (int64_t i = 0; i < d->n_blocks; i++) {
    causal += (double)(i + 1);
    exact += (double)(1 + d->n_critical[i]);
    marginal += (double)(i - d->n_critical[i] - d->n_negligible[i]);
  }
  stats->exact = causal > 0 ? exact / causal : 0;
  stats->marginal = causal > 0 ? marginal / causal : 0;
}

static int32_t *select_blocks(const hy_sla_dims *d, const hy_tensor *q, const hy_tensor *k) {
  size_t n = (size_t)(d->a.B * d->a.H * d->n_blocks * d->n_blocks);
  int32_t *classes = hy_saved_like(q, sizeof(int32_t) * (n ? n : 1));
  HY_KERNEL(q, sla_select, d, q->data, k->data, classes);
  return classes;
}

hy_tensor *hy_sla_select(hy_tensor *q, hy_tensor *k, int64_t block, double critical_fraction,
                         double negligible_fraction, hy_sla_stats *stats) {
  const char *op = "sla_select";
  check_args(op, q, k, block, critical_fraction, negligible_fraction);
  if (q->dtype == HY_BF16) { /* no bf16 kernels: ranked in f32, off the tape (no gradient) */
    hy_no_grad_begin();
    hy_tensor *classes = hy_sla_select(hy_as_f32(q), hy_as_f32(k), block, critical_fraction,
                                       negligible_fraction, stats);
    hy_no_grad_end();
    return classes;
  }
  q = rows_dense(q);
  k = rows_dense(k);
  hy_sla_dims d = dims_of(q, k, k, 1.0, 0, block);
  set_counts(&d, critical_fraction, negligible_fraction);
  hy_tensor *classes =
      hy_empty_on(q->device, HY_I32, HY_SHAPE(d.a.B, d.a.H, d.n_blocks, d.n_blocks));
  HY_KERNEL(q, sla_select, &d, q->data, k->data, classes->data);
  fill_stats(&d, stats);
  return classes;
}

/* Bytes of the per block states of the linear branch (or of their gradients). */
static size_t states_size(const hy_sla_dims *d, hy_dtype dtype) {
  size_t n = (size_t)(d->a.B * d->a.H * d->n_blocks * d->a.D * (d->a.D + 1));
  return (n ? n : 1) * hy_dtype_size(dtype);
}

static void sla_backward(hy_node *n) {
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out;
  const sla_saved *s = n->saved;
  hy_sla_dims d = dims_of(q, k, v, n->arg[0], (int)n->iarg[0], n->iarg[1]);
  d.n_critical = s->n_critical;
  d.n_negligible = s->n_negligible;
  void *dstates = hy_saved_like(q, states_size(&d, q->dtype));
  HY_KERNEL(q, sla_backward, &d, s->classes, q->data, k->data, v->data, o->data, s->lse, s->states,
            dstates, o->grad->data, q->requires_grad ? hy_grad(q)->data : NULL,
            k->requires_grad ? hy_grad(k)->data : NULL, v->requires_grad ? hy_grad(v)->data : NULL);
}

hy_tensor *hy_sla(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale, double critical_fraction,
                  double negligible_fraction, int feature_map, int64_t block, hy_sla_stats *stats) {
  const char *op = "sla";
  check_args(op, q, k, block, critical_fraction, negligible_fraction);
  hy_check_input_any(op, v);
  hy_check_same_device(op, q, v);
  hy_check_same_dtype(op, q, v);
  if (!hy_same_shape(q, v))
    hy_die(op, "needs q, k, v of one shape [B, T, H, D], got %s, %s, %s", hy_describe(q),
           hy_describe(k), hy_describe(v));
  if (feature_map != HY_SLA_PHI_SOFTMAX && feature_map != HY_SLA_PHI_ELU &&
      feature_map != HY_SLA_PHI_RELU)
    hy_die(op, "unknown feature map %d", feature_map);
  if (q->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(hy_sla(hy_as_f32(q), hy_as_f32(k), hy_as_f32(v), scale, critical_fraction,
                          negligible_fraction, feature_map, block, stats),
                   HY_BF16);
  q = rows_dense(q);
  k = rows_dense(k);
  v = rows_dense(v);
  hy_sla_dims d = dims_of(q, k, v, scale, feature_map, block);
  set_counts(&d, critical_fraction, negligible_fraction);
  int32_t *classes = select_blocks(&d, q, k);
  fill_stats(&d, stats);
  hy_tensor *o = hy_empty_on(q->device, q->dtype, HY_SHAPE(d.a.B, d.a.T, d.a.H, 2 * d.a.D));
  size_t rows = (size_t)(d.a.B * d.a.H * d.a.T);
  void *lse = hy_saved_like(q, (rows ? rows : 1) * hy_dtype_size(q->dtype));
  void *states = hy_saved_like(q, states_size(&d, q->dtype));
  HY_KERNEL(q, sla, &d, classes, q->data, k->data, v->data, o->data, lse, states);
  hy_node *n = hy_record(op, sla_backward, o, 3, (hy_tensor *[]){q, k, v});
  if (n) {
    sla_saved *s = hy_arena_alloc(sizeof *s);
    *s = (sla_saved){.classes = classes,
                     .lse = lse,
                     .states = states,
                     .n_critical = d.n_critical,
                     .n_negligible = d.n_negligible};
    n->arg[0] = scale;
    n->iarg[0] = feature_map;
    n->iarg[1] = block;
    n->saved = s;
  }
  return o;
}
