/* A recipe that trains on the GPU (train.device = "cuda") is checked against what the CUDA
 * kernels take (tensor/cuda/limits.h) when it is validated, on any build: each refused recipe
 * below breaks one condition a kernel asserts (the comment names it), and names the key that was
 * set last and where; the accepted ones sit at the edge of the condition, and the same recipe on
 * the CPU, or in a form that does not run that kernel, is accepted. */
#include "recipes/gpu_limits.h"
#include "recipes/recipe.h"
#include "recipes/schema.h"
#include "tests/support.h"

#include <stdio.h>
#include <string.h>

#define ON_GPU "train.device=\"cuda\""

static int parse(const char *text, int n, const char *const *sets, hy_error *err) {
  hy_recipe r;
  return hy_recipe_parse(text, "recipes/gpu.toml", n, sets, &r, err);
}

static void expect_refused(const char *text, int n, const char *const *sets, const char *want) {
  hy_error err = {{0}};
  cr_assert_eq(parse(text, n, sets, &err), -1, "accepted; expected an error containing:\n  %s",
               want);
  cr_expect(strstr(err.msg, want), "the message\n  %s\ndoes not contain\n  %s", err.msg, want);
}

static void expect_accepted(const char *text, int n, const char *const *sets) {
  hy_error err = {{0}};
  cr_expect_eq(parse(text, n, sets, &err), 0, "refused: %s", err.msg);
}

#define SETS(...)                                                                                  \
  (sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), (const char *[]) { __VA_ARGS__ }

/* Refused on the GPU with `want`; accepted on the CPU. */
#define GPU_REFUSED(name, want, ...)                                                               \
  Test(gpu_refused, name) {                                                                        \
    expect_refused("", SETS(__VA_ARGS__, ON_GPU), want);                                           \
    expect_accepted("", SETS(__VA_ARGS__));                                                        \
  }
#define GPU_ACCEPTED(name, ...)                                                                    \
  Test(gpu_accepted, name) { expect_accepted("", SETS(__VA_ARGS__, ON_GPU)); }

/* run/train.c: bf16 computes on the GPU only, and the GPU has no f64 kernels */
Test(gpu_refused, precision) {
  expect_refused("[train]\nprecision = \"bf16\"\n", 0, NULL,
                 "recipes/gpu.toml:2: [train] precision = \"bf16\" needs device = \"cuda\" (the "
                 "CPU trains in f32 or f64)");
  expect_refused("[train]\nprecision = \"f64\"\ndevice = \"cuda\"\n", 0, NULL,
                 "recipes/gpu.toml:3: [train] device = \"cuda\" trains in f32 or bf16, not "
                 "precision = \"f64\"");
  expect_accepted("[train]\nprecision = \"bf16\"\ndevice = \"cuda\"\n", 0, NULL);
  expect_accepted("[train]\nprecision = \"f64\"\n", 0, NULL);
}

/* sla.cu, titans_scan.cu: 2 T positions in 32-bit integers */
GPU_REFUSED(positions,
            "--set train.device=\"cuda\": [train] seq_len = 1073741824: the GPU kernels index "
            "positions with 32-bit integers, so at most 1073741823",
            "model.layers=\"gla\"", "train.batch=1", "train.seq_len=1073741824")
GPU_ACCEPTED(positions, "model.layers=\"gla\"", "train.batch=1", "train.seq_len=1073741823")

/* attention.cu, attention_tiles.cuh, sla.cu: head sizes 1 to 256 */
Test(gpu_refused, attention_head) {
  expect_refused("[model]\nd_model = 512\nn_heads = 1\n[train]\ndevice = \"cuda\"\n", 0, NULL,
                 "recipes/gpu.toml:5: [model] the head size d_model / n_heads = 512 / 1 = 512: "
                 "the GPU's attention kernels (the 'attn' layers) take head sizes up to 256; use "
                 "more heads");
  expect_refused("[train]\ndevice = \"cuda\"\n[model]\nd_model = 512\nn_heads = 1\n", 0, NULL,
                 "recipes/gpu.toml:5: [model] the head size");
  const char *kinds[] = {"sigmoid", "softplus", "sla", "titans_mal", "titans_mag"};
  for (int i = 0; i < 5; i++) {
    char layers[64], want[128];
    snprintf(layers, sizeof layers, "model.layers=\"%s\"", kinds[i]);
    snprintf(want, sizeof want, "the GPU's attention kernels (the '%s' layers)", kinds[i]);
    expect_refused(
        "",
        SETS(layers, "model.d_model=512", "model.n_heads=1", "layer.titans.persistent=0", ON_GPU),
        want);
  }
  expect_accepted("", SETS("model.d_model=512", "model.n_heads=1"));
}
GPU_ACCEPTED(attention_head, "model.d_model=512", "model.n_heads=2")
/* the naive forms and titans with persistent keys attend by matrix products */
GPU_ACCEPTED(naive_attention_head, "model.layers=\"attn,sigmoid,softplus,sla,titans_mal\"",
             "model.d_model=512", "model.n_heads=1", "layer.attn.naive=true",
             "layer.sigmoid.naive=true", "layer.softplus.naive=true", "layer.sla.naive=true",
             "layer.titans.persistent=1")
/* titans_mac's segments always attend by matrix products */
GPU_ACCEPTED(titans_mac_head, "model.layers=\"titans_mac\"", "model.d_model=512", "model.n_heads=1",
             "layer.titans.persistent=0")

/* attention_shape.cuh, attention_tiles.cuh: at most 65535 tiles of 64 rows (heads up to 64) or
 * of 32 rows (beyond) along a grid's y */
GPU_REFUSED(attention_positions,
            "[train] seq_len = 4194241: the GPU's attention kernels (the 'attn' layers) take at "
            "most 4194240 positions at a head size of 32 (65535 tiles of 64 rows)",
            "train.batch=1", "train.seq_len=4194241")
GPU_ACCEPTED(attention_positions, "train.batch=1", "train.seq_len=4194240")
GPU_REFUSED(wide_attention_positions,
            "[train] seq_len = 2097121: the GPU's attention kernels (the 'softplus' layers) take "
            "at most 2097120 positions at a head size of 128 (65535 tiles of 32 rows)",
            "model.layers=\"softplus\"", "model.d_model=512", "train.batch=1",
            "train.seq_len=2097121")
GPU_ACCEPTED(wide_attention_positions, "model.layers=\"softplus\"", "model.d_model=512",
             "train.batch=1", "train.seq_len=2097120")

/* sla.cu: block within 32 bits, at most 25600 blocks to rank, blocks x query tiles <= 65535 */
GPU_REFUSED(sla_block, "[layer.sla] block = 1073741824: the GPU kernels take at most 1073741823",
            "model.layers=\"sla\"", "layer.sla.block=1073741824")
GPU_REFUSED(sla_blocks,
            "[layer.sla] block = 1 cuts [train] seq_len = 25601 into 25601 blocks: the GPU's "
            "block selection ranks at most 25600",
            "model.layers=\"sla\"", "layer.sla.block=1", "train.batch=1", "train.seq_len=25601")
GPU_ACCEPTED(sla_blocks, "model.layers=\"sla\"", "layer.sla.block=1", "train.batch=1",
             "train.seq_len=25600")
GPU_REFUSED(sla_tiles,
            "[layer.sla] block = 128 and [train] seq_len = 2097152 make 16384 blocks of 4 query "
            "tiles: the GPU kernels take at most 65535 tiles",
            "model.layers=\"sla\"", "layer.sla.block=128", "train.batch=1", "train.seq_len=2097152")
GPU_ACCEPTED(sla_tiles, "model.layers=\"sla\"", "layer.sla.block=128", "train.batch=1",
             "train.seq_len=2097024")
GPU_ACCEPTED(naive_sla, "model.layers=\"sla\"", "layer.sla.naive=true", "layer.sla.block=1",
             "train.batch=1", "train.seq_len=25601")

/* rat.cu: heads over the batch along a grid's y (65535), head sizes up to 64 x 8 */
GPU_REFUSED(rat_batch_heads,
            "[train] batch x the 4 heads of [layer.rat] = 16384 x 4: the GPU's RAT kernels take "
            "at most 65535 heads over the batch",
            "model.layers=\"rat\"", "train.batch=16384", "train.seq_len=16")
GPU_ACCEPTED(rat_batch_heads, "model.layers=\"rat\"", "train.batch=16383", "train.seq_len=16")
GPU_REFUSED(rat_head,
            "[layer.rat] the head size d_model / heads = 1024 / 1 = 1024: the GPU's RAT kernels "
            "take head sizes up to 512",
            "model.layers=\"rat\"", "model.d_model=1024", "model.n_heads=1", "layer.rat.n_groups=1")
GPU_ACCEPTED(rat_head, "model.layers=\"rat\"", "model.d_model=1024", "model.n_heads=2",
             "layer.rat.n_groups=1")
GPU_ACCEPTED(naive_rat, "model.layers=\"rat\"", "layer.rat.naive=true", "model.d_model=1024",
             "model.n_heads=1", "layer.rat.n_groups=1", "train.batch=16384", "train.seq_len=16")

/* attention_shape.cuh: B x H below 2^31 */
GPU_REFUSED(attention_batch_heads,
            "[train] batch x [model] n_heads = 536870912 x 4: the GPU's attention kernels (the "
            "'attn' layers) take fewer than 2^31 heads over the batch",
            "train.batch=536870912", "train.seq_len=1")

/* gla.cu: a constant decay per head travels in a kernel argument of 256 */
GPU_REFUSED(lightning_heads,
            "[layer.lightning] 512 heads: the GPU's chunked kernel takes at most 256 heads with "
            "a decay per head",
            "model.layers=\"lightning\"", "model.d_model=512", "layer.lightning.heads=512")
GPU_ACCEPTED(lightning_heads, "model.layers=\"lightning\"", "model.d_model=512",
             "layer.lightning.heads=256")
GPU_ACCEPTED(recurrent_lightning_heads, "model.layers=\"lightning\"", "model.d_model=512",
             "layer.lightning.heads=512", "layer.lightning.recurrent=true")
GPU_REFUSED(linear_heads, "[layer.linear] 512 heads", "model.layers=\"linear\"",
            "model.d_model=512", "layer.linear.heads=512")

/* gla.cu: a chunk's pairs of 64-token tiles along a grid's y, (chunk, head, sequence) along x */
GPU_REFUSED(gla_chunk,
            "[layer.gla] chunk = 23105 with [train] seq_len = 30000: the GPU's chunked kernel "
            "takes chunks of at most 23104 tokens",
            "model.layers=\"gla\"", "layer.gla.chunk=23105", "train.batch=1", "train.seq_len=30000")
GPU_ACCEPTED(gla_chunk, "model.layers=\"gla\"", "layer.gla.chunk=23104", "train.batch=1",
             "train.seq_len=30000")
/* a chunk past the sequence is the sequence */
GPU_ACCEPTED(long_chunk, "model.layers=\"gla,lightning,linear\"", "layer.gla.chunk=1000000000",
             "layer.lightning.chunk=1000000000", "layer.linear.chunk=1000000000")
GPU_REFUSED(linear_chunk, "[layer.linear] chunk = 30000 with", "model.layers=\"linear\"",
            "layer.linear.chunk=30000", "train.batch=1", "train.seq_len=30000")
GPU_REFUSED(gla_chunks,
            "[layer.gla] 256 chunks of [train] seq_len = 256 x 4 heads x [train] batch = "
            "2097152: the GPU's chunked kernel takes fewer than 2^31",
            "model.layers=\"gla\"", "layer.gla.chunk=1", "train.batch=2097152")
GPU_ACCEPTED(gla_chunks, "model.layers=\"gla\"", "layer.gla.chunk=1", "train.batch=2097151")
GPU_REFUSED(gla_key_width,
            "[layer.gla] a head's key width 4194241 or value width 8: the GPU's chunked kernel "
            "takes at most 4194240",
            "model.layers=\"gla\"", "model.d_model=8", "model.n_heads=1",
            "layer.gla.expand_k=524280.125", "layer.gla.gate_rank=1")
GPU_ACCEPTED(gla_key_width, "model.layers=\"gla\"", "model.d_model=8", "model.n_heads=1",
             "layer.gla.expand_k=524280", "layer.gla.gate_rank=1")

/* titans_scan.cu: every size per memory head below 2^31 */
GPU_REFUSED(titans_scan,
            "[layer.titans] the memory's sizes per head on the GPU: [train] seq_len x the head "
            "width = 16777216 x 128",
            "model.layers=\"titans_mal\"", "train.batch=1", "train.seq_len=16777216")
GPU_ACCEPTED(titans_scan, "model.layers=\"titans_mal\"", "train.batch=1", "train.seq_len=4096")
/* titans_mac scans a segment at a time */
GPU_REFUSED(titans_mac_scan,
            "[layer.titans] the memory's sizes per head on the GPU: [layer.titans] segment x the "
            "head width = 16777216 x 128",
            "model.layers=\"titans_mac\"", "train.batch=1", "train.seq_len=33554432",
            "layer.titans.segment=16777216")
GPU_ACCEPTED(titans_mac_scan, "model.layers=\"titans_mac\"", "train.batch=1",
             "train.seq_len=16777216", "layer.titans.segment=4096")
GPU_ACCEPTED(titans_reference, "model.layers=\"titans_mag\"", "layer.titans.reference=true",
             "train.batch=1", "train.seq_len=16777216")

/* Every key a check names is a recipe key: the error's place comes from them. */
Test(gpu_limits, the_keys_of_every_check_exist) {
  for (size_t c = 0; c < hy_n_gpu_checks; c++)
    for (int i = 0; i < HY_CHECK_KEYS && hy_gpu_checks[c].keys[i][0]; i++)
      cr_expect(hy_key_find(hy_gpu_checks[c].keys[i][0], hy_gpu_checks[c].keys[i][1]),
                "check %zu: no key %s.%s", c, hy_gpu_checks[c].keys[i][0],
                hy_gpu_checks[c].keys[i][1]);
}

/* The shipped GPU recipe passes, and every shipped recipe still does on the GPU. */
Test(gpu_limits, the_shipped_recipes_pass_on_the_gpu) {
  const char *recipes[] = {
      "hybrid-134m-gpu", "quickstart",      "gla-tiny",       "rat-tiny",    "sla-tiny",
      "titans-mal-tiny", "titans-mac-tiny", "lightning-tiny", "linear-tiny", "softplus-tiny"};
  for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++) {
    char path[4096];
    snprintf(path, sizeof path, "recipes/%s.toml", recipes[i]);
    snprintf(path, sizeof path, "%s", t_source_path(path));
    hy_recipe r;
    hy_error err = {{0}};
    const char *sets[] = {ON_GPU};
    cr_expect_eq(hy_recipe_load(path, 1, sets, &r, &err), 0, "%s: %s", recipes[i], err.msg);
  }
}
