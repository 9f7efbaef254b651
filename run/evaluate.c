#include "run/evaluate.h"
#include "autograd/tape.h"
#include "run/parallel.h"
#include "tensor/ops.h"

#include <math.h>

/* The index of the largest logit in row r (the first one on ties). */
static int64_t argmax_row(const hy_tensor *logits, int64_t r, int64_t V) {
  int64_t best = 0;
  if (logits->dtype == HY_F64) {
    const double *x = (const double *)logits->data + r * V;
    for (int64_t v = 1; v < V; v++) best = x[v] > x[best] ? v : best;
  } else {
    const float *x = (const float *)logits->data + r * V;
    for (int64_t v = 1; v < V; v++) best = x[v] > x[best] ? v : best;
  }
  return best;
}

hy_eval_result hy_evaluate(hy_model *m, hy_batches *b, int64_t batches, const hy_dist *d) {
  double loss_sum = 0;
  int64_t correct = 0, count = 0, bytes = 0, done = 0;
  hy_no_grad_begin();
  for (; done < batches && !hy_parallel_stop_asked(d); done++) {
    hy_step_mark mark = hy_step_get_mark();
    hy_tensor *x, *y, *p; /* p: the whole rows' positions, NULL for one stream */
    hy_batches_next(b, &x, &y, &p);
    if (d) {
      x = hy_parallel_slice(d, x);
      y = hy_parallel_slice(d, y);
    }
    hy_tensor *logits = hy_model_forward_packed(m, x, p);
    if (d) hy_parallel_end_slice();
    int64_t V = logits->shape[2], rows = hy_numel(y);
    /* The loss where the logits are (bf16 ones stay on the GPU); only MQAR's accuracy reads them
     * on the host, as f32. The targets are checked here, on the host, before they move. */
    hy_check_targets("evaluate", y, V, HY_IGNORE_INDEX);
    double loss = hy_item(hy_cross_entropy(logits, hy_to(y, logits->device), HY_IGNORE_INDEX));
    bool mqar = hy_batches_is_mqar(b);
    const hy_tensor *host =
        mqar ? hy_to(logits->dtype == HY_BF16 ? hy_cast(logits, HY_F32) : logits, HY_CPU) : NULL;
    int64_t labelled = 0;
    for (int64_t r = 0; r < rows; r++) {
      int32_t t = ((const int32_t *)y->data)[r];
      if (t == HY_IGNORE_INDEX) continue;
      labelled++;
      bytes += hy_batches_token_bytes(b, t);
      if (mqar) correct += argmax_row(host, r, V) == t;
    }
    loss_sum += loss * (double)labelled; /* the batch mean, weighted by its labelled positions */
    count += labelled;
    hy_step_rewind(mark);
  }
  hy_no_grad_end();
  if (d) { /* every rank's share of the batches and positions */
    loss_sum = hy_parallel_sum(d, loss_sum);
    correct = (int64_t)hy_parallel_sum(d, (double)correct);
    count = (int64_t)hy_parallel_sum(d, (double)count);
    bytes = (int64_t)hy_parallel_sum(d, (double)bytes);
  }
  hy_eval_result e = {0, 0, count, bytes, done};
  if (count) {
    e.loss = loss_sum / (double)count;
    e.acc = (double)correct / (double)count;
  }
  return e;
}

double hy_eval_bits_per_byte(const hy_eval_result *e) {
  if (e->bytes <= 0) return NAN;
  /* the mean times the ratio, which is exactly 1 with the byte tokenizer */
  return e->loss / log(2.0) * ((double)e->tokens / (double)e->bytes);
}

hy_model_config hy_eval_model_config(const hy_model_config *trained) {
  hy_model_config c = *trained;
  c.softplus.power = c.softplus.eval_power;
  return c;
}
