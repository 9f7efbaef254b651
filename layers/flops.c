#include "layers/flops.h"
#include "tensor/device.h"

#include <string.h>

#ifdef HYLA_CUDA
#include "tensor/cuda/runtime.h"
#endif

/* A mixer's own products per token of the forward (its projections are counted as matrices; so
 * are conv's taps [K, d], whose 2 K d products a token are exactly a matrix's). */
static double mixer_forward_flops(const hy_model_config *c, const char *kind, int64_t T) {
  double d = (double)c->d_model;
  if (!strcmp(kind, "attn") || !strcmp(kind, "sigmoid") || !strcmp(kind, "softplus")) {
    double keys = (double)T / 2;
    if (!strcmp(kind, "attn") && c->attn_window > 0 && (double)c->attn_window < keys)
      keys = (double)c->attn_window;
    return 2 * 2 * d * keys; /* q k^T and p v, H D = d */
  }
  if (!strcmp(kind, "gla")) {
    double H = (double)(c->gla.heads ? c->gla.heads : c->n_heads);
    double dk = c->gla.expand_k * d / H, dv = c->gla.expand_v * d / H;
    return H * (4 * dk * dv + (double)c->gla.chunk * (dk + dv));
  }
  if (!strcmp(kind, "lightning") || !strcmp(kind, "linear")) {
    int64_t heads = !strcmp(kind, "linear") ? c->linear.heads : c->lightning.heads;
    int64_t chunk = !strcmp(kind, "linear") ? c->linear.chunk : c->lightning.chunk;
    double H = (double)(heads ? heads : c->n_heads), dh = d / H;
    return H * (4 * dh * dh + (double)chunk * 2 * dh);
  }
  return 0;
}

double hy_model_flops_per_token(const hy_model *m, int64_t T) {
  double matrices = 0;
  for (int i = 0; i < m->params.n; i++) {
    const hy_tensor *t = m->params.items[i].t;
    if (t->ndim == 2 && t != m->embed.weight) matrices += (double)hy_numel(t);
  }
  if (m->cfg.tied_embeddings) matrices += (double)hy_numel(m->embed.weight); /* the head */
  double mixers = 0;
  for (int l = 0; l < m->cfg.n_layers; l++)
    mixers += mixer_forward_flops(&m->cfg, m->cfg.layers[l], T);
  return 6 * matrices + 3 * mixers;
}

double hy_gpu_bf16_peak(void) {
#ifdef HYLA_CUDA
  if (!hy_cuda_available()) return 0;
  const char *name = hy_cuda_device_description();
  bool pcie = strstr(name, "PCIe") != NULL;
  if (strstr(name, "H100") || strstr(name, "H200")) return pcie ? 756e12 : 989.4e12;
  if (strstr(name, "A100")) return 312e12;
#endif
  return 0;
}
