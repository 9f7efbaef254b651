/* The softmax-family variants, forward + backward on the CPU: sigmoid, softplus and sparse-linear
 * attention (SLA) against softmax attention (hy_attention) measured in the same run, and SLA's
 * accuracy-for-time trade: as the critical fraction grows, the time and the relative error of its
 * exact branch o_s (the layer's output at init, proj_l = 0) against dense softmax attention, with
 * the fraction of causal blocks computed exactly. Random inputs: attention that is far from
 * sparse, the hard case for SLA. Usage: bench_softmax_variants [threads] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "tensor/arena.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>

enum { B = 1, H = 4, D = 32, SLA_BLOCK = 64 };
typedef enum { SOFTMAX, SIGMOID, SOFTPLUS, SLA, N_OPS } op_kind;
static const char *const OP_NAMES[N_OPS] = {"softmax", "sigmoid", "softplus", "sla"};

typedef struct {
  hy_tensor *q, *k, *v; /* persistent inputs, made once per length */
  op_kind op;
  double critical, negligible; /* SLA's fractions */
  hy_sla_stats stats;
} bench_case;

static hy_tensor *run_op(bench_case *c) {
  double scale = 1.0 / sqrt((double)D);
  int64_t T = c->q->shape[1];
  switch (c->op) {
  case SOFTMAX: return hy_attention(c->q, c->k, c->v, scale);
  case SIGMOID: return hy_sigmoid_attention(c->q, c->k, c->v, scale, -log((double)T));
  case SOFTPLUS: return hy_softplus_attention(c->q, c->k, c->v, scale, 256, 1.0, 0);
  case SLA:
    return hy_sla(c->q, c->k, c->v, scale, c->critical, c->negligible, HY_SLA_PHI_SOFTMAX,
                  SLA_BLOCK, &c->stats);
  case N_OPS: break;
  }
  return NULL;
}

static void step(void *p) {
  bench_case *c = p;
  hy_step_mark mark = hy_step_get_mark();
  hy_backward(hy_sum_all(run_op(c)));
  hy_step_rewind(mark);
}

static hy_tensor *input(int64_t T, hy_rng *rng) {
  hy_tensor *t = hy_empty_persistent(HY_F32, HY_SHAPE(B, T, H, D));
  hy_fill_normal(t, rng, 0, 1);
  t->requires_grad = true;
  return t;
}

static void free_inputs(bench_case *c) {
  hy_free(c->q);
  hy_free(c->k);
  hy_free(c->v);
}

/* ||a - ref|| / ||ref|| without the tape. */
static double rel_err(hy_tensor *a, hy_tensor *ref) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < hy_numel(ref); i++) {
    double r = hy_get(ref, i), d = hy_get(a, i) - r;
    num += d * d;
    den += r * r;
  }
  return sqrt(num / den);
}

static void compare_ops(void) {
  printf("\nforward + backward, f32, B=%d H=%d D=%d (sla: blocks of %d, critical 0.05, negligible "
         "0.1); x: time over softmax's\n",
         B, H, D, SLA_BLOCK);
  printf("%6s %12s", "T", "softmax ms");
  for (int op = SIGMOID; op < N_OPS; op++) printf(" %11s ms %8s", OP_NAMES[op], "x");
  printf("\n");
  int64_t Ts[] = {256, 1024, 4096};
  for (int i = 0; i < 3; i++) {
    hy_rng rng = hy_rng_new(7);
    bench_case c = {
        input(Ts[i], &rng), input(Ts[i], &rng), input(Ts[i], &rng), SOFTMAX, 0.05, 0.1, {0, 0}};
    double t_ref = bench_median(step, &c, 3, 0.5);
    printf("%6lld %12.2f", (long long)Ts[i], t_ref * 1e3);
    for (int op = SIGMOID; op < N_OPS; op++) {
      c.op = (op_kind)op;
      double t = bench_median(step, &c, 3, 0.5);
      printf(" %14.2f %8.2f", t * 1e3, t / t_ref);
    }
    printf("\n");
    fflush(stdout);
    free_inputs(&c);
  }
}

static void sla_tradeoff(void) {
  enum { T = 4096 };
  printf("\nsla at T=%d, negligible 0, blocks of %d: o_s against dense softmax attention\n", T,
         SLA_BLOCK);
  printf("%10s %12s %12s %8s %12s %12s\n", "critical", "exact blocks", "sla ms", "x", "rel err",
         "softmax ms");
  hy_rng rng = hy_rng_new(9);
  bench_case c = {input(T, &rng), input(T, &rng), input(T, &rng), SOFTMAX, 0, 0, {0, 0}};
  double t_ref = bench_median(step, &c, 3, 0.5);
  hy_no_grad_begin();
  hy_tensor *dense = hy_attention(c.q, c.k, c.v, 1.0 / sqrt((double)D));
  hy_no_grad_end();
  double fractions[] = {0.05, 0.10, 0.25, 0.50, 1.00};
  for (int i = 0; i < 5; i++) {
    c.op = SLA;
    c.critical = fractions[i];
    double t = bench_median(step, &c, 3, 0.5);
    hy_step_mark mark = hy_step_get_mark();
    hy_no_grad_begin();
    hy_tensor *o_s = hy_slice(run_op(&c), 3, 0, D); /* also refreshes c.stats */
    double err = rel_err(hy_contiguous(o_s), dense);
    hy_no_grad_end();
    hy_step_rewind(mark);
    printf("%9.0f%% %11.1f%% %12.2f %8.2f %12.3g %12.2f\n", 100 * fractions[i], 100 * c.stats.exact,
           t * 1e3, t / t_ref, err, t_ref * 1e3);
    fflush(stdout);
  }
  free_inputs(&c);
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  bench_print_hardware();
  compare_ops();
  sla_tradeoff();
  hy_step_reset();
  return 0;
}
