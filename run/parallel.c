#include "run/parallel.h"
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "tensor/ops.h"
#include "util/stop.h"

#include <stdlib.h>
#include <string.h>

enum { BUCKET_BYTES = 32 << 20 };

hy_tensor *hy_parallel_slice(const hy_dist *d, hy_tensor *x) {
  if (d->sp == 1) return x;
  int64_t n = x->shape[1] / d->sp, offset = d->sp_rank * n;
  hy_sequence_set(d->sp_group, offset);
  return hy_contiguous(hy_slice(x, 1, offset, offset + n));
}

void hy_parallel_end_slice(void) { hy_sequence_set(NULL, 0); }

double hy_parallel_sum(const hy_dist *d, double x) {
  hy_allreduce_sum(d->all, HY_CPU, &x, 1, HY_F64);
  return x;
}

bool hy_parallel_stop_asked(const hy_dist *d) {
  double asked = hy_stop_asked() ? 1 : 0;
  return (d ? hy_parallel_sum(d, asked) : asked) > 0;
}

/* Reduce the gradients of parameters [first, last) of one dtype through one buffer. */
static void reduce_bucket(const hy_dist *d, hy_params *ps, int first, int last, hy_dtype dtype,
                          void *buf) {
  size_t es = hy_dtype_size(dtype), at = 0;
  for (int i = first; i < last; i++) {
    hy_tensor *g = ps->items[i].t->grad;
    size_t bytes = (size_t)hy_numel(ps->items[i].t) * es;
    if (g)
      memcpy((char *)buf + at, g->data, bytes);
    else
      memset((char *)buf + at, 0, bytes);
    at += bytes;
  }
  hy_allreduce_sum(d->all, HY_CPU, buf, (int64_t)(at / es), dtype);
  at = 0;
  for (int i = first; i < last; i++) {
    hy_tensor *p = ps->items[i].t;
    size_t bytes = (size_t)hy_numel(p) * es;
    memcpy(hy_grad(p)->data, (char *)buf + at, bytes);
    at += bytes;
  }
}

void hy_parallel_reduce_grads(const hy_dist *d, hy_params *ps) {
  if (d->world == 1 || ps->n == 0) return;
  if (ps->items[0].t->device == HY_CUDA) { /* NCCL reduces the gradients where they lie (f32) */
    void **bufs = malloc((size_t)ps->n * sizeof *bufs);
    int64_t *ns = malloc((size_t)ps->n * sizeof *ns);
    if (!bufs || !ns) hy_die("parallel", "out of memory");
    for (int i = 0; i < ps->n; i++) {
      hy_tensor *g = hy_grad(ps->items[i].t);
      bufs[i] = g->data;
      ns[i] = hy_numel(g);
    }
    hy_allreduce_sum_each(d->all, HY_CUDA, bufs, ns, ps->n, HY_F32);
    free(bufs);
    free(ns);
    return;
  }
  void *buf = malloc(BUCKET_BYTES);
  if (!buf) hy_die("parallel", "out of memory");
  /* Consecutive parameters of one dtype share a bucket until it is full; a parameter larger than
   * a bucket travels alone. Every rank forms the same buckets: the same model, in the same order.
   */
  int first = 0;
  size_t filled = 0;
  for (int i = 0; i <= ps->n; i++) {
    size_t bytes =
        i < ps->n ? (size_t)hy_numel(ps->items[i].t) * hy_dtype_size(ps->items[i].t->dtype) : 0;
    bool flush = i == ps->n || (i > first && (ps->items[i].t->dtype != ps->items[first].t->dtype ||
                                              filled + bytes > BUCKET_BYTES));
    if (flush && i > first) {
      hy_dtype dtype = ps->items[first].t->dtype;
      if (filled > BUCKET_BYTES) { /* one large parameter */
        void *big = malloc(filled);
        if (!big) hy_die("parallel", "out of memory");
        reduce_bucket(d, ps, first, i, dtype, big);
        free(big);
      } else {
        reduce_bucket(d, ps, first, i, dtype, buf);
      }
      first = i;
      filled = 0;
    }
    filled += bytes;
  }
  free(buf);
}
