#include "tensor/cuda/common.cuh"

extern "C" {
#include "tensor/cuda/runtime.h"
}

#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

/* Row-major C = alpha op(A) op(B) + beta C through cuBLAS, which is column-major: a row-major
 * matrix is its transpose in column-major, so C^T = op(B)^T op(A)^T swaps the operands. f32
 * GEMMs stay exact (no TF32): the GPU must match the CPU path to 1e-5. */
extern "C" void cuda_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                              double alpha, const float *A, int64_t lda, const float *B,
                              int64_t ldb, double beta, float *C, int64_t ldc) {
  float a = (float)alpha, b = (float)beta;
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  HY_CUBLAS_CHECK(cublasSgemm(hy_cublas(), op_b, op_a, (int)N, (int)M, (int)K, &a, B, (int)ldb, A,
                              (int)lda, &b, C, (int)ldc));
}

/* ---- bf16 on the tensor cores through cuBLASLt ----
 * A plan (the operation, the three layouts and the algorithm cuBLASLt's heuristic picked) is made
 * once per shape, layout, output type and pointer alignment and kept: a training step asks for
 * the same few dozen GEMMs every time. Rows of packed documents ask for new shapes from batch to
 * batch: past MAX_PLANS, the oldest plan makes room. */

enum { WORKSPACE_BYTES = 32 << 20, MAX_PLANS = 256 };

typedef struct {
  bool trans_a, trans_b, c_bf16, beta_zero;
  int64_t M, N, K, lda, ldb, ldc;
  int align_a, align_b, align_c;
} plan_key;

typedef struct {
  plan_key key;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
  bool has_algo; /* else cublasGemmEx */
} plan;

static cublasLtHandle_t lt;
static void *workspace;
static plan plans[MAX_PLANS];
static int n_plans, oldest; /* plans[oldest] is the next to go once all are taken */

static void destroy_plan(plan *p) {
  cublasLtMatrixLayoutDestroy(p->la);
  cublasLtMatrixLayoutDestroy(p->lb);
  cublasLtMatrixLayoutDestroy(p->lc);
  cublasLtMatmulDescDestroy(p->op);
}

static void release_lt(void) {
  for (int i = 0; i < n_plans; i++) destroy_plan(&plans[i]);
  n_plans = oldest = 0;
  if (lt) cublasLtDestroy(lt);
  lt = NULL;
  hy_cuda_free(workspace);
  workspace = NULL;
}

/* The largest power of two up to 256 that divides the address: what cuBLASLt's kernels may
 * assume of it. */
static int alignment(const void *p) {
  uintptr_t u = (uintptr_t)p;
  int a = 256;
  while (a > 2 && u % (uintptr_t)a) a /= 2;
  return a;
}

static bool same_key(const plan_key *x, const plan_key *y) { return !memcmp(x, y, sizeof *x); }

#define LT_SET(desc, attr, value)                                                                  \
  HY_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &(value), sizeof(value)))

static plan *plan_for(const plan_key *k) {
  for (int i = 0; i < n_plans; i++)
    if (same_key(&plans[i].key, k)) return &plans[i];
  if (!lt) {
    HY_CUBLAS_CHECK(cublasLtCreate(&lt));
    workspace = hy_cuda_malloc(WORKSPACE_BYTES);
    atexit(release_lt);
  }
  plan *p;
  if (n_plans < MAX_PLANS) {
    p = &plans[n_plans++];
  } else {
    p = &plans[oldest];
    oldest = (oldest + 1) % MAX_PLANS;
    destroy_plan(p);
  }
  memset(p, 0, sizeof *p);
  p->key = *k;
  /* Column-major: D (N x M) = op(B') (N x K) op(A') (K x M), with B' the row-major B. */
  cublasOperation_t op_b = k->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_a = k->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  HY_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  LT_SET(p->op, CUBLASLT_MATMUL_DESC_TRANSA, op_b);
  LT_SET(p->op, CUBLASLT_MATMUL_DESC_TRANSB, op_a);
  uint64_t b_rows = k->trans_b ? k->K : k->N, b_cols = k->trans_b ? k->N : k->K;
  uint64_t a_rows = k->trans_a ? k->M : k->K, a_cols = k->trans_a ? k->K : k->M;
  cudaDataType_t c_type = k->c_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  HY_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, b_rows, b_cols, k->ldb));
  HY_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, a_rows, a_cols, k->lda));
  HY_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&p->lc, c_type, (uint64_t)k->N, (uint64_t)k->M, k->ldc));
  cublasLtMatmulPreference_t pref;
  HY_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = WORKSPACE_BYTES;
  uint32_t al_a = (uint32_t)k->align_b, al_b = (uint32_t)k->align_a, al_c = (uint32_t)k->align_c;
  HY_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  HY_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
  HY_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
  HY_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
  HY_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(lt, p->op, p->la, p->lb, p->lc, p->lc,
                                                         pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (status == CUBLAS_STATUS_SUCCESS && found > 0) {
    p->algo = result.algo;
    p->has_algo = true;
  }
  return p;
}

/* Row-major C = alpha op(A) op(B) + beta C with A and B bf16, C bf16 or f32 (c_bf16), products
 * summed in f32 on the tensor cores. Beta 1 adds into C (a gradient that accumulates). */
extern "C" void cuda_gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                               double alpha, const hy_bf16 *A, int64_t lda, const hy_bf16 *B,
                               int64_t ldb, double beta, void *C, bool c_bf16, int64_t ldc) {
  float a = (float)alpha, b = (float)beta;
  plan_key k;
  memset(&k, 0, sizeof k); /* the padding too: keys compare by memcmp */
  k.trans_a = trans_a, k.trans_b = trans_b, k.c_bf16 = c_bf16, k.beta_zero = beta == 0;
  k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc;
  k.align_a = alignment(A), k.align_b = alignment(B), k.align_c = alignment(C);
  plan *p = plan_for(&k);
  if (p->has_algo) {
    HY_CUBLAS_CHECK(cublasLtMatmul(lt, p->op, &a, B, p->la, A, p->lb, &b, C, p->lc, C, p->lc,
                                   &p->algo, workspace, WORKSPACE_BYTES, hy_cuda_stream()));
    return;
  }
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  HY_CUBLAS_CHECK(cublasGemmEx(hy_cublas(), op_b, op_a, (int)N, (int)M, (int)K, &a, B, CUDA_R_16BF,
                               (int)ldb, A, CUDA_R_16BF, (int)lda, &b, C,
                               c_bf16 ? CUDA_R_16BF : CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}
