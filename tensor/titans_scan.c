/* The Titans memory scan: the chunk recurrence of layers/titans_memory.h as one op with a
 * hand-written backward. Per batch and head, with chunks j = 0 .. N - 1 of C tokens (rows K_j,
 * V_j, theta_j), W^0 = M_0, S^0 = 0:
 *
 *   U_j = sum_{t in j} theta_t grad_W ||M(W^j; k_t) - v_t||^2
 *   S^{j+1} = eta_j S^j - U_j,   W^{j+1} = keep_j W^j + S^{j+1}
 *   y_t = M(W^{floor((t + 1) / C)}; q_t)
 *
 * (eta_0 multiplies S^0 = 0: it gets no gradient). hy_titans_scan_state may start each sequence
 * from a state of its own (W^0, S^0) instead, as a sequence-parallel rank continues the scan of
 * the ranks before it, and hands on its last state (W^N, S^N): then dW^0 and dS^0 are gW and gS
 * at the end of the backward, which starts from the handed-on state's gradient instead of zero,
 * and d eta_0 = <gS, S^0>. The forward saves W^{j+1} and S^{j+1} after
 * every update ([B, H, N, P] each, P the memory's size per head): the backward then evaluates
 * each chunk at its exact starting weights without replaying the scan, and the momentum needed
 * for eta's gradient is not recovered as W^{j+1} - keep_j W^j, which cancels badly in f32 when
 * keep is near 1. The composed form kept all of these and more on the tape. Without a tape node
 * two slots of each suffice.
 *
 * The backward walks the chunks in reverse with gW = dL/dW^{j+1} and gS = dL/dS^{j+1} from later
 * chunks. Chunk j: the rows reading W^{j+1} add their part to gW; then, with gS += gW,
 *
 *   d keep_j = <gW, W^j>,  d eta_j = <gS, S^j>,  dU_j = -gS,
 *   gS <- eta_j gS,        gW <- keep_j gW + (VJP of U_j at W^j, applied to dU_j)
 *
 * and the last VJP also gives the chunk's k, v and theta their gradients. The VJP differentiates
 * the explicit gradient U through the weights it was taken at (second order); its formulas are
 * in tensor/cpu/titans_scan.c. dM_0 is gW after chunk 0 and the rows reading W^0, summed over
 * the batch. The kernels: tensor/cpu/titans_scan.c, and on the GPU (f32 only)
 * tensor/cuda/titans_scan.cu. */
#include "tensor/op.h"

static hy_titans_dims dims_of(const hy_tensor *q, const hy_tensor *w1, int64_t depth,
                              int64_t chunk) {
  int64_t D = q->shape[3], F = w1->shape[2], T = q->shape[2];
  /* A chunk longer than the sequence never completes, as one of T + 1 tokens does not: the same
   * result (no update), and the scratch of a chunk's rows (a recipe may ask for any) stays the
   * sequence's size. */
  if (chunk > T) chunk = T + 1;
  return (hy_titans_dims){.B = q->shape[0],
                          .H = q->shape[1],
                          .T = T,
                          .D = D,
                          .F = F,
                          .C = chunk,
                          .N = T / chunk,
                          .depth = depth,
                          .P = depth == 1 ? D * D : 2 * D * F,
                          .slots = T / chunk};
}

typedef struct {
  void *states, *momenta; /* [B, H, N, P] each: every update's weights and momentum */
  hy_titans_dims d;
} scan_saved;

static void *data_of(hy_tensor *t) { return t ? t->data : NULL; }
static void *grad_of(hy_tensor *t) { return t && t->requires_grad ? hy_grad(t)->data : NULL; }

/* in: q, k, v, theta, eta, keep, w1, w2 (NULL with init: M_0 gets no gradient), init; out: y;
 * out2: the final state. The memory's shape comes from the saved dims. */
static void titans_scan_backward(hy_node *n) {
  hy_tensor **in = n->in, *init = in[8];
  const scan_saved *sv = n->saved;
  const hy_titans_dims *d = &sv->d;
  hy_tensor *gfinal = n->out2 ? n->out2->grad : NULL;
  void *work = hy_saved_like(in[0], (size_t)(d->B * d->H * d->P) * hy_dtype_size(in[0]->dtype));
  /* with init, M_0 is not read: w1 NULL is fine */
  HY_KERNEL(in[0], titans_scan_backward, d, in[0]->data, in[1]->data, in[2]->data, in[3]->data,
            data_of(in[4]), data_of(in[5]), data_of(in[6]), data_of(in[7]), data_of(init),
            sv->states, sv->momenta, hy_grad(n->out)->data, data_of(gfinal), grad_of(in[0]),
            grad_of(in[1]), grad_of(in[2]), grad_of(in[3]), grad_of(in[4]), grad_of(in[5]),
            grad_of(in[6]), grad_of(in[7]), grad_of(init), work);
}

static bool has_shape(const hy_tensor *t, int64_t a, int64_t b, int64_t c, int64_t e) {
  return t->ndim == 4 && t->shape[0] == a && t->shape[1] == b && t->shape[2] == c &&
         t->shape[3] == e;
}

static bool has_shape3(const hy_tensor *t, int64_t a, int64_t b, int64_t c) {
  return t && t->ndim == 3 && t->shape[0] == a && t->shape[1] == b && t->shape[2] == c;
}

/* Whether any input is bf16. */
static bool any_bf16(hy_tensor *const *in) {
  for (int i = 0; i < 9; i++)
    if (in[i] && in[i]->dtype == HY_BF16) return true;
  return false;
}

static void check_inputs(const char *op, hy_tensor *const *in, int64_t chunk) {
  hy_tensor *q = in[0], *w1 = in[6], *w2 = in[7];
  bool mixed = any_bf16(in); /* then every input is f32 or bf16, on the GPU */
  for (int i = 0; i < 9; i++) {
    if (!in[i]) continue;
    hy_check_input_any(op, in[i]);
    hy_check_same_device(op, q, in[i]);
    if (!mixed) hy_check_same_dtype(op, q, in[i]);
  }
  if (chunk < 1) hy_die(op, "chunk size %lld (must be >= 1)", (long long)chunk);
  bool ok = q->ndim == 4 && w1;
  int64_t B = ok ? q->shape[0] : 0, H = ok ? q->shape[1] : 0, T = ok ? q->shape[2] : 0;
  int64_t D = ok ? q->shape[3] : 0, N = T / chunk, F = ok && w1->ndim == 3 ? w1->shape[2] : 0;
  ok = ok && has_shape(in[1], B, H, T, D) && has_shape(in[2], B, H, T, D) &&
       has_shape(in[3], B, H, T, 1) && has_shape3(w1, H, D, w2 ? F : D) &&
       (!w2 || has_shape3(w2, H, F, D));
  for (int i = 4; ok && i < 6; i++) ok = N == 0 ? true : in[i] && has_shape(in[i], B, H, N, 1);
  int64_t P = w2 ? 2 * D * F : D * D;
  if (ok && in[8] && !has_shape(in[8], B, H, 2, P))
    hy_die(op, "init %s: [B, H, 2, P] = [%lld, %lld, 2, %lld] expected (weights, then momentum)",
           hy_describe(in[8]), (long long)B, (long long)H, (long long)P);
  if (!ok)
    hy_die(op,
           "needs q, k, v [B, H, T, D], theta [B, H, T, 1], eta and keep [B, H, T / chunk, 1], w1 "
           "[H, D, F] and w2 [H, F, D] (or w1 [H, D, D] and no w2), got %s, %s, %s, %s, %s, %s, "
           "%s, %s (chunk %lld)",
           hy_describe(q), hy_describe(in[1]), hy_describe(in[2]), hy_describe(in[3]),
           in[4] ? hy_describe(in[4]) : "NULL", in[5] ? hy_describe(in[5]) : "NULL",
           w1 ? hy_describe(w1) : "NULL", w2 ? hy_describe(w2) : "NULL", (long long)chunk);
}

hy_tensor *hy_titans_scan(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *theta,
                          hy_tensor *eta, hy_tensor *keep, hy_tensor *w1, hy_tensor *w2,
                          int64_t chunk) {
  return hy_titans_scan_state(q, k, v, theta, eta, keep, w1, w2, NULL, chunk, NULL);
}

hy_tensor *hy_titans_scan_state(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *theta,
                                hy_tensor *eta, hy_tensor *keep, hy_tensor *w1, hy_tensor *w2,
                                hy_tensor *init, int64_t chunk, hy_tensor **final) {
  const char *op = "titans_scan";
  hy_tensor *in[9] = {q, k, v, theta, eta, keep, w1, w2, init};
  check_inputs(op, in, chunk);
  if (any_bf16(in)) { /* no bf16 kernels: computed in f32, y in q's dtype, the state in f32 */
    hy_tensor *y = hy_titans_scan_state(hy_as_f32(q), hy_as_f32(k), hy_as_f32(v), hy_as_f32(theta),
                                        hy_as_f32(eta), hy_as_f32(keep), hy_as_f32(w1),
                                        hy_as_f32(w2), hy_as_f32(init), chunk, final);
    return hy_cast(y, q->dtype);
  }
  if (q->shape[2] / chunk == 0) in[4] = in[5] = NULL; /* no update: the gates are never read */
  for (int i = 0; i < 9; i++)
    if (in[i]) in[i] = hy_contiguous(in[i]);
  hy_titans_dims d = dims_of(in[0], in[6], w2 ? 2 : 1, chunk);
  const void *m0[2] = {in[6]->data, data_of(in[7])};
  if (init) in[6] = in[7] = NULL; /* M_0 only gave the memory's shape: no gradient */
  /* Without a tape node nothing reads the states afterwards: two slots (this update's and the
   * last) keep inference at long T from holding every chunk's weights. */
  bool record = false;
  for (int i = 0; i < 9; i++) record = record || (in[i] && in[i]->requires_grad);
  if (!(record && hy_grad_enabled()) && d.slots > 2) d.slots = 2;
  size_t bytes = (size_t)(d.B * d.H * d.slots * d.P) * hy_dtype_size(q->dtype);
  scan_saved *sv = hy_arena_alloc(sizeof *sv);
  sv->states = hy_saved_like(in[0], bytes);
  sv->momenta = hy_saved_like(in[0], bytes);
  sv->d = d;
  hy_tensor *y = hy_empty_like(in[0]);
  hy_tensor *last = final ? hy_empty_on(q->device, q->dtype, HY_SHAPE(d.B, d.H, 2, d.P)) : NULL;
  HY_KERNEL(in[0], titans_scan, &d, in[0]->data, in[1]->data, in[2]->data, in[3]->data,
            data_of(in[4]), data_of(in[5]), m0[0], m0[1], data_of(in[8]), y->data, sv->states,
            sv->momenta, data_of(last));
  hy_node *n = hy_record(op, titans_scan_backward, y, 9, in);
  if (n) {
    n->saved = sv;
    if (last) hy_record_second(n, last);
  }
  if (final) *final = last;
  return y;
}
