/* A recipe says everything about a run. It is a TOML 1.0 file, read with toml++
 * (recipes/toml_read.cc): sections are tables, as [headers], dotted keys or inline tables alike.
 * Each value is checked against one schema, with its file and line, and defaults fill the rest. The
 * schema is the single source of the keys, their types, defaults, ranges and docs: the parser, the
 * validator, the writer of the resolved recipe and docs/recipes.md all come from it. */
#ifndef HYLA_RECIPE_H
#define HYLA_RECIPE_H

#include "layers/model.h"
#include "optim/schedule.h"
#include "util/error.h"

#include <stdio.h>

enum { HY_RECIPE_STR = 256, HY_RECIPE_NAME = 64, HY_RECIPE_LIST_MAX = 16 };

/* The choices of the enum keys, in the order of the schema's choices (recipes/schema.c): the
 * schema turns a recipe's string into its index once, at validation. (optim.schedule takes
 * optim/schedule.h's hy_schedule_kind.) */
typedef enum { HY_RECIPE_F32, HY_RECIPE_F64, HY_RECIPE_BF16 } hy_recipe_precision;
typedef enum { HY_RECIPE_STOP, HY_RECIPE_SKIP } hy_recipe_on_nan;
typedef enum { HY_RECIPE_CPU, HY_RECIPE_CUDA } hy_recipe_device;
typedef enum { HY_RECIPE_ADAMW, HY_RECIPE_SGD } hy_recipe_optimizer;
typedef enum { HY_RECIPE_RANDOM, HY_RECIPE_SEQUENTIAL } hy_recipe_sampling;
typedef enum { HY_RECIPE_STREAM, HY_RECIPE_DOCUMENTS } hy_recipe_packing;
/* the order of hy_collectives (dist/dist.h) */
typedef enum {
  HY_RECIPE_COLL_ON,
  HY_RECIPE_COLL_TIMED,
  HY_RECIPE_COLL_SKIPPED
} hy_recipe_collectives;

typedef struct {
  struct {
    char name[HY_RECIPE_NAME]; /* default: the recipe file's name without .toml */
    int64_t seed;              /* >= 0; default 0 */
    char out[HY_RECIPE_STR];   /* run directory; default "runs/<name>" */
  } run;
  struct {
    int64_t vocab;   /* >= 2; default 256 (bytes) */
    int64_t d_model; /* >= 8; default 128 */
    int64_t n_heads; /* >= 1, divides d_model; default 4 */
    /* `layers = ["gla", "attn"]` (one block each) or `layers = "gla,gla,gla,attn x 2"` (the
     * comma-separated pattern repeated); every name must be a known mixer kind. */
    int n_layers;
    char layers[HY_MAX_LAYERS][HY_KIND_NAME_MAX]; /* default ["attn", "attn"] */
    double mlp_ratio;                             /* > 0; default 8/3 */
    int64_t mlp_multiple; /* >= 1; the MLP width is mlp_ratio * d_model rounded up to it; 64 */
    bool tied_embeddings; /* default true */
    double rope_theta;    /* > 0; default 10000 */
    double norm_eps;      /* > 0; default 1e-6 */
    double init_std;      /* > 0; default 0.02 */
    bool scale_out_init;  /* default true */
  } model;
  struct {
    bool naive;     /* [layer.attn] naive: use the O(T^2) reference form; default false */
    int64_t window; /* [layer.attn] window: sliding-window attention; 0 (default): none */
  } layer_attn;
  /* [layer.gla], [layer.lightning], [layer.linear]: layers/model.h has the keys and defaults */
  hy_gla_config layer_gla;
  hy_lightning_config layer_lightning;
  hy_linear_attn_config layer_linear;
  hy_conv_config layer_conv; /* [layer.conv] */
  /* [layer.sigmoid], [layer.softplus], [layer.sla]; their training lengths come from [train] */
  hy_sigmoid_config layer_sigmoid;
  hy_softplus_config layer_softplus;
  hy_sla_config layer_sla;
  hy_rat_config layer_rat;       /* [layer.rat] */
  hy_titans_config layer_titans; /* [layer.titans]: both titans_mal and titans_mag */
  struct {
    int64_t batch;            /* >= 1; default 8 */
    int64_t seq_len;          /* >= 1; default 256 */
    int64_t steps;            /* >= 1; the schedule's length; default 1000 */
    int64_t stop_after;       /* >= 0; stop at this step without changing the schedule; 0: off */
    int64_t grad_accum;       /* >= 1; micro-batches per step; default 1 */
    double grad_clip;         /* >= 0; global-norm clip, 0: off; default 1.0 */
    int64_t log_every;        /* >= 1; default 10 */
    int64_t eval_every;       /* >= 0; 0: only at the end; default 200 */
    int64_t eval_batches;     /* >= 1; default 16 */
    int64_t checkpoint_every; /* >= 0; 0: only when the run stops; default 500 */
    int64_t keep_checkpoints; /* >= 1; keep the last k; default 2 */
    hy_recipe_precision precision; /* "f32" | "f64" | "bf16" (GPU only); default "f32" */
    hy_recipe_on_nan on_nan;       /* "stop" | "skip"; default "stop" */
    hy_recipe_device device;       /* "cpu" | "cuda"; default "cpu" */
    bool cuda_graph;               /* replay a captured step on the GPU; default true */
    int64_t threads;               /* in [0, 4096]; 0: HYLA_THREADS or all cores; default 0 */
  } train;
  struct {
    hy_recipe_optimizer name; /* "adamw" | "sgd"; default "adamw" */
    double lr;                /* > 0; peak learning rate; default 1e-3 */
    double min_lr_ratio;      /* in [0, 1]; the schedule ends at min_lr_ratio * lr; default 0.1 */
    double betas[2];          /* each in [0, 1); default [0.9, 0.95] */
    double eps;               /* > 0; default 1e-8 */
    double weight_decay;      /* >= 0; default 0.1 */
    double momentum;          /* in [0, 1); SGD only; default 0.9 */
    /* Parameters whose path contains one of these take no weight decay; default
     * ["norm", "bias", "embed"]. An empty list decays everything. */
    int n_no_decay;
    char no_decay[HY_RECIPE_LIST_MAX][HY_RECIPE_NAME];
    int64_t warmup;            /* >= 0 steps of linear warmup; default 100 */
    hy_schedule_kind schedule; /* "cosine" | "linear" | "constant" | "wsd"; default "cosine" */
    double decay_fraction;     /* in (0, 1]; WSD: the share of steps spent decaying; default 0.2 */
  } optim;
  struct {
    /* A path to an HDF5 token dataset, "shakespeare" (the corpus shipped with hyla), or "mqar". */
    char dataset[HY_RECIPE_STR]; /* default "shakespeare" */
    hy_recipe_sampling sampling; /* "random" | "sequential" windows; default "random" */
    hy_recipe_packing packing;   /* "stream" | "documents" (positions per row); "stream" */
    struct {                     /* [data.mqar] */
      int64_t pairs;             /* >= 1, 2 * pairs <= seq_len, pairs <= vocab / 2 - 1; 16 */
      double power_a;            /* > 0; query placement power law; default 0.01 */
      int64_t train_examples;    /* >= 1; default 100000 */
      int64_t val_examples;      /* >= 1; default 3000 */
    } mqar;
  } data;
  struct {
    int64_t dp;                        /* >= 1; data-parallel ranks; default 1 */
    int64_t sp;                        /* >= 1; sequence-parallel ranks; default 1 */
    hy_recipe_collectives collectives; /* "on" | "timed" | "skipped"; default "on" */
    bool overlap; /* LASP-2's AllGather overlaps the intra-slice work; default true */
  } dist;
} hy_recipe;

/* A recipe's [sweep] section (docs/sweeps.md), which hy_recipe leaves out: each axis is a recipe
 * key, written "section.key" (quoted or dotted in the file), or `seeds` for run.seed, with the
 * values it takes. Each value has passed the key's checks, as --set's would. */
enum { HY_SWEEP_AXES_MAX = 16, HY_SWEEP_KEY = 128 };
typedef struct {
  char key[HY_SWEEP_KEY]; /* "optim.lr", or "seeds" */
  int line;               /* where the file sets it */
  int n;                  /* values, each its TOML text as written ("3e-3", "\"gla,attn x 2\"") */
  char **values;
} hy_sweep_axis;
typedef struct {
  int line; /* of the [sweep] header; 0: the recipe has none */
  int n_axes;
  hy_sweep_axis axes[HY_SWEEP_AXES_MAX]; /* in the file's order */
} hy_sweep_spec;

/* Read a recipe file, apply "section.key=value" overrides (as from --set) in order, validate
 * everything, fill in defaults. An override's value is TOML, or bare text for a key that takes a
 * string (run.out=/tmp/x; optim.no_decay=norm,bias for an array of strings). On error, err says
 * "<file>:<line>: ..." ("<file>:<line>:<column>: ..." where the text is not TOML, or
 * "--set ...: ...") and what was expected; *r is then unspecified. */
int hy_recipe_load(const char *path, int n_overrides, const char *const *overrides, hy_recipe *r,
                   hy_error *err);
/* The same, also giving the [sweep] section (free it with hy_sweep_spec_free, on success only).
 * hy_recipe_load checks [sweep] too, and otherwise ignores it. */
int hy_recipe_load_sweep(const char *path, int n_overrides, const char *const *overrides,
                         hy_recipe *r, hy_sweep_spec *sweep, hy_error *err);
void hy_sweep_spec_free(hy_sweep_spec *s);
/* The same from text in memory; `origin` names it in errors (e.g. a checkpoint's path). */
int hy_recipe_parse(const char *text, const char *origin, int n_overrides,
                    const char *const *overrides, hy_recipe *r, hy_error *err);

/* The checks across keys and of the sizes (they fit in 64 bits, the parameters in memory) that
 * loading ran, on a recipe changed since (hyla eval's --seq-len): 0, or -1 with err, which names
 * no file or line: the caller says what changed the recipe. */
int hy_recipe_check(const hy_recipe *r, hy_error *err);

/* The resolved recipe as TOML text (every key, defaults included), malloc'd. Parsing it back
 * gives the same recipe. */
char *hy_recipe_to_toml(const hy_recipe *r);
/* The first line of hy_recipe_to_toml's text: how a run knows the recipe.toml it writes. */
#define HY_RECIPE_RESOLVED_HEADER "# The resolved recipe: every key, defaults included.\n"
/* docs/recipes.md: one table per section with every key, its type, default, range and meaning. */
void hy_recipe_write_docs(FILE *f);

/* How many of the model's layers are of this mixer kind ("attn", "gla", ...). */
int hy_recipe_count_layers(const hy_recipe *r, const char *kind);

/* The model configuration a recipe describes (dtype from train.precision). */
hy_model_config hy_recipe_model_config(const hy_recipe *r);

#endif
