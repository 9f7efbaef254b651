/* Sequence parallelism on a long sequence: tokens/s of training steps (forward, backward, AdamW)
 * of a 4-layer model of one mixer kind (default gla; d = 128, 4 heads) at T = 8192, B = 1, with
 * the sequence split over the W ranks it runs on, the peak activation memory (hyla's step arena)
 * and peak resident set of each rank, and the bytes rank 0 sent per step by collective kind. Run
 * under mpirun -np 1, 2, ... by scripts/bench_sequence_parallel.sh, which prints the ratios.
 * Usage: bench_sequence_parallel [T] [steps] [kind] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "dist/collective_ops.h"
#include "dist/dist.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "tensor/arena.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <sys/resource.h>

typedef struct {
  hy_model *m;
  hy_optimizer opt;
  hy_dist *dist;
  hy_tensor *x, *y; /* this rank's slice of the tokens and targets, [1, T / W] */
  double weight;    /* this rank's share of the tokens */
  int steps_run;    /* for the bytes sent per step */
} sp_case;

/* The largest of every rank's v. */
static double max_over_ranks(hy_dist *d, double v) {
  double *all = calloc((size_t)d->world, sizeof *all);
  hy_allgather(d->all, HY_CPU, &v, all, 1, HY_F64);
  for (int i = 0; i < d->world; i++) v = all[i] > v ? all[i] : v;
  free(all);
  return v;
}

/* A persistent copy of x (the step arena is reset after each step). */
static hy_tensor *keep(hy_tensor *x) {
  hy_tensor *k = hy_empty_persistent(x->dtype, hy_shape_of(x));
  hy_copy_into(k, x);
  return k;
}

static void step(void *p) {
  sp_case *c = p;
  c->steps_run++;
  hy_tensor *loss = hy_scale(hy_model_loss(c->m, c->x, c->y, -1), c->weight);
  hy_params_zero_grad(&c->m->params);
  hy_backward(loss);
  for (int i = 0; i < c->m->params.n; i++) /* replicated parameters: sum over the ranks (a rank
                                            * a parameter did not reach holds zeros) */
    hy_allreduce_sum(c->dist->sp_group, HY_CPU, hy_grad(c->m->params.items[i].t)->data,
                     hy_numel(c->m->params.items[i].t), c->m->params.items[i].t->dtype);
  hy_optimizer_step(&c->opt, 1e-3);
  hy_step_reset();
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  int world = hy_dist_start(&argc, &argv);
  int64_t T = argc > 1 ? atoll(argv[1]) : 8192;
  int steps = argc > 2 ? atoi(argv[2]) : 3;
  const char *kind = argc > 3 ? argv[3] : "gla";
  bench_set_threads(argv[0], NULL);
  hy_dist d;
  hy_error err;
  if (!hy_mixer_find(kind)) {
    fprintf(stderr, "bench_sequence_parallel: unknown mixer '%s' (one of %s)\n", kind,
            hy_mixer_names());
    hy_dist_abort(2);
  }
  if (T % world || hy_dist_grid(&d, 1, world, &err)) {
    fprintf(stderr, "bench_sequence_parallel: T = %lld over %d ranks: %s\n", (long long)T, world,
            T % world ? "does not split evenly" : err.msg);
    hy_dist_abort(2);
  }
  if (d.rank == 0) bench_print_hardware();
  hy_model_config cfg = hy_model_config_default();
  cfg.vocab = 256;
  cfg.d_model = 128;
  cfg.n_heads = 4;
  cfg.n_layers = 4;
  for (int l = 0; l < cfg.n_layers; l++) snprintf(cfg.layers[l], HY_KIND_NAME_MAX, "%s", kind);
  sp_case c = {.m = hy_model_new(&cfg, 1), .dist = &d, .weight = 1.0 / world};
  hy_optimizer_init(&c.opt, &c.m->params, hy_adamw_config(0.9, 0.95, 1e-8, 0.1));
  hy_tensor *tokens = hy_empty_persistent(HY_I32, HY_SHAPE(1, T + 1));
  hy_rng rng = hy_rng_new(3);
  hy_fill_int(tokens, &rng, 0, 256); /* the same tokens on every rank */
  int64_t n = T / world, offset = d.sp_rank * n;
  c.x = keep(hy_slice(tokens, 1, offset, offset + n));
  c.y = keep(hy_slice(tokens, 1, offset + 1, offset + n + 1));
  hy_sequence_set(d.sp_group, offset);

  hy_arena_peak_reset();
  hy_dist_reset_bytes();
  double t = bench_median(step, &c, steps, 0.0);
  t = max_over_ranks(&d, t); /* a step ends when its slowest rank does */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double worst[2] = {max_over_ranks(&d, (double)hy_arena_peak()),
                     max_over_ranks(&d, (double)ru.ru_maxrss * 1024)};
  if (d.rank == 0)
    printf("ranks=%d threads=%d T=%lld  step %.3f s  %.0f tokens/s  peak arena/rank %.1f MiB  "
           "peak RSS/rank %.1f MiB\n",
           world, hy_threads_get(), (long long)T, t, (double)T / t, worst[0] / (1 << 20),
           worst[1] / (1 << 20));
  if (d.rank == 0) {
    printf("kind=%s sent by rank 0 per step:", kind);
    for (int k = 0; k < HY_COLL_KINDS; k++)
      printf("  %s %.0f bytes", hy_coll_name(k), (double)hy_dist_bytes(k) / c.steps_run);
    printf("\n");
  }
  hy_sequence_set(NULL, 0);
  hy_free(c.x);
  hy_free(c.y);
  hy_free(tokens);
  hy_optimizer_free(&c.opt);
  hy_model_free(c.m);
  hy_dist_free(&d);
  hy_dist_stop();
  return 0;
}
