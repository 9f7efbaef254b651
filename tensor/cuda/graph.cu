/* Whole training steps as CUDA graphs: everything a step queues on hyla's stream between
 * hy_cuda_graph_begin and hy_cuda_graph_end is recorded once (not run) and then replayed as one
 * launch, with the same kernels, arguments and memory each time. A step can be captured only if
 * it makes no host synchronization and no allocation (the CUDA runtime refuses those during a
 * capture, and the capture fails with a message naming the call). */
#include "tensor/cuda/common.cuh"

extern "C" {
#include "tensor/cuda/runtime.h"
}

struct hy_cuda_graph {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
};

extern "C" void hy_cuda_graph_begin(void) {
  HY_CUDA_CHECK(cudaStreamBeginCapture(hy_cuda_stream(), cudaStreamCaptureModeGlobal));
}

extern "C" hy_cuda_graph *hy_cuda_graph_end(void) {
  hy_cuda_graph *g = (hy_cuda_graph *)calloc(1, sizeof *g);
  if (!g) hy_die("cuda graph", "out of memory");
  HY_CUDA_CHECK(cudaStreamEndCapture(hy_cuda_stream(), &g->graph));
  HY_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0));
  return g;
}

extern "C" void hy_cuda_graph_launch(hy_cuda_graph *g) {
  HY_CUDA_CHECK(cudaGraphLaunch(g->exec, hy_cuda_stream()));
}

extern "C" void hy_cuda_graph_free(hy_cuda_graph *g) {
  if (!g) return;
  cudaGraphExecDestroy(g->exec);
  cudaGraphDestroy(g->graph);
  free(g);
}
