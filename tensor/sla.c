/* hy_sla: causal sparse-linear attention (hy_sla_offset: for queries from a later position of
 * the keys' sequence), and its block selection hy_sla_select. The kernels are
 * in tensor/cpu/sla.c and tensor/cuda/sla.cu; the plain reference built from ops in
 * layers/sla_reference.c. */
#include "tensor/op.h"

#include <math.h>

/* What the backward needs besides the inputs and the output: classes and lse on the inputs'
 * device, the counts in host memory. The linear branch's states are not kept: the backward
 * computes them again (O(Tk D^2) per head, little beside the softmax branch), which spares a
 * sequence-parallel rank states for every earlier block of the sequence. */
typedef struct {
  int32_t *classes;                         /* [B, H, nb, n_key_blocks] */
  void *lse;                                /* [B, H, T] in the inputs' dtype */
  const int64_t *n_critical, *n_negligible; /* [nb] */
} sla_saved;

/* ceil(f n) and floor(f n), forgiving the rounding of f n (0.3 * 10 is 3.0000000000000004). */
static int64_t count_ceil(double f, int64_t n) { return (int64_t)ceil(f * (double)n - 1e-9); }
static int64_t count_floor(double f, int64_t n) { return (int64_t)floor(f * (double)n + 1e-9); }

/* The kernels' sizes, without the counts: q at positions q_offset .. of k's (check_args). */
static hy_sla_dims dims_of(const hy_tensor *q, const hy_tensor *k, const hy_tensor *v, double scale,
                           int feature_map, int64_t block, int64_t q_offset) {
  int64_t T = q->shape[1], Tk = k->shape[1];
  /* A block longer than the sequence (a recipe may ask for any) is the whole sequence: the same
   * selection, and no size computed from the block outgrows the sequence's. (Queries after the
   * first position start on a block boundary: their keys are longer than a block.) */
  if (block > Tk && Tk > 0) block = Tk;
  hy_sla_dims d = {.a = {.B = q->shape[0],
                         .T = T,
                         .H = q->shape[2],
                         .D = q->shape[3],
                         .Tk = Tk,
                         .q_offset = q_offset,
                         .scale = scale},
                   .block = block,
                   .n_blocks = (T + block - 1) / block,
                   .first_block = q_offset / block,
                   .feature_map = feature_map};
  d.n_key_blocks = d.first_block + d.n_blocks;
  for (int i = 0; i < 3; i++) {
    d.a.q_stride[i] = q->stride[i];
    d.a.k_stride[i] = k->stride[i];
    d.a.v_stride[i] = v->stride[i];
  }
  return d;
}

/* Of query block i's g = first_block + i earlier key blocks, ceil(critical g) are critical and
 * floor(negligible g) negligible, never more than the blocks left (counts in the arena). */
static void set_counts(hy_sla_dims *d, double critical, double negligible) {
  int64_t nb = d->n_blocks;
  int64_t *nc = hy_arena_alloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
  int64_t *nn = hy_arena_alloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
  for (int64_t i = 0; i < nb; i++) {
    int64_t g = d->first_block + i, c = count_ceil(critical, g), n = count_floor(negligible, g);
    nc[i] = c < 0 ? 0 : c > g ? g : c;
    nn[i] = n < 0 ? 0 : n > g - nc[i] ? g - nc[i] : n;
  }
  d->n_critical = nc;
  d->n_negligible = nn;
}

/* q [B, T, H, D] at positions q_offset .. q_offset + T - 1 <= Tk - 1 of k [B, Tk, H, D],
 * q_offset a multiple of the block, and then q_before [B, block, H, D] (NULL when q_offset = 0). */
static void check_args(const char *op, const hy_tensor *q, const hy_tensor *k,
                       const hy_tensor *q_before, int64_t q_offset, int64_t block, double critical,
                       double negligible) {
  hy_check_input_any(op, q);
  hy_check_input_any(op, k);
  hy_check_same_device(op, q, k);
  hy_check_same_dtype(op, q, k);
  if (q->ndim != 4 || k->ndim != 4 || q->shape[0] != k->shape[0] || q->shape[2] != k->shape[2] ||
      q->shape[3] != k->shape[3] || q->shape[1] > k->shape[1])
    hy_die(op, "needs q [B, T, H, D] and k, v [B, Tk >= T, H, D], got %s, %s", hy_describe(q),
           hy_describe(k));
  if (block < 1) hy_die(op, "block %lld (>= 1)", (long long)block);
  if (!(critical >= 0 && critical <= 1) || !(negligible >= 0 && negligible <= 1))
    hy_die(op, "fractions critical %g, negligible %g (each in [0, 1])", critical, negligible);
  if (q_offset < 0 || q_offset > k->shape[1] - q->shape[1] || q_offset % block)
    hy_die(op, "q %s from position %lld of k %s: not the start of a block of %lld inside k",
           hy_describe(q), (long long)q_offset, hy_describe(k), (long long)block);
  if (!q_offset != !q_before)
    hy_die(op, "q_before %s for queries from position %lld (needed exactly when it is not 0)",
           q_before ? "given" : "missing", (long long)q_offset);
  if (!q_before) return;
  hy_check_input_any(op, q_before);
  hy_check_same_device(op, q, q_before);
  hy_check_same_dtype(op, q, q_before);
  if (q_before->ndim != 4 || q_before->shape[0] != q->shape[0] || q_before->shape[1] != block ||
      q_before->shape[2] != q->shape[2] || q_before->shape[3] != q->shape[3])
    hy_die(op, "q_before %s: needs the block before q %s, [B, %lld, H, D]", hy_describe(q_before),
           hy_describe(q), (long long)block);
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
    int64_t g = d->first_block + i; /* earlier key blocks */
    causal += (double)(g + 1);
    exact += (double)(1 + d->n_critical[i]);
    marginal += (double)(g - d->n_critical[i] - d->n_negligible[i]);
  }
  stats->exact = causal > 0 ? exact / causal : 0;
  stats->marginal = causal > 0 ? marginal / causal : 0;
}

static void select_into(const hy_sla_dims *d, const hy_tensor *q, const hy_tensor *k,
                        const hy_tensor *q_before, int32_t *classes) {
  HY_KERNEL(q, sla_select, d, q->data, k->data, q_before ? q_before->data : NULL, classes);
}

hy_tensor *hy_sla_select_offset(hy_tensor *q, hy_tensor *k, hy_tensor *q_before, int64_t q_offset,
                                int64_t block, double critical_fraction, double negligible_fraction,
                                hy_sla_stats *stats) {
  const char *op = "sla_select";
  check_args(op, q, k, q_before, q_offset, block, critical_fraction, negligible_fraction);
  if (q->dtype == HY_BF16) { /* no bf16 kernels: ranked in f32, off the tape (no gradient) */
    hy_no_grad_begin();
    hy_tensor *classes =
        hy_sla_select_offset(hy_as_f32(q), hy_as_f32(k), hy_as_f32(q_before), q_offset, block,
                             critical_fraction, negligible_fraction, stats);
    hy_no_grad_end();
    return classes;
  }
  q = rows_dense(q);
  k = rows_dense(k);
  if (q_before) q_before = hy_contiguous(q_before);
  hy_sla_dims d = dims_of(q, k, k, 1.0, 0, block, q_offset);
  set_counts(&d, critical_fraction, negligible_fraction);
  hy_tensor *classes =
      hy_empty_on(q->device, HY_I32, HY_SHAPE(d.a.B, d.a.H, d.n_blocks, d.n_key_blocks));
  select_into(&d, q, k, q_before, classes->data);
  fill_stats(&d, stats);
  return classes;
}

hy_tensor *hy_sla_select(hy_tensor *q, hy_tensor *k, int64_t block, double critical_fraction,
                         double negligible_fraction, hy_sla_stats *stats) {
  return hy_sla_select_offset(q, k, NULL, 0, block, critical_fraction, negligible_fraction, stats);
}

/* Bytes of the linear branch's states over n blocks (or of their gradients). */
static size_t states_size(const hy_sla_dims *d, int64_t n_blocks, hy_dtype dtype) {
  size_t n = (size_t)(d->a.B * d->a.H * n_blocks * d->a.D * (d->a.D + 1));
  return (n ? n : 1) * hy_dtype_size(dtype);
}

typedef struct {
  double scale;
  int feature_map;
  int64_t block, q_offset;
} sla_args;

static void sla_backward(hy_node *n) {
  const sla_args *a = HY_NODE_ARGS(n, sla_args);
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out;
  const sla_saved *s = n->saved;
  hy_sla_dims d = dims_of(q, k, v, a->scale, a->feature_map, a->block, a->q_offset);
  d.n_critical = s->n_critical;
  d.n_negligible = s->n_negligible;
  size_t states_bytes = states_size(&d, d.n_key_blocks, q->dtype),
         dstates_bytes = states_size(&d, d.n_blocks, q->dtype);
  void *states = hy_saved_like(q, states_bytes), *dstates = hy_saved_like(q, dstates_bytes);
  HY_KERNEL(q, sla_backward, &d, s->classes, q->data, k->data, v->data, o->data, s->lse, states,
            dstates, o->grad->data, q->requires_grad ? hy_grad(q)->data : NULL,
            k->requires_grad ? hy_grad(k)->data : NULL, v->requires_grad ? hy_grad(v)->data : NULL);
  hy_arena_recycle(q->device, states, states_bytes); /* scratch (on the GPU: once queued) */
  hy_arena_recycle(q->device, dstates, dstates_bytes);
}

hy_tensor *hy_sla_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *q_before,
                         int64_t q_offset, double scale, double critical_fraction,
                         double negligible_fraction, int feature_map, int64_t block,
                         hy_sla_stats *stats) {
  const char *op = "sla";
  check_args(op, q, k, q_before, q_offset, block, critical_fraction, negligible_fraction);
  hy_check_input_any(op, v);
  hy_check_same_device(op, q, v);
  hy_check_same_dtype(op, q, v);
  if (!hy_same_shape(k, v))
    hy_die(op, "needs k and v of one shape [B, Tk, H, D], got %s, %s", hy_describe(k),
           hy_describe(v));
  if (feature_map != HY_SLA_PHI_SOFTMAX && feature_map != HY_SLA_PHI_ELU &&
      feature_map != HY_SLA_PHI_RELU)
    hy_die(op, "unknown feature map %d", feature_map);
  if (q->dtype == HY_BF16) /* no bf16 kernels: computed in f32 */
    return hy_cast(hy_sla_offset(hy_as_f32(q), hy_as_f32(k), hy_as_f32(v), hy_as_f32(q_before),
                                 q_offset, scale, critical_fraction, negligible_fraction,
                                 feature_map, block, stats),
                   HY_BF16);
  q = rows_dense(q);
  k = rows_dense(k);
  v = rows_dense(v);
  if (q_before) q_before = hy_contiguous(q_before);
  hy_sla_dims d = dims_of(q, k, v, scale, feature_map, block, q_offset);
  set_counts(&d, critical_fraction, negligible_fraction);
  size_t n_classes = (size_t)(d.a.B * d.a.H * d.n_blocks * d.n_key_blocks);
  int32_t *classes = hy_saved_like(q, sizeof(int32_t) * (n_classes ? n_classes : 1));
  select_into(&d, q, k, q_before, classes);
  fill_stats(&d, stats);
  hy_tensor *o = hy_empty_on(q->device, q->dtype, HY_SHAPE(d.a.B, d.a.T, d.a.H, 2 * d.a.D));
  size_t rows = (size_t)(d.a.B * d.a.H * d.a.T);
  void *lse = hy_saved_like(q, (rows ? rows : 1) * hy_dtype_size(q->dtype));
  size_t states_bytes = states_size(&d, d.n_key_blocks, q->dtype);
  void *states = hy_saved_like(q, states_bytes);
  HY_KERNEL(q, sla, &d, classes, q->data, k->data, v->data, o->data, lse, states);
  hy_arena_recycle(q->device, states, states_bytes); /* scratch (on the GPU: once queued) */
  hy_node *n = hy_record(op, sla_backward, o, 3, (hy_tensor *[]){q, k, v});
  if (n) {
    sla_saved *s = hy_arena_alloc(sizeof *s);
    *s = (sla_saved){
        .classes = classes, .lse = lse, .n_critical = d.n_critical, .n_negligible = d.n_negligible};
    *HY_NODE_ARGS(n, sla_args) = (sla_args){
        .scale = scale, .feature_map = feature_map, .block = block, .q_offset = q_offset};
    n->saved = s;
  }
  return o;
}

hy_tensor *hy_sla(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale, double critical_fraction,
                  double negligible_fraction, int feature_map, int64_t block, hy_sla_stats *stats) {
  return hy_sla_offset(q, k, v, NULL, 0, scale, critical_fraction, negligible_fraction, feature_map,
                       block, stats);
}
