/* hy_matmul against a direct OpenBLAS call at the same sizes, in GFLOP/s. hy_matmul adds shape
 * checks and the arena allocation of its output, and splits the product over hyla's threads with
 * OpenBLAS held to one thread; the direct call lets OpenBLAS use the same number of threads its
 * own way. Usage: bench_matmul [threads] */
#include "autograd/tape.h"
#include "bench/bench.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <cblas.h>

typedef struct {
  hy_tensor *a, *b, *c;
  bool b_transposed;
} mm_case;

static void run_hyla(void *p) {
  mm_case *m = p;
  hy_step_mark mark = hy_step_get_mark();
  hy_tensor *b = m->b_transposed ? hy_transpose(m->b, 0, 1) : m->b;
  hy_matmul(m->a, b);
  hy_step_rewind(mark);
}

static void run_blas(void *p) {
  mm_case *m = p;
  openblas_set_num_threads(hy_threads_get());
  int M = (int)m->a->shape[0], K = (int)m->a->shape[1];
  int N = (int)(m->b_transposed ? m->b->shape[0] : m->b->shape[1]);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, m->b_transposed ? CblasTrans : CblasNoTrans, M, N, K,
              1.0f, m->a->data, K, m->b->data, m->b_transposed ? K : N, 0.0f, m->c->data, N);
  openblas_set_num_threads(1);
}

int main(int argc, char **argv) {
  hy_blas_pick_kernels(argv);
  bench_set_threads(argv[0], argc > 1 ? argv[1] : NULL);
  bench_print_hardware();
  struct {
    const char *what;
    int64_t M, K, N;
    bool bt;
  } cases[] = {
      {"square", 256, 256, 256, false},          {"square", 512, 512, 512, false},
      {"square", 1024, 1024, 1024, false},       {"square", 2048, 2048, 2048, false},
      {"x W^T (linear)", 2048, 512, 1536, true}, {"x W^T (linear)", 4096, 256, 256, true},
  };
  printf("%-16s %6s %6s %6s %12s %12s %7s\n", "f32 case", "M", "K", "N", "hyla GF/s", "BLAS GF/s",
         "ratio");
  hy_rng rng = hy_rng_new(1);
  double worst = 1e9;
  hy_no_grad_begin();
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int64_t M = cases[i].M, K = cases[i].K, N = cases[i].N;
    mm_case m = {hy_empty(HY_F32, HY_SHAPE(M, K)),
                 cases[i].bt ? hy_empty(HY_F32, HY_SHAPE(N, K)) : hy_empty(HY_F32, HY_SHAPE(K, N)),
                 hy_empty(HY_F32, HY_SHAPE(M, N)), cases[i].bt};
    hy_fill_normal(m.a, &rng, 0, 1);
    hy_fill_normal(m.b, &rng, 0, 1);
    double flops = 2.0 * (double)M * (double)N * (double)K;
    /* Interleave the two so that clock drift and turbo affect both alike. */
    double th = 1e9, tb = 1e9;
    for (int round = 0; round < 3; round++) {
      double x = bench_median(run_hyla, &m, 5, 0.3), y = bench_median(run_blas, &m, 5, 0.3);
      th = x < th ? x : th;
      tb = y < tb ? y : tb;
    }
    double ratio = tb / th;
    worst = ratio < worst ? ratio : worst;
    printf("%-16s %6lld %6lld %6lld %12.1f %12.1f %7.3f\n", cases[i].what, (long long)M,
           (long long)K, (long long)N, flops / th * 1e-9, flops / tb * 1e-9, ratio);
  }
  hy_no_grad_end();
  printf("worst ratio hyla/BLAS: %.3f (target >= 0.95)\n", worst);
  return 0;
}
