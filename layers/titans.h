/* Titans (Behrouz, Zhong, Mirrokni 2025, "Titans: Learning to Memorize at Test Time"; reference
 * code lucidrains/titans-pytorch): the neural memory of layers/titans_memory.h combined with
 * sliding-window softmax attention.
 *
 *   "titans_mal" (memory as a layer):   m = Memory(x);  out = SWA(m)
 *   "titans_mag" (memory as a gate):    m = Memory(x);  a = SWA(x);
 *                                       out = RMSNorm(a; g_a) * sigmoid(RMSNorm(m; g_m))
 *
 * SWA is the model's softmax attention (q, k, v, o projections, RoPE) restricted to the last
 * `window` tokens, with `persistent` learnable key/value pairs per head prepended to the keys and
 * values and visible from every query (titans-pytorch's SegmentedAttention.persistent_memory:
 * zeros at init, no RoPE). Without persistent tokens it is hy_attention_window; with them it is
 * built from ops in blocks of `window` queries (hy_titans_window_attention).
 *
 * Under sequence parallelism (docs/distributed.md) each rank's slice is whole memory chunks: the
 * memory's state is handed from rank to rank, and so are the keys and values of the window
 * before each slice.
 *
 * Decoding carries the memory (its weights, momentum and the running sums of the chunk in
 * progress: O(1) in the sequence length) and a ring of the last `window` rotated keys and values.
 * The third block, MAC (memory as context), is below (layers/titans_mac.c). */
#ifndef HYLA_TITANS_H
#define HYLA_TITANS_H

#include "layers/attention.h"
#include "layers/mixer.h"
#include "layers/model.h"
#include "layers/titans_memory.h"

/* The defaults above. */
hy_titans_config hy_titans_config_default(void);
/* The Titans settings of a model configuration ([layer.titans]); the defaults when cfg is NULL. */
const hy_titans_config *hy_titans_config_of(const hy_model_config *cfg);

typedef struct {
  hy_titans_memory mem;    /* under prefix/memory */
  hy_attention_layer attn; /* under prefix/attn; attn.window is the config's window */
  hy_tensor *pk, *pv;      /* [persistent, H, D] persistent keys and values, or NULL */
  hy_tensor *attn_norm;    /* MAG: gains [d] of RMSNorm(attention output), prefix/attn_norm */
  hy_tensor *mem_norm;     /* MAG, MAC: gains [d] of RMSNorm(memory output), prefix/memory_norm */
  hy_tensor *in_norm;      /* MAC: gains [d] of RMSNorm(memory input), prefix/memory_input_norm */
  double norm_eps;
  bool gate;       /* MAG (true) or MAL and MAC (false) */
  int64_t segment; /* MAC: tokens per segment; 0 for MAL and MAG */
} hy_titans_layer;

extern const hy_mixer_kind hy_mixer_titans_mal;
extern const hy_mixer_kind hy_mixer_titans_mag;

/* A layer with explicit settings (create() uses hy_titans_config_of(cfg)); free with free(). */
hy_titans_layer *hy_titans_new(hy_params *ps, const char *prefix, const hy_model_config *cfg,
                               const hy_titans_config *tc, bool gate, hy_rng *rng);
hy_tensor *hy_titans_forward(const hy_titans_layer *l, hy_tensor *x); /* [B, T, d] -> [B, T, d] */

/* Causal softmax attention over the last `window` keys (0: all) plus n persistent keys visible to
 * every query: q, k, v [B, T, H, D], pk, pv [n, H, D] (NULL or n = 0: hy_attention_window);
 * out [B, T, H, D]. Built from ops in blocks of `window` queries: scores [B*H, blocks, window,
 * n + 2 window], masked, softmaxed. */
hy_tensor *hy_titans_window_attention(hy_tensor *q, hy_tensor *k, hy_tensor *v, hy_tensor *pk,
                                      hy_tensor *pv, double scale, int64_t window);

/* titans_mac (layers/titans_mac.c): the same layer, the memory as context of the attention in
 * segments of `segment` tokens. */
extern const hy_mixer_kind hy_mixer_titans_mac;
hy_tensor *hy_titans_mac_forward(const hy_titans_layer *l, hy_tensor *x); /* [B, T, d] */

/* Pieces the Titans blocks share (layers/titans.c):
 * blocks: [B, T, H, D] -> [B * H, nb, W, D], zero-padded to nb * W tokens;
 * repeat_persistent: p [n, H, D] cast to `dtype` (the activations': bf16 beside f32 parameters)
 *   and repeated for every sequence and block, [B * H, nb, n, D];
 * segment_mask: the additive mask [1, n, P + 2 n] of a MAC segment (kept for the process): query i
 *   sees the P persistent keys, then the memory read-outs 0 .. i and the segment's keys 0 .. i;
 * block_attention: softmax(scale qb keys^T + mask) values for qb [B * H, nb, W, D], keys and
 *   values [B * H, nb, L, D], as [B, T, H, D] (the first T of the nb W rows);
 * heads: x W [B, n, d] in the attention's heads, [B, n, H, D];
 * attend_one: one query q [B, 1, H, D] (rotated) over the persistent keys and keys, values
 *   [B, n, H, D], through the output projection: [B, 1, d]. */
hy_tensor *hy_titans_blocks(hy_tensor *x, int64_t nb, int64_t W);
hy_tensor *hy_titans_repeat_persistent(hy_tensor *p, hy_dtype dtype, int64_t B, int64_t nb);
hy_tensor *hy_titans_segment_mask(hy_dtype dtype, hy_device device, int64_t n, int64_t P);
hy_tensor *hy_titans_block_attention(hy_tensor *qb, hy_tensor *keys, hy_tensor *values,
                                     hy_tensor *mask, double scale, int64_t B, int64_t T);
hy_tensor *hy_titans_heads(const hy_attention_layer *a, const hy_linear *proj, hy_tensor *x);
hy_tensor *hy_titans_attend_one(const hy_titans_layer *l, hy_tensor *q, hy_tensor *keys,
                                hy_tensor *values);

#endif
