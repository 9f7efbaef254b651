#include "recipes/gpu_limits.h"
#include "recipes/sizes.h"
#include "tensor/cuda/limits.h"
#include "util/checked.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* sla.cu and titans_scan.cu index up to 2 T positions with 32-bit integers. */
enum { POSITIONS_MAX = INT32_MAX / 2 };

static int refuse(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, size, fmt, ap);
  va_end(ap);
  return -1;
}

static bool on_gpu(const hy_recipe *r) { return (r->train.device == HY_RECIPE_CUDA); }

static bool uses(const hy_recipe *r, const char *kind) {
  return hy_recipe_count_layers(r, kind) > 0;
}

static int64_t or_model_heads(const hy_recipe *r, int64_t heads) {
  return heads ? heads : r->model.n_heads;
}

/* The first kind of the model that runs on the tiled attention kernels: softmax, sigmoid and
 * softplus attention unless naive, and titans_mal's and titans_mag's sliding window without
 * persistent keys (with them it attends by matrix products, as titans_mac's segments always do);
 * with `sla`, sparse-linear attention unless naive, whose kernels take the same head sizes in
 * tiles of their own. NULL: none. */
static const char *tiled_attention(const hy_recipe *r, bool sla) {
  if (uses(r, "attn") && !r->layer_attn.naive) return "attn";
  if (uses(r, "sigmoid") && !r->layer_sigmoid.naive) return "sigmoid";
  if (uses(r, "softplus") && !r->layer_softplus.naive) return "softplus";
  if (r->layer_titans.persistent == 0 && uses(r, "titans_mal")) return "titans_mal";
  if (r->layer_titans.persistent == 0 && uses(r, "titans_mag")) return "titans_mag";
  if (sla && uses(r, "sla") && !r->layer_sla.naive) return "sla";
  return NULL;
}

static int64_t head_size(const hy_recipe *r) { return r->model.d_model / r->model.n_heads; }

/* The longest sequence the Titans memory scan runs over: the whole sequence for titans_mal and
 * titans_mag, a segment for titans_mac; 0: no scan on the GPU (none, or the reference form). */
static int64_t titans_scan_length(const hy_recipe *r) {
  const hy_titans_config *t = &r->layer_titans;
  int64_t T = r->train.seq_len;
  if (t->reference) return 0;
  if (uses(r, "titans_mal") || uses(r, "titans_mag")) return T;
  if (uses(r, "titans_mac")) return t->segment < T ? t->segment : T;
  return 0;
}

/* ---- the checks ---- */

static int precision_fits_device(const hy_recipe *r, char *why, size_t size) {
  if ((r->train.precision == HY_RECIPE_BF16) && !on_gpu(r))
    return refuse(why, size,
                  "[train] precision = \"bf16\" needs device = \"cuda\" (the CPU trains in f32 "
                  "or f64)");
  if ((r->train.precision == HY_RECIPE_F64) && on_gpu(r))
    return refuse(why, size,
                  "[train] device = \"cuda\" trains in f32 or bf16, not precision = \"f64\"");
  return 0;
}

static int positions_fit(const hy_recipe *r, char *why, size_t size) {
  if (!on_gpu(r) || r->train.seq_len <= POSITIONS_MAX) return 0;
  return refuse(why, size,
                "[train] seq_len = %lld: the GPU kernels index positions with 32-bit integers, "
                "so at most %d on device = \"cuda\"",
                (long long)r->train.seq_len, POSITIONS_MAX);
}

static int attention_head_fits(const hy_recipe *r, char *why, size_t size) {
  const char *kind = on_gpu(r) ? tiled_attention(r, true) : NULL;
  if (!kind || head_size(r) <= HY_CUDA_ATTN_HEAD_MAX) return 0;
  return refuse(why, size,
                "[model] the head size d_model / n_heads = %lld / %lld = %lld: the GPU's "
                "attention kernels (the '%s' layers) take head sizes up to %d; use more heads",
                (long long)r->model.d_model, (long long)r->model.n_heads, (long long)head_size(r),
                kind, HY_CUDA_ATTN_HEAD_MAX);
}

static int attention_positions_fit(const hy_recipe *r, char *why, size_t size) {
  const char *kind = on_gpu(r) ? tiled_attention(r, false) : NULL;
  if (!kind) return 0;
  int64_t rows =
      head_size(r) <= HY_CUDA_ATTN_NARROW_HEAD ? HY_CUDA_ATTN_NARROW_ROWS : HY_CUDA_ATTN_WIDE_ROWS;
  int64_t most = HY_CUDA_GRID_YZ_MAX * rows;
  if (r->train.seq_len <= most) return 0;
  return refuse(why, size,
                "[train] seq_len = %lld: the GPU's attention kernels (the '%s' layers) take at "
                "most %lld positions at a head size of %lld (%d tiles of %lld rows)",
                (long long)r->train.seq_len, kind, (long long)most, (long long)head_size(r),
                HY_CUDA_GRID_YZ_MAX, (long long)rows);
}

static int sla_blocks_fit(const hy_recipe *r, char *why, size_t size) {
  if (!on_gpu(r) || !uses(r, "sla") || r->layer_sla.naive) return 0;
  int64_t T = r->train.seq_len, block = r->layer_sla.block;
  if (block > POSITIONS_MAX)
    return refuse(why, size, "[layer.sla] block = %lld: the GPU kernels take at most %d",
                  (long long)block, POSITIONS_MAX);
  int64_t blocks = T / block + (T % block != 0);
  int64_t tiles = ((block < T ? block : T) + HY_CUDA_SLA_ROWS - 1) / HY_CUDA_SLA_ROWS;
  if (blocks > HY_CUDA_SLA_SELECT_BLOCKS_MAX)
    return refuse(why, size,
                  "[layer.sla] block = %lld cuts [train] seq_len = %lld into %lld blocks: the "
                  "GPU's block selection ranks at most %d",
                  (long long)block, (long long)T, (long long)blocks, HY_CUDA_SLA_SELECT_BLOCKS_MAX);
  if (blocks * tiles <= HY_CUDA_GRID_YZ_MAX) return 0;
  return refuse(why, size,
                "[layer.sla] block = %lld and [train] seq_len = %lld make %lld blocks of %lld "
                "query tiles: the GPU kernels take at most %d tiles",
                (long long)block, (long long)T, (long long)blocks, (long long)tiles,
                HY_CUDA_GRID_YZ_MAX);
}

/* B x H over the batch: below 2^31 for attention and the Titans scan, at most 65535 for RAT. */
static int batch_heads_fit(const hy_recipe *r, char *why, size_t size) {
  if (!on_gpu(r)) return 0;
  int64_t B = r->train.batch, n;
  const char *kind = tiled_attention(r, true);
  if (kind && (!hy_checked_mul(B, r->model.n_heads, &n) || n > INT32_MAX))
    return refuse(why, size,
                  "[train] batch x [model] n_heads = %lld x %lld: the GPU's attention kernels "
                  "(the '%s' layers) take fewer than 2^31 heads over the batch",
                  (long long)B, (long long)r->model.n_heads, kind);
  int64_t rat = or_model_heads(r, r->layer_rat.heads);
  if (uses(r, "rat") && !r->layer_rat.naive &&
      (!hy_checked_mul(B, rat, &n) || n > HY_CUDA_RAT_BATCH_HEADS_MAX))
    return refuse(why, size,
                  "[train] batch x the %lld heads of [layer.rat] = %lld x %lld: the GPU's RAT "
                  "kernels take at most %d heads over the batch",
                  (long long)rat, (long long)B, (long long)rat, HY_CUDA_RAT_BATCH_HEADS_MAX);
  int64_t titans = r->layer_titans.heads;
  if (titans_scan_length(r) && (!hy_checked_mul(B, titans, &n) || n > INT32_MAX))
    return refuse(why, size,
                  "[train] batch x [layer.titans] heads = %lld x %lld: the GPU's memory scan "
                  "takes fewer than 2^31 heads over the batch",
                  (long long)B, (long long)titans);
  return 0;
}

static int rat_head_fits(const hy_recipe *r, char *why, size_t size) {
  if (!on_gpu(r) || !uses(r, "rat") || r->layer_rat.naive) return 0;
  int64_t H = or_model_heads(r, r->layer_rat.heads), D = r->model.d_model / H;
  if (D <= HY_CUDA_RAT_HEAD_MAX) return 0;
  return refuse(why, size,
                "[layer.rat] the head size d_model / heads = %lld / %lld = %lld: the GPU's RAT "
                "kernels take head sizes up to %d; use more heads",
                (long long)r->model.d_model, (long long)H, (long long)D, HY_CUDA_RAT_HEAD_MAX);
}

/* The chunked forms of lightning and linear attention run gla.cu's kernel with a constant decay
 * per head (none for linear). */
static int decay_heads_fit(const hy_recipe *r, char *why, size_t size) {
  if (!on_gpu(r)) return 0;
  const char *kinds[] = {"lightning", "linear"};
  int64_t heads[] = {r->layer_lightning.heads, r->layer_linear.heads};
  bool recurrent[] = {r->layer_lightning.recurrent, r->layer_linear.recurrent};
  for (int i = 0; i < 2; i++) {
    int64_t H = or_model_heads(r, heads[i]);
    if (!uses(r, kinds[i]) || recurrent[i] || H <= HY_CUDA_DECAY_HEADS_MAX) continue;
    return refuse(why, size,
                  "[layer.%s] %lld heads: the GPU's chunked kernel takes at most %d heads "
                  "with a decay per head",
                  kinds[i], (long long)H, HY_CUDA_DECAY_HEADS_MAX);
  }
  return 0;
}

/* The longest chunk whose pairs of tiles fit along a grid's y. */
static int64_t chunk_max(void) {
  int64_t tiles = 1;
  while ((tiles + 1) * (tiles + 2) / 2 <= HY_CUDA_GRID_YZ_MAX) tiles++;
  return tiles * HY_CUDA_GLA_TILE;
}

/* gla.cu runs a chunk's pairs of 64-token tiles along a grid's y and the (chunk, head, sequence)
 * triples along its x; a chunk past the sequence is the whole sequence (tensor/gla.c). */
static int chunks_fit(const hy_recipe *r, char *why, size_t size) {
  if (!on_gpu(r)) return 0;
  int64_t gla_heads = 1, key = 0, value = 0;
  hy_recipe_gla_widths(r, &gla_heads, &key, &value);
  const char *kinds[] = {"gla", "lightning", "linear"};
  int64_t chunks[] = {r->layer_gla.chunk, r->layer_lightning.chunk, r->layer_linear.chunk};
  int64_t heads[] = {gla_heads, or_model_heads(r, r->layer_lightning.heads),
                     or_model_heads(r, r->layer_linear.heads)};
  bool recurrent[] = {r->layer_gla.recurrent, r->layer_lightning.recurrent,
                      r->layer_linear.recurrent};
  int64_t T = r->train.seq_len, B = r->train.batch;
  for (int i = 0; i < 3; i++) {
    if (!uses(r, kinds[i]) || recurrent[i]) continue;
    int64_t C = chunks[i] < T ? chunks[i] : T, n = T / C + (T % C != 0), triples;
    if (C > chunk_max())
      return refuse(why, size,
                    "[layer.%s] chunk = %lld with [train] seq_len = %lld: the GPU's chunked "
                    "kernel takes chunks of at most %lld tokens",
                    kinds[i], (long long)chunks[i], (long long)T, (long long)chunk_max());
    if (!hy_checked_mul(B, heads[i], &triples) || !hy_checked_mul(triples, n, &triples) ||
        triples > INT32_MAX)
      return refuse(why, size,
                    "[layer.%s] %lld chunks of [train] seq_len = %lld x %lld heads x [train] "
                    "batch = %lld: the GPU's chunked kernel takes fewer than 2^31",
                    kinds[i], (long long)n, (long long)T, (long long)heads[i], (long long)B);
  }
  int64_t widest = (int64_t)HY_CUDA_GRID_YZ_MAX * HY_CUDA_GLA_TILE;
  if (uses(r, "gla") && !r->layer_gla.recurrent &&
      (key / gla_heads > widest || value / gla_heads > widest))
    return refuse(why, size,
                  "[layer.gla] a head's key width %lld or value width %lld: the GPU's chunked "
                  "kernel takes at most %lld",
                  (long long)(key / gla_heads), (long long)(value / gla_heads), (long long)widest);
  return 0;
}

/* titans_scan.cu: every size per head below 2^31, over the longest sequence one scan runs. */
static int titans_scan_fits(const hy_recipe *r, char *why, size_t size) {
  const hy_titans_config *t = &r->layer_titans;
  int64_t T = titans_scan_length(r);
  if (!on_gpu(r) || !T) return 0;
  int64_t heads, D, F, C = t->chunk < T ? t->chunk : T;
  hy_recipe_titans_widths(r, &heads, &D, &F);
  int64_t TD, CF, P, NP;
  bool fit = hy_checked_mul(T, D, &TD) && hy_checked_mul(C, F, &CF) &&
             hy_checked_mul(t->depth == 1 ? D : 2 * D, F, &P) &&
             hy_checked_mul(T / t->chunk, P, &NP);
  if (fit && TD <= INT32_MAX && CF <= INT32_MAX && NP <= INT32_MAX) return 0;
  return refuse(why, size,
                "[layer.titans] the memory's sizes per head on the GPU: %s x the head width = "
                "%lld x %lld, the chunk x the hidden width = %lld x %lld, and the updates x the "
                "weights = %lld x %lld x %lld%s: the GPU's scan takes each below 2^31",
                T < r->train.seq_len ? "[layer.titans] segment" : "[train] seq_len", (long long)T,
                (long long)D, (long long)C, (long long)F, (long long)(T / t->chunk), (long long)D,
                (long long)F, t->depth == 1 ? "" : " x 2");
}

#define ON_GPU                                                                                     \
  { "train", "device" }

const hy_cross_check hy_gpu_checks[] = {
    {"`train.precision = \"bf16\"` needs `train.device = \"cuda\"`, and `\"f64\"` the CPU.",
     {{"train", "precision"}, ON_GPU},
     precision_fits_device},
    {"On the GPU: `train.seq_len` is at most 2^30 - 1 (positions are 32-bit).",
     {{"train", "seq_len"}, ON_GPU},
     positions_fit},
    {"On the GPU, with an `attn`, `sigmoid`, `softplus` or `sla` layer that is not naive, or a "
     "`titans_mal` or `titans_mag` layer without persistent keys: the head size "
     "`d_model / n_heads` is at most 256.",
     {{"model", "d_model"}, {"model", "n_heads"}, {"model", "layers"}, ON_GPU},
     attention_head_fits},
    {"On the GPU, with the same attention layers but `sla`: `train.seq_len` is at most 65535 "
     "tiles of 64 positions for head sizes up to 64, and of 32 beyond.",
     {{"train", "seq_len"},
      {"model", "d_model"},
      {"model", "n_heads"},
      {"model", "layers"},
      ON_GPU},
     attention_positions_fit},
    {"On the GPU, with an `sla` layer that is not naive: `block` is at most 2^30 - 1, cuts "
     "`train.seq_len` into at most 25600 blocks, and the blocks times their query tiles of 32 "
     "positions are at most 65535.",
     {{"layer.sla", "block"}, {"layer.sla", "naive"}, {"train", "seq_len"}, ON_GPU},
     sla_blocks_fit},
    {"On the GPU: `train.batch` times the heads is below 2^31 for attention and the Titans "
     "memory, and at most 65535 for `rat`.",
     {{"train", "batch"},
      {"model", "n_heads"},
      {"layer.rat", "heads"},
      {"layer.titans", "heads"},
      ON_GPU},
     batch_heads_fit},
    {"On the GPU, with a `rat` layer that is not naive: its head size is at most 512.",
     {{"layer.rat", "heads"}, {"model", "d_model"}, {"model", "n_heads"}, ON_GPU},
     rat_head_fits},
    {"On the GPU, with a chunked `lightning` or `linear` layer: at most 256 heads.",
     {{"layer.lightning", "heads"}, {"layer.linear", "heads"}, {"model", "n_heads"}, ON_GPU},
     decay_heads_fit},
    {"On the GPU, with a chunked `gla`, `lightning` or `linear` layer: its chunk (or "
     "`train.seq_len`, when shorter) is at most 23104 tokens, the chunks times its heads times "
     "`train.batch` are below 2^31, and a GLA head's key and value widths are at most 4194240.",
     {{"layer.gla", "chunk"},
      {"layer.lightning", "chunk"},
      {"layer.linear", "chunk"},
      {"train", "seq_len"},
      {"train", "batch"},
      ON_GPU},
     chunks_fit},
    {"On the GPU, with a titans layer whose memory is chunked: per memory head, `train.seq_len` "
     "(with only `titans_mac`, `layer.titans.segment` when shorter) times the head width, the "
     "chunk times the hidden width and the updates times the weights are each below 2^31.",
     {{"layer.titans", "chunk"},
      {"layer.titans", "head_dim"},
      {"layer.titans", "expansion"},
      {"layer.titans", "depth"},
      {"train", "seq_len"},
      ON_GPU},
     titans_scan_fits},
};

const size_t hy_n_gpu_checks = sizeof hy_gpu_checks / sizeof *hy_gpu_checks;
