#include "recipes/schema.h"
#include "tensor/threads.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the table ---- */

#define KEY(sec, name, t, field)                                                                   \
  .section = sec, .key = name, .type = t, .offset = offsetof(hy_recipe, field)
#define BUFFER(field) .size = sizeof(((hy_recipe *)0)->field)
#define AT_LEAST(x)   .has_min = true, .min = (x)
#define ABOVE(x)      .has_min = true, .min_open = true, .min = (x)
#define UP_TO(x)      .has_max = true, .max = (x)
#define BELOW(x)      .has_max = true, .max_open = true, .max = (x)

/* The enum keys' choices, in the order of their C enums (recipes/recipe.h). */
static const char *const PRECISIONS[] = {"f32", "f64", "bf16", NULL};
static const char *const ON_NAN[] = {"stop", "skip", NULL};
static const char *const DEVICES[] = {"cpu", "cuda", NULL};
static const char *const OPTIMIZERS[] = {"adamw", "sgd", NULL};
static const char *const SCHEDULES[] = {"cosine", "linear", "constant", "wsd", NULL};
static const char *const SAMPLINGS[] = {"random", "sequential", NULL};
static const char *const PACKINGS[] = {"stream", "documents", NULL};
static const char *const COLLECTIVES[] = {"on", "timed", "skipped", NULL};
static const char *const FEATURE_MAPS[] = {"identity", "elu", "relu", NULL};
static const char *const SLA_FEATURE_MAPS[] = {"softmax", "elu", "relu", NULL};

const hy_key hy_keys[] = {
    {KEY("run", "name", HY_KEY_STRING, run.name), BUFFER(run.name),
     .def_doc = "the recipe file's name without `.toml`",
     .doc = "Names the run in logs and in the default run directory."},
    {KEY("run", "seed", HY_KEY_INT, run.seed), AT_LEAST(0), .def = "0",
     .doc = "Seeds parameter initialisation and data sampling."},
    {KEY("run", "out", HY_KEY_STRING, run.out), BUFFER(run.out), .def_doc = "`\"runs/<name>\"`",
     .doc = "The run directory: resolved recipe, metrics.jsonl, checkpoints and log."},

    {KEY("model", "vocab", HY_KEY_INT, model.vocab), AT_LEAST(2), .def = "256",
     .doc = "Vocabulary size. Left out, the dataset's: 256 for bytes, a subword dataset's "
            "stored vocabulary (`hyla data prepare --tokenizer`, docs/data.md). Set, it must equal "
            "a stored vocabulary's size, or be at least a dataset's without one."},
    {KEY("model", "d_model", HY_KEY_INT, model.d_model), AT_LEAST(8), .def = "128",
     .doc = "Width of the residual stream; a multiple of n_heads."},
    {KEY("model", "n_heads", HY_KEY_INT, model.n_heads), AT_LEAST(1), .def = "4",
     .doc = "Attention heads; the head size d_model / n_heads must be even (RoPE)."},
    {KEY("model", "layers", HY_KEY_LAYERS, model.layers),
     .count_offset = offsetof(hy_recipe, model.n_layers), .max_items = HY_MAX_LAYERS,
     .def = "[\"attn\", \"attn\"]",
     .doc = "The mixer kind of each block: an array (`[\"gla\", \"attn\"]`) or a pattern string "
            "(`\"gla,gla,attn x 2\"`: the comma-separated kinds, repeated)."},
    {KEY("model", "mlp_ratio", HY_KEY_FLOAT, model.mlp_ratio), ABOVE(0),
     .def = "2.6666666666666665",
     .doc = "MLP width over d_model (8/3: a SwiGLU MLP as large as a 4x GELU one)."},
    {KEY("model", "mlp_multiple", HY_KEY_INT, model.mlp_multiple), AT_LEAST(1), .def = "64",
     .doc = "The MLP width, mlp_ratio * d_model, is rounded up to a multiple of this."},
    {KEY("model", "tied_embeddings", HY_KEY_BOOL, model.tied_embeddings), .def = "true",
     .doc = "The LM head reuses the embedding matrix."},
    {KEY("model", "rope_theta", HY_KEY_FLOAT, model.rope_theta), ABOVE(0), .def = "10000.0",
     .doc = "RoPE base frequency."},
    {KEY("model", "norm_eps", HY_KEY_FLOAT, model.norm_eps), ABOVE(0), .def = "1e-06",
     .doc = "RMSNorm epsilon."},
    {KEY("model", "init_std", HY_KEY_FLOAT, model.init_std), ABOVE(0), .def = "0.02",
     .doc = "Std of the normal initialisation of weights."},
    {KEY("model", "scale_out_init", HY_KEY_BOOL, model.scale_out_init), .def = "true",
     .doc = "Output projections start at init_std / sqrt(2 * number of layers)."},

    {KEY("layer.attn", "naive", HY_KEY_BOOL, layer_attn.naive), .def = "false",
     .doc = "Softmax attention uses the O(T^2) reference form instead of the fused one."},
    {KEY("layer.attn", "window", HY_KEY_INT, layer_attn.window), AT_LEAST(0), .def = "0",
     .doc = "Sliding-window attention: each token sees the last `window` tokens (itself "
            "included); 0: all."},

    {KEY("layer.gla", "heads", HY_KEY_INT, layer_gla.heads), AT_LEAST(0), .def = "0",
     .doc = "GLA heads; 0: model.n_heads."},
    {KEY("layer.gla", "expand_k", HY_KEY_FLOAT, layer_gla.expand_k), ABOVE(0), .def = "0.5",
     .doc = "Key width of all heads over d_model."},
    {KEY("layer.gla", "expand_v", HY_KEY_FLOAT, layer_gla.expand_v), ABOVE(0), .def = "1.0",
     .doc = "Value width of all heads over d_model."},
    {KEY("layer.gla", "gate_rank", HY_KEY_INT, layer_gla.gate_rank), AT_LEAST(1), .def = "16",
     .doc = "Rank of the low-rank forget-gate projection."},
    {KEY("layer.gla", "gate_norm", HY_KEY_FLOAT, layer_gla.gate_norm), ABOVE(0), .def = "16.0",
     .doc = "The log forget gate is logsigmoid(x W_a1 W_a2 + b) / gate_norm."},
    {KEY("layer.gla", "chunk", HY_KEY_INT, layer_gla.chunk), AT_LEAST(1), .def = "64",
     .doc = "Tokens per chunk of the fused op."},
    {KEY("layer.gla", "norm_eps", HY_KEY_FLOAT, layer_gla.norm_eps), ABOVE(0), .def = "1e-05",
     .doc = "Epsilon of the per-head output RMSNorm."},
    {KEY("layer.gla", "recurrent", HY_KEY_BOOL, layer_gla.recurrent), .def = "false",
     .doc = "Use the step-by-step recurrence (the reference) instead of the chunked op."},

    {KEY("layer.lightning", "heads", HY_KEY_INT, layer_lightning.heads), AT_LEAST(0), .def = "0",
     .doc = "Lightning heads; 0: model.n_heads. Head h of block l of L decays by "
            "exp(-(8 / heads)(1 - l / L) h) per token."},
    {KEY("layer.lightning", "chunk", HY_KEY_INT, layer_lightning.chunk), AT_LEAST(1), .def = "64",
     .doc = "Tokens per chunk of the fused op."},
    {KEY("layer.lightning", "norm_eps", HY_KEY_FLOAT, layer_lightning.norm_eps), ABOVE(0),
     .def = "1e-05", .doc = "Epsilon of the output SRMSNorm."},
    {KEY("layer.lightning", "recurrent", HY_KEY_BOOL, layer_lightning.recurrent), .def = "false",
     .doc = "Use the step-by-step recurrence (the reference) instead of the chunked op."},

    {KEY("layer.linear", "heads", HY_KEY_INT, layer_linear.heads), AT_LEAST(0), .def = "0",
     .doc = "Linear-attention heads; 0: model.n_heads."},
    {KEY("layer.linear", "feature_map", HY_KEY_STRING, layer_linear.feature_map),
     BUFFER(layer_linear.feature_map), .choices = FEATURE_MAPS, .def = "\"elu\"",
     .doc = "The feature map on q and k: elu (elu(x) + 1), relu or identity."},
    {KEY("layer.linear", "chunk", HY_KEY_INT, layer_linear.chunk), AT_LEAST(1), .def = "64",
     .doc = "Tokens per chunk of the fused op."},
    {KEY("layer.linear", "norm_eps", HY_KEY_FLOAT, layer_linear.norm_eps), ABOVE(0), .def = "1e-05",
     .doc = "Epsilon of the per-head output RMSNorm."},
    {KEY("layer.linear", "recurrent", HY_KEY_BOOL, layer_linear.recurrent), .def = "false",
     .doc = "Use the step-by-step recurrence (the reference) instead of the chunked op."},

    {KEY("layer.conv", "kernel", HY_KEY_INT, layer_conv.kernel), AT_LEAST(1), UP_TO(64), .def = "3",
     .doc = "Tokens the causal convolution sees at each position: itself and the kernel - 1 "
            "before it (2 or more moves the previous token into each position)."},

    {KEY("layer.sigmoid", "bias_log_n", HY_KEY_BOOL, layer_sigmoid.bias_log_n), .def = "true",
     .doc = "The score bias is b = -log(n), n = train.seq_len (the paper's rule); else `bias`."},
    {KEY("layer.sigmoid", "bias", HY_KEY_FLOAT, layer_sigmoid.bias), .def = "0.0",
     .doc = "The score bias when bias_log_n is false."},
    {KEY("layer.sigmoid", "output_norm", HY_KEY_BOOL, layer_sigmoid.output_norm), .def = "true",
     .doc = "RMSNorm per head on the attention output, which the paper needs for stable training."},
    {KEY("layer.sigmoid", "norm_eps", HY_KEY_FLOAT, layer_sigmoid.norm_eps), ABOVE(0),
     .def = "1e-05", .doc = "Epsilon of that norm."},
    {KEY("layer.sigmoid", "naive", HY_KEY_BOOL, layer_sigmoid.naive), .def = "false",
     .doc = "Use the O(T^2) reference form instead of the fused op."},

    {KEY("layer.softplus", "length_scale", HY_KEY_BOOL, layer_softplus.length_scale), .def = "true",
     .doc = "Scale the scores of query t by log(t + 1) / log(train_len) (invariance entropy)."},
    {KEY("layer.softplus", "train_len", HY_KEY_INT, layer_softplus.train_len), AT_LEAST(0),
     .def = "0", .doc = "The length that scale is relative to; 0: train.seq_len."},
    {KEY("layer.softplus", "power", HY_KEY_FLOAT, layer_softplus.power), ABOVE(0), .def = "1.0",
     .doc = "The weights are softplus(...)^power, normalized, while training (1: LSSA)."},
    {KEY("layer.softplus", "eval_power", HY_KEY_FLOAT, layer_softplus.eval_power), ABOVE(0),
     .def = "1.0",
     .doc = "The power `hyla eval` uses: the re-weighting of LSSAR, applied without retraining."},
    {KEY("layer.softplus", "naive", HY_KEY_BOOL, layer_softplus.naive), .def = "false",
     .doc = "Use the O(T^2) reference form instead of the fused op."},

    {KEY("layer.sla", "block", HY_KEY_INT, layer_sla.block), AT_LEAST(1), .def = "64",
     .doc = "Query and key block size."},
    {KEY("layer.sla", "critical", HY_KEY_FLOAT, layer_sla.critical), AT_LEAST(0), UP_TO(1),
     .def = "0.05",
     .doc = "Fraction of the earlier key blocks attended exactly (the diagonal block always is)."},
    {KEY("layer.sla", "negligible", HY_KEY_FLOAT, layer_sla.negligible), AT_LEAST(0), UP_TO(1),
     .def = "0.1", .doc = "Fraction of the earlier key blocks skipped; the rest go linear."},
    {KEY("layer.sla", "feature_map", HY_KEY_STRING, layer_sla.feature_map),
     BUFFER(layer_sla.feature_map), .choices = SLA_FEATURE_MAPS, .def = "\"softmax\"",
     .doc = "Feature map of the linear branch: softmax over features, elu + 1, or relu."},
    {KEY("layer.sla", "naive", HY_KEY_BOOL, layer_sla.naive), .def = "false",
     .doc = "Use the O(T^2) reference form instead of the fused op."},

    {KEY("layer.rat", "chunk", HY_KEY_INT, layer_rat.chunk), AT_LEAST(1), .def = "16",
     .doc = "Tokens per chunk: the recurrence runs inside a chunk, softmax attention across them."},
    {KEY("layer.rat", "n_groups", HY_KEY_INT, layer_rat.n_groups), AT_LEAST(1), .def = "2",
     .doc = "Query/key groups shared by the heads (a divisor of the heads)."},
    {KEY("layer.rat", "heads", HY_KEY_INT, layer_rat.heads), AT_LEAST(0), .def = "0",
     .doc = "Heads; 0: model.n_heads."},
    {KEY("layer.rat", "rope_theta", HY_KEY_FLOAT, layer_rat.rope_theta), ABOVE(0), .def = "10000.0",
     .doc = "Base of the RoPE over chunk positions."},
    {KEY("layer.rat", "naive", HY_KEY_BOOL, layer_rat.naive), .def = "false",
     .doc = "Use the plain form built from ops instead of the fused op."},

    {KEY("layer.titans", "chunk", HY_KEY_INT, layer_titans.chunk), AT_LEAST(1), .def = "64",
     .doc = "Tokens per update of the neural memory (titans_mal, titans_mag and titans_mac)."},
    {KEY("layer.titans", "depth", HY_KEY_INT, layer_titans.depth), AT_LEAST(1), UP_TO(2),
     .def = "2", .doc = "Layers of the memory MLP: 1 (a matrix) or 2."},
    {KEY("layer.titans", "expansion", HY_KEY_FLOAT, layer_titans.expansion), ABOVE(0), .def = "4.0",
     .doc = "Hidden width of a 2-layer memory over its head width."},
    {KEY("layer.titans", "heads", HY_KEY_INT, layer_titans.heads), AT_LEAST(1), .def = "1",
     .doc = "Memory heads."},
    {KEY("layer.titans", "head_dim", HY_KEY_INT, layer_titans.head_dim), AT_LEAST(0), .def = "0",
     .doc = "Width of a memory head; 0: d_model / heads."},
    {KEY("layer.titans", "lr_max", HY_KEY_FLOAT, layer_titans.lr_max), AT_LEAST(0), .def = "0.0",
     .doc = "The inner learning rate is lr_max * sigmoid(x w_theta); 0: 1 / head_dim (the "
            "reference code's rate 1 on a loss averaged over the width)."},
    {KEY("layer.titans", "window", HY_KEY_INT, layer_titans.window), AT_LEAST(0), .def = "128",
     .doc = "Sliding window of the layer's softmax attention, in tokens; 0: the whole sequence."},
    {KEY("layer.titans", "persistent", HY_KEY_INT, layer_titans.persistent), AT_LEAST(0),
     .def = "4", .doc = "Learned key/value pairs per head that every query attends to."},
    {KEY("layer.titans", "reference", HY_KEY_BOOL, layer_titans.reference), .def = "false",
     .doc = "Update the memory token by token (the reference form) instead of by chunks."},
    {KEY("layer.titans", "segment", HY_KEY_INT, layer_titans.segment), AT_LEAST(1), .def = "128",
     .doc = "titans_mac: tokens per segment, a multiple of chunk; the attention sees the segment, "
            "the memory carries what came before."},

    {KEY("train", "batch", HY_KEY_INT, train.batch), AT_LEAST(1), .def = "8",
     .doc = "Sequences per micro-batch."},
    {KEY("train", "seq_len", HY_KEY_INT, train.seq_len), AT_LEAST(1), .def = "256",
     .doc = "Tokens per sequence."},
    {KEY("train", "steps", HY_KEY_INT, train.steps), AT_LEAST(1), .def = "1000",
     .doc = "Optimizer steps: the schedule's length."},
    {KEY("train", "stop_after", HY_KEY_INT, train.stop_after), AT_LEAST(0), .def = "0",
     .doc = "Stop at this step without changing the schedule; 0: off."},
    {KEY("train", "grad_accum", HY_KEY_INT, train.grad_accum), AT_LEAST(1), .def = "1",
     .doc = "Micro-batches per optimizer step."},
    {KEY("train", "grad_clip", HY_KEY_FLOAT, train.grad_clip), AT_LEAST(0), .def = "1.0",
     .doc = "Clip the global gradient norm to this; 0: off."},
    {KEY("train", "log_every", HY_KEY_INT, train.log_every), AT_LEAST(1), .def = "10",
     .doc = "Steps between lines of metrics."},
    {KEY("train", "eval_every", HY_KEY_INT, train.eval_every), AT_LEAST(0), .def = "200",
     .doc = "Steps between evaluations; 0: only at the end."},
    {KEY("train", "eval_batches", HY_KEY_INT, train.eval_batches), AT_LEAST(1), .def = "16",
     .doc = "Validation batches per evaluation."},
    {KEY("train", "checkpoint_every", HY_KEY_INT, train.checkpoint_every), AT_LEAST(0),
     .def = "500", .doc = "Steps between checkpoints; 0: only when the run stops."},
    {KEY("train", "keep_checkpoints", HY_KEY_INT, train.keep_checkpoints), AT_LEAST(1), .def = "2",
     .doc = "How many of the latest checkpoints to keep."},
    {KEY("train", "precision", HY_KEY_ENUM, train.precision), .choices = PRECISIONS,
     .def = "\"f32\"",
     .doc = "Parameters and compute in f32, or f64 (for checks), or bf16 (GPU only): mixed "
            "precision, activations and their gradients stored in bf16 with matmuls and attention "
            "on the tensor cores (f32 sums); weights, their gradients, AdamW moments, the residual "
            "stream, the loss and the norms' statistics in f32."},
    {KEY("train", "on_nan", HY_KEY_ENUM, train.on_nan), .choices = ON_NAN, .def = "\"stop\"",
     .doc = "On a NaN or Inf loss: stop (with a checkpoint of the last good state) or skip the "
            "step."},
    {KEY("train", "device", HY_KEY_ENUM, train.device), .choices = DEVICES, .def = "\"cpu\"",
     .doc = "Where the model trains: the CPU, or one GPU per rank (a build with -DHYLA_CUDA=ON; "
            "f32 or bf16)."},
    {KEY("train", "cuda_graph", HY_KEY_BOOL, train.cuda_graph), .def = "true",
     .doc = "On the GPU, capture a training step once as a CUDA graph and replay it (one launch a "
            "step); steps of another shape or loss weight run op by op."},
    {KEY("train", "threads", HY_KEY_INT, train.threads), AT_LEAST(0), UP_TO(HY_THREADS_MAX),
     .def = "0",
     .doc = "CPU threads; 0: HYLA_THREADS, else OMP_NUM_THREADS, else the cores (under mpirun, "
            "split among the ranks of the machine)."},

    {KEY("optim", "name", HY_KEY_ENUM, optim.name), .choices = OPTIMIZERS, .def = "\"adamw\"",
     .doc = "The optimizer."},
    {KEY("optim", "lr", HY_KEY_FLOAT, optim.lr), ABOVE(0), .def = "0.001",
     .doc = "Peak learning rate."},
    {KEY("optim", "min_lr_ratio", HY_KEY_FLOAT, optim.min_lr_ratio), AT_LEAST(0), UP_TO(1),
     .def = "0.1", .doc = "The schedule ends at min_lr_ratio * lr."},
    {KEY("optim", "betas", HY_KEY_PAIR, optim.betas), AT_LEAST(0), BELOW(1), .def = "[0.9, 0.95]",
     .doc = "AdamW's decay rates of the first and second moments."},
    {KEY("optim", "eps", HY_KEY_FLOAT, optim.eps), ABOVE(0), .def = "1e-08",
     .doc = "AdamW's epsilon."},
    {KEY("optim", "weight_decay", HY_KEY_FLOAT, optim.weight_decay), AT_LEAST(0), .def = "0.1",
     .doc = "Decoupled weight decay."},
    {KEY("optim", "momentum", HY_KEY_FLOAT, optim.momentum), AT_LEAST(0), BELOW(1), .def = "0.9",
     .doc = "SGD momentum."},
    {KEY("optim", "no_decay", HY_KEY_LIST, optim.no_decay), BUFFER(optim.no_decay[0]),
     .count_offset = offsetof(hy_recipe, optim.n_no_decay), .max_items = HY_RECIPE_LIST_MAX,
     .def = "[\"norm\", \"bias\", \"embed\"]",
     .doc = "Parameters whose path contains one of these take no weight decay; `[]` decays all."},
    {KEY("optim", "warmup", HY_KEY_INT, optim.warmup), AT_LEAST(0), .def = "100",
     .doc = "Steps of linear warmup."},
    {KEY("optim", "schedule", HY_KEY_ENUM, optim.schedule), .choices = SCHEDULES,
     .def = "\"cosine\"",
     .doc = "How the learning rate decays after warmup (wsd: warmup, stable, decay)."},
    {KEY("optim", "decay_fraction", HY_KEY_FLOAT, optim.decay_fraction), ABOVE(0), UP_TO(1),
     .def = "0.2", .doc = "WSD: the share of the steps spent decaying."},

    {KEY("data", "dataset", HY_KEY_STRING, data.dataset), BUFFER(data.dataset),
     .def = "\"shakespeare\"",
     .doc = "An HDF5 token dataset's path, \"shakespeare\" (the corpus shipped with hyla) or "
            "\"mqar\" (generated)."},
    {KEY("data", "sampling", HY_KEY_ENUM, data.sampling), .choices = SAMPLINGS, .def = "\"random\"",
     .doc = "Training windows at random offsets, or one after the other."},
    {KEY("data", "packing", HY_KEY_ENUM, data.packing), .choices = PACKINGS, .def = "\"stream\"",
     .doc = "How a row's tokens relate: \"stream\", one text whatever documents it spans; "
            "\"documents\", the same rows with each token's position in its document (the "
            "dataset's /train_docs and /val_docs, docs/data.md): the mixers keep documents apart "
            "and no target crosses into the next document. An MQAR example is one document. "
            "Every layer's kind must keep documents apart (none does yet)."},

    {KEY("data.mqar", "pairs", HY_KEY_INT, data.mqar.pairs), AT_LEAST(1), .def = "16",
     .doc = "Key-value pairs per example; 4 * pairs <= seq_len and pairs <= vocab / 2 - 1."},
    {KEY("data.mqar", "power_a", HY_KEY_FLOAT, data.mqar.power_a), ABOVE(0), .def = "0.01",
     .doc = "Power law of where the queries fall."},
    {KEY("data.mqar", "train_examples", HY_KEY_INT, data.mqar.train_examples), AT_LEAST(1),
     .def = "100000", .doc = "Examples in the training split."},
    {KEY("data.mqar", "val_examples", HY_KEY_INT, data.mqar.val_examples), AT_LEAST(1),
     .def = "3000", .doc = "Examples in the validation split."},

    {KEY("dist", "dp", HY_KEY_INT, dist.dp), AT_LEAST(1), .def = "1",
     .doc = "Data-parallel ranks."},
    {KEY("dist", "sp", HY_KEY_INT, dist.sp), AT_LEAST(1), .def = "1",
     .doc = "Sequence-parallel ranks."},
    {KEY("dist", "collectives", HY_KEY_ENUM, dist.collectives), .choices = COLLECTIVES,
     .def = "\"on\"",
     .doc = "How the training step's collectives run, for measuring their cost "
            "(scripts/bench_multigpu.sh): \"on\"; \"timed\", each timed apart (on the GPU by "
            "events, so the step is not a CUDA graph) and logged as comm_s, the seconds a step "
            "spends in them (comm_s_by: by kind); \"skipped\", none run, every rank keeping its "
            "own numbers: the "
            "step's time without communication, its results wrong."},
    {KEY("dist", "overlap", HY_KEY_BOOL, dist.overlap), .def = "true",
     .doc = "LASP-2 (the linear kinds with sp > 1) runs its AllGather of the slices' states while "
            "each rank computes its own slice, and the backward's reduce-scatter while it "
            "differentiates it (on the GPU on a second stream); false: one after the other."},
};
const int hy_n_keys = sizeof hy_keys / sizeof *hy_keys;
_Static_assert(sizeof hy_keys / sizeof *hy_keys <= HY_RECIPE_KEYS_MAX, "raise HY_RECIPE_KEYS_MAX");

const char *const hy_sections[] = {"run",
                                   "model",
                                   "layer.attn",
                                   "layer.gla",
                                   "layer.lightning",
                                   "layer.linear",
                                   "layer.conv",
                                   "layer.sigmoid",
                                   "layer.softplus",
                                   "layer.sla",
                                   "layer.rat",
                                   "layer.titans",
                                   "train",
                                   "optim",
                                   "data",
                                   "data.mqar",
                                   "dist",
                                   NULL};

const hy_key *hy_key_find(const char *section, const char *key) {
  for (int i = 0; i < hy_n_keys; i++)
    if (!strcmp(hy_keys[i].section, section) && !strcmp(hy_keys[i].key, key)) return &hy_keys[i];
  return NULL;
}

bool hy_section_known(const char *section) {
  for (int i = 0; hy_sections[i]; i++)
    if (!strcmp(hy_sections[i], section)) return true;
  return false;
}

/* ---- descriptions ---- */

static void range_text(const hy_key *k, char *buf, size_t size) {
  if (k->has_min && k->has_max)
    snprintf(buf, size, "in %c%g, %g%c", k->min_open ? '(' : '[', k->min, k->max,
             k->max_open ? ')' : ']');
  else if (k->has_min)
    snprintf(buf, size, "%s %g", k->min_open ? ">" : ">=", k->min);
  else if (k->has_max)
    snprintf(buf, size, "%s %g", k->max_open ? "<" : "<=", k->max);
  else
    snprintf(buf, size, "%s", "");
}

static void choices_text(const hy_key *k, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = 0;
  for (int c = 0; k->choices[c] && n < size; c++)
    n += (size_t)snprintf(buf + n, size - n, "%s\"%s\"", c ? ", " : "", k->choices[c]);
}

void hy_key_expect(const hy_key *k, char *buf, size_t size) {
  if (k->choices) {
    char choices[128];
    choices_text(k, choices, sizeof choices);
    snprintf(buf, size, "one of %s", choices);
    return;
  }
  char range[64];
  range_text(k, range, sizeof range);
  const char *space = *range ? " " : "";
  switch (k->type) {
  case HY_KEY_INT: snprintf(buf, size, "an integer%s%s", space, range); break;
  case HY_KEY_FLOAT: snprintf(buf, size, "a float%s%s", space, range); break;
  case HY_KEY_BOOL: snprintf(buf, size, "true or false"); break;
  case HY_KEY_STRING: snprintf(buf, size, "a quoted string"); break;
  case HY_KEY_ENUM: break; /* below: as a string of choices */
  case HY_KEY_LIST: snprintf(buf, size, "an array of quoted strings"); break;
  case HY_KEY_PAIR: snprintf(buf, size, "an array of two floats%s%s", space, range); break;
  case HY_KEY_LAYERS: snprintf(buf, size, "an array of layer kinds or a pattern string"); break;
  }
}

const char *hy_key_type_doc(const hy_key *k) {
  static const char *const names[] = {
      "integer", "float", "bool", "string", "enum", "array of strings", "[float, float]", "layers"};
  return k->choices ? "enum" : names[k->type];
}

void hy_key_range_doc(const hy_key *k, char *buf, size_t size) {
  if (k->choices)
    choices_text(k, buf, size);
  else if (k->type == HY_KEY_LIST)
    snprintf(buf, size, "at most %d items", k->max_items);
  else if (k->type == HY_KEY_LAYERS)
    snprintf(buf, size, "1 to %d known kinds", k->max_items);
  else if (k->type == HY_KEY_STRING)
    snprintf(buf, size, "not empty; at most %zu bytes", k->size - 1);
  else
    range_text(k, buf, size);
}

/* ---- did you mean ---- */

int hy_edit_distance(const char *a, const char *b) {
  enum { MAX = 64 };
  int la = (int)strnlen(a, MAX - 1), lb = (int)strnlen(b, MAX - 1);
  int d[MAX][MAX];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int cost = a[i - 1] != b[j - 1];
      int best = d[i - 1][j - 1] + cost;
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

const char *hy_closest(const char *s, const char *const *candidates, int n) {
  /* A typo changes about one character in three, and at least one. */
  int limit = (int)strlen(s) / 3;
  limit = limit < 1 ? 1 : limit > 3 ? 3 : limit;
  const char *best = NULL;
  int best_d = limit + 1;
  for (int i = 0; i < n; i++) {
    int d = hy_edit_distance(s, candidates[i]);
    if (d < best_d) best = candidates[i], best_d = d;
  }
  return best;
}

/* ---- checking and storing values ---- */

static void *field(hy_recipe *r, const hy_key *k) { return (char *)r + k->offset; }
static const void *cfield(const hy_recipe *r, const hy_key *k) {
  return (const char *)r + k->offset;
}

static bool in_range(const hy_key *k, double x) {
  if (!isfinite(x)) return false;
  if (k->has_min && (k->min_open ? !(x > k->min) : !(x >= k->min))) return false;
  if (k->has_max && (k->max_open ? !(x < k->max) : !(x <= k->max))) return false;
  return true;
}

/* v as written, for a message: its first 60 bytes, an array's lines joined by single spaces. */
enum { SHOWN = 80 };
static const char *shown(const hy_toml_value *v, char *buf) {
  int n = 0, i = 0;
  for (; i < v->src_len && n < 60; i++) {
    if (v->src[i] != '\n') {
      buf[n++] = v->src[i];
      continue;
    }
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r')) n--;
    while (i + 1 < v->src_len && (v->src[i + 1] == ' ' || v->src[i + 1] == '\t')) i++;
    buf[n++] = ' ';
  }
  snprintf(buf + n, 4, "%s", i < v->src_len ? "..." : "");
  return buf;
}

/* "expected <what the key takes>, got <v as written>", naming v's kind when that is the problem. */
static int wrong(const hy_key *k, const hy_toml_value *v, bool say_kind, char *why, size_t size) {
  char want[256], got[SHOWN];
  hy_key_expect(k, want, sizeof want);
  const char *kind = say_kind ? hy_toml_kind_name(v->kind) : NULL;
  if (v->kind == HY_TOML_FLOAT && !isfinite(v->f)) kind = "recipe floats are finite";
  snprintf(why, size, "expected %s, got %s%s%s%s", want, shown(v, got), kind ? " (" : "",
           kind ? kind : "", kind ? ")" : "");
  return -1;
}

static bool is_number(const hy_toml_value *v) {
  return v->kind == HY_TOML_INT || v->kind == HY_TOML_FLOAT;
}
static double number(const hy_toml_value *v) {
  return v->kind == HY_TOML_INT ? (double)v->i : v->f;
}

/* A string is not empty and fits its buffer. */
static int check_string(const char *s, size_t size, const char *what, char *why, size_t why_size) {
  size_t len = strlen(s);
  if (len == 0) return snprintf(why, why_size, "%s must not be empty", what), -1;
  if (len >= size)
    return snprintf(why, why_size, "%s is too long: %zu bytes, at most %zu", what, len, size - 1),
           -1;
  return 0;
}

/* The index of v among k's choices, or -1 with why filled (the closest choice suggested). */
static int choice_of(const hy_key *k, const hy_toml_value *v, char *why, size_t size) {
  if (v->kind != HY_TOML_STRING) return wrong(k, v, true, why, size);
  int n = 0;
  while (k->choices[n] && strcmp(k->choices[n], v->str)) n++;
  if (k->choices[n]) return n;
  wrong(k, v, false, why, size);
  const char *close = hy_closest(v->str, k->choices, n);
  size_t used = strlen(why);
  if (close) snprintf(why + used, size - used, "; did you mean \"%s\"?", close);
  return -1;
}

/* A C enum field takes the index of its choice (enum fields are int-sized: recipe.h's enums). */
static int set_enum(const hy_key *k, const hy_toml_value *v, hy_recipe *r, char *why, size_t size) {
  int n = choice_of(k, v, why, size);
  if (n < 0) return -1;
  *(int *)field(r, k) = n;
  return 0;
}

static int set_list(const hy_key *k, const hy_toml_value *v, hy_recipe *r, char *why, size_t size) {
  char got[SHOWN];
  if (v->kind != HY_TOML_ARRAY) return wrong(k, v, true, why, size);
  if (v->n > k->max_items)
    return snprintf(why, size, "%d items, at most %d", v->n, k->max_items), -1;
  for (int i = 0; i < v->n; i++) {
    const hy_toml_value *item = &v->items[i];
    if (item->kind != HY_TOML_STRING)
      return snprintf(why, size, "expected an array of quoted strings, got %s (%s)",
                      shown(item, got), hy_toml_kind_name(item->kind)),
             -1;
    char what[32];
    snprintf(what, sizeof what, "item %d", i + 1);
    if (check_string(item->str, k->size, what, why, size)) return -1;
  }
  memset(field(r, k), 0, (size_t)k->max_items * k->size);
  for (int i = 0; i < v->n; i++) strcpy((char *)field(r, k) + (size_t)i * k->size, v->items[i].str);
  *(int *)((char *)r + k->count_offset) = v->n;
  return 0;
}

static int set_pair(const hy_key *k, const hy_toml_value *v, hy_recipe *r, char *why, size_t size) {
  if (v->kind != HY_TOML_ARRAY || v->n != 2)
    return wrong(k, v, v->kind != HY_TOML_ARRAY, why, size);
  for (int i = 0; i < 2; i++)
    if (!is_number(&v->items[i]) || !in_range(k, number(&v->items[i])))
      return wrong(k, v, false, why, size);
  double *pair = field(r, k);
  for (int i = 0; i < 2; i++) pair[i] = number(&v->items[i]);
  return 0;
}

/* ---- model.layers ---- */

typedef char kind_name[HY_KIND_NAME_MAX];

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

/* One layer kind, known to layers/mixer.c. */
static int add_layer(const char *name, size_t len, kind_name *out, int n, char *why, size_t size) {
  memset(out[n], 0, sizeof out[n]);
  if (len < sizeof out[n]) memcpy(out[n], name, len);
  if (len >= sizeof out[n] || !hy_mixer_find(out[n]))
    return snprintf(why, size, "unknown layer kind \"%.*s\"; known kinds: %s",
                    (int)(len > 60 ? 60 : len), name, hy_mixer_names()),
           -1;
  return 0;
}

/* "gla,gla,attn x 2": kinds separated by commas, the whole list optionally repeated. */
static int expand_pattern(const char *pat, kind_name *out, int *n, char *why, size_t size) {
  static const char form[] =
      "expected kinds separated by commas, optionally ending in 'x N' (e.g. \"gla,attn x 2\")";
  const char *end = pat + strlen(pat);
  while (end > pat && (end[-1] == ' ' || end[-1] == '\t')) end--;
  /* A trailing "x N" repeats the list N times. */
  long long repeat = 1;
  bool huge = false;
  const char *p = end;
  while (p > pat && p[-1] >= '0' && p[-1] <= '9') p--;
  const char *digits = p;
  while (p > pat && (p[-1] == ' ' || p[-1] == '\t')) p--;
  if (digits < end && p > pat && p[-1] == 'x' && p - 1 > pat && (p[-2] == ' ' || p[-2] == '\t')) {
    repeat = 0;
    const char *d = digits;
    for (; d < end && repeat <= HY_MAX_LAYERS; d++) repeat = 10 * repeat + (*d - '0');
    huge = d < end; /* stopped early: the count is only a lower bound */
    if (repeat < 1) return snprintf(why, size, "pattern \"%s\": 'x 0' leaves no layers", pat), -1;
    end = p - 2;
    while (end > pat && (end[-1] == ' ' || end[-1] == '\t')) end--;
  }
  /* The list: names between commas, spaces around them allowed. */
  int items = 0;
  kind_name list[HY_MAX_LAYERS];
  for (const char *s = pat;; s++) {
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    const char *e = s;
    while (e < end && is_name_char(*e)) e++;
    const char *after = e;
    while (after < end && (*after == ' ' || *after == '\t')) after++;
    if (e == s || (after < end && *after != ','))
      return snprintf(why, size, "malformed layer pattern \"%s\": %s", pat, form), -1;
    if (items == HY_MAX_LAYERS)
      return snprintf(why, size, "more than %d layers, at most %d", HY_MAX_LAYERS, HY_MAX_LAYERS),
             -1;
    if (add_layer(s, (size_t)(e - s), list, items++, why, size)) return -1;
    if (after == end) break;
    s = after;
  }
  if (items * repeat > HY_MAX_LAYERS)
    return snprintf(why, size, "%lld%s layers, at most %d", items * repeat, huge ? " or more" : "",
                    HY_MAX_LAYERS),
           -1;
  *n = (int)(items * repeat);
  for (int i = 0; i < *n; i++) memcpy(out[i], list[i % items], sizeof out[i]);
  return 0;
}

static int set_layers(const hy_key *k, const hy_toml_value *v, hy_recipe *r, char *why,
                      size_t size) {
  kind_name layers[HY_MAX_LAYERS];
  char got[SHOWN];
  int n = 0;
  if (v->kind == HY_TOML_STRING) {
    if (expand_pattern(v->str, layers, &n, why, size)) return -1;
  } else if (v->kind == HY_TOML_ARRAY) {
    if (v->n == 0) return snprintf(why, size, "expected at least one layer, got []"), -1;
    if (v->n > HY_MAX_LAYERS)
      return snprintf(why, size, "%d layers, at most %d", v->n, HY_MAX_LAYERS), -1;
    for (n = 0; n < v->n; n++) {
      const hy_toml_value *item = &v->items[n];
      if (item->kind != HY_TOML_STRING)
        return snprintf(why, size, "expected a quoted layer kind, got %s (%s)", shown(item, got),
                        hy_toml_kind_name(item->kind)),
               -1;
      if (add_layer(item->str, strlen(item->str), layers, n, why, size)) return -1;
    }
  } else {
    return wrong(k, v, true, why, size);
  }
  memset(field(r, k), 0, sizeof r->model.layers);
  memcpy(field(r, k), layers, (size_t)n * sizeof *layers);
  *(int *)((char *)r + k->count_offset) = n;
  return 0;
}

int hy_key_set(const hy_key *k, const hy_toml_value *v, hy_recipe *r, char *why, size_t size) {
  switch (k->type) {
  case HY_KEY_INT:
    if (v->kind != HY_TOML_INT) return wrong(k, v, true, why, size);
    if (!in_range(k, (double)v->i)) return wrong(k, v, false, why, size);
    *(int64_t *)field(r, k) = v->i;
    return 0;
  case HY_KEY_FLOAT:
    if (!is_number(v)) return wrong(k, v, true, why, size);
    if (!in_range(k, number(v))) return wrong(k, v, false, why, size);
    *(double *)field(r, k) = number(v);
    return 0;
  case HY_KEY_BOOL:
    if (v->kind != HY_TOML_BOOL) return wrong(k, v, true, why, size);
    *(bool *)field(r, k) = v->b;
    return 0;
  case HY_KEY_STRING:
    if (v->kind != HY_TOML_STRING) return wrong(k, v, true, why, size);
    if (k->choices && choice_of(k, v, why, size) < 0) return -1;
    if (check_string(v->str, k->size, "the string", why, size)) return -1;
    memset(field(r, k), 0, k->size);
    strcpy(field(r, k), v->str);
    return 0;
  case HY_KEY_ENUM: return set_enum(k, v, r, why, size);
  case HY_KEY_LIST: return set_list(k, v, r, why, size);
  case HY_KEY_PAIR: return set_pair(k, v, r, why, size);
  case HY_KEY_LAYERS: return set_layers(k, v, r, why, size);
  }
  return -1;
}

/* ---- writing values ---- */

typedef struct {
  char *buf;
  size_t size, len;
} sink;

static void put(sink *s, const char *text) {
  for (; *text; text++, s->len++)
    if (s->len + 1 < s->size) s->buf[s->len] = *text;
  if (s->size) s->buf[s->len < s->size ? s->len : s->size - 1] = 0;
}

static void put_quoted(sink *s, const char *str, size_t max) {
  size_t len = strnlen(str, max);
  size_t n = hy_toml_quote(str, len, NULL, 0);
  char quoted[6 * HY_RECIPE_STR + 3];            /* each byte at most 6 characters: \u007F */
  if (n >= sizeof quoted) n = sizeof quoted - 1; /* only for strings no parse let in */
  hy_toml_quote(str, len, quoted, n + 1);
  put(s, quoted);
}

static size_t quoted_len(const char *str, size_t max) {
  return hy_toml_quote(str, strnlen(str, max), NULL, 0);
}

/* Arrays of strings: "[a, b]" on the key's line when that fits in LINE_WIDTH, else the items on
 * the lines below, as many to a line as fit in ARRAY_WIDTH (one when it is long). */
enum { LINE_WIDTH = 100, ARRAY_WIDTH = 100 };
static void put_string_array(sink *s, const hy_key *k, const char *items, size_t item_size, int n) {
  size_t one_line = strlen(k->key) + 5; /* key = [] */
  for (int i = 0; i < n; i++) one_line += quoted_len(items + (size_t)i * item_size, item_size) + 2;
  bool multi = one_line > LINE_WIDTH;
  size_t col = ARRAY_WIDTH; /* a new line before the first item */
  put(s, "[");
  for (int i = 0; i < n; i++) {
    const char *item = items + (size_t)i * item_size;
    size_t q = quoted_len(item, item_size);
    if (!multi) {
      put(s, i ? ", " : "");
    } else if (col + 1 + q + 1 > ARRAY_WIDTH) {
      put(s, "\n  ");
      col = 2;
    } else {
      put(s, " ");
      col++;
    }
    put_quoted(s, item, item_size);
    if (multi) put(s, ","), col += q + 1;
  }
  put(s, multi ? "\n]" : "]");
}

size_t hy_key_format(const hy_key *k, const hy_recipe *r, char *buf, size_t size) {
  sink s = {buf, size, 0};
  char num[64];
  const void *f = cfield(r, k);
  if (size) buf[0] = 0;
  switch (k->type) {
  case HY_KEY_INT:
    snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)f);
    put(&s, num);
    break;
  case HY_KEY_FLOAT:
    hy_toml_format_float(*(const double *)f, num, sizeof num);
    put(&s, num);
    break;
  case HY_KEY_BOOL: put(&s, *(const bool *)f ? "true" : "false"); break;
  case HY_KEY_STRING: put_quoted(&s, f, k->size); break;
  case HY_KEY_ENUM: {
    const char *name = k->choices[*(const int *)f];
    put_quoted(&s, name, strlen(name) + 1);
    break;
  }
  case HY_KEY_PAIR:
    for (int i = 0; i < 2; i++) {
      hy_toml_format_float(((const double *)f)[i], num, sizeof num);
      put(&s, i ? ", " : "[");
      put(&s, num);
    }
    put(&s, "]");
    break;
  case HY_KEY_LIST:
  case HY_KEY_LAYERS: {
    int n = *(const int *)((const char *)r + k->count_offset);
    size_t item = k->type == HY_KEY_LIST ? k->size : HY_KIND_NAME_MAX;
    put_string_array(&s, k, f, item, n < 0 ? 0 : n > k->max_items ? k->max_items : n);
    break;
  }
  }
  return s.len;
}
