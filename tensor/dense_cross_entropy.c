/* The language model's loss, cross_entropy(h W^T), as one op that never holds all the logits.
 *
 * The rows of h go through in chunks. For each chunk the forward computes the chunk's logits with
 * hy_dense's GEMM (bf16 on the tensor cores in mixed precision), turns them into log-sum-exps and
 * row losses and, when a gradient is wanted, overwrites them in place with their gradient for a
 * loss gradient of 1, (softmax - onehot) / count; then it multiplies that gradient out at once:
 * gh = G W for the chunk's rows, gW += G^T h over the chunks, both summed in f32 (the operands'
 * dtype on the CPU). The loss is a scalar, so its gradient g only scales these: the backward is
 * h.grad (+)= g gh and W.grad += g gW, with g read on the device. One chunk buffer is the only
 * vocabulary-sized memory, and it is given back to the arena before the op returns; what stays
 * until the backward is gh [rows, d] and gW [V, d] in f32.
 *
 * In eval mode (no gradient) the chunks compute only the loss. */
#include "tensor/op.h"

#include "tensor/device.h"

typedef struct {
  hy_tensor *gh, *gw; /* the gradients for a loss gradient of 1, or NULL where none is wanted */
} dce_saved;

static void dense_cross_entropy_backward(hy_node *n) {
  const dce_saved *s = n->saved;
  const void *gloss = n->out->grad->data;
  bool accumulate;
  for (int i = 0; i < 2; i++) {
    hy_tensor *src = i == 0 ? s->gh : s->gw, *x = n->in[i];
    if (!src || !x->requires_grad) continue;
    hy_tensor *g = hy_grad_acc(x, &accumulate);
    HY_KERNEL_BF16(g, cross_entropy_scale, hy_numel(g), src->data, gloss, accumulate, g->data);
  }
}

/* Rows per chunk: as many as fit CHUNK_BYTES of logits, but at least CHUNK_MIN_ROWS, so that each
 * chunk's GEMMs still fill the GPU (gh = G W is [chunk, d] summed over V: fewer rows leave too few
 * output tiles for the SMs); then equal chunks, rounded up to whole tiles of CHUNK_ALIGN rows.
 * A 32000-token vocabulary in bf16 at 16384 rows: 4 chunks of 4096 rows, 262 MB of logits
 * instead of 1.05 GB. */
#define CHUNK_BYTES ((size_t)256 << 20)
enum { CHUNK_MIN_ROWS = 4096, CHUNK_ALIGN = 128 };

static int64_t chunk_override;

void hy_dense_cross_entropy_chunk(int64_t rows) { chunk_override = rows > 0 ? rows : 0; }

static int64_t chunk_rows(int64_t rows, int64_t V, size_t elt) {
  if (rows == 0) return 1;
  if (chunk_override) return chunk_override < rows ? chunk_override : rows;
  int64_t fit = (int64_t)(CHUNK_BYTES / ((size_t)V * elt));
  if (fit < CHUNK_MIN_ROWS) fit = CHUNK_MIN_ROWS;
  if (fit >= rows) return rows;
  int64_t n = (rows + fit - 1) / fit, c = (rows + n - 1) / n;
  c = (c + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
  return c < rows ? c : rows;
}

hy_tensor *hy_dense_cross_entropy(hy_tensor *h, hy_tensor *weight, hy_tensor *targets,
                                  int ignore_index) {
  const char *op = "dense_cross_entropy";
  hy_dense_operands(op, &h, &weight);
  hy_check_dtype(op, targets, HY_I32);
  hy_check_same_device(op, h, targets);
  bool match = h->ndim == targets->ndim + 1;
  for (int i = 0; match && i < targets->ndim; i++) match = h->shape[i] == targets->shape[i];
  if (!match)
    hy_die(op, "h %s needs targets of its leading shape, got %s", hy_describe(h),
           hy_describe(targets));
  targets = hy_contiguous(targets);
  int64_t d = weight->shape[1], V = weight->shape[0], rows = hy_numel(targets);
  if (V == 0) hy_die(op, "empty vocabulary in %s", hy_describe(weight));
  if (targets->device == HY_CPU) hy_check_targets(op, targets, V, ignore_index);

  /* The loss and the gradients it keeps are f32 for bf16 h (else in h's dtype). */
  hy_device dev = h->device;
  hy_dtype real = h->dtype == HY_BF16 ? HY_F32 : h->dtype;
  size_t elt = hy_dtype_size(h->dtype), real_size = hy_dtype_size(real);
  hy_tensor *loss = hy_empty_on(dev, real, HY_SHAPE(1));
  int64_t *count = hy_arena_alloc_on(dev, sizeof *count);
  double *row_loss = hy_arena_alloc_on(dev, (size_t)rows * sizeof *row_loss);
  bool grad = hy_grad_enabled();
  dce_saved *s = hy_arena_calloc(sizeof *s);
  if (grad && h->requires_grad) s->gh = hy_empty_on(dev, real, HY_SHAPE(rows, d));
  if (grad && weight->requires_grad) s->gw = hy_empty_on(dev, real, HY_SHAPE(V, d));
  if (s->gw && rows == 0) hy_fill(s->gw, 0.0); /* no chunk writes it */
  const void *w = hy_dense_weight(h, weight);
  const char *hd = h->data, *t = targets->data;
  char *gh = s->gh ? s->gh->data : NULL;
  HY_KERNEL(loss, cross_entropy_count, rows, targets->data, ignore_index, count);

  /* The chunk buffer is the last thing allocated, and goes back to the arena at the end: the
   * kernels that use it run before anything that allocates after this op. */
  hy_arena_mark mark = hy_arena_get_mark();
  int64_t chunk = chunk_rows(rows, V, elt);
  void *logits = hy_arena_alloc_on(dev, (size_t)(chunk * V) * elt);
  bool bf16 = h->dtype == HY_BF16, g_in_place = s->gh || s->gw;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
    const void *hc = hd + (size_t)(r0 * d) * elt;
    hy_dense_gemm(h, bf16, false, true, n, V, d, hc, d, w, d, false, logits, V);
    HY_KERNEL_BF16(h, cross_entropy_rows, n, V, logits, (const int32_t *)t + r0, ignore_index, NULL,
                   row_loss + r0, g_in_place ? count : NULL);
    if (gh) /* gh = G W */
      hy_dense_gemm(h, false, false, false, n, d, V, logits, V, w, d, false,
                    gh + (size_t)(r0 * d) * real_size, d);
    if (s->gw) /* gW (+)= G^T h */
      hy_dense_gemm(h, false, true, false, V, d, n, logits, V, hc, d, r0 > 0, s->gw->data, d);
  }
  hy_arena_rewind(mark);
  HY_KERNEL(loss, cross_entropy_total, rows, row_loss, count, loss->data);
  hy_node *node = hy_record(op, dense_cross_entropy_backward, loss, 2, (hy_tensor *[]){h, weight});
  if (node) node->saved = s;
  return loss;
}
