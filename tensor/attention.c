#include "tensor/attention_inputs.h"

#ifdef HYLA_CUDA
#include "tensor/cuda/attention_bf16.h"
#endif

/* bf16 tensors run on the tensor-core kernels (tensor/cuda/attention_bf16.h), which take head
 * sizes 64 and 128 and read q, k, v in place where their rows are 16-byte aligned. */
static bool tensor_cores(const hy_tensor *q, const hy_tensor *k) {
#ifdef HYLA_CUDA
  return cuda_attention_bf16_takes(q->shape[0], q->shape[1], k->shape[1], q->shape[2], q->shape[3]);
#else
  (void)q, (void)k;
  return false;
#endif
}

/* q, k or v as the kernels read it: any view whose rows they can address, else a copy. */
static hy_tensor *kernel_rows(hy_tensor *t) {
#ifdef HYLA_CUDA
  if (t->dtype == HY_BF16) return cuda_attention_bf16_rows(t) ? t : hy_copy(t);
#endif
  return hy_attention_rows_dense(t);
}

static hy_attn_dims dims_of(const hy_tensor *q, const hy_tensor *k, const hy_tensor *v,
                            double scale, int64_t window, int64_t q_offset) {
  hy_attn_dims d = hy_attention_dims(q, k, v, scale);
  d.Tk = k->shape[1];
  d.q_offset = q_offset;
  d.window = window;
  return d;
}

/* x's gradient for the backward kernels, or NULL: on the GPU a fresh one is written over (its bit
 * in d->overwrite), on the CPU (and without queries, when no kernel runs) the kernels add to a
 * zeroed one. */
static void *grad_of(hy_tensor *x, unsigned bit, hy_attn_dims *d) {
  if (!x->requires_grad) return NULL;
  if (x->device == HY_CPU || d->T == 0) return hy_grad(x)->data;
  bool accumulate;
  void *g = hy_grad_acc(x, &accumulate)->data;
  if (!accumulate) d->overwrite |= bit;
  return g;
}

typedef struct {
  double scale;
  int64_t window, q_offset;
} attention_args;

static void attention_backward(hy_node *n) {
  const attention_args *a = HY_NODE_ARGS(n, attention_args);
  hy_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out;
  hy_attn_dims d = dims_of(q, k, v, a->scale, a->window, a->q_offset);
  /* k's, v's, then q's: the order the kernels write them in, so that where two are one tensor
   * the first writer is the one that may overwrite */
  void *gk = grad_of(k, HY_OVERWRITE_K, &d), *gv = grad_of(v, HY_OVERWRITE_V, &d),
       *gq = grad_of(q, HY_OVERWRITE_Q, &d);
  HY_KERNEL_BF16(q, attention_backward, &d, q->data, k->data, v->data, o->data, n->saved,
                 o->grad->data, gq, gk, gv);
}

hy_tensor *hy_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale) {
  return hy_attention_window(q, k, v, scale, 0);
}

hy_tensor *hy_attention_window(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window) {
  return hy_attention_offset(q, k, v, scale, window, 0);
}

hy_tensor *hy_attention_offset(hy_tensor *q, hy_tensor *k, hy_tensor *v, double scale,
                               int64_t window, int64_t q_offset) {
  const char *op = "attention";
  if (window < 0) hy_die(op, "window %lld (0 for none, or >= 1)", (long long)window);
  hy_check_inputs_alike(op, q, k, v);
  bool ok = q->ndim == 4 && k->ndim == 4 && hy_same_shape(k, v);
  for (int i = 0; ok && i < 4; i++) ok = i == 1 || q->shape[i] == k->shape[i];
  if (!ok || q_offset < 0 || q_offset + q->shape[1] > k->shape[1])
    hy_die(op,
           "q [B, T, H, D] at offset %lld needs k, v [B, Tk, H, D] with Tk >= offset + T, got "
           "%s, %s, %s",
           (long long)q_offset, hy_describe(q), hy_describe(k), hy_describe(v));
  if (q->dtype == HY_BF16 && !tensor_cores(q, k))
    return hy_cast(
        hy_attention_offset(hy_as_f32(q), hy_as_f32(k), hy_as_f32(v), scale, window, q_offset),
        HY_BF16);
  q = kernel_rows(q);
  k = kernel_rows(k);
  v = kernel_rows(v);
  hy_tensor *o = hy_empty_like(q);
  /* the log-sum-exps [B, H, T]: f64 for f64 inputs, else f32 */
  size_t lse_bytes = (size_t)(q->shape[0] * q->shape[1] * q->shape[2]) *
                     (q->dtype == HY_F64 ? sizeof(double) : sizeof(float));
  void *lse = hy_saved_like(q, lse_bytes);
  hy_attn_dims d = dims_of(q, k, v, scale, window, q_offset);
  HY_KERNEL_BF16(q, attention, &d, q->data, k->data, v->data, o->data, lse);
  hy_node *n = hy_record(op, attention_backward, o, 3, (hy_tensor *[]){q, k, v});
  if (n) {
    *HY_NODE_ARGS(n, attention_args) =
        (attention_args){.scale = scale, .window = window, .q_offset = q_offset};
    n->saved = lse;
  }
  return o;
}
